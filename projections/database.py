"""The state database: views, tracking, personal data and sessions in one database, so a view can
join personal data and deletion can scrub every page of it. Either one SQLite file (the embedded
default, here) or PostgreSQL shared by every instance (projections.postgres), behind one
interface: SQL is written once, with `?` placeholders and standard upserts, and rows are read by
column name; what cannot be shared is a Dialect's.

At ~300 lines on purpose: the interface sits beside the SQLite implementation, the default
that every other one (projections.postgres) is measured against, so the reader of one sees the
other; the interface alone would be a module of protocols with no body."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from domain.storage import Connection, Database
from projections.search import Fts5Search, Search

# Shared by both dialects: DOUBLE PRECISION has REAL affinity in SQLite and is a float8 in
# PostgreSQL (whose REAL is a float4, too coarse for epoch seconds).
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        username_key TEXT NOT NULL UNIQUE,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS invitees (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL UNIQUE
    )""",
    """CREATE TABLE IF NOT EXISTS refresh_tokens (
        jti TEXT PRIMARY KEY,
        family TEXT NOT NULL,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        expires_at DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL DEFAULT 'active'
    )""",
    "CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens(family)",
    "CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens(user_id)",
    # Each account's calendar feed, by its secret's digest (projections.feeds): beside the
    # account, so that erasing the account erases it too.
    """CREATE TABLE IF NOT EXISTS calendar_feeds (
        user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        secret_hash TEXT NOT NULL UNIQUE
    )""",
    """CREATE TABLE IF NOT EXISTS signin_failures (
        key TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        window_ends DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS tracking (
        view TEXT PRIMARY KEY,
        position BIGINT NOT NULL
    )""",
    # Counts that are not log positions (how many times names changed), apart from tracking,
    # whose every row is a follower's place in the log.
    """CREATE TABLE IF NOT EXISTS counters (
        name TEXT PRIMARY KEY,
        value BIGINT NOT NULL
    )""",
]

# How often scrub() retries a checkpoint that readers or writers held back (50 ms apart).
SCRUB_TRIES = 100


class Tables(Protocol):
    """A view's tables and named indexes at its place, as a rebuild moves them into place."""

    tables: Sequence[str]

    def indexes(self) -> dict[str, str]: ...


class Numbering(Protocol):
    """How a view's table numbers a new row (its seq), followed by a loader that numbers the
    rows itself: `overriding` is what an INSERT giving the number must say."""

    overriding: str

    def next(self, top: Callable[[], int]) -> int: ...

    def drawn(self, conn: Connection, table: str) -> None: ...


class Dialect(Protocol):
    """The SQL that differs: how a table numbers its rows, whether a table may drop its rowid,
    how to join in the order written, how to look a subquery's rows up one by one, how words
    are searched, how a JSON list of participants becomes rows, and how a rebuilt view's
    tables take the live names (`renames_indexes`: whether their indexes go along, or must be
    made again after the swap)."""

    name: str
    serial_key: str
    without_rowid: str
    ordered_join: str
    # An indexed column's test against the rows of a one-column subquery `{rows}`, answered
    # by running the subquery and looking each of its rows up in the column's index, however
    # large the table is: for a few rows of a large table, never a read of the whole table.
    among: str
    search: Search
    # The FROM item listing a view row `v`'s participants as rows `j` of one column, `value`.
    participants: str
    renames_indexes: bool
    # A statement with one parameter, a table's name, answering one row whose `found` is 1
    # when the table exists (tables made on first use, such as the mailer's).
    has_table: str
    # A statement with two parameters, a table's and a column's name, answering one row whose
    # `found` is 1 when the table has that column (columns a view gained after its first
    # release are added to a database made before: see EventsView.add_columns).
    has_column: str

    def numbering(self) -> Numbering: ...

    def rename(self, conn: Connection, rebuilt: Tables, live: Tables) -> None: ...


class StateDatabase(Database, Protocol):
    """The port the followers write through (domain.storage.Database), and what the rest of
    the server needs besides: the dialect, schema, locks and the scrub of erased data."""

    dialect: Dialect
    # A unique index refused a row (a name taken in a race the pre-check lost).
    unique_violation: type[Exception]

    def create_schema(self, statements: Sequence[str] = ()) -> None: ...

    def exclusive(self, name: str) -> AbstractContextManager[None]: ...

    def scrub(self) -> None: ...

    def close(self) -> None: ...


class Row(Protocol):
    """A row read by column name: sqlite3.Row, or psycopg's dict row. Left as the driver made
    it, since copying a page of rows into dicts costs as much as the query."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...


class AsyncReads(Protocol):
    """Queries from the event loop, for what can take a while (pages, searches)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def fetchall(self, sql: str, parameters: Sequence[Any]) -> list[Row]: ...

    async def lookup(self, sql: str, column: str, key: str) -> Row | None:
        """The row of `sql` whose `column` is `key`, or None. `sql` selects by
        `<column> IN ({keys})`: a reader that pays a round trip per statement asks for the
        keys of every lookup waiting at once in one statement."""
        ...

    async def shared(self, sql: str) -> list[Row]:
        """The rows of `sql` (no parameters) as of no earlier than the call: a reader that pays
        a round trip per statement reads once for every caller waiting at once."""
        ...


def insert_rows(conn: Connection, statement: str, rows: Sequence[Sequence[Any]],
                chunk: int = 100) -> None:
    """`statement` with `{rows}` where its VALUES go, run for up to `chunk` rows at a time:
    on PostgreSQL a statement per row (even pipelined) cost a write's mail a statement per
    recipient twice over, in the server and in the driver. Under SQLite's 999 parameters for
    rows of up to 9 columns."""
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        marks = f"({', '.join('?' * len(part[0]))})"
        conn.execute(statement.format(rows=", ".join([marks] * len(part))),
                     [value for row in part for value in row])


class SqliteDialect:
    name = "sqlite"
    serial_key = "INTEGER PRIMARY KEY"
    without_rowid = " WITHOUT ROWID"
    # SQLite's planner never reorders the tables of a CROSS JOIN
    ordered_join = "CROSS JOIN"
    # SQLite drives an IN by the indexed column's index, once per row of the subquery
    among = "IN ({rows})"
    search: Search = Fts5Search()
    participants = "json_each(v.participants) j"
    has_table = "SELECT COUNT(*) AS found FROM sqlite_master WHERE type = 'table' AND name = ?"
    has_column = "SELECT COUNT(*) AS found FROM pragma_table_info(?) WHERE name = ?"
    renames_indexes = False

    def numbering(self) -> Numbering:
        return RowidNumbering()

    def rename(self, conn: Connection, rebuilt: Tables, live: Tables) -> None:
        """SQLite cannot rename an index: the rebuilt ones are dropped here and made again
        under the live names by the caller (FTS5 renames its own shadow tables)."""
        for name in rebuilt.indexes():
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        for table, name in zip(rebuilt.tables, live.tables, strict=True):
            conn.execute(f"ALTER TABLE {table} RENAME TO {name}")


SQLITE = SqliteDialect()


class RowidNumbering:
    """SQLite's INTEGER PRIMARY KEY: a new row takes the largest number in the table + 1, so
    the number of a deleted last row is given again."""

    overriding = ""

    def next(self, top: Callable[[], int]) -> int:
        return top() + 1

    def drawn(self, conn: Connection, table: str) -> None:
        """Nothing to keep: the table's next number follows from its rows."""


class SqliteDatabase:
    """Per-thread connections to the state file. Writes take the lock up front (BEGIN
    IMMEDIATE) so concurrent writers queue on the busy timeout instead of failing mid-way."""

    dialect: Dialect = SQLITE
    unique_violation: type[Exception] = sqlite3.IntegrityError
    transient: tuple[type[Exception], ...] = (sqlite3.OperationalError,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            self._opened.append(conn)
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

    def create_schema(self, statements: Sequence[str] = ()) -> None:
        with self.write() as conn:
            for statement in [*SCHEMA, *statements]:
                conn.execute(statement)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Nothing to queue for: one file, written under its own lock (BEGIN IMMEDIATE)."""
        yield

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

    def close(self) -> None:
        for conn in self._opened:
            conn.close()
        self._opened.clear()
        self._local = threading.local()


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


class InlineReads:
    """SQLite reads answered on the event loop itself. Every read the loop makes is driven by an
    index and bounded (a page is at most 1,000 rows, ~1.5 ms; an event's row, microseconds).
    Through a thread (aiosqlite) the same page took three times as long: building each row needs
    the GIL, which the busy loop thread holds, so the reading thread waited for it row after row
    (py-spy, bench/). Its own read-only connection has the event store attached as `store`, so
    a view row and the store's latest version for it come back from one query."""

    def __init__(self, path: Path, store: Path) -> None:
        self.path = path
        self.store = store
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._conn = read_only(self.path)
        self._conn.execute("ATTACH DATABASE ? AS store", (f"file:{self.store}?mode=ro",))

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def fetchall(self, sql: str, parameters: Sequence[Any]) -> list[Row]:
        assert self._conn is not None, "InlineReads.open() was not awaited"
        return self._conn.execute(sql, parameters).fetchall()

    async def lookup(self, sql: str, column: str, key: str) -> Row | None:
        """One key at a time: an inline read costs no round trip to share."""
        rows = await self.fetchall(sql.replace("{keys}", "?"), (key,))
        return rows[0] if rows else None

    async def shared(self, sql: str) -> list[Row]:
        return await self.fetchall(sql, ())


def read_only(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn
