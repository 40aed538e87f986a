"""The edges of the API over real HTTP, on both backends: every malformed, extreme or merely
unusual input gets a 4xx that names what to fix (never a 500), and nothing stored changes.
Each class of input here once answered 500, or was accepted when it must not be."""

from __future__ import annotations

import json
import socket
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Person, Server, assert_error, at, event_body, sign_up

# Far enough from now that a change is allowed; the times the issue found, and the first
# instants outside the supported range (1900-01-01T00:00:00Z up to 9000-01-01T00:00:00Z).
OUT_OF_RANGE = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T22:00:00-14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "1899-12-31T23:59:59.999999Z",
    "1900-01-01T00:00:00+00:01",
    "9000-01-01T00:00:00Z",
    "8999-12-31T23:00:00-01:00",
]
# The longest wait for a condition on a busy machine; the test passes as soon as it holds.
CEILING = 120.0
LARGEST = 2**63 - 1


# ---------------------------------------------------------------------------------------------
# helpers


def create(http: httpx.Client, owner: Person, **overrides: Any) -> dict[str, Any]:
    answer = http.post("/api/events/", json=event_body(**overrides), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    event: dict[str, Any] = answer.json()["event"]
    return event


def versions(http: httpx.Client, who: Person, event_id: str) -> int:
    """How many facts the event has: a refused write adds none."""
    answer = http.get(f"/api/event/{event_id}/history", headers=who.headers)
    assert answer.status_code == 200, answer.text
    return len(answer.json()["history"])


def items_of(answer: httpx.Response) -> dict[str, dict[str, str]]:
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_items", error
    items: dict[str, dict[str, str]] = error["items"]
    return items


def wait_until_views_caught_up(http: httpx.Client, position: int) -> dict[str, Any]:
    """/readyz once every view has applied the log up to `position` (the views' process is
    alive and has got past every fact before it)."""
    deadline = time.monotonic() + CEILING
    while True:
        body: dict[str, Any] = http.get("/readyz").json()
        if all(view["position"] >= position for view in body["views"].values()):
            return body
        assert time.monotonic() < deadline, f"views stuck before position {position}: {body}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def event(http: httpx.Client, owner: Person) -> dict[str, Any]:
    return create(http, owner, name="Edge case")


# ---------------------------------------------------------------------------------------------
# defaults of the body reach the domain


def test_an_event_created_without_participants_has_none(http: httpx.Client,
                                                          owner: Person) -> None:
    body = event_body()
    del body["participants"]
    answer = http.post("/api/events/", json=body, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    assert answer.json()["event"]["participants"] == []


def test_an_event_without_participants_ending_before_it_starts_is_a_422_naming_end_time(
        http: httpx.Client, owner: Person) -> None:
    body = event_body(end_time=at(hours=1), starting_time=at(hours=2))
    del body["participants"]
    error = assert_error(http.post("/api/events/", json=body, headers=owner.headers), 422)
    assert set(error["fields"]) == {"end_time"}, error


def test_a_batch_item_without_participants_has_none(http: httpx.Client, owner: Person) -> None:
    body = event_body()
    del body["participants"]
    answer = http.post("/api/batch_events/", json=[body], headers=owner.headers)
    assert answer.status_code == 201, answer.text
    assert answer.json()["events"][0]["participants"] == []


# ---------------------------------------------------------------------------------------------
# times at the edge of the range


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
def test_creating_an_event_outside_the_supported_times_is_a_422_naming_the_field(
        http: httpx.Client, owner: Person, moment: str) -> None:
    starting = assert_error(http.post("/api/events/", json=event_body(
        starting_time=moment, end_time=at(hours=3)), headers=owner.headers), 422)
    assert "starting_time" in starting["fields"], starting
    assert "1900-01-01T00:00:00Z" in starting["fields"]["starting_time"], starting
    ending = assert_error(http.post("/api/events/", json=event_body(end_time=moment),
                                    headers=owner.headers), 422)
    assert "end_time" in ending["fields"], ending


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_moving_an_event_outside_the_supported_times_is_a_422_and_changes_nothing(
        http: httpx.Client, owner: Person, event: dict[str, Any], method: str,
        moment: str) -> None:
    before = versions(http, owner, event["id"])
    for field in ("starting_time", "end_time"):
        error = assert_error(http.request(method, f"/api/event/{event['id']}",
                                          json={field: moment}, headers=owner.headers), 422)
        assert field in error["fields"], error
    assert versions(http, owner, event["id"]) == before


@pytest.mark.parametrize("moment", OUT_OF_RANGE[:4])
def test_a_batch_outside_the_supported_times_is_a_422_naming_each_item(
        http: httpx.Client, owner: Person, event: dict[str, Any], moment: str) -> None:
    created = items_of(http.post("/api/batch_events/", json=[
        event_body(), event_body(starting_time=moment)], headers=owner.headers))
    assert set(created) == {"1"} and "starting_time" in created["1"], created
    before = versions(http, owner, event["id"])
    changed = items_of(http.put("/api/batch_events/", json=[
        {"id": event["id"], "end_time": moment}], headers=owner.headers))
    assert set(changed) == {"0"} and "end_time" in changed["0"], changed
    assert versions(http, owner, event["id"]) == before


@pytest.mark.parametrize("path", ["/api/events", "/api/search_event/Tel Aviv", "/api/events.ics"])
@pytest.mark.parametrize("name", ["starts_after", "starts_before"])
@pytest.mark.parametrize("moment", OUT_OF_RANGE[:3])
def test_a_list_filter_outside_the_supported_times_is_a_422_naming_it(
        http: httpx.Client, owner: Person, path: str, name: str, moment: str) -> None:
    error = assert_error(http.get(path, params={name: moment}, headers=owner.headers), 422)
    assert set(error["fields"]) == {name}, error


@pytest.mark.parametrize("start, end", [
    ("1900-01-01T00:00:00Z", "1900-01-01T01:00:00Z"),
    ("1900-01-01T14:00:00+14:00", "1900-01-01T15:00:00+14:00"),
    ("8999-12-31T22:00:00Z", "8999-12-31T23:59:59.999999Z"),
    ("8999-12-31T12:00:00-11:00", "8999-12-31T12:59:00-11:00"),
])
def test_events_at_the_ends_of_the_supported_times_are_stored_and_every_view_follows(
        http: httpx.Client, owner: Person, start: str, end: str) -> None:
    """The first and last instants are accepted, and every view (events, mail, reminders,
    which subtracts its offset) applies them and goes on: a later write is seen too."""
    invitee = f"{uuid.uuid4().hex[:8]}@example.com"
    marker = f"edge{uuid.uuid4().hex[:10]}"
    answer = http.post("/api/events/", json=event_body(
        name=marker, starting_time=start, end_time=end, participants=[invitee]),
        headers=owner.headers)
    assert answer.status_code == 201, answer.text
    later = http.post("/api/events/", json=event_body(), headers=owner.headers)
    assert later.status_code == 201, later.text
    body = wait_until_views_caught_up(http, int(later.headers["X-Position"]))
    assert body["status"] == "ready", body
    listed = http.get("/api/events", params={"starts_after": start, "starts_before": end,
                                             "q": marker}, headers=owner.headers)
    assert listed.status_code == 200, listed.text
    assert [e["id"] for e in listed.json()["events"]] == [answer.json()["event"]["id"]]


# ---------------------------------------------------------------------------------------------
# tokens that are not tokens


@pytest.mark.parametrize("value", [
    b"Bearer \xff\xfe\xfd",
    b"Bearer \xc3\x28.\xa0\xa1.\xe2\x28\xa1",
    "Bearer éé.éé.éé".encode(),
    b"Bearer " + b"a" * 6000,
    b"Bearer a.b",
    b"Bearer ...",
    b"Bearer a.b.c.d",
])
@pytest.mark.parametrize("path", ["/api/events", "/api/user/me"])
def test_any_garbage_in_the_authorization_header_is_a_401(http: httpx.Client, path: str,
                                                          value: bytes) -> None:
    assert_error(http.get(path, headers={"Authorization": value}), 401, "unauthorized")


@pytest.mark.parametrize("token", ["é.é.é", "a" * 100_000, "\x00.\x00.\x00", "\u0661.a.b"])
@pytest.mark.parametrize("path", ["/api/auth/refresh", "/api/auth/signout"])
def test_any_garbage_refresh_token_is_a_401(http: httpx.Client, path: str, token: str) -> None:
    body = json.dumps({"refresh": token}, ensure_ascii=True)
    assert_error(http.post(path, content=body, headers={"Content-Type": "application/json"}),
                 401, "unauthorized")


# ---------------------------------------------------------------------------------------------
# null is not "leave it"


@pytest.mark.parametrize("field", ["name", "starting_time", "end_time", "location",
                                   "participants"])
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_null_for_an_event_field_is_a_422_naming_it_and_records_nothing(
        http: httpx.Client, owner: Person, event: dict[str, Any], method: str,
        field: str) -> None:
    before = versions(http, owner, event["id"])
    error = assert_error(http.request(method, f"/api/event/{event['id']}",
                                      json={field: None}, headers=owner.headers), 422)
    assert set(error["fields"]) == {field} and "null" in error["fields"][field], error
    assert versions(http, owner, event["id"]) == before


def test_null_in_a_batch_change_is_a_422_naming_the_item_and_field(
        http: httpx.Client, owner: Person, event: dict[str, Any]) -> None:
    before = versions(http, owner, event["id"])
    items = items_of(http.put("/api/batch_events/", json=[{"id": event["id"], "name": None}],
                              headers=owner.headers))
    assert set(items) == {"0"} and "null" in items["0"]["name"], items
    assert versions(http, owner, event["id"]) == before


@pytest.mark.parametrize("field", ["username", "email", "password", "current_password"])
def test_null_for_an_account_field_is_a_422_naming_it(http: httpx.Client, field: str) -> None:
    person = sign_up(http, "nulls")
    error = assert_error(http.put(f"/api/user/{person.id}", json={field: None},
                                  headers=person.headers), 422)
    assert set(error["fields"]) == {field}, error
    me = http.get("/api/user/me", headers=person.headers).json()["user"]
    assert (me["username"], me["email"]) == (person.username, person.email)


def test_the_change_schemas_say_fields_may_be_left_out_but_never_null(
        http: httpx.Client) -> None:
    schemas = http.get("/docs/openapi.json").json()["components"]["schemas"]
    for name in ("EventChangeBody", "UserChangeBody"):
        for field, schema in schemas[name]["properties"].items():
            assert not schema.get("nullable") and "default" not in schema, (name, field, schema)


# ---------------------------------------------------------------------------------------------
# `me`, and 405s that say what is allowed


def test_me_works_for_every_method_of_a_user_path(http: httpx.Client) -> None:
    person = sign_up(http, "itsme")
    allowed = http.request("POST", f"/api/user/{person.id}", headers=person.headers)
    assert_error(allowed, 405)
    methods = {m.strip() for m in allowed.headers["Allow"].split(",")}
    assert {"GET", "PUT", "DELETE"} <= methods, methods
    me_allowed = http.request("POST", "/api/user/me", headers=person.headers).headers["Allow"]
    assert {m.strip() for m in me_allowed.split(",")} == methods
    got = http.get("/api/user/me", headers=person.headers)
    assert got.status_code == 200 and got.json()["user"]["id"] == person.id, got.text
    renamed = f"{person.username}_2"
    put = http.put("/api/user/me", json={"username": renamed}, headers=person.headers)
    assert put.status_code == 200 and put.json()["user"]["username"] == renamed, put.text
    deleted = http.delete("/api/user/me", headers=person.headers)
    assert deleted.status_code == 200, deleted.text
    assert_error(http.get("/api/user/me", headers=person.headers), 401)


@pytest.mark.parametrize("method, path, expected", [
    ("PATCH", "/api/events", {"GET", "POST"}),
    ("POST", "/api/event/{id}", {"GET", "PUT", "PATCH", "DELETE"}),
    ("DELETE", "/api/event/{id}/history", {"GET"}),
    ("PUT", "/api/search_event/Tel Aviv", {"GET"}),
    ("POST", "/api/user/{id}", {"GET", "PUT", "DELETE"}),
    ("GET", "/api/batch_events", {"POST", "PUT", "DELETE"}),
    ("GET", "/api/auth/signin", {"POST"}),
])
def test_a_405_names_the_allowed_methods(http: httpx.Client, owner: Person,
                                         event: dict[str, Any], method: str, path: str,
                                         expected: set[str]) -> None:
    answer = http.request(method, path.format(id=event["id"]), headers=owner.headers)
    assert_error(answer, 405, "method_not_allowed")
    allowed = {m.strip() for m in answer.headers.get("Allow", "").split(",") if m.strip()}
    assert expected <= allowed and method not in allowed, answer.headers


# ---------------------------------------------------------------------------------------------
# whole numbers in the query


@pytest.mark.parametrize("name, value", [
    ("limit", "١٢"), ("limit", "１２"), ("limit", "-1"), ("limit", "0"), ("limit", "1001"),
    ("limit", "1_0"), ("limit", "+5"), ("limit", "5.0"), ("limit", "9" * 26),
    ("min_position", "-5"), ("min_position", "9" * 26), ("min_position", "١"),
    ("min_position", str(LARGEST + 1)), ("min_position", "0x10"),
])
@pytest.mark.parametrize("path", ["/api/events", "/api/search_event/Tel Aviv", "/api/events.ics"])
def test_a_whole_number_in_the_query_takes_ascii_digits_within_bounds(
        http: httpx.Client, owner: Person, path: str, name: str, value: str) -> None:
    error = assert_error(http.get(path, params={name: value}, headers=owner.headers), 422)
    assert set(error["fields"]) == {name}, error


@pytest.mark.parametrize("value", ["١", "9" * 26, str(LARGEST + 1)])
def test_as_of_takes_a_version_in_ascii_digits_within_bounds(
        http: httpx.Client, owner: Person, event: dict[str, Any], value: str) -> None:
    error = assert_error(http.get(f"/api/event/{event['id']}", params={"as_of": value},
                                  headers=owner.headers), 422)
    assert set(error["fields"]) == {"as_of"}, error


@pytest.mark.parametrize("value", ['"١"', '"9999999999999999999999999"', '"-1"', '"0x1"'])
def test_if_match_takes_a_version_in_ascii_digits_within_bounds(
        http: httpx.Client, owner: Person, event: dict[str, Any], value: str) -> None:
    before = versions(http, owner, event["id"])
    assert_error(http.put(f"/api/event/{event['id']}", json={"name": "Pinned"},
                          headers={**owner.headers, "If-Match": value.encode()}), 400)
    assert versions(http, owner, event["id"]) == before


# ---------------------------------------------------------------------------------------------
# sizes: the URL, the header fields, the body


def test_a_url_over_8_kib_is_a_414_saying_the_url_is_too_long(http: httpx.Client,
                                                              owner: Person) -> None:
    error = assert_error(http.get("/api/events?q=" + "a" * 9000, headers=owner.headers), 414,
                         "uri_too_long")
    assert "URL" in error["message"], error


def test_header_fields_over_8_kib_are_a_431_saying_so(http: httpx.Client,
                                                       owner: Person) -> None:
    answer = http.get("/api/events", headers={**owner.headers, "X-Padding": "a" * 9000})
    error = assert_error(answer, 431, "headers_too_large")
    assert "header" in error["message"], error


def test_a_body_over_1_mib_is_still_a_413_about_the_body(http: httpx.Client,
                                                         owner: Person) -> None:
    answer = http.post("/api/events/", content=b"[" + b"1," * 600_000 + b"1]",
                       headers={**owner.headers, "Content-Type": "application/json"})
    error = assert_error(answer, 413, "too_large")
    assert "body" in error["message"], error


# ---------------------------------------------------------------------------------------------
# a batch reports every item's problems


def test_a_batch_create_reports_every_kind_of_problem_of_every_item(
        http: httpx.Client, owner: Person) -> None:
    naive = event_body(starting_time="2031-01-01T10:00:00")
    backwards = event_body(starting_time=at(hours=3), end_time=at(hours=2))
    nobody = event_body(participants=[f"nobody_{uuid.uuid4().hex[:8]}"])
    too_early = event_body(starting_time="0001-01-01T00:00:00Z")
    items = items_of(http.post("/api/batch_events/", json=[
        naive, event_body(), backwards, nobody, too_early], headers=owner.headers))
    assert set(items) == {"0", "2", "3", "4"}, items
    assert "starting_time" in items["0"] and "end_time" in items["2"], items
    assert "participants" in items["3"] and "starting_time" in items["4"], items


def test_a_batch_change_reports_every_kind_of_problem_of_every_item(
        http: httpx.Client, owner: Person, other: Person) -> None:
    mine = [create(http, owner) for _ in range(4)]
    theirs = create(http, other)
    before = [versions(http, owner, e["id"]) for e in mine]
    items = items_of(http.put("/api/batch_events/", json=[
        {"id": mine[0]["id"], "starting_time": "2031-01-01T10:00:00"},
        {"id": mine[1]["id"], "end_time": at(minutes=1)},
        {"id": str(uuid.uuid4()), "name": "Ghost"},
        {"id": theirs["id"], "name": "Not mine"},
        {"id": mine[2]["id"], "name": None},
        {"id": mine[3]["id"], "name": "Fine"},
    ], headers=owner.headers))
    assert set(items) == {"0", "1", "2", "3", "4"}, items
    assert "starting_time" in items["0"] and "end_time" in items["1"], items
    assert "name" in items["4"], items
    assert [versions(http, owner, e["id"]) for e in mine] == before


def test_a_batch_delete_reports_every_item_that_cannot_be_deleted(
        http: httpx.Client, owner: Person, other: Person) -> None:
    mine, theirs = create(http, owner), create(http, other)
    items = items_of(http.request("DELETE", "/api/batch_events/", json=[
        "not an id", mine["id"], str(uuid.uuid4()), theirs["id"]], headers=owner.headers))
    assert set(items) == {"0", "2", "3"}, items
    assert versions(http, owner, mine["id"]) == 1


# ---------------------------------------------------------------------------------------------
# text the database cannot hold or index (PostgreSQL: no NUL byte, no word of 2 KiB)


@pytest.mark.parametrize("params", [
    {"participant": "\x00"}, {"participant": "a\x00b"}, {"location": "a\x00"},
    {"q": "a" * 3000}, {"location": "é" * 1100}, {"q": "tel " + "b" * 2047},
])
@pytest.mark.parametrize("path", ["/api/events", "/api/search_event/Nowhere", "/api/events.ics"])
def test_a_filter_no_event_can_match_answers_an_empty_page(
        http: httpx.Client, owner: Person, path: str, params: dict[str, str]) -> None:
    answer = http.get(path, params=params, headers=owner.headers)
    assert answer.status_code == 200, answer.text
    assert "VEVENT" not in answer.text and '"id"' not in answer.text


@pytest.mark.parametrize("path, name", [
    ("/api/events", "q"), ("/api/events", "location"), ("/api/events.ics", "location"),
    ("/api/search_event/Tel Aviv", "q"),  # (the path is its location)
])
def test_a_word_filter_without_a_word_is_a_422_naming_it(
        http: httpx.Client, owner: Person, path: str, name: str) -> None:
    error = assert_error(http.get(path, params={name: "\x00 !"}, headers=owner.headers), 422)
    assert set(error["fields"]) == {name}, error


@pytest.mark.parametrize("words", ["a%00", "a" * 3000, "%C3%A9" * 1200])
def test_a_search_path_no_event_can_match_answers_an_empty_page(
        http: httpx.Client, owner: Person, words: str) -> None:
    answer = http.get(f"/api/search_event/{words}", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["events"] == []


@pytest.mark.parametrize("user_id", ["%00", "a%00b", "not-a-uuid", "9" * 40])
def test_a_user_path_that_is_no_account_id_is_a_404(http: httpx.Client, owner: Person,
                                                    user_id: str) -> None:
    assert_error(http.get(f"/api/user/{user_id}", headers=owner.headers), 404)
    assert_error(http.put(f"/api/user/{user_id}", json={}, headers=owner.headers), 404)


@pytest.mark.parametrize("entry", ["\x00", "ab\x00c", "two words", "x" * 151])
def test_a_participant_that_is_neither_a_username_nor_an_address_is_a_422_naming_it(
        http: httpx.Client, owner: Person, event: dict[str, Any], entry: str) -> None:
    created = assert_error(http.post("/api/events/", json=event_body(participants=[entry]),
                                     headers=owner.headers), 422)
    assert any(name.startswith("participants") for name in created["fields"]), created
    changed = assert_error(http.put(f"/api/event/{event['id']}", json={"participants": [entry]},
                                    headers=owner.headers), 422)
    assert any(name.startswith("participants") for name in changed["fields"]), changed
    items = items_of(http.put("/api/batch_events/", json=[
        {"id": event["id"], "participants": [entry]}], headers=owner.headers))
    assert set(items) == {"0"}, items


@pytest.mark.parametrize("username", ["\x00", "a\x00b", "x" * 5000])
def test_signing_in_with_a_name_no_account_can_have_is_a_401(http: httpx.Client,
                                                              username: str) -> None:
    answer = http.post("/api/auth/signin/", json={"username": username, "password": "whatever"})
    assert_error(answer, 401, "unauthorized")


@pytest.mark.parametrize("target", [b"/api/event/\x00", b"/api/events?q=\x00", b"/\x7f"])
def test_a_url_with_a_raw_control_character_is_a_400_not_a_dropped_connection(
        server: Server, target: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=CEILING) as conn:
        conn.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = conn.recv(4096)
            assert chunk, f"the connection closed without an answer: {received!r}"
            received += chunk
    assert received.startswith(b"HTTP/1.1 400 "), received


def test_a_server_log_holds_no_unexpected_error_after_all_of_the_above(server: Server) -> None:
    """Every answer above was a 4xx by design: none went through the 500 path."""
    log = server.log_path.read_text(errors="replace")
    assert "unexpected error" not in log, log[-5000:]
