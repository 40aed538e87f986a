"""The mailer: delivers the outbox's due rows in log order, retrying a failure with backoff,
and records each outcome beside the outbox (never in it, which a replay rebuilds)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from email.utils import formataddr, parseaddr
from uuid import UUID

import aiosmtplib

from consumers.calendar import Person
from consumers.mail.letters import METHODS, Letter, header_message_id, kind_for, letter
from consumers.mail.outbox import MARK, Outgoing
from consumers.mail.transports import OrganiserErasedError, RecipientErasedError, Transport
from consumers.messages import LoadEvent, LookUpNames
from consumers.rsvp import RsvpLinks
from domain import recurrence
from domain.events import Event
from domain.presentation import Names, fields_of, people_of
from domain.storage import Connection, Database
from projections.database import insert_rows

log = logging.getLogger(__name__)

RETRY_MAX_SECONDS = 300.0

DELIVERY_SCHEMA = """CREATE TABLE IF NOT EXISTS mail_delivery (
    message_id TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL,
    next_attempt DOUBLE PRECISION NOT NULL,
    done_at DOUBLE PRECISION,
    outcome TEXT
)"""

# What mail_delivery holds of an outbox row `o`, as a scalar subquery: never turned into a
# join, so the outbox is walked in log order from the mark, each row's delivery looked up by
# its key, and the walk stops at the LIMIT. As a join PostgreSQL hashed every undelivered row
# against every delivery each pass (46 ms for a backlog of 45,000, half the mailer's time).
DELIVERY = "SELECT {} FROM mail_delivery d WHERE d.message_id = o.message_id"

# message id, attempts, next attempt, done at, outcome: one row of mail_delivery
Outcome = tuple[str, int, float, float | None, str]


class Mailer:
    """Delivers due outbox rows in log order; a failure is retried with exponential backoff
    (1 s, 2 s, 4 s … up to 5 minutes), so an SMTP outage loses nothing."""

    def __init__(
        self,
        db: Database,
        transport: Transport,
        load: LoadEvent,
        names: LookUpNames,
        addresses: Callable[[Iterable[str]], dict[str, str]],
        sender: str,
        domain: str,
        clock: Callable[[], float] = time.time,
        links: RsvpLinks | None = None,
    ) -> None:
        """`links`: what makes outside invitees' one-click answers (none without it)."""
        self.db = db
        self.transport = transport
        self.load = load
        self.names = names
        self.addresses = addresses
        # Parsed and put back together once: a non-ASCII display name is encoded (RFC 2047)
        # and the address left as it is.
        self.sender = formataddr(parseaddr(sender), "utf-8")
        self.service_address = parseaddr(sender)[1]
        self.domain = domain  # of every Message-ID
        self.clock = clock
        self.links = links
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
            f"COALESCE(({DELIVERY.format('attempts')}), 0) AS attempts FROM mail_outbox o "
            "WHERE o.position > ? "
            f"AND COALESCE(({DELIVERY.format('done_at IS NULL AND next_attempt <= ?')}), TRUE) "
            "ORDER BY o.position LIMIT ?",
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
        row = conn.execute(
            "SELECT o.position FROM mail_outbox o WHERE o.position > ? "
            f"AND COALESCE(({DELIVERY.format('done_at IS NULL')}), TRUE) "
            "ORDER BY o.position LIMIT 1",
            (mark,),
        ).fetchone()
        pending = row["position"] if row else None
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
            due = self.due()
            recipients = {item.person_id for item in due}
            addresses = self.addresses(recipients) if recipients else {}
            await self.transport.begin_pass(recipients)
            for item in due:
                key = (item.event_id, item.version)
                if key not in events:
                    event = self.load(UUID(item.event_id), item.version)
                    events[key] = ((event, self.names(people_of([fields_of(event)])))
                                   if event else None)
                address = addresses.get(item.person_id)
                loaded = events[key]
                if address is None or loaded is None:
                    outcomes.append(self._finished(item, "dropped: recipient or event erased"))
                    continue
                event, names = loaded
                kind = kind_for(item, event)
                # the occurrence a kind such as `updated.20270329T070000Z` is news of, if any
                start = recurrence.parse_key(kind.partition(".")[2])
                try:
                    answers = self._answers(item, event, kind, names, start)
                    made = letters.get((*key, kind)) if answers is None else None
                    if made is None:
                        made = letter(kind, event, names, item.changed, self.service_address,
                                      answers)
                        if answers is None:  # a letter with links is its recipient's alone
                            letters[(*key, kind)] = made
                    recipient = Person(address, self._username(item.person_id, names))
                    await self.transport.deliver(
                        made.to(self.sender, recipient,
                                header_message_id(item.message_id, self.domain),
                                event.response_of(item.person_id, start)),
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
                  leading: Callable[[], bool] = lambda: True,
                  woken: asyncio.Event | None = None) -> None:
        """Deliver until stopped, while `leading` (one mailer across instances sharing the
        state database). After a pass that sent nothing it waits `interval`, or less when
        `woken` is set (new mail may be queued)."""
        woken = woken or asyncio.Event()
        while not stopped.is_set():
            woken.clear()  # before the pass, so a wake-up during it is not lost
            delivered = 0
            try:
                if await asyncio.to_thread(leading):
                    delivered = await self.send_due()
            except Exception:  # the loop is the mail service itself: log, wait, carry on
                log.exception("mail delivery pass failed; retrying")
            if not delivered:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), interval)

    def _answers(self, item: Outgoing, event: Event, kind: str, names: Names,
                 start: datetime | None) -> dict[str, str] | None:
        """An outside invitee's one-click answer links, in an invitation (a REQUEST) only:
        registered users answer signed in. In news of one occurrence (`start`), they answer
        for that occurrence and expire when it ends."""
        known = names.get(item.person_id)
        if self.links is None or METHODS.get(kind.partition(".")[0]) != "REQUEST" \
                or known is None or known[0] != "invitee":
            return None
        if start is None:
            return self.links.links(item.event_id, item.person_id, event.end_time)
        found = recurrence.occurrence(event.series(), start)
        if item.person_id not in event.occurrence_state(found)["participants"]:
            return None  # removed from this occurrence: nothing to answer
        return self.links.links(item.event_id, item.person_id, found.end, found.key)

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
            insert_rows(
                conn,
                "INSERT INTO mail_delivery VALUES {rows} ON CONFLICT(message_id) DO "
                "UPDATE SET attempts = excluded.attempts, next_attempt = excluded.next_attempt, "
                "done_at = excluded.done_at, outcome = excluded.outcome",
                outcomes,
            )
