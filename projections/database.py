"""The state database: one SQLite file holding views, tracking, personal data and sessions, so a
view can join personal data and deletion can scrub every page of it."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS invitees (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    jti TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'active'
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens(family);
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens(user_id);
CREATE TABLE IF NOT EXISTS signin_failures (
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    window_ends REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tracking (
    view TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
"""


SCRUB_TRIES = 100


class StateDatabase:
    """Per-thread connections to the state file. Writes take the lock up front (BEGIN
    IMMEDIATE) so concurrent writers queue on the busy timeout instead of failing mid-way."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def create_schema(self) -> None:
        self.connection().executescript(SCHEMA)

    def scrub(self) -> None:
        """Move the WAL into the main file and truncate it, so erased rows survive nowhere
        (secure_delete has already zeroed the freed space). A checkpoint that a busy reader or
        writer held back is tried again."""
        for _ in range(SCRUB_TRIES):
            busy, _, _ = self.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(0.05)
        raise sqlite3.OperationalError("the erased data could not be checkpointed out of the WAL")


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    for pragma in (
        "journal_mode=WAL",
        "synchronous=FULL",
        "secure_delete=ON",
        "foreign_keys=ON",
        "busy_timeout=30000",
    ):
        conn.execute(f"PRAGMA {pragma}")
    return conn
