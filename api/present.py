"""How events, users and facts look to a client: ids mapped back to names, invitees' addresses
shown to the owner only, times as UTC instants."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from domain.events import Event, fact_by, fact_changes
from projections.people import Account, People

Names = Mapping[str, tuple[str, str]]


def utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def fields_of(event: Event) -> dict[str, Any]:
    """An aggregate's shown fields, in the same form as a view row's."""
    return {
        "id": str(event.id), "name": event.name, "starting_time": event.starting_time,
        "end_time": event.end_time, "location": event.location,
        "participants": event.participants, "owner_id": event.owner_id,
        "version": event.version, "created_at": event.created_on, "updated_at": event.modified_on,
    }


def fields_of_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A view row's shown fields: times parsed back, participant ids decoded."""
    fields = dict(row)
    for name in ("starting_time", "end_time", "created_at", "updated_at"):
        fields[name] = datetime.fromisoformat(fields[name])
    fields["participants"] = json.loads(fields["participants"])
    return fields


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


def event_json(event: Mapping[str, Any], names: Names, viewer_id: str) -> dict[str, Any]:
    """`event` is fields_of(aggregate) or fields_of_row(row)."""
    owner = names.get(event["owner_id"])
    return {
        "id": event["id"],
        "name": event["name"],
        "starting_time": utc(event["starting_time"]),
        "end_time": utc(event["end_time"]),
        "location": event["location"],
        "participants": participants(event["participants"], names,
                                     viewer_id == event["owner_id"]),
        "owner": event["owner_id"],
        "owner_username": owner[1] if owner else None,
        "version": event["version"],
        "created_at": utc(event["created_at"]),
        "updated_at": utc(event["updated_at"]),
    }


def aggregates_json(events: list[Event], people: People, viewer_id: str) -> list[dict[str, Any]]:
    fields = [fields_of(event) for event in events]
    names = people.names(people_of(fields))
    return [event_json(one, names, viewer_id) for one in fields]


def aggregate_json(event: Event, people: People, viewer_id: str) -> dict[str, Any]:
    return aggregates_json([event], people, viewer_id)[0]


def history_json(
    facts: list[Any], people: People, viewer_id: str, owner_id: str
) -> list[dict[str, Any]]:
    ids = {owner_id}
    for fact in facts:
        ids.update(fact_changes(fact).get("participants", []))
        ids.add(fact_by(fact) or owner_id)
    names = people.names(ids)
    entries = []
    for fact in facts:
        changes = {
            name: participants(value, names, viewer_id == owner_id) if name == "participants"
            else utc(value) if isinstance(value, datetime) else value
            for name, value in fact_changes(fact).items()
        }
        entries.append({
            "version": fact.originator_version,
            "type": type(fact).__name__,
            "at": utc(fact.timestamp),
            "by": fact_by(fact),
            "changes": changes,
        })
    return entries


def user_json(account: Account, viewer_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = {"id": account.id, "username": account.username}
    if viewer_id == account.id:
        shown["email"] = account.email
    shown.update(created_at=account.created_at, updated_at=account.updated_at)
    return shown
