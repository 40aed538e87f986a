"""Email on real components: a real event store and state database in SQLite files, the mail
consumer built as alphabet.wiring builds it, and a real SMTP server (aiosmtpd) on loopback that
can be stopped and started again on the same port. Covers who is written to on create, update
and delete, what each email holds (read back with the email package, non-ASCII names too),
deterministic Message-IDs, an SMTP outage and a consumer crash losing nothing, the retry
backoff, one SMTP connection per delivery pass, erasure before delivery and the outbox lock,
the dev outbox, SMTP URLs and replaying the mail queue."""

from __future__ import annotations

import asyncio
import html
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from icalendar import Calendar

from alphabet import processes, wiring
from alphabet.processes import Lifetime
from alphabet.settings import Postgres, Settings
from consumers.mail.delivery import Mailer
from consumers.mail.dev_outbox import OutboxTransport, erase_outbox, outbox_lock
from consumers.mail.outbox import MailQueue
from consumers.mail.transports import SmtpTransport, Transport
from domain.application import EventsApplication
from domain.events import Event
from domain.presentation import Names
from domain.reminders import Reminder
from projections.database import SqliteDatabase, StateDatabase
from projections.follower import Alone, Follower, Log, catch_up_batch
from projections.people import People
from projections.replay import replay
from tests.conftest import BACKENDS, Backend, free_port, fresh
from tests.mail_clients import Address, CalendarEvent, Email, by_icaljs, by_vobject, read_email

# The domain of the default From address (events@localhost), as ALPHABET_MAIL_DOMAIN defaults
MESSAGE_ID_DOMAIN = "localhost"
WAIT_SECONDS = 60.0  # a ceiling for a thread on a busy machine, not an expectation


# ---------------------------------------------------------------------------------------------
# a real SMTP server on loopback


@dataclass(frozen=True)
class Received:
    """One message as the SMTP server accepted it."""

    recipients: tuple[str, ...]
    message: EmailMessage
    connection: int  # which SMTP connection brought it, numbered from 0 in order of arrival
    raw: bytes = b""

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"]).strip()

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def id_parts(self) -> tuple[str, int, str, str]:
        """(event id, version, person id, kind) read back from the Message-ID."""
        local, _, domain = self.message_id.strip("<>").partition("@")
        assert domain == MESSAGE_ID_DOMAIN, self.message_id
        event_id, version, person_id, kind = local.split(".")
        return event_id, int(version), person_id, kind

    @property
    def kind(self) -> str:
        return self.id_parts()[3]

    def calendar(self) -> Calendar:
        """The calendar attached to the email (every kind of email has one)."""
        parts = [p for p in self.message.iter_attachments()
                 if p.get_content_type() == "application/ics"]
        assert len(parts) == 1, [p.get_content_type() for p in self.message.walk()]
        content = parts[0].get_content()
        return Calendar.from_ical(content if isinstance(content, bytes) else content.encode())

    def content_key(self) -> tuple[str, str, str, str]:
        """What the email is, read from its content rather than its Message-ID: recipient,
        the .ics UID and DTSTAMP (event id, and the time of the fact: its version) and the
        subject's first word."""
        vevent = self.calendar().walk("VEVENT")[0]
        return (self.to, str(vevent["UID"]), vevent["DTSTAMP"].to_ical().decode(),
                self.subject.split(":")[0].split(" ")[0])

    def read(self) -> Email:
        """The email as third-party parsers read it."""
        return read_email(self.raw)


class Inbox:
    """An aiosmtpd handler keeping every message it accepts (it runs on the server's thread).
    With `hang_up` it closes each connection once a message is accepted, as servers that limit
    messages per connection do."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._sessions: list[Any] = []  # one per connection (aiosmtpd's Session)
        self.hang_up = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        with self._lock:
            if not any(known is session for known in self._sessions):
                self._sessions.append(session)
            connection = next(n for n, known in enumerate(self._sessions) if known is session)
            self._received.append(Received(tuple(envelope.rcpt_tos), message, connection,
                                           envelope.content))
        if self.hang_up:  # after the reply below has gone out, before the next command
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 Message accepted for delivery"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)


@dataclass
class SmtpServer:
    """aiosmtpd on 127.0.0.1; stop() and start() again keep the port and the inbox."""

    port: int = field(default_factory=free_port)
    inbox: Inbox = field(default_factory=Inbox)
    controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpServer:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def received(self) -> list[Received]:
        return self.inbox.received()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def assert_duplicates_only_by_message_id(received: list[Received]) -> None:
    """At least once is allowed; but one email (recipient, event, version, kind) must always
    carry one and the same Message-ID, so a repeat is recognisable."""
    ids: dict[tuple[str, str, int, str], set[str]] = defaultdict(set)
    for item in received:
        ids[item.content_key()].add(item.message_id)
    assert {k: v for k, v in ids.items() if len(v) > 1} == {}


# ---------------------------------------------------------------------------------------------
# the system in-process, built like alphabet.wiring builds it


class Clock:
    """A controllable time.time() for the mailer."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class System:
    settings: Settings
    app: EventsApplication
    db: StateDatabase
    people: People
    follower: Follower
    clock: Clock

    @classmethod
    def build(cls, data_dir: Path, smtp_url: str | None = None, reminder_minutes: int = 30,
              clock: Clock | None = None, backend: Backend | None = None,
              **settings_: Any) -> System:
        store = Postgres.from_url(backend.url) if backend and backend.url else None
        settings = Settings(data_dir=data_dir, smtp_url=smtp_url,
                            reminder_minutes=reminder_minutes, postgres=store, **settings_)
        wiring.migrate(settings)
        app = wiring.event_application(settings)
        db = wiring.state_database(settings)
        return cls(settings, app, db, People(db), wiring.follower(settings, app, db),
                   clock or Clock())

    def mailer(self, sender: str | None = None, looked_up: threading.Event | None = None,
               transport: Transport | None = None) -> Mailer:
        """wiring.mailer's transport (or `transport`), loader and address book, on this
        system's clock; `looked_up` is set once the mailer has looked up people's names."""
        built = wiring.mailer(self.settings, self.app, self.db)

        def names(ids: Iterable[str]) -> Names:
            found = built.names(ids)
            if looked_up is not None:
                looked_up.set()
            return found

        return Mailer(self.db, transport or built.transport, built.load, names, built.addresses,
                      sender or self.settings.mail_from, self.settings.message_domain,
                      clock=self.clock)

    def close(self) -> None:
        self.app.close()
        self.db.close()

    def add_user(self, prefix: str) -> tuple[str, str]:
        """A registered user: (user id, email address)."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        user_id = str(self.app.register_user().aggregate.id)
        address = f"{name}@example.com"
        self.people.add_user(user_id, name, address, "$argon2id$not-a-real-hash",
                             datetime.now(UTC).isoformat())
        return user_id, address

    def username(self, user_id: str) -> str:
        account = self.people.by_id(user_id)
        assert account is not None
        return account.username

    def create_event(self, owner: str, participants: list[str], name: str = "Standup",
                     starts_in: timedelta = timedelta(hours=2),
                     start: datetime | None = None) -> str:
        start = start or datetime.now(UTC) + starts_in
        written = self.app.create_event(
            owner_id=owner, name=name, starting_time=start, end_time=start + timedelta(hours=1),
            location="Tel Aviv Port", participants=self.people.resolve(participants),
        )
        return str(written.aggregate.id)

    def update_event(self, owner: str, event_id: str, **changes: Any) -> int:
        if "participants" in changes:
            changes["participants"] = self.people.resolve(changes["participants"])
        written = self.app.update_event(uuid.UUID(event_id), by=owner, now=datetime.now(UTC),
                                        expected_version=None, changes=changes)
        version: int = written.aggregate.version
        return version

    def delete_event(self, owner: str, event_id: str) -> int:
        written = self.app.delete_event(uuid.UUID(event_id), by=owner, expected_version=None)
        version: int = written.aggregate.version
        return version

    def invitee_id(self, address: str) -> str:
        return self.people.resolve([address])[0]

    def outbox_rows(self) -> list[Any]:
        return list(self.db.connection().execute(
            "SELECT o.*, COALESCE(d.attempts, 0) AS attempts, d.next_attempt, d.done_at, "
            "d.outcome FROM mail_outbox o LEFT JOIN mail_delivery d USING (message_id) "
            "ORDER BY o.position, o.message_id"))


def values(row: Any) -> tuple[Any, ...]:
    """A row's values in column order (sqlite3.Row and psycopg's dict rows alike)."""
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


@pytest.fixture(params=BACKENDS)
def system_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Systems on one backend of each kind (those built in one test share it, as processes
    share one store)."""
    built: list[System] = []
    with fresh(request.param) as backend:

        def build(smtp_url: str | None = None, **options: Any) -> System:
            system = System.build(tmp_path / "data", smtp_url, backend=backend, **options)
            built.append(system)
            return system

        yield build
        for system in built:
            system.close()


def message_id(event_id: str, version: int, person_id: str, kind: str) -> str:
    """The Message-ID header of an email: ids only, at the configured domain."""
    return f"<{event_id}.{version}.{person_id}.{kind}@{MESSAGE_ID_DOMAIN}>"


def outbox_key(event_id: str, version: int, person_id: str, kind: str) -> str:
    """An outbox row's key: the same ids, in the form the first rows were stored in."""
    return f"<{event_id}.{version}.{person_id}.{kind}@alphabet-events>"


def as_sent(key: str) -> str:
    """The Message-ID that the email of an outbox row carries."""
    return f"{key.rpartition('@')[0]}@{MESSAGE_ID_DOMAIN}>"


def pass_racing_an_erasure(system: System, person: str) -> tuple[int, Mailer]:
    """One delivery pass that has looked its people up before `person`'s row is erased, and
    reaches the outbox lock while the erasure holds it (as erase_outbox takes it); how many it
    delivered, and its mailer."""
    looked_up = threading.Event()
    mailer = system.mailer(looked_up=looked_up)
    outbox = system.settings.outbox_dir
    passes: list[int] = []
    delivering = threading.Thread(target=lambda: passes.append(asyncio.run(mailer.send_due())))
    with outbox_lock(outbox):
        delivering.start()
        assert looked_up.wait(WAIT_SECONDS), "the delivery never looked anyone up"
        system.people.erase(person)
        assert not list(outbox.rglob("*.eml")), "the delivery did not wait for the lock"
    delivering.join(WAIT_SECONDS)
    assert not delivering.is_alive()
    (delivered,) = passes
    return delivered, mailer


def by_address(received: list[Received]) -> dict[str, list[Received]]:
    found: dict[str, list[Received]] = defaultdict(list)
    for item in received:
        found[item.to].append(item)
    return dict(found)


# ---------------------------------------------------------------------------------------------
# who is written to, and what each email holds


async def test_creating_an_event_emails_each_participant_once_and_nobody_else(
    smtp: SmtpServer, system_factory: Any
) -> None:
    system: System = system_factory(smtp.url)
    owner, owner_address = system.add_user("owner")
    guest, guest_address = system.add_user("guest")
    bystander, bystander_address = system.add_user("bystander")
    invitee_address = f"outsider_{uuid.uuid4().hex[:6]}@outside.example"
    event_id = system.create_event(owner, [system.username(guest), invitee_address])
    invitee = system.invitee_id(invitee_address)

    system.follower.run_once()
    delivered = await system.mailer().send_due()

    received = smtp.received()
    assert delivered == 2
    assert sorted(r.to for r in received) == sorted([guest_address, invitee_address])
    assert owner_address not in by_address(received)
    assert bystander_address not in by_address(received)
    assert {r.id_parts()[2] for r in received}.isdisjoint({owner, bystander})
    assert {r.message_id for r in received} == {
        message_id(event_id, 1, guest, "created"), message_id(event_id, 1, invitee, "created"),
    }
    assert all(r.recipients == (r.to,) for r in received)
    assert all(r.subject.startswith('Invitation: "Standup"') for r in received)


async def test_every_email_has_a_plain_text_part_an_html_part_and_the_event_as_ics(
    smtp: SmtpServer, system_factory: Any
) -> None:
    system: System = system_factory(smtp.url)
    owner, _ = system.add_user("owner")
    guest, guest_address = system.add_user("guest")
    event_id = system.create_event(owner, [system.username(guest)], name="Design review")
    system.update_event(owner, event_id, location="Haifa Bay")
    system.delete_event(owner, event_id)

    system.follower.run_once()
    await system.mailer().send_due()

    received = smtp.received()
    assert sorted(r.kind for r in received) == ["created", "deleted", "updated"]
    assert {r.to for r in received} == {guest_address}
    for item in received:
        plain = item.message.get_body(("plain",))
        rich = item.message.get_body(("html",))
        assert plain is not None and rich is not None, item.subject
        assert "Design review" in plain.get_content()
        assert "<html>" in rich.get_content() and "Design review" in rich.get_content()
        calendar = item.calendar()
        vevents = calendar.walk("VEVENT")
        assert len(vevents) == 1
        assert str(vevents[0]["UID"]) == event_id
        assert str(vevents[0]["SUMMARY"]) == "Design review"
    methods = {r.kind: str(r.calendar()["METHOD"]) for r in received}
    assert methods == {"created": "REQUEST", "updated": "REQUEST", "deleted": "CANCEL"}
    updated = next(r for r in received if r.kind == "updated")
    text = updated.message.get_body(("plain",))
    assert text is not None and "Haifa Bay" in text.get_content()
    assert "What changed" in text.get_content() and "location" in text.get_content()


def read_outbox(outbox: Path) -> dict[str, tuple[bytes, EmailMessage]]:
    """Every .eml in the dev outbox by Message-ID: its bytes and the email package's reading."""
    found = {}
    for path in outbox.glob("*/*/*.eml"):  # recipient / organiser / message
        raw = path.read_bytes()
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        found[str(message["Message-ID"])] = (raw, message)
    return found


async def test_a_change_for_several_recipients_with_a_non_ascii_name_reads_back_right(
    system_factory: Any
) -> None:
    system: System = system_factory(None)
    owner, _ = system.add_user("owner")
    kept, kept_address = system.add_user("kept")
    dropped, dropped_address = system.add_user("dropped")
    invitee_address = f"outsider_{uuid.uuid4().hex[:6]}@outside.example"
    # long enough that its encoded subject must be folded over several lines
    name = "Réunion d'équipe – café ☕ avec les collègues de Zürich, Kraków et Łódź"
    event_id = system.create_event(owner, [system.username(kept), system.username(dropped),
                                           invitee_address], name="Kick-off")
    version = system.update_event(owner, event_id, name=name, location="Tōkyō 東京",
                                  participants=[system.username(kept), invitee_address])
    invitee = system.invitee_id(invitee_address)
    system.follower.run_once()
    sent_at = time.time()
    assert await system.mailer(sender="Événements Alphabet <events@localhost>").send_due() == 6

    messages = read_outbox(system.settings.outbox_dir)
    updates = {person: messages[message_id(event_id, version, person, "updated")]
               for person in (kept, invitee, dropped)}
    assert len(messages) == 6
    addresses = {kept: kept_address, invitee: invitee_address, dropped: dropped_address}
    for person, (raw, message) in updates.items():
        head = raw.split(b"\n\n", 1)[0].decode("ascii")  # headers are 7-bit, non-ASCII encoded
        subject = head[head.index("Subject:"):].split("\n")
        subject = subject[:next(n for n, line in enumerate(subject[1:], 1) if line[:1] != " ")]
        assert len(subject) > 1 and all(line.split()[-1].startswith("=?utf-8?")
                                        for line in subject)  # RFC 2047, folded
        assert max(len(line) for line in subject) <= 78
        assert str(message["To"]) == addresses[person]
        assert str(message["Message-ID"]) == message_id(event_id, version, person, "updated")
        sender = message["From"].addresses[0]
        assert (sender.display_name, sender.addr_spec) == ("Événements Alphabet",
                                                           "events@localhost")
        assert abs(message["Date"].datetime.timestamp() - sent_at) < 60
        assert [p.get_content_type() for p in message.walk()] == [
            "multipart/mixed", "multipart/alternative", "text/plain", "text/html",
            "text/calendar", "application/ics"]
        (attachment,) = message.iter_attachments()
        assert attachment.get_filename() == "invite.ics"
        ics = Calendar.from_ical(attachment.get_content())
        (vevent,) = ics.walk("VEVENT")
        # renamed and moved: one change of place, so one revision
        assert (str(vevent["UID"]), int(str(vevent["SEQUENCE"]))) == (event_id, 1)
        assert (str(vevent["SUMMARY"]), str(vevent["LOCATION"])) == (name, "Tōkyō 東京")
        inline = read_email(raw).part("text/calendar")
        assert str(ics["METHOD"]) == inline.get_param("method")
        plain, rich = message.get_body(("plain",)), message.get_body(("html",))
        assert plain is not None and rich is not None
        assert f"What:  {name}" in plain.get_content()
        assert html.escape(name) in rich.get_content()

    kept_update, dropped_update = updates[kept][1], updates[dropped][1]
    assert str(kept_update["Subject"]) == f'Updated: "{name}"'
    assert str(dropped_update["Subject"]) == f'You are no longer invited to "{name}"'
    kept_read, dropped_read, invitee_read = (read_email(updates[p][0])
                                             for p in (kept, dropped, invitee))
    assert (kept_read.part("text/calendar").get_param("method"),
            dropped_read.part("text/calendar").get_param("method")) == ("REQUEST", "CANCEL")
    # The current participants' emails are one text under different headers; only the
    # calendar's ATTENDEE differs.
    for part in ("text/plain", "text/html"):
        assert kept_read.text(part) == invitee_read.text(part)
    assert (kept_read.inline_calendar.replace(kept_address, invitee_address)
            .replace(f";CN={system.username(kept)}", "")
            .replace("\r\n ", "")) == invitee_read.inline_calendar.replace("\r\n ", "")
    text = kept_update.get_body(("plain",))
    assert text is not None
    assert "Participants: 2" in text.get_content()
    assert f"  name: {name}" in text.get_content()
    assert "  participants: now 2" in text.get_content()


async def test_an_update_emails_current_participants_and_tells_the_removed_they_are_uninvited(
    smtp: SmtpServer, system_factory: Any
) -> None:
    system: System = system_factory(smtp.url)
    owner, owner_address = system.add_user("owner")
    kept, kept_address = system.add_user("kept")
    dropped, dropped_address = system.add_user("dropped")
    added, added_address = system.add_user("added")
    event_id = system.create_event(owner, [system.username(kept), system.username(dropped)])
    system.follower.run_once()
    await system.mailer().send_due()
    before = len(smtp.received())

    version = system.update_event(owner, event_id, name="Retro",
                                  participants=[system.username(kept), system.username(added)])
    system.follower.run_once()
    await system.mailer().send_due()

    updates = smtp.received()[before:]
    assert version == 2
    mail = by_address(updates)
    assert sorted(mail) == sorted([kept_address, dropped_address, added_address])
    assert owner_address not in mail
    assert all(len(items) == 1 for items in mail.values())
    assert mail[kept_address][0].message_id == message_id(event_id, 2, kept, "updated")
    assert mail[added_address][0].message_id == message_id(event_id, 2, added, "updated")
    assert mail[dropped_address][0].message_id == message_id(event_id, 2, dropped, "updated")
    assert mail[kept_address][0].subject == 'Updated: "Retro"'
    assert "no longer invited" in mail[dropped_address][0].subject
    assert "no longer invited" not in mail[kept_address][0].subject
    assert "no longer invited" not in mail[added_address][0].subject


async def test_deleting_an_event_sends_a_cancellation_to_its_current_participants_only(
    smtp: SmtpServer, system_factory: Any
) -> None:
    system: System = system_factory(smtp.url)
    owner, _ = system.add_user("owner")
    stays, stays_address = system.add_user("stays")
    left, left_address = system.add_user("left")
    invitee_address = f"outsider_{uuid.uuid4().hex[:6]}@outside.example"
    event_id = system.create_event(owner, [system.username(stays), system.username(left),
                                           invitee_address])
    system.update_event(owner, event_id, participants=[system.username(stays), invitee_address])
    version = system.delete_event(owner, event_id)
    system.follower.run_once()
    await system.mailer().send_due()

    cancellations = [r for r in smtp.received() if r.kind == "deleted"]
    assert sorted(r.to for r in cancellations) == sorted([stays_address, invitee_address])
    assert left_address not in {r.to for r in cancellations}
    assert {r.message_id for r in cancellations} == {
        message_id(event_id, version, stays, "deleted"),
        message_id(event_id, version, system.invitee_id(invitee_address), "deleted"),
    }
    assert all(r.subject.startswith("Cancelled:") for r in cancellations)


async def test_a_reminder_recorded_as_its_event_is_deleted_sends_nothing_and_stops_no_mail(
    smtp: SmtpServer, system_factory: Any
) -> None:
    """The clock checks the event before recording its reminder, but a deletion can be saved
    in between: the log then holds the reminder after the deletion."""
    system: System = system_factory(smtp.url)
    owner, _ = system.add_user("owner")
    guest, _ = system.add_user("guest")
    deleted = system.create_event(owner, [system.username(guest)])
    system.delete_event(owner, deleted)
    system.app.save(Reminder(event_id=deleted, starting_time=START, original_start=None))
    after = system.create_event(owner, [system.username(guest)])
    system.follower.run_once()
    await system.mailer().send_due()

    assert sorted((r.id_parts()[0], r.kind) for r in smtp.received()) == sorted(
        [(deleted, "created"), (deleted, "deleted"), (after, "created")])


def test_the_mailer_is_woken_when_the_views_move_on_not_by_its_safety_look(
    smtp: SmtpServer, system_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mail process's look every MAILER_POLL_SECONDS is a safety net: made ten minutes
    here, an email still goes once the views' follower has queued it (it rings the data
    dir's doorbell on SQLite, NOTIFYs on PostgreSQL). On PostgreSQL it used to wait for the
    look: one event's email a second after its write."""
    monkeypatch.setattr(processes, "MAILER_POLL_SECONDS", 600.0)
    system: System = system_factory(smtp.url)
    owner, _ = system.add_user("owner")
    guest, _ = system.add_user("guest")
    follower = wiring.follower(system.settings, system.app, system.db, Alone(),
                               wiring.doorbell(system.settings))
    lifetime, mailing = Lifetime(), ExitStack()  # what the mail process opens goes last
    mailer = threading.Thread(target=processes.mail, args=(system.settings, lifetime, mailing))
    following = threading.Thread(target=follower.run)

    def arrives(event_id: str) -> None:
        follower.wake()  # as the server's writers do
        deadline = time.monotonic() + WAIT_SECONDS
        while not any(r.id_parts()[0] == event_id for r in smtp.received()):
            assert time.monotonic() < deadline, f"no email about {event_id}"
            time.sleep(0.05)

    following.start()
    mailer.start()
    try:
        arrives(system.create_event(owner, [system.username(guest)]))
        time.sleep(1)  # the mailer's pass after that delivery finds nothing: it sleeps
        arrives(system.create_event(owner, [system.username(guest)]))
    finally:
        lifetime.end()
        follower.stop()
        mailer.join(WAIT_SECONDS)
        following.join(WAIT_SECONDS)
        mailing.close()


async def test_message_ids_are_made_of_ids_only_and_are_the_same_when_the_queue_is_rebuilt(
    smtp: SmtpServer, system_factory: Any, tmp_path: Path
) -> None:
    system: System = system_factory(smtp.url)
    owner, _ = system.add_user("owner")
    guest, guest_address = system.add_user("guest")
    event_id = system.create_event(owner, [system.username(guest)])
    system.follower.run_once()
    await system.mailer().send_due()

    (received,) = smtp.received()
    expected = message_id(event_id, 1, guest, "created")
    assert received.message_id == expected
    assert guest_address not in received.message_id
    assert system.username(guest) not in received.message_id
    # A second state database fed from the same store queues the very same ids.
    other = SqliteDatabase(tmp_path / "other-state.sqlite")
    other.create_schema()
    with other.write() as conn:
        for statement in MailQueue().schema():
            conn.execute(statement)
    catch_up_batch(other, Log(system.app.recorder, system.app.mapper), MailQueue(), 1000)
    ids = [r[0] for r in other.connection().execute("SELECT message_id FROM mail_outbox")]
    assert ids == [outbox_key(event_id, 1, guest, "created")]


# ---------------------------------------------------------------------------------------------
# as mail and calendar programs read them: RFC 5322 headers, iTIP (RFC 5546) in RFC 5545


START = datetime(2030, 12, 3, 18, 0, tzinfo=UTC)  # a Tuesday
HOUR = timedelta(hours=1)
MIME_PARTS = ["multipart/mixed", "multipart/alternative", "text/plain", "text/html",
              "text/calendar", "application/ics"]
RFC_5322_DATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} "
                           r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                           r"\d\d:\d\d:\d\d \+0000")


def outsider() -> str:
    """A fresh address of an outside invitee."""
    return f"outsider_{uuid.uuid4().hex[:6]}@outside.example"


def read_calendars(received: list[Received]) -> list[tuple[CalendarEvent, CalendarEvent]]:
    """Each email's invitation as vobject and as ical.js read it (one VEVENT each)."""
    texts = [item.read().inline_calendar for item in received]
    found = []
    for text, icaljs in zip(texts, by_icaljs(texts), strict=True):
        (by_one,), (by_other,) = by_vobject(text), icaljs
        found.append((by_one, by_other))
    return found


async def test_an_invitation_is_an_itip_request_from_the_owner_to_its_one_recipient(
    smtp: SmtpServer, system_factory: Any
) -> None:
    system: System = system_factory(smtp.url)
    (owner, owner_address), (guest, guest_address) = map(system.add_user, ("alice", "bob"))
    invitee_address = outsider()
    event_id = system.create_event(owner, [system.username(guest), invitee_address],
                                   name="Design review", start=START)
    system.follower.run_once()
    assert await system.mailer().send_due() == 2

    received = sorted(smtp.received(), key=lambda r: r.to != guest_address)
    names = {guest_address: system.username(guest), invitee_address: None}
    for item, calendars in zip(received, read_calendars(received), strict=True):
        email = item.read()
        # the calendar is an alternative of the body (what shows as an invitation card) and
        # an attachment, as Gmail, Outlook and Apple Mail expect
        assert email.structure == MIME_PARTS
        inline = email.part("text/calendar")
        assert (inline.get_param("method"), inline.get_content_charset()) == ("REQUEST", "utf-8")
        assert email.part("application/ics").get_filename() == "invite.ics"
        assert email.attached_calendar == email.inline_calendar
        assert not email.parsed.defects
        assert [a["filename"] for a in email.parsed.attachments] == ["invite.ics"]
        for event in calendars:
            assert event.method == "REQUEST"
            assert (event.uid, event.sequence, event.status) == (event_id, 0, None)
            assert (event.start, event.end) == (START, START + HOUR)
            assert (event.summary, event.location) == ("Design review", "Tel Aviv Port")
            # the owner by name, at the service's address: the owner's own is never shown
            assert event.organizer == Address("mailto:events@localhost",
                                              cn=system.username(owner))
            # each copy names its recipient alone, so no one's address reaches the others
            assert event.attendees == (Address(
                f"mailto:{item.to}", cn=names[item.to], partstat="NEEDS-ACTION", rsvp="TRUE",
                role="REQ-PARTICIPANT"),)
        others = {guest_address, invitee_address, owner_address} - {item.to}
        assert not any(address.encode() in item.raw for address in others)


@pytest.mark.parametrize(("settings", "domain"), [
    ({}, "localhost"),
    ({"mail_from": "Alphabet Events <events@mail.example.com>"}, "mail.example.com"),
    ({"mail_from": "Alphabet Events <events@mail.example.com>",
      "mail_domain": "ids.example.org"}, "ids.example.org"),
])
async def test_headers_carry_an_rfc_5322_date_auto_submitted_and_ids_at_the_mail_domain(
    smtp: SmtpServer, system_factory: Any, settings: dict[str, str], domain: str
) -> None:
    system: System = system_factory(smtp.url, **settings)
    owner, _ = system.add_user("alice")
    guest, _ = system.add_user("bob")
    event_id = system.create_event(owner, [system.username(guest)], start=START)
    system.follower.run_once()
    sent_at = time.time()
    await system.mailer().send_due()

    (item,) = smtp.received()
    parsed = item.read().parsed  # mail-parser
    assert RFC_5322_DATE.fullmatch(parsed.headers["Date"]), parsed.headers["Date"]
    assert abs(parsed.date.timestamp() - sent_at) < 60
    assert parsed.headers["Auto-Submitted"] == "auto-generated"
    assert parsed.message_id == f"<{event_id}.1.{guest}.created@{domain}>"
    assert parsed.from_[0][1] == parseaddr(system.settings.mail_from)[1]


async def test_the_sequence_rises_with_time_place_and_cancellations_but_not_a_new_name(
    smtp: SmtpServer, system_factory: Any
) -> None:
    system: System = system_factory(smtp.url)
    (owner, _), (bob, bob_address), (carol, carol_address) = map(
        system.add_user, ("alice", "bob", "carol"))
    both = [system.username(bob), system.username(carol)]
    event_id = system.create_event(owner, both, start=START)
    system.update_event(owner, event_id, name="Standup, renamed")  # v2
    system.update_event(owner, event_id, starting_time=START + HOUR,
                        end_time=START + 2 * HOUR)  # v3
    system.update_event(owner, event_id, location="Haifa Bay")  # v4
    system.update_event(owner, event_id, participants=both[:1])  # v5: carol removed
    system.update_event(owner, event_id, participants=both)  # v6: carol back
    system.delete_event(owner, event_id)  # v7
    system.follower.run_once()
    await system.mailer().send_due()

    received = smtp.received()
    seen = {}
    for item, (by_one, by_other) in zip(received, read_calendars(received), strict=True):
        assert by_one == by_other, item.subject
        assert by_one.uid == event_id
        (attendee,) = by_one.attendees
        assert attendee.value == f"mailto:{item.to}"
        seen[(item.to, item.id_parts()[1])] = (by_one.method, by_one.sequence, by_one.status)
    bob_mail = {version: seen[(bob_address, version)] for version in range(1, 8)}
    assert bob_mail == {
        1: ("REQUEST", 0, None),
        2: ("REQUEST", 0, None),  # a new name voids no one's answer
        3: ("REQUEST", 1, None),  # a new time does
        4: ("REQUEST", 2, None),  # and so does a new place
        5: ("REQUEST", 3, None),  # someone was sent a cancellation: a revision for all
        6: ("REQUEST", 3, None),
        7: ("CANCEL", 4, "CANCELLED"),  # the whole event: STATUS says so
    }
    carol_mail = {version: found for (to, version), found in seen.items() if to == carol_address}
    assert carol_mail == {
        1: ("REQUEST", 0, None), 2: ("REQUEST", 0, None), 3: ("REQUEST", 1, None),
        4: ("REQUEST", 2, None),
        5: ("CANCEL", 3, None),  # only she is removed: no STATUS (RFC 5546 §3.2.5)
        6: ("REQUEST", 3, None),  # not below her cancellation, so her calendar takes it
        7: ("CANCEL", 4, "CANCELLED"),
    }
    stamps = [by_one.dtstamp for (by_one, _), item in zip(read_calendars(received), received,
                                                         strict=True) if item.to == bob_address]
    assert stamps == sorted(stamps) and len(set(stamps)) == 7


async def test_emails_say_who_invited_you_and_when_in_words_with_the_zone(
    smtp: SmtpServer, system_factory: Any
) -> None:
    system: System = system_factory(smtp.url)
    owner, _ = system.add_user("alice")
    guest, _ = system.add_user("bob")
    alice = system.username(owner)
    event_id = system.create_event(owner, [system.username(guest)], name="Design review",
                                   start=START)
    system.update_event(owner, event_id, starting_time=datetime(2030, 12, 4, 23, 30, tzinfo=UTC),
                        end_time=datetime(2030, 12, 5, 0, 30, tzinfo=UTC))
    system.delete_event(owner, event_id)
    system.follower.run_once()
    await system.mailer().send_due()

    mail = {item.kind: item for item in smtp.received()}
    texts = {kind: item.read().parsed.text_plain[0].replace("\r\n", "\n")
             for kind, item in mail.items()}
    pages = {kind: item.read().parsed.text_html[0] for kind, item in mail.items()}
    assert mail["created"].subject == (
        'Invitation: "Design review" on Tuesday 3 December 2030, 18:00 UTC')
    assert texts["created"].startswith(f'{alice} invited you to "Design review".\n')
    assert "When:  Tuesday 3 December 2030, 18:00–19:00 UTC\n" in texts["created"]
    assert f"Organiser: {alice}\n" in texts["created"]
    assert texts["updated"].startswith(f'{alice} changed "Design review".\n')
    moved = "Wednesday 4 December 2030, 23:30 – Thursday 5 December 2030, 00:30 UTC"
    assert f"When:  {moved}\n" in texts["updated"]
    assert "  starts: Wednesday 4 December 2030, 23:30 UTC\n" in texts["updated"]
    assert "  ends: Thursday 5 December 2030, 00:30 UTC\n" in texts["updated"]
    assert texts["deleted"].startswith(f'{alice} cancelled "Design review".\n')
    for kind, text in texts.items():
        assert "2030-12-0" not in text and "T18:00" not in text, kind  # no raw ISO instants
        for line in text.splitlines():
            if line.strip():
                assert f"<p>{html.escape(line)}</p>" in pages[kind], (kind, line)


async def test_an_email_made_before_its_organiser_was_erased_is_made_again_without_the_name(
    system_factory: Any
) -> None:
    system: System = system_factory(None)
    (owner, _), (guest, _) = map(system.add_user, ("owner", "guest"))
    owner_name = system.username(owner)
    system.create_event(owner, [system.username(guest)], start=START)
    system.follower.run_once()

    # the email is made naming the owner, who is erased before it is written
    delivered, mailer = pass_racing_an_erasure(system, owner)
    assert delivered == 0
    outbox = system.settings.outbox_dir
    assert not list(outbox.rglob("*.eml"))
    system.clock.advance(1.5)
    assert await mailer.send_due() == 1

    (path,) = outbox.rglob("*.eml")
    email = read_email(path.read_bytes())
    assert owner_name.encode() not in email.raw
    assert email.text("text/plain").startswith('The organiser invited you to "Standup".')
    (event,) = by_vobject(email.inline_calendar)
    assert event.organizer == Address("mailto:events@localhost")


# ---------------------------------------------------------------------------------------------
# never lost: SMTP outage, consumer crash, backoff


async def test_an_smtp_outage_loses_nothing_and_delivery_resumes_when_the_server_is_back(
    smtp: SmtpServer, system_factory: Any
) -> None:
    system: System = system_factory(smtp.url)
    owner, _ = system.add_user("owner")
    guests = [system.add_user("guest") for _ in range(3)]
    invitee_address = f"outsider_{uuid.uuid4().hex[:6]}@outside.example"
    everyone = [system.username(g) for g, _ in guests] + [invitee_address]
    first = system.create_event(owner, everyone, name="First")
    second = system.create_event(owner, everyone[:2], name="Second")
    system.update_event(owner, second, participants=everyone[1:])
    third = system.create_event(owner, everyone[2:], name="Third")
    system.delete_event(owner, third)
    system.follower.run_once()
    mailer = system.mailer()
    expected = {as_sent(row["message_id"]) for row in system.outbox_rows()}
    # first: 4 created; second: 2 created, 4 updated (3 current + 1 removed); third: 2 + 2
    assert len(expected) == 14

    smtp.stop()
    assert await mailer.send_due() == 0
    rows = system.outbox_rows()
    assert len(rows) == 14
    assert all(row["done_at"] is None for row in rows)
    assert all(row["attempts"] == 1 for row in rows)
    assert all(row["next_attempt"] > system.clock() for row in rows)
    # Not due yet: a pass at the same instant tries nothing.
    assert await mailer.send_due() == 0
    assert all(row["attempts"] == 1 for row in system.outbox_rows())

    smtp.start()
    system.clock.advance(1.5)
    assert await mailer.send_due() == 14

    received = smtp.received()
    assert {r.message_id for r in received} == expected
    assert all(row["done_at"] is not None and row["outcome"] == "sent"
               for row in system.outbox_rows())
    assert_duplicates_only_by_message_id(received)
    assert {r.id_parts()[0] for r in received} == {first, second, third}


async def test_a_mail_consumer_that_crashes_between_batches_resumes_without_losing_mail(
    smtp: SmtpServer, system_factory: Any
) -> None:
    before_crash: System = system_factory(smtp.url)
    owner, _ = before_crash.add_user("owner")
    guest, _ = before_crash.add_user("guest")
    invitee_address = f"outsider_{uuid.uuid4().hex[:6]}@outside.example"
    participants = [before_crash.username(guest), invitee_address]
    events = [before_crash.create_event(owner, participants, name=f"Event {n}")
              for n in range(4)]
    before_crash.update_event(owner, events[0], location="Haifa Bay")
    log = Log(before_crash.app.recorder, before_crash.app.mapper)
    # The consumer gets through one batch (two registrations, two creations, and the owner's
    # Ownership facts among them), delivers what it queued, then dies.
    created = [count for count, (_, fact) in enumerate(log.read(0, 100), start=1)
               if isinstance(fact, Event.Created)]
    batch = created[1]
    assert catch_up_batch(before_crash.db, log, MailQueue(), batch)[0] == batch
    assert await before_crash.mailer().send_due() == 4
    before_crash.close()

    after_crash: System = system_factory(smtp.url)
    after_crash.delete_event(owner, events[1])
    after_crash.follower.run_once()
    await after_crash.mailer().send_due()

    received = smtp.received()
    expected = {as_sent(row["message_id"]) for row in after_crash.outbox_rows()}
    # 4 creations x 2, one update x 2, one deletion x 2
    assert len(expected) == 12
    assert sorted(r.message_id for r in received) == sorted(expected)
    assert all(row["outcome"] == "sent" for row in after_crash.outbox_rows())
    assert_duplicates_only_by_message_id(received)


async def test_failed_deliveries_back_off_one_then_two_then_four_seconds(
    system_factory: Any
) -> None:
    nobody_listens = f"smtp://127.0.0.1:{free_port()}"
    system: System = system_factory(nobody_listens)
    owner, _ = system.add_user("owner")
    guest, _ = system.add_user("guest")
    system.create_event(owner, [system.username(guest)])
    system.follower.run_once()
    mailer = system.mailer()

    waits = []
    for attempt in (1, 2, 3):
        tried_at = system.clock()
        assert await mailer.send_due() == 0
        (row,) = system.outbox_rows()
        assert row["attempts"] == attempt
        assert row["done_at"] is None
        assert row["outcome"].startswith("retrying")
        waits.append(row["next_attempt"] - tried_at)
        # Just before the retry is due nothing is tried; at the due instant it is.
        system.clock.now = row["next_attempt"] - 0.01
        assert await mailer.send_due() == 0
        assert system.outbox_rows()[0]["attempts"] == attempt
        system.clock.now = row["next_attempt"]
    assert waits == [pytest.approx(1.0), pytest.approx(2.0), pytest.approx(4.0)]


async def test_a_delivery_pass_sends_its_messages_over_one_smtp_connection(
    smtp: SmtpServer, system_factory: Any
) -> None:
    system: System = system_factory(smtp.url)
    owner, _ = system.add_user("owner")
    guests = [system.username(system.add_user("guest")[0]) for _ in range(4)]
    event_id = system.create_event(owner, guests)
    system.follower.run_once()
    mailer = system.mailer()
    assert await mailer.send_due() == 4
    system.update_event(owner, event_id, location="Haifa Bay")
    system.follower.run_once()
    assert await mailer.send_due() == 4

    received = smtp.received()
    # one connection per pass: the first closed when its pass ended
    assert [r.connection for r in received] == [0] * 4 + [1] * 4
    assert [r.kind for r in received] == ["created"] * 4 + ["updated"] * 4
    assert_duplicates_only_by_message_id(received)


async def test_a_server_that_hangs_up_after_each_message_still_gets_the_whole_pass_once(
    smtp: SmtpServer, system_factory: Any
) -> None:
    smtp.inbox.hang_up = True
    system: System = system_factory(smtp.url)
    owner, _ = system.add_user("owner")
    guests = [system.add_user("guest") for _ in range(3)]
    system.create_event(owner, [system.username(g) for g, _ in guests])
    system.follower.run_once()

    assert await system.mailer().send_due() == 3

    received = smtp.received()
    assert sorted(r.to for r in received) == sorted(address for _, address in guests)
    assert [r.connection for r in received] == [0, 1, 2]
    assert all(row["outcome"] == "sent" and row["attempts"] == 0
               for row in system.outbox_rows())


async def test_an_event_name_with_a_line_break_neither_stops_nor_loses_any_mail(
    smtp: SmtpServer, system_factory: Any
) -> None:
    system: System = system_factory(smtp.url)
    owner, _ = system.add_user("owner")
    guest, _ = system.add_user("guest")
    # The API accepts any text up to 200 characters as a name, line breaks included.
    odd = system.create_event(owner, [system.username(guest)], name="Kick-off\nday two")
    plain = system.create_event(owner, [system.username(guest)], name="Plain")
    system.follower.run_once()
    mailer = system.mailer()
    stopped = threading.Event()
    running = asyncio.create_task(mailer.run(stopped, interval=0.05))
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline and len(smtp.received()) < 2 and not running.done():
            await asyncio.sleep(0.05)
        delivery_died = running.exception() if running.done() else None
    finally:
        stopped.set()
        if not running.done():
            await asyncio.wait_for(running, 5)

    arrived = {r.id_parts()[0] for r in smtp.received()}
    assert delivery_died is None, f"the mail loop died: {delivery_died!r}"
    assert plain in arrived, "mail queued after the odd event was never sent"
    assert odd in arrived, "the odd event's invitation was lost"
    assert all("\n" not in r.subject for r in smtp.received())


# ---------------------------------------------------------------------------------------------
# erasure, the dev outbox, SMTP URLs


async def test_a_recipient_erased_before_delivery_is_dropped_and_never_written_to(
    smtp: SmtpServer, system_factory: Any
) -> None:
    system: System = system_factory(smtp.url)
    owner, _ = system.add_user("owner")
    erased, erased_address = system.add_user("erased")
    kept, kept_address = system.add_user("kept")
    event_id = system.create_event(owner, [system.username(erased), system.username(kept)])
    system.follower.run_once()

    system.people.erase(erased)
    await system.mailer().send_due()

    assert [r.to for r in smtp.received()] == [kept_address]
    rows = {row["person_id"]: row for row in system.outbox_rows()}
    assert rows[erased]["outcome"].startswith("dropped")
    assert rows[erased]["done_at"] is not None
    assert rows[kept]["outcome"] == "sent"
    assert all(erased_address not in r.message.as_string() for r in smtp.received())
    assert rows[erased]["message_id"] == outbox_key(event_id, 1, erased, "created")


async def test_the_dev_outbox_writes_one_eml_file_per_message_under_the_recipients_folder(
    system_factory: Any
) -> None:
    system: System = system_factory(None)
    assert isinstance(wiring.mailer(system.settings, system.app, system.db).transport,
                      OutboxTransport)
    owner, _ = system.add_user("owner")
    guest, guest_address = system.add_user("guest")
    invitee_address = f"outsider_{uuid.uuid4().hex[:6]}@outside.example"
    event_id = system.create_event(owner, [system.username(guest), invitee_address])
    system.update_event(owner, event_id, name="Renamed")
    system.follower.run_once()
    assert await system.mailer().send_due() == 4

    outbox = system.settings.data_dir / "outbox"
    invitee = system.invitee_id(invitee_address)
    folders = [p.name for p in outbox.iterdir() if not p.name.startswith(".")]
    assert sorted(folders) == sorted([guest, invitee])
    for person, address in ((guest, guest_address), (invitee, invitee_address)):
        files = sorted((outbox / person).glob("*/*.eml"))
        assert len(files) == 2
        parsed = [BytesParser(policy=policy.default).parsebytes(f.read_bytes()) for f in files]
        assert {str(m["To"]) for m in parsed} == {address}
        assert {str(m["Message-ID"]) for m in parsed} == {
            message_id(event_id, 1, person, "created"), message_id(event_id, 2, person, "updated"),
        }
        for message in parsed:
            assert isinstance(message, EmailMessage)
            assert message.get_body(("plain",)) is not None


async def test_the_dev_outbox_looks_a_passs_recipients_up_in_one_statement(
    system_factory: Any
) -> None:
    """Under its lock the dev outbox looks up whether each person a message names still
    exists: a pass's recipients together, with its first message (one statement each was
    most of the mailer's statements on PostgreSQL), and an organiser when first named."""
    system: System = system_factory(None)
    owner, _ = system.add_user("owner")
    guests = [system.add_user(f"guest{n}")[0] for n in range(5)]
    system.create_event(owner, [system.username(guest) for guest in guests])
    system.follower.run_once()
    asked: list[set[str]] = []

    def addresses(person_ids: Iterable[str]) -> dict[str, str]:
        asked.append(set(person_ids))
        return system.people.addresses(asked[-1])

    transport = OutboxTransport(system.settings.outbox_dir, addresses)
    assert await system.mailer(transport=transport).send_due() == 5
    assert asked[0] == set(guests), asked
    assert asked[1:] in ([], [{owner}]), asked
    assert len(list(system.settings.outbox_dir.glob("*/*/*.eml"))) == 5


async def test_a_delivery_waits_for_an_erasure_holding_the_outbox_lock_and_then_writes_nothing(
    system_factory: Any
) -> None:
    system: System = system_factory(None)
    owner, _ = system.add_user("owner")
    erased, _ = system.add_user("erased")
    kept, _ = system.add_user("kept")
    system.create_event(owner, [system.username(erased), system.username(kept)])
    system.follower.run_once()

    assert pass_racing_an_erasure(system, erased)[0] == 1

    outbox = system.settings.outbox_dir
    assert not (outbox / erased).exists()
    assert len(list((outbox / kept).glob("*/*.eml"))) == 1
    rows = {row["person_id"]: row["outcome"] for row in system.outbox_rows()}
    assert rows[kept] == "sent" and rows[erased].startswith("dropped")
    # A pass keeps the lock file open, yet between passes erasure finds it free.
    erase_outbox(outbox, kept)
    assert not (outbox / kept).exists()


async def test_erasing_a_person_removes_every_email_to_them_or_about_their_events(
    system_factory: Any
) -> None:
    system: System = system_factory(None)
    owner, _ = system.add_user("owner")
    erased, erased_address = system.add_user("erased")
    kept, _ = system.add_user("kept")
    erased_name = system.username(erased)
    system.create_event(owner, [erased_name, system.username(kept)])
    system.create_event(owner, [system.username(kept)])
    theirs = system.create_event(erased, [system.username(kept)])  # names them as organiser
    system.update_event(erased, theirs, location="Haifa Bay")
    system.follower.run_once()
    await system.mailer().send_due()
    outbox = system.settings.outbox_dir
    assert erased_address.encode() in next((outbox / erased).glob("*/*.eml")).read_bytes()
    assert len(list((outbox / kept / erased).glob("*.eml"))) == 2
    assert len(list((outbox / kept / owner).glob("*.eml"))) == 2

    system.people.erase(erased)
    erase_outbox(outbox, erased)

    assert not (outbox / erased).exists()
    # emails count participants rather than name them, so kept's other emails stay and hold
    # no trace; those about the erased person's events, which named them, are gone
    assert [p.relative_to(outbox).parts[:2] for p in outbox.rglob("*.eml")] == [(kept, owner)] * 2
    for path in outbox.rglob("*"):
        if path.is_file():
            assert erased_address.encode() not in path.read_bytes()
            assert erased_name.encode() not in path.read_bytes()
    erase_outbox(outbox, erased)  # erasing twice is harmless


def test_an_smtp_url_with_credentials_port_and_starttls_is_understood() -> None:
    options = SmtpTransport("smtp://mail%40user:p%40ss@mail.example:2525?starttls=true").options
    assert options["hostname"] == "mail.example"
    assert options["port"] == 2525
    assert options["username"] == "mail@user"
    assert options["password"] == "p@ss"
    assert options["start_tls"] is True
    assert options["use_tls"] is False


def test_an_smtps_url_uses_implicit_tls_on_port_465() -> None:
    options = SmtpTransport("smtps://mail.example").options
    assert options["hostname"] == "mail.example"
    assert options["port"] == 465
    assert options["use_tls"] is True
    assert options["start_tls"] is False
    assert options["username"] is None and options["password"] is None


def test_a_plain_smtp_url_without_a_port_uses_port_25_without_tls() -> None:
    options = SmtpTransport("smtp://127.0.0.1").options
    assert (options["port"], options["use_tls"], options["start_tls"]) == (25, False, False)


@pytest.mark.parametrize("url", ["http://mail.example:25", "mail.example:25", "smtp://",
                                 "smtp:///nohost"])
def test_an_unusable_smtp_url_is_refused_with_a_message_naming_the_setting(url: str) -> None:
    with pytest.raises(ValueError, match="ALPHABET_SMTP_URL"):
        SmtpTransport(url)


# ---------------------------------------------------------------------------------------------
# replay


def queue_rows(db: StateDatabase) -> list[tuple[Any, ...]]:
    return [values(r) for r in db.connection().execute(
        "SELECT message_id, event_id, version, person_id, kind, changes, position "
        "FROM mail_outbox ORDER BY message_id")]


async def test_replaying_the_mail_queue_gives_the_same_messages_as_the_live_one(
    smtp: SmtpServer, system_factory: Any
) -> None:
    system: System = system_factory(smtp.url)
    owner, _ = system.add_user("owner")
    guests = [system.username(system.add_user("guest")[0]) for _ in range(3)]
    invitee_address = f"outsider_{uuid.uuid4().hex[:6]}@outside.example"
    first = system.create_event(owner, [*guests, invitee_address])
    second = system.create_event(owner, guests[:1])
    system.update_event(owner, first, participants=guests[1:])
    system.update_event(owner, second, name="Renamed", participants=[invitee_address])
    system.delete_event(owner, first)
    system.follower.run_once()
    live = queue_rows(system.db)
    live_people = list(system.db.connection().execute(
        "SELECT * FROM mail_events ORDER BY event_id").fetchall())

    replay(system.db, Log(system.app.recorder, system.app.mapper), MailQueue())

    assert len(live) > 10
    assert queue_rows(system.db) == live
    assert [values(r) for r in system.db.connection().execute(
        "SELECT * FROM mail_events ORDER BY event_id")] == [values(r) for r in live_people]


async def test_replaying_the_mail_queue_does_not_send_already_delivered_mail_again(
    smtp: SmtpServer, system_factory: Any
) -> None:
    system: System = system_factory(smtp.url)
    owner, _ = system.add_user("owner")
    guest, _ = system.add_user("guest")
    event_id = system.create_event(owner, [system.username(guest)])
    system.delete_event(owner, event_id)
    system.follower.run_once()
    mailer = system.mailer()
    assert await mailer.send_due() == 2
    delivered = {r["message_id"]: r["done_at"] for r in system.outbox_rows()}

    system.clock.advance(60)
    replay(system.db, Log(system.app.recorder, system.app.mapper), MailQueue())
    await mailer.send_due()

    # The rebuilt queue must equal the live one (SPEC §5), delivery state included: a replay
    # that forgets what was sent mails every participant of every event ever again.
    assert len(smtp.received()) == 2
    assert {r["message_id"]: r["done_at"] for r in system.outbox_rows()} == delivered
