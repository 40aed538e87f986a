"""The Event aggregate's rules, checked without any persistence and with a fixed clock."""

from __future__ import annotations

from datetime import timedelta, timezone
from itertools import pairwise
from typing import Any

import pytest

from domain.errors import ConflictError, ForbiddenError, GoneError, InvalidFieldsError
from domain.events import MAX_PARTICIPANTS, MAX_TEXT, Event, fact_by, fact_changes
from tests.unit.fixtures import END, NOW, START, fields

OWNER = "owner-1"
STRANGER = "stranger-2"


def new_event(**overrides: Any) -> Event:
    event = Event.create(owner_id=OWNER, **fields(**overrides))
    event.collect_events()  # start each test with nothing pending but the facts it causes
    return event


# --- create -------------------------------------------------------------------------------


def test_a_valid_event_is_created_with_one_created_fact_holding_every_field() -> None:
    event = Event.create(owner_id=OWNER, **fields())

    facts = event.collect_events()
    assert len(facts) == 1
    created = facts[0]
    assert isinstance(created, Event.Created)
    assert event.version == 1
    assert event.deleted is False
    assert event.owner_id == OWNER
    assert event.state() == fields()
    assert fact_by(created) == OWNER
    # a single event's creation names no recurrence
    assert fact_changes(created) == {k: v for k, v in fields().items() if k != "recurrence"}


def test_an_event_may_be_created_with_a_start_in_the_past() -> None:
    past = NOW - timedelta(days=30)

    event = Event.create(
        owner_id=OWNER, **fields(starting_time=past, end_time=past + timedelta(hours=1))
    )

    assert event.starting_time == past


def test_an_end_equal_to_the_start_is_refused_naming_end_time() -> None:
    with pytest.raises(InvalidFieldsError) as refused:
        Event.create(owner_id=OWNER, **fields(end_time=START))

    assert set(refused.value.fields) == {"end_time"}


def test_an_end_before_the_start_is_refused_naming_end_time() -> None:
    with pytest.raises(InvalidFieldsError) as refused:
        Event.create(owner_id=OWNER, **fields(end_time=START - timedelta(minutes=1)))

    assert set(refused.value.fields) == {"end_time"}


@pytest.mark.parametrize("field", ["name", "location"])
@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_an_empty_or_blank_name_or_location_is_refused_naming_the_field(
    field: str, blank: str
) -> None:
    with pytest.raises(InvalidFieldsError) as refused:
        Event.create(owner_id=OWNER, **fields(**{field: blank}))

    assert set(refused.value.fields) == {field}


@pytest.mark.parametrize("field", ["name", "location"])
def test_a_name_or_location_of_exactly_the_limit_is_accepted(field: str) -> None:
    event = Event.create(owner_id=OWNER, **fields(**{field: "x" * MAX_TEXT}))

    assert getattr(event, field) == "x" * MAX_TEXT


@pytest.mark.parametrize("field", ["name", "location"])
def test_a_name_or_location_one_over_the_limit_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(InvalidFieldsError) as refused:
        Event.create(owner_id=OWNER, **fields(**{field: "x" * (MAX_TEXT + 1)}))

    assert set(refused.value.fields) == {field}
    assert str(MAX_TEXT) in refused.value.fields[field]


def test_the_limits_are_the_ones_the_spec_names() -> None:
    assert MAX_TEXT == 200
    assert MAX_PARTICIPANTS == 1000


def test_exactly_the_maximum_number_of_participants_is_accepted() -> None:
    people = [f"p-{i}" for i in range(MAX_PARTICIPANTS)]

    event = Event.create(owner_id=OWNER, **fields(participants=people))

    assert event.participants == people


def test_one_participant_over_the_maximum_is_refused_naming_participants() -> None:
    people = [f"p-{i}" for i in range(MAX_PARTICIPANTS + 1)]

    with pytest.raises(InvalidFieldsError) as refused:
        Event.create(owner_id=OWNER, **fields(participants=people))

    assert set(refused.value.fields) == {"participants"}


def test_duplicate_participants_are_removed_keeping_the_first_order() -> None:
    event = Event.create(owner_id=OWNER, **fields(participants=["b", "a", "b", "c", "a"]))

    assert event.participants == ["b", "a", "c"]
    created = event.collect_events()[0]
    assert isinstance(created, Event.Created)
    assert created.participants == ["b", "a", "c"]


def test_duplicates_do_not_count_towards_the_participant_limit() -> None:
    people = [f"p-{i}" for i in range(MAX_PARTICIPANTS)]

    event = Event.create(owner_id=OWNER, **fields(participants=people + people[:10]))

    assert len(event.participants) == MAX_PARTICIPANTS


def test_every_broken_rule_is_reported_at_once() -> None:
    with pytest.raises(InvalidFieldsError) as refused:
        Event.create(
            owner_id=OWNER,
            **fields(
                name=" ",
                location="x" * (MAX_TEXT + 1),
                end_time=START - timedelta(hours=1),
                participants=[f"p-{i}" for i in range(MAX_PARTICIPANTS + 1)],
            ),
        )

    assert set(refused.value.fields) == {"name", "location", "end_time", "participants"}
    for name in refused.value.fields:
        assert name in str(refused.value)


# --- change -------------------------------------------------------------------------------


def test_only_the_owner_may_change_an_event() -> None:
    event = new_event()

    with pytest.raises(ForbiddenError):
        event.change(by=STRANGER, now=NOW, name="Hijacked")

    assert event.name == "Standup"
    assert event.collect_events() == []


def test_a_deleted_event_cannot_be_changed_even_by_its_owner() -> None:
    event = new_event()
    event.delete(by=OWNER)
    event.collect_events()

    with pytest.raises(GoneError):
        event.change(by=OWNER, now=NOW, name="Revived")

    assert event.collect_events() == []


def test_a_deleted_event_answers_gone_rather_than_forbidden_to_a_stranger() -> None:
    event = new_event()
    event.delete(by=OWNER)

    with pytest.raises(GoneError):
        event.change(by=STRANGER, now=NOW, name="Anything")


def test_a_change_that_changes_nothing_records_no_fact_and_returns_nothing() -> None:
    event = new_event()

    changes = event.change(by=OWNER, now=NOW, **fields())

    assert changes == {}
    assert event.collect_events() == []
    assert event.version == 1


def test_the_same_instant_in_another_offset_is_not_a_change() -> None:
    event = new_event()
    plus_two = timezone(timedelta(hours=2))

    changes = event.change(by=OWNER, now=NOW, starting_time=START.astimezone(plus_two))

    assert changes == {}
    assert event.collect_events() == []


def test_the_same_participants_with_duplicates_are_not_a_change() -> None:
    event = new_event(participants=["p-1", "p-2"])

    changes = event.change(by=OWNER, now=NOW, participants=["p-1", "p-2", "p-1"])

    assert changes == {}
    assert event.collect_events() == []


def test_only_the_changed_fields_are_recorded_in_the_updated_fact() -> None:
    event = new_event()
    new_end = END + timedelta(hours=1)

    changes = event.change(by=OWNER, now=NOW, name="Standup", location="Jaffa", end_time=new_end)

    assert changes == {"location": "Jaffa", "end_time": new_end}
    facts = event.collect_events()
    assert len(facts) == 1
    updated = facts[0]
    assert isinstance(updated, Event.Updated)
    assert updated.changes == {"location": "Jaffa", "end_time": new_end}
    assert updated.by == OWNER
    assert fact_by(updated) == OWNER
    assert fact_changes(updated) == {"location": "Jaffa", "end_time": new_end}
    assert event.location == "Jaffa"
    assert event.end_time == new_end
    assert event.name == "Standup"
    assert event.version == 2


def test_new_participants_replace_the_list_without_duplicates() -> None:
    event = new_event(participants=["p-1", "p-2"])

    changes = event.change(by=OWNER, now=NOW, participants=["p-3", "p-1", "p-3"])

    assert changes == {"participants": ["p-3", "p-1"]}
    assert event.participants == ["p-3", "p-1"]


def test_a_started_event_cannot_be_changed() -> None:
    event = new_event()

    with pytest.raises(ConflictError):
        event.change(by=OWNER, now=START + timedelta(minutes=1), name="Too late")

    assert event.name == "Standup"
    assert event.collect_events() == []


def test_an_event_starting_exactly_now_counts_as_started() -> None:
    event = new_event()

    with pytest.raises(ConflictError):
        event.change(by=OWNER, now=START, name="Too late")


def test_an_event_starting_a_moment_from_now_can_still_be_changed() -> None:
    event = new_event()

    changes = event.change(by=OWNER, now=START - timedelta(microseconds=1), name="Just in time")

    assert changes == {"name": "Just in time"}


def test_a_new_starting_time_in_the_past_is_refused_naming_starting_time() -> None:
    event = new_event()

    with pytest.raises(InvalidFieldsError) as refused:
        event.change(by=OWNER, now=NOW, starting_time=NOW - timedelta(hours=1))

    assert set(refused.value.fields) == {"starting_time"}
    assert event.starting_time == START
    assert event.collect_events() == []


def test_a_new_end_before_the_current_start_is_refused_naming_end_time() -> None:
    event = new_event()

    with pytest.raises(InvalidFieldsError) as refused:
        event.change(by=OWNER, now=NOW, end_time=START - timedelta(minutes=5))

    assert set(refused.value.fields) == {"end_time"}
    assert event.end_time == END
    assert event.collect_events() == []


def test_a_new_start_after_the_current_end_is_refused_naming_end_time() -> None:
    event = new_event()

    with pytest.raises(InvalidFieldsError) as refused:
        event.change(by=OWNER, now=NOW, starting_time=END + timedelta(hours=1))

    assert set(refused.value.fields) == {"end_time"}
    assert event.starting_time == START


def test_moving_both_start_and_end_together_is_checked_on_the_merged_state() -> None:
    event = new_event()
    later_start = END + timedelta(days=1)
    later_end = later_start + timedelta(hours=2)

    changes = event.change(by=OWNER, now=NOW, starting_time=later_start, end_time=later_end)

    assert changes == {"starting_time": later_start, "end_time": later_end}
    assert (event.starting_time, event.end_time) == (later_start, later_end)


def test_a_changed_name_is_checked_like_a_new_one() -> None:
    event = new_event()

    with pytest.raises(InvalidFieldsError) as refused:
        event.change(by=OWNER, now=NOW, name="", location="y" * (MAX_TEXT + 1))

    assert set(refused.value.fields) == {"name", "location"}
    assert event.collect_events() == []


@pytest.mark.parametrize("field, value", [("owner_id", STRANGER), ("deleted", True)])
def test_a_change_cannot_reach_beyond_the_event_fields(field: str, value: object) -> None:
    """Only name, times, location and participants are changeable (SPEC §4 Events); the owner
    and the deleted flag are not fields anyone may set through a change."""
    event = new_event()

    with pytest.raises(InvalidFieldsError) as refused:
        event.change(by=OWNER, now=NOW, **{field: value})

    assert set(refused.value.fields) == {field}
    assert event.owner_id == OWNER
    assert event.deleted is False
    assert event.collect_events() == []


# --- delete -------------------------------------------------------------------------------


def test_deleting_records_a_deleted_fact_naming_who_deleted() -> None:
    event = new_event()

    event.delete(by=OWNER)

    facts = event.collect_events()
    assert len(facts) == 1
    deleted = facts[0]
    assert isinstance(deleted, Event.Deleted)
    assert deleted.by == OWNER
    assert fact_by(deleted) == OWNER
    assert fact_changes(deleted) == {}
    assert event.deleted is True
    assert event.version == 2


def test_an_event_that_has_started_may_still_be_deleted() -> None:
    event = new_event(starting_time=NOW - timedelta(days=1), end_time=NOW - timedelta(hours=20))

    event.delete(by=OWNER)

    assert event.deleted is True


def test_deleting_twice_is_gone() -> None:
    event = new_event()
    event.delete(by=OWNER)
    event.collect_events()

    with pytest.raises(GoneError):
        event.delete(by=OWNER)

    assert event.collect_events() == []


def test_only_the_owner_may_delete_an_event() -> None:
    event = new_event()

    with pytest.raises(ForbiddenError):
        event.delete(by=STRANGER)

    assert event.deleted is False
    assert event.collect_events() == []


# --- the revision calendars know an event by ------------------------------------------------


def test_the_sequence_rises_with_a_new_time_place_removal_or_cancellation_only() -> None:
    event = new_event(participants=["p1", "p2"])
    steps = [
        ({"name": "Renamed"}, 0),
        ({"participants": ["p1", "p2", "p3"]}, 0),  # an addition cancels no one's invitation
        ({"end_time": END + timedelta(hours=2)}, 1),
        ({"starting_time": START + timedelta(hours=1)}, 2),
        ({"location": "Haifa Bay"}, 3),
        ({"participants": ["p1", "p3"]}, 4),  # p2 is sent a cancellation
    ]
    for change, sequence in steps:
        event.change(by=OWNER, now=NOW, **change)
        assert event.sequence == sequence, change
    event.delete(by=OWNER)
    assert event.sequence == 5


def test_the_sequence_is_the_same_when_the_facts_are_folded_again() -> None:
    event = Event.create(owner_id=OWNER, **fields(participants=["p1"]))
    event.change(by=OWNER, now=NOW, location="Haifa Bay")
    event.change(by=OWNER, now=NOW, name="Renamed")
    event.delete(by=OWNER)

    replayed = None
    for fact in event.collect_events():
        replayed = fact.mutate(replayed)

    assert event.sequence == 2
    assert replayed is not None
    assert (replayed.sequence, replayed.stamp) == (event.sequence, event.stamp)


def test_stamps_rise_by_at_least_a_second_though_facts_come_within_one() -> None:
    event = Event.create(owner_id=OWNER, **fields())
    stamps = [event.stamp]
    for n in range(3):
        event.change(by=OWNER, now=NOW, name=f"Name {n}")
        stamps.append(event.stamp)

    assert all(stamp.microsecond == 0 for stamp in stamps)
    assert [b - a for a, b in pairwise(stamps)] == [timedelta(seconds=1)] * 3
    assert stamps[0] == event.created_on.replace(microsecond=0)
