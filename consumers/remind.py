"""Reminders: a tracked follower keeps one row per live event with when its reminder falls due
(ALPHABET_REMINDER_MINUTES before the start; moved when the event moves, gone when it is
deleted), and a scheduler records a Reminder.Due fact when the time comes. The fact is what
mails and notifies, like any other change."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from domain.events import Event
from domain.presentation import instant
from domain.reminders import Reminder
from domain.storage import LIVE, Connection, Database, Place
from domain.writing import Written
from projections.faults import Backoff, Faults

log = logging.getLogger(__name__)


class RemindersSql:
    """The reminders view's statements, made once from its table's name at its place."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.create = f"""CREATE TABLE IF NOT EXISTS {table} (
            event_id TEXT PRIMARY KEY,
            starting_time TEXT NOT NULL,
            due_at TEXT NOT NULL
        )"""
        self.indexes = {f"{table}_due": f"{table} (due_at)"}
        self.schedule = (f"INSERT INTO {table} VALUES (?, ?, ?) ON CONFLICT(event_id) DO UPDATE "
                         "SET starting_time = excluded.starting_time, due_at = excluded.due_at")
        self.forget = f"DELETE FROM {table} WHERE event_id = ?"
        self.fired = f"DELETE FROM {table} WHERE event_id = ? AND starting_time = ?"


class RemindersView:
    name = "reminders"

    def __init__(self, minutes: int, place: Place = LIVE) -> None:
        self.minutes = minutes
        self.before = timedelta(minutes=minutes)
        self.place = place
        self.sql = RemindersSql(place("reminders"))
        self.tables: Sequence[str] = (self.sql.table,)

    def at(self, place: Place) -> RemindersView:
        return RemindersView(self.minutes, place)

    def schema(self) -> list[str]:
        return [self.sql.create]

    def indexes(self) -> dict[str, str]:
        return self.sql.indexes

    def apply(self, conn: Connection, position: int, fact: Any) -> None:
        match fact:
            case Event.Created():
                self._schedule(conn, str(fact.originator_id), fact.starting_time)
            case Event.Updated() if "starting_time" in fact.changes:
                self._schedule(conn, str(fact.originator_id), fact.changes["starting_time"])
            case Event.Deleted():
                conn.execute(self.sql.forget, (str(fact.originator_id),))
            case Reminder.Due():
                conn.execute(self.sql.fired, (fact.event_id, instant(fact.starting_time)))
            case _:
                pass

    def _schedule(self, conn: Connection, event_id: str, start: datetime) -> None:
        conn.execute(self.sql.schedule,
                     (event_id, instant(start), instant(start - self.before)))


RecordReminder = Callable[[UUID, datetime, datetime], Written]


class Scheduler:
    """Records the reminders that are due and whose event has not started. The store refuses a
    second Reminder for the same (event, start), so a restart or a second scheduler is safe."""

    def __init__(self, db: Database, record: RecordReminder, clock: Callable[[], datetime],
                 wake: Callable[[], None] = lambda: None, interval: float = 1.0,
                 leading: Callable[[], bool] = lambda: True,
                 faults: Faults | None = None) -> None:
        self.db = db
        self.record = record
        self.clock = clock
        self.wake = wake
        self.interval = interval
        self.leading = leading
        self.backoff = Backoff("reminder clock", faults)
        self.stopped = threading.Event()

    def due(self) -> list[tuple[UUID, datetime]]:
        now = instant(self.clock())
        rows = self.db.connection().execute(
            "SELECT event_id, starting_time FROM reminders WHERE due_at <= ? AND starting_time > ?",
            (now, now),
        ).fetchall()
        return [(UUID(r["event_id"]), datetime.fromisoformat(r["starting_time"])) for r in rows]

    def run_once(self) -> int:
        recorded = 0
        for event_id, start in self.due():
            if self.record(event_id, start, self.clock()).position is not None:
                recorded += 1
        if recorded:
            self.wake()
        return recorded

    def run(self) -> None:
        """Supervised: a failed check is retried after a backoff, its fault recorded."""
        while not self.stopped.is_set():
            try:
                if self.leading():  # a standby leaves the holder's fault alone
                    self.run_once()
                    self.backoff.succeeded()
            except Exception as exc:
                self.stopped.wait(self.backoff.failed(exc))
                continue
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
