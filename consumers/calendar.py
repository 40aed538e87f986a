"""iCalendar (RFC 5545) export of events, through the icalendar library."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from icalendar import Calendar
from icalendar import Event as VEvent

PRODID = "-//Alphabet Events//alphabet-events//EN"


def calendar(events: Iterable[Mapping[str, Any]], method: str | None = None) -> bytes:
    """`events` are shown-field mappings (present.fields_of / fields_of_row). UID is the event
    id and SEQUENCE its version, so calendar apps replace an older copy with a newer one."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    if method:
        cal.add("method", method)
    for event in events:
        item = VEvent()
        item.add("uid", event["id"])
        item.add("sequence", event["version"])
        item.add("dtstamp", event["updated_at"])
        item.add("created", event["created_at"])
        item.add("last-modified", event["updated_at"])
        item.add("dtstart", event["starting_time"])
        item.add("dtend", event["end_time"])
        item.add("summary", event["name"])
        item.add("location", event["location"])
        if method == "CANCEL":
            item.add("status", "CANCELLED")
        cal.add_component(item)
    return bytes(cal.to_ical())
