"""Attendees' responses over real HTTP and WebSocket on both backends (SPEC §6.3): a
participant answers, the owner's sockets hear it on the event and on the feed, history and
`as_of` show the fact, GET one and lists show `attendees`, a new time resets every answer, and
whoever is no participant (the owner included) is refused."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import httpx
from icalendar import Calendar
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import (
    WAIT_SECONDS,
    Person,
    Server,
    assert_error,
    at,
    event_body,
    sign_up,
)

INVITEE = "guest.responses@example.org"


def create(http: httpx.Client, owner: Person, **fields: Any) -> dict[str, Any]:
    answer = http.post("/api/events/", json=event_body(**fields), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    event: dict[str, Any] = answer.json()["event"]
    return event


def respond(http: httpx.Client, person: Person, event_id: str, response: str) -> httpx.Response:
    return http.post(f"/api/event/{event_id}/response", json={"response": response},
                     headers=person.headers)


def attendees(event: dict[str, Any]) -> dict[str, str]:
    return {a["participant"]: a["response"] for a in event["attendees"]}


def listed(http: httpx.Client, person: Person, event_id: str, position: str) -> dict[str, Any]:
    """The event as the list shows it once the view has reached `position`."""
    answer = http.get("/api/events/", headers=person.headers,
                      params={"min_position": position, "limit": 1000})
    assert answer.status_code == 200, answer.text
    [event] = [e for e in answer.json()["events"] if e["id"] == event_id]
    return event


async def next_of(ws: ClientConnection, kind: str, event_id: str) -> dict[str, Any]:
    """The next message of `kind` about `event_id` (the feed carries every other change too)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message["type"] == kind and message.get("event_id") == event_id:
                return message


def ws_url(server: Server, path: str, token: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}?{urlencode({'token': token})}"


async def test_a_participants_answer_reaches_the_owners_sockets_and_the_history(
    server: Server, http: httpx.Client, owner: Person
) -> None:
    guest = sign_up(http, "guest")
    event = create(http, owner, participants=[guest.username, INVITEE])
    event_id = event["id"]
    assert event["attendees"] == [{"participant": guest.username, "response": "needs_action"},
                                  {"participant": INVITEE, "response": "needs_action"}]
    async with connect(ws_url(server, f"/ws/events/{event_id}", owner.access)) as on_event, \
            connect(ws_url(server, "/ws/events/", owner.access)) as feed:
        for ws in (on_event, feed):
            assert json.loads(await asyncio.wait_for(ws.recv(), WAIT_SECONDS))["type"] == "ready"
        answer = respond(http, guest, event_id, "accepted")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"event"}
        assert body["event"]["version"] == event["version"] + 1
        assert answer.headers["ETag"] == f'"{event["version"] + 1}"'
        position = int(answer.headers["X-Position"])
        # the guest sees the invitee as "invitee", never the address
        assert body["event"]["attendees"] == [
            {"participant": guest.username, "response": "accepted"},
            {"participant": "invitee", "response": "needs_action"}]
        for ws in (on_event, feed):
            message = await next_of(ws, "event.response", event_id)
            assert message["position"] == position
            assert message["version"] == event["version"] + 1
            assert message["changes"] == {"attendee": guest.username, "response": "accepted"}
            assert attendees(message["event"])[guest.username] == "accepted"
            assert message["message"] == f'Event "{event["name"]}" has a new response.'
    history = http.get(f"/api/event/{event_id}/history", headers=owner.headers).json()["history"]
    last = history[-1]
    assert (last["type"], last["by"], last["version"]) == ("Responded", guest.id,
                                                           event["version"] + 1)
    assert last["changes"] == {"attendee": guest.username, "response": "accepted"}
    got = http.get(f"/api/event/{event_id}", headers=owner.headers).json()["event"]
    assert attendees(got) == {guest.username: "accepted", INVITEE: "needs_action"}
    assert attendees(listed(http, owner, event_id, str(position))) == attendees(got)
    before = http.get(f"/api/event/{event_id}", params={"as_of": str(event["version"])},
                      headers=owner.headers).json()["event"]
    assert attendees(before)[guest.username] == "needs_action"


def test_a_new_time_resets_every_answer_and_a_new_place_keeps_them(
    http: httpx.Client, owner: Person
) -> None:
    guest, second = sign_up(http, "guest"), sign_up(http, "guest")
    event_id = create(http, owner, participants=[guest.username, second.username])["id"]
    assert respond(http, guest, event_id, "tentative").status_code == 200
    assert respond(http, second, event_id, "declined").status_code == 200
    moved = http.patch(f"/api/event/{event_id}", json={"location": "Haifa Bay"},
                       headers=owner.headers)
    assert attendees(moved.json()["event"]) == {guest.username: "tentative",
                                                second.username: "declined"}
    assert attendees(listed(http, owner, event_id, moved.headers["X-Position"])) == {
        guest.username: "tentative", second.username: "declined"}
    retimed = http.patch(f"/api/event/{event_id}", json={"end_time": at(hours=5)},
                         headers=owner.headers)
    assert retimed.status_code == 200, retimed.text
    reset = {guest.username: "needs_action", second.username: "needs_action"}
    assert attendees(retimed.json()["event"]) == reset
    assert attendees(http.get(f"/api/event/{event_id}", headers=guest.headers)
                     .json()["event"]) == reset
    assert attendees(listed(http, owner, event_id, retimed.headers["X-Position"])) == reset


def test_a_removed_participant_loses_their_answer_and_comes_back_needing_action(
    http: httpx.Client, owner: Person
) -> None:
    guest, second = sign_up(http, "guest"), sign_up(http, "guest")
    event_id = create(http, owner, participants=[guest.username, second.username])["id"]
    assert respond(http, guest, event_id, "accepted").status_code == 200
    assert respond(http, second, event_id, "accepted").status_code == 200
    path = f"/api/event/{event_id}"
    http.patch(path, json={"participants": [second.username]}, headers=owner.headers)
    assert_error(respond(http, guest, event_id, "declined"), 403, "forbidden")
    back = http.patch(path, json={"participants": [second.username, guest.username]},
                      headers=owner.headers)
    assert back.json()["event"]["attendees"] == [
        {"participant": second.username, "response": "accepted"},
        {"participant": guest.username, "response": "needs_action"}]
    assert attendees(listed(http, owner, event_id, back.headers["X-Position"])) == {
        second.username: "accepted", guest.username: "needs_action"}


def test_the_same_answer_twice_records_nothing(http: httpx.Client, owner: Person) -> None:
    guest = sign_up(http, "guest")
    event_id = create(http, owner, participants=[guest.username])["id"]
    first = respond(http, guest, event_id, "declined")
    again = respond(http, guest, event_id, "declined")
    assert again.status_code == 200, again.text
    assert "X-Position" not in again.headers
    assert again.json()["event"]["version"] == first.json()["event"]["version"]
    history = http.get(f"/api/event/{event_id}/history", headers=owner.headers).json()["history"]
    assert [entry["type"] for entry in history] == ["Created", "Responded"]


def test_an_event_that_has_started_can_still_be_answered(
    http: httpx.Client, owner: Person
) -> None:
    guest = sign_up(http, "guest")
    event_id = create(http, owner, participants=[guest.username],
                      starting_time=at(hours=-1), end_time=at(hours=1))["id"]
    answer = respond(http, guest, event_id, "accepted")
    assert answer.status_code == 200, answer.text
    assert attendees(answer.json()["event"]) == {guest.username: "accepted"}


def test_only_participants_may_answer_and_bad_answers_change_nothing(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    guest = sign_up(http, "guest")
    event = create(http, owner, participants=[guest.username])
    event_id = event["id"]
    assert_error(respond(http, other, event_id, "accepted"), 403, "forbidden")
    assert_error(respond(http, owner, event_id, "accepted"), 403, "forbidden")
    assert_error(respond(http, guest, event_id, "needs_action"), 422)
    assert_error(respond(http, guest, event_id, "maybe"), 422)
    assert_error(http.post(f"/api/event/{event_id}/response", json={}, headers=guest.headers),
                 422)
    assert_error(http.post(f"/api/event/{event_id}/response", json={"response": "accepted"}),
                 401)
    assert_error(respond(http, guest, "00000000-0000-0000-0000-000000000000", "accepted"), 404)
    got = http.get(f"/api/event/{event_id}", headers=owner.headers).json()["event"]
    assert got["version"] == event["version"]
    assert http.delete(f"/api/event/{event_id}", headers=owner.headers).status_code == 200
    assert_error(respond(http, guest, event_id, "accepted"), 410, "gone")


def test_an_owner_who_is_a_participant_may_answer(http: httpx.Client) -> None:
    host = sign_up(http, "host")
    event_id = create(http, host, participants=[host.username])["id"]
    answer = respond(http, host, event_id, "accepted")
    assert answer.status_code == 200, answer.text
    assert attendees(answer.json()["event"]) == {host.username: "accepted"}


def exported_attendees(http: httpx.Client, viewer: Person, path: str,
                       event_id: str) -> tuple[str, dict[str, tuple[str, str]]]:
    """The ORGANIZER's CN and each ATTENDEE's (address, PARTSTAT) by CN (or by address, where
    it has none), from an export read back by the icalendar library."""
    answer = http.get(path, headers=viewer.headers)
    assert answer.status_code == 200, answer.text
    [vevent] = [item for item in Calendar.from_ical(answer.text).walk("VEVENT")
                if str(item["UID"]) == event_id]
    attendees = vevent.get("ATTENDEE", [])
    attendees = attendees if isinstance(attendees, list) else [attendees]
    by_name = {str(a.params.get("CN", a)): (str(a), str(a.params["PARTSTAT"]))
               for a in attendees}
    return str(vevent["ORGANIZER"].params["CN"]), by_name


def test_exports_carry_each_attendees_answer_as_partstat_without_others_addresses(
    http: httpx.Client, owner: Person
) -> None:
    guest, second = sign_up(http, "guest"), sign_up(http, "guest")
    event = create(http, owner, participants=[guest.username, second.username, INVITEE])
    assert respond(http, guest, event["id"], "accepted").status_code == 200
    answered = respond(http, second, event["id"], "tentative")
    one = f"/api/event/{event['id']}.ics"
    organiser, seen = exported_attendees(http, owner, one, event["id"])
    assert organiser == owner.username
    assert seen[guest.username] == (f"urn:uuid:{guest.id}", "ACCEPTED")
    assert seen[second.username] == (f"urn:uuid:{second.id}", "TENTATIVE")
    assert seen[f"mailto:{INVITEE}"] == (f"mailto:{INVITEE}", "NEEDS-ACTION")  # the owner
    _, to_guest = exported_attendees(http, guest, one, event["id"])
    assert to_guest[guest.username] == (f"urn:uuid:{guest.id}", "ACCEPTED")
    invitee_address, invitee_answer = to_guest["invitee"]
    assert invitee_address.startswith("urn:uuid:") and invitee_answer == "NEEDS-ACTION"
    listed(http, owner, event["id"], answered.headers["X-Position"])
    page = f"/api/events.ics?limit=1000&starts_after={event['starting_time']}"
    assert exported_attendees(http, guest, page, event["id"]) == (organiser, to_guest)
    export = http.get(one, headers=guest.headers).text
    assert not [address for address in (INVITEE, owner.email, guest.email, second.email)
                if address in export]
