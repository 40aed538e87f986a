"""Writers' turns: the server's workers (of every instance on one database) take turns to
decide and save a batch of commands, rather than race and redo, once they have raced
(alphabet.group_commit takes turns for a while after a lost race).

Two workers' creations by one owner both add to the owner's Ownership; deciding at once, one of
them loses the race at its save (a unique violation on the Ownership's next version) and
decides and saves its batch again. With both workers busy that was every other batch: a save
rolled back and a batch decided twice, in CPU on both sides and in latency. Saves queue anyway
(eventsourcing's recorder locks the events table to number the facts in commit order), so
waiting for one's turn costs the other worker's reads and decisions only, well under a
millisecond a batch, and two round trips on a connection of its own."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from projections.postgres.leases import lock_key

log = logging.getLogger(__name__)

# A turn is waited for no longer than this (a holder stuck mid-batch): then the batch is
# decided and saved without it, as optimistic concurrency allows, only at the risk of a redo.
WAIT = "2s"


class WriterTurns:
    """A session-level advisory lock held around each batch, on a connection used only by the
    group commit's one thread. Failing to take it (a lost connection, a turn waited for too
    long) never stops a write: the batch goes ahead without its turn."""

    def __init__(self, conninfo: str, namespace: str) -> None:
        self.conninfo = conninfo
        self.key = lock_key(namespace, "writers")
        self._conn: psycopg.Connection[Any] | None = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        held = self._take()
        try:
            yield
        finally:
            if held:
                self._run("SELECT pg_advisory_unlock(%s, %s)")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _take(self) -> bool:
        return self._run("SELECT pg_advisory_lock(%s, %s)")

    def _run(self, statement: str) -> bool:
        try:
            if self._conn is None or self._conn.closed:
                # named, so pg_stat_activity and pg_locks show whose turn it is
                self._conn = psycopg.connect(
                    self.conninfo, autocommit=True, prepare_threshold=0,
                    application_name=f"alphabet writer {socket.gethostname()} {os.getpid()}")
                self._conn.execute(f"SET lock_timeout = '{WAIT}'")
            self._conn.execute(statement, self.key)
        except psycopg.Error as exc:
            log.warning("writing without a turn: %s", exc)
            self.close()  # a session that failed may still hold the lock: end it
            return False
        return True
