"""Events over real HTTP against a real `alphabet serve`: create, read (now and as of a version or
a time), change (PUT and PATCH merge), delete, the audit trail, and every kind of bad input."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import httpx
import pytest

from tests.conftest import Person, Server, at, event_body, sign_up

PLUS_TWO = timezone(timedelta(hours=2))
EVENT_FIELDS = {
    "id", "name", "starting_time", "end_time", "location", "participants", "attendees",
    "owner", "owner_username", "version", "created_at", "updated_at", "time_zone", "local_start",
    "local_end",
}


# ---------------------------------------------------------------------------------------------
# helpers


def in_plus_two(**delta: float) -> str:
    """An RFC 3339 time relative to now, written with a +02:00 offset."""
    return (datetime.now(UTC) + timedelta(**delta)).astimezone(PLUS_TWO).isoformat()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def create(http: httpx.Client, owner: Person, **overrides: Any) -> dict[str, Any]:
    answer = http.post("/api/events/", json=event_body(**overrides), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    event: dict[str, Any] = answer.json()["event"]
    return event


def read(http: httpx.Client, who: Person, event_id: str, **params: Any) -> httpx.Response:
    return http.get(f"/api/event/{event_id}", params=params, headers=who.headers)


def current(http: httpx.Client, who: Person, event_id: str) -> dict[str, Any]:
    answer = read(http, who, event_id)
    assert answer.status_code == 200, answer.text
    event: dict[str, Any] = answer.json()["event"]
    return event


def history(http: httpx.Client, who: Person, event_id: str) -> list[dict[str, Any]]:
    answer = http.get(f"/api/event/{event_id}/history", headers=who.headers)
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["history"]
    return entries


def log_head(http: httpx.Client) -> int:
    """The event store's latest log position: unchanged means no fact was recorded."""
    answer = http.get("/readyz")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["position"])


def error(answer: httpx.Response, status: int) -> dict[str, Any]:
    """The contract's error envelope with the expected status; returns its `error`."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["fields"], dict)
    assert "Traceback" not in answer.text
    found: dict[str, Any] = body["error"]
    return found


def post_raw(http: httpx.Client, owner: Person, content: bytes) -> httpx.Response:
    return http.post("/api/events/", content=content,
                     headers={**owner.headers, "Content-Type": "application/json"})


def put(http: httpx.Client, who: Person, event_id: str, body: dict[str, Any],
        method: str = "PUT", **headers: str) -> httpx.Response:
    return http.request(method, f"/api/event/{event_id}", json=body,
                        headers={**who.headers, **headers})






# ---------------------------------------------------------------------------------------------
# create


def test_creating_an_event_answers_201_with_every_field_in_utc_and_the_headers(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    start, end = in_plus_two(hours=5), in_plus_two(hours=6)
    answer = http.post("/api/events/", headers=owner.headers, json=event_body(
        name="Launch", starting_time=start, end_time=end, location="Haifa",
        participants=[other.username, "guest@example.com"],
    ))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) == {"message", "event"}
    assert body["message"] == "Event created"
    event = body["event"]
    assert set(event) == EVENT_FIELDS
    assert str(event["id"]) and len(event["id"]) == 36
    assert event["name"] == "Launch"
    assert event["location"] == "Haifa"
    for name, sent in (("starting_time", start), ("end_time", end)):
        assert event[name].endswith("Z"), event[name]
        assert instant(event[name]) == instant(sent)
    assert event["participants"] == [other.username, "guest@example.com"]
    assert event["owner"] == owner.id
    assert event["owner_username"] == owner.username
    assert event["version"] == 1
    assert event["created_at"].endswith("Z") and event["updated_at"].endswith("Z")
    assert abs(instant(event["created_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert event["updated_at"] == event["created_at"]
    assert answer.headers["Location"] == f"/api/event/{event['id']}"
    assert answer.headers["ETag"] == '"1"'
    assert answer.headers["X-Position"].isdigit()
    assert http.get(answer.headers["Location"], headers=owner.headers).json()["event"] == event


def test_creating_works_without_the_trailing_slash_too(http: httpx.Client, owner: Person) -> None:
    answer = http.post("/api/events", json=event_body(name="No slash"), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    assert answer.json()["event"]["name"] == "No slash"


def test_x_position_increases_across_writes(http: httpx.Client, owner: Person) -> None:
    first = http.post("/api/events/", json=event_body(), headers=owner.headers)
    event_id = first.json()["event"]["id"]
    second = http.post("/api/events/", json=event_body(), headers=owner.headers)
    updated = put(http, owner, event_id, {"name": "Renamed"})
    deleted = http.delete(f"/api/event/{event_id}", headers=owner.headers)
    positions = [int(r.headers["X-Position"]) for r in (first, second, updated, deleted)]
    assert positions == sorted(set(positions)), positions
    assert positions[-1] <= log_head(http)


def test_an_event_may_be_created_with_a_start_in_the_past(
    http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner, starting_time=at(days=-2), end_time=at(days=-2, hours=1))
    assert instant(event["starting_time"]) < datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# participants


def test_participants_are_usernames_and_invitee_addresses_which_only_the_owner_sees(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    friend = sign_up(http, "friend")
    event = create(http, owner, participants=[friend.username, "outsider@example.org"])
    assert event["participants"] == [friend.username, "outsider@example.org"]
    assert current(http, owner, event["id"])["participants"] == [
        friend.username, "outsider@example.org"]
    assert current(http, other, event["id"])["participants"] == [friend.username, "invitee"]
    created = history(http, other, event["id"])[0]
    assert created["changes"]["participants"] == [friend.username, "invitee"]
    assert "outsider@example.org" not in http.get(
        f"/api/event/{event['id']}/history", headers=other.headers).text


def test_a_listed_event_shows_invitees_to_its_owner_only_whoever_looked_first(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    """Workers keep rendered events; the owner's rendering and everyone else's are apart."""
    word = f"listed{uuid.uuid4().hex[:8]}"
    event = create(http, owner, name=word, participants=["guest@example.org"])

    def listed(who: Person) -> list[str]:
        answer = http.get("/api/events/", params={"q": word, "min_position": log_head(http)},
                          headers=who.headers)
        assert answer.status_code == 200, answer.text
        [shown] = answer.json()["events"]
        assert shown["id"] == event["id"]
        participants: list[str] = shown["participants"]
        return participants

    assert listed(other) == ["invitee"]
    assert current(http, other, event["id"])["participants"] == ["invitee"]
    assert listed(owner) == ["guest@example.org"]
    assert current(http, owner, event["id"])["participants"] == ["guest@example.org"]
    assert listed(other) == ["invitee"]


def test_an_unknown_username_is_refused_with_422_naming_it_and_nothing_is_stored(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    before = log_head(http)
    answer = http.post("/api/events/", headers=owner.headers, json=event_body(
        participants=[other.username, "nobody_by_this_name"]))
    problem = error(answer, 422)
    assert "nobody_by_this_name" in problem["message"]
    assert "nobody_by_this_name" in problem["fields"]["participants"]
    assert other.username not in problem["fields"]["participants"]
    assert log_head(http) == before


def test_a_thousand_participants_are_accepted_and_one_more_is_refused(
    http: httpx.Client, owner: Person
) -> None:
    thousand = [f"guest{i}@example.com" for i in range(1000)]
    event = create(http, owner, participants=thousand)
    assert len(event["participants"]) == 1000
    before = log_head(http)
    answer = http.post("/api/events/", headers=owner.headers,
                       json=event_body(participants=[*thousand, "one.more@example.com"]))
    assert "participants" in error(answer, 422)["fields"]
    answer = put(http, owner, event["id"],
                 {"participants": [*thousand, "one.more@example.com"]})
    assert "participants" in error(answer, 422)["fields"]
    assert log_head(http) == before
    assert len(current(http, owner, event["id"])["participants"]) == 1000


# ---------------------------------------------------------------------------------------------
# bad input on create: the right status, the envelope, nothing stored


@pytest.mark.parametrize(
    ("content", "status"),
    [
        pytest.param(b'{"name": "Standup",', 400, id="malformed JSON"),
        pytest.param(b"not json at all", 400, id="not JSON"),
        pytest.param(json.dumps([event_body()]).encode(), 422, id="a JSON array"),
        pytest.param(b'"just a string"', 422, id="a JSON string"),
    ],
)
def test_a_body_that_is_not_a_json_object_gets_the_error_envelope_and_stores_nothing(
    http: httpx.Client, owner: Person, content: bytes, status: int
) -> None:
    before = log_head(http)
    error(post_raw(http, owner, content), status)
    assert log_head(http) == before


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"name": 42}, "name", id="a number for name"),
        pytest.param({"participants": "someone"}, "participants", id="a string for participants"),
        pytest.param({"starting_time": 1_900_000_000}, "starting_time",
                     id="a number for starting_time"),
        pytest.param({"end_time": "next tuesday"}, "end_time", id="a time that is not RFC 3339"),
        pytest.param({"location": None}, "location", id="null for location"),
        pytest.param({"name": ""}, "name", id="an empty name"),
        pytest.param({"name": "   "}, "name", id="a blank name"),
        pytest.param({"name": "n" * 201}, "name", id="a name of 201 characters"),
        pytest.param({"location": ""}, "location", id="an empty location"),
        pytest.param({"location": "l" * 201}, "location", id="a location of 201 characters"),
        pytest.param({"participants": ["not an address@"]}, "participants.0",
                     id="a malformed address"),
        pytest.param({"colour": "blue"}, "colour", id="an unknown field"),
    ],
)
def test_each_invalid_field_is_a_422_naming_that_field_and_stores_nothing(
    http: httpx.Client, owner: Person, overrides: dict[str, Any], field: str
) -> None:
    before = log_head(http)
    problem = error(http.post("/api/events/", json=event_body(**overrides),
                              headers=owner.headers), 422)
    assert field in problem["fields"], problem
    assert log_head(http) == before


def test_a_missing_required_field_is_a_422_naming_it(http: httpx.Client, owner: Person) -> None:
    body = event_body()
    del body["starting_time"]
    problem = error(http.post("/api/events/", json=body, headers=owner.headers), 422)
    assert "starting_time" in problem["fields"]


def test_a_name_and_location_of_exactly_200_characters_are_accepted(
    http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner, name="n" * 200, location="l" * 200)
    assert (len(event["name"]), len(event["location"])) == (200, 200)


@pytest.mark.parametrize("field", ["starting_time", "end_time"])
def test_a_time_without_an_offset_is_a_422_whose_message_says_so(
    http: httpx.Client, owner: Person, field: str
) -> None:
    naive = (datetime.now(UTC) + timedelta(hours=2, minutes=30)).replace(tzinfo=None)
    before = log_head(http)
    problem = error(http.post("/api/events/", json=event_body(**{field: naive.isoformat()}),
                              headers=owner.headers), 422)
    assert field in problem["fields"]
    assert "offset" in problem["message"].lower()
    assert log_head(http) == before


@pytest.mark.parametrize("gap", [timedelta(hours=-1), timedelta(0)])
def test_an_end_not_after_the_start_is_a_422_on_end_time(
    http: httpx.Client, owner: Person, gap: timedelta
) -> None:
    start = datetime.now(UTC) + timedelta(hours=4)
    before = log_head(http)
    problem = error(http.post("/api/events/", headers=owner.headers, json=event_body(
        starting_time=start.isoformat(), end_time=(start + gap).isoformat())), 422)
    assert "end_time" in problem["fields"]
    assert log_head(http) == before


def test_a_body_over_one_mebibyte_is_refused_with_413(http: httpx.Client, owner: Person) -> None:
    before = log_head(http)
    huge = json.dumps(event_body(name="x" * (1024 * 1024 + 10))).encode()
    problem = error(post_raw(http, owner, huge), 413)
    assert problem["code"]
    assert log_head(http) == before


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no token"),
        pytest.param({"Authorization": "Bearer not.a.token"}, id="a garbage token"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="another scheme"),
    ],
)
def test_creating_without_a_valid_token_is_401_and_stores_nothing(
    http: httpx.Client, headers: dict[str, str]
) -> None:
    before = log_head(http)
    error(http.post("/api/events/", json=event_body(), headers=headers), 401)
    assert log_head(http) == before


def test_reading_changing_deleting_and_history_need_a_token(
    http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner)
    path = f"/api/event/{event['id']}"
    error(http.get(path), 401)
    error(http.get(path + "/history"), 401)
    error(http.put(path, json={"name": "Anonymous"}), 401)
    error(http.patch(path, json={"name": "Anonymous"}), 401)
    error(http.delete(path), 401)
    assert current(http, owner, event["id"]) == event


# ---------------------------------------------------------------------------------------------
# read


def test_reading_an_event_gives_it_with_its_etag_to_any_signed_in_user(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    event = create(http, owner)
    for who in (owner, other):
        answer = read(http, who, event["id"])
        assert answer.status_code == 200, answer.text
        assert set(answer.json()) == {"event"}
        assert answer.json()["event"]["id"] == event["id"]
        assert answer.headers["ETag"] == '"1"'
    with_slash = http.get(f"/api/event/{event['id']}/", headers=other.headers)
    assert with_slash.status_code == 200, with_slash.text
    assert with_slash.json()["event"]["id"] == event["id"]


@pytest.mark.parametrize("event_id", [
    pytest.param(str(uuid4()), id="an unknown UUID"),
    pytest.param("not-a-uuid", id="a non-UUID id"),
    pytest.param("12345", id="a number"),
])
def test_reading_an_event_that_does_not_exist_is_404(
    http: httpx.Client, owner: Person, event_id: str
) -> None:
    assert error(read(http, owner, event_id), 404)["code"]
    error(http.get(f"/api/event/{event_id}/history", headers=owner.headers), 404)


def test_a_user_id_is_not_an_event_id(http: httpx.Client, owner: Person) -> None:
    error(read(http, owner, owner.id), 404)
    error(http.get(f"/api/event/{owner.id}/history", headers=owner.headers), 404)
    error(put(http, owner, owner.id, {"name": "Hijack"}), 404)
    error(http.delete(f"/api/event/{owner.id}", headers=owner.headers), 404)
    assert http.get("/api/user/me", headers=owner.headers).status_code == 200


def test_a_read_right_after_a_write_always_shows_that_write(
    http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner)
    for round_ in range(10):
        name = f"Round {round_}"
        assert put(http, owner, event["id"], {"name": name}).status_code == 200
        answer = read(http, owner, event["id"])
        assert answer.json()["event"]["name"] == name
        assert answer.json()["event"]["version"] == round_ + 2
        assert answer.headers["ETag"] == f'"{round_ + 2}"'


def test_as_of_a_version_or_a_time_gives_the_event_as_it_was(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    before_creation = datetime.now(UTC) - timedelta(seconds=5)
    event = create(http, owner, name="Original")
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    assert put(http, owner, event["id"], {"name": "Changed"}).status_code == 200

    first = read(http, other, event["id"], as_of="1")
    assert first.status_code == 200, first.text
    assert first.json()["event"]["name"] == "Original"
    assert first.json()["event"]["version"] == 1
    assert first.headers["ETag"] == '"1"'
    assert read(http, other, event["id"], as_of="2").json()["event"]["name"] == "Changed"

    then = between.astimezone(PLUS_TWO).isoformat()
    assert "+02:00" in then
    encoded = read(http, other, event["id"], as_of=then)  # httpx sends '+' as %2B
    assert encoded.status_code == 200, encoded.text
    assert encoded.json()["event"]["name"] == "Original"
    # A '+' left unencoded in the query arrives as a space, which is read as '+'.
    raw = http.get(f"/api/event/{event['id']}?as_of={then}", headers=other.headers)
    assert raw.status_code == 200, raw.text
    assert raw.json()["event"]["version"] == 1
    zulu = between.isoformat().replace("+00:00", "Z")
    assert read(http, other, event["id"], as_of=zulu).json()["event"]["version"] == 1
    now = datetime.now(UTC).isoformat()
    assert read(http, other, event["id"], as_of=now).json()["event"]["name"] == "Changed"

    error(read(http, other, event["id"], as_of=before_creation.isoformat()), 404)


@pytest.mark.parametrize(("as_of", "status"), [
    pytest.param("garbage", 422, id="garbage"),
    pytest.param("2026-13-45T99:00:00Z", 422, id="an impossible time"),
    pytest.param("-1", 422, id="a negative number"),
    pytest.param("0", 404, id="version 0"),
    pytest.param("99", 404, id="a version beyond the latest"),
])
def test_a_bad_as_of_is_refused(http: httpx.Client, owner: Person, as_of: str,
                                status: int) -> None:
    event = create(http, owner)
    error(read(http, owner, event["id"], as_of=as_of), status)


def test_an_as_of_time_without_an_offset_is_a_422_that_says_so(
    http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner)
    naive = datetime.now(UTC).replace(tzinfo=None).isoformat()
    problem = error(read(http, owner, event["id"], as_of=naive), 422)
    assert "as_of" in problem["fields"]
    assert "offset" in problem["message"].lower()


def test_as_of_after_deletion_still_gives_earlier_versions_and_gone_for_the_latest(
    http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner, name="Doomed")
    assert put(http, owner, event["id"], {"location": "Elsewhere"}).status_code == 200
    time.sleep(0.05)
    before_delete = datetime.now(UTC)
    time.sleep(0.05)
    assert http.delete(f"/api/event/{event['id']}", headers=owner.headers).status_code == 200
    assert read(http, owner, event["id"], as_of="1").json()["event"]["location"] == event[
        "location"]
    assert read(http, owner, event["id"], as_of="2").json()["event"]["location"] == "Elsewhere"
    assert read(http, owner, event["id"],
                as_of=before_delete.isoformat()).json()["event"]["version"] == 2
    error(read(http, owner, event["id"], as_of="3"), 410)
    error(read(http, owner, event["id"], as_of=datetime.now(UTC).isoformat()), 410)
    error(read(http, owner, event["id"], as_of="4"), 404)


# ---------------------------------------------------------------------------------------------
# change


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_a_change_merges_the_given_fields_and_keeps_the_others(
    http: httpx.Client, owner: Person, other: Person, method: str
) -> None:
    event = create(http, owner, name="Before", location="Jaffa", participants=[other.username])
    time.sleep(0.01)
    answer = put(http, owner, event["id"], {"name": "After"}, method)
    assert answer.status_code == 200, answer.text
    assert answer.json()["message"] == "Event updated"
    changed = answer.json()["event"]
    assert changed["name"] == "After"
    for kept in ("location", "starting_time", "end_time", "participants", "owner",
                 "owner_username", "created_at"):
        assert changed[kept] == event[kept], kept
    assert changed["version"] == 2
    assert instant(changed["updated_at"]) > instant(changed["created_at"])
    assert answer.headers["ETag"] == '"2"'
    assert int(answer.headers["X-Position"]) == log_head(http)
    assert current(http, owner, event["id"]) == changed


def test_new_times_sent_with_an_offset_are_stored_and_returned_in_utc(
    http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner)
    start, end = in_plus_two(hours=10), in_plus_two(hours=12)
    changed = put(http, owner, event["id"], {"starting_time": start, "end_time": end},
                  "PATCH").json()["event"]
    assert changed["starting_time"].endswith("Z") and changed["end_time"].endswith("Z")
    assert instant(changed["starting_time"]) == instant(start)
    assert instant(changed["end_time"]) == instant(end)


def test_participants_when_given_replace_the_list(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    third = sign_up(http, "third")
    event = create(http, owner, participants=[other.username, "a@example.com"])
    changed = put(http, owner, event["id"], {"participants": [third.username]}).json()["event"]
    assert changed["participants"] == [third.username]
    emptied = put(http, owner, event["id"], {"participants": []}, "PATCH").json()["event"]
    assert emptied["participants"] == []
    assert current(http, owner, event["id"])["participants"] == []


def test_an_unknown_username_in_a_change_is_422_and_changes_nothing(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    event = create(http, owner, participants=[other.username])
    problem = error(put(http, owner, event["id"],
                        {"name": "Renamed", "participants": ["ghost_user_xyz"]}), 422)
    assert "ghost_user_xyz" in problem["fields"]["participants"]
    assert "ghost_user_xyz" in problem["message"]
    assert current(http, owner, event["id"]) == event


@pytest.mark.parametrize("body", [
    pytest.param({}, id="an empty body"),
    pytest.param({"name": "Same"}, id="the same name"),
    pytest.param({"name": "Same", "location": "Same place"}, id="the same name and location"),
])
def test_a_change_that_changes_nothing_answers_200_and_records_nothing(
    http: httpx.Client, owner: Person, body: dict[str, Any]
) -> None:
    event = create(http, owner, name="Same", location="Same place")
    head = log_head(http)
    for method in ("PUT", "PATCH"):
        answer = put(http, owner, event["id"], body, method)
        assert answer.status_code == 200, answer.text
        assert answer.json()["event"]["version"] == 1
        assert answer.headers["ETag"] == '"1"'
        assert int(answer.headers.get("X-Position", "0")) <= head
    assert log_head(http) == head
    assert len(history(http, owner, event["id"])) == 1
    assert current(http, owner, event["id"]) == event


def test_the_same_times_written_in_another_offset_change_nothing(
    http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner)
    same = {name: instant(event[name]).astimezone(PLUS_TWO).isoformat()
            for name in ("starting_time", "end_time")}
    answer = put(http, owner, event["id"], same)
    assert answer.status_code == 200, answer.text
    assert answer.json()["event"]["version"] == 1
    assert len(history(http, owner, event["id"])) == 1


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_only_the_owner_may_change_or_delete_an_event(
    http: httpx.Client, owner: Person, other: Person, method: str
) -> None:
    event = create(http, owner)
    answer = http.request(method, f"/api/event/{event['id']}", headers=other.headers,
                          json=None if method == "DELETE" else {"name": "Mine now"})
    assert error(answer, 403)["code"]
    assert current(http, owner, event["id"]) == event


def test_if_match_pins_the_version_a_change_was_based_on(
    http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner, name="v1")
    assert put(http, owner, event["id"], {"name": "v2"}, **{"If-Match": '"1"'}).status_code == 200
    stale = put(http, owner, event["id"], {"name": "lost"}, **{"If-Match": '"1"'})
    assert error(stale, 412)["code"]
    stale_patch = put(http, owner, event["id"], {"name": "lost"}, "PATCH", **{"If-Match": "1"})
    error(stale_patch, 412)
    assert current(http, owner, event["id"])["name"] == "v2"

    bare = put(http, owner, event["id"], {"name": "v3"}, **{"If-Match": "2"})
    assert bare.status_code == 200, bare.text
    assert bare.json()["event"]["version"] == 3
    star = put(http, owner, event["id"], {"name": "v4"}, "PATCH", **{"If-Match": "*"})
    assert star.status_code == 200, star.text
    assert star.json()["event"]["version"] == 4
    quoted = put(http, owner, event["id"], {"name": "v5"}, **{"If-Match": '"4"'})
    assert quoted.status_code == 200, quoted.text
    assert quoted.headers["ETag"] == '"5"'


@pytest.mark.parametrize("value", ["banana", '"v1"', "1.5", '"-1"'])
def test_a_malformed_if_match_is_400_and_changes_nothing(
    http: httpx.Client, owner: Person, value: str
) -> None:
    event = create(http, owner)
    error(put(http, owner, event["id"], {"name": "Nope"}, **{"If-Match": value}), 400)
    error(http.delete(f"/api/event/{event['id']}",
                      headers={**owner.headers, "If-Match": value}), 400)
    assert current(http, owner, event["id"]) == event


def test_a_delete_with_a_stale_if_match_is_412_and_deletes_nothing(
    http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner)
    assert put(http, owner, event["id"], {"name": "Moved on"}).status_code == 200
    error(http.delete(f"/api/event/{event['id']}",
                      headers={**owner.headers, "If-Match": '"1"'}), 412)
    assert current(http, owner, event["id"])["version"] == 2
    answer = http.delete(f"/api/event/{event['id']}", headers={**owner.headers, "If-Match": '"2"'})
    assert answer.status_code == 200, answer.text


def test_a_new_starting_time_in_the_past_is_422(http: httpx.Client, owner: Person) -> None:
    event = create(http, owner)
    problem = error(put(http, owner, event["id"], {"starting_time": at(hours=-1)}), 422)
    assert "starting_time" in problem["fields"]
    assert current(http, owner, event["id"]) == event


@pytest.mark.parametrize("body_of", [
    pytest.param(lambda e: {"end_time": e["starting_time"]}, id="end moved onto the start"),
    pytest.param(lambda e: {"end_time": at(hours=1)}, id="end moved before the start"),
    pytest.param(lambda e: {"starting_time": at(hours=4)}, id="start moved after the end"),
])
def test_an_end_not_after_the_start_once_merged_is_422(
    http: httpx.Client, owner: Person, body_of: Any
) -> None:
    event = create(http, owner, starting_time=at(hours=2), end_time=at(hours=3))
    for method in ("PUT", "PATCH"):
        problem = error(put(http, owner, event["id"], body_of(event), method), 422)
        assert "end_time" in problem["fields"], problem
    assert current(http, owner, event["id"]) == event


@pytest.mark.parametrize(("body", "field"), [
    pytest.param({"name": 7}, "name", id="a number for name"),
    pytest.param({"participants": "someone"}, "participants", id="a string for participants"),
    pytest.param({"starting_time": 1_900_000_000}, "starting_time",
                 id="a number for starting_time"),
    pytest.param({"name": ""}, "name", id="an empty name"),
    pytest.param({"location": "l" * 201}, "location", id="a location of 201 characters"),
    pytest.param({"starting_time": "2031-01-01T10:00:00"}, "starting_time",
                 id="a time without an offset"),
    pytest.param({"colour": "blue"}, "colour", id="an unknown field"),
])
def test_an_invalid_field_in_a_change_is_422_and_changes_nothing(
    http: httpx.Client, owner: Person, body: dict[str, Any], field: str
) -> None:
    event = create(http, owner)
    for method in ("PUT", "PATCH"):
        problem = error(put(http, owner, event["id"], body, method), 422)
        assert field in problem["fields"], problem
    assert current(http, owner, event["id"]) == event
    assert len(history(http, owner, event["id"])) == 1


def test_a_malformed_or_non_object_change_body_is_refused(
    http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner)
    path = f"/api/event/{event['id']}"
    headers = {**owner.headers, "Content-Type": "application/json"}
    error(http.put(path, content=b'{"name": ', headers=headers), 400)
    error(http.patch(path, content=b'["name"]', headers=headers), 422)
    error(http.put(path, content=json.dumps({"name": "x" * (1024 * 1024 + 1)}).encode(),
                   headers=headers), 413)
    assert current(http, owner, event["id"]) == event


def test_an_event_that_has_started_can_no_longer_be_changed(
    http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner, starting_time=at(minutes=-30), end_time=at(minutes=30))
    for method in ("PUT", "PATCH"):
        answer = put(http, owner, event["id"], {"name": "Too late"}, method)
        assert error(answer, 409)["code"]
        later = put(http, owner, event["id"],
                    {"starting_time": at(days=1), "end_time": at(days=1, hours=1)}, method)
        error(later, 409)
    assert current(http, owner, event["id"]) == event
    # Deleting is allowed at any time.
    assert http.delete(f"/api/event/{event['id']}", headers=owner.headers).status_code == 200


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_any_write_to_a_deleted_event_is_410(
    http: httpx.Client, owner: Person, method: str
) -> None:
    event = create(http, owner)
    assert http.delete(f"/api/event/{event['id']}", headers=owner.headers).status_code == 200
    head = log_head(http)
    answer = http.request(method, f"/api/event/{event['id']}", headers=owner.headers,
                          json=None if method == "DELETE" else {"name": "Revived"})
    assert error(answer, 410)["code"]
    assert log_head(http) == head
    assert len(history(http, owner, event["id"])) == 2


# ---------------------------------------------------------------------------------------------
# concurrency


async def test_concurrent_changes_without_if_match_all_succeed_and_each_is_recorded(
    server: Server, http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner, name="Start")
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        answers = await asyncio.gather(*(
            client.put(f"/api/event/{event['id']}", headers=owner.headers,
                       json={"name": f"Name {i}"} if i % 2 else {"location": f"Place {i}"})
            for i in range(20)
        ))
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers]
    versions = sorted(a.json()["event"]["version"] for a in answers)
    assert versions == list(range(2, 22))
    trail = history(http, owner, event["id"])
    assert [entry["version"] for entry in trail] == list(range(1, 22))
    updates = [entry for entry in trail if entry["type"] == "Updated"]
    assert len(updates) == 20
    assert sorted(next(iter(u["changes"].values())) for u in updates) == sorted(
        f"Name {i}" if i % 2 else f"Place {i}" for i in range(20))
    assert all(len(u["changes"]) == 1 for u in updates)
    final = current(http, owner, event["id"])
    assert final["version"] == 21
    assert final["name"] == trail_last(trail, "name")
    assert final["location"] == trail_last(trail, "location")


def trail_last(trail: list[dict[str, Any]], field: str) -> Any:
    return [entry["changes"][field] for entry in trail if field in entry["changes"]][-1]


async def test_concurrent_changes_pinned_to_one_version_let_exactly_one_through(
    server: Server, http: httpx.Client, owner: Person
) -> None:
    event = create(http, owner, name="Contested")
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        answers = await asyncio.gather(*(
            client.put(f"/api/event/{event['id']}", json={"name": f"Winner {i}"},
                       headers={**owner.headers, "If-Match": '"1"'})
            for i in range(20)
        ))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [412] * 19, [a.text for a in answers]
    (winner,) = [a for a in answers if a.status_code == 200]
    for loser in answers:
        if loser.status_code == 412:
            error(loser, 412)
    final = current(http, owner, event["id"])
    assert final["version"] == 2
    assert final["name"] == winner.json()["event"]["name"]
    assert len(history(http, owner, event["id"])) == 2


# ---------------------------------------------------------------------------------------------
# delete and history


def test_deleting_answers_the_message_then_the_event_is_gone_but_its_history_stays(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    event = create(http, owner, name="Farewell party")
    assert put(http, owner, event["id"], {"location": "Rooftop"}).status_code == 200
    answer = http.delete(f"/api/event/{event['id']}", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"message": 'Event "Farewell party" deleted'}
    assert int(answer.headers["X-Position"]) == log_head(http)
    for who in (owner, other):
        assert error(read(http, who, event["id"]), 410)["code"]
    trail = history(http, other, event["id"])
    assert [entry["type"] for entry in trail] == ["Created", "Updated", "Deleted"]
    assert [entry["version"] for entry in trail] == [1, 2, 3]
    assert trail[2]["by"] == owner.id
    assert trail[2]["changes"] == {}
    deleted_slash = http.delete(f"/api/event/{event['id']}/", headers=owner.headers)
    error(deleted_slash, 410)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_writing_to_an_unknown_event_is_404(http: httpx.Client, owner: Person,
                                            method: str) -> None:
    head = log_head(http)
    for event_id in (str(uuid4()), "nope"):
        answer = http.request(method, f"/api/event/{event_id}", headers=owner.headers,
                              json=None if method == "DELETE" else {"name": "Phantom"})
        error(answer, 404)
    assert log_head(http) == head


def test_the_history_lists_every_fact_with_created_holding_all_fields_and_updates_only_changes(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    event = create(http, owner, name="Audit", location="Eilat", participants=[other.username])
    changed = put(http, owner, event["id"], {"name": "Audited", "location": "Eilat"}).json()
    moved = put(http, owner, event["id"], {"starting_time": in_plus_two(hours=20),
                                           "end_time": in_plus_two(hours=21)}, "PATCH").json()
    answer = http.get(f"/api/event/{event['id']}/history/", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == {"history"}
    trail = answer.json()["history"]
    assert [entry["version"] for entry in trail] == [1, 2, 3]
    assert [entry["type"] for entry in trail] == ["Created", "Updated", "Updated"]
    for entry in trail:
        assert set(entry) == {"version", "type", "at", "by", "changes"}
        assert entry["at"].endswith("Z")
        assert entry["by"] == owner.id
    created = trail[0]["changes"]
    assert created == {
        "name": "Audit", "starting_time": event["starting_time"], "end_time": event["end_time"],
        "location": "Eilat", "participants": [other.username], "time_zone": "UTC",
    }
    assert trail[1]["changes"] == {"name": "Audited"}
    assert set(trail[2]["changes"]) == {"starting_time", "end_time"}
    assert trail[2]["changes"]["starting_time"] == moved["event"]["starting_time"]
    assert trail[2]["changes"]["starting_time"].endswith("Z")
    assert instant(trail[0]["at"]) <= instant(trail[1]["at"]) <= instant(trail[2]["at"])
    assert instant(trail[1]["at"]) == instant(changed["event"]["updated_at"])
