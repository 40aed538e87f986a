"""The email of one change: subject, plain text, HTML and the iCalendar message (iTIP, RFC
5546) that makes mail clients show an invitation card, rendered once per change and addressed
per recipient."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime
from typing import Any, TypeAlias

from consumers.calendar import Invitation, Person, calendar
from consumers.mail.outbox import Outgoing
from domain.events import NEEDS_ACTION, Event
from domain.presentation import Names, fields_of, instance_id, occurrence_fields, participants
from domain.recurrence import occurrence, parse_key
from domain.zones import DEFAULT_ZONE, local

SUBJECTS = {
    "created": 'Invitation: "{name}" on {start}',
    "updated": 'Updated: "{name}"',
    "removed": 'You are no longer invited to "{name}"',
    "deleted": 'Cancelled: "{name}"',
    "reminder": 'Reminder: "{name}" starts at {start}',
}
LEADS = {
    "created": '{organiser} invited you to "{name}".',
    "updated": '{organiser} changed "{name}".',
    "removed": '{organiser} removed you from "{name}".',
    "deleted": '{organiser} cancelled "{name}".',
    "reminder": '"{name}" starts at {start}.',
}
# What each kind of email asks of a calendar app (RFC 5546). A reminder is no scheduling
# message: it carries the event as a plain file, so no app takes it for a change or asks for
# an answer again.
METHODS = {"created": "REQUEST", "updated": "REQUEST", "removed": "CANCEL", "deleted": "CANCEL"}
# How an invitation's one-click answers read (consumers.rsvp makes their links), in order.
ANSWER_LABELS = {"accepted": "Yes", "tentative": "Maybe", "declined": "No"}
ANSWER_LEAD = "Will you attend? Answer with one click:"
# How the "What changed" lines name each field.
CHANGED = {"name": "name", "starting_time": "starts", "end_time": "ends",
           "location": "location", "participants": "participants", "time_zone": "time zone"}
UNKNOWN_ORGANISER = "The organiser"

# An email as the mailer builds it: compat32 headers, some set as email.header.Header.
Mail: TypeAlias = "Message[str, str | Header]"

# Quoted-printable rather than utf-8's default base64: the dev outbox stays readable, and no line
# (the HTML part is one) grows past what SMTP allows. A Charset of our own: add_charset would
# change it for every user of the email package in the process.
TEXT = Charset("utf-8")
TEXT.body_encoding = QP
# Every part is quoted-printable or base64, where "=_" never occurs, so these can be fixed:
# the generator's own random boundaries cost a regular expression compiled per message to
# check that they do not occur. The calendar slot marks where each recipient's calendar goes.
BOUNDARIES = ("=_alphabet-events.alternative", "=_alphabet-events.mixed")
CALENDAR_SLOT = "=_alphabet-events.calendar"


def kind_for(item: Outgoing, event: Event) -> str:
    """An update is news to its participants and an uninvitation to those it removed."""
    if item.kind == "updated" and item.person_id not in event.participants:
        return "removed"
    return item.kind


def header_message_id(key: str, domain: str) -> str:
    """The Message-ID header for an outbox row: the row's key (ids only) at the configured
    domain. The key keeps the form the first outbox rows were written in, so the delivery
    state recorded against it survives a change of the setting or a replay."""
    return f"<{key.strip('<>').rpartition('@')[0]}@{domain}>"


def moment(value: datetime, zone: str = DEFAULT_ZONE) -> str:
    """`Monday 29 March 2027, 09:00 Europe/Berlin (CEST, UTC+02:00)`: day and time as people
    write them, in the event's zone, named (with its abbreviation and offset then, unless it is
    UTC itself)."""
    shown = local(value, zone)
    return f"{day(shown)}, {shown:%H:%M} {zone_label(shown, zone)}"


def span(start: datetime, end: datetime, zone: str = DEFAULT_ZONE) -> str:
    """`Tuesday 1 December 2026, 18:00–19:00 UTC`, or with both days when it ends on another."""
    first, last = local(start, zone), local(end, zone)
    if first.date() == last.date():
        return f"{day(first)}, {first:%H:%M}–{last:%H:%M} {zone_label(last, zone)}"
    return f"{day(first)}, {first:%H:%M} – {day(last)}, {last:%H:%M} {zone_label(last, zone)}"


def day(shown: datetime) -> str:
    return f"{shown:%A} {shown.day} {shown:%B %Y}"


def zone_label(shown: datetime, zone: str) -> str:
    """The zone's IANA name, then what it is called at that time and its offset from UTC
    (a zone with no abbreviation of its own, such as Asia/Dubai, calls itself `+04`)."""
    if zone == DEFAULT_ZONE:
        return zone
    name, offset = shown.tzname() or "", shown.strftime("%z")
    utc_offset = f"UTC{offset[:3]}:{offset[3:]}"
    parts = [name, utc_offset] if name and not name.startswith(("+", "-")) else [utc_offset]
    return f"{zone} ({', '.join(parts)})"


@dataclass(frozen=True)
class Envelope:
    """Whom one email is for, and whose event it is about: the dev outbox files it under
    both, and must not keep a copy naming an organiser whose data has been erased."""

    recipient: str
    organiser: str
    names_organiser: bool


@dataclass(frozen=True)
class Letter:
    """The email of one change, the same for all its recipients but for the ATTENDEE line of
    its calendar (consumers.calendar.Invitation): participants are counted, not named, so the
    MIME body is rendered once and each recipient's message adds headers and their copy of the
    calendar in its slots. The stdlib's EmailMessage rebuilt and re-folded everything per
    recipient at ~5 ms a message; this is compat32 email.mime, whose generator writes a string
    payload of a multipart message as it stands."""

    subject: str
    content_type: str
    body: str
    invitation: Invitation | None
    organiser: str
    names_organiser: bool

    def to(self, sender: str, recipient: Person, message_id: str,
           response: str = NEEDS_ACTION) -> Mail:
        """`response`: the recipient's own, for their calendar's PARTSTAT."""
        message: Mail = Message()
        message["Subject"] = self.subject
        message["From"] = sender
        # An address or a Message-ID has no place to fold. Given the header's name, compat32
        # moves a long one to a continuation line, and readers keep the leading space; a
        # Header made without the name leaves it on the header's line.
        message["To"] = Header(recipient.address)
        # RFC 5322's numeric zone (+0000): the "GMT" of usegmt is the obsolete form.
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = Header(message_id)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
        message["MIME-Version"] = "1.0"
        message["Content-Type"] = self.content_type
        body = self.body
        if self.invitation is not None:
            copy = self.invitation.to(recipient, response)
            body = body.replace(CALENDAR_SLOT, base64_lines(copy))
        message.set_payload(body)
        return message

    def envelope(self, recipient_id: str) -> Envelope:
        return Envelope(recipient_id, self.organiser, self.names_organiser)


def letter(kind: str, event: Event, names: Names, changed: list[str], service: str,
           answers: Mapping[str, str] | None = None) -> Letter:
    """Plain text, HTML and the iCalendar message of one version and kind of email. `service`
    is the From address: the calendar's ORGANIZER is the owner by name at that address, as the
    owner's own address is never shown to anyone. `answers`: one recipient's one-click links
    by answer (an outside invitee's invitation), which make the letter theirs alone. A kind
    with an occurrence's key (`updated.20270329T070000Z`) is news of that occurrence alone: its
    fields, its id in the text, and its RECURRENCE-ID in the calendar (RFC 5546: one
    instance)."""
    kind, _, key = kind.partition(".")
    start_of = parse_key(key)
    fields = fields_of(event) if start_of is None else {
        **occurrence_fields(event, occurrence(event.series(), start_of)),
        "id": str(event.id), "recurrence_id": start_of}
    organiser = names.get(event.owner_id)
    who = organiser[1] if organiser else UNKNOWN_ORGANISER
    zone = event.time_zone
    start = moment(fields["starting_time"], zone)
    lines = [
        LEADS[kind].format(organiser=who, name=fields["name"], start=start),
        *([f"Only this occurrence: {instance_id(event.id, key)}"] if start_of else []),
        "",
        f"What:  {fields['name']}",
        f"When:  {span(fields['starting_time'], fields['end_time'], zone)}",
        f"Where: {fields['location']}",
        *([f"Organiser: {who}"] if organiser else []),
        # Counted, not named: a copy of an email outlives the erasure of the people it names.
        f"Participants: {len(participants(fields['participants'], names, False))}",
    ]
    if changed and kind in ("updated", "removed"):
        lines += ["", "What changed:"] + [f"  {CHANGED[k]}: {change_text(fields, k, names)}"
                                          for k in changed]
    answer_lines = ["", ANSWER_LEAD, *(f"  {label}: {answers[answer]}"
                                       for answer, label in ANSWER_LABELS.items())
                    ] if answers else []
    method = METHODS.get(kind)
    invitation = (Invitation(fields, method, Person(service, organiser[1] if organiser else None),
                             whole_event_cancelled=kind == "deleted") if method else None)
    alternatives = [
        text_part("plain", "\n".join(lines + answer_lines) + "\n"),
        text_part("html", "<html><body>" + "".join(
            f"<p>{html.escape(line)}</p>" for line in lines if line) + answer_links(answers)
            + "</body></html>"),
    ]
    if method:
        alternatives.append(calendar_part("text", "calendar", CALENDAR_SLOT, method=method))
    filename = "invite.ics" if method else "event.ics"
    attachment = calendar_part(
        "application", "ics",
        CALENDAR_SLOT if method else base64_lines(calendar([fields]).decode()), name=filename)
    attachment.add_header("Content-Disposition", "attachment", filename=filename)
    whole = MIMEMultipart("mixed", boundary=BOUNDARIES[1], _subparts=[
        MIMEMultipart("alternative", boundary=BOUNDARIES[0], _subparts=alternatives),
        attachment,
    ])
    _, _, rendered = whole.as_string().partition("\n\n")  # the body: after the first blank line
    # A header may not hold a line break. Encoded (RFC 2047) and folded here, once: compat32
    # keeps a value's line breaks, so each message only copies it.
    subject = Header(" ".join(SUBJECTS[kind].format(name=fields["name"], start=start).split()),
                     header_name="Subject").encode()
    return Letter(subject, str(whole["Content-Type"]), rendered, invitation, event.owner_id,
                  organiser is not None)


def answer_links(answers: Mapping[str, str] | None) -> str:
    """The HTML paragraph of one-click answers: a link per answer, named by its label."""
    if not answers:
        return ""
    links = " · ".join(f'<a href="{html.escape(answers[answer])}">{label}</a>'
                       for answer, label in ANSWER_LABELS.items())
    return f"<p>{html.escape(ANSWER_LEAD)} {links}</p>"


def change_text(fields: Mapping[str, Any], field: str, names: Names) -> str:
    if field == "participants":
        return f"now {len(participants(fields['participants'], names, False))}"
    if field in ("starting_time", "end_time"):
        return moment(fields[field], fields["time_zone"])
    return str(fields[field])


def text_part(subtype: str, text: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part.set_payload(text, TEXT)
    return part


def calendar_part(maintype: str, subtype: str, encoded: str, **params: str) -> MIMENonMultipart:
    """A part holding iCalendar text already in base64 (or the slot for it): base64 keeps the
    text's CRLF line ends, which quoted-printable would not."""
    part = MIMENonMultipart(maintype, subtype, charset="utf-8")
    for name, value in params.items():
        part.set_param(name, value)
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(encoded)
    return part


def base64_lines(text: str) -> str:
    return base64.encodebytes(text.encode()).decode().rstrip("\n")

