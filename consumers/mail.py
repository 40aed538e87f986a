"""Email: a tracked follower turns facts into rows of an outbox table (in the same transaction
as its position), and a mailer delivers them — over SMTP, or as .eml files in the dev outbox —
retrying with backoff until each is delivered. Every message has a Message-ID made of ids only,
so a duplicate after a crash is recognisable."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

import aiosmtplib

from consumers.calendar import calendar
from consumers.messages import LoadEvent, LookUpNames
from domain.events import Event
from domain.presentation import changes_json, event_json, fields_of, people_of
from domain.reminders import Reminder

log = logging.getLogger(__name__)

DOMAIN = "alphabet-events"
RETRY_MAX_SECONDS = 300.0


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
    return f"<{event_id}.{version}.{person_id}.{kind}@{DOMAIN}>"


class MailQueue:
    """The mail consumer's bookkeeping: who is in each event (to know whom an update removed)
    and one outbox row per email to send."""

    name = "mail"
    tables: Sequence[str] = ("mail_events", "mail_outbox")

    def schema(self, suffix: str = "") -> list[str]:
        return [
            f"""CREATE TABLE IF NOT EXISTS mail_events{suffix} (
                event_id TEXT PRIMARY KEY,
                version BIGINT NOT NULL,
                participants TEXT NOT NULL
            )""",
            f"""CREATE TABLE IF NOT EXISTS mail_outbox{suffix} (
                message_id TEXT PRIMARY KEY,
                event_id TEXT NOT NULL,
                version BIGINT NOT NULL,
                person_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                changes TEXT NOT NULL,
                position BIGINT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt DOUBLE PRECISION NOT NULL DEFAULT 0,
                done_at DOUBLE PRECISION,
                outcome TEXT
            )""",
        ]

    def indexes(self, suffix: str = "") -> dict[str, str]:
        return {
            f"mail_outbox{suffix}_due": f"mail_outbox{suffix} (done_at, next_attempt, position)",
            f"mail_outbox{suffix}_person": f"mail_outbox{suffix} (person_id)",
        }

    def keep(self, conn: Connection, suffix: str) -> None:
        """A rebuilt queue keeps what was sent and tried, or a replay would mail every
        participant of every event ever again."""
        conn.execute(
            f"UPDATE mail_outbox{suffix} AS r SET attempts = l.attempts, "
            "next_attempt = l.next_attempt, done_at = l.done_at, outcome = l.outcome "
            "FROM mail_outbox AS l WHERE l.message_id = r.message_id"
        )

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
            f"INSERT INTO mail_outbox{suffix} (message_id, event_id, version, person_id, kind, "
            "changes, position) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(message_id(str(event_id), version, person, kind), str(event_id), version, person,
              kind, detail, position) for person in dict.fromkeys(people)],
        )


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


def compose(item: Outgoing, event: Event, names: Any, address: str, sender: str) -> EmailMessage:
    """The email for one outbox row: plain text and HTML parts and the event as .ics."""
    fields = fields_of(event)
    shown = event_json(fields, names, "")
    kind = item.kind
    if kind == "updated" and item.person_id not in event.participants:
        kind = "removed"
    start = shown["starting_time"]
    lines = [
        SUBJECTS[kind].format(name=shown["name"], start=start),
        "",
        f"What:  {shown['name']}",
        f"When:  {start} to {shown['end_time']}",
        f"Where: {shown['location']}",
        f"Organizer: {shown['owner_username'] or 'a former user'}",
        f"Participants: {', '.join(shown['participants']) or 'none'}",
    ]
    if item.changed and kind in ("updated", "removed"):
        changes = changes_json({k: getattr(event, k) for k in item.changed}, names, False)
        lines += ["", "What changed:"] + [f"  {k}: {v}" for k, v in changes.items()]
    message = EmailMessage()
    message["Subject"] = lines[0]
    message["From"] = sender
    message["To"] = address
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = item.message_id
    message.set_content("\n".join(lines) + "\n")
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines if line)
    message.add_alternative(f"<html><body>{body}</body></html>", subtype="html")
    method = "CANCEL" if kind in ("deleted", "removed") else "REQUEST"
    message.add_attachment(calendar([fields], method), maintype="text", subtype="calendar",
                           filename="event.ics", params={"method": method})
    return message


class Transport(Protocol):
    async def deliver(self, message: EmailMessage, person_id: str,
                      mentioned: Collection[str] = ()) -> None: ...


class SmtpTransport:
    """smtp://user:password@host:port (add ?starttls=true for STARTTLS) or smtps:// (TLS)."""

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

    async def deliver(self, message: EmailMessage, person_id: str,
                      mentioned: Collection[str] = ()) -> None:
        await aiosmtplib.send(message, **self.options)


class OutboxTransport:
    """The development default: one .eml file per message under <data dir>/outbox/<person id>/,
    so erasing a person can remove every file addressed to them. An email names other people
    too (the organizer, the participants), so each file is also listed under
    .mentions/<person id> for everyone it names: erasing them removes those files as well, and
    no copy of their name is left in the data dir."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def deliver(self, message: EmailMessage, person_id: str,
                      mentioned: Collection[str] = ()) -> None:
        folder = self.directory / person_id
        folder.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("@", "_") + ".eml"
        (folder / name).write_bytes(message.as_bytes())
        mentions = self.directory / MENTIONS
        mentions.mkdir(exist_ok=True)
        for other in set(mentioned) - {person_id}:
            with (mentions / other).open("a") as index:
                index.write(f"{person_id}/{name}\n")


MENTIONS = ".mentions"


def erase_outbox(directory: Path, person_id: str) -> None:
    shutil.rmtree(directory / person_id, ignore_errors=True)
    index = directory / MENTIONS / person_id
    with contextlib.suppress(FileNotFoundError):
        for line in index.read_text().splitlines():
            (directory / line).unlink(missing_ok=True)
        index.unlink()


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.transport = transport
        self.load = load
        self.names = names
        self.address = address
        self.sender = sender
        self.clock = clock

    def due(self, limit: int = 100) -> list[Outgoing]:
        rows = self.db.connection().execute(
            "SELECT message_id, event_id, version, person_id, kind, changes, attempts "
            "FROM mail_outbox WHERE done_at IS NULL AND next_attempt <= ? "
            "ORDER BY position LIMIT ?",
            (self.clock(), limit),
        ).fetchall()
        return [Outgoing(r["message_id"], r["event_id"], r["version"], r["person_id"], r["kind"],
                         json.loads(r["changes"]), r["attempts"]) for r in rows]

    async def send_due(self) -> int:
        """Try every due message once; returns how many were delivered."""
        delivered = 0
        for item in self.due():
            address = self.address(item.person_id)
            event = self.load(UUID(item.event_id), item.version)
            if address is None or event is None:
                self._finish(item, "dropped: recipient or event erased")
                continue
            names = self.names(people_of([fields_of(event)]))
            try:
                await self.transport.deliver(
                    compose(item, event, names, address, self.sender), item.person_id, names
                )
            except (OSError, aiosmtplib.SMTPException) as exc:
                self._retry(item, exc)
                continue
            self._finish(item, "sent")
            delivered += 1
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
            except self.db.transient:
                log.exception("mail delivery pass failed; retrying")
            if not delivered:
                await asyncio.sleep(interval)

    def _finish(self, item: Outgoing, outcome: str) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE mail_outbox SET done_at = ?, outcome = ? WHERE message_id = ?",
                         (self.clock(), outcome, item.message_id))

    def _retry(self, item: Outgoing, exc: Exception) -> None:
        wait = min(2.0 ** item.attempts, RETRY_MAX_SECONDS)
        log.warning("mail %s not delivered (%s); retrying in %.0f s", item.message_id, exc, wait)
        with self.db.write() as conn:
            conn.execute(
                "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt = ?, outcome = ? "
                "WHERE message_id = ?",
                (self.clock() + wait, f"retrying: {exc}", item.message_id),
            )
