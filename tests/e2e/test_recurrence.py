"""Recurring events over real HTTP against `alphabet serve` on both backends (SPEC §6.2): a
series is one event; its occurrences are listed by /instances, read, changed, cancelled and
split by their occurrence ids."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import ROOT, Person, Server, Spawn, assert_error, event_body, sign_up
from tests.e2e.test_lists import caught_up, snapshot
from tests.e2e.test_single_events import moved_an_hour, pages
from tests.e2e.test_websockets import ws_url
from tests.mail_clients import expanded_by_icaljs

WEEKLY = "RRULE:FREQ=WEEKLY"


def series(http: httpx.Client, owner: Person, start: datetime, *lines: str,
           hours: float = 1, **fields: Any) -> dict[str, Any]:
    body = event_body(starting_time=start.isoformat(),
                      end_time=(start + timedelta(hours=hours)).isoformat(),
                      recurrence=list(lines), **fields)
    answer = http.post("/api/events/", json=body, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()["event"]
    return created


def instances(http: httpx.Client, who: Person, event_id: str, **params: Any) -> dict[str, Any]:
    answer = http.get(f"/api/event/{event_id}/instances", params=params, headers=who.headers)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def starts(page: dict[str, Any]) -> list[str]:
    return [event["starting_time"] for event in page["events"]]


def key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def ical(http: httpx.Client, who: Person, event_id: str) -> str:
    answer = http.get(f"/api/event/{event_id}.ics", headers=who.headers)
    assert answer.status_code == 200, answer.text
    return answer.text.replace("\r\n ", "")


NEXT_YEAR = datetime.now(UTC).year + 1
# A Monday in January of next year, 10:00 UTC.
FIRST = datetime.fromisocalendar(NEXT_YEAR, 2, 1).replace(hour=10, tzinfo=UTC)


def test_a_series_shows_its_rule_and_lists_its_occurrences_with_ids(
        http: httpx.Client, owner: Person, other: Person) -> None:
    created = series(http, owner, FIRST, f"{WEEKLY};BYDAY=MO,WE;COUNT=4")
    assert created["recurrence"] == [f"{WEEKLY};BYDAY=MO,WE;COUNT=4"]

    page = instances(http, other, created["id"], starts_after=FIRST.isoformat())

    days = [FIRST, FIRST + timedelta(days=2), FIRST + timedelta(days=7),
            FIRST + timedelta(days=9)]
    assert [e["id"] for e in page["events"]] == [f"{created['id']}_{key(d)}" for d in days]
    assert {e["recurring_event_id"] for e in page["events"]} == {created["id"]}
    assert [e["original_start"] for e in page["events"]] == starts(page)
    assert all("recurrence" not in e for e in page["events"])
    assert page["next"] is None
    one = http.get(f"/api/event/{page['events'][1]['id']}", headers=other.headers)
    assert one.status_code == 200, one.text
    assert one.json()["event"] == page["events"][1]
    assert one.headers["ETag"] == f'"{created["version"]}"'


def test_a_rule_on_the_31st_skips_months_without_one(
        http: httpx.Client, owner: Person) -> None:
    first = datetime(NEXT_YEAR, 1, 31, 9, tzinfo=UTC)
    created = series(http, owner, first, "RRULE:FREQ=MONTHLY;BYMONTHDAY=31")

    page = instances(http, owner, created["id"], starts_after=first.isoformat(),
                     starts_before=datetime(NEXT_YEAR, 9, 1, tzinfo=UTC).isoformat())

    assert [datetime.fromisoformat(s).month for s in starts(page)] == [1, 3, 5, 7, 8]


def test_an_unbounded_daily_rule_is_paged_with_cursors(
        http: httpx.Client, owner: Person) -> None:
    created = series(http, owner, FIRST, "RRULE:FREQ=DAILY")
    seen: list[str] = []
    params: dict[str, Any] = {"starts_after": FIRST.isoformat(), "limit": 4}
    for _ in range(3):
        page = instances(http, owner, created["id"], **params)
        assert len(page["events"]) == 4 and page["next"]
        seen += starts(page)
        params = {"cursor": page["next"], "limit": 4}

    expected = [FIRST + timedelta(days=n) for n in range(12)]
    assert [datetime.fromisoformat(s) for s in seen] == expected
    assert_error(http.get(f"/api/event/{created['id']}/instances", params={"cursor": "x"},
                          headers=owner.headers), 422)


def test_exdate_leaves_an_occurrence_out(http: httpx.Client, owner: Person) -> None:
    skipped = FIRST + timedelta(days=7)
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=3", f"EXDATE:{key(skipped)}")

    page = instances(http, owner, created["id"], starts_after=FIRST.isoformat())

    assert [datetime.fromisoformat(s) for s in starts(page)] == [
        FIRST, FIRST + timedelta(days=14)]
    assert_error(http.get(f"/api/event/{created['id']}_{key(skipped)}",
                          headers=owner.headers), 404)


def test_an_overridden_occurrence_keeps_its_own_name_when_the_series_is_renamed(
        http: httpx.Client, owner: Person) -> None:
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=3", name="Standup")
    second = f"{created['id']}_{key(FIRST + timedelta(days=7))}"
    later = (FIRST + timedelta(days=7, hours=2)).isoformat().replace("+00:00", "Z")

    ends = (FIRST + timedelta(days=7, hours=3)).isoformat()
    changed = http.patch(f"/api/event/{second}", json={"name": "Retro", "starting_time": later,
                                                       "end_time": ends},
                         headers=owner.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["event"]["name"] == "Retro"
    renamed = http.put(f"/api/event/{created['id']}", json={"name": "Daily", "location": "Jaffa"},
                       headers=owner.headers)
    assert renamed.status_code == 200, renamed.text

    page = instances(http, owner, created["id"], starts_after=FIRST.isoformat())
    assert [e["name"] for e in page["events"]] == ["Daily", "Retro", "Daily"]
    assert {e["location"] for e in page["events"]} == {"Jaffa"}
    assert page["events"][1]["starting_time"] == later
    assert page["events"][1]["original_start"] == key_time(FIRST + timedelta(days=7))
    trail = http.get(f"/api/event/{created['id']}/history", headers=owner.headers).json()
    assert trail["history"][1]["type"] == "OccurrenceChanged"
    assert trail["history"][1]["instance_id"] == second
    before = http.get(f"/api/event/{second}", params={"as_of": 1}, headers=owner.headers)
    assert before.json()["event"]["name"] == "Standup"


def key_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_a_changed_rule_drops_the_changes_of_occurrences_that_no_longer_occur(
        http: httpx.Client, owner: Person) -> None:
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=3")
    third = f"{created['id']}_{key(FIRST + timedelta(days=14))}"
    assert http.patch(f"/api/event/{third}", json={"name": "Gone soon"},
                      headers=owner.headers).status_code == 200

    shorter = http.patch(f"/api/event/{created['id']}",
                         json={"recurrence": [f"{WEEKLY};COUNT=2"]}, headers=owner.headers)
    assert shorter.status_code == 200, shorter.text
    assert_error(http.get(f"/api/event/{third}", headers=owner.headers), 404)
    longer = http.patch(f"/api/event/{created['id']}",
                        json={"recurrence": [f"{WEEKLY};COUNT=3"]}, headers=owner.headers)
    assert longer.status_code == 200, longer.text
    assert http.get(f"/api/event/{third}", headers=owner.headers).json()["event"]["name"] \
        == "Standup"


def test_a_cancelled_occurrence_is_gone_from_instances_and_an_exdate_in_ics(
        http: httpx.Client, owner: Person, other: Person) -> None:
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=3")
    second = f"{created['id']}_{key(FIRST + timedelta(days=7))}"

    assert_error(http.delete(f"/api/event/{second}", headers=other.headers), 403)
    cancelled = http.delete(f"/api/event/{second}", headers=owner.headers)
    assert cancelled.status_code == 200, cancelled.text

    page = instances(http, owner, created["id"], starts_after=FIRST.isoformat())
    assert second not in [e["id"] for e in page["events"]] and len(page["events"]) == 2
    assert_error(http.get(f"/api/event/{second}", headers=owner.headers), 410)
    assert_error(http.patch(f"/api/event/{second}", json={"name": "x"},
                            headers=owner.headers), 410)
    text = ical(http, owner, created["id"])
    assert "RRULE:FREQ=WEEKLY;COUNT=3" in text
    assert f"EXDATE:{key(FIRST + timedelta(days=7))}" in text
    assert http.get(f"/api/event/{created['id']}", headers=owner.headers).status_code == 200


def test_a_changed_occurrence_is_a_vevent_with_its_recurrence_id_in_ics(
        http: httpx.Client, owner: Person) -> None:
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=3")
    second = FIRST + timedelta(days=7)
    assert http.patch(f"/api/event/{created['id']}_{key(second)}", json={"name": "Moved"},
                      headers=owner.headers).status_code == 200

    text = ical(http, owner, created["id"])

    assert text.count("BEGIN:VEVENT") == 2
    assert f"RECURRENCE-ID:{key(second)}" in text
    assert "SUMMARY:Moved" in text


def test_a_split_ends_the_series_and_starts_a_new_one_with_the_changes(
        http: httpx.Client, owner: Person) -> None:
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=5", name="Old")
    third = FIRST + timedelta(days=14)

    answer = http.post(f"/api/event/{created['id']}_{key(third)}/split",
                       json={"name": "New", "location": "Haifa"}, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    new = answer.json()["event"]
    assert answer.headers["Location"] == f"/api/event/{new['id']}"
    assert new["name"] == "New" and new["recurrence"] == [f"{WEEKLY};COUNT=3"]
    assert new["starting_time"] == key_time(third)

    old = instances(http, owner, created["id"], starts_after=FIRST.isoformat())
    assert [e["name"] for e in old["events"]] == ["Old", "Old"]
    following = instances(http, owner, new["id"], starts_after=FIRST.isoformat())
    assert [datetime.fromisoformat(s) for s in starts(following)] == [
        third, third + timedelta(days=7), third + timedelta(days=14)]
    assert {e["location"] for e in following["events"]} == {"Haifa"}
    assert_error(http.post(f"/api/event/{created['id']}_{key(FIRST)}/split", json={},
                           headers=owner.headers), 422)


def with_a_moved_occurrence(http: httpx.Client, owner: Person,
                            word: str) -> tuple[dict[str, Any], datetime]:
    """A weekly series of five named "Old <word>", its fourth occurrence renamed "Own <word>"
    and moved an hour later; the series and that occurrence's new start."""
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=5", name=f"Old {word}")
    moved, _ = moved_an_hour(http, owner, created["id"], FIRST + timedelta(days=21),
                             f"Own {word}")
    return created, moved


def test_a_split_carries_the_own_changes_of_the_occurrences_after_it_to_the_new_series(
        http: httpx.Client, owner: Person) -> None:
    word = uuid4().hex[:8]
    created, moved = with_a_moved_occurrence(http, owner, word)
    third, fourth = FIRST + timedelta(days=14), FIRST + timedelta(days=21)
    assert http.patch(f"/api/event/{created['id']}_{key(third)}", json={"location": "Annex"},
                      headers=owner.headers).status_code == 200

    answer = http.post(f"/api/event/{created['id']}_{key(third)}/split",
                       json={"name": f"New {word}"}, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    new = answer.json()["event"]

    # the split occurrence's own change is the new series' own; the next one's is its own
    assert (new["name"], new["location"]) == (f"New {word}", "Annex")
    following = instances(http, owner, new["id"], starts_after=FIRST.isoformat())["events"]
    assert [(e["name"], e["starting_time"]) for e in following] == [
        (f"New {word}", key_time(third)), (f"Own {word}", key_time(moved)),
        (f"New {word}", key_time(FIRST + timedelta(days=28)))]
    assert (following[1]["id"], following[1]["original_start"]) == (
        f"{new['id']}_{key(fourth)}", key_time(fourth))
    old = instances(http, owner, created["id"], starts_after=FIRST.isoformat())["events"]
    assert [e["original_start"] for e in old] == [key_time(FIRST),
                                                  key_time(FIRST + timedelta(days=7))]
    assert_error(http.get(f"/api/event/{created['id']}_{key(fourth)}",
                          headers=owner.headers), 404)
    trail = http.get(f"/api/event/{new['id']}/history", headers=owner.headers).json()
    assert [(h["type"], h.get("instance_id")) for h in trail["history"]][1:] == [
        ("OccurrenceChanged", following[1]["id"])]
    listed = [event for page in pages(http, owner, q=word, single_events="true",
                                      starts_after=FIRST.isoformat(), limit=10,
                                      min_position=answer.headers["X-Position"])
              for event in page]
    assert [(e["id"], e["name"], e["starting_time"]) for e in listed] == [
        (e["id"], e["name"], e["starting_time"]) for e in [*old, *following]]
    exported = vevents_of(ical(http, owner, new["id"]), new["id"])
    assert [block for block in exported if f"RECURRENCE-ID:{key(fourth)}" in block
            and f"SUMMARY:Own {word}" in block and f"DTSTART:{key(moved)}" in block]


def test_a_split_that_retimes_the_series_drops_the_own_changes_of_the_occurrences_after_it(
        http: httpx.Client, owner: Person) -> None:
    word = uuid4().hex[:8]
    created, _ = with_a_moved_occurrence(http, owner, word)
    third, fourth = FIRST + timedelta(days=14), FIRST + timedelta(days=21)
    later = third + timedelta(hours=2)

    answer = http.post(f"/api/event/{created['id']}_{key(third)}/split", headers=owner.headers,
                       json={"starting_time": later.isoformat(),
                             "end_time": (later + timedelta(hours=1)).isoformat()})
    assert answer.status_code == 201, answer.text
    new = answer.json()["event"]

    following = instances(http, owner, new["id"], starts_after=FIRST.isoformat())["events"]
    assert [(e["name"], e["starting_time"]) for e in following] == [
        (f"Old {word}", key_time(later + timedelta(days=days))) for days in (0, 7, 14)]
    assert_error(http.get(f"/api/event/{new['id']}_{key(fourth)}", headers=owner.headers), 404)
    assert len(instances(http, owner, created["id"], starts_after=FIRST.isoformat())["events"]) \
        == 2


def test_unknown_occurrences_are_not_found(http: httpx.Client, owner: Person) -> None:
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=3")

    for suffix in (key(FIRST + timedelta(days=1)), key(FIRST + timedelta(days=21)), "nonsense"):
        assert_error(http.get(f"/api/event/{created['id']}_{suffix}", headers=owner.headers),
                     404)
    assert_error(http.post(f"/api/event/{created['id']}/split", json={},
                           headers=owner.headers), 404)


@pytest.mark.parametrize("lines", [
    ["RRULE:FREQ=WEEKLY;COUNT=99999999999999999999"],
    ["RRULE:FREQ=WEEKLY;UNTIL=20301231T000000"],
    ["RRULE:nonsense"],
    ["RRULE:FREQ=MONTHLY;BYSETPOS=-400;BYDAY=MO"],
    ["RRULE:FREQ=DAILY", "RRULE:FREQ=WEEKLY"],
    ["SUMMARY:hello"],
    ["RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"],
    ["RRULE:FREQ=WEEKLY;BYDAY=TU"],
    ["RRULE:FREQ=SECONDLY"],
])
def test_an_invalid_rule_is_a_422_naming_recurrence(
        http: httpx.Client, owner: Person, lines: list[str]) -> None:
    body = event_body(starting_time=FIRST.isoformat(),
                      end_time=(FIRST + timedelta(hours=1)).isoformat(), recurrence=lines)

    error = assert_error(http.post("/api/events/", json=body, headers=owner.headers), 422)

    assert set(error["fields"]) == {"recurrence"}


def test_a_series_start_moved_off_its_rule_is_refused(http: httpx.Client, owner: Person) -> None:
    created = series(http, owner, FIRST, f"{WEEKLY};BYDAY=MO")

    moved = http.patch(f"/api/event/{created['id']}",
                       json={"starting_time": (FIRST + timedelta(days=1)).isoformat(),
                             "end_time": (FIRST + timedelta(days=1, hours=1)).isoformat()},
                       headers=owner.headers)

    assert set(assert_error(moved, 422)["fields"]) == {"recurrence"}


def test_a_series_is_listed_once_with_its_rule(http: httpx.Client, owner: Person) -> None:
    body = event_body(name="Listed once", starting_time=FIRST.isoformat(),
                      end_time=(FIRST + timedelta(hours=1)).isoformat(),
                      recurrence=["RRULE:FREQ=DAILY"])
    written = http.post("/api/events/", json=body, headers=owner.headers)
    created = written.json()["event"]

    answer = http.get("/api/events/", params={"q": "Listed once",
                                              "min_position": written.headers["X-Position"]},
                      headers=owner.headers)

    found = [e for e in answer.json()["events"] if e["id"] == created["id"]]
    assert len(found) == 1 and found[0]["recurrence"] == ["RRULE:FREQ=DAILY"]


def test_a_replay_of_series_overrides_splits_and_cancellations_equals_the_live_views(
        server: Server, http: httpx.Client, owner: Person, other: Person, spawn: Spawn) -> None:
    weekly = series(http, owner, FIRST, f"{WEEKLY};COUNT=6", participants=[other.username])
    daily = series(http, owner, FIRST + timedelta(hours=3), "RRULE:FREQ=DAILY",
                   "EXDATE:" + key(FIRST + timedelta(days=2, hours=3)))
    occurrence = f"{weekly['id']}_{key(FIRST + timedelta(days=7))}"
    assert http.patch(f"/api/event/{occurrence}", json={"name": "Once"},
                      headers=owner.headers).status_code == 200
    assert http.delete(f"/api/event/{weekly['id']}_{key(FIRST + timedelta(days=14))}",
                       headers=owner.headers).status_code == 200
    assert http.patch(f"/api/event/{weekly['id']}_{key(FIRST + timedelta(days=35))}",
                      json={"name": "Carried"}, headers=owner.headers).status_code == 200
    split = http.post(f"/api/event/{weekly['id']}_{key(FIRST + timedelta(days=28))}/split",
                      json={"location": "Split"}, headers=owner.headers)
    assert split.status_code == 201, split.text
    assert http.put(f"/api/event/{weekly['id']}", json={"name": "Renamed"},
                    headers=owner.headers).status_code == 200
    assert http.patch(f"/api/event/{daily['id']}_{key(FIRST + timedelta(days=1, hours=3))}",
                      json={"location": "Moved"}, headers=owner.headers).status_code == 200
    assert http.delete(f"/api/event/{daily['id']}", headers=owner.headers).status_code == 200
    ids = [weekly["id"], split.json()["event"]["id"]]

    def shown() -> list[Any]:
        return [instances(http, owner, event_id, starts_after=FIRST.isoformat())
                for event_id in ids]

    caught_up(http)
    live, rows, before = snapshot(server), occurrence_rows(server), shown()
    reminders = server.rows("SELECT * FROM reminders ORDER BY event_id")
    replay(server, spawn)

    assert snapshot(server) == live
    assert occurrence_rows(server) == rows
    assert server.rows("SELECT * FROM reminders ORDER BY event_id") == reminders
    assert shown() == before
    assert [e["name"] for e in before[0]["events"]] == ["Renamed", "Once", "Renamed"]
    assert {e["location"] for e in before[1]["events"]} == {"Split"}
    assert [e["name"] for e in before[1]["events"]] == ["Standup", "Carried"]
    first = http.get(f"/api/event/{weekly['id']}", params={"as_of": 1}, headers=owner.headers)
    assert first.json()["event"]["recurrence"] == [f"{WEEKLY};COUNT=6"]


def occurrence_rows(server: Server) -> list[Any]:
    """Every row of the events view's occurrence tables (projections.occurrences)."""
    return [server.rows(f"SELECT * FROM {table} ORDER BY id")
            for table in ("event_series", "event_occurrences")]


def replay(server: Server, spawn: Spawn) -> None:
    """Rebuild every view from the log with `alphabet replay`, as an operator would."""
    replaying = spawn([sys.executable, "-m", "alphabet.cli", "replay"], cwd=ROOT,
                      env=server.command_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = replaying.communicate(timeout=300)
    assert replaying.returncode == 0, err.decode()


def test_socket_messages_about_one_occurrence_carry_its_instance_id(
        server: Server, http: httpx.Client, owner: Person) -> None:
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=3")
    second, third = (f"{created['id']}_{key(FIRST + timedelta(days=d))}" for d in (7, 14))
    changed = http.patch(f"/api/event/{second}", json={"name": "Only this one"},
                         headers=owner.headers)
    assert changed.status_code == 200, changed.text
    assert http.delete(f"/api/event/{third}", headers=owner.headers).status_code == 200
    after = str(int(changed.headers["X-Position"]) - 1)

    with connect(ws_url(server, f"/ws/events/{created['id']}", token=owner.access,
                        after=after), open_timeout=10) as ws:
        messages = [message for message in (json.loads(ws.recv(timeout=10)) for _ in range(3))
                    if message["type"] != "ready"][:2]

    assert [(m["type"], m["instance_id"]) for m in messages] == [
        ("event.updated", second), ("event.deleted", third)]
    assert messages[0]["event"]["id"] == second
    assert messages[0]["event"]["name"] == "Only this one"
    assert messages[0]["changes"] == {"name": "Only this one"}
    assert messages[1]["event"]["recurring_event_id"] == created["id"]


def change_day(zone: str, year: int, month: int) -> datetime:
    """The day of `month` on which `zone`'s UTC offset changes (a DST transition)."""
    place = ZoneInfo(zone)
    day = datetime(year, month, 1, 12, tzinfo=place)
    while (day + timedelta(days=1)).utcoffset() == day.utcoffset():
        day += timedelta(days=1)
    return day + timedelta(days=1)


@pytest.mark.parametrize(("zone", "month"), [("Europe/Berlin", 3), ("Europe/Berlin", 10),
                                             ("America/New_York", 3), ("America/New_York", 11)])
def test_a_nine_o_clock_meeting_stays_at_nine_local_across_a_dst_change(
        http: httpx.Client, owner: Person, zone: str, month: int) -> None:
    changed = change_day(zone, NEXT_YEAR, month)
    first = (changed - timedelta(days=3)).replace(hour=9)
    created = series(http, owner, first, "RRULE:FREQ=DAILY;COUNT=6", time_zone=zone)

    page = instances(http, owner, created["id"], starts_after=first.isoformat())

    local = [datetime.fromisoformat(e["local_start"]) for e in page["events"]]
    assert [moment.hour for moment in local] == [9] * 6
    assert len({moment.utcoffset() for moment in local}) == 2  # both sides of the change
    assert all(e["time_zone"] == zone for e in page["events"])
    utc_hours = {datetime.fromisoformat(e["starting_time"]).hour for e in page["events"]}
    assert len(utc_hours) == 2
    assert all(datetime.fromisoformat(e["end_time"]) - datetime.fromisoformat(e["starting_time"])
               == timedelta(hours=1) for e in page["events"])


def test_a_split_at_an_occurrence_in_a_dst_gap_is_refused_and_the_next_day_keeps_the_time(
        http: httpx.Client, owner: Person) -> None:
    """A daily 02:30 Berlin series: on the spring-forward day its occurrence is at 01:30 UTC
    (03:30 CEST). A new series starting there would be read as a 03:30 one, so that split is
    refused; split a day later, the new series stays at 02:30 local."""
    gap = change_day("Europe/Berlin", NEXT_YEAR, 3).replace(hour=2, minute=30)
    first = gap - timedelta(days=8)
    created = series(http, owner, first, "RRULE:FREQ=DAILY", time_zone="Europe/Berlin")

    refused = assert_error(http.post(f"/api/event/{created['id']}_{key(gap)}/split", json={},
                                     headers=owner.headers), 422)
    assert "02:30" in refused["fields"]["recurrence"], refused

    after = gap + timedelta(days=1)
    answer = http.post(f"/api/event/{created['id']}_{key(after)}/split", json={},
                       headers=owner.headers)
    assert answer.status_code == 201, answer.text
    new = answer.json()["event"]
    page = instances(http, owner, new["id"], starts_after=after.isoformat(),
                     starts_before=(after + timedelta(days=3)).isoformat())
    local = [datetime.fromisoformat(e["local_start"]) for e in page["events"]]
    assert [(m.hour, m.minute, m.utcoffset()) for m in local] == [(2, 30, timedelta(hours=2))] * 3
    old = instances(http, owner, created["id"], starts_after=first.isoformat())
    assert len(old["events"]) == 9


def berlin_weekly_moved_and_cancelled(http: httpx.Client, owner: Person,
                                      **fields: Any) -> tuple[dict[str, Any], datetime]:
    """A weekly Berlin meeting across the spring change, one occurrence moved and renamed and
    one cancelled; the series and its first start."""
    changed = change_day("Europe/Berlin", NEXT_YEAR, 3)
    first = (changed - timedelta(days=13)).replace(hour=9)
    created = series(http, owner, first, f"{WEEKLY};COUNT=5", time_zone="Europe/Berlin",
                     **{"name": "Weekly", "location": "Room 1", **fields})
    page = instances(http, owner, created["id"], starts_after=first.isoformat())
    moved, cancelled = page["events"][1], page["events"][3]
    start = datetime.fromisoformat(moved["starting_time"]) + timedelta(hours=2)
    assert http.patch(f"/api/event/{moved['id']}", headers=owner.headers, json={
        "name": "Moved once", "location": "Room 2", "starting_time": start.isoformat(),
        "end_time": (start + timedelta(minutes=30)).isoformat()}).status_code == 200
    assert http.delete(f"/api/event/{cancelled['id']}", headers=owner.headers).status_code == 200
    return created, first


def assert_expands_as_listed(http: httpx.Client, owner: Person, event_id: str, text: str,
                             first: datetime) -> None:
    """ical.js reads the series `event_id` in `text` into the same occurrences as
    /instances."""
    after, before = first - timedelta(days=1), first + timedelta(days=60)
    listed = instances(http, owner, event_id, starts_after=after.isoformat(),
                       starts_before=before.isoformat())["events"]
    expanded = expanded_by_icaljs(text, after, before, event_id)

    def moment(text: str) -> datetime:
        return datetime.fromisoformat(text).astimezone(UTC)

    assert [(moment(e["original_start"]), moment(e["start"]), moment(e["end"]), e["summary"],
             e["location"]) for e in expanded] == [
        (moment(e["original_start"]), moment(e["starting_time"]), moment(e["end_time"]),
         e["name"], e["location"]) for e in listed]
    assert len(listed) == 4 and [e["name"] for e in listed].count("Moved once") == 1
    assert {datetime.fromisoformat(e["local_start"]).utcoffset() for e in listed} == {
        timedelta(hours=1), timedelta(hours=2)}


def test_ical_js_expands_the_exported_series_exactly_as_the_api_lists_it(
        http: httpx.Client, owner: Person) -> None:
    """Mozilla's ical.js reads the event's .ics into the same occurrences as /instances."""
    created, first = berlin_weekly_moved_and_cancelled(http, owner)

    assert_expands_as_listed(http, owner, created["id"], ical(http, owner, created["id"]), first)


def vevents_of(text: str, uid: str) -> list[str]:
    """The VEVENT blocks of an unfolded iCalendar text with this UID, as text."""
    blocks = text.split("BEGIN:VEVENT")[1:]
    return [block.split("END:VEVENT")[0] for block in blocks if f"\r\nUID:{uid}\r\n" in block]


def list_export(http: httpx.Client, who: Person, word: str, written: httpx.Response) -> str:
    """GET /api/events.ics of the events whose location has `word`, once the view has taken
    `written`'s write, unfolded."""
    answer = http.get("/api/events.ics", headers=who.headers,
                      params={"location": word, "min_position": written.headers["X-Position"]})
    assert answer.status_code == 200, answer.text
    return answer.text.replace("\r\n ", "")


def test_the_list_export_holds_each_series_as_its_own_export_does(
        http: httpx.Client, owner: Person) -> None:
    """GET /api/events.ics carries a series' cancelled occurrences (EXDATE) and its moved one
    (RECURRENCE-ID), as GET /api/event/{id}.ics does, so ical.js expands the list's file into
    /instances; a single event beside it is exported as before, alone."""
    word = f"Listics{uuid4().hex[:8]}"
    created, first = berlin_weekly_moved_and_cancelled(http, owner, location=f"Room {word}")
    start = first + timedelta(days=2)
    single = http.post("/api/events/", headers=owner.headers, json=event_body(
        name="Once", location=f"Hall {word}", starting_time=start.isoformat(),
        end_time=(start + timedelta(hours=1)).isoformat()))
    assert single.status_code == 201, single.text
    one = single.json()["event"]

    text = list_export(http, owner, word, single)

    assert_expands_as_listed(http, owner, created["id"], text, first)
    assert vevents_of(text, created["id"]) == vevents_of(ical(http, owner, created["id"]),
                                                          created["id"])
    assert text.count("RECURRENCE-ID") == 1 and text.count("EXDATE") == 1
    [once] = vevents_of(text, one["id"])
    assert "RRULE" not in once and "EXDATE" not in once and "RECURRENCE-ID" not in once
    assert "\r\nSUMMARY:Once\r\n" in once and "SEQUENCE" not in once


def test_the_list_export_shows_an_occurrence_answered_for_itself_as_its_own_export_does(
        http: httpx.Client, owner: Person) -> None:
    """An occurrence a participant answered for itself is a VEVENT with RECURRENCE-ID and its
    own PARTSTAT in the list export, the series' answer staying on the series."""
    guest = sign_up(http, "guest")
    word = f"Listics{uuid4().hex[:8]}"
    created = series(http, owner, FIRST, f"{WEEKLY};COUNT=4", participants=[guest.username],
                     location=f"Room {word}")
    second = f"{created['id']}_{key(FIRST + timedelta(weeks=1))}"
    answer = http.post(f"/api/event/{second}/response", json={"response": "accepted"},
                       headers=guest.headers)
    assert answer.status_code == 200, answer.text

    exported = vevents_of(list_export(http, guest, word, answer), created["id"])

    assert exported == vevents_of(ical(http, guest, created["id"]), created["id"])
    whole, own = exported
    assert "PARTSTAT=NEEDS-ACTION" in whole and "RECURRENCE-ID" not in whole
    assert "PARTSTAT=ACCEPTED" in own and "RECURRENCE-ID" in own


def test_a_batch_creates_and_changes_series_and_refuses_a_bad_rule_by_index(
        http: httpx.Client, owner: Person) -> None:
    body = [event_body(starting_time=FIRST.isoformat(),
                       end_time=(FIRST + timedelta(hours=1)).isoformat(),
                       recurrence=[f"{WEEKLY};COUNT={n}"]) for n in (2, 3)]
    made = http.post("/api/batch_events/", json=body, headers=owner.headers)
    assert made.status_code == 201, made.text
    ids = [e["id"] for e in made.json()["events"]]
    changed = http.put("/api/batch_events/", headers=owner.headers, json=[
        {"id": ids[0], "recurrence": [f"{WEEKLY};COUNT=4"]}])
    assert changed.status_code == 200, changed.text

    assert len(instances(http, owner, ids[0], starts_after=FIRST.isoformat())["events"]) == 4
    refused = http.post("/api/batch_events/", headers=owner.headers,
                        json=[body[0], {**body[1], "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=TU"]}])
    assert refused.status_code == 422, refused.text
    assert set(refused.json()["error"]["items"]) == {"1"}


def test_ical_js_keeps_nine_o_clock_years_into_an_unbounded_series(
        http: httpx.Client, owner: Person) -> None:
    """The .ics's VTIMEZONE reaches years past the first start, so ical.js gives later
    occurrences their own offsets (summer and winter) as the API does."""
    first = datetime(NEXT_YEAR, 1, 4, 9, tzinfo=ZoneInfo("Europe/Berlin"))
    created = series(http, owner, first, WEEKLY, time_zone="Europe/Berlin")
    changed = change_day("Europe/Berlin", NEXT_YEAR + 5, 3)
    after, before = changed - timedelta(days=21), changed + timedelta(days=21)

    listed = instances(http, owner, created["id"], starts_after=after.isoformat(),
                       starts_before=before.isoformat())["events"]
    expanded = expanded_by_icaljs(ical(http, owner, created["id"]), after, before)

    assert [datetime.fromisoformat(e["start"]) for e in expanded] == [
        datetime.fromisoformat(e["starting_time"]) for e in listed]
    assert {datetime.fromisoformat(e["local_start"]).hour for e in listed} == {9}
    assert len({datetime.fromisoformat(e["starting_time"]).hour for e in listed}) == 2
