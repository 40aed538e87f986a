"""Supervision and faults. The loops `alphabet serve` runs (the views' follower, the mailer, the
reminder clock, the notifiers) are supervised: a step that raises never ends its loop. It is
logged and tried again after a backoff that doubles up to a ceiling (Backoff). A view's step is
the next batch of facts from its position, so a retry is the same fact again: a view never
skips one.

A supervised loop that keeps failing (a view that cannot apply a fact, the mailer, the
reminder clock) says why here, in the state database that every process and instance shares,
so /readyz can name the loop, the position and the error within seconds of it, wherever it
runs. The row goes as soon as the loop succeeds again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from projections.database import AsyncReads, StateDatabase

log = logging.getLogger(__name__)

SCHEMA = """CREATE TABLE IF NOT EXISTS faults (
    name TEXT PRIMARY KEY,
    position BIGINT,
    error TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    attempts INTEGER NOT NULL
)"""
COLUMNS = "name, position, error, first_seen, last_seen, attempts"
# A failure at the same position as the last one is the same fault tried again; at another
# position it is a new one (counted afresh). -1 stands for "no position" in the comparison.
_SAME = "COALESCE(faults.position, -1) = COALESCE(excluded.position, -1)"



async def failing(reads: AsyncReads) -> list[dict[str, Any]]:
    """The supervised loops failing now, wherever they run (for /readyz, from the event
    loop)."""
    return [dict(row) for row in await reads.fetchall(
        f"SELECT {COLUMNS} FROM faults ORDER BY name", ())]

class Faults:
    def __init__(self, db: StateDatabase,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = db
        self.clock = clock

    def record(self, name: str, position: int | None, error: str) -> None:
        now = self.clock().isoformat(timespec="milliseconds")
        with self.db.write() as conn:
            conn.execute(
                f"INSERT INTO faults VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT(name) DO UPDATE SET "
                f"attempts = CASE WHEN {_SAME} THEN faults.attempts + 1 ELSE 1 END, "
                f"first_seen = CASE WHEN {_SAME} THEN faults.first_seen "
                "ELSE excluded.first_seen END, "
                "position = excluded.position, error = excluded.error, "
                "last_seen = excluded.last_seen",
                (name, position, error, now, now),
            )

    def clear(self, name: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM faults WHERE name = ?", (name,))



class FactFailed(Exception):
    """A fact that could not be read or applied, at its log position (the cause is chained)."""

    def __init__(self, position: int, cause: Exception) -> None:
        super().__init__(f"fact at position {position}: {type(cause).__name__}: {cause}")
        self.position = position

FIRST_RETRY_SECONDS = 0.5
MOST_RETRY_SECONDS = 10.0


class Backoff:
    """One supervised loop's (or one view's) failures: when it may run again, and its fault."""

    def __init__(self, name: str, faults: Faults | None, *,
                 first: float = FIRST_RETRY_SECONDS, most: float = MOST_RETRY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.faults = faults
        self.first = first
        self.most = most
        self.clock = clock
        self.attempts = 0
        self.next_try = 0.0
        # A fault a previous run of this process left is cleared by this run's first success.
        self._clean = False

    def due_in(self) -> float:
        """Seconds until the loop may run again (0: now)."""
        return max(0.0, self.next_try - self.clock())

    def failed(self, exc: BaseException) -> float:
        """Log and record a failure; returns the seconds to wait before the restart."""
        self.attempts += 1
        delay = min(self.first * 2.0 ** (self.attempts - 1), self.most)
        self.next_try = self.clock() + delay
        position = exc.position if isinstance(exc, FactFailed) else None
        cause = exc.__cause__ if isinstance(exc, FactFailed) and exc.__cause__ else exc
        error = f"{type(cause).__name__}: {cause}"
        where = f" at position {position}" if position is not None else ""
        log.error("%s failed%s (%s); restarting in %.1f s with backoff (attempt %d)",
                  self.name, where, error, delay, self.attempts, exc_info=cause)
        if self.faults is not None:
            try:
                self.faults.record(self.name, position, error)
            except Exception:  # the state database itself may be what fails
                log.exception("could not record the fault of %s", self.name)
        self._clean = False
        return delay

    def succeeded(self) -> None:
        if self._clean:
            return
        if self.faults is not None:
            try:
                self.faults.clear(self.name)
            except Exception:
                log.exception("could not clear the fault of %s", self.name)
                return
        if self.attempts:
            log.warning("%s recovered after %d failed attempts", self.name, self.attempts)
        self.attempts = 0
        self.next_try = 0.0
        self._clean = True
