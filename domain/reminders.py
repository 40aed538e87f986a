"""A reminder that fell due: a fact of its own, so it is audited and has a log position like
any other change, without bumping the event's version (which clients pin with If-Match)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

NAMESPACE = UUID("5d7c1f0e-8a43-4a8e-9a55-1f3c2b7e4d10")


class Reminder(Aggregate):
    """One per (event, start time): the id is derived from both, so the store itself refuses a
    second reminder for the same start, whichever process tries."""

    class Due(Aggregate.Created):
        event_id: str
        starting_time: datetime
        # a series' occurrence: its original start (its key); None for a single event
        original_start: datetime | None = None

    @staticmethod
    def create_id(event_id: str, starting_time: datetime,
                  original_start: datetime | None = None) -> UUID:
        """One per occurrence of a series too: its original start is in the key."""
        of = event_id if original_start is None else f"{event_id}_{original_start.isoformat()}"
        return uuid5(NAMESPACE, f"{of}@{starting_time.isoformat()}")

    @event(Due)
    def __init__(self, *, event_id: str, starting_time: datetime,
                 original_start: datetime | None = None) -> None:
        self.event_id = event_id
        self.starting_time = starting_time
        self.original_start = original_start
