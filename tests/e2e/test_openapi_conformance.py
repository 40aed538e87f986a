"""Every operation of the served OpenAPI document, driven over real HTTP to each status it
documents (successes and errors alike), and each real answer checked by openapi-core against
the document: status, media type, body schema and headers. A status the document declares but
no case here provokes fails the suite, and so does a header the server sends undeclared."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from openapi_core import OpenAPI

from consumers.rsvp import RsvpLinks
from tests.conftest import ROOT, Person, Server, at, event_body, sign_up
from tests.e2e.openapi_client import check, load

# Headers the document promises to declare wherever the server sends them.
CONTRACT_HEADERS = ("etag", "x-position", "location", "retry-after")
# Documented statuses not provoked by the sweep below, and why.
ELSEWHERE = {
    ("readyz", 503): "needs the event store to fail; the supervision tests provoke it",
    ("signin", 429): "throttles sign-ins: its own test, last in this module",
    ("metrics", 401): "needs ALPHABET_METRICS_TOKEN set: tests/e2e/test_metrics.py",
}
MALFORMED = b'{"name": '
TOO_LARGE = b"[" + b" " * (1024 * 1024) + b"]"


@dataclass
class World:
    """People and events the cases act on, made once per server."""

    http: httpx.Client
    owner: Person
    other: Person
    event_id: str
    etag: str
    deleted_id: str
    started_id: str
    operator: Person | None = None
    # an outside invitee of `invited_id`, and answer links signed with the server's key
    invited_id: str = ""
    invitee_id: str = ""
    links: RsvpLinks | None = None

    def answer_link(self, event_id: str) -> str:
        assert self.links is not None
        return self.links.links(event_id, self.invitee_id,
                                datetime.now(UTC) + timedelta(days=1))["accepted"]

    def request(self, method: str, url: str, who: Person | None = None,
                headers: dict[str, str] | None = None, **options: Any) -> httpx.Request:
        sent = {**(who.headers if who else {}), **(headers or {})}
        return self.http.build_request(method, url, headers=sent, **options)

    def event(self, **overrides: Any) -> str:
        answer = self.http.post("/api/events", json=event_body(**overrides),
                                headers=self.owner.headers)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["event"]["id"])

    def occurrence(self, days: int = 1, **overrides: Any) -> str:
        """The id of the occurrence `days` after the first of a new daily series (whose
        start is in whole seconds, as RFC 5545 times are)."""
        start = datetime.fromisoformat(overrides.pop("starting_time", at(hours=2)))
        fields = {"starting_time": start.replace(microsecond=0).isoformat(),
                  "end_time": overrides.pop("end_time", at(hours=3)), **overrides}
        answer = self.http.post("/api/events", json=event_body(
            recurrence=["RRULE:FREQ=DAILY"], **fields), headers=self.owner.headers)
        assert answer.status_code == 201, answer.text
        event = answer.json()["event"]
        first = datetime.fromisoformat(event["starting_time"]) + timedelta(days=days)
        return f"{event['id']}_{first.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


@pytest.fixture(scope="module")
def document(http: httpx.Client) -> dict[str, Any]:
    answer = http.get("/docs/openapi.json")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


@pytest.fixture(scope="module")
def api(document: dict[str, Any], http: httpx.Client) -> OpenAPI:
    return load(document, str(http.base_url).rstrip("/"))


@pytest.fixture(scope="module")
def world(http: httpx.Client, server: Server) -> World:
    owner, other = sign_up(http, "conform"), sign_up(http, "conform")
    answer = http.post("/api/events", json=event_body(), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    made = World(http, owner, other, answer.json()["event"]["id"], answer.headers["etag"], "",
                 "")
    made.deleted_id = made.event()
    assert http.delete(f"/api/event/{made.deleted_id}", headers=owner.headers).status_code == 200
    made.started_id = made.event(starting_time=at(hours=-1), end_time=at(hours=1))
    made.operator = sign_up(http, "conform")
    invitee = f"conform_{uuid.uuid4().hex[:10]}@example.org"
    made.invited_id = made.event(participants=[invitee])
    [(made.invitee_id,)] = server.rows("SELECT id FROM invitees WHERE email = ?", (invitee,))
    made.links = RsvpLinks((server.data_dir / "secret_key").read_text().strip(), "")
    granted = subprocess.run(
        [sys.executable, "-m", "alphabet", "operator", "grant", made.operator.username],
        cwd=ROOT, env=server.command_env, capture_output=True, text=True, timeout=300)
    assert granted.returncode == 0, granted.stderr
    return made


def operations(document: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId: (method, path, operation)."""
    return {op["operationId"]: (method, path, op) for path, item in document["paths"].items()
            for method, op in item.items()}


def url(path: str, world: World) -> str:
    return (path.replace("{event_id}", world.event_id).replace("{user_id}", world.owner.id)
            .replace("{location}", "Port").replace("{secret}", "unknown"))


def feed(world: World) -> str:
    """A new calendar feed's path (the other person's: each replaces the one before)."""
    answer = world.http.post("/api/user/me/calendar_feed", headers=world.other.headers)
    assert answer.status_code == 201, answer.text
    return urlsplit(answer.json()["url"]).path


def feed_etag(world: World, path: str) -> dict[str, str]:
    return {"If-None-Match": world.http.get(path).headers["etag"]}


def patch_body() -> dict[str, Any]:
    return {"name": "Renamed"}


def signup_body() -> dict[str, str]:
    name = f"conform_{uuid.uuid4().hex[:10]}"
    return {"username": name, "email": f"{name}@example.com", "password": "correct horse"}


Case = Callable[[World], httpx.Request]
CASES: dict[tuple[str, int], Case] = {
    ("healthz", 200): lambda w: w.request("GET", "/healthz"),
    ("readyz", 200): lambda w: w.request("GET", "/readyz"),
    ("metrics", 200): lambda w: w.request("GET", "/metrics"),
    ("metrics", 403): lambda w: w.request("GET", "/metrics", None,
                                          {"X-Forwarded-For": "203.0.113.7"}),
    ("signup", 201): lambda w: w.request("POST", "/api/auth/signup", json=signup_body()),
    ("signup", 409): lambda w: w.request("POST", "/api/auth/signup", json={
        **signup_body(), "username": w.owner.username}),
    ("signup", 422): lambda w: w.request("POST", "/api/auth/signup", json={
        **signup_body(), "email": "not an address"}),
    ("signin", 200): lambda w: w.request("POST", "/api/auth/signin", json={
        "username": w.other.username, "password": w.other.password}),
    ("signin", 401): lambda w: w.request("POST", "/api/auth/signin", json={
        "username": w.other.username, "password": "wrong password"}),
    ("signin", 422): lambda w: w.request("POST", "/api/auth/signin", json={}),
    ("refresh", 200): lambda w: w.request("POST", "/api/auth/refresh", json={
        "refresh": sign_up(w.http, "conform").refresh}),
    ("refresh", 401): lambda w: w.request("POST", "/api/auth/refresh", json={"refresh": "x"}),
    ("refresh", 422): lambda w: w.request("POST", "/api/auth/refresh", json={}),
    ("token_refresh", 200): lambda w: w.request("POST", "/api/token/refresh", json={
        "refresh": sign_up(w.http, "conform").refresh}),
    ("token_refresh", 401): lambda w: w.request("POST", "/api/token/refresh",
                                                json={"refresh": "x"}),
    ("token_refresh", 422): lambda w: w.request("POST", "/api/token/refresh", json={}),
    ("signout", 204): lambda w: w.request("POST", "/api/auth/signout", json={
        "refresh": sign_up(w.http, "conform").refresh}),
    ("signout", 401): lambda w: w.request("POST", "/api/auth/signout", json={"refresh": "x"}),
    ("signout", 422): lambda w: w.request("POST", "/api/auth/signout", json={}),
    ("me", 200): lambda w: w.request("GET", "/api/user/me", w.owner),
    ("change_me", 200): lambda w: (lambda p: w.request("PUT", "/api/user/me", p, json={
        "email": f"new.{p.email}"}))(sign_up(w.http, "conform")),
    ("change_me", 409): lambda w: w.request("PUT", "/api/user/me", w.owner,
                                            json={"username": w.other.username}),
    ("change_me", 422): lambda w: w.request("PUT", "/api/user/me", w.owner,
                                            json={"email": "not an address"}),
    ("delete_me", 200): lambda w: (lambda p: w.request("DELETE", "/api/user/me", p))(
        sign_up(w.http, "conform")),
    ("get_user", 200): lambda w: w.request("GET", f"/api/user/{w.other.id}", w.owner),
    ("get_user", 404): lambda w: w.request("GET", f"/api/user/{uuid.uuid4()}", w.owner),
    ("change_user", 200): lambda w: (lambda p: w.request("PUT", f"/api/user/{p.id}", p, json={
        "email": f"new.{p.email}"}))(sign_up(w.http, "conform")),
    ("change_user", 403): lambda w: w.request("PUT", f"/api/user/{w.other.id}", w.owner,
                                              json={"email": "x@example.com"}),
    ("change_user", 404): lambda w: w.request("PUT", f"/api/user/{uuid.uuid4()}", w.owner,
                                              json={"email": "x@example.com"}),
    ("change_user", 409): lambda w: w.request("PUT", f"/api/user/{w.owner.id}", w.owner,
                                              json={"username": w.other.username}),
    ("change_user", 422): lambda w: w.request("PUT", f"/api/user/{w.owner.id}", w.owner,
                                              json={"email": "not an address"}),
    ("delete_user", 200): lambda w: (lambda p: w.request("DELETE", f"/api/user/{p.id}", p))(
        sign_up(w.http, "conform")),
    ("delete_user", 403): lambda w: w.request("DELETE", f"/api/user/{w.other.id}", w.owner),
    ("delete_user", 404): lambda w: w.request("DELETE", f"/api/user/{uuid.uuid4()}", w.owner),
    ("create_event", 201): lambda w: w.request("POST", "/api/events", w.owner,
                                               json=event_body()),
    ("create_event", 422): lambda w: w.request("POST", "/api/events", w.owner,
                                               json=event_body(name="")),
    ("get_event", 200): lambda w: w.request("GET", f"/api/event/{w.event_id}", w.other),
    ("get_event", 304): lambda w: w.request("GET", f"/api/event/{w.event_id}", w.other,
                                            {"If-None-Match": w.etag}),
    ("get_event", 404): lambda w: w.request("GET", f"/api/event/{uuid.uuid4()}", w.other),
    ("get_event", 410): lambda w: w.request("GET", f"/api/event/{w.deleted_id}", w.other),
    ("get_event", 422): lambda w: w.request("GET", f"/api/event/{w.event_id}", w.other,
                                            params={"as_of": "yesterday"}),
    ("get_event_ics", 200): lambda w: w.request("GET", f"/api/event/{w.event_id}.ics", w.other),
    ("get_event_ics", 304): lambda w: w.request("GET", f"/api/event/{w.event_id}.ics", w.other,
                                                {"If-None-Match": f"W/{w.etag}"}),
    ("get_event_ics", 404): lambda w: w.request("GET", f"/api/event/{uuid.uuid4()}.ics", w.other),
    ("get_event_ics", 410): lambda w: w.request("GET", f"/api/event/{w.deleted_id}.ics",
                                                w.other),
    ("event_history", 200): lambda w: w.request("GET", f"/api/event/{w.deleted_id}/history",
                                                w.other),
    ("event_history", 404): lambda w: w.request("GET", f"/api/event/{uuid.uuid4()}/history",
                                                w.other),
    ("respond_to_event", 200): lambda w: w.request(
        "POST", f"/api/event/{w.event(participants=[w.other.username])}/response", w.other,
        json={"response": "accepted"}),
    ("respond_to_event", 403): lambda w: w.request("POST", f"/api/event/{w.event_id}/response",
                                                   w.other, json={"response": "accepted"}),
    ("respond_to_event", 404): lambda w: w.request("POST", f"/api/event/{uuid.uuid4()}/response",
                                                   w.other, json={"response": "accepted"}),
    ("respond_to_event", 410): lambda w: w.request(
        "POST", f"/api/event/{w.deleted_id}/response", w.other, json={"response": "accepted"}),
    ("respond_to_event", 422): lambda w: w.request("POST", f"/api/event/{w.event_id}/response",
                                                   w.other, json={"response": "maybe"}),
    ("rsvp", 200): lambda w: w.request("GET", w.answer_link(w.invited_id)),
    ("rsvp", 400): lambda w: w.request("GET", "/rsvp/not-a-token",
                                       params={"response": "accepted"}),
    ("rsvp", 403): lambda w: w.request("GET", w.answer_link(w.event_id)),
    ("rsvp", 404): lambda w: w.request("GET", w.answer_link(str(uuid.uuid4()))),
    ("rsvp", 410): lambda w: w.request("GET", w.answer_link(w.deleted_id)),
    ("delete_event", 200): lambda w: w.request("DELETE", f"/api/event/{w.event()}", w.owner),
    ("delete_event", 400): lambda w: w.request("DELETE", f"/api/event/{w.event_id}", w.owner,
                                               {"If-Match": "three"}),
    ("delete_event", 403): lambda w: w.request("DELETE", f"/api/event/{w.event_id}", w.other),
    ("delete_event", 404): lambda w: w.request("DELETE", f"/api/event/{uuid.uuid4()}", w.owner),
    ("delete_event", 410): lambda w: w.request("DELETE", f"/api/event/{w.deleted_id}", w.owner),
    ("delete_event", 412): lambda w: w.request("DELETE", f"/api/event/{w.event_id}", w.owner,
                                               {"If-Match": '"999"'}),
    ("list_events", 200): lambda w: w.request("GET", "/api/events", w.owner,
                                              params={"limit": 1}),
    ("list_events", 422): lambda w: w.request("GET", "/api/events", w.owner,
                                              params={"limit": 0}),
    ("search_events", 200): lambda w: w.request("GET", "/api/search_event/Port", w.owner),
    ("search_events", 422): lambda w: w.request("GET", "/api/search_event/Port", w.owner,
                                                params={"limit": 1001}),
    ("event_changes", 200): lambda w: w.request("GET", "/api/events/changes", w.owner,
                                                params={"after": 0}),
    ("event_changes", 422): lambda w: w.request("GET", "/api/events/changes", w.owner,
                                                params={"after": "-1"}),
    ("freebusy", 200): lambda w: w.request("GET", "/api/freebusy", w.other, params={
        "users": f"{w.owner.username},nobody_here", "starts_after": at(hours=-1),
        "starts_before": at(days=1)}),
    ("freebusy", 422): lambda w: w.request("GET", "/api/freebusy", w.other, params={
        "users": w.owner.username, "starts_after": at(hours=-1), "starts_before": at(days=94)}),
    ("events_ics", 200): lambda w: w.request("GET", "/api/events.ics", w.owner),
    ("events_ics", 422): lambda w: w.request("GET", "/api/events.ics", w.owner,
                                             params={"starts_after": "soon"}),
    ("create_batch", 201): lambda w: w.request("POST", "/api/batch_events", w.owner,
                                               json=[event_body(), event_body()]),
    ("create_batch", 422): lambda w: w.request("POST", "/api/batch_events", w.owner,
                                               json=[event_body(location="")]),
    ("change_batch", 200): lambda w: w.request("PUT", "/api/batch_events", w.owner,
                                               json=[{"id": w.event(), **patch_body()}]),
    ("change_batch", 422): lambda w: w.request("PUT", "/api/batch_events", w.owner,
                                               json=[{"name": "no id"}]),
    ("delete_batch", 200): lambda w: w.request("DELETE", "/api/batch_events", w.owner,
                                               json=[w.event()]),
    ("delete_batch", 422): lambda w: w.request("DELETE", "/api/batch_events", w.owner,
                                               json=["not an id"]),
    ("instances", 200): lambda w: w.request(
        "GET", f"/api/event/{w.occurrence().partition('_')[0]}/instances", w.other),
    ("instances", 404): lambda w: w.request("GET", f"/api/event/{uuid.uuid4()}/instances",
                                            w.other),
    ("instances", 410): lambda w: w.request("GET", f"/api/event/{w.deleted_id}/instances",
                                            w.other),
    ("instances", 422): lambda w: w.request("GET", f"/api/event/{w.event_id}/instances",
                                            w.other, params={"cursor": "x"}),
    ("split", 201): lambda w: w.request("POST", f"/api/event/{w.occurrence()}/split", w.owner,
                                        json=patch_body()),
    ("split", 403): lambda w: w.request("POST", f"/api/event/{w.occurrence()}/split", w.other,
                                        json=patch_body()),
    ("split", 404): lambda w: w.request("POST", f"/api/event/{w.event_id}/split", w.owner,
                                        json=patch_body()),
    ("split", 409): lambda w: w.request("POST", "/api/event/{}/split".format(w.occurrence(
        starting_time=at(days=-2), end_time=at(days=-2, hours=1))), w.owner,
        json=patch_body()),
    ("split", 410): lambda w: w.request(
        "POST", f"/api/event/{w.deleted_id}_20300101T000000Z/split", w.owner, json=patch_body()),
    ("split", 412): lambda w: w.request("POST", f"/api/event/{w.occurrence()}/split", w.owner,
                                        {"If-Match": '"999"'}, json=patch_body()),
    ("split", 422): lambda w: w.request("POST", f"/api/event/{w.occurrence()}/split", w.owner,
                                        json={"name": ""}),
    ("create_feed", 201): lambda w: w.request("POST", "/api/user/me/calendar_feed", w.other),
    ("revoke_feed", 204): lambda w: w.request("DELETE", "/api/user/me/calendar_feed", w.other),
    ("calendar_feed", 200): lambda w: w.request("GET", feed(w)),
    ("calendar_feed", 304): lambda w: (lambda path: w.request("GET", path, None, feed_etag(
        w, path)))(feed(w)),
    ("calendar_feed", 404): lambda w: w.request("GET", "/calendar/unknown.ics"),
    ("operator_status", 200): lambda w: w.request("GET", "/api/operator/status", w.operator),
    ("operator_status", 403): lambda w: w.request("GET", "/api/operator/status", w.owner),
    ("replay_views", 200): lambda w: w.request("POST", "/api/operator/replay", w.operator,
                                               params={"view": "events"}),
    ("replay_views", 403): lambda w: w.request("POST", "/api/operator/replay", w.owner),
    ("replay_views", 422): lambda w: w.request("POST", "/api/operator/replay", w.operator,
                                               params={"view": "no such view"}),
}
for _method, _op in (("PUT", "change_event"), ("PATCH", "patch_event")):
    CASES.update({
        (_op, 200): lambda w, m=_method: w.request(m, f"/api/event/{w.event()}", w.owner,
                                                   json=patch_body()),
        (_op, 400): lambda w, m=_method: w.request(m, f"/api/event/{w.event_id}", w.owner,
                                                   {"If-Match": "three"}, json=patch_body()),
        (_op, 403): lambda w, m=_method: w.request(m, f"/api/event/{w.event_id}", w.other,
                                                   json=patch_body()),
        (_op, 404): lambda w, m=_method: w.request(m, f"/api/event/{uuid.uuid4()}", w.owner,
                                                   json=patch_body()),
        (_op, 409): lambda w, m=_method: w.request(m, f"/api/event/{w.started_id}", w.owner,
                                                   json=patch_body()),
        (_op, 410): lambda w, m=_method: w.request(m, f"/api/event/{w.deleted_id}", w.owner,
                                                   json=patch_body()),
        (_op, 412): lambda w, m=_method: w.request(m, f"/api/event/{w.event_id}", w.owner,
                                                   {"If-Match": '"999"'}, json=patch_body()),
        (_op, 422): lambda w, m=_method: w.request(m, f"/api/event/{w.event_id}", w.owner,
                                                   json={"name": ""}),
    })


def generic(operation_id: str, status: int, document: dict[str, Any], world: World
            ) -> httpx.Request | None:
    """The statuses any operation of a kind can answer, made the same way for each: no
    token, malformed or oversized JSON, a request line or header block over the limit."""
    method, path, op = operations(document)[operation_id]
    target = url(path, world)
    body = "requestBody" in op
    json_body = {"headers": {"Content-Type": "application/json"}} if body else {}
    if status == 401 and op["security"]:
        return world.request(method, target, json={} if body else None)
    if status == 400 and body:
        return world.request(method, target, world.owner, content=MALFORMED, **json_body)
    if status == 413 and body:
        return world.request(method, target, world.owner, content=TOO_LARGE, **json_body)
    if status == 414:
        return world.request(method, target, world.owner, params={"pad": "x" * 9000})
    if status == 431:
        return world.request(method, target, world.owner, {"X-Pad": "x" * 9000})
    return None


def documented_statuses(document: dict[str, Any]) -> list[tuple[str, int]]:
    return sorted((op_id, int(status)) for op_id, (_, _, op) in operations(document).items()
                  for status in op["responses"])


def test_every_documented_status_of_every_operation_has_a_case_here(
    document: dict[str, Any], world: World
) -> None:
    missing = [pair for pair in documented_statuses(document)
               if pair not in CASES and pair not in ELSEWHERE
               and generic(*pair, document, world) is None]
    assert missing == []
    undocumented = sorted(set(CASES) - set(documented_statuses(document)))
    assert undocumented == [], "cases for statuses the document does not declare"


def test_every_operation_and_status_answers_as_the_document_says(
    document: dict[str, Any], api: OpenAPI, world: World, http: httpx.Client
) -> None:
    """One test over every pair (a server per backend is shared): each answer must have the
    status its case provokes and pass openapi-core's validation."""
    failures = []
    for operation_id, status in documented_statuses(document):
        if (operation_id, status) in ELSEWHERE:
            continue
        case = CASES.get((operation_id, status))
        request = case(world) if case else generic(operation_id, status, document, world)
        assert request is not None, (operation_id, status)
        answer = http.send(request)
        where = f"{operation_id} {status}: {request.method} {str(request.url)[:120]}"
        if answer.status_code != status:
            failures.append(f"{where} answered {answer.status_code} {answer.text[:200]}")
            continue
        try:
            check(api, answer)
        except Exception as exc:  # openapi-core's errors: the whole chain says what differs
            failures.append(f"{where}: {exc!r} {exc.__cause__!r}")
            continue
        failures += [f"{where}: undeclared header {name}" for name in undeclared(
            document, operation_id, status, answer)]
    assert failures == [], "\n".join(failures)


def undeclared(document: dict[str, Any], operation_id: str, status: int,
               answer: httpx.Response) -> list[str]:
    declared = {name.lower() for name in operations(document)[operation_id][2]["responses"][
        str(status)].get("headers", {})}
    return [name for name in CONTRACT_HEADERS if name in answer.headers and name not in declared]


def test_too_many_failed_sign_ins_answer_429_as_documented(
    api: OpenAPI, http: httpx.Client
) -> None:
    """Apart from the rest: it may throttle sign-ins from this address for a while."""
    victim = sign_up(http, "throttled")
    answer = None
    for _ in range(30):
        answer = http.post("/api/auth/signin", json={"username": victim.username,
                                                      "password": "wrong password"})
        if answer.status_code == 429:
            break
        assert answer.status_code == 401, answer.text
    assert answer is not None and answer.status_code == 429, answer
    check(api, answer)
    assert int(answer.headers["retry-after"]) > 0
