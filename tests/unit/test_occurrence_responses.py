"""Answers to one occurrence of a series on the Event aggregate (SPEC §6.3: "on an occurrence
id it answers for that occurrence only"), with no persistence and a fixed clock: where they
stand beside the series' answers, and which changes void them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent

from domain.application import EventsApplication
from domain.errors import ForbiddenError, GoneError, InvalidFieldsError, NotFoundError
from domain.events import Event, fact_changes, instance_of
from domain.freebusy import occurrence_times
from domain.presentation import instant
from domain.recurrence import key
from projections.occurrences import RESPONSES, Exceptions, advance, series_of
from tests.unit.fixtures import END, NOW, START, fields

OWNER = "owner-1"
WEEK = timedelta(weeks=1)
WEEKLY = ["RRULE:FREQ=WEEKLY;COUNT=5"]
SECOND, THIRD = START + WEEK, START + 2 * WEEK


def weekly(**overrides: Any) -> Event:
    event = Event.create(owner_id=OWNER, **fields(recurrence=WEEKLY, **overrides))
    event.collect_events()
    return event


def answers(event: Event, start: datetime) -> list[str]:
    """p-1's and p-2's answers to the occurrence at `start`."""
    shown = event.occurrence_responses(start)
    return [shown.get(person, "needs_action") for person in ("p-1", "p-2")]


def test_an_answer_to_one_occurrence_is_a_fact_naming_it_and_stands_for_it_alone() -> None:
    event = weekly()
    assert event.respond(participant="p-1", response="accepted", by="p-1",
                         original_start=SECOND) is True

    [fact] = event.collect_events()
    assert isinstance(fact, Event.Responded)
    assert fact.original_start == SECOND
    assert instance_of(fact) == key(SECOND)
    assert fact_changes(fact) == {"attendee": "p-1", "response": "accepted"}
    assert answers(event, SECOND) == ["accepted", "needs_action"]
    assert answers(event, START) == answers(event, THIRD) == ["needs_action", "needs_action"]
    assert event.responses == {}  # the series' own answers are untouched
    assert event.sequence == 0


def test_a_series_answer_stands_for_every_occurrence_without_one_of_its_own() -> None:
    event = weekly()
    event.respond(participant="p-1", response="accepted", by="p-1", original_start=SECOND)
    event.respond(participant="p-1", response="declined", by="p-1")

    assert answers(event, SECOND) == ["accepted", "needs_action"]
    assert answers(event, START) == answers(event, THIRD) == ["declined", "needs_action"]


def test_the_same_answer_to_an_occurrence_again_records_nothing_but_its_own_is_kept() -> None:
    event = weekly()
    event.respond(participant="p-1", response="accepted", by="p-1")
    # the series' answer shows on it, but the occurrence has none of its own yet: recorded,
    # so a later series-wide answer leaves it
    assert event.respond(participant="p-1", response="accepted", by="p-1",
                         original_start=SECOND) is True
    assert event.respond(participant="p-1", response="accepted", by="p-1",
                         original_start=SECOND) is False
    event.respond(participant="p-1", response="tentative", by="p-1")
    assert answers(event, SECOND) == ["accepted", "needs_action"]
    assert answers(event, THIRD) == ["tentative", "needs_action"]


def test_unknown_cancelled_and_uninvited_answers_are_refused() -> None:
    event = weekly()
    with pytest.raises(NotFoundError):
        event.respond(participant="p-1", response="accepted", by="p-1",
                      original_start=SECOND + timedelta(hours=1))
    event.cancel_occurrence(THIRD, by=OWNER)
    with pytest.raises(GoneError):
        event.respond(participant="p-1", response="accepted", by="p-1", original_start=THIRD)
    for who in (OWNER, "stranger"):
        with pytest.raises(ForbiddenError):
            event.respond(participant=who, response="accepted", by=who, original_start=SECOND)
    with pytest.raises(InvalidFieldsError):
        event.respond(participant="p-1", response="needs_action", by="p-1",
                      original_start=SECOND)


def test_an_occurrences_own_participants_answer_it() -> None:
    event = weekly()
    event.change_occurrence(SECOND, by=OWNER, now=NOW, participants=["p-2", "p-3"])
    event.respond(participant="p-3", response="accepted", by="p-3", original_start=SECOND)
    assert event.occurrence_responses(SECOND)["p-3"] == "accepted"
    with pytest.raises(ForbiddenError):
        event.respond(participant="p-1", response="accepted", by="p-1", original_start=SECOND)
    with pytest.raises(ForbiddenError):
        event.respond(participant="p-3", response="accepted", by="p-3", original_start=THIRD)


def test_moving_an_occurrence_resets_its_answers_and_a_new_place_keeps_them() -> None:
    event = weekly()
    event.respond(participant="p-1", response="accepted", by="p-1", original_start=SECOND)
    event.respond(participant="p-2", response="declined", by="p-2")

    event.change_occurrence(SECOND, by=OWNER, now=NOW, location="Haifa")
    assert answers(event, SECOND) == ["accepted", "declined"]

    event.change_occurrence(SECOND, by=OWNER, now=NOW, starting_time=SECOND + timedelta(hours=2),
                            end_time=SECOND + timedelta(hours=3))
    # reset, the series' answer too: it was given for the occurrence's old time
    assert answers(event, SECOND) == ["needs_action", "needs_action"]
    assert answers(event, THIRD) == ["needs_action", "declined"]
    event.respond(participant="p-2", response="accepted", by="p-2")
    assert answers(event, SECOND) == ["needs_action", "needs_action"]


def test_a_new_time_of_the_series_resets_every_answer() -> None:
    event = weekly()
    event.respond(participant="p-1", response="accepted", by="p-1", original_start=SECOND)
    event.respond(participant="p-2", response="declined", by="p-2")

    event.change(by=OWNER, now=NOW, end_time=END + timedelta(minutes=30))
    assert event.responses == {} and event.occurrence_answers == {}
    assert answers(event, SECOND) == ["needs_action", "needs_action"]


def test_a_removed_participant_loses_their_occurrence_answers() -> None:
    event = weekly()
    event.respond(participant="p-1", response="accepted", by="p-1", original_start=SECOND)
    event.respond(participant="p-2", response="accepted", by="p-2", original_start=SECOND)

    event.change(by=OWNER, now=NOW, participants=["p-2"])
    assert event.occurrence_answers == {SECOND: {"p-2": "accepted"}}
    event.change_occurrence(SECOND, by=OWNER, now=NOW, participants=["p-1"])
    assert event.occurrence_answers == {}


def test_answers_of_occurrences_that_no_longer_occur_or_are_cancelled_go() -> None:
    event = weekly()
    for start in (START, SECOND, THIRD):
        event.respond(participant="p-1", response="accepted", by="p-1", original_start=start)

    event.change(by=OWNER, now=NOW, recurrence=["RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=3"])
    assert set(event.occurrence_answers) == {START, THIRD}
    event.cancel_occurrence(THIRD, by=OWNER)
    assert set(event.occurrence_answers) == {START}
    event.change(by=OWNER, now=NOW, recurrence=[])
    assert event.occurrence_answers == {}


def test_the_facts_fold_again_into_the_same_answers() -> None:
    event = Event.create(owner_id=OWNER, **fields(recurrence=WEEKLY))
    event.respond(participant="p-1", response="accepted", by="p-1", original_start=SECOND)
    event.respond(participant="p-1", response="declined", by="p-1")
    event.change_occurrence(THIRD, by=OWNER, now=NOW, starting_time=THIRD + timedelta(hours=1),
                            end_time=THIRD + timedelta(hours=2))
    folded = None
    for fact in event.collect_events():
        folded = fact.mutate(folded)
    assert isinstance(folded, Event)
    assert (folded.responses, folded.occurrence_answers) == (
        event.responses, event.occurrence_answers)


def test_an_answer_stored_before_occurrences_could_be_answered_reads_as_the_series() -> None:
    mapper = EventsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
    event = weekly()
    event.respond(participant="p-1", response="accepted", by="p-1")
    stored = mapper.to_stored_event(event.collect_events()[-1])
    state = json.loads(stored.state)
    del state["original_start"]
    old = StoredEvent(stored.originator_id, stored.originator_version, stored.topic,
                      json.dumps(state).encode())

    read = mapper.to_domain_event(old)

    assert isinstance(read, Event.Responded)
    assert read.original_start is None and instance_of(read) is None


def view_of(event: Event) -> tuple[dict[str, Any], Exceptions]:
    """The series' view row and exceptions, folded from its facts as projections do."""
    folded, exceptions, row = None, Exceptions(), {}
    for fact in event.collect_events():
        folded = fact.mutate(folded)
        assert isinstance(folded, Event)
        row = {"starting_time": instant(folded.starting_time),
               "end_time": instant(folded.end_time), "time_zone": folded.time_zone,
               "recurrence": json.dumps(folded.recurrence),
               "participants": json.dumps(folded.participants)}
        exceptions = advance(row, exceptions, fact)
    return row, exceptions


def test_an_occurrence_accepted_alone_keeps_its_participant_busy_then_alone() -> None:
    event = Event.create(owner_id=OWNER, **fields(recurrence=WEEKLY))
    event.respond(participant="p-1", response="accepted", by="p-1", original_start=SECOND)
    event.respond(participant="p-1", response="declined", by="p-1", original_start=THIRD)
    window = (NOW, NOW + 6 * WEEK)
    row, exceptions = view_of(event)
    series = series_of(row, exceptions)
    assert series is not None and exceptions.answered_by("p-1")
    assert not exceptions.answered_by("p-2")
    assert occurrence_times(series, *window, "p-1", ["p-1", "p-2"], {}) == [
        (SECOND, SECOND + (END - START))]
    # the series accepted as a whole: every occurrence but the one declined for itself
    assert occurrence_times(series, *window, "p-1", ["p-1", "p-2"], {"p-1": "accepted"}) == [
        (start, start + (END - START))
        for start in (START, SECOND, START + 3 * WEEK, START + 4 * WEEK)]


def test_the_views_exceptions_keep_the_answers_the_aggregate_keeps() -> None:
    """projections.occurrences folds the facts into a series' exceptions by the same rules."""
    event = Event.create(owner_id=OWNER, **fields(recurrence=WEEKLY, participants=["p-1", "p-2"]))
    event.respond(participant="p-1", response="accepted", by="p-1", original_start=SECOND)
    event.respond(participant="p-2", response="tentative", by="p-2", original_start=SECOND)
    event.respond(participant="p-2", response="declined", by="p-2", original_start=THIRD)
    event.change(by=OWNER, now=NOW, participants=["p-2"])
    event.change_occurrence(THIRD, by=OWNER, now=NOW, starting_time=THIRD + timedelta(hours=1),
                            end_time=THIRD + timedelta(hours=2))
    event.respond(participant="p-2", response="accepted", by="p-2",
                  original_start=START + 4 * WEEK)
    event.change(by=OWNER, now=NOW, recurrence=["RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=3"])
    folded, exceptions = None, Exceptions()
    for fact in event.collect_events():
        folded = fact.mutate(folded)
        assert isinstance(folded, Event)
        row = {"starting_time": instant(folded.starting_time),
               "end_time": instant(folded.end_time), "time_zone": folded.time_zone,
               "recurrence": json.dumps(folded.recurrence),
               "participants": json.dumps(folded.participants)}
        exceptions = advance(row, exceptions, fact)
        assert {k: v[RESPONSES] for k, v in exceptions.overrides.items() if RESPONSES in v} \
            == {key(start): answers for start, answers in folded.occurrence_answers.items()}
    assert event.occurrence_answers == {THIRD: {"p-2": "needs_action"},
                                        START + 4 * WEEK: {"p-2": "accepted"}}
