"""Batch endpoints over real HTTP against a real `alphabet serve`: up to 1000 creates, changes or
deletes, all or nothing — a refused batch names each failing item by its index and stores
nothing, which the list (brought up to the log's head) confirms."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Person, at, event_body

PATH = "/api/batch_events/"


# ---------------------------------------------------------------------------------------------
# helpers


def marker() -> str:
    return "b" + uuid.uuid4().hex[:12]


def send(http: httpx.Client, who: Person, method: str, body: Any) -> httpx.Response:
    return http.request(method, PATH, json=body, headers=who.headers)


def accepted(answer: httpx.Response, status: int) -> tuple[list[dict[str, Any]], int]:
    """A batch that went through: its events and the X-Position of its write."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"events"}, body
    events: list[dict[str, Any]] = body["events"]
    return events, int(answer.headers["X-Position"])


def refused(answer: httpx.Response) -> dict[str, dict[str, str]]:
    """A 422 with the error envelope; returns error.items (index → field problems)."""
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "fields"} <= set(body["error"])
    assert "Traceback" not in answer.text
    items: dict[str, dict[str, str]] = body["error"].get("items", {})
    return items


def head(http: httpx.Client) -> int:
    answer = http.get("/readyz")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["position"])


def listed(http: httpx.Client, who: Person, word: str) -> list[dict[str, Any]]:
    """Every event at a location with `word`, once the view has every fact in the log (so a
    fact stored by mistake could not hide behind the view's lag)."""
    answer = http.get("/api/events/", headers=who.headers,
                      params={"location": word, "limit": 1000, "min_position": head(http)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["next"] is None
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


def creates(word: str, count: int, **overrides: Any) -> list[dict[str, Any]]:
    return [event_body(name=f"Item {i}", location=f"Hall {word}",
                       starting_time=at(hours=10, minutes=i), end_time=at(hours=11, minutes=i),
                       **overrides)
            for i in range(count)]


def read(http: httpx.Client, who: Person, event_id: str) -> httpx.Response:
    return http.get(f"/api/event/{event_id}", headers=who.headers)






@pytest.fixture
def three(http: httpx.Client, owner: Person) -> tuple[str, list[dict[str, Any]]]:
    """Three events of the owner at a fresh location word."""
    word = marker()
    events, _ = accepted(send(http, owner, "POST", creates(word, 3)), 201)
    return word, events


# ---------------------------------------------------------------------------------------------
# create


def test_a_batch_create_stores_every_event_and_answers_201_with_them_in_order(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    word = marker()
    items = creates(word, 4, participants=[other.username, "guest@example.com"])
    events, written = accepted(send(http, owner, "POST", items), 201)
    assert [e["name"] for e in events] == ["Item 0", "Item 1", "Item 2", "Item 3"]
    assert len({e["id"] for e in events}) == 4
    for event in events:
        assert event["version"] == 1 and event["owner"] == owner.id
        assert event["participants"] == [other.username, "guest@example.com"]
        assert read(http, owner, event["id"]).json()["event"] == event
    answer = http.get("/api/events/", headers=owner.headers,
                      params={"location": word, "min_position": written})
    assert [e["id"] for e in answer.json()["events"]] == [e["id"] for e in events]


def test_a_batch_create_works_without_the_trailing_slash(http: httpx.Client,
                                                         owner: Person) -> None:
    answer = http.post(PATH.rstrip("/"), json=creates(marker(), 1), headers=owner.headers)
    assert accepted(answer, 201)[0][0]["name"] == "Item 0"


def test_a_batch_create_of_exactly_1000_items_is_accepted(http: httpx.Client,
                                                          owner: Person) -> None:
    word = marker()
    events, _ = accepted(send(http, owner, "POST", creates(word, 1000)), 201)
    assert len(events) == 1000
    assert len(listed(http, owner, word)) == 1000


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_batch_of_1001_items_is_a_422_and_nothing_is_stored(
    http: httpx.Client, owner: Person, three: tuple[str, list[dict[str, Any]]], method: str
) -> None:
    word, events = three
    before = listed(http, owner, word)
    body: list[Any] = {
        "POST": creates(word, 1001),
        "PUT": [{"id": events[i % 3]["id"], "name": f"N{i}"} for i in range(1001)],
        "DELETE": [str(uuid.uuid4()) for _ in range(1000)] + [events[0]["id"]],
    }[method]
    answer = send(http, owner, method, body)
    assert answer.status_code == 422, answer.text
    assert "1000" in answer.json()["error"]["message"]
    assert listed(http, owner, word) == before


def test_a_batch_create_with_an_invalid_item_is_refused_naming_its_index_and_stores_nothing(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    items = creates(word, 4)
    items[2]["end_time"] = items[2]["starting_time"]
    written_before = head(http)
    items_refused = refused(send(http, owner, "POST", items))
    assert set(items_refused) == {"2"}
    assert "end_time" in items_refused["2"]
    assert head(http) == written_before
    assert listed(http, owner, word) == []


def test_a_batch_create_with_an_unknown_participant_names_the_item_and_the_username(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    word = marker()
    items = creates(word, 3, participants=[other.username])
    items[1]["participants"] = [other.username, "ghost_nobody_here"]
    items_refused = refused(send(http, owner, "POST", items))
    assert set(items_refused) == {"1"}
    assert "ghost_nobody_here" in items_refused["1"]["participants"]
    assert listed(http, owner, word) == []


@pytest.mark.parametrize("problem, field", [
    ({"starting_time": "2026-12-01T18:00:00"}, "starting_time"),
    ({"name": ""}, "name"),
    ({"location": "x" * 201}, "location"),
    ({"participants": "not a list"}, "participants"),
    ({"colour": "red"}, "colour"),
], ids=["naive time", "empty name", "long location", "participants not a list", "unknown field"])
def test_a_batch_create_with_a_malformed_item_names_its_index_and_field(
    http: httpx.Client, owner: Person, problem: dict[str, Any], field: str
) -> None:
    word = marker()
    items = creates(word, 3)
    items[1].update(problem)
    items_refused = refused(send(http, owner, "POST", items))
    assert set(items_refused) == {"1"}
    assert field in items_refused["1"]
    assert listed(http, owner, word) == []


def test_a_batch_create_with_a_missing_field_names_its_index_and_that_field(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    items = creates(word, 2)
    del items[0]["name"]
    items_refused = refused(send(http, owner, "POST", items))
    assert set(items_refused) == {"0"} and "name" in items_refused["0"]
    assert listed(http, owner, word) == []


def test_a_batch_create_reports_every_failing_item_at_once_whatever_its_problem(
    http: httpx.Client, owner: Person
) -> None:
    """All or nothing, and every failing item reported by its index in one answer, so a client
    fixes them all in one go: an end before the start and an unknown username together."""
    word = marker()
    items = creates(word, 4)
    items[1]["end_time"] = items[1]["starting_time"]
    items[3]["participants"] = ["ghost_nobody_here"]
    items_refused = refused(send(http, owner, "POST", items))
    assert set(items_refused) == {"1", "3"}
    assert "end_time" in items_refused["1"] and "participants" in items_refused["3"]
    assert listed(http, owner, word) == []


@pytest.mark.parametrize("body", [{"name": "x"}, "events", 7, None],
                         ids=["an object", "a string", "a number", "null"])
def test_a_batch_body_that_is_not_a_list_is_a_422(http: httpx.Client, owner: Person,
                                                  body: Any) -> None:
    for method in ("POST", "PUT", "DELETE"):
        answer = http.request(method, PATH, content=json.dumps(body).encode(),
                              headers={**owner.headers, "Content-Type": "application/json"})
        assert answer.status_code == 422, answer.text
        assert set(answer.json()) == {"error"}


def test_a_batch_body_that_is_not_json_is_a_400(http: httpx.Client, owner: Person) -> None:
    answer = http.post(PATH, content=b"[{", headers={**owner.headers,
                                                      "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "malformed_json"


def test_an_empty_batch_writes_nothing(http: httpx.Client, owner: Person) -> None:
    before = head(http)
    answer = send(http, owner, "POST", [])
    assert answer.status_code in (201, 422), answer.text
    if answer.status_code == 201:
        assert answer.json() == {"events": []}
    assert head(http) == before


def test_batches_need_a_signed_in_user(http: httpx.Client) -> None:
    for method in ("POST", "PUT", "DELETE"):
        answer = http.request(method, PATH, json=[])
        assert answer.status_code == 401, answer.text


# ---------------------------------------------------------------------------------------------
# update


def test_a_batch_update_changes_every_event_and_answers_200_with_them(
    http: httpx.Client, owner: Person, other: Person, three: tuple[str, list[dict[str, Any]]]
) -> None:
    word, events = three
    moved_start, moved_end = at(hours=30), at(hours=31)
    changed, written = accepted(send(http, owner, "PUT", [
        {"id": events[0]["id"], "name": "Renamed in batch"},
        {"id": events[1]["id"], "starting_time": moved_start, "end_time": moved_end},
        {"id": events[2]["id"], "participants": [other.username]},
    ]), 200)
    assert [e["id"] for e in changed] == [e["id"] for e in events]
    assert [e["version"] for e in changed] == [2, 2, 2]
    assert changed[0]["name"] == "Renamed in batch"
    assert changed[0]["location"] == events[0]["location"]  # fields not given stay
    assert changed[2]["participants"] == [other.username]
    answer = http.get("/api/events/", headers=owner.headers,
                      params={"location": word, "min_position": written})
    shown = answer.json()["events"]
    # the moved event is now last in starting-time order
    assert [e["id"] for e in shown] == [events[0]["id"], events[2]["id"], events[1]["id"]]
    assert shown == [changed[0], changed[2], changed[1]]
    for event in changed:
        assert read(http, owner, event["id"]).json()["event"] == event


def test_a_batch_update_with_one_invalid_item_changes_nothing(
    http: httpx.Client, owner: Person, three: tuple[str, list[dict[str, Any]]]
) -> None:
    word, events = three
    before = listed(http, owner, word)
    items_refused = refused(send(http, owner, "PUT", [
        {"id": events[0]["id"], "name": "Would be renamed"},
        {"id": events[1]["id"], "end_time": at(hours=1)},
        {"id": events[2]["id"], "starting_time": at(hours=-1)},
    ]))
    assert set(items_refused) == {"1", "2"}
    assert "end_time" in items_refused["1"] and "starting_time" in items_refused["2"]
    assert listed(http, owner, word) == before
    assert read(http, owner, events[0]["id"]).json()["event"]["version"] == 1


def test_a_batch_update_of_someone_elses_event_is_refused_by_index_and_changes_nothing(
    http: httpx.Client, owner: Person, other: Person, three: tuple[str, list[dict[str, Any]]]
) -> None:
    word, events = three
    own, _ = accepted(send(http, other, "POST", creates(word, 1)), 201)
    before = listed(http, owner, word)
    items_refused = refused(send(http, other, "PUT", [
        {"id": own[0]["id"], "name": "Mine"},
        {"id": events[1]["id"], "name": "Not mine"},
    ]))
    assert set(items_refused) == {"1"}
    assert listed(http, owner, word) == before


def test_a_batch_update_with_an_unknown_or_deleted_id_is_refused_by_index(
    http: httpx.Client, owner: Person, three: tuple[str, list[dict[str, Any]]]
) -> None:
    word, events = three
    accepted(send(http, owner, "DELETE", [events[2]["id"]]), 200)
    before = listed(http, owner, word)
    items_refused = refused(send(http, owner, "PUT", [
        {"id": events[0]["id"], "name": "Fine"},
        {"id": str(uuid.uuid4()), "name": "Unknown"},
        {"id": events[2]["id"], "name": "Deleted"},
    ]))
    assert set(items_refused) == {"1", "2"}
    assert listed(http, owner, word) == before


def test_a_batch_update_with_the_same_id_twice_is_a_422_naming_the_repeat(
    http: httpx.Client, owner: Person, three: tuple[str, list[dict[str, Any]]]
) -> None:
    word, events = three
    before = listed(http, owner, word)
    items_refused = refused(send(http, owner, "PUT", [
        {"id": events[0]["id"], "name": "First"},
        {"id": events[1]["id"], "name": "Other"},
        {"id": events[0]["id"], "name": "Again"},
    ]))
    assert set(items_refused) == {"2"} and "id" in items_refused["2"]
    assert listed(http, owner, word) == before


def test_a_batch_update_item_without_an_id_or_with_a_bad_id_names_its_index(
    http: httpx.Client, owner: Person, three: tuple[str, list[dict[str, Any]]]
) -> None:
    _, events = three
    items_refused = refused(send(http, owner, "PUT", [
        {"id": events[0]["id"], "name": "Fine"},
        {"name": "No id"},
        {"id": "not-a-uuid", "name": "Bad id"},
    ]))
    assert set(items_refused) == {"1", "2"}
    assert "id" in items_refused["1"] and "id" in items_refused["2"]
    assert read(http, owner, events[0]["id"]).json()["event"]["name"] == "Item 0"


# ---------------------------------------------------------------------------------------------
# delete


def test_a_batch_delete_removes_every_event_and_answers_200_with_them(
    http: httpx.Client, owner: Person, three: tuple[str, list[dict[str, Any]]]
) -> None:
    word, events = three
    gone, written = accepted(send(http, owner, "DELETE", [events[0]["id"], events[2]["id"]]), 200)
    assert [e["id"] for e in gone] == [events[0]["id"], events[2]["id"]]
    answer = http.get("/api/events/", headers=owner.headers,
                      params={"location": word, "min_position": written})
    assert [e["id"] for e in answer.json()["events"]] == [events[1]["id"]]
    for event in (events[0], events[2]):
        assert read(http, owner, event["id"]).status_code == 410
    assert read(http, owner, events[1]["id"]).status_code == 200


def test_a_batch_delete_with_an_unknown_foreign_or_deleted_id_deletes_nothing(
    http: httpx.Client, owner: Person, other: Person, three: tuple[str, list[dict[str, Any]]]
) -> None:
    word, events = three
    foreign, _ = accepted(send(http, other, "POST", creates(word, 1)), 201)
    accepted(send(http, owner, "DELETE", [events[2]["id"]]), 200)
    before = listed(http, owner, word)
    items_refused = refused(send(http, owner, "DELETE", [
        events[0]["id"], str(uuid.uuid4()), foreign[0]["id"], events[2]["id"],
    ]))
    assert set(items_refused) == {"1", "2", "3"}
    assert listed(http, owner, word) == before
    assert read(http, owner, events[0]["id"]).status_code == 200


def test_a_batch_delete_with_the_same_id_twice_is_a_422(
    http: httpx.Client, owner: Person, three: tuple[str, list[dict[str, Any]]]
) -> None:
    word, events = three
    before = listed(http, owner, word)
    items_refused = refused(send(http, owner, "DELETE", [events[1]["id"], events[1]["id"]]))
    assert set(items_refused) == {"1"}
    assert listed(http, owner, word) == before


def test_a_batch_delete_with_an_id_that_is_not_a_uuid_names_its_index(
    http: httpx.Client, owner: Person, three: tuple[str, list[dict[str, Any]]]
) -> None:
    word, events = three
    items_refused = refused(send(http, owner, "DELETE", [events[0]["id"], "nope", 5]))
    assert set(items_refused) == {"1", "2"}
    assert len(listed(http, owner, word)) == 3
