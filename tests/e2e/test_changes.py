"""Incremental sync over real HTTP (SPEC §6.5): GET /api/events/changes?after=&limit= reads the
event store's log in order, with the positions of the writes' X-Position and of a socket's
?after= resume, GET one's visibility, paging that never loops nor skips, and 422s for bad
numbers. Tests here run in order on one server per backend and count on no other writes
happening in between (each module has a store of its own)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import (
    BACKENDS,
    WAIT_SECONDS,
    Person,
    Server,
    assert_error,
    at,
    event_body,
    eventually,
    serving,
    sign_up,
)

CHANGES = "/api/events/changes"
CHANGE_KEYS = {"position", "event_id", "type", "version", "event"}
BEYOND = 10**15


def page(http: httpx.Client, who: Person, **params: Any) -> dict[str, Any]:
    answer = http.get(CHANGES, params=params, headers=who.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) == {"changes", "next_after"}, body
    # instance_id only where a change is about one occurrence of a series
    assert all(set(change) - {"instance_id"} == CHANGE_KEYS for change in body["changes"]), body
    return body


def sync(http: httpx.Client, who: Person, after: int, limit: int = 100
         ) -> tuple[list[dict[str, Any]], int]:
    """Every change after `after`, page by page as a client walks them, and where to go on
    from: stops at the first empty page, failing if a page does not move forward."""
    found: list[dict[str, Any]] = []
    while True:
        body = page(http, who, after=after, limit=limit)
        if not body["changes"]:
            return found, body["next_after"]
        assert len(body["changes"]) <= limit
        assert body["next_after"] > after, body
        found += body["changes"]
        after = body["next_after"]


def position_of(answer: httpx.Response) -> int:
    return int(answer.headers["X-Position"])


def create(http: httpx.Client, owner: Person, **overrides: Any) -> tuple[dict[str, Any], int]:
    answer = http.post("/api/events/", json=event_body(**overrides), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    return answer.json()["event"], position_of(answer)


def update(http: httpx.Client, owner: Person, event_id: str, **fields: Any) -> int:
    answer = http.patch(f"/api/event/{event_id}", json=fields, headers=owner.headers)
    assert answer.status_code == 200, answer.text
    return position_of(answer)


def delete(http: httpx.Client, owner: Person, event_id: str) -> int:
    answer = http.delete(f"/api/event/{event_id}", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    return position_of(answer)


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def test_a_client_back_online_receives_exactly_the_changes_it_missed_in_log_order(
    http: httpx.Client, owner: Person, other: Person,
) -> None:
    kept, _ = create(http, owner, name=unique("Kept"))
    _, after = sync(http, other, 0)
    # offline: a creation, an update and a deletion
    made, created_at = create(http, owner, name=unique("Made while away"))
    updated_at = update(http, owner, kept["id"], location="Acre")
    deleted_at = delete(http, owner, made["id"])
    missed, next_after = sync(http, other, after)
    assert [c["position"] for c in missed] == [created_at, updated_at, deleted_at]
    assert [(c["type"], c["event_id"], c["version"]) for c in missed] == [
        ("event.created", made["id"], 1), ("event.updated", kept["id"], 2),
        ("event.deleted", made["id"], 2)]
    assert missed[0]["event"]["name"] == made["name"]
    assert missed[1]["event"]["location"] == "Acre"
    assert missed[1]["event"]["version"] == 2
    assert missed[2]["event"] is None
    assert next_after == deleted_at
    assert page(http, other, after=next_after) == {"changes": [], "next_after": next_after}


def test_limit_one_walks_the_changes_one_by_one(
    http: httpx.Client, owner: Person, other: Person,
) -> None:
    _, after = sync(http, other, 0)
    event, first = create(http, owner, name=unique("Paged"))
    positions = [first, update(http, owner, event["id"], name=unique("Paged again")),
                 delete(http, owner, event["id"])]
    walked = []
    for position in positions:
        body = page(http, other, after=after, limit=1)
        assert [c["position"] for c in body["changes"]] == [position]
        assert body["next_after"] == position
        walked.append(body["changes"][0]["type"])
        after = body["next_after"]
    assert walked == ["event.created", "event.updated", "event.deleted"]
    assert page(http, other, after=after, limit=1) == {"changes": [], "next_after": after}


def test_facts_about_no_event_are_read_past_without_looping_or_skipping_a_change(
    http: httpx.Client, owner: Person, other: Person,
) -> None:
    """Sign-ups and ownership facts are no change of an event: a page of only those answers
    no change with next_after past them, and the event after them is not skipped."""
    _, after = create(http, owner, name=unique("Before the sign-ups"))
    for _ in range(3):
        sign_up(http, "quiet")
    quiet = page(http, other, after=after, limit=1)
    assert quiet["changes"] == []
    assert quiet["next_after"] > after
    # a creation's own ownership fact comes before it; a limit of one still finds the event
    event, created_at = create(http, owner, name=unique("After the sign-ups"))
    for start in (after, quiet["next_after"]):
        body = page(http, other, after=start, limit=1)
        assert [(c["position"], c["event_id"]) for c in body["changes"]] == [
            (created_at, event["id"])]
        assert body["next_after"] == created_at


def test_after_beyond_the_head_answers_no_changes_and_the_head(
    http: httpx.Client, owner: Person, other: Person,
) -> None:
    _, head = create(http, owner, name=unique("At the head"))
    assert page(http, other, after=BEYOND) == {"changes": [], "next_after": head}
    assert page(http, other, after=head) == {"changes": [], "next_after": head}


def test_after_zero_starts_at_the_beginning_of_the_log_and_is_the_default(
    http: httpx.Client, owner: Person, other: Person,
) -> None:
    everything, head = sync(http, other, 0, limit=1000)
    positions = [c["position"] for c in everything]
    assert positions == sorted(set(positions))
    # the store is this module's: its first change is the first event created here
    assert everything[0]["type"] == "event.created"
    assert everything[0]["event"]["name"].startswith("Kept ")
    assert page(http, other) == page(http, other, after=0)
    assert page(http, other)["changes"] == everything[:100]
    assert head == page(http, other, after=BEYOND)["next_after"]


@pytest.mark.parametrize(("name", "value"), [
    ("after", "-1"), ("after", "abc"), ("after", "1.5"), ("after", "١٢"),
    ("after", str(2**63)), ("limit", "0"), ("limit", "1001"), ("limit", "ten"),
    ("limit", "-5"),
])
def test_an_after_or_limit_that_is_not_a_whole_number_in_range_is_a_422_naming_it(
    http: httpx.Client, other: Person, name: str, value: str,
) -> None:
    error = assert_error(http.get(CHANGES, params={name: value}, headers=other.headers), 422,
                         "invalid_fields")
    assert list(error["fields"]) == [name]


def test_the_owner_sees_invitees_addresses_and_everyone_else_sees_invitee(
    http: httpx.Client, owner: Person, other: Person,
) -> None:
    guest = f"guest.{uuid.uuid4().hex[:8]}@example.com"
    event, created_at = create(http, owner, name=unique("Invited"),
                               participants=[other.username, guest])
    update(http, owner, event["id"], location="Haifa")
    seen = {who.username: sync(http, who, created_at - 1)[0] for who in (owner, other)}
    assert [c["event"]["participants"] for c in seen[owner.username]] == \
        [[other.username, guest]] * 2
    assert [c["event"]["participants"] for c in seen[other.username]] == \
        [[other.username, "invitee"]] * 2
    assert guest not in json.dumps(seen[other.username])
    shown = http.get(f"/api/event/{event['id']}", headers=other.headers).json()["event"]
    assert seen[other.username][-1]["event"] == shown


def test_changes_without_a_token_are_refused_with_401(http: httpx.Client) -> None:
    assert_error(http.get(CHANGES), 401)
    assert_error(http.get(CHANGES, headers={"Authorization": "Bearer nonsense"}), 401)


async def socket_replay(server: Server, who: Person, after: int, until: int
                        ) -> list[dict[str, Any]]:
    """What a feed socket resuming at `after` delivers, up to position `until`."""
    url = f"ws://127.0.0.1:{server.port}/ws/events/?token={who.access}&after={after}"
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT_SECONDS), connect(url) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        while not found or found[-1]["position"] < until:
            found.append(json.loads(await ws.recv()))
    return found


async def test_the_changes_are_what_a_socket_resuming_at_the_same_position_delivers(
    server: Server, http: httpx.Client, owner: Person, other: Person,
) -> None:
    _, after = sync(http, other, 0)
    kept, _ = create(http, owner, name=unique("Socket"))
    gone, _ = create(http, owner, name=unique("Socket gone"))
    update(http, owner, kept["id"], name=unique("Socket renamed"))
    sign_up(http, "between")
    until = delete(http, owner, gone["id"])
    changes, _ = sync(http, other, after, limit=2)
    messages = await socket_replay(server, other, after, until)
    assert [(c["position"], c["type"], c["event_id"], c["version"]) for c in changes] == \
        [(m["position"], m["type"], m["event_id"], m["version"]) for m in messages]
    assert [c["event"] for c in changes] == [m["event"] for m in messages[:-1]] + [None]


def test_a_participants_answer_is_a_change_of_the_kind_sockets_name_it(
    http: httpx.Client, owner: Person, other: Person,
) -> None:
    event, created_at = create(http, owner, name=unique("Answered"),
                               participants=[other.username])
    answer = http.post(f"/api/event/{event['id']}/response", headers=other.headers,
                       json={"response": "accepted"})
    assert answer.status_code == 200, answer.text
    answered_at = position_of(answer)
    changes, _ = sync(http, owner, created_at)
    assert [(c["position"], c["type"], c["event_id"]) for c in changes] == [
        (answered_at, "event.response", event["id"])]
    assert changes[0]["event"] == answer.json()["event"]


async def test_an_occurrences_own_change_and_cancellation_name_it_as_its_socket_messages_do(
    server: Server, http: httpx.Client, owner: Person, other: Person,
) -> None:
    first = (datetime.now(UTC) + timedelta(days=7)).replace(hour=10, minute=0, second=0,
                                                           microsecond=0)
    series, created_at = create(
        http, owner, name=unique("Weekly"), starting_time=first.isoformat(),
        end_time=(first + timedelta(hours=1)).isoformat(), recurrence=["RRULE:FREQ=DAILY;COUNT=5"])
    second, third = (f"{series['id']}_{(first + timedelta(days=n)).strftime('%Y%m%dT%H%M%SZ')}"
                     for n in (1, 2))
    moved_at = update(http, owner, second, location="Elsewhere")
    cancelled_at = delete(http, owner, third)
    changes, _ = sync(http, other, created_at)
    assert [(c["position"], c["type"], c.get("instance_id")) for c in changes] == [
        (moved_at, "event.updated", second), (cancelled_at, "event.deleted", third)]
    assert changes[0]["event"]["id"] == second
    assert changes[0]["event"]["location"] == "Elsewhere"
    assert changes[1]["event"] is None
    messages = await socket_replay(server, other, created_at, cancelled_at)
    assert [(m["position"], m["type"], m["instance_id"], m["event_id"]) for m in messages] == [
        (c["position"], c["type"], c["instance_id"], c["event_id"]) for c in changes]
    assert changes[0]["event"] == messages[0]["event"]


def test_a_reminder_that_falls_due_is_a_change_with_its_position(
    http: httpx.Client, owner: Person, other: Person,
) -> None:
    """Last in the module: the reminder falls due at some moment after the creation."""
    event, created_at = create(http, owner, name=unique("Soon"), starting_time=at(minutes=10),
                               end_time=at(minutes=40))

    def reminded() -> list[dict[str, Any]]:
        return [c for c in sync(http, other, created_at)[0] if c["type"] == "event.reminder"]

    found = eventually(reminded, "no event.reminder change")
    assert [(c["event_id"], c["version"]) for c in found] == [(event["id"], 1)]
    assert found[0]["position"] > created_at
    assert found[0]["event"]["name"] == event["name"]


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_page_reads_at_most_the_sync_read_limit_and_the_client_still_gets_every_change_once(
    kind: str, tmp_path: Path
) -> None:
    """With ALPHABET_SYNC_READ_LIMIT=3, a run of sign-ups longer than that is read a few
    positions a request: empty pages that move on, never one that reads to the head, and a
    client walking until next_after stops moving gets every change exactly once, in order."""
    reach = 3
    with serving(tmp_path / "data", kind, env={"ALPHABET_SYNC_READ_LIMIT": str(reach)}) as own, \
            httpx.Client(base_url=own.url, timeout=30) as http:
        owner = sign_up(http, "owner")
        first, first_at = create(http, owner, name=unique("Before"))
        for _ in range(3 * reach):
            sign_up(http, "quiet")
        second, second_at = create(http, owner, name=unique("After"))
        written = [(first_at, first["id"]), (second_at, second["id"]),
                   (update(http, owner, second["id"], location="Jaffa"), second["id"]),
                   (delete(http, owner, first["id"]), first["id"])]
        for size in (1, 2, 100):
            found, after, empty_moving = [], 0, 0
            while True:
                body = page(http, owner, after=after, limit=size)
                if body["next_after"] == after:
                    assert body["changes"] == []
                    break
                assert body["next_after"] > after, body
                assert body["next_after"] - after <= max(size, reach), body
                assert len(body["changes"]) <= size
                empty_moving += not body["changes"]
                found += [(c["position"], c["event_id"]) for c in body["changes"]]
                after = body["next_after"]
            assert found == written, size
            assert after == written[-1][0]
            if size < reach:
                assert empty_moving >= 2, size  # the sign-ups were read a few at a time
