"""A worker's own tail of the log (consumers.notify): it makes messages only while its hub has
sockets to hear them, and what it passes over never makes a later message stale."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from consumers.messages import MessageMaker
from consumers.notify import next_messages
from domain.events import Event
from domain.reminders import Reminder
from tests.unit.fixtures import NOW, START, fields


class ListLog:
    def __init__(self) -> None:
        self.facts: list[tuple[int, Any]] = []

    def append(self, *facts: Any) -> None:
        self.facts += [(len(self.facts) + 1 + i, fact) for i, fact in enumerate(facts)]

    def head(self) -> int:
        return len(self.facts)

    def read(self, after: int, limit: int) -> list[tuple[int, Any]]:
        return self.facts[after:after + limit]


def test_facts_nobody_hears_are_passed_over_and_later_messages_show_the_event_as_it_is(
) -> None:
    event = Event.create(owner_id="owner-1", **fields())
    log = ListLog()
    looked_up: list[set[str]] = []
    loaded: list[tuple[UUID, int | None]] = []

    def names(ids: set[str]) -> dict[str, str]:
        looked_up.append(ids)
        return {}

    def load(event_id: UUID, version: int | None) -> Event:
        loaded.append((event_id, version))
        return event

    maker = MessageMaker(load, names)
    log.append(*event.collect_events())
    assert next_messages(log, maker, 0)[0], "a socket hears the creation"
    # then nobody listens while the event is renamed
    event.change(by="owner-1", now=NOW, name="Renamed")
    log.append(*event.collect_events())
    looked_up.clear()

    assert next_messages(log, maker, 1, heard=lambda: False) == ([], 2, False)
    assert not looked_up and not loaded, "nothing was made of a fact nobody hears"

    log.append(*Reminder(event_id=str(event.id), starting_time=START,
                          original_start=None).collect_events())
    messages, reached, more = next_messages(log, maker, 2)
    assert reached == 3 and not more and [m["type"] for m in messages] == ["event.reminder"]
    assert messages[0]["event"]["name"] == "Renamed", "not the name kept from before"
    assert loaded == [(event.id, None)]
