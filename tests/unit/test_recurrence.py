"""domain.recurrence: rules checked and expanded in the series' own zone, with no I/O."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.recurrence import (
    RecurrenceError,
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


WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
ZONES = ("Europe/Berlin", "America/New_York", "UTC", "Australia/Lord_Howe")


@st.composite
def rule_series(draw: st.DrawFn) -> Series:
    """A series whose rule has its first occurrence at its start: random parts around the
    start's own day, at times of day that fall into DST gaps and folds in some zones."""
    zone = draw(st.sampled_from(ZONES))
    day = draw(st.dates(datetime(2026, 1, 1).date(), datetime(2028, 12, 31).date()))
    hour, minute = draw(st.sampled_from([(0, 0), (1, 30), (2, 0), (2, 15), (2, 30), (9, 0),
                                         (23, 30)]))
    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(zone))
    frequency = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    parts = [f"FREQ={frequency}", f"INTERVAL={draw(st.integers(1, 3))}"]
    if draw(st.booleans()):
        days = {WEEKDAYS[local.weekday()], *draw(st.sets(st.sampled_from(WEEKDAYS)))}
        ordinal = frequency in ("MONTHLY", "YEARLY") and draw(st.booleans())
        parts.append("BYDAY=" + ",".join(
            (draw(st.sampled_from(["1", "2", "-1", "+3"])) if ordinal else "") + one
            for one in sorted(days)))
    if frequency != "WEEKLY" and frequency != "DAILY" and draw(st.booleans()):
        parts.append(f"BYMONTHDAY={local.day}," + draw(st.sampled_from(["1", "-1", "15", "31"])))
    if frequency in ("MONTHLY", "YEARLY") and draw(st.booleans()):
        parts.append(f"BYMONTH={local.month}," + str(draw(st.integers(1, 12))))
    if frequency == "YEARLY" and draw(st.booleans()):
        parts.append("BYWEEKNO=" + ",".join(draw(st.sets(st.sampled_from(
            ["1", "2", "20", "52", "53", "-1"]), min_size=1))))
    if frequency in ("MONTHLY", "YEARLY") and len(parts) > 2 and draw(st.booleans()):
        parts.append("BYSETPOS=" + draw(st.sampled_from(["1", "-1", "2", "1,-1"])))
    if draw(st.booleans()):
        parts.append("WKST=" + draw(st.sampled_from(WEEKDAYS)))
    ending = draw(st.sampled_from(["", "COUNT", "UNTIL"]))
    if ending == "COUNT":
        parts.append(f"COUNT={draw(st.integers(1, 60))}")
    elif ending == "UNTIL":
        until = local + timedelta(days=draw(st.integers(0, 2000)))
        parts.append(f"UNTIL={key(until)}")
    lines = ["RRULE:" + ";".join(parts)]
    assume(check(lines, local.astimezone(UTC), zone) is None)
    return series(local, *lines, zone=zone)


@settings(max_examples=400, deadline=None)
@given(rule_series(), st.data())
def test_an_expansion_resumed_at_a_known_start_equals_the_full_one(
        rule: Series, data: st.DataObject) -> None:
    before = rule.start + timedelta(days=3 * 366)
    full = list(islice(starts(rule, before=before), 120))
    assume(full)
    # EXDATE one of its starts and RDATE another time, possibly rebasing at that very time
    extra = []
    if data.draw(st.booleans()):
        extra.append(f"EXDATE:{key(data.draw(st.sampled_from(full)))}")
    if data.draw(st.booleans()):
        extra.append(f"RDATE:{key(full[0] + timedelta(hours=data.draw(st.integers(1, 5000))))}")
    rule = series(rule.start.astimezone(ZoneInfo(rule.zone)), *rule.recurrence, *extra,
                  zone=rule.zone)
    full = list(islice(starts(rule, before=before), 120))
    assume(full)
    end = full[-1] + timedelta(seconds=1)
    since = data.draw(st.sampled_from(full))
    after = since + timedelta(hours=data.draw(st.sampled_from([0, 0, 1, 24, 24 * 40])))

    assert list(starts(rule, after, end, since=since)) == [
        one for one in full if after <= one < end]


def test_a_split_at_an_occurrence_in_a_dst_gap_is_refused() -> None:
    """Its second series would start at 01:30 UTC, which Berlin reads as 03:30: it would
    recur at 03:30 rather than at the rule's 02:30."""
    first = datetime(2027, 3, 20, 2, 30, tzinfo=BERLIN)
    at = datetime(2027, 3, 28, 1, 30, tzinfo=UTC)  # 02:30 read before the gap
    assert at in list(starts(series(first, "RRULE:FREQ=DAILY;COUNT=20", zone="Europe/Berlin")))

    with pytest.raises(RecurrenceError, match=r"02:30.*2027-03-28"):
        split(["RRULE:FREQ=DAILY"], first, "Europe/Berlin", at)


def test_a_split_at_an_occurrence_in_a_dst_fold_keeps_the_rules_wall_time() -> None:
    first = datetime(2027, 10, 28, 2, 30, tzinfo=BERLIN)
    at = datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # the first 02:30, CEST

    _, after = split(["RRULE:FREQ=DAILY"], first, "Europe/Berlin", at)

    new = series(at, *after, zone="Europe/Berlin")
    later = starts(new, before=at + timedelta(days=4))
    assert [f"{one.astimezone(BERLIN):%H:%M}" for one in later] == ["02:30"] * 4


@pytest.mark.parametrize(("zone", "first", "rebased_on"), [
    ("Europe/Berlin", datetime(2027, 3, 20, 2, 30), datetime(2027, 3, 28)),  # in the gap
    ("America/New_York", datetime(2027, 3, 10, 2, 30), datetime(2027, 3, 14)),  # in the gap
    ("Australia/Lord_Howe", datetime(2026, 9, 30, 2, 15), datetime(2026, 10, 4)),  # 30 min gap
    ("America/New_York", datetime(2027, 11, 1, 1, 30), datetime(2027, 11, 7)),  # in the fold
    ("Europe/Berlin", datetime(2027, 10, 28, 2, 30), datetime(2027, 10, 31)),  # in the fold
])
def test_an_expansion_resumed_at_a_dst_change_keeps_the_rules_wall_time(
        zone: str, first: datetime, rebased_on: datetime) -> None:
    rule = series(first.replace(tzinfo=ZoneInfo(zone)), "RRULE:FREQ=DAILY", zone=zone)
    end = rule.start + timedelta(days=30)
    full = list(starts(rule, before=end))
    since = next(one for one in full if one.astimezone(ZoneInfo(zone)).day == rebased_on.day)

    assert list(starts(rule, since, end, since=since)) == [one for one in full if one >= since]
