"""Ownership: the events one person has created, as an aggregate of its own, so that creating
an event and deleting its owner's account write to one shared aggregate.

Without it the two never meet in the store: a creation saves only its new event, so an event
created while its owner's account was being deleted could be saved just after the deletion
had listed what to cancel, and survive it. Now both save a fact on the owner's Ownership at
its next version; under optimistic concurrency only one of two such saves succeeds, and the
other is redone on the newer state: a creation after the deletion is refused (the ownership
is closed), and a deletion after the creation cascades to the new event too.

The id is derived from the owner's id (uuid5), so no lookup is needed to find it; it is
opened by the owner's first creation (or by the deletion of an account that never created
one). Kept apart from the User aggregate because events name their owner by id, whatever
holds that id (tests and tools create events for owners that are no account)."""

from __future__ import annotations

import copy
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import AccountClosedError

NAMESPACE = UUID("5d3c4a3e-2f1b-4f7e-9a51-0b7f4d8a6c21")


class Ownership(Aggregate):
    """Whether the owner may still create events; which events they created is in the
    Added facts."""

    class Opened(Aggregate.Created):
        owner_id: str

    class Added(Aggregate.Event):
        event_ids: list[str]

    class Closed(Aggregate.Event):
        pass

    @staticmethod
    def create_id(owner_id: str) -> UUID:
        return ownership_id(owner_id)

    @event(Opened)
    def __init__(self, owner_id: str) -> None:
        self.owner_id = owner_id
        self.closed = False

    def __deepcopy__(self, memo: dict[int, Any]) -> Ownership:
        """Every read of an aggregate is a deep copy (the aggregate cache's, a group
        commit's batch), and every creation reads its owner's Ownership: copy.deepcopy
        walked its id, times and facts at about 100 µs a read. All of them are immutable, so
        the copy shares them and has only a list of pending facts of its own."""
        copied = copy.copy(self)
        copied.__dict__["_pending_events"] = list(self.pending_events)
        return copied

    def add(self, event_ids: list[UUID]) -> None:
        self.check_open()
        self._record_added([str(event_id) for event_id in event_ids])

    def check_open(self) -> None:
        """Refused once the owner's account is deleted (the deletion won the race), before
        anything else is said of the request, as for a request from an erased account."""
        if self.closed:
            raise AccountClosedError("this account no longer exists")

    def close(self) -> None:
        if not self.closed:
            self._record_closing()

    @event(Added)
    def _record_added(self, event_ids: list[str]) -> None:
        """The ids stay in the facts, not in the state: every read of an aggregate is a deep
        copy (the aggregate cache's, a group commit's batch), and an owner's thousands of ids
        copied on each creation cost more than the rest of it. Only a deletion needs them,
        and reads them from the facts (EventsApplication.owned_event_ids)."""

    @event(Closed)
    def _record_closing(self) -> None:
        self.closed = True


def ownership_id(owner_id: str) -> UUID:
    return uuid5(NAMESPACE, owner_id)
