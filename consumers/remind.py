"""Reminders: a tracked follower keeps one row per live event with when its reminder falls due
(ALPHABET_REMINDER_MINUTES before the start; moved when the event moves, gone when it is
deleted), and a scheduler records a Reminder.Due fact when the time comes. The fact is what
mails and notifies, like any other change.

A series has one reminder per occurrence. The view keeps its id and version (reminder_series):
when each occurrence falls due is a question of the rule and the clock, which the scheduler
asks the series itself (EventsApplication.series_reminders), again only when the series
changes or its next reminder's time comes."""

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

    def __init__(self, table: str, series: str) -> None:
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
        self.series = series
        self.create_series = f"""CREATE TABLE IF NOT EXISTS {series} (
            event_id TEXT PRIMARY KEY,
            version BIGINT NOT NULL
        )"""
        self.recurs = (f"INSERT INTO {series} VALUES (?, ?) ON CONFLICT(event_id) DO UPDATE "
                       "SET version = excluded.version")
        self.changed = f"UPDATE {series} SET version = ? WHERE event_id = ?"
        self.single = f"DELETE FROM {series} WHERE event_id = ?"


class RemindersView:
    name = "reminders"

    def __init__(self, minutes: int, place: Place = LIVE) -> None:
        self.minutes = minutes
        self.before = timedelta(minutes=minutes)
        self.place = place
        self.sql = RemindersSql(place("reminders"), place("reminder_series"))
        self.tables: Sequence[str] = (self.sql.table, self.sql.series)

    def at(self, place: Place) -> RemindersView:
        return RemindersView(self.minutes, place)

    def schema(self) -> list[str]:
        return [self.sql.create, self.sql.create_series]

    def indexes(self) -> dict[str, str]:
        return self.sql.indexes

    def apply(self, conn: Connection, position: int, fact: Any) -> None:
        match fact:
            case Event.Created():
                self._schedule(conn, str(fact.originator_id), fact.starting_time)
                if fact.recurrence:  # a new single event has no series' row to remove
                    self._recurs(conn, fact, fact.recurrence)
            case Event.Updated():
                if "starting_time" in fact.changes:
                    self._schedule(conn, str(fact.originator_id), fact.changes["starting_time"])
                self._recurs(conn, fact, fact.changes.get("recurrence"))
            case Event.OccurrenceChanged() | Event.OccurrenceCancelled():
                self._recurs(conn, fact, None)
            case Event.Deleted():
                conn.execute(self.sql.forget, (str(fact.originator_id),))
                conn.execute(self.sql.single, (str(fact.originator_id),))
            case Reminder.Due():
                conn.execute(self.sql.fired, (fact.event_id, instant(fact.starting_time)))
            case _:
                pass

    def _recurs(self, conn: Connection, fact: Any, recurrence: Sequence[str] | None) -> None:
        """A series' row, at the fact's version; None: the fact does not say whether it
        recurs (a series' row, if any, takes the version)."""
        event_id, version = str(fact.originator_id), fact.originator_version
        if recurrence is None:
            conn.execute(self.sql.changed, (version, event_id))
        elif recurrence:
            conn.execute(self.sql.recurs, (event_id, version))
        else:
            conn.execute(self.sql.single, (event_id,))

    def _schedule(self, conn: Connection, event_id: str, start: datetime) -> None:
        conn.execute(self.sql.schedule,
                     (event_id, instant(start), instant(start - self.before)))


RecordReminder = Callable[[UUID, datetime, datetime], Written]
# (series id, now) → the starts whose reminders are due now, and when the next falls due
SeriesReminders = Callable[[UUID, datetime], tuple[list[datetime], datetime | None]]


class Scheduler:
    """Records the reminders that are due and whose event has not started. The store refuses a
    second Reminder for the same (event, start), so a restart or a second scheduler is safe."""

    def __init__(self, db: Database, record: RecordReminder, clock: Callable[[], datetime],
                 wake: Callable[[], None] = lambda: None, interval: float = 1.0,
                 leading: Callable[[], bool] = lambda: True,
                 faults: Faults | None = None,
                 series: SeriesReminders = lambda event_id, now: ([], None)) -> None:
        self.db = db
        self.record = record
        self.series = series
        # series id → (the version asked about, when to ask again)
        self.asked: dict[str, tuple[int, datetime | None]] = {}
        self.clock = clock
        self.wake = wake
        self.interval = interval
        self.leading = leading
        self.backoff = Backoff("reminder clock", faults)
        self.stopped = threading.Event()

    def due(self) -> list[tuple[UUID, datetime]]:
        clock = self.clock()
        now = instant(clock)
        conn = self.db.connection()
        rows = conn.execute(
            "SELECT event_id, starting_time FROM reminders WHERE due_at <= ? AND starting_time > ? "
            "AND event_id NOT IN (SELECT event_id FROM reminder_series)",
            (now, now),
        ).fetchall()
        found = [(UUID(r["event_id"]), datetime.fromisoformat(r["starting_time"])) for r in rows]
        series = {r["event_id"]: r["version"]
                  for r in conn.execute("SELECT event_id, version FROM reminder_series")}
        for event_id in set(self.asked) - set(series):
            del self.asked[event_id]
        for event_id, version in series.items():
            asked = self.asked.get(event_id)
            if asked is not None and asked[0] == version and (asked[1] is None
                                                              or asked[1] > clock):
                continue
            starts, later = self.series(UUID(event_id), clock)
            self.asked[event_id] = (version, later)
            found += [(UUID(event_id), start) for start in starts]
        return found

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
