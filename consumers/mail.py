"""Email: a tracked follower turns facts into rows of an outbox table (in the same transaction
as its position), and a mailer delivers them — over SMTP, or as .eml files in the dev outbox —
retrying with backoff until each is delivered. Every message has a Message-ID made of ids only,
so a duplicate after a crash is recognisable."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import html
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import IO, Any, Protocol, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

import aiosmtplib

from consumers.calendar import Invitation, Person, calendar
from consumers.messages import LoadEvent, LookUpNames
from domain.events import Event
from domain.presentation import Names, fields_of, participants, people_of
from domain.reminders import Reminder

log = logging.getLogger(__name__)

# The domain of an outbox row's key; each message's Message-ID header is at the configured domain
# instead (header_message_id).
KEY_DOMAIN = "alphabet-events"
RETRY_MAX_SECONDS = 300.0

# Every outbox row up to this log position is settled (sent or dropped); see Mailer.due.
MARK = "mail.settled"
DELIVERY_SCHEMA = """CREATE TABLE IF NOT EXISTS mail_delivery (
    message_id TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL,
    next_attempt DOUBLE PRECISION NOT NULL,
    done_at DOUBLE PRECISION,
    outcome TEXT
)"""


class Rows(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection to the state database (projections.database.Connection): SQL with `?`
    placeholders, rows read by column name, on SQLite and PostgreSQL alike."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Rows: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


class Database(Protocol):
    """The state database (projections.database.StateDatabase), as consumers need it."""

    transient: tuple[type[Exception], ...]

    def connection(self) -> Connection: ...

    def write(self) -> Any: ...


def message_id(event_id: str, version: int, person_id: str, kind: str) -> str:
    return f"<{event_id}.{version}.{person_id}.{kind}@{KEY_DOMAIN}>"


class MailQueue:
    """The mail consumer's bookkeeping: who is in each event (to know whom an update removed)
    and one outbox row per email to send."""

    name = "mail"
    tables: Sequence[str] = ("mail_events", "mail_outbox")

    def schema(self, suffix: str = "") -> list[str]:
        return [
            f"""CREATE TABLE IF NOT EXISTS mail_events{suffix} (
                event_id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                participants TEXT NOT NULL
            )""",
            f"""CREATE TABLE IF NOT EXISTS mail_outbox{suffix} (
                message_id TEXT PRIMARY KEY,
                event_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                person_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                changes TEXT NOT NULL,
                position BIGINT NOT NULL
            )""",
        ]

    def indexes(self, suffix: str = "") -> dict[str, str]:
        return {
            f"mail_outbox{suffix}_position": f"mail_outbox{suffix} (position)",
            f"mail_outbox{suffix}_person": f"mail_outbox{suffix} (person_id)",
        }

    def apply(self, conn: Connection, position: int, fact: Any, suffix: str = "") -> None:
        match fact:
            case Event.Created():
                self._remember(conn, str(fact.originator_id), 1, fact.participants, suffix)
                self._queue(conn, position, fact.originator_id, 1, fact.participants,
                            "created", {}, suffix)
            case Event.Updated():
                event_id = str(fact.originator_id)
                before = self._participants(conn, event_id, suffix)
                after = fact.changes.get("participants", before)
                removed = [p for p in before if p not in after]
                self._remember(conn, event_id, fact.originator_version, after, suffix)
                self._queue(conn, position, event_id, fact.originator_version,
                            [*after, *removed], "updated", fact.changes, suffix)
            case Event.Deleted():
                event_id = str(fact.originator_id)
                self._queue(conn, position, event_id, fact.originator_version,
                            self._participants(conn, event_id, suffix), "deleted", {}, suffix)
                conn.execute(f"DELETE FROM mail_events{suffix} WHERE event_id = ?", (event_id,))
            case Reminder.Due():
                row = conn.execute(
                    f"SELECT version, participants FROM mail_events{suffix} WHERE event_id = ?",
                    (fact.event_id,),
                ).fetchone()
                if row is not None:
                    self._queue(conn, position, fact.event_id, row["version"],
                                json.loads(row["participants"]), "reminder", {}, suffix)
            case _:
                pass

    def _participants(self, conn: Connection, event_id: str, suffix: str) -> list[str]:
        row = conn.execute(
            f"SELECT participants FROM mail_events{suffix} WHERE event_id = ?", (event_id,)
        ).fetchone()
        return list(json.loads(row["participants"])) if row else []

    def _remember(self, conn: Connection, event_id: str, version: int,
                  participants: list[str], suffix: str) -> None:
        conn.execute(
            f"INSERT INTO mail_events{suffix} VALUES (?, ?, ?) ON CONFLICT(event_id) DO UPDATE "
            "SET version = excluded.version, participants = excluded.participants",
            (event_id, version, json.dumps(participants)),
        )

    def _queue(self, conn: Connection, position: int, event_id: Any, version: int,
               people: list[str], kind: str, changes: dict[str, Any], suffix: str) -> None:
        detail = json.dumps(sorted(changes))
        conn.executemany(
            f"INSERT INTO mail_outbox{suffix} (message_id, event_id, version, "
            "person_id, kind, changes, position) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [(message_id(str(event_id), version, person, kind), str(event_id), version, person,
              kind, detail, position) for person in dict.fromkeys(people)],
        )
        if people and not suffix:
            # Through Kafka a fact can be handled after later ones (each partition goes at its
            # own pace), queuing rows behind the mailer's settled mark: pull the mark back so
            # they are seen. The update always matches the mark's row, so it waits for a
            # mailer moving the mark (Mailer._mark) and then sees where it moved.
            conn.execute("UPDATE tracking SET position = CASE WHEN position >= ? THEN ? "
                         "ELSE position END WHERE view = ?", (position, position - 1, MARK))


# message id, attempts, next attempt, done at, outcome: one row of mail_delivery
Outcome = tuple[str, int, float, float | None, str]


@dataclass(frozen=True)
class Outgoing:
    """One row of the outbox, as the mailer reads it."""

    message_id: str
    event_id: str
    version: int
    person_id: str
    kind: str
    changed: list[str]
    attempts: int


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
# How the "What changed" lines name each field.
CHANGED = {"name": "name", "starting_time": "starts", "end_time": "ends",
           "location": "location", "participants": "participants"}
UNKNOWN_ORGANISER = "The organiser"

# The zone emails show times in. Events carry no zone yet; when they do (SPEC §6.1), it is
# theirs, and every reader of this one zone takes it as an argument already.
ZONE: tzinfo = UTC

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


def moment(value: datetime, zone: tzinfo = ZONE) -> str:
    """`Tuesday 1 December 2026, 18:00 UTC`: day and time as people write them, with the zone
    (and its offset from UTC when it is not UTC itself)."""
    local = value.astimezone(zone)
    return f"{day(local)}, {local:%H:%M} {zone_label(local)}"


def span(start: datetime, end: datetime, zone: tzinfo = ZONE) -> str:
    """`Tuesday 1 December 2026, 18:00–19:00 UTC`, or with both days when it ends on another."""
    first, last = start.astimezone(zone), end.astimezone(zone)
    if first.date() == last.date():
        return f"{day(first)}, {first:%H:%M}–{last:%H:%M} {zone_label(last)}"
    return f"{day(first)}, {first:%H:%M} – {day(last)}, {last:%H:%M} {zone_label(last)}"


def day(local: datetime) -> str:
    return f"{local:%A} {local.day} {local:%B %Y}"


def zone_label(local: datetime) -> str:
    name, offset = local.tzname() or "", local.strftime("%z")
    shown = f"UTC{offset[:3]}:{offset[3:]}"
    return name if name == "UTC" else f"{name} ({shown})" if name else shown


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

    def to(self, sender: str, recipient: Person, message_id: str) -> Mail:
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
            body = body.replace(CALENDAR_SLOT, base64_lines(self.invitation.to(recipient)))
        message.set_payload(body)
        return message

    def envelope(self, recipient_id: str) -> Envelope:
        return Envelope(recipient_id, self.organiser, self.names_organiser)


def letter(kind: str, event: Event, names: Names, changed: list[str], service: str) -> Letter:
    """Plain text, HTML and the iCalendar message of one version and kind of email. `service`
    is the From address: the calendar's ORGANIZER is the owner by name at that address, as the
    owner's own address is never shown to anyone."""
    fields = fields_of(event)
    organiser = names.get(event.owner_id)
    who = organiser[1] if organiser else UNKNOWN_ORGANISER
    start = moment(event.starting_time)
    lines = [
        LEADS[kind].format(organiser=who, name=event.name, start=start),
        "",
        f"What:  {event.name}",
        f"When:  {span(event.starting_time, event.end_time)}",
        f"Where: {event.location}",
        *([f"Organiser: {who}"] if organiser else []),
        # Counted, not named: a copy of an email outlives the erasure of the people it names.
        f"Participants: {len(participants(event.participants, names, False))}",
    ]
    if changed and kind in ("updated", "removed"):
        lines += ["", "What changed:"] + [f"  {CHANGED[k]}: {change_text(event, k, names)}"
                                          for k in changed]
    method = METHODS.get(kind)
    invitation = (Invitation(fields, method, Person(service, organiser[1] if organiser else None),
                             whole_event_cancelled=kind == "deleted") if method else None)
    alternatives = [
        text_part("plain", "\n".join(lines) + "\n"),
        text_part("html", "<html><body>" + "".join(
            f"<p>{html.escape(line)}</p>" for line in lines if line) + "</body></html>"),
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
    subject = Header(" ".join(SUBJECTS[kind].format(name=event.name, start=start).split()),
                     header_name="Subject").encode()
    return Letter(subject, str(whole["Content-Type"]), rendered, invitation, event.owner_id,
                  organiser is not None)


def change_text(event: Event, field: str, names: Names) -> str:
    if field == "participants":
        return f"now {len(participants(event.participants, names, False))}"
    if field in ("starting_time", "end_time"):
        return moment(getattr(event, field))
    return str(getattr(event, field))


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


class Transport(Protocol):
    """Where messages go. A delivery pass ends with end_pass(), so what a pass keeps open (an
    SMTP connection, the outbox lock file) is shared by its messages and never outlives it."""

    async def deliver(self, message: Mail, envelope: Envelope) -> None: ...

    async def end_pass(self) -> None: ...


class SmtpTransport:
    """smtp://user:password@host:port (add ?starttls=true for STARTTLS) or smtps:// (TLS). One
    connection serves a whole delivery pass: a connection, TLS handshake and login per message
    cost more than the message."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"ALPHABET_SMTP_URL must be smtp://host:port or smtps://…, "
                             f"not {url!r}")
        query = parse_qs(parts.query)
        self.options: dict[str, Any] = {
            "hostname": parts.hostname,
            "port": parts.port or (465 if parts.scheme == "smtps" else 25),
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "use_tls": parts.scheme == "smtps",
            "start_tls": query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes"),
            "timeout": 10,
        }
        self.client: aiosmtplib.SMTP | None = None

    async def deliver(self, message: Mail, envelope: Envelope) -> None:
        if self.client is not None:
            try:
                await self.client.send_message(message)
                return
            except ConnectionError:
                # The server hung up on the open connection (servers limit messages or idle
                # time per connection): that says nothing about this message, so try it once
                # more on a new one.
                self._drop()
            except BaseException:
                self._drop()
                raise
        self.client = aiosmtplib.SMTP(**self.options)
        try:
            await self.client.connect()
            await self.client.send_message(message)
        except BaseException:
            self._drop()
            raise

    async def end_pass(self) -> None:
        if self.client is None:
            return
        try:
            await self.client.quit()
        except (OSError, aiosmtplib.SMTPException):
            pass  # the messages are sent; a goodbye the server missed changes nothing
        finally:
            self._drop()

    def _drop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class RecipientErasedError(Exception):
    """The recipient's data was erased while their message was on its way."""


class OrganiserErasedError(Exception):
    """The organiser named in a message was erased while it was on its way: the message must
    be made again without their name."""


class OutboxTransport:
    """The development default: one .eml file per message under
    <data dir>/outbox/<recipient id>/<organiser id>/, so erasing a person can remove every file
    addressed to them and every file about their events (which names them as the organiser).
    Writing and erasing take one lock, and the people a message names are looked up again under
    it, so no file outlives an erasure. The lock file stays open for a pass rather than being
    opened per message."""

    def __init__(self, directory: Path, address: Callable[[str], str | None]) -> None:
        self.directory = directory
        self.address = address
        self.lock: IO[str] | None = None

    async def deliver(self, message: Mail, envelope: Envelope) -> None:
        if self.lock is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.lock = lock_path(self.directory).open("a")
        data = message.as_bytes()
        path = self.directory / envelope.recipient / envelope.organiser / (
            str(message["Message-ID"]).strip("<>").replace("@", "_") + ".eml")
        with holding(self.lock):
            if self.address(envelope.recipient) is None:
                raise RecipientErasedError(envelope.recipient)
            if envelope.names_organiser and self.address(envelope.organiser) is None:
                raise OrganiserErasedError(envelope.organiser)
            try:
                path.write_bytes(data)
            except FileNotFoundError:  # the first message to this person about these events
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)

    async def end_pass(self) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def lock_path(directory: Path) -> Path:
    return directory.with_name(directory.name + ".lock")


@contextmanager
def holding(handle: IO[str]) -> Iterator[None]:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def outbox_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with lock_path(directory).open("a") as handle, holding(handle):
        yield


def erase_outbox(directory: Path, person_id: str) -> None:
    """Every email to the person, and every email naming them as an event's organiser. Called
    after the person's row is erased, so a delivery waiting on the lock finds them gone and
    writes nothing that names them."""
    with outbox_lock(directory):
        for folder in [directory / person_id, *directory.glob(f"*/{person_id}")]:
            shutil.rmtree(folder, ignore_errors=True)


class Mailer:
    """Delivers due outbox rows in log order; a failure is retried with exponential backoff
    (1 s, 2 s, 4 s … up to 5 minutes), so an SMTP outage loses nothing."""

    def __init__(
        self,
        db: Database,
        transport: Transport,
        load: LoadEvent,
        names: LookUpNames,
        address: Callable[[str], str | None],
        sender: str,
        domain: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.transport = transport
        self.load = load
        self.names = names
        self.address = address
        # Parsed and put back together once: a non-ASCII display name is encoded (RFC 2047)
        # and the address left as it is.
        self.sender = formataddr(parseaddr(sender), "utf-8")
        self.service_address = parseaddr(sender)[1]
        self.domain = domain  # of every Message-ID
        self.clock = clock
        # Delivery state lives beside the outbox, not in it: a replay rebuilds the outbox from
        # the facts, but what was delivered is not in the facts and must not be forgotten (or
        # everything would be sent again).
        with db.write() as conn:
            conn.execute(DELIVERY_SCHEMA)

    def due(self, limit: int = 100) -> list[Outgoing]:
        """Undelivered rows in log order, looking only past the settled prefix of the outbox
        (the mark: every row up to it is sent or dropped) so a long history costs nothing."""
        conn = self.db.connection()
        mark = self._mark(conn)
        rows = conn.execute(
            "SELECT o.message_id, o.event_id, o.version, o.person_id, o.kind, o.changes, "
            "COALESCE(d.attempts, 0) AS attempts FROM mail_outbox o LEFT JOIN mail_delivery d "
            "ON d.message_id = o.message_id WHERE o.position > ? AND d.done_at IS NULL "
            "AND COALESCE(d.next_attempt, 0) <= ? ORDER BY o.position LIMIT ?",
            (mark, self.clock(), limit),
        ).fetchall()
        return [Outgoing(r["message_id"], r["event_id"], r["version"], r["person_id"], r["kind"],
                         json.loads(r["changes"]), r["attempts"]) for r in rows]

    def _mark(self, conn: Connection) -> int:
        mark = self._read_mark(conn)
        if mark is None:  # the row first, so that a late row's update (MailQueue) finds it
            with self.db.write() as writing:
                writing.execute("INSERT INTO tracking VALUES (?, 0) ON CONFLICT DO NOTHING",
                                (MARK,))
            return 0
        if self._settled(conn, mark) == mark:
            return mark
        with self.db.write() as writing:
            # Lock the mark's row, then look again: a mail consumer queuing rows behind the mark
            # has either committed (and is seen now) or waits for this and pulls it back.
            writing.execute("UPDATE tracking SET position = position WHERE view = ?", (MARK,))
            mark = self._read_mark(writing) or 0
            settled = self._settled(writing, mark)
            writing.execute("UPDATE tracking SET position = ? WHERE view = ?", (settled, MARK))
        return settled

    @staticmethod
    def _read_mark(conn: Connection) -> int | None:
        row = conn.execute("SELECT position FROM tracking WHERE view = ?", (MARK,)).fetchone()
        return int(row["position"]) if row else None

    @staticmethod
    def _settled(conn: Connection, mark: int) -> int:
        """Where the settled prefix of the outbox ends now: before its first pending row."""
        pending = conn.execute(
            "SELECT MIN(o.position) AS first FROM mail_outbox o LEFT JOIN mail_delivery d "
            "ON d.message_id = o.message_id WHERE o.position > ? AND d.done_at IS NULL",
            (mark,),
        ).fetchone()["first"]
        return int(pending - 1 if pending is not None else conn.execute(
            "SELECT COALESCE(MAX(position), 0) AS last FROM mail_outbox").fetchone()["last"])

    async def send_due(self) -> int:
        """Try every due message once; returns how many were delivered. The recipients of one
        change share its loaded event and its rendered letter, the transport keeps what it
        opens (SMTP connection, lock file) for the pass, and the pass's outcomes are recorded
        in one transaction (a crash before that only means some are sent again, with the same
        Message-ID)."""
        delivered = 0
        outcomes: list[Outcome] = []
        events: dict[tuple[str, int], tuple[Event, Names] | None] = {}
        letters: dict[tuple[str, int, str], Letter] = {}
        try:
            for item in self.due():
                key = (item.event_id, item.version)
                if key not in events:
                    event = self.load(UUID(item.event_id), item.version)
                    events[key] = ((event, self.names(people_of([fields_of(event)])))
                                   if event else None)
                address = self.address(item.person_id)
                loaded = events[key]
                if address is None or loaded is None:
                    outcomes.append(self._finished(item, "dropped: recipient or event erased"))
                    continue
                event, names = loaded
                kind = kind_for(item, event)
                try:
                    made = letters.get((*key, kind))
                    if made is None:
                        made = letters[(*key, kind)] = letter(
                            kind, event, names, item.changed, self.service_address)
                    recipient = Person(address, self._username(item.person_id, names))
                    await self.transport.deliver(
                        made.to(self.sender, recipient,
                                header_message_id(item.message_id, self.domain)),
                        made.envelope(item.person_id))
                except RecipientErasedError:
                    outcomes.append(self._finished(item, "dropped: recipient erased"))
                    continue
                except (OSError, aiosmtplib.SMTPException, OrganiserErasedError) as exc:
                    # made again on the next try, from the names as they are then
                    outcomes.append(self._retried(item, exc))
                    continue
                except Exception as exc:  # one bad message must never hold up the ones after it
                    log.exception("mail %s cannot be built or sent", item.message_id)
                    outcomes.append(self._retried(item, exc))
                    continue
                outcomes.append(self._finished(item, "sent"))
                delivered += 1
        finally:
            await self.transport.end_pass()
        self._record(outcomes)
        return delivered

    async def run(self, stopped: threading.Event, interval: float = 0.5,
                  leading: Callable[[], bool] = lambda: True) -> None:
        """Deliver until stopped, while `leading` (one mailer across instances sharing the
        state database)."""
        while not stopped.is_set():
            delivered = 0
            try:
                if await asyncio.to_thread(leading):
                    delivered = await self.send_due()
            except Exception:  # the loop is the mail service itself: log, wait, carry on
                log.exception("mail delivery pass failed; retrying")
            if not delivered:
                await asyncio.sleep(interval)

    def _username(self, person_id: str, names: Names) -> str | None:
        """How the recipient's calendar names them: their username (None for an invitee, of
        whom we know only the address). Those an update removed are not among the event's
        names."""
        known = names.get(person_id) or self.names([person_id]).get(person_id)
        return known[1] if known and known[0] == "user" else None

    def _finished(self, item: Outgoing, outcome: str) -> Outcome:
        return (item.message_id, item.attempts, 0.0, self.clock(), outcome)

    def _retried(self, item: Outgoing, exc: Exception) -> Outcome:
        wait = min(2.0 ** item.attempts, RETRY_MAX_SECONDS)
        log.warning("mail %s not delivered (%s); retrying in %.0f s", item.message_id, exc, wait)
        return (item.message_id, item.attempts + 1, self.clock() + wait, None, f"retrying: {exc}")

    def _record(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        with self.db.write() as conn:
            conn.executemany(
                "INSERT INTO mail_delivery VALUES (?, ?, ?, ?, ?) ON CONFLICT(message_id) DO "
                "UPDATE SET attempts = excluded.attempts, next_attempt = excluded.next_attempt, "
                "done_at = excluded.done_at, outcome = excluded.outcome",
                outcomes,
            )
