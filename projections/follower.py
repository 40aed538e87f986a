"""Following the notification log: each view applies a batch of facts and records the new
position in the same transaction, so a crash can neither skip a fact nor apply one twice."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from eventsourcing.persistence import ApplicationRecorder, Mapper

from projections.database import StateDatabase

log = logging.getLogger(__name__)

Fact = Any  # a domain event decoded from the notification log


class View(Protocol):
    """A read model: the tables it owns (created under an optional suffix, for a rebuild beside
    the live ones) and how each fact changes them."""

    name: str
    tables: Sequence[str]

    def schema(self, suffix: str = "") -> list[str]: ...

    def indexes(self, suffix: str = "") -> dict[str, str]: ...

    def apply(self, conn: sqlite3.Connection, position: int, fact: Fact, suffix: str = "") -> None:
        ...


def create(conn: sqlite3.Connection, view: View, suffix: str = "") -> None:
    """Create a view's tables and indexes (inside the caller's transaction)."""
    for statement in view.schema(suffix):
        conn.execute(statement)
    for name, definition in view.indexes(suffix).items():
        conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")


class Log:
    """The store's notification log, read in bulk (the library's own log pages hold only 10)."""

    def __init__(self, recorder: ApplicationRecorder, mapper: Mapper[Any]) -> None:
        self.recorder = recorder
        self.mapper = mapper

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    def read(self, after: int, limit: int) -> list[tuple[int, Fact]]:
        notifications = self.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        return [(n.id, self.mapper.to_domain_event(n)) for n in notifications]


def position(conn: sqlite3.Connection, view: str) -> int:
    row = conn.execute("SELECT position FROM tracking WHERE view = ?", (view,)).fetchone()
    return int(row[0]) if row else 0


def set_position(conn: sqlite3.Connection, view: str, at: int) -> None:
    conn.execute(
        "INSERT INTO tracking VALUES (?, ?) ON CONFLICT(view) DO UPDATE SET position = ?",
        (view, at, at),
    )


def catch_up_batch(db: StateDatabase, log_: Log, view: View, batch: int, suffix: str = "",
                   tracking: str | None = None) -> int:
    """Apply the next batch of facts to one view; returns how many were applied. The position is
    read inside the write transaction, so two followers of one view never apply a fact twice."""
    tracking = tracking or view.name
    with db.write() as conn:
        at = position(conn, tracking)
        facts = log_.read(at, batch)
        for pos, fact in facts:
            view.apply(conn, pos, fact, suffix)
        if facts:
            set_position(conn, tracking, facts[-1][0])
    return len(facts)


class Follower:
    """Keeps views current: catches up in large batches, then waits for the next fact. A writer
    in the same process wakes it at once (`wake`); otherwise it polls briefly."""

    def __init__(
        self,
        db: StateDatabase,
        log_: Log,
        views: Sequence[View],
        *,
        batch: int = 1000,
        poll_seconds: float = 0.01,
        on_batch: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.log = log_
        self.views = views
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.on_batch = on_batch
        self._woken = threading.Event()
        self._stopped = threading.Event()

    def wake(self) -> None:
        self._woken.set()

    def stop(self) -> None:
        self._stopped.set()
        self._woken.set()

    def run_once(self) -> int:
        """Bring every view up to the log's head; a cheap read first, so an idle poll never
        takes the write lock."""
        head = self.log.head()
        applied = 0
        for view in self.views:
            while position(self.db.connection(), view.name) < head:
                applied += catch_up_batch(self.db, self.log, view, self.batch)
        if applied and self.on_batch:
            self.on_batch()
        return applied

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.run_once()
            except sqlite3.OperationalError:
                log.exception("view update failed; retrying")
                time.sleep(1)
            self._woken.wait(self.poll_seconds)
            self._woken.clear()
