"""Emails read as their recipients' programs read them, by parsers none of us wrote: Python's
email package and mail-parser for the MIME structure and the headers, vobject and Mozilla's
ical.js (run by node from tests/js) for the calendar. A test states what each of them must
find; nothing here decides what is right."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import mailparser
import pytest
import vobject

JS = Path(__file__).resolve().parent / "js"


@dataclass(frozen=True)
class Address:
    """A calendar user address (ORGANIZER or ATTENDEE) and the parameters a test looks at."""

    value: str
    cn: str | None = None
    partstat: str | None = None
    rsvp: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class CalendarEvent:
    """One VEVENT as a parser understood it, with its calendar's METHOD."""

    method: str | None
    uid: str
    sequence: int
    status: str | None
    start: datetime
    end: datetime
    dtstamp: datetime
    summary: str
    location: str | None
    organizer: Address | None
    attendees: tuple[Address, ...]
    # ical.js only (so left out of comparisons with vobject's reading): DTSTART's TZID, and
    # the wall-clock times it read in that zone
    tzid: str | None = field(default=None, compare=False)
    local_start: str | None = field(default=None, compare=False)
    local_end: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Email:
    """One email as the parsers read it."""

    raw: bytes
    message: EmailMessage  # Python's email package, policy.default
    parsed: Any  # mailparser.MailParser

    @property
    def structure(self) -> list[str]:
        return [part.get_content_type() for part in self.message.walk()]

    def part(self, content_type: str) -> EmailMessage:
        (found,) = [p for p in self.message.walk() if p.get_content_type() == content_type]
        assert isinstance(found, EmailMessage)
        return found

    def text(self, content_type: str) -> str:
        content = self.part(content_type).get_content()
        return content.decode() if isinstance(content, bytes) else str(content)

    @property
    def inline_calendar(self) -> str:
        """The text/calendar part of the multipart/alternative body (the invitation card)."""
        return self.text("text/calendar")

    @property
    def attached_calendar(self) -> str:
        return self.text("application/ics")


def read_email(raw: bytes) -> Email:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return Email(raw, message, mailparser.parse_from_bytes(raw))


def _address(prop: Any) -> Address:
    def param(name: str) -> str | None:
        values = prop.params.get(name)
        return str(values[0]) if values else None

    return Address(str(prop.value), param("CN"), param("PARTSTAT"), param("RSVP"), param("ROLE"))


def by_vobject(text: str) -> list[CalendarEvent]:
    calendar = vobject.readOne(text)
    method = calendar.method.value if hasattr(calendar, "method") else None
    events = []
    for vevent in calendar.contents.get("vevent", []):
        def value(name: str, vevent: Any = vevent) -> Any:
            found = vevent.contents.get(name)
            return found[0].value if found else None

        events.append(CalendarEvent(
            method=method,
            uid=str(value("uid")),
            sequence=int(value("sequence") or 0),
            status=value("status"),
            start=value("dtstart"),
            end=value("dtend"),
            dtstamp=value("dtstamp"),
            summary=str(value("summary")),
            location=value("location"),
            organizer=_address(vevent.organizer) if "organizer" in vevent.contents else None,
            attendees=tuple(_address(a) for a in vevent.contents.get("attendee", [])),
        ))
    return events


@functools.cache
def _icaljs_ready() -> str | None:
    """Why ical.js cannot run here, or None once tests/js has it installed (`npm ci`, as CI
    does beforehand). Missing only where node and npm are: CI fails rather than skips."""
    if not (shutil.which("node") and shutil.which("npm")):
        return "node and npm are needed to run ical.js (apt-get install nodejs npm)"
    if not (JS / "node_modules" / "ical.js").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True,
                       capture_output=True, timeout=600)
    return None


def by_icaljs(texts: Sequence[str]) -> list[list[CalendarEvent]]:
    """Every text through one run of tests/js/read-calendar.mjs."""
    missing = _icaljs_ready()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    done = subprocess.run(["node", str(JS / "read-calendar.mjs")], input=json.dumps(texts),
                          capture_output=True, text=True, check=True, timeout=300)

    def when(text: str) -> datetime:
        return datetime.fromisoformat(text).astimezone(UTC)

    def address(found: dict[str, str] | None) -> Address | None:
        return Address(**{k: str(v) for k, v in found.items()}) if found else None

    return [[CalendarEvent(
        method=calendar["method"], uid=event["uid"], sequence=event["sequence"],
        status=event["status"], start=when(event["start"]), end=when(event["end"]),
        dtstamp=when(event["dtstamp"]), summary=event["summary"], location=event["location"],
        organizer=address(event["organizer"]),
        attendees=tuple(a for a in map(address, event["attendees"]) if a is not None),
        tzid=event["tzid"], local_start=event["local_start"], local_end=event["local_end"],
    ) for event in calendar["events"]] for calendar in json.loads(done.stdout)]


def expanded_by_icaljs(text: str, after: datetime, before: datetime,
                       uid: str | None = None) -> list[dict[str, str]]:
    """A recurring event's occurrences with an original start in [after, before), expanded
    from an iCalendar text by tests/js/expand-calendar.mjs (ical.js); `uid` picks the series
    in a file of many events."""
    missing = _icaljs_ready()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    done = subprocess.run(
        ["node", str(JS / "expand-calendar.mjs")], capture_output=True, text=True, check=True,
        timeout=300, input=json.dumps({"text": text, "after": after.isoformat(),
                                       "before": before.isoformat(),
                                       **({"uid": uid} if uid else {})}))
    found: list[dict[str, str]] = json.loads(done.stdout)
    return found
