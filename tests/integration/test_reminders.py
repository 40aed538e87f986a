"""Reminders on real SQLite files with an injected clock: the reminders view (fed by the real
follower from a real event store) and the Scheduler record one Reminder.Due fact when an event's
reminder time comes — once, whoever runs, moved with the event, never for a deleted or started
event — and the fact flows to the mail queue as reminder emails to the participants."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from alphabet import wiring
from alphabet.settings import Settings
from consumers.remind import RemindersView, Scheduler
from domain.events import Event
from domain.presentation import instant
from domain.reminders import Reminder
from projections.follower import Log
from tests.conftest import BACKENDS, fresh
from tests.integration.test_mail import SmtpServer, System, message_id
from tests.mail_clients import by_vobject

SECOND = timedelta(seconds=1)


class FakeClock:
    """A mutable "now" for the scheduler."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(params=BACKENDS)
def systems(data_dir: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Systems on one backend of each kind (those built in one test share it, as processes
    share one store)."""
    built: list[System] = []
    with fresh(request.param) as backend:

        def build(smtp_url: str | None = None, reminder_minutes: int = 30) -> System:
            system = System.build(data_dir, smtp_url, reminder_minutes=reminder_minutes,
                                  backend=backend)
            built.append(system)
            return system

        yield build
        for system in built:
            system.close()


def reminders(system: System) -> list[Reminder.Due]:
    facts = Log(system.app.recorder, system.app.mapper).read(0, 10_000)
    return [fact for _, fact in facts if isinstance(fact, Reminder.Due)]


def start_of(system: System, event_id: str) -> datetime:
    start: datetime = system.app.get_event(uuid.UUID(event_id)).starting_time
    return start


def scheduler(system: System, clock: FakeClock) -> Scheduler:
    return Scheduler(system.db, system.app.record_reminder, clock, system.follower.wake)


# ---------------------------------------------------------------------------------------------


def test_a_reminder_is_recorded_once_thirty_minutes_before_the_start(systems: Any) -> None:
    system: System = systems()
    owner, _ = system.add_user("owner")
    event_id = system.create_event(owner, [], starts_in=timedelta(hours=2))
    start = start_of(system, event_id)
    system.follower.run_once()
    clock = FakeClock(datetime.now(UTC))
    reminding = scheduler(system, clock)

    row = system.db.connection().execute(
        "SELECT due_at FROM reminders WHERE event_id = ?", (event_id,)).fetchone()
    assert row["due_at"] == instant(start - timedelta(minutes=30))
    assert reminding.run_once() == 0
    clock.set(start - timedelta(minutes=30) - SECOND)
    assert reminding.run_once() == 0
    assert reminders(system) == []

    clock.set(start - timedelta(minutes=30) + SECOND)
    assert reminding.run_once() == 1

    (due,) = reminders(system)
    assert due.event_id == event_id
    assert due.starting_time == start


def test_a_reminder_is_recorded_only_once_however_often_and_by_however_many_schedulers(
    systems: Any
) -> None:
    system: System = systems()
    owner, _ = system.add_user("owner")
    event_id = system.create_event(owner, [], starts_in=timedelta(hours=1))
    start = start_of(system, event_id)
    system.follower.run_once()
    clock = FakeClock(start - timedelta(minutes=10))
    first = scheduler(system, clock)
    other_process = systems()  # a second process over the same files
    second = Scheduler(other_process.db, other_process.app.record_reminder, clock)

    assert first.run_once() == 1
    # Before the view has seen the fact the row is still there: the store refuses the repeat.
    assert first.run_once() == 0
    assert second.run_once() == 0
    system.follower.run_once()
    assert first.run_once() == 0
    assert second.run_once() == 0
    clock.set(start - SECOND)
    assert second.run_once() == 0

    assert len(reminders(system)) == 1
    assert system.db.connection().execute(
        "SELECT count(*) AS n FROM reminders").fetchone()["n"] == 0


def test_a_moved_event_is_reminded_at_its_new_time_and_not_at_the_old_one(
    systems: Any
) -> None:
    system: System = systems()
    owner, _ = system.add_user("owner")
    event_id = system.create_event(owner, [], starts_in=timedelta(hours=2))
    old_start = start_of(system, event_id)
    new_start = old_start + timedelta(hours=3)
    system.update_event(owner, event_id, starting_time=new_start,
                        end_time=new_start + timedelta(hours=1))
    system.follower.run_once()
    clock = FakeClock(old_start - timedelta(minutes=30) + SECOND)
    reminding = scheduler(system, clock)

    assert reminding.run_once() == 0
    clock.set(old_start - SECOND)
    assert reminding.run_once() == 0
    assert reminders(system) == []

    clock.set(new_start - timedelta(minutes=30) + SECOND)
    assert reminding.run_once() == 1
    (due,) = reminders(system)
    assert due.starting_time == new_start


def test_an_event_moved_after_its_reminder_fired_is_reminded_again_for_the_new_time(
    systems: Any
) -> None:
    system: System = systems()
    owner, _ = system.add_user("owner")
    event_id = system.create_event(owner, [], starts_in=timedelta(hours=2))
    old_start = start_of(system, event_id)
    system.follower.run_once()
    clock = FakeClock(old_start - timedelta(minutes=20))
    reminding = scheduler(system, clock)
    assert reminding.run_once() == 1
    system.follower.run_once()

    new_start = old_start + timedelta(days=1)
    system.update_event(owner, event_id, starting_time=new_start,
                        end_time=new_start + timedelta(hours=1))
    system.follower.run_once()
    assert reminding.run_once() == 0
    clock.set(new_start - timedelta(minutes=20))
    assert reminding.run_once() == 1

    assert [due.starting_time for due in reminders(system)] == [old_start, new_start]


def test_a_deleted_event_gets_no_reminder_even_before_the_view_has_seen_the_deletion(
    systems: Any
) -> None:
    system: System = systems()
    owner, _ = system.add_user("owner")
    seen = system.create_event(owner, [], starts_in=timedelta(hours=2))
    unseen = system.create_event(owner, [], starts_in=timedelta(hours=2))
    start = start_of(system, unseen)
    system.delete_event(owner, seen)
    system.follower.run_once()
    system.delete_event(owner, unseen)  # the reminders view still holds its row
    clock = FakeClock(start - timedelta(minutes=10))
    assert len(scheduler(system, clock).due()) == 1

    assert scheduler(system, clock).run_once() == 0
    system.follower.run_once()
    assert scheduler(system, clock).run_once() == 0
    assert reminders(system) == []
    assert system.db.connection().execute(
        "SELECT count(*) AS n FROM reminders").fetchone()["n"] == 0


def test_an_event_whose_start_has_passed_gets_no_reminder(systems: Any) -> None:
    system: System = systems()
    owner, _ = system.add_user("owner")
    past = system.create_event(owner, [], starts_in=-timedelta(hours=1))
    missed = system.create_event(owner, [], starts_in=timedelta(hours=1))
    system.follower.run_once()
    # The scheduler was down through the reminder time and the start of `missed`.
    clock = FakeClock(start_of(system, missed) + SECOND)

    assert scheduler(system, clock).run_once() == 0
    clock.set(datetime.now(UTC))
    assert scheduler(system, clock).run_once() == 0
    assert reminders(system) == []
    assert past != missed


async def test_a_due_reminder_emails_every_participant_and_nobody_else(
    systems: Any, smtp: SmtpServer
) -> None:
    system: System = systems(smtp.url)
    owner, owner_address = system.add_user("owner")
    guest, guest_address = system.add_user("guest")
    invitee_address = f"outsider_{uuid.uuid4().hex[:6]}@outside.example"
    event_id = system.create_event(owner, [system.username(guest), invitee_address],
                                   name="Launch", starts_in=timedelta(hours=3))
    system.update_event(owner, event_id, location="Haifa Bay")
    system.follower.run_once()
    mailer = system.mailer()
    await mailer.send_due()
    before = len(smtp.received())
    start = start_of(system, event_id)

    assert scheduler(system, FakeClock(start - timedelta(minutes=29))).run_once() == 1
    system.follower.run_once()
    await mailer.send_due()

    sent = smtp.received()[before:]
    invitee = system.invitee_id(invitee_address)
    assert sorted(r.to for r in sent) == sorted([guest_address, invitee_address])
    assert owner_address not in {r.to for r in sent}
    assert {r.message_id for r in sent} == {
        message_id(event_id, 2, guest, "reminder"), message_id(event_id, 2, invitee, "reminder"),
    }
    assert all(r.kind == "reminder" for r in sent)
    assert all(r.subject.startswith('Reminder: "Launch"') for r in sent)
    for item in sent:
        # A reminder is no scheduling message: no invitation card, the event as a plain file
        # (no METHOD, ORGANIZER or ATTENDEE), so no calendar app takes it for a change.
        email = item.read()
        assert "text/calendar" not in email.structure
        assert email.part("application/ics").get_filename() == "event.ics"
        (event,) = by_vobject(email.attached_calendar)
        assert (event.method, event.uid, event.organizer, event.attendees) == (
            None, event_id, None, ())
        assert event.start == start.replace(microsecond=0)  # iCalendar counts in seconds
    # A second follower pass or mail pass sends no second reminder.
    system.follower.run_once()
    system.clock.advance(600)
    await mailer.send_due()
    assert len(smtp.received()) == before + 2


def test_the_reminder_lead_time_follows_alphabet_reminder_minutes(
    systems: Any, data_dir: Path
) -> None:
    settings = Settings.from_env({"ALPHABET_DATA_DIR": str(data_dir),
                                  "ALPHABET_REMINDER_MINUTES": "5"})
    assert settings.reminder_minutes == 5
    view = next(v for v in wiring.views(settings) if isinstance(v, RemindersView))
    assert view.before == timedelta(minutes=5)
    system: System = systems(reminder_minutes=settings.reminder_minutes)
    owner, _ = system.add_user("owner")
    event_id = system.create_event(owner, [], starts_in=timedelta(hours=1))
    start = start_of(system, event_id)
    system.follower.run_once()
    clock = FakeClock(start - timedelta(minutes=6))
    reminding = scheduler(system, clock)

    assert reminding.run_once() == 0
    clock.set(start - timedelta(minutes=5) - SECOND)
    assert reminding.run_once() == 0
    clock.set(start - timedelta(minutes=4))
    assert reminding.run_once() == 1
    assert [due.starting_time for due in reminders(system)] == [start]


def test_a_reminders_view_built_with_five_minutes_schedules_five_minutes_ahead() -> None:
    conn = sqlite3.connect(":memory:")
    view = RemindersView(minutes=5)
    for statement in view.schema():
        conn.execute(statement)
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    event = Event.create(owner_id=str(uuid.uuid4()), name="Standup", starting_time=start,
                         end_time=start + timedelta(hours=1), location="Haifa",
                         participants=[])
    (created,) = event.collect_events()

    view.apply(conn, 1, created)

    assert conn.execute("SELECT due_at FROM reminders").fetchone()[0] == instant(
        start - timedelta(minutes=5))


def test_a_series_is_reminded_once_per_occurrence_and_not_for_a_cancelled_one(
        systems: Any) -> None:
    system: System = systems()
    owner, _ = system.add_user("owner")
    guest, _ = system.add_user("guest")
    start = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    day = timedelta(days=1)
    series = system.app.create_event(
        owner_id=owner, name="Daily", starting_time=start, end_time=start + timedelta(hours=1),
        location="Room 1", participants=[guest], recurrence=["RRULE:FREQ=DAILY;COUNT=3"],
    ).aggregate.id
    system.app.cancel_occurrence(series, start + day, by=owner, expected_version=None)
    system.follower.run_once()
    clock = FakeClock(start - timedelta(minutes=31))
    reminding = Scheduler(system.db, system.app.record_reminder, clock, system.follower.wake,
                          series=partial(system.app.series_reminders,
                                         before=timedelta(minutes=30)))

    recorded = []
    for moment in (start - timedelta(minutes=31), start - timedelta(minutes=29),
                   start - timedelta(minutes=28), start + day - timedelta(minutes=29),
                   start + 2 * day - timedelta(minutes=31), start + 2 * day - timedelta(minutes=29),
                   start + 2 * day - timedelta(minutes=1)):
        clock.set(moment)
        recorded.append(reminding.run_once())

    assert recorded == [0, 1, 0, 0, 0, 1, 0]
    facts = reminders(system)
    assert [(fact.starting_time, fact.original_start) for fact in facts] == [
        (start, start), (start + 2 * day, start + 2 * day)]
    assert len({fact.originator_id for fact in facts}) == 2
    system.follower.run_once()
    assert system.db.connection().execute(
        "SELECT event_id FROM reminder_series").fetchall()[0]["event_id"] == str(series)
    # each occurrence's reminder email is its own (its key in the kind, so in the Message-ID)
    kinds = [row["kind"] for row in system.db.connection().execute(
        "SELECT kind FROM mail_outbox WHERE event_id = ? AND kind LIKE 'reminder%' "
        "ORDER BY kind", (str(series),))]
    assert kinds == [f"reminder.{start:%Y%m%dT%H%M%SZ}",
                     f"reminder.{start + 2 * day:%Y%m%dT%H%M%SZ}"]
