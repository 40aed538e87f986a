"""Lists, search and iCalendar over real HTTP against a real `alphabet serve`: the events view
answers with cursor pages in (starting_time, id) order, filters, read-your-writes through
?min_position, /readyz reports the view's lag, and `alphabet replay` rebuilds the view beside
the running server, row for row."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from icalendar import Calendar

from tests.conftest import Person, Server, Spawn, at, event_body, eventually, sign_up

ROOT = Path(__file__).resolve().parents[2]
PLUS_TWO = timezone(timedelta(hours=2))


# ---------------------------------------------------------------------------------------------
# helpers


def marker() -> str:
    """A word no other test uses, to keep each test's events apart in the shared server."""
    return "m" + uuid.uuid4().hex[:12]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def whole_hour(hours: int) -> datetime:
    """A time on a whole second (iCalendar has no fractions of a second)."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)


def create(http: httpx.Client, owner: Person, **overrides: Any) -> tuple[dict[str, Any], int]:
    """The created event and the X-Position of its write."""
    answer = http.post("/api/events/", json=event_body(**overrides), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    event: dict[str, Any] = answer.json()["event"]
    return event, int(answer.headers["X-Position"])


def change(http: httpx.Client, owner: Person, event_id: str, **fields: Any) -> int:
    answer = http.put(f"/api/event/{event_id}", json=fields, headers=owner.headers)
    assert answer.status_code == 200, answer.text
    return int(answer.headers["X-Position"])


def delete(http: httpx.Client, owner: Person, event_id: str) -> int:
    answer = http.delete(f"/api/event/{event_id}", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    return int(answer.headers["X-Position"])


def listing(http: httpx.Client, who: Person, path: str = "/api/events/",
            **params: Any) -> httpx.Response:
    return http.get(path, params=params, headers=who.headers)


def page(http: httpx.Client, who: Person, path: str = "/api/events/",
         **params: Any) -> dict[str, Any]:
    answer = listing(http, who, path, **params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) == {"events", "next"}
    return body


def all_pages(http: httpx.Client, who: Person, path: str = "/api/events/",
              **params: Any) -> list[list[dict[str, Any]]]:
    """Follow `next` to the end; returns the pages."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        body = page(http, who, path, **params, **({"cursor": cursor} if cursor else {}))
        pages.append(body["events"])
        cursor = body["next"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination never ends"


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [event["id"] for event in events]


def in_order(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: (instant(e["starting_time"]), e["id"]))


def error(answer: httpx.Response, status: int) -> dict[str, Any]:
    """The contract's error envelope with the expected status; returns its `error`."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "fields"} <= set(body["error"]), body
    assert body["error"]["message"] and "Traceback" not in answer.text
    found: dict[str, Any] = body["error"]
    return found


def readyz(http: httpx.Client) -> dict[str, Any]:
    answer = http.get("/readyz")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def caught_up(http: httpx.Client) -> int:
    """Wait until the events view has applied every fact in the log; returns the head."""
    def head() -> int | None:
        ready = readyz(http)
        return int(ready["position"]) if ready["views"]["events"]["lag"] == 0 else None

    return eventually(head, lambda: f"the view did not catch up: {readyz(http)}")


def calendar_of(answer: httpx.Response) -> Calendar:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/calendar")
    return Calendar.from_ical(answer.text)


def snapshot(server: Server) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the events view's tables (on SQLite the FTS table by its content; on
    PostgreSQL the search column is in the view's rows)."""
    tables = {
        "events_view": "SELECT * FROM events_view ORDER BY seq",
        "event_people": "SELECT * FROM event_people ORDER BY person_id, starting_time, event_id",
        "events_cancelled": "SELECT * FROM events_cancelled "
                            "ORDER BY person_id, cancelled_at, event_id",
    }
    if server.backend.kind == "sqlite":
        tables["events_search"] = "SELECT rowid, name, location FROM events_search ORDER BY rowid"
    return {table: server.rows(sql) for table, sql in tables.items()}






# ---------------------------------------------------------------------------------------------
# read your writes


def test_a_new_event_is_listed_at_once_when_the_list_asks_for_its_position(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    word = marker()
    event, written = create(http, owner, location=f"Hall {word}", participants=[other.username])
    answer = listing(http, other, location=word, min_position=written)
    assert answer.status_code == 200, answer.text
    assert int(answer.headers["X-Position"]) >= written
    listed = answer.json()["events"]
    assert ids(listed) == [event["id"]]
    # the row shown by the list is the event as GET shows it to the same reader
    shown = http.get(f"/api/event/{event['id']}", headers=other.headers).json()["event"]
    assert listed[0] == shown


def test_a_new_event_is_found_by_search_at_once_with_min_position(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    event, written = create(http, owner, name=f"Kickoff {word}", location="Tel Aviv Port")
    answer = listing(http, owner, "/api/search_event/tel aviv", q=word, min_position=written)
    assert answer.status_code == 200, answer.text
    assert int(answer.headers["X-Position"]) >= written
    assert ids(answer.json()["events"]) == [event["id"]]


def test_a_change_and_a_delete_are_visible_at_once_with_min_position(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    event, _ = create(http, owner, location=f"Hall {word}")
    written = change(http, owner, event["id"], name="Renamed at once")
    listed = page(http, owner, location=word, min_position=written)["events"]
    assert [(e["name"], e["version"]) for e in listed] == [("Renamed at once", 2)]
    gone = delete(http, owner, event["id"])
    assert page(http, owner, location=word, min_position=gone)["events"] == []


def test_a_min_position_beyond_the_log_answers_200_after_a_bounded_wait_with_the_view_position(
    http: httpx.Client, owner: Person
) -> None:
    head = caught_up(http)
    started = time.monotonic()
    answer = listing(http, owner, location=marker(), min_position=head + 1_000_000)
    waited = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"events": [], "next": None}
    assert head <= int(answer.headers["X-Position"]) < head + 1_000_000
    assert waited < 10


def test_readyz_reports_the_events_view_position_and_lag(
    http: httpx.Client, owner: Person
) -> None:
    _, written = create(http, owner, location=f"Hall {marker()}")
    ready = readyz(http)
    view = ready["views"]["events"]
    assert isinstance(view["position"], int) and isinstance(view["lag"], int)
    assert 0 <= view["position"] <= ready["position"]
    assert view["lag"] == ready["position"] - view["position"]
    assert ready["position"] >= written
    head = caught_up(http)
    view = readyz(http)["views"]["events"]
    assert view["lag"] == 0 and view["position"] >= head >= written


# ---------------------------------------------------------------------------------------------
# order and pagination


def test_twenty_five_events_page_by_ten_in_three_pages_in_start_order_without_duplicates(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    created: list[dict[str, Any]] = []
    written = 0
    for hours in (17, 3, 24, 9, 12, 1, 20, 6, 15, 22, 4, 11, 25, 8, 18, 2, 14, 21, 7, 13, 23,
                  5, 19, 10, 16):  # created out of order: the list orders them
        event, written = create(http, owner, location=f"Hall {word}",
                                starting_time=at(hours=hours), end_time=at(hours=hours + 1))
        created.append(event)
    first = listing(http, owner, location=word, limit=10, min_position=written)
    assert first.status_code == 200
    pages = [first.json()["events"]]
    cursor = first.json()["next"]
    while cursor:
        body = page(http, owner, location=word, limit=10, cursor=cursor)
        pages.append(body["events"])
        cursor = body["next"]
    assert [len(p) for p in pages] == [10, 10, 5]
    listed = [event for p in pages for event in p]
    assert len(set(ids(listed))) == 25
    assert ids(listed) == ids(in_order(created))
    assert [instant(e["starting_time"]) for e in listed] == sorted(
        instant(e["starting_time"]) for e in created)


def test_events_with_the_same_start_are_ordered_by_id_and_paginate_without_loss(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    same = at(hours=40)
    before, _ = create(http, owner, location=f"Hall {word}", starting_time=at(hours=39),
                       end_time=at(hours=41))
    twins = [create(http, owner, location=f"Hall {word}", starting_time=same,
                    end_time=at(hours=41))[0] for _ in range(7)]
    after, written = create(http, owner, location=f"Hall {word}", starting_time=at(hours=40.5),
                            end_time=at(hours=41))
    page(http, owner, location=word, min_position=written)
    pages = all_pages(http, owner, location=word, limit=3)
    assert [len(p) for p in pages] == [3, 3, 3]
    listed = [event for p in pages for event in p]
    assert ids(listed) == [before["id"], *sorted(ids(twins)), after["id"]]


def test_the_default_page_holds_100_events_and_a_limit_of_1000_is_allowed(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    items = [event_body(name=f"Bulk {i}", location=f"Depot {word}",
                        starting_time=at(hours=50, minutes=i), end_time=at(hours=52))
             for i in range(120)]
    answer = http.post("/api/batch_events/", json=items, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    written = int(answer.headers["X-Position"])
    default = page(http, owner, location=word, min_position=written)
    assert len(default["events"]) == 100 and default["next"]
    rest = page(http, owner, location=word, cursor=default["next"])
    assert len(rest["events"]) == 20 and rest["next"] is None
    everything = page(http, owner, location=word, limit=1000)
    assert len(everything["events"]) == 120 and everything["next"] is None
    assert ids(everything["events"]) == ids(default["events"]) + ids(rest["events"])
    assert page(http, owner, location=word, limit=1)["next"]


def test_a_cursor_stays_valid_when_only_the_limit_changes(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    written = 0
    created = []
    for hours in (60, 61, 62, 63):
        event, written = create(http, owner, location=f"Hall {word}",
                                starting_time=at(hours=hours), end_time=at(hours=hours + 1))
        created.append(event)
    first = page(http, owner, location=word, limit=1, min_position=written)
    rest = page(http, owner, location=word, limit=10, cursor=first["next"])
    assert ids(first["events"] + rest["events"]) == ids(created)


def test_deleted_events_are_neither_listed_nor_found(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    kept, _ = create(http, owner, name=f"Kept {word}", location="Tel Aviv Port")
    dropped, _ = create(http, owner, name=f"Dropped {word}", location="Tel Aviv Port")
    gone = delete(http, owner, dropped["id"])
    assert ids(page(http, owner, q=word, min_position=gone)["events"]) == [kept["id"]]
    found = page(http, owner, "/api/search_event/Tel Aviv", q=word, min_position=gone)
    assert ids(found["events"]) == [kept["id"]]


# ---------------------------------------------------------------------------------------------
# filters


def test_starts_after_is_inclusive_and_starts_before_is_exclusive_whatever_the_offset(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    times = [whole_hour(h) for h in (70, 71, 72)]
    events = []
    written = 0
    for start in times:
        event, written = create(http, owner, location=f"Hall {word}",
                                starting_time=start.isoformat(),
                                end_time=(start + timedelta(minutes=30)).isoformat())
        events.append(event)
    middle = times[1].astimezone(PLUS_TWO).isoformat()  # the same instant, written at +02:00
    page(http, owner, location=word, min_position=written)
    assert ids(page(http, owner, location=word, starts_after=middle)["events"]) == ids(events[1:])
    assert ids(page(http, owner, location=word, starts_before=middle)["events"]) == ids(events[:1])
    between = page(http, owner, location=word, starts_after=times[0].isoformat(),
                   starts_before=times[2].isoformat().replace("+00:00", "Z"))
    assert ids(between["events"]) == ids(events[:2])


def test_q_matches_words_of_the_name_ignoring_case_and_accents(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    planning, _ = create(http, owner, name=f"Quarterly Planning {word}",
                         location=f"Hall {word}")
    _, written = create(http, owner, name=f"Retrospective {word}", location=f"Hall {word}")
    found = page(http, owner, location=word, q="PLÁNNING quarterly", min_position=written)
    assert ids(found["events"]) == [planning["id"]]
    assert page(http, owner, location=word, q="planning retrospective")["events"] == []


def test_the_participant_filter_lists_the_events_a_user_takes_part_in(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    guest = sign_up(http, "guest")
    with_guest, _ = create(http, owner, location=f"Hall {word}", participants=[guest.username],
                           starting_time=at(hours=80), end_time=at(hours=81))
    create(http, owner, location=f"Hall {word}")
    elsewhere, _ = create(http, owner, location="Haifa Bay", participants=[guest.username],
                          starting_time=at(hours=82), end_time=at(hours=83))
    later, written = create(http, owner, location=f"Hall {word}", participants=[],
                            starting_time=at(hours=84), end_time=at(hours=85))
    page(http, owner, min_position=written)
    assert ids(page(http, owner, participant=guest.username)["events"]) == [
        with_guest["id"], elsewhere["id"]]
    both = page(http, owner, participant=guest.username, location=word)
    assert ids(both["events"]) == [with_guest["id"]]
    # participant changes move the event in and out of the filter, and keep its order
    written = change(http, owner, later["id"], participants=[guest.username])
    written = change(http, owner, with_guest["id"], participants=[], name="Without the guest")
    assert ids(page(http, owner, participant=guest.username, min_position=written)["events"]) \
        == [elsewhere["id"], later["id"]]
    # the username is matched like sign-in: case does not matter
    assert ids(page(http, owner, participant=guest.username.upper())["events"]) == [
        elsewhere["id"], later["id"]]


def test_a_participant_filter_with_an_unknown_username_gives_an_empty_list(
    http: httpx.Client, owner: Person
) -> None:
    create(http, owner, location=f"Hall {marker()}")
    assert page(http, owner, participant=f"nobody_{uuid.uuid4().hex[:8]}") == {
        "events": [], "next": None}


@pytest.mark.parametrize("limit", ["0", "1001", "x", "-5", "2.5"])
def test_a_limit_outside_one_to_a_thousand_or_not_a_number_is_a_422_naming_limit(
    http: httpx.Client, owner: Person, limit: str
) -> None:
    for path in ("/api/events/", "/api/search_event/Tel Aviv"):
        found = error(listing(http, owner, path, limit=limit), 422)
        assert "limit" in found["fields"]


@pytest.mark.parametrize("name", ["starts_after", "starts_before"])
@pytest.mark.parametrize("value", ["2026-12-01T18:00:00", "tomorrow", "2026-13-45T00:00:00Z"])
def test_a_time_filter_without_an_offset_or_not_a_time_is_a_422_naming_it(
    http: httpx.Client, owner: Person, name: str, value: str
) -> None:
    found = error(listing(http, owner, **{name: value}), 422)
    assert name in found["fields"]
    if value == "2026-12-01T18:00:00":
        assert "offset" in found["message"]


def test_a_min_position_that_is_not_a_number_is_a_422(http: httpx.Client, owner: Person) -> None:
    found = error(listing(http, owner, min_position="soon"), 422)
    assert "min_position" in found["fields"]


def test_a_location_or_q_without_any_letter_or_digit_is_a_422(
    http: httpx.Client, owner: Person
) -> None:
    assert "location" in error(listing(http, owner, location="-- !"), 422)["fields"]
    assert "q" in error(listing(http, owner, q="***"), 422)["fields"]


def test_lists_need_a_signed_in_user(http: httpx.Client) -> None:
    for path in ("/api/events/", "/api/search_event/Haifa", "/api/events.ics"):
        assert error(http.get(path), 401)["code"] == "unauthorized"


# ---------------------------------------------------------------------------------------------
# cursors


@pytest.fixture(scope="module")
def cursor_case(http: httpx.Client, owner: Person) -> tuple[str, str]:
    """A location word with three events, and the cursor after its first page of one."""
    word = marker()
    written = 0
    for hours in (90, 91, 92):
        _, written = create(http, owner, location=f"Hall {word}", name=f"Cursor {word}",
                            starting_time=at(hours=hours), end_time=at(hours=hours + 1))
    first = page(http, owner, location=word, limit=1, min_position=written)
    assert first["next"]
    return word, first["next"]


@pytest.mark.parametrize("change", [
    "no filters", "plus q", "plus starts_after", "plus starts_before", "plus participant",
    "another location",
])
def test_a_cursor_used_with_other_filters_is_a_422(
    http: httpx.Client, owner: Person, cursor_case: tuple[str, str], change: str
) -> None:
    word, cursor = cursor_case
    params: dict[str, str] = {
        "no filters": {},
        "plus q": {"location": word, "q": "cursor"},
        "plus starts_after": {"location": word, "starts_after": "2020-01-01T00:00:00Z"},
        "plus starts_before": {"location": word, "starts_before": "2099-01-01T00:00:00Z"},
        "plus participant": {"location": word, "participant": owner.username},
        "another location": {"location": "hall"},
    }[change]
    found = error(listing(http, owner, cursor=cursor, **params), 422)
    assert "cursor" in found["fields"]


def test_a_cursor_from_the_list_is_refused_by_a_search_with_other_words(
    http: httpx.Client, owner: Person, cursor_case: tuple[str, str]
) -> None:
    _, cursor = cursor_case
    found = error(listing(http, owner, "/api/search_event/Tel Aviv", cursor=cursor), 422)
    assert "cursor" in found["fields"]


@pytest.mark.parametrize("mangle", [
    lambda c: "garbage",
    lambda c: c[: len(c) // 2],
    lambda c: c + "AAAA",
    lambda c: "!" + c[1:],
    lambda c: base64.urlsafe_b64encode(b'{"a": 1}').decode(),
    lambda c: base64.urlsafe_b64encode(b"[1, 2, 3]").decode(),
], ids=["garbage", "truncated", "extended", "bad character", "an object", "numbers"])
def test_a_malformed_cursor_is_a_422(
    http: httpx.Client, owner: Person, cursor_case: tuple[str, str], mangle: Any
) -> None:
    word, cursor = cursor_case
    found = error(listing(http, owner, location=word, cursor=mangle(cursor)), 422)
    assert "cursor" in found["fields"]


def test_a_cursor_rewritten_by_the_client_to_point_elsewhere_is_a_422(
    http: httpx.Client, owner: Person, cursor_case: tuple[str, str]
) -> None:
    """The cursor is opaque: a client that decodes it and changes where it points (keeping its
    shape) has tampered with it, and the server must notice."""
    word, cursor = cursor_case
    padded = cursor + "=" * (-len(cursor) % 4)
    _, event_id, digest = json.loads(base64.urlsafe_b64decode(padded))
    forged = base64.urlsafe_b64encode(
        json.dumps(["2000-01-01T00:00:00.000000Z", event_id, digest]).encode()
    ).decode().rstrip("=")
    assert forged != cursor
    found = error(listing(http, owner, location=word, cursor=forged), 422)
    assert "cursor" in found["fields"]


# ---------------------------------------------------------------------------------------------
# search


@pytest.mark.parametrize("path", [
    "/api/search_event/tel aviv",
    "/api/search_event/Tel-Aviv",
    "/api/search_event/TEL AVIV",
    "/api/search_event/Tel%20Aviv",
    "/api/search_event/T%C3%A9l%20Av%C3%ADv",
    "/api/search_event/Tél Avív",
    "/api/search_event/port",
    "/api/search_event/tel aviv/",
], ids=["lower", "hyphen", "upper", "url-encoded", "encoded accents", "accents", "one word",
        "trailing slash"])
def test_search_finds_tel_aviv_port_whatever_the_case_accents_punctuation_or_encoding(
    http: httpx.Client, owner: Person, path: str
) -> None:
    word = marker()
    port, _ = create(http, owner, name=f"Sail {word}", location="Tel Aviv Port")
    haifa, _ = create(http, owner, name=f"Sail {word}", location="Haifa Port")
    _, written = create(http, owner, name=f"Sail {word}", location="Tel Hai")
    found = page(http, owner, path, q=word, min_position=written)["events"]
    expected = in_order([port, haifa]) if path.endswith("port") else [port]
    assert ids(found) == ids(expected)


def test_search_matches_an_accented_location_with_plain_letters(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    cafe, written = create(http, owner, name=f"Coffee {word}", location="Café Tél Avív, Rothschild")
    found = page(http, owner, "/api/search_event/cafe TEL aviv", q=word, min_position=written)
    assert ids(found["events"]) == [cafe["id"]]
    assert page(http, owner, "/api/search_event/rothschild haifa", q=word)["events"] == []


def test_search_is_paginated_like_the_list(http: httpx.Client, owner: Person) -> None:
    word = marker()
    created = []
    written = 0
    for hours in (100, 96, 98, 97, 99):
        event, written = create(http, owner, name=f"Regatta {word}", location="Tel Aviv Port",
                                starting_time=at(hours=hours), end_time=at(hours=hours + 1))
        created.append(event)
    page(http, owner, "/api/search_event/tel aviv", q=word, min_position=written)
    pages = all_pages(http, owner, "/api/search_event/tel aviv", q=word, limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert ids([e for p in pages for e in p]) == ids(in_order(created))
    # the same filters through the list give the same order
    assert ids(page(http, owner, location="Tel-Aviv", q=word)["events"]) == ids(in_order(created))


# ---------------------------------------------------------------------------------------------
# iCalendar


def test_one_event_as_icalendar_has_its_id_revision_times_name_and_location(
    http: httpx.Client, owner: Person
) -> None:
    start, end = whole_hour(110), whole_hour(112)
    event, _ = create(http, owner, name="Board meeting", location="Jerusalem, Room 4",
                      starting_time=start.isoformat(), end_time=end.isoformat())
    change(http, owner, event["id"], name="Board meeting (moved)",
           starting_time=whole_hour(111).isoformat())
    answer = http.get(f"/api/event/{event['id']}.ics", headers=owner.headers)
    calendar = calendar_of(answer)
    assert str(calendar["VERSION"]) == "2.0" and calendar.get("PRODID")
    vevents = calendar.walk("VEVENT")
    assert len(vevents) == 1
    vevent = vevents[0]
    assert str(vevent["UID"]) == event["id"]
    # SEQUENCE counts revisions of time or place (as invitations do), not versions
    assert vevent.decoded("SEQUENCE") == 1
    assert vevent.get("DTSTAMP") is not None
    assert str(vevent["SUMMARY"]) == "Board meeting (moved)"
    assert str(vevent["LOCATION"]) == "Jerusalem, Room 4"
    assert vevent.decoded("DTSTART") == whole_hour(111)
    assert vevent.decoded("DTEND") == end
    assert vevent.decoded("DTSTART").utcoffset() == timedelta(0)


def test_the_events_calendar_exports_the_listed_events_with_the_list_filters(
    http: httpx.Client, owner: Person
) -> None:
    word = marker()
    created = []
    written = 0
    for hours in (122, 120, 121):
        start = whole_hour(hours)
        event, written = create(http, owner, name=f"Lecture {hours}", location=f"Aula {word}",
                                starting_time=start.isoformat(),
                                end_time=(start + timedelta(hours=1)).isoformat())
        created.append(event)
    gone = delete(http, owner, created[0]["id"])
    page(http, owner, location=word, min_position=max(written, gone))
    calendar = calendar_of(http.get("/api/events.ics", params={"location": word},
                                    headers=owner.headers))
    vevents = calendar.walk("VEVENT")
    expected = in_order(created[1:])
    assert [str(v["UID"]) for v in vevents] == ids(expected)
    for vevent, event in zip(vevents, expected, strict=True):
        # a view row does not know the revision: left out (0) rather than guessed, so a
        # calendar app that imports the list still takes later invitations as newer
        assert vevent.get("SEQUENCE") is None
        assert vevent.get("DTSTAMP") is not None
        assert str(vevent["SUMMARY"]) == event["name"]
        assert str(vevent["LOCATION"]) == event["location"]
        assert vevent.decoded("DTSTART") == instant(event["starting_time"])
        assert vevent.decoded("DTEND") == instant(event["end_time"])


def test_the_calendar_of_an_unknown_event_is_a_404_json_envelope(
    http: httpx.Client, owner: Person
) -> None:
    assert error(http.get(f"/api/event/{uuid.uuid4()}.ics", headers=owner.headers),
                 404)["code"] == "not_found"
    assert error(http.get("/api/event/not-an-id.ics", headers=owner.headers), 404)


def test_the_calendar_of_a_deleted_event_is_a_410_json_envelope(
    http: httpx.Client, owner: Person
) -> None:
    event, _ = create(http, owner)
    delete(http, owner, event["id"])
    assert error(http.get(f"/api/event/{event['id']}.ics", headers=owner.headers),
                 410)["code"] == "gone"


# ---------------------------------------------------------------------------------------------
# replay


def batch(http: httpx.Client, who: Person, method: str, body: list[Any],
          status: int = 200) -> tuple[list[dict[str, Any]], int]:
    answer = http.request(method, "/api/batch_events/", json=body, headers=who.headers)
    assert answer.status_code == status, answer.text
    return answer.json()["events"], int(answer.headers["X-Position"])


def test_replay_rebuilds_the_views_row_for_row_while_the_server_keeps_answering(
    server: Server, http: httpx.Client, owner: Person, other: Person, spawn: Spawn
) -> None:
    word = marker()
    hall = f"Hall {word}"
    third = sign_up(http, "third")
    # a mixed history: creates, changes of every kind, deletes, a cascading account deletion,
    # and batch writes
    one, _ = create(http, owner, location=hall, participants=[other.username])
    two, _ = create(http, owner, location=hall,
                    participants=[other.username, third.username, "guest@example.com"])
    three, _ = create(http, owner, location=hall)
    change(http, owner, one["id"], participants=[third.username],
           starting_time=at(hours=30), end_time=at(hours=31))
    http.patch(f"/api/event/{two['id']}", json={"name": "Renamed", "location": f"Moved {word}"},
               headers=owner.headers).raise_for_status()
    change(http, owner, two["id"], participants=[third.username])
    delete(http, owner, three["id"])
    leaving = sign_up(http, "leaving")
    create(http, leaving, location=hall, participants=[owner.username])
    create(http, leaving, location=f"Elsewhere {word}")
    create(http, owner, location=hall, participants=[leaving.username])
    http.delete(f"/api/user/{leaving.id}", headers=leaving.headers).raise_for_status()
    made, _ = batch(http, owner, "POST", [
        event_body(name=f"Batch {i}", location=hall, participants=[other.username] * (i % 2),
                   starting_time=at(hours=5 + i), end_time=at(hours=6 + i))
        for i in range(6)
    ], status=201)
    batch(http, owner, "PUT", [
        {"id": made[0]["id"], "starting_time": at(hours=44), "end_time": at(hours=45)},
        {"id": made[1]["id"], "participants": [third.username, other.username]},
        {"id": made[2]["id"], "name": "Batch renamed", "location": "Tel Aviv Port"},
    ])
    _, last = batch(http, owner, "DELETE", [made[3]["id"], made[4]["id"]])

    listed = page(http, owner, location=word, min_position=last)["events"]
    # the leaving user's events went with the account; DELETE, the batch deletes and the move
    # to Tel Aviv took four of the owner's ten out of this list
    assert {e["owner"] for e in listed} == {owner.id} and len(listed) == 6
    assert leaving.username not in {p for e in listed for p in e["participants"]}
    head = caught_up(http)
    assert head >= last
    live = snapshot(server)
    assert len(live["events_view"]) >= 6 and live["event_people"] and live["events_cancelled"]

    replaying = spawn([sys.executable, "-m", "alphabet.cli", "replay", "events"],
                                 cwd=ROOT, env=server.command_env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
    answers: list[int] = []
    while replaying.poll() is None:
        answer = listing(http, owner, location=word)
        answers.append(answer.status_code)
        if answer.status_code == 200:
            assert ids(answer.json()["events"]) == ids(listed)
    out, err = replaying.communicate(timeout=120)
    assert replaying.returncode == 0, err.decode()
    assert f"rebuilt to position {head}" in out.decode()
    assert set(answers) <= {200}, answers

    assert snapshot(server) == live
    after = listing(http, owner, location=word)
    assert after.status_code == 200 and after.json()["events"] == listed
    assert readyz(http)["views"]["events"] == {"position": head, "lag": 0}
    # the follower keeps the swapped-in view current
    fresh, written = create(http, owner, location=hall, starting_time=at(hours=200),
                            end_time=at(hours=201))
    assert ids(page(http, owner, location=word, min_position=written)["events"]) == [
        *ids(listed), fresh["id"]]


def test_replay_of_an_unknown_view_exits_2_naming_the_views(server: Server) -> None:
    done = subprocess.run([sys.executable, "-m", "alphabet.cli", "replay", "nosuch"], cwd=ROOT,
                          env=server.command_env, capture_output=True, timeout=60)
    assert done.returncode == 2
    assert "nosuch" in done.stderr.decode() and "events" in done.stderr.decode()
