"""Participants' answers on the Event aggregate (SPEC §6.3), with no persistence and a fixed
clock: who may answer, what an answer records, and which changes void the answers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from domain.errors import ForbiddenError, GoneError, InvalidFieldsError
from domain.events import Event, attendee_responses, fact_by, fact_changes, fact_people
from tests.unit.fixtures import END, NOW, START, fields

OWNER = "owner-1"


def answered(**overrides: Any) -> Event:
    """An event whose p-1 has accepted and p-2 declined, nothing pending."""
    event = Event.create(owner_id=OWNER, **fields(**overrides))
    event.respond(participant="p-1", response="accepted", by="p-1")
    event.respond(participant="p-2", response="declined", by="p-2")
    event.collect_events()
    return event


def test_an_answer_is_a_fact_naming_the_participant_by_id() -> None:
    event = Event.create(owner_id=OWNER, **fields())
    assert attendee_responses(event.participants, event.responses) == [
        "needs_action", "needs_action"]

    assert event.respond(participant="p-2", response="tentative", by="p-2") is True

    fact = event.collect_events()[-1]
    assert isinstance(fact, Event.Responded)
    assert (fact.participant, fact.response, fact_by(fact)) == ("p-2", "tentative", "p-2")
    assert fact_changes(fact) == {"attendee": "p-2", "response": "tentative"}
    assert fact_people(fact) == {"p-2"}
    assert attendee_responses(event.participants, event.responses) == [
        "needs_action", "tentative"]
    assert event.sequence == 0  # an answer is no revision of the event


def test_the_same_answer_again_records_nothing() -> None:
    event = answered()
    assert event.respond(participant="p-1", response="accepted", by="p-1") is False
    assert event.collect_events() == []


@pytest.mark.parametrize("who", [OWNER, "stranger"])
def test_only_participants_may_answer(who: str) -> None:
    event = answered()
    with pytest.raises(ForbiddenError):
        event.respond(participant=who, response="accepted", by=who)


def test_needs_action_and_unknown_answers_are_refused() -> None:
    event = answered()
    for bad in ("needs_action", "maybe", ""):
        with pytest.raises(InvalidFieldsError):
            event.respond(participant="p-1", response=bad, by="p-1")


def test_a_deleted_event_cannot_be_answered() -> None:
    event = answered()
    event.delete(by=OWNER)
    with pytest.raises(GoneError):
        event.respond(participant="p-1", response="declined", by="p-1")


def test_a_started_event_may_be_answered_but_not_by_link_once_it_has_ended() -> None:
    event = answered()
    event.check_answerable_by_link(START + timedelta(minutes=30))
    assert event.respond(participant="p-1", response="declined", by="p-1") is True
    with pytest.raises(GoneError):
        event.check_answerable_by_link(END)


@pytest.mark.parametrize("changes", [{"starting_time": START + timedelta(minutes=30)},
                                     {"end_time": END + timedelta(hours=1)}])
def test_a_new_time_voids_every_answer(changes: dict[str, Any]) -> None:
    event = answered()
    event.change(by=OWNER, now=NOW, **changes)
    assert event.responses == {}


def test_a_new_place_or_name_keeps_the_answers() -> None:
    event = answered()
    event.change(by=OWNER, now=NOW, location="Haifa Bay", name="Sync")
    assert event.responses == {"p-1": "accepted", "p-2": "declined"}


def test_a_removed_participant_loses_their_answer_and_comes_back_needing_action() -> None:
    event = answered()
    event.change(by=OWNER, now=NOW, participants=["p-2", "p-3"])
    assert event.responses == {"p-2": "declined"}
    event.change(by=OWNER, now=NOW, participants=["p-2", "p-3", "p-1"])
    assert attendee_responses(event.participants, event.responses) == [
        "declined", "needs_action", "needs_action"]
