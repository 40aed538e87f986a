"""Browsers on another origin, with ALPHABET_CORS_ORIGINS set: the preflight's explicit
allow-list and max-age, the exposed headers a page script reads, WebSocket handshakes checked
against the same origins, and (in headless Chromium) a page on another loopback origin doing a
read-your-write: PATCH with If-Match, then a list with min_position from X-Position."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import websockets

from tests.conftest import Server, event_body, free_port, serving, sign_up
from tests.e2e.browser import chromium

PAGE_PORT = free_port()
PAGE_ORIGIN = f"http://127.0.0.1:{PAGE_PORT}"
ELSEWHERE = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("cors") / "data", "sqlite",
                 env={"ALPHABET_CORS_ORIGINS": PAGE_ORIGIN}) as running:
        yield running


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """A blank page served from another loopback origin than the API's."""

    class Blank(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!DOCTYPE html><title>elsewhere</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", PAGE_PORT), Blank)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield PAGE_ORIGIN
    httpd.shutdown()


def test_the_preflight_allows_an_explicit_list_of_headers_for_an_hour(
    cors_server: Server
) -> None:
    answer = httpx.options(f"{cors_server.url}/api/event/x", headers={
        "Origin": PAGE_ORIGIN, "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization, content-type, if-match, if-none-match"})
    assert answer.status_code == 204, answer.text
    assert answer.headers["access-control-allow-origin"] == PAGE_ORIGIN
    allowed = {name.strip().lower() for name in
               answer.headers["access-control-allow-headers"].split(",")}
    assert allowed == {"authorization", "content-type", "if-match", "if-none-match"}
    assert int(answer.headers["access-control-max-age"]) >= 600


def test_answers_expose_the_headers_a_page_script_needs(cors_server: Server) -> None:
    with httpx.Client(base_url=cors_server.url, timeout=30) as http:
        owner = sign_up(http)
        answer = http.post("/api/events", json=event_body(),
                           headers={**owner.headers, "Origin": PAGE_ORIGIN})
    assert answer.status_code == 201, answer.text
    exposed = {name.strip().lower() for name in
               answer.headers["access-control-expose-headers"].split(",")}
    assert exposed >= {"etag", "x-position", "location", "retry-after"}


def handshake(server: Server, origin: str | None, token: str) -> int | None:
    """The handshake's refusal status, or None when the socket opened."""

    async def attempt() -> int | None:
        try:
            async with websockets.connect(
                f"ws://127.0.0.1:{server.port}/ws/events?token={token}", origin=origin,  # type: ignore[arg-type]
                open_timeout=30,
            ) as socket:
                await socket.recv()
                return None
        except websockets.InvalidStatus as refused:
            return int(refused.response.status_code)

    return asyncio.run(attempt())


def test_websocket_handshakes_from_other_origins_are_refused_with_403(
    cors_server: Server
) -> None:
    with httpx.Client(base_url=cors_server.url, timeout=30) as http:
        token = sign_up(http).access
    assert handshake(cors_server, ELSEWHERE, token) == 403
    assert handshake(cors_server, PAGE_ORIGIN, token) is None
    assert handshake(cors_server, cors_server.url, token) is None  # a page it served itself
    assert handshake(cors_server, None, token) is None  # not a browser


READ_YOUR_WRITE = """
async ([api, token, id]) => {
  const auth = {"Authorization": "Bearer " + token};
  const read = await fetch(`${api}/api/event/${id}`, {headers: auth});
  const etag = read.headers.get("ETag");
  const patched = await fetch(`${api}/api/event/${id}`, {method: "PATCH",
    headers: {...auth, "Content-Type": "application/json", "If-Match": etag},
    body: JSON.stringify({name: "Moved from a page"})});
  const position = patched.headers.get("X-Position");
  const listed = await fetch(`${api}/api/events?min_position=${position}&limit=1000`,
                             {headers: auth});
  const names = (await listed.json()).events.filter(e => e.id === id).map(e => e.name);
  const again = await fetch(`${api}/api/event/${id}`,
                            {headers: {...auth, "If-None-Match": patched.headers.get("ETag")}});
  return {etag, status: patched.status, position, names, listed: listed.status,
          listedPosition: listed.headers.get("X-Position"), again: again.status};
}
"""


def test_a_page_on_another_origin_reads_its_own_write_in_chromium(
    cors_server: Server, page_origin: str
) -> None:
    with httpx.Client(base_url=cors_server.url, timeout=30) as http:
        owner = sign_up(http)
        created = http.post("/api/events", json=event_body(), headers=owner.headers)
        assert created.status_code == 201, created.text
        event_id = created.json()["event"]["id"]
    with chromium() as browser:
        page = browser.new_page()
        page.goto(page_origin)
        seen = page.evaluate(READ_YOUR_WRITE, [cors_server.url, owner.access, event_id])
    assert seen["etag"] == '"1"', seen
    assert seen["status"] == 200, seen
    assert seen["position"] is not None and int(seen["position"]) > 0, seen
    assert seen["listed"] == 200 and int(seen["listedPosition"]) >= int(seen["position"]), seen
    assert seen["names"] == ["Moved from a page"], seen
    assert seen["again"] == 304, seen


def test_a_page_on_an_origin_not_allowed_cannot_read_the_api(cors_server: Server) -> None:
    answer = httpx.get(f"{cors_server.url}/healthz", headers={"Origin": ELSEWHERE})
    assert "access-control-allow-origin" not in answer.headers
