"""Properties of the event rules, for any input Hypothesis finds: the supported range of times
holds whatever UTC offset a time is written in, facts hold UTC instants, a change to the same
instant in another offset records nothing, and every broken field is named at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidFieldsError
from domain.events import EARLIEST, LATEST, MAX_TEXT, Event, field_problems
from tests.unit.fixtures import NOW, fields

OWNER = "owner"
# Every UTC offset a client may write (RFC 3339 allows up to ±23:59; real ones are ±14:00).
offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
in_range = st.datetimes(min_value=EARLIEST.replace(tzinfo=None),
                        max_value=(LATEST - timedelta(hours=2)).replace(tzinfo=None),
                        timezones=st.just(UTC))
# Instants Python can hold in every offset (a day of margin at each end of its range) but
# outside the supported range.
outside = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=(EARLIEST - timedelta(microseconds=1))
                 .replace(tzinfo=None), timezones=st.just(UTC)),
    st.datetimes(min_value=LATEST.replace(tzinfo=None), max_value=datetime(9999, 12, 30),
                 timezones=st.just(UTC)),
)
durations = st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(hours=2))
CASES = settings(max_examples=300, deadline=None)


@CASES
@given(start=in_range, length=durations, start_in=offsets, end_in=offsets)
def test_any_event_inside_the_range_is_created_and_its_fact_holds_utc_instants(
        start: datetime, length: timedelta, start_in: timezone, end_in: timezone) -> None:
    event = Event.create(owner_id=OWNER, **fields(
        starting_time=start.astimezone(start_in), end_time=(start + length).astimezone(end_in)))
    assert (event.starting_time, event.end_time) == (start, start + length)
    assert event.starting_time.utcoffset() == event.end_time.utcoffset() == timedelta(0)


@CASES
@given(moment=outside, written_in=offsets, field=st.sampled_from(["starting_time", "end_time"]))
def test_any_time_outside_the_range_is_refused_naming_its_field(
        moment: datetime, written_in: timezone, field: str) -> None:
    other = "end_time" if field == "starting_time" else "starting_time"
    given_fields = fields(**{field: moment.astimezone(written_in), other: NOW})
    with pytest.raises(InvalidFieldsError) as refused:
        Event.create(owner_id=OWNER, **given_fields)
    assert set(refused.value.fields) == {field}
    assert "1900-01-01T00:00:00Z" in refused.value.fields[field]


@CASES
@given(moment=outside, written_in=offsets)
def test_an_event_cannot_be_moved_outside_the_range(moment: datetime,
                                                    written_in: timezone) -> None:
    event = Event.create(owner_id=OWNER, **fields())
    with pytest.raises(InvalidFieldsError) as refused:
        event.change(by=OWNER, now=NOW, end_time=moment.astimezone(written_in))
    assert "end_time" in refused.value.fields
    assert event.version == 1 and not list(event.collect_events())[1:]


@CASES
@given(written_in=offsets)
def test_the_same_instants_in_another_offset_are_no_change(written_in: timezone) -> None:
    event = Event.create(owner_id=OWNER, **fields())
    changes = event.change(by=OWNER, now=NOW,
                           starting_time=event.starting_time.astimezone(written_in),
                           end_time=event.end_time.astimezone(written_in))
    assert changes == {} and event.version == 1


BROKEN: dict[str, Any] = {
    "name": " ", "location": "x" * (MAX_TEXT + 1), "starting_time": EARLIEST - timedelta(1),
    "participants": [str(n) for n in range(1001)], "time_zone": "+02:00",
}


@CASES
@given(chosen=st.sets(st.sampled_from(sorted(BROKEN)), min_size=1))
def test_every_broken_field_is_named_at_once(chosen: set[str]) -> None:
    problems = field_problems(fields(**{name: BROKEN[name] for name in chosen}))
    assert set(problems) == chosen
