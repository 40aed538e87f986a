"""Following the notification log: each view applies a batch of facts and records the new
position in the same transaction, so a crash can neither skip a fact nor apply one twice."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from eventsourcing.persistence import ApplicationRecorder, Mapper

from domain.storage import Connection, Handler, Place
from projections.database import StateDatabase

log = logging.getLogger(__name__)

Fact = Any  # a domain event decoded from the notification log


class View(Handler, Protocol):
    """A read model: a handler of facts (domain.storage.Handler) and the tables it owns, at the
    place it was built for: live, or (`at(REBUILD)`) beside the live ones for a replay."""

    place: Place
    # its tables' names at its place
    tables: Sequence[str]

    def at(self, place: Place) -> View: ...

    def schema(self) -> list[str]: ...

    def indexes(self) -> dict[str, str]: ...


class Leases(Protocol):
    """Whether this process may run a role now (a view's follower, the mailer, ...)."""

    def holds(self, role: str) -> bool: ...


class Alone:
    """The embedded default: one serving process tree per data dir, so every role is ours."""

    def holds(self, role: str) -> bool:
        return True


def statements(view: View) -> list[str]:
    """The DDL of a view's tables and indexes, idempotent."""
    return [*view.schema(), *(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}"
                              for name, definition in view.indexes().items())]


def create(conn: Connection, view: View) -> None:
    """Create a view's tables and indexes (inside the caller's transaction)."""
    for statement in statements(view):
        conn.execute(statement)


def tracked(view: View) -> str:
    """The view's row in the tracking table, at its place (a rebuild keeps its own)."""
    return view.place(view.name)


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


def position(conn: Connection, view: str) -> int:
    row = conn.execute("SELECT position FROM tracking WHERE view = ?", (view,)).fetchone()
    return int(row["position"]) if row else 0


def claim(conn: Connection, view: str) -> int:
    """The view's position, its tracking row locked until the transaction ends: whoever else
    catches up the same view waits here and then reads the position this one leaves. (SQLite's
    BEGIN IMMEDIATE has locked the whole file already; PostgreSQL locks the row.)"""
    row = conn.execute(
        "INSERT INTO tracking VALUES (?, 0) ON CONFLICT(view) DO UPDATE "
        "SET position = tracking.position RETURNING position",
        (view,),
    ).fetchone()
    return int(row["position"])


def set_position(conn: Connection, view: str, at: int) -> None:
    conn.execute(
        "INSERT INTO tracking VALUES (?, ?) ON CONFLICT(view) DO UPDATE SET position = ?",
        (view, at, at),
    )


def catch_up_batch(db: StateDatabase, log_: Log, view: View, batch: int) -> int:
    """Apply the next batch of facts to one view; returns how many were applied. The position is
    claimed inside the write transaction, so two followers of one view never apply a fact
    twice."""
    tracking = tracked(view)
    with db.write() as conn:
        at = claim(conn, tracking)
        facts = log_.read(at, batch)
        for pos, fact in facts:
            view.apply(conn, pos, fact)
        if facts:
            set_position(conn, tracking, facts[-1][0])
    return len(facts)


class Follower:
    """Keeps views current: catches up in large batches, then waits for the next fact. A writer
    in the same process wakes it at once (`wake`), and on PostgreSQL so does every save
    anywhere (LISTEN); otherwise it polls every `poll_seconds`. When instances share the state
    database, it follows only the views whose lease it holds."""

    def __init__(
        self,
        db: StateDatabase,
        log_: Log,
        views: Sequence[View],
        *,
        batch: int = 1000,
        poll_seconds: float = 0.01,
        leases: Leases | None = None,
    ) -> None:
        self.db = db
        self.log = log_
        self.views = views
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.leases = leases or Alone()
        self._woken = threading.Event()
        self._stopped = threading.Event()

    def wake(self) -> None:
        self._woken.set()

    def stop(self) -> None:
        self._stopped.set()
        self._woken.set()

    def run_once(self, views: Sequence[View] | None = None) -> int:
        """Bring the views (all by default) up to the log's head; a cheap read first, so an
        idle poll never takes the write lock."""
        head = self.log.head()
        applied = 0
        for view in self.views if views is None else views:
            while position(self.db.connection(), tracked(view)) < head:
                applied += catch_up_batch(self.db, self.log, view, self.batch)
        return applied

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.run_once([view for view in self.views if self.leases.holds(view.name)])
            except self.db.transient:
                log.exception("view update failed; retrying")
                time.sleep(1)
            self._woken.wait(self.poll_seconds)
            self._woken.clear()
