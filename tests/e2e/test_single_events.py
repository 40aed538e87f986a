"""Lists and search with `single_events=true` over real HTTP on both backends (SPEC §6.2):
each series' occurrences take its place, ordered with single events by start and paged by
the same cursors, even for an unbounded rule; a cancelled occurrence is absent and a changed
one shows its change; past the horizon the view materialises, the occurrences are the same
as /instances gives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import Person, assert_error, event_body

DAILY = "RRULE:FREQ=DAILY"


def create(http: httpx.Client, owner: Person, start: datetime, hours: float = 1,
           **fields: Any) -> httpx.Response:
    answer = http.post("/api/events/", json=event_body(
        starting_time=start.isoformat(), end_time=(start + timedelta(hours=hours)).isoformat(),
        **fields), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    return answer


def key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def pages(http: httpx.Client, who: Person, path: str = "/api/events/",
          **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of a list, following `next`."""
    found = []
    cursor = None
    while True:
        answer = http.get(path, params={**params, **({"cursor": cursor} if cursor else {})},
                          headers=who.headers)
        assert answer.status_code == 200, answer.text
        found.append(answer.json()["events"])
        if not (cursor := answer.json()["next"]):
            return found


def moved_an_hour(http: httpx.Client, owner: Person, series_id: str, original: datetime,
                  name: str) -> tuple[datetime, httpx.Response]:
    """Rename a series' occurrence and move it an hour later (an hour long); its new start
    and the answer."""
    moved = original + timedelta(hours=1)
    changed = http.patch(f"/api/event/{series_id}_{key(original)}",
                         json={"name": name, "starting_time": moved.isoformat(),
                               "end_time": (moved + timedelta(hours=1)).isoformat()},
                         headers=owner.headers)
    assert changed.status_code == 200, changed.text
    return moved, changed


def written(answer: httpx.Response) -> str:
    return answer.headers["X-Position"]


def test_an_unbounded_series_pages_with_single_events_by_start(http: httpx.Client,
                                                               owner: Person) -> None:
    name = f"Standup {uuid.uuid4().hex[:8]}"
    first = datetime(2031, 5, 5, 9, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 300)
    series = create(http, owner, first, name=name, recurrence=[DAILY]).json()["event"]
    singles = [create(http, owner, first + delta, name=f"{name} single").json()["event"]
               for delta in (timedelta(days=1, hours=3), timedelta(days=2, hours=-1),
                             timedelta(days=3))]
    # the second occurrence cancelled, the third moved an hour later and renamed
    cancelled = http.delete(f"/api/event/{series['id']}_{key(first + timedelta(days=1))}",
                            headers=owner.headers)
    assert cancelled.status_code == 200, cancelled.text
    moved, changed = moved_an_hour(http, owner, series["id"], first + timedelta(days=2),
                                   f"{name} moved")

    window = {"starts_after": first.isoformat(),
              "starts_before": (first + timedelta(days=5)).isoformat(), "q": name,
              "min_position": written(changed), "single_events": "true", "limit": 3}
    found = pages(http, owner, **window)
    assert [len(page) for page in found] == [3, 3, 1]
    listed = [event for page in found for event in page]
    occurrences = {first + timedelta(days=day): f"{series['id']}_{key(first + timedelta(days=day))}"
                   for day in (0, 2, 3, 4)}
    expected = sorted([(s["starting_time"], s["id"]) for s in singles] + [
        ((moved if day == first + timedelta(days=2) else day).isoformat().replace("+00:00", "Z"),
         ident) for day, ident in occurrences.items()])
    assert [(e["starting_time"], e["id"]) for e in listed] == expected  # no gap, no repeat
    by_id = {event["id"]: event for event in listed}
    assert f"{series['id']}_{key(first + timedelta(days=1))}" not in by_id
    shown = by_id[occurrences[first + timedelta(days=2)]]
    assert (shown["name"], shown["recurring_event_id"], shown["original_start"]) == (
        f"{name} moved", series["id"], (first + timedelta(days=2)).isoformat().replace(
            "+00:00", "Z"))
    assert "recurrence" not in shown
    plain = by_id[occurrences[first]]
    assert (plain["name"], plain["local_start"], plain["version"]) == (
        name, first.isoformat(), changed.json()["event"]["version"])

    # without the flag the series is listed once, at its first start, with its rule
    whole = [event for page in pages(http, owner, **{**window, "single_events": "false"})
             for event in page]
    assert [e["id"] for e in whole] == [series["id"], *(s["id"] for s in singles)]
    assert whole[0]["recurrence"] == [DAILY]
    # search takes the flag too
    searched = [event for page in pages(http, owner, f"/api/search_event/{series['location']}",
                                        **window) for event in page]
    assert [e["id"] for e in searched] == [e["id"] for e in listed]


def test_past_the_materialised_horizon_the_occurrences_are_those_of_instances(
        http: httpx.Client, owner: Person) -> None:
    name = f"Far {uuid.uuid4().hex[:8]}"
    first = datetime(2030, 1, 7, 8, tzinfo=UTC)
    made = create(http, owner, first, name=name, recurrence=["RRULE:FREQ=WEEKLY;BYDAY=MO,TH"],
                  time_zone="Europe/Berlin")
    series = made.json()["event"]
    later = first + timedelta(days=3 * 365)
    window = {"starts_after": later.isoformat(),
              "starts_before": (later + timedelta(days=30)).isoformat()}
    found = [event for page in pages(http, owner, q=name, single_events="true", limit=4,
                                     min_position=written(made), **window) for event in page]
    answer = http.get(f"/api/event/{series['id']}/instances", params=window,
                      headers=owner.headers)
    assert answer.status_code == 200, answer.text
    instances = answer.json()["events"]
    assert len(found) == len(instances) >= 8
    assert [(e["id"], e["starting_time"], e["local_start"]) for e in found] == [
        (e["id"], e["starting_time"], e["local_start"]) for e in instances]
    # 08:00 in Berlin on both sides of a DST change: the instants move, the local time stays
    assert {e["local_start"][11:19] for e in found} == {"09:00:00"}


def test_past_the_horizon_several_series_interleave_as_their_instances_do(
        http: httpx.Client, owner: Person) -> None:
    """Each series is expanded from its first occurrence not materialised, and stops once the
    page is full: pages of 3 over four rules (one daily at 02:30 in Berlin, one with an EXDATE
    and an RDATE past the horizon) list exactly their instances, by start then id."""
    name = f"Interleaved {uuid.uuid4().hex[:8]}"
    first = datetime(2031, 1, 6, 9, tzinfo=UTC)
    later = first + timedelta(days=2 * 365)
    rules = [
        (first, ["RRULE:FREQ=DAILY;INTERVAL=3"], "UTC"),
        (first, ["RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;WKST=SU"], "America/New_York"),
        (datetime(2031, 3, 1, 1, 30, tzinfo=UTC), ["RRULE:FREQ=DAILY"], "Europe/Berlin"),
        (first, ["RRULE:FREQ=MONTHLY;BYDAY=1MO,-1FR",
                 f"EXDATE:{key(datetime(2033, 1, 28, 9, tzinfo=UTC))}",
                 f"RDATE:{key(later + timedelta(days=3, hours=2))}"], "UTC"),
    ]
    made = [create(http, owner, start, name=name, recurrence=lines, time_zone=zone)
            for start, lines, zone in rules]
    window = {"starts_after": later.isoformat(),
              "starts_before": (later + timedelta(days=40)).isoformat()}
    found = [event for page in pages(http, owner, q=name, single_events="true", limit=3,
                                     min_position=written(made[-1]), **window)
             for event in page]
    instances = []
    for answer in made:
        listed = http.get(f"/api/event/{answer.json()['event']['id']}/instances",
                          params=window, headers=owner.headers)
        assert listed.status_code == 200, listed.text
        instances += listed.json()["events"]
    instances.sort(key=lambda event: (event["starting_time"], event["id"]))
    assert len(found) > 20
    assert [(e["id"], e["starting_time"]) for e in found] == [
        (e["id"], e["starting_time"]) for e in instances]


def test_single_events_is_true_or_false_and_cursors_keep_to_their_flag(
        http: httpx.Client, owner: Person) -> None:
    error = assert_error(http.get("/api/events/", params={"single_events": "yes"},
                                  headers=owner.headers), 422, "invalid_fields")
    assert set(error["fields"]) == {"single_events"}
    made = [create(http, owner, datetime(2032, 1, 1, 9, tzinfo=UTC), name="Cursor check")
            for _ in range(2)]
    plain = http.get("/api/events/", params={"limit": 1, "q": "Cursor check",
                                             "min_position": written(made[-1])},
                     headers=owner.headers).json()
    assert plain["next"]
    error = assert_error(http.get("/api/events/", params={
        "limit": 1, "q": "Cursor check", "cursor": plain["next"], "single_events": "true"},
        headers=owner.headers), 422, "invalid_fields")
    assert set(error["fields"]) == {"cursor"}
