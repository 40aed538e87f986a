"""iCalendar (RFC 5545) through the icalendar library: exports of events, and the scheduling
messages (iTIP, RFC 5546) that invitation emails carry."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from icalendar import Calendar, TimezoneDaylight, TimezoneStandard, vCalAddress, vRecur
from icalendar import Event as VEvent
from icalendar.parser import Contentline

from domain.events import NEEDS_ACTION, attendee_responses
from domain.presentation import Names
from domain.recurrence import Series, parsed, starts
from domain.zones import DEFAULT_ZONE, local

PRODID = "-//Alphabet Events//alphabet-events//EN"
# How far a series' VTIMEZONE reaches past its first start (occurrences later than that are
# shown with the zone's last offset by apps that read the VTIMEZONE rather than their own
# zone database).
ZONE_YEARS = timedelta(days=366 * 10)
END = "END:VEVENT\r\n"


def vevent(event: Mapping[str, Any]) -> VEvent:
    """`event` is a shown-field mapping (present.fields_of / fields_of_row). UID is the event
    id, the same in every copy and every email. SEQUENCE counts the changes of time or place
    (Event.sequence, RFC 5546 §2.1.4); a view row does not hold it, so a list export leaves it
    out (0), which never makes a calendar app ignore a later invitation as out of date. DTSTAMP
    is the time of the fact shown (Event.stamp where known), so copies of one change are
    identical, and of two changes with one SEQUENCE the later is the newer. A `status` given
    (CANCELLED: a feed's recently deleted event) is the VEVENT's STATUS; `organizer` and
    `attendee`, where given (an export for one viewer: api.present.with_attendees), its
    ORGANIZER and ATTENDEE lines."""
    item = VEvent()
    item.add("uid", event["id"])
    if "sequence" in event:
        item.add("sequence", event["sequence"])
    item.add("dtstamp", event.get("stamp", event["updated_at"]))
    item.add("created", event["created_at"])
    item.add("last-modified", event["updated_at"])
    item.add("dtstart", zoned(event["starting_time"], event))
    item.add("dtend", zoned(event["end_time"], event))
    item.add("summary", event["name"])
    item.add("location", event["location"])
    recurring(item, event)
    if "status" in event:
        item.add("status", event["status"])
    for name in ("organizer", "attendee"):
        for address in event.get(name, []):
            item.add(name, address)
    return item


def recurring(item: VEvent, event: Mapping[str, Any]) -> None:
    """A series' RRULE, its EXDATE and RDATE lines and cancelled occurrences (one date a line:
    ical.js, Thunderbird's parser, reads only the first of a list); a changed occurrence's
    RECURRENCE-ID. Each in DTSTART's form (TZID or UTC), which ical.js needs to match an
    exception to its occurrence."""
    lines = event.get("recurrence") or []
    if lines:
        dates = parsed(lines, event["starting_time"], event.get("time_zone", DEFAULT_ZONE))
        for line in lines:
            name, _, value = line.partition(":")
            if name.strip().upper() == "RRULE":
                item.add("rrule", vRecur.from_ical(value))
        for moment in [*dates.exdates, *event.get("cancelled", [])]:
            item.add("exdate", zoned(moment, event))
        for moment in dates.rdates:
            item.add("rdate", zoned(moment, event))
    if "recurrence_id" in event:
        item.add("recurrence-id", zoned(event["recurrence_id"], event))


def last_start(event: Mapping[str, Any]) -> list[datetime]:
    """A series' last start within ZONE_YEARS (none for a single event), for its VTIMEZONE to
    reach: ical.js takes the offsets a VTIMEZONE lists, and past its last onset it kept one
    offset for every later occurrence."""
    lines = event.get("recurrence") or []
    if not lines:
        return []
    series = Series(event["starting_time"], event["end_time"],
                    event.get("time_zone", DEFAULT_ZONE), lines)
    return list(deque(starts(series, before=event["starting_time"] + ZONE_YEARS), maxlen=1))


def zoned(moment: datetime, event: Mapping[str, Any]) -> datetime:
    """A time as DTSTART/DTEND write it: in the event's named zone (TZID, with a VTIMEZONE that
    `calendar` adds), or in UTC (Z) for a UTC event."""
    zone = event.get("time_zone", DEFAULT_ZONE)
    return moment if zone == DEFAULT_ZONE else local(moment, zone)


def calendar(events: Iterable[Mapping[str, Any]], method: str | None = None,
             *, organiser: vCalAddress | None = None, cancelled: bool = False) -> bytes:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    if method:
        cal.add("method", method)
    zoned_times: list[datetime] = []
    for event in events:
        item = vevent(event)
        if organiser is not None:
            item.add("organizer", organiser)
        if cancelled:
            item.add("status", "CANCELLED")
        cal.add_component(item)
        if event.get("time_zone", DEFAULT_ZONE) != DEFAULT_ZONE:
            zoned_times += (event["starting_time"], event["end_time"], *last_start(event))
    if zoned_times:
        # Each TZID's VTIMEZONE, built by the library from the zone database, from the year
        # before the first event to the year after the last: every onset around them.
        cal.add_missing_timezones(first_date=date(min(zoned_times).year - 1, 1, 1),
                                  last_date=date(max(zoned_times).year + 2, 1, 1))
        one_onset_per_line(cal)
    return bytes(cal.to_ical())


def one_onset_per_line(cal: Calendar) -> None:
    """Each VTIMEZONE observance's onsets as one RDATE line each, its DTSTART among them.
    RFC 5545 allows a list on one line, as the library writes it, but ical.js (the parser of
    Thunderbird and of web calendars) reads only the first date of an RDATE line, and skips
    DTSTART when there is an RDATE: it put summer in winter (tests/e2e/test_time_zones.py)."""
    for zone in cal.timezones:
        observances: list[TimezoneStandard | TimezoneDaylight] = [*zone.standard, *zone.daylight]
        for observance in observances:
            if "RDATE" not in observance:
                continue
            onsets = [observance.decoded("DTSTART"), *(start for start, _ in observance.rdates)]
            del observance["RDATE"]
            for onset in onsets:
                observance.add("rdate", onset)


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


def people_lines(event: Mapping[str, Any], names: Names, viewer_id: str) -> dict[str, Any]:
    """The ORGANIZER and each ATTENDEE with its PARTSTAT (RFC 5545 §3.8.4.1), as the viewer
    may see them, in the order of `participants` (the erased left out). Registered people are
    `urn:uuid:` their user id (ids are public; their addresses are not: SPEC §4) with their
    username as CN. An outside invitee is their address to the owner; to anyone else "invitee",
    at a URN made from the event and invitee ids, so no one can tell that two events invite the
    same person."""
    owner_view = viewer_id == event["owner_id"]
    answers = attendee_responses(event["participants"], dict(event["responses"]))
    attendees = []
    for person, answer in zip(event["participants"], answers, strict=True):
        if person not in names:
            continue
        kind, label = names[person]
        if kind == "user":
            address = vCalAddress(f"urn:uuid:{person}")
            address.params["CN"] = label
        elif owner_view:
            address = vCalAddress(f"mailto:{label}")
        else:
            address = vCalAddress(f"urn:uuid:{uuid5(NAMESPACE_URL, event['id'] + '/' + person)}")
            address.params["CN"] = "invitee"
        address.params.update(ROLE="REQ-PARTICIPANT", PARTSTAT=partstat(answer))
        attendees.append(address)
    organizer = []
    if (owner := names.get(event["owner_id"])) is not None:
        organizer = [vCalAddress(f"urn:uuid:{event['owner_id']}")]
        organizer[0].params["CN"] = owner[1]
    return {"organizer": organizer, "attendee": attendees}


def partstat(response: str) -> str:
    """A response as iCalendar's PARTSTAT: needs_action → NEEDS-ACTION (RFC 5545 §3.2.12)."""
    return response.upper().replace("_", "-")
