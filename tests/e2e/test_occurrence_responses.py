"""Answers to one occurrence of a series over real HTTP and WebSocket on both backends (SPEC
§6.3: "on an occurrence id it answers for that occurrence only"): the occurrence shows its own
answer, the others the series'; a move of the occurrence resets it; history, sockets and
replay name the occurrence."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
from websockets.sync.client import connect

from tests.conftest import Person, Server, Spawn, assert_error, sign_up
from tests.e2e.test_freebusy import busy_becomes, text
from tests.e2e.test_lists import caught_up, snapshot
from tests.e2e.test_recurrence import (
    FIRST,
    WEEKLY,
    instances,
    key,
    occurrence_rows,
    replay,
    series,
)
from tests.e2e.test_responses import attendees, listed, respond
from tests.e2e.test_websockets import ws_url

WEEK = timedelta(weeks=1)


def answers_of(http: httpx.Client, who: Person, event_id: str, person: str) -> list[str]:
    """`person`'s answer on each occurrence of the series, in order."""
    page = instances(http, who, event_id, starts_after=FIRST.isoformat())
    return [attendees(one)[person] for one in page["events"]]


def listed_answers(http: httpx.Client, who: Person, event_id: str, person: str,
                   answer: httpx.Response) -> list[str]:
    """`person`'s answer on each occurrence of the series as a single_events list shows them
    once the view has taken `answer`'s write."""
    page = http.get("/api/events/", headers=who.headers, params={
        "single_events": "true", "starts_after": FIRST.isoformat(), "limit": 1000,
        "min_position": answer.headers["X-Position"]})
    assert page.status_code == 200, page.text
    return [attendees(one)[person] for one in page.json()["events"]
            if one.get("recurring_event_id") == event_id]


def occurrence_id(event: dict[str, Any], weeks: int) -> str:
    return f"{event['id']}_{key(FIRST + weeks * WEEK)}"


def test_an_occurrence_keeps_its_own_answer_over_the_series_until_it_is_moved(
        http: httpx.Client, owner: Person) -> None:
    guest = sign_up(http, "guest")
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=4", participants=[guest.username])
    second = occurrence_id(created, 1)

    answer = respond(http, guest, second, "accepted")
    assert answer.status_code == 200, answer.text
    shown = answer.json()["event"]
    assert (shown["id"], shown["recurring_event_id"]) == (second, created["id"])
    assert attendees(shown) == {guest.username: "accepted"}
    assert answer.headers["ETag"] == f'"{created["version"] + 1}"'
    assert answers_of(http, owner, created["id"], guest.username) == [
        "needs_action", "accepted", "needs_action", "needs_action"]
    one = http.get(f"/api/event/{second}", headers=guest.headers).json()["event"]
    assert attendees(one) == {guest.username: "accepted"}
    # the series itself (GET and the list's row) shows the series' answer alone
    whole = http.get(f"/api/event/{created['id']}", headers=owner.headers).json()["event"]
    assert attendees(whole) == {guest.username: "needs_action"}
    assert attendees(listed(http, owner, created["id"], answer.headers["X-Position"])) == {
        guest.username: "needs_action"}
    again = respond(http, guest, second, "accepted")
    assert again.status_code == 200 and "X-Position" not in again.headers

    declined = respond(http, guest, created["id"], "declined")
    assert declined.status_code == 200, declined.text
    assert attendees(declined.json()["event"]) == {guest.username: "declined"}
    assert answers_of(http, owner, created["id"], guest.username) == [
        "declined", "accepted", "declined", "declined"]
    assert listed_answers(http, guest, created["id"], guest.username, declined) == [
        "declined", "accepted", "declined", "declined"]

    moved = http.patch(f"/api/event/{second}", headers=owner.headers, json={
        "starting_time": (FIRST + WEEK + timedelta(hours=2)).isoformat(),
        "end_time": (FIRST + WEEK + timedelta(hours=3)).isoformat()})
    assert moved.status_code == 200, moved.text
    assert attendees(moved.json()["event"]) == {guest.username: "needs_action"}
    assert answers_of(http, owner, created["id"], guest.username) == [
        "declined", "needs_action", "declined", "declined"]
    assert listed_answers(http, owner, created["id"], guest.username, moved) == [
        "declined", "needs_action", "declined", "declined"]

    history = http.get(f"/api/event/{created['id']}/history",
                       headers=owner.headers).json()["history"]
    answered = [(entry["changes"]["response"], entry.get("instance_id"))
                for entry in history if entry["type"] == "Responded"]
    assert answered == [("accepted", second), ("declined", None)]
    assert all(entry["by"] == guest.id for entry in history if entry["type"] == "Responded")
    before = http.get(f"/api/event/{second}", params={"as_of": str(created["version"])},
                      headers=owner.headers).json()["event"]
    assert attendees(before) == {guest.username: "needs_action"}


def test_an_occurrence_answer_is_refused_where_there_is_none_to_give(
        http: httpx.Client, owner: Person, other: Person) -> None:
    guest = sign_up(http, "guest")
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=3", participants=[guest.username])
    cancelled = occurrence_id(created, 2)
    assert http.delete(f"/api/event/{cancelled}", headers=owner.headers).status_code == 200

    off_rule = f"{created['id']}_{key(FIRST + timedelta(days=1))}"
    assert_error(respond(http, guest, off_rule, "accepted"), 404, "not_found")
    assert_error(respond(http, guest, occurrence_id(created, 5), "accepted"), 404, "not_found")
    assert_error(respond(http, guest, f"{created['id']}_garbage", "accepted"), 404, "not_found")
    assert_error(respond(http, guest, cancelled, "accepted"), 410)
    for stranger in (other, owner):
        assert_error(respond(http, stranger, occurrence_id(created, 1), "accepted"), 403)
    assert_error(respond(http, guest, occurrence_id(created, 1), "maybe"), 422)
    # none of them recorded anything
    assert http.get(f"/api/event/{created['id']}", headers=owner.headers
                    ).json()["event"]["version"] == created["version"] + 1


def test_an_occurrences_answer_reaches_sockets_naming_it(
        server: Server, http: httpx.Client, owner: Person) -> None:
    guest = sign_up(http, "guest")
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=3", participants=[guest.username])
    second = occurrence_id(created, 1)
    answer = respond(http, guest, second, "tentative")
    assert answer.status_code == 200, answer.text
    after = str(int(answer.headers["X-Position"]) - 1)

    with connect(ws_url(server, f"/ws/events/{created['id']}", token=owner.access,
                        after=after), open_timeout=10) as ws:
        message = next(m for m in (json.loads(ws.recv(timeout=10)) for _ in range(2))
                       if m["type"] != "ready")

    assert (message["type"], message["instance_id"], message["event_id"]) == (
        "event.response", second, created["id"])
    assert message["event"]["id"] == second
    assert attendees(message["event"]) == {guest.username: "tentative"}
    assert message["changes"] == {"attendee": guest.username, "response": "tentative"}


def test_a_replay_of_occurrence_answers_equals_the_live_views(
        server: Server, http: httpx.Client, owner: Person, spawn: Spawn) -> None:
    guest = sign_up(http, "guest")
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=5", participants=[guest.username])
    for weeks, response in ((1, "accepted"), (2, "tentative"), (3, "accepted")):
        assert respond(http, guest, occurrence_id(created, weeks), response).status_code == 200
    assert respond(http, guest, created["id"], "declined").status_code == 200
    # every other week: the answers of weeks 1 and 3 no longer stand
    changed = http.patch(f"/api/event/{created['id']}", headers=owner.headers,
                         json={"recurrence": [f"{WEEKLY};INTERVAL=2;COUNT=3"]})
    assert changed.status_code == 200, changed.text
    before = answers_of(http, owner, created["id"], guest.username)
    assert before == ["declined", "tentative", "declined"]
    assert listed_answers(http, owner, created["id"], guest.username, changed) == before

    caught_up(http)
    live, rows = snapshot(server), occurrence_rows(server)
    replay(server, spawn)

    assert snapshot(server) == live
    assert occurrence_rows(server) == rows
    assert answers_of(http, owner, created["id"], guest.username) == before
    assert listed_answers(http, owner, created["id"], guest.username, changed) == before


def test_free_busy_counts_an_occurrence_accepted_for_itself(
        http: httpx.Client, owner: Person) -> None:
    guest = sign_up(http, "guest")
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=3", participants=[guest.username])
    window = (FIRST - timedelta(hours=1), FIRST + 3 * WEEK)
    second = FIRST + WEEK
    assert respond(http, guest, occurrence_id(created, 1), "accepted").status_code == 200
    busy_becomes(http, guest, guest.username, *window,
                 [{"start": text(second), "end": text(second + timedelta(hours=1))}])
    assert respond(http, guest, created["id"], "accepted").status_code == 200
    assert respond(http, guest, occurrence_id(created, 2), "declined").status_code == 200
    busy_becomes(http, guest, guest.username, *window,
                 [{"start": text(start), "end": text(start + timedelta(hours=1))}
                  for start in (FIRST, second)])
