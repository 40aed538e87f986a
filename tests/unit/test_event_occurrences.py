"""A series' occurrences on the Event aggregate, without persistence and with a fixed clock:
their own changes and cancellations are facts keyed by original start, kept or dropped as the
series changes, and folding the facts again gives the same series."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from consumers.messages import MessageMaker
from domain.errors import ConflictError, GoneError, InvalidFieldsError, NotFoundError
from domain.events import Event
from domain.recurrence import key, occurrences
from domain.reminders import Reminder
from tests.unit.fixtures import NOW, START, fields

OWNER = "owner-1"
DAY = timedelta(days=1)


def series(**overrides: Any) -> Event:
    return Event.create(owner_id=OWNER, **fields(recurrence=["RRULE:FREQ=DAILY;COUNT=5"],
                                                 **overrides))


def test_an_occurrence_keeps_its_own_change_when_the_series_changes_that_and_other_fields(
) -> None:
    event = series()
    event.change_occurrence(START + DAY, by=OWNER, now=NOW, name="Own name")
    event.change(by=OWNER, now=NOW, name="Series name", location="Elsewhere")

    found = occurrences(event.series())

    assert [o.changes.get("name") for o in found] == [None, "Own name", None, None, None]
    assert event.occurrence_state(found[1])["name"] == "Own name"
    assert event.occurrence_state(found[1])["location"] == "Elsewhere"
    assert event.occurrence_state(found[0])["name"] == "Series name"


def test_a_shorter_rule_drops_the_changes_and_cancellations_of_occurrences_gone() -> None:
    event = series()
    event.change_occurrence(START + 4 * DAY, by=OWNER, now=NOW, name="Last")
    event.cancel_occurrence(START + 3 * DAY, by=OWNER)
    event.change_occurrence(START + DAY, by=OWNER, now=NOW, name="Second")

    event.change(by=OWNER, now=NOW, recurrence=["RRULE:FREQ=DAILY;COUNT=3"])

    assert set(event.overrides) == {START + DAY}
    assert event.cancelled == set()
    with pytest.raises(NotFoundError):
        event.occurrence(START + 4 * DAY)


def test_a_cancelled_occurrence_is_gone_and_cannot_be_changed_or_cancelled_again() -> None:
    event = series()
    event.cancel_occurrence(START + DAY, by=OWNER)

    for attempt in (lambda: event.occurrence(START + DAY),
                    lambda: event.change_occurrence(START + DAY, by=OWNER, now=NOW, name="x"),
                    lambda: event.cancel_occurrence(START + DAY, by=OWNER)):
        with pytest.raises(GoneError):
            attempt()
    assert [o.original_start for o in occurrences(event.series())] == [
        START, START + 2 * DAY, START + 3 * DAY, START + 4 * DAY]


def test_an_occurrence_cannot_change_the_rule_nor_be_changed_once_started() -> None:
    event = series()

    with pytest.raises(InvalidFieldsError) as refused:
        event.change_occurrence(START + DAY, by=OWNER, now=NOW, recurrence=[])
    assert set(refused.value.fields) == {"recurrence"}
    with pytest.raises(ConflictError):
        event.change_occurrence(START, by=OWNER, now=START + timedelta(minutes=1), name="Late")


def test_a_series_may_change_while_an_occurrence_is_yet_to_start() -> None:
    event = series()

    changed = event.change(by=OWNER, now=START + 2 * DAY, name="Renamed mid-way")

    assert changed == {"name": "Renamed mid-way"}
    with pytest.raises(ConflictError):
        event.change(by=OWNER, now=START + 5 * DAY, name="After the last")


def following(at: timedelta, **changes: Any) -> Event:
    """The new series a split at START + `at` starts: the rest of `series()`'s five days."""
    return Event.create(owner_id=OWNER, **fields(**{
        "starting_time": START + at, "end_time": START + at + timedelta(hours=1),
        "recurrence": [f"RRULE:FREQ=DAILY;COUNT={5 - at // DAY}"], **changes}))


def test_a_split_carries_the_own_changes_of_the_occurrences_after_it_as_facts() -> None:
    event = series()
    moved = START + 3 * DAY + timedelta(minutes=30)
    event.change_occurrence(START + DAY, by=OWNER, now=NOW, name="Before the split")
    event.change_occurrence(START + 3 * DAY, by=OWNER, now=NOW, name="Own", starting_time=moved)
    event.change_occurrence(START + 4 * DAY, by=OWNER, now=NOW, location="Far")
    event.respond(participant="p-1", response="accepted", by="p-1",
                  original_start=START + 4 * DAY)
    new = following(2 * DAY, name="New", end_time=START + 2 * DAY + timedelta(minutes=15))

    new.carry_occurrences(event, START + 2 * DAY, by=OWNER)

    assert new.overrides == {
        START + 3 * DAY: {"name": "Own", "starting_time": moved,
                          "end_time": START + 3 * DAY + timedelta(hours=1)},
        START + 4 * DAY: {"location": "Far"}}
    shown = [new.occurrence_state(o) for o in occurrences(new.series())]
    assert [(o["name"], o["location"]) for o in shown] == [
        ("New", "Tel Aviv Port"), ("Own", "Tel Aviv Port"), ("New", "Far")]
    assert (shown[1]["starting_time"], shown[2]["end_time"]) == (
        moved, START + 4 * DAY + timedelta(minutes=15))
    assert new.response_of("p-1", START + 4 * DAY) == "needs_action"
    facts = new.collect_events()
    assert [type(fact) for fact in facts] == [Event.Created, Event.OccurrenceChanged,
                                              Event.OccurrenceChanged]
    assert {fact.by for fact in facts[1:]} == {OWNER}


def test_a_split_that_retimes_the_series_drops_the_changes_of_occurrences_gone() -> None:
    event = series()
    event.change_occurrence(START + 3 * DAY, by=OWNER, now=NOW, name="Own")
    new = following(2 * DAY + timedelta(hours=2))

    new.carry_occurrences(event, START + 2 * DAY, by=OWNER)

    assert new.overrides == {}
    assert len(new.collect_events()) == 1


def test_folding_the_facts_again_gives_the_same_series() -> None:
    event = series()
    event.change_occurrence(START + DAY, by=OWNER, now=NOW, name="Own",
                            starting_time=START + DAY + timedelta(hours=2),
                            end_time=START + DAY + timedelta(hours=3))
    event.cancel_occurrence(START + 2 * DAY, by=OWNER)
    event.change(by=OWNER, now=NOW, location="Moved")
    facts = event.collect_events()

    folded = None
    for fact in facts:
        folded = fact.mutate(folded)

    assert isinstance(folded, Event)
    assert folded.series() == event.series()
    assert folded.occurrence_state(occurrences(folded.series())[1]) == \
        event.occurrence_state(occurrences(event.series())[1])


def test_messages_about_an_occurrence_and_its_reminder_name_it() -> None:
    event = series(participants=[])
    event.change_occurrence(START + DAY, by=OWNER, now=NOW, name="Own")
    facts = event.collect_events()
    reminder = Reminder(event_id=str(event.id), starting_time=START + DAY,
                        original_start=START + DAY)
    makes = MessageMaker(lambda event_id, version: event, lambda ids: {})
    instance = f"{event.id}_{key(START + DAY)}"

    changed = makes.make(2, facts[-1])
    reminded = makes.make(3, reminder.collect_events()[0])

    assert changed is not None and reminded is not None
    assert (changed["type"], changed["instance_id"], changed["event"]["id"]) == (
        "event.updated", instance, instance)
    assert changed["event"]["name"] == "Own" and changed["event_id"] == str(event.id)
    assert (reminded["type"], reminded["instance_id"]) == ("event.reminder", instance)
    assert Reminder.create_id(str(event.id), START + DAY, START + DAY) != \
        Reminder.create_id(str(event.id), START + DAY)
