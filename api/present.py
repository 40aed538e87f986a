"""How events, users and facts look to a client: ids mapped back to names, invitees' addresses
shown to the owner only, times as UTC instants."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from domain.events import Event, fact_by, fact_changes
from projections.people import Account, People

Names = Mapping[str, tuple[str, str]]


def utc(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def people_of(events: Iterable[Event]) -> set[str]:
    ids: set[str] = set()
    for event in events:
        ids.add(event.owner_id)
        ids.update(event.participants)
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


def event_json(event: Event, names: Names, viewer_id: str) -> dict[str, Any]:
    owner = names.get(event.owner_id)
    return {
        "id": str(event.id),
        "name": event.name,
        "starting_time": utc(event.starting_time),
        "end_time": utc(event.end_time),
        "location": event.location,
        "participants": participants(event.participants, names, viewer_id == event.owner_id),
        "owner": event.owner_id,
        "owner_username": owner[1] if owner else None,
        "version": event.version,
        "created_at": utc(event.created_on),
        "updated_at": utc(event.modified_on),
    }


def events_json(events: list[Event], people: People, viewer_id: str) -> list[dict[str, Any]]:
    names = people.names(people_of(events))
    return [event_json(event, names, viewer_id) for event in events]


def history_json(facts: list[Any], people: People, viewer_id: str, owner_id: str) -> list[dict[str, Any]]:
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
