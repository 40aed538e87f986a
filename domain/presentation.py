"""How events look to a client, as pure functions of the domain's objects: ids mapped to
names (given), invitees' addresses shown to the owner only, times as UTC instants (and in the
event's own zone beside them). Shared by
the HTTP answers and the WebSocket messages."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from domain.events import Event, attendee_responses
from domain.recurrence import Occurrence, occurrence
from domain.zones import local

# person id → ("user", username) or ("invitee", address)
Names = Mapping[str, tuple[str, str]]


def instant(value: datetime) -> str:
    """A fixed-width UTC text form, so text order is time order in indexes and cursors."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").removesuffix("+00:00") + "Z"


def utc(value: datetime | str) -> str:
    """The client's form of an instant: RFC 3339 in UTC, fractions only when there are some.
    A view row's `instant` text converts without parsing (lists show a hundred rows at once)."""
    if isinstance(value, str):
        return value.removesuffix(".000000Z") + "Z" if value.endswith(".000000Z") else value
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def in_zone(value: datetime | str, zone: str) -> str:
    """An instant (a datetime, or a view row's `instant` text) as RFC 3339 with the offset
    its zone has then: `2027-03-29T09:00:00+02:00`."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return local(moment, zone).isoformat()


def fields_of(event: Event) -> dict[str, Any]:
    """An aggregate's shown fields, in the same form as a view row's."""
    return {
        "id": str(event.id), "name": event.name, "starting_time": event.starting_time,
        "end_time": event.end_time, "location": event.location,
        "participants": event.participants, "responses": event.responses,
        "time_zone": event.time_zone,
        "owner_id": event.owner_id,
        "version": event.version, "created_at": event.created_on, "updated_at": event.modified_on,
        "sequence": event.sequence, "stamp": event.stamp, "recurrence": event.recurrence,
    }


def calendar_fields(event: Event) -> list[dict[str, Any]]:
    """An event as a calendar file holds it (RFC 5545): the series, with its cancelled
    occurrences (`cancelled`, for EXDATE), then each changed occurrence with its original
    start (`recurrence_id`, for RECURRENCE-ID), so a calendar app expands it as we do; an
    occurrence whose participants answered for it alone is one too (its own PARTSTATs)."""
    shown = fields_of(event)
    changed = [{**shown, **event.occurrence_state(occurrence(event.series(), start)),
                "responses": event.occurrence_responses(start),
                "recurrence": [], "recurrence_id": start}
               for start in sorted({*event.overrides, *event.occurrence_answers})]
    return [{**shown, "cancelled": sorted(event.cancelled)}, *changed]


def instance_id(event_id: object, key: str) -> str:
    """An occurrence's id: `<event id>_<original start in UTC, YYYYMMDDTHHMMSSZ>`."""
    return f"{event_id}_{key}"


def occurrence_fields(event: Event, found: Occurrence) -> dict[str, Any]:
    """One occurrence's shown fields: the series', with the occurrence's own changes applied,
    its own id, and the series and original start it belongs to; its answers where given,
    the series' elsewhere."""
    return {**fields_of(event), **event.occurrence_state(found), "recurrence": [],
            "responses": event.occurrence_responses(found.original_start),
            "id": instance_id(event.id, found.key), "recurring_event_id": str(event.id),
            "original_start": found.original_start}


def people_of(events: Iterable[Mapping[str, Any]]) -> set[str]:
    ids: set[str] = set()
    for event in events:
        ids.add(event["owner_id"])
        ids.update(event["participants"])
    return ids


def participants(ids: Iterable[str], names: Names, owner_view: bool) -> list[str]:
    """Erased people simply disappear; invitees are addresses to the owner, "invitee" to others."""
    shown = []
    for person in ids:
        if person not in names:
            continue
        kind, label = names[person]
        shown.append(label if kind == "user" or owner_view else "invitee")
    return shown


def attendees(ids: list[str], responses: Mapping[str, str], names: Names,
              owner_view: bool) -> list[dict[str, str]]:
    """Each participant with their response, in the order and with the labels of
    `participants` (the erased left out alike)."""
    answers = attendee_responses(ids, dict(responses))
    return [{"participant": label, "response": answer}
            for person, answer in zip(ids, answers, strict=True)
            for label in participants([person], names, owner_view)]


class Fields(Protocol):
    """An event's shown fields read by name: fields_of(aggregate), or a view row as the
    driver returns it (whose participants and responses are still JSON text: pass them
    decoded)."""

    def __getitem__(self, key: str, /) -> Any: ...


def event_json(event: Fields, names: Names, viewer_id: str,
               participant_ids: list[str] | None = None,
               responses: Mapping[str, str] | None = None) -> dict[str, Any]:
    owner = names.get(event["owner_id"])
    ids = event["participants"] if participant_ids is None else participant_ids
    owner_view = viewer_id == event["owner_id"]
    return {
        "id": event["id"],
        "name": event["name"],
        "starting_time": utc(event["starting_time"]),
        "end_time": utc(event["end_time"]),
        "time_zone": event["time_zone"],
        "local_start": in_zone(event["starting_time"], event["time_zone"]),
        "local_end": in_zone(event["end_time"], event["time_zone"]),
        "location": event["location"],
        "participants": participants(ids, names, owner_view),
        "attendees": attendees(ids, event["responses"] if responses is None else responses,
                               names, owner_view),
        "owner": event["owner_id"],
        "owner_username": owner[1] if owner else None,
        "version": event["version"],
        "created_at": utc(event["created_at"]),
        "updated_at": utc(event["updated_at"]),
        **recurring(event["recurrence"]),
    }


def recurring(lines: Iterable[str] | str) -> dict[str, Any]:
    """A series' `recurrence` (a view row holds it as JSON text); nothing for an event that
    does not recur (as Google Calendar's API leaves it out)."""
    found = json.loads(lines) if isinstance(lines, str) else list(lines)
    return {"recurrence": found} if found else {}


def occurrence_json(fields: Mapping[str, Any], names: Names, viewer_id: str) -> dict[str, Any]:
    """An occurrence (occurrence_fields) as a client sees it: an event with its series' id
    and its original start."""
    return {**event_json(fields, names, viewer_id),
            "recurring_event_id": fields["recurring_event_id"],
            "original_start": utc(fields["original_start"])}


def changes_json(changes: Mapping[str, Any], names: Names, owner_view: bool) -> dict[str, Any]:
    """A fact's changed fields as a client sees them."""
    return {
        name: participants(value, names, owner_view) if name == "participants"
        else next(iter(participants([value], names, owner_view)), None) if name == "attendee"
        else utc(value) if isinstance(value, datetime) else value
        for name, value in changes.items()
    }
