"""How events, users and facts look to a client: ids mapped back to names, invitees' addresses
shown to the owner only, times as UTC instants."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from consumers.calendar import people_lines
from domain.application import EventsApplication
from domain.events import Event, fact_by, fact_changes, fact_people, instance_of
from domain.presentation import (
    calendar_fields,
    changes_json,
    event_json,
    fields_of,
    instance_id,
    occurrence_fields,
    occurrence_json,
    people_of,
    utc,
)
from domain.recurrence import Occurrence
from domain.writing import Written
from projections.database import Row
from projections.people import Account, PeopleReader


def fields_of_row(row: Row) -> dict[str, Any]:
    """A view row's fields as an aggregate's: times parsed back (for iCalendar)."""
    fields = dict(row)
    for name in ("starting_time", "end_time", "created_at", "updated_at"):
        fields[name] = datetime.fromisoformat(fields[name])
    for name in ("participants", "responses", "recurrence"):
        fields[name] = json.loads(fields[name])
    return fields


def calendar_events(app: EventsApplication, rows: Iterable[Row]) -> list[dict[str, Any]]:
    """View rows as a calendar file holds them (the feed's and the list export's one way): a
    single event as its row; a series as the store holds it at its row's version
    (calendar_fields: its RRULE, its cancelled occurrences as EXDATE, each changed or
    separately answered occurrence as a VEVENT with RECURRENCE-ID), since its row holds only
    the series' own fields, so a calendar app expands it as the API does. Reads the store:
    call it off the event loop."""
    events: list[dict[str, Any]] = []
    for row in rows:
        fields = fields_of_row(row)
        events += (calendar_fields(app.get_event(UUID(fields["id"]), fields["version"]))
                   if fields["recurrence"] else [fields])
    return events


async def with_people(events: Sequence[dict[str, Any]], people: PeopleReader, viewer_id: str,
                      names_count: int | None = None) -> list[dict[str, Any]]:
    """Calendar fields for an export to one viewer: each with its ORGANIZER and ATTENDEE
    lines, answers as PARTSTAT (consumers.calendar.people_lines)."""
    names = await people.names(people_of(events), names_count)
    return [{**event, **people_lines(event, names, viewer_id)} for event in events]


async def rows_json(rows: Sequence[Row], people: PeopleReader, viewer_id: str,
                    names_count: int | None = None) -> list[dict[str, Any]]:
    """View rows as a client sees them. The rows are shown as read (times in the view's
    instant form, which utc() converts as text), each one's participants and responses decoded
    once.
    `names_count`, where the caller has read it, saves people.names() reading it again."""
    ids = [json.loads(row["participants"]) for row in rows]
    names = await people.names({row["owner_id"] for row in rows}.union(*ids), names_count)
    return [{**event_json(row, names, viewer_id, shown, json.loads(row["responses"])),
             **occurrence_of(row)} for row, shown in zip(rows, ids, strict=True)]


def occurrence_of(row: Row) -> dict[str, Any]:
    """What a page's occurrence shows beside an event's fields (projections.single_events
    rows): its series and original start; nothing for any other row."""
    if isinstance(row, dict) and row.get("recurring_event_id") is not None:
        return {"recurring_event_id": row["recurring_event_id"],
                "original_start": utc(row["original_start"])}
    return {}


async def aggregates_json(events: list[Event], people: PeopleReader, viewer_id: str,
                          names_count: int | None = None) -> list[dict[str, Any]]:
    fields = [fields_of(event) for event in events]
    names = await people.names(people_of(fields), names_count)
    return [event_json(one, names, viewer_id) for one in fields]


async def aggregate_json(event: Event, people: PeopleReader, viewer_id: str,
                         names_count: int | None = None) -> dict[str, Any]:
    return (await aggregates_json([event], people, viewer_id, names_count))[0]


async def occurrences_json(event: Event, found: Sequence[Occurrence], people: PeopleReader,
                           viewer_id: str, names_count: int | None = None
                           ) -> list[dict[str, Any]]:
    fields = [occurrence_fields(event, one) for one in found]
    names = await people.names(people_of(fields) | {event.owner_id}, names_count)
    return [occurrence_json(one, names, viewer_id) for one in fields]


async def history_json(
    facts: list[Any], people: PeopleReader, viewer_id: str, owner_id: str,
    names_count: int | None = None,
) -> list[dict[str, Any]]:
    ids = {owner_id}
    for fact in facts:
        ids.update(fact_people(fact))
        ids.add(fact_by(fact) or owner_id)
    names = await people.names(ids, names_count)
    entries = []
    for fact in facts:
        changes = changes_json(fact_changes(fact), names, viewer_id == owner_id)
        entry = {
            "version": fact.originator_version,
            "type": type(fact).__name__,
            "at": utc(fact.timestamp),
            "by": fact_by(fact),
            "changes": changes,
        }
        if (key := instance_of(fact)) is not None:
            entry["instance_id"] = instance_id(fact.originator_id, key)
        entries.append(entry)
    return entries


def user_json(account: Account, viewer_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = {"id": account.id, "username": account.username}
    if viewer_id == account.id:
        shown["email"] = account.email
    shown.update(created_at=account.created_at, updated_at=account.updated_at)
    return shown


def position_header(written: Written) -> dict[str, str]:
    """Absent when the write recorded nothing (there is no new position to wait for)."""
    return {"X-Position": str(written.position)} if written.position is not None else {}
