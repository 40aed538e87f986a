"""domain.recurrence: rules checked and expanded in the series' own zone, with no I/O."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.recurrence import (
    Series,
    check,
    key,
    occurrences,
    occurs,
    parse_key,
    split,
    starts,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def series(start: datetime, *lines: str, zone: str = "UTC", **kwargs: object) -> Series:
    return Series(start.astimezone(UTC), start.astimezone(UTC) + timedelta(hours=1), zone,
                  list(lines), **kwargs)  # type: ignore[arg-type]


def test_a_weekly_berlin_meeting_stays_at_nine_local_across_the_spring_change() -> None:
    first = datetime(2027, 3, 22, 9, tzinfo=BERLIN)  # CET; clocks go forward on 28 March
    found = occurrences(series(first, "RRULE:FREQ=WEEKLY;COUNT=3", zone="Europe/Berlin"))

    assert [o.start.astimezone(BERLIN).hour for o in found] == [9, 9, 9]
    assert [o.start for o in found] == [datetime(2027, 3, 22, 8, tzinfo=UTC),
                                        datetime(2027, 3, 29, 7, tzinfo=UTC),
                                        datetime(2027, 4, 5, 7, tzinfo=UTC)]
    assert all(o.end - o.start == timedelta(hours=1) for o in found)


def test_a_new_york_meeting_stays_at_nine_local_across_the_autumn_change() -> None:
    first = datetime(2027, 10, 29, 9, tzinfo=NEW_YORK)  # EDT; clocks go back on 7 November
    found = occurrences(series(first, "RRULE:FREQ=DAILY", zone="America/New_York"),
                        before=datetime(2027, 11, 10, tzinfo=UTC))

    assert {o.start.astimezone(NEW_YORK).hour for o in found} == {9}
    assert found[0].start.hour == 13 and found[-1].start.hour == 14


def test_a_monthly_rule_on_the_31st_skips_months_without_one() -> None:
    first = datetime(2027, 1, 31, 10, tzinfo=UTC)
    found = occurrences(series(first, "RRULE:FREQ=MONTHLY;BYMONTHDAY=31;COUNT=4"))

    assert [o.start.month for o in found] == [1, 3, 5, 7]


def test_exdate_removes_and_rdate_adds_an_occurrence() -> None:
    first = datetime(2027, 1, 4, 10, tzinfo=UTC)
    found = occurrences(series(first, "RRULE:FREQ=DAILY;COUNT=3", "EXDATE:20270105T100000Z",
                               "RDATE:20270110T100000Z"))

    assert [o.start.day for o in found] == [4, 6, 10]


def test_exdate_in_the_series_zone_and_as_a_date_match_local_occurrences() -> None:
    first = datetime(2027, 3, 22, 9, tzinfo=BERLIN)
    found = occurrences(series(first, "RRULE:FREQ=WEEKLY;COUNT=4",
                               "EXDATE;TZID=Europe/Berlin:20270329T090000",
                               "EXDATE;VALUE=DATE:20270405", zone="Europe/Berlin"))

    assert [o.start.astimezone(BERLIN).day for o in found] == [22, 12]


def test_an_unbounded_rule_is_expanded_only_up_to_its_bound() -> None:
    first = datetime(2027, 1, 1, 8, tzinfo=UTC)
    one = series(first, "RRULE:FREQ=DAILY")

    assert len(occurrences(one, limit=5)) == 5
    assert len(occurrences(one, after=first + timedelta(days=400), limit=3)) == 3
    with pytest.raises(ValueError):
        occurrences(one)


def test_overrides_apply_and_cancellations_are_left_out() -> None:
    first = datetime(2027, 1, 4, 10, tzinfo=UTC)
    second, third = first + timedelta(days=1), first + timedelta(days=2)
    moved = third + timedelta(hours=2)
    one = series(first, "RRULE:FREQ=DAILY;COUNT=3", cancelled=frozenset({second}),
                 overrides={third: {"name": "Late", "starting_time": moved}})

    found = occurrences(one)

    assert [o.original_start for o in found] == [first, third]
    assert found[1].start == moved and found[1].end == third + timedelta(hours=1)
    assert found[1].changes == {"name": "Late", "starting_time": moved}
    assert occurs(one, second) and not occurs(one, second + timedelta(minutes=1))


def test_occurrence_keys_are_utc_and_read_back() -> None:
    moment = datetime(2027, 3, 29, 9, tzinfo=BERLIN)

    assert key(moment) == "20270329T070000Z"
    assert parse_key("20270329T070000Z") == moment
    assert parse_key("2027-03-29") is None


@pytest.mark.parametrize(("lines", "reason"), [
    (["RRULE:FREQ=WEEKLY;COUNT=99999999999999999999"], "COUNT"),
    (["RRULE:FREQ=WEEKLY;UNTIL=20271231T000000"], "UNTIL must be a UTC time"),
    (["RRULE:garbage"], "not a part"),
    (["RRULE:FREQ=MONTHLY;BYSETPOS=-400;BYDAY=MO"], "BYSETPOS takes values"),
    (["RRULE:FREQ=MONTHLY;BYSETPOS=2"], "BYSETPOS needs"),
    (["RRULE:FREQ=DAILY;BYMONTHDAY=32"], "BYMONTHDAY takes values"),
    (["RRULE:FREQ=WEEKLY;BYWEEKNO=5"], "cannot go with"),
    (["RRULE:FREQ=WEEKLY;BYDAY=2MO"], "no ordinal"),
    (["RRULE:FREQ=MONTHLY;BYDAY=6MO"], "ordinal"),
    (["RRULE:FREQ=MONTHLY;BYDAY=XX"], "BYDAY takes weekdays"),
    (["RRULE:FREQ=DAILY;BYSETPOS=5"], "BYSETPOS"),
    (["RRULE:FREQ=SECONDLY"], "FREQ"),
    (["RRULE:FREQ=DAILY;BYHOUR=3"], "not a part"),
    (["RRULE:FREQ=DAILY", "RRULE:FREQ=WEEKLY"], "only one RRULE"),
    (["DESCRIPTION:x"], "not an RRULE"),
    (["EXDATE:20270101T000000Z"], "needs one RRULE"),
    (["RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"], "first occurrence"),
    (["RRULE:FREQ=WEEKLY;BYDAY=TU"], "first occurrence"),
    (["RRULE:FREQ=DAILY", "EXDATE:tomorrow"], "not a date"),
    (["RRULE:FREQ=DAILY;INTERVAL=0"], "INTERVAL"),
    (["RRULE:FREQ=DAILY;COUNT=2;UNTIL=20271231T000000Z"], "exclude"),
    (["RRULE:FREQ=DAILY", "EXDATE:20270101T000000Z"] * 60, "at most 100 lines"),
])
def test_invalid_rules_are_refused_with_a_reason(lines: list[str], reason: str) -> None:
    monday = datetime(2027, 3, 22, 9, tzinfo=UTC)

    problem = check(lines, monday, "UTC")

    assert problem is not None and reason in problem


def test_a_start_with_a_fraction_of_a_second_cannot_recur() -> None:
    problem = check(["RRULE:FREQ=DAILY"], datetime(2027, 1, 1, 9, 0, 0, 500, tzinfo=UTC), "UTC")

    assert problem is not None and "whole seconds" in problem


def test_an_empty_monthly_rule_is_found_empty_quickly() -> None:
    began = time.perf_counter()
    problem = check(["RRULE:FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30"],
                    datetime(1900, 1, 1, tzinfo=UTC), "UTC")
    assert problem is not None and time.perf_counter() - began < 5


def test_a_split_ends_the_first_series_before_the_occurrence_and_continues_the_count() -> None:
    first = datetime(2027, 3, 22, 9, tzinfo=BERLIN)
    lines = ["RRULE:FREQ=WEEKLY;COUNT=5", "EXDATE:20270329T070000Z,20270412T070000Z"]
    at = datetime(2027, 4, 5, 7, tzinfo=UTC)

    before, after = split(lines, first, "Europe/Berlin", at)

    assert before == ["RRULE:FREQ=WEEKLY;UNTIL=20270405T065959Z", "EXDATE:20270329T070000Z"]
    assert after == ["RRULE:FREQ=WEEKLY;COUNT=3", "EXDATE:20270412T070000Z"]
    old = series(first, *before, zone="Europe/Berlin")
    new = series(at, *after, zone="Europe/Berlin")
    assert [*starts(old), *starts(new)] == [
        o.start for o in occurrences(series(first, *lines, zone="Europe/Berlin"))]


def test_an_expansion_stops_a_hundred_years_after_the_first_start() -> None:
    first = datetime(2027, 1, 1, 8, tzinfo=UTC)
    daily = series(first, "RRULE:FREQ=DAILY")

    began = time.perf_counter()
    assert occurrences(daily, after=datetime(8999, 1, 1, tzinfo=UTC), limit=5) == []
    assert not occurs(daily, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert len(occurrences(daily, after=datetime(2120, 1, 1, tzinfo=UTC), limit=5)) == 5
    assert time.perf_counter() - began < 5
