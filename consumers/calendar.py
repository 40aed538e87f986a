"""iCalendar (RFC 5545) through the icalendar library: exports of events, and the scheduling
messages (iTIP, RFC 5546) that invitation emails carry."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from icalendar import Calendar, vCalAddress
from icalendar import Event as VEvent
from icalendar.parser import Contentline

from domain.events import NEEDS_ACTION

PRODID = "-//Alphabet Events//alphabet-events//EN"
END = "END:VEVENT\r\n"


def vevent(event: Mapping[str, Any]) -> VEvent:
    """`event` is a shown-field mapping (present.fields_of / fields_of_row). UID is the event
    id, the same in every copy and every email. SEQUENCE counts the changes of time or place
    (Event.sequence, RFC 5546 §2.1.4); a view row does not hold it, so a list export leaves it
    out (0), which never makes a calendar app ignore a later invitation as out of date. DTSTAMP
    is the time of the fact shown (Event.stamp where known), so copies of one change are
    identical, and of two changes with one SEQUENCE the later is the newer. A `status` given
    (CANCELLED: a feed's recently deleted event) is the VEVENT's STATUS."""
    item = VEvent()
    item.add("uid", event["id"])
    if "sequence" in event:
        item.add("sequence", event["sequence"])
    item.add("dtstamp", event.get("stamp", event["updated_at"]))
    item.add("created", event["created_at"])
    item.add("last-modified", event["updated_at"])
    item.add("dtstart", event["starting_time"])
    item.add("dtend", event["end_time"])
    item.add("summary", event["name"])
    item.add("location", event["location"])
    if "status" in event:
        item.add("status", event["status"])
    return item


def calendar(events: Iterable[Mapping[str, Any]], method: str | None = None,
             *, organiser: vCalAddress | None = None, cancelled: bool = False) -> bytes:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    if method:
        cal.add("method", method)
    for event in events:
        item = vevent(event)
        if organiser is not None:
            item.add("organizer", organiser)
        if cancelled:
            item.add("status", "CANCELLED")
        cal.add_component(item)
    return bytes(cal.to_ical())


@dataclass(frozen=True)
class Person:
    """A calendar user address: where to write (mailto:) and the name shown, if any."""

    address: str
    name: str | None = None

    def calendar_address(self, **params: str) -> vCalAddress:
        value = vCalAddress(f"mailto:{self.address}")
        if self.name:
            value.params["CN"] = self.name
        value.params.update(params)
        return value


class Invitation:
    """An iTIP message about one event for one attendee: REQUEST (invited, or the event
    changed) or CANCEL (the event is cancelled, or the attendee was removed from it).

    Each attendee's copy lists that attendee alone (a REQUEST needs at least one ATTENDEE, RFC
    5546 §3.2.2): listing everyone would put every participant's address into every other
    participant's mailbox, beyond the reach of an erasure. So the text is made once per change
    and only the ATTENDEE line differs per recipient."""

    def __init__(self, event: Mapping[str, Any], method: str, organiser: Person,
                 *, whole_event_cancelled: bool = False) -> None:
        self.method = method
        # STATUS:CANCELLED cancels the event for everyone; a CANCEL that only removes
        # attendees must not carry it (RFC 5546 §3.2.5).
        text = calendar([event], method, organiser=organiser.calendar_address(),
                        cancelled=whole_event_cancelled).decode()
        self.head, _, self.tail = text.rpartition(END)

    def to(self, attendee: Person, response: str = NEEDS_ACTION) -> str:
        """`response`: the attendee's own (Event.response_of), as their PARTSTAT."""
        params = ({"ROLE": "REQ-PARTICIPANT", "PARTSTAT": partstat(response), "RSVP": "TRUE"}
                  if self.method == "REQUEST" else {"ROLE": "REQ-PARTICIPANT"})
        value = attendee.calendar_address(**params)
        line = Contentline.from_parts("ATTENDEE", value.params, value).to_ical().decode()
        return f"{self.head}{line}\r\n{END}{self.tail}"


def partstat(response: str) -> str:
    """A response as iCalendar's PARTSTAT: needs_action → NEEDS-ACTION (RFC 5545 §3.2.12)."""
    return response.upper().replace("_", "-")
