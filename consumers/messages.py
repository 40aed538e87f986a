"""Facts, in log order, turned into the WebSocket messages of SPEC §4: the event's state after
the fact, what changed, and the reference implementation's `message` text."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from domain.events import Event, fact_changes, fact_people
from domain.presentation import (
    Names,
    changes_json,
    event_json,
    fields_of,
    instance_id,
    occurrence_fields,
    occurrence_json,
    people_of,
    utc,
)
from domain.recurrence import key, occurrence
from domain.reminders import Reminder
from domain.users import User

KINDS: dict[type[Any], str] = {
    Event.Created: "event.created",
    Event.Updated: "event.updated",
    Event.Deleted: "event.deleted",
    Event.Responded: "event.response",
    Reminder.Due: "event.reminder",
    # one occurrence of a series: the message names it (instance_id)
    Event.OccurrenceChanged: "event.updated",
    Event.OccurrenceCancelled: "event.deleted",
}

TEXTS = {
    "event.created": 'Event "{name}" has been created.',
    "event.updated": 'Event "{name}" has been updated.',
    "event.deleted": 'Event "{name}" has been deleted.',
    # `changes` says who answered what: {"attendee": <as in participants>, "response": ...}
    "event.response": 'Event "{name}" has a new response.',
    "event.reminder": 'Event "{name}" starts at {start}.',
}

# A message is for every subscriber alike, so invitees' addresses are never in it.
NOBODY = ""

# (event id, version or None for the latest) → the event then, or None if unknown
LoadEvent = Callable[[UUID, int | None], Event | None]
LookUpNames = Callable[[Iterable[str]], Names]


def account_notice(position: int, fact: Any) -> dict[str, Any] | None:
    """For a fact that ends an account's sessions, a notice for the hubs (consumers.hub), so
    every worker closes that account's sockets at once; None for any other fact."""
    kind = {User.Deleted: "account.deleted",
            User.PasswordChanged: "account.password_changed"}.get(type(fact))
    if kind is None:
        return None
    return {"type": kind, "user_id": str(fact.originator_id), "position": position}


def event_id_of(fact: Any) -> str | None:
    """The event a fact is about, or None for facts that concern no event (users)."""
    if isinstance(fact, Reminder.Due):
        return str(fact.event_id)
    if type(fact) in KINDS:
        return str(fact.originator_id)
    return None


class MessageMaker:
    """Keeps the latest state of recently changed events, so that following the log costs no
    store read per fact: each fact is applied to the state the previous one left."""

    def __init__(self, load: LoadEvent, names: LookUpNames, keep: int = 10_000) -> None:
        self.load = load
        self.names = names
        self.keep = keep
        self.events: OrderedDict[str, Event] = OrderedDict()

    def make(self, position: int, fact: Any, viewer: str = NOBODY) -> dict[str, Any] | None:
        """The message about `fact`, or None for a fact about no event. The event and its
        changes are shown as `viewer` may see them (the owner sees invitees' addresses): a
        socket's messages are for everyone (NOBODY); a sync page is one user's."""
        kind = KINDS.get(type(fact))
        if kind is None:
            return None
        event = self._event_after(fact)
        if event is None:
            return None
        changes = fact_changes(fact) if kind != "event.reminder" else {
            "starting_time": fact.starting_time}
        start = getattr(fact, "original_start", None)
        fields = fields_of(event) if start is None else occurrence_fields(
            event, occurrence(event.series(), start))  # a cancelled one as it was
        names = self.names(people_of([fields]) | fact_people(fact))
        owner_view = viewer == fields["owner_id"]
        message = {
            "type": kind,
            "event_id": str(event.id),
            "version": event.version,
            "position": position,
            "message": TEXTS[kind].format(name=fields["name"], start=utc(fields["starting_time"])),
            "event": event_json(fields, names, viewer) if start is None
            else occurrence_json(fields, names, viewer),
            "changes": changes_json(changes, names, owner_view=owner_view),
        }
        if start is not None:
            message["instance_id"] = instance_id(event.id, key(start))
        return message

    def forget(self) -> None:
        """Drop what is kept: facts were passed over without being made into messages."""
        self.events.clear()

    def _event_after(self, fact: Any) -> Event | None:
        if isinstance(fact, Reminder.Due):
            key = str(fact.event_id)
            return self.events.get(key) or self._remember(key, self.load(UUID(key), None))
        key = str(fact.originator_id)
        known = self.events.get(key)
        if isinstance(fact, Event.Created):
            known = fact.mutate(None)
        elif known is not None and known.version == fact.originator_version - 1:
            known = fact.mutate(known)
        else:
            known = self.load(fact.originator_id, fact.originator_version)
        return self._remember(key, known)

    def _remember(self, key: str, event: Event | None) -> Event | None:
        if event is not None:
            self.events[key] = event
            self.events.move_to_end(key)
            while len(self.events) > self.keep:
                self.events.popitem(last=False)
        return event
