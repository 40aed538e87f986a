"""Advisory locks: the keys every lock of ours takes, and the leases by which one process
per role follows the log across all instances."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import psycopg

log = logging.getLogger(__name__)

# The first half of every advisory-lock key we take: "Alph".
LOCK_CLASS = 0x416C7068


def lock_key(namespace: str, name: str) -> tuple[int, int]:
    """An advisory-lock key (two int4) for a name, distinct per schema sharing a database."""
    digest = zlib.crc32(f"{namespace}:{name}".encode())
    return LOCK_CLASS, digest - (1 << 32) if digest >= 1 << 31 else digest


class AdvisoryLeases:
    """Which roles (a view's follower, the mailer, the notifier...) this process holds, across
    every instance sharing the database: a session-level advisory lock per role, on a
    connection of its own kept open while following. When the holder dies its session ends,
    the lock is released, and the next process to try (each tries every `retry` seconds)
    takes over from the positions the dead one committed."""

    def __init__(self, conninfo: str, namespace: str, retry: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.conninfo = conninfo
        self.namespace = namespace
        self.retry = retry
        self.clock = clock
        self._conn: psycopg.Connection[Any] | None = None
        self._held: set[str] = set()
        self._tried: dict[str, float] = {}
        self._checked = 0.0
        self._lock = threading.Lock()

    def holds(self, role: str) -> bool:
        with self._lock:
            now = self.clock()
            try:
                if role in self._held:
                    if now - self._checked >= self.retry:
                        # The session may have ended (a restart, a cut): then so did the lock.
                        self._session().execute("SELECT 1")
                        self._checked = now
                    return True
                if now - self._tried.get(role, -self.retry) < self.retry:
                    return False
                self._tried[role] = now
                row = self._session().execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", lock_key(self.namespace, role)
                ).fetchone()
            except psycopg.Error as exc:
                if self._held:
                    log.warning("lost the session holding %s (%s); stopped following",
                                ", ".join(sorted(self._held)), exc)
                self._release()
                return False
            if row and row[0]:
                self._held.add(role)
                self._checked = now
                log.info("took the lease of %s", role)
                return True
            return False

    def close(self) -> None:
        with self._lock:
            self._release()

    def _session(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            # named, so pg_stat_activity shows which process holds which lease
            self._conn = psycopg.connect(
                self.conninfo, autocommit=True,
                application_name=f"alphabet leases {socket.gethostname()} {os.getpid()}",
            )
        return self._conn

    def _release(self) -> None:
        self._held.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
