"""The console at /console, driven in headless Chromium (Debian's, through Playwright) against a
real server on each backend: signing in with the keyboard, searching, an event's trail and a
past version on the slider, a change made by another client arriving in the feed, the feed
resuming with ?after= after a pause and after the server side drops it, and an operator
seeing the views' lag and replaying them. Screenshots are kept in test-artifacts/console/
(ALPHABET_TEST_ARTIFACTS moves it)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import ROOT, Backend, Person, Server, event_body, sign_up
from tests.e2e.browser import chromium

if TYPE_CHECKING:  # Playwright itself is imported only where a browser exists
    from playwright.sync_api import Page, WebSocketRoute

ARTIFACTS = Path(os.environ.get("ALPHABET_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "console"
BOSS = f"boss_{uuid.uuid4().hex[:8]}"
WAIT = 60_000  # ms: a ceiling on a busy machine, not an expectation
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("server") / "data", backend=backend,
                     env={"ALPHABET_OPERATORS": BOSS}).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def boss(http: httpx.Client) -> Person:
    answer = http.post("/api/auth/signup/", json={
        "username": BOSS, "email": f"{BOSS}@example.com", "password": "correct horse battery"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Person(body["user"]["id"], BOSS, f"{BOSS}@example.com", "correct horse battery",
                  body["access"], body["refresh"])


def shot(page: Page, name: str, backend: Backend) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}-{backend.kind}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in_with_the_keyboard(page: Page, who: Person) -> None:
    """Labels lead to the fields; Tab moves on; Enter submits."""
    page.get_by_label("Username", exact=True).focus()
    page.keyboard.type(who.username)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "signin-password"
    page.keyboard.type(who.password)
    page.keyboard.press("Enter")
    page.get_by_text(f"Signed in as {who.username}").wait_for(timeout=WAIT)


def feed_positions(page: Page) -> list[int]:
    return [int(p) for p in page.locator("#feed li").evaluate_all(
        "items => items.map(item => item.dataset.position)")]


def test_a_person_signs_in_searches_reads_the_past_and_follows_the_live_feed(
    server: Server, http: httpx.Client, backend: Backend
) -> None:
    owner = sign_up(http, "owner")
    made = http.post("/api/events", headers=owner.headers, json=event_body(
        name="Standup", location="Tel Aviv Port"))
    assert made.status_code == 201, made.text
    event_id = made.json()["event"]["id"]
    renamed = http.put(f"/api/event/{event_id}", headers=owner.headers,
                       json={"name": "Harbour standup"})
    assert renamed.status_code == 200, renamed.text
    elsewhere = http.post("/api/events", headers=owner.headers, json=event_body(
        name="Budget review", location="Haifa"))
    assert elsewhere.status_code == 201, elsewhere.text
    asked: list[str] = []
    sockets: list[WebSocketRoute] = []

    def through(route: WebSocketRoute) -> None:
        """Every socket of the page, passed on to the server, kept so the test can drop one."""
        route.connect_to_server()
        sockets.append(route)

    with chromium() as browser:
        page = browser.new_page()
        page.on("requestfinished", lambda request: asked.append(request.url))
        page.route_web_socket(re.compile(r".*/ws/events.*"), through)
        page.goto(f"{server.url}/console")
        sign_in_with_the_keyboard(page, owner)
        assert page.locator("#operator-pane").is_hidden()  # not an operator

        # search by location, in another case and without the hyphen
        page.get_by_role("button", name="Budget review").wait_for(timeout=WAIT)  # all, first
        page.get_by_label("Location has the words").fill("TEL aviv")
        page.get_by_role("button", name="Search").click()
        # the first page (every event) gives way to the search's
        page.get_by_role("button", name="Budget review").wait_for(state="detached",
                                                                  timeout=WAIT)
        page.get_by_role("button", name="Harbour standup").wait_for(timeout=WAIT)

        # one event: now, then as it was at version 1 (the slider moved with the keyboard)
        page.get_by_role("button", name="Harbour standup").click()
        slider = page.get_by_label("Version", exact=True)
        # (no wait_for_function: the page's policy forbids the eval it polls with)
        page.get_by_text("Version 2 of 2 (now)").wait_for(timeout=WAIT)
        assert slider.get_attribute("max") == "2"
        assert slider.input_value() == "2"
        fields = page.locator("#event-fields")
        assert "Harbour standup" in fields.inner_text()
        assert page.locator("#history li").count() == 2
        page.get_by_text(f"v2 Updated by {owner.username}").wait_for(timeout=WAIT)
        slider.focus()
        page.keyboard.press("ArrowLeft")
        page.get_by_text("Version 1 of 2, as it was on").wait_for(timeout=WAIT)
        assert "Standup" in fields.inner_text()
        assert "Harbour standup" not in fields.inner_text()
        assert slider.get_attribute("aria-valuetext") == "version 1 of 2"
        shot(page, "event-as-of", backend)

        # another client's change arrives in the feed
        page.get_by_text("Live from position").wait_for(timeout=WAIT)
        assert page.locator("#feed").get_attribute("aria-live") == "polite"
        moved = http.put(f"/api/event/{event_id}", headers=owner.headers,
                         json={"location": "Jaffa"})
        assert moved.status_code == 200, moved.text
        page.locator("#feed li", has_text='Event "Harbour standup" has been updated.').wait_for(
            timeout=WAIT)
        # the event on show grows a version; the reader stays on the one they chose
        page.get_by_text("Version 1 of 3, as it was on").wait_for(timeout=WAIT)
        assert "Standup" in fields.inner_text()
        seen = int(moved.headers["x-position"])
        assert feed_positions(page) == [seen]

        # paused, a change is made meanwhile; resumed, it arrives: nothing is missed
        page.get_by_role("button", name="Pause the feed").click()
        page.get_by_text(f"Paused after position {seen}.").wait_for(timeout=WAIT)
        missed = http.put(f"/api/event/{event_id}", headers=owner.headers,
                          json={"name": "Made while paused"})
        assert missed.status_code == 200, missed.text
        page.get_by_role("button", name="Resume the feed").click()
        page.locator("#feed li", has_text='"Made while paused" has been updated').wait_for(
            timeout=WAIT)
        page.get_by_text(f"Reconnected: resumed after position {seen}.").wait_for(timeout=WAIT)
        assert parse_qs(urlsplit(sockets[-1].url).query)["after"] == [str(seen)]
        first, seen = seen, int(missed.headers["x-position"])
        assert feed_positions(page) == [seen, first]

        # the connection dropped from the server's side: the page reconnects by itself with
        # ?after= its last position, and what comes next arrives once
        dropped = len(sockets)
        sockets[-1].close(code=1012, reason="restarting")
        page.get_by_text(f"Reconnected: resumed after position {seen}.").wait_for(timeout=WAIT)
        assert len(sockets) == dropped + 1
        assert parse_qs(urlsplit(sockets[-1].url).query)["after"] == [str(seen)]
        last = http.delete(f"/api/event/{elsewhere.json()['event']['id']}",
                           headers=owner.headers)
        assert last.status_code == 200, last.text
        page.locator("#feed li", has_text='Event "Budget review" has been deleted.').wait_for(
            timeout=WAIT)
        positions = feed_positions(page)
        assert positions == sorted(set(positions), reverse=True)  # none twice, in log order
        assert positions[0] == int(last.headers["x-position"])
        shot(page, "feed", backend)

    own = urlsplit(server.url).netloc
    assert [url for url in asked if urlsplit(url).netloc != own] == []  # no CDN, nothing else
    assert any(url.endswith("/console/assets/console.js") for url in asked)


def test_an_operator_sees_the_views_lag_replays_them_and_deletes_someone_elses_event(
    server: Server, http: httpx.Client, boss: Person, backend: Backend
) -> None:
    owner = sign_up(http, "owner")
    made = http.post("/api/events", headers=owner.headers, json=event_body(name="Not theirs"))
    assert made.status_code == 201, made.text
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{server.url}/console")
        sign_in_with_the_keyboard(page, boss)
        lag = page.locator("#lag tr")
        lag.first.wait_for(timeout=WAIT)
        assert sorted(lag.evaluate_all("rows => rows.map(row => row.dataset.view)")) == [
            "events", "mail", "reminders"]
        head = http.get("/readyz").json()["position"]
        page.get_by_text(re.compile(r"The event log is at position \d+\.")).wait_for(
            timeout=WAIT)

        page.get_by_role("button", name="Replay the views").click()

        done = page.get_by_text(re.compile(r"Replayed: events to position \d+"))
        done.wait_for(timeout=WAIT)
        rebuilt = int(re.findall(r"events to position (\d+)", done.inner_text())[0])
        assert rebuilt >= head
        shot(page, "operator", backend)

        page.get_by_label("Name has the words").fill("not theirs")
        page.get_by_role("button", name="Search").click()
        page.get_by_role("button", name="Not theirs").click()
        # The feed's message for the deletion comes after the answer (the feed is paused till
        # then, as a loaded machine's follower is late): the refresh it makes keeps the note.
        page.get_by_role("button", name="Pause the feed").click()
        page.get_by_text(re.compile(r"Paused after position \d+\.")).wait_for(timeout=WAIT)
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete this event").click()
        page.get_by_text(f"v2 Deleted by {boss.username}").wait_for(timeout=WAIT)
        note = page.locator("#event-note")
        page.get_by_text('Event "Not theirs" deleted').wait_for(timeout=WAIT)
        page.get_by_role("button", name="Resume the feed").click()
        page.locator("#feed li", has_text='Event "Not theirs" has been deleted.').wait_for(
            timeout=WAIT)
        assert note.inner_text() == 'Event "Not theirs" deleted'
    gone = http.get(f"/api/event/{made.json()['event']['id']}", headers=owner.headers)
    assert gone.status_code == 410


def test_the_console_is_readable_on_a_phone(server: Server, http: httpx.Client,
                                            backend: Backend) -> None:
    someone = sign_up(http, "phone")
    with chromium() as browser:
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                      device_scale_factor=2)
        page = context.new_page()
        page.goto(f"{server.url}/console")
        sign_in_with_the_keyboard(page, someone)
        page.get_by_text("Live from position").wait_for(timeout=WAIT)
        # one column, nothing wider than the screen (no sideways scrolling)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        events = page.locator("#events-pane").bounding_box()
        feed = page.locator("#feed-pane").bounding_box()
        assert events is not None and feed is not None
        assert feed["y"] >= events["y"] + events["height"]  # stacked, not side by side
        shot(page, "phone", backend)
        context.close()


def test_the_console_is_served_with_its_files_and_a_policy_that_keeps_other_sites_out(
    http: httpx.Client
) -> None:
    page = http.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset, media in (("console.js", "javascript"), ("console.css", "text/css")):
        answer = http.get(f"/console/assets/{asset}")
        assert answer.status_code == 200, asset
        assert media in answer.headers["content-type"]
    assert http.get("/console/assets/nothing.js").status_code == 404
    assert "/console" not in http.get("/docs/openapi.json").json()["paths"]
