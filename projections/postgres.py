"""PostgreSQL for the state database, shared by every instance: the adapter that runs the shared
SQL (`?` placeholders, rows by column name) through psycopg 3 pools, the dialect's differences,
async reads for Sanic, advisory-lock leases so that one process per role follows the log
across all instances, and LISTEN for the NOTIFY eventsourcing sends with every save.

Imported only when ALPHABET_EVENT_STORE names a PostgreSQL database, so the embedded default
needs neither psycopg nor libpq."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from typing import Any

import psycopg
import psycopg.errors
import psycopg_pool
from eventsourcing import persistence
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

from domain.storage import Connection, Rows
from projections.database import SCHEMA, Dialect, Numbering, Row, Tables
from projections.search import Search, TsvectorSearch

log = logging.getLogger(__name__)

# The first half of every advisory-lock key we take: "Alph".
LOCK_CLASS = 0x416C7068
TOKENS = re.compile(r"'[^']*'|\?|%")


@lru_cache(maxsize=1024)
def placeholders(statement: str) -> str:
    """The shared SQL's `?` placeholders as psycopg's `%s`; a literal `%` doubled. A `?` inside
    a quoted literal stays as it is.

    Kept although each view makes its statements once per dialect: what differs between the
    dialects there is DDL, numbering and search, not the placeholders, and most statements are
    not a view's (personal data, sessions, the readers' pages, the mailer, reminders' scheduler,
    tracking) and are written once for both backends, as the storage port promises
    (domain.storage). psycopg knows only `%s`; sqlite3 would need `?` rewritten the other way.
    Each distinct text is translated once (the cache), so a statement pays a dict lookup."""

    def swap(found: re.Match[str]) -> str:
        token = found.group()
        if token == "?":
            return "%s"
        return token.replace("%", "%%")

    return TOKENS.sub(swap, statement)

# How long an erasure waits for transactions that could still see the erased rows.
SCRUB_WAIT_SECONDS = 10.0
# Whether a transaction older than the erasure (begun before the next transaction id `?` was
# handed out) still runs anywhere on the server, and who holds it or, in this database, an
# older snapshot (named for the log): see PostgresDatabase.scrub.
SCRUB_HELD_BACK = (
    "SELECT pg_snapshot_xmin(pg_current_snapshot()) < ?::xid8 AS older_running, "
    "(SELECT string_agg(concat_ws(' ', pid, datname, state, xact_start), '; ') "
    "FROM pg_stat_activity WHERE age(backend_xid) > age(?::xid8::xid) "
    "OR (datname = current_database() AND pid <> pg_backend_pid() "
    "AND backend_type = 'client backend' AND age(backend_xmin) > age(?::xid8::xid))) "
    "AS sessions")


class Buffered:
    """A statement's rows, fetched before its connection went back to the pool."""

    def __init__(self, rows: list[DictRow]) -> None:
        self.rows = rows

    def fetchone(self) -> DictRow | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[DictRow]:
        return self.rows

    def __iter__(self) -> Iterator[DictRow]:
        return iter(self.rows)


class Pipelined:
    """A statement's rows inside a pipelined transaction: they are waited for only when read,
    so statements whose results nobody reads go out without a round trip each."""

    def __init__(self, cursor: psycopg.Cursor[DictRow]) -> None:
        self.cursor = cursor

    def fetchone(self) -> DictRow | None:
        return self.cursor.fetchone()

    def fetchall(self) -> list[DictRow]:
        return self.cursor.fetchall()

    def __iter__(self) -> Iterator[DictRow]:
        return iter(self.cursor.fetchall())


class Session:
    """One psycopg connection speaking as sqlite3's does."""

    def __init__(self, conn: psycopg.Connection[DictRow], pipelined: bool = False) -> None:
        self.conn = conn
        self.pipelined = pipelined

    def execute(self, statement: str, parameters: Sequence[Any] = (), /) -> Buffered | Pipelined:
        cursor = self.conn.execute(placeholders(statement), parameters)
        if self.pipelined:
            return Pipelined(cursor)
        return Buffered(cursor.fetchall() if cursor.description else [])

    def executemany(self, statement: str, parameters: Iterable[Sequence[Any]], /) -> None:
        """Row by row in a pipeline, which is what psycopg's executemany sends too, but
        without its eager PREPARE: psycopg 3.3 sends the DEALLOCATE ALL that a DROP or ALTER
        left pending on the connection only once executemany is done, dropping the statement
        executemany has just prepared ("prepared statement _pg3_N does not exist" at its next
        use, as after a replay's swap)."""
        query = placeholders(statement)
        pipeline = nullcontext() if self.pipelined else self.conn.pipeline()
        with pipeline, self.conn.cursor() as cursor:
            for row in parameters:
                cursor.execute(query, row)


class Pooled:
    """Statements outside a transaction: each borrows a connection (autocommit) from the pool."""

    def __init__(self, pool: psycopg_pool.ConnectionPool[psycopg.Connection[DictRow]]) -> None:
        self.pool = pool

    def execute(self, statement: str, parameters: Sequence[Any] = (), /) -> Rows:
        with self.pool.connection() as conn:
            return Session(conn).execute(statement, parameters)

    def executemany(self, statement: str, parameters: Iterable[Sequence[Any]], /) -> None:
        with self.pool.connection() as conn, conn.transaction():
            Session(conn).executemany(statement, parameters)


class IdentityNumbering:
    """PostgreSQL's identity column: numbers drawn from a sequence, never given twice. The
    sequence is told how far the loader's numbers went, so the follower's next row follows."""

    overriding = " OVERRIDING SYSTEM VALUE"

    def __init__(self) -> None:
        self.last = 0

    def next(self, top: Callable[[], int]) -> int:
        self.last += 1
        return self.last

    def drawn(self, conn: Connection, table: str) -> None:
        conn.execute("SELECT setval(pg_get_serial_sequence(?, 'seq'), ?)", (table, self.last))


class PostgresDialect:
    name = "postgresql"
    serial_key = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    without_rowid = ""
    # PostgreSQL has no ON for a CROSS JOIN, and plans the order from statistics itself
    ordered_join = "JOIN"
    search: Search = TsvectorSearch()
    participants = "json_array_elements_text(v.participants::json) AS j(value)"
    has_table = ("SELECT COUNT(*) AS found FROM pg_tables WHERE tablename = ? "
                 "AND schemaname = current_schema()")
    renames_indexes = True

    def numbering(self) -> Numbering:
        return IdentityNumbering()

    def rename(self, conn: Connection, rebuilt: Tables, live: Tables) -> None:
        """Tables, their indexes and their identity sequences (each named after its table)
        all take the live names, so nothing is rebuilt inside the swap and no rebuild name
        is left behind."""
        for table, name in zip(rebuilt.tables, live.tables, strict=True):
            conn.execute(f"ALTER TABLE {table} RENAME TO {name}")
            owned = conn.execute(
                "SELECT c.relname AS name, c.relkind AS kind FROM pg_class c "
                "WHERE c.relnamespace = current_schema()::regnamespace "
                "AND c.relkind IN ('i', 'S') AND starts_with(c.relname, ?)",
                (table,),
            ).fetchall()
            for row in owned:
                kind = "INDEX" if row["kind"] == "i" else "SEQUENCE"
                renamed = name + row["name"][len(table):]
                conn.execute(f"ALTER {kind} {row['name']} RENAME TO {renamed}")


POSTGRES = PostgresDialect()


def lock_key(namespace: str, name: str) -> tuple[int, int]:
    """An advisory-lock key (two int4) for a name, distinct per schema sharing a database."""
    digest = zlib.crc32(f"{namespace}:{name}".encode())
    return LOCK_CLASS, digest - (1 << 32) if digest >= 1 << 31 else digest


class PostgresDatabase:
    """The state database on PostgreSQL. Writes are READ COMMITTED transactions: the
    statements that read before they write either lock the row they read (a follower's
    tracking row) or are a single conditional UPDATE (refresh-token rotation)."""

    dialect: Dialect = POSTGRES
    unique_violation: type[Exception] = psycopg.errors.UniqueViolation
    transient: tuple[type[Exception], ...] = (
        psycopg.OperationalError, psycopg_pool.PoolTimeout, persistence.OperationalError,
        persistence.InterfaceError,
    )

    def __init__(self, conninfo: str, schema: str = "public", max_size: int = 10) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self.pool: psycopg_pool.ConnectionPool[psycopg.Connection[DictRow]] = (
            psycopg_pool.ConnectionPool(
                conninfo, connection_class=psycopg.Connection[DictRow],
                kwargs={"row_factory": dict_row, "autocommit": True},
                min_size=1, max_size=max_size, open=True, name="state",
            )
        )

    def connection(self) -> Pooled:
        return Pooled(self.pool)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """Pipelined: a follower's batch sends its inserts and updates without waiting for
        each (the statements it reads from still wait), 1.7x the facts per second. BEGIN and
        COMMIT are statements of the pipeline too, where psycopg's transaction() would wait
        for each (it syncs the pipeline after BEGIN and at COMMIT): a transaction that only
        writes costs one round trip instead of three, a follower's batch three instead of
        five."""
        with self.pool.connection() as conn:
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    yield Session(conn, pipelined=True)
                    conn.execute("COMMIT")
            except BaseException:
                # A statement the failed pipeline skipped may have been due to be prepared:
                # psycopg then keeps a name the server never saw, and later uses of the
                # connection fail with "prepared statement does not exist" (DEALLOCATE ALL
                # does not bring the two back in step). Failed writes are rare (a name taken
                # in a race, a lost connection), so the connection goes and the pool opens a
                # fresh one.
                conn.close()
                raise

    def create_schema(self, statements: Sequence[str] = ()) -> None:
        """Idempotent, and safe when several processes start at once: the advisory lock
        queues them (concurrent CREATE ... IF NOT EXISTS can otherwise collide)."""
        with self.write() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(?, ?)", lock_key(self.schema, "schema"))
            if self.schema != "public":
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            for statement in [*SCHEMA, *statements]:
                conn.execute(statement)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Held by one process at a time across all instances, waiting for its turn."""
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", lock_key(self.schema, name))
            yield

    def scrub(self) -> None:
        """A deleted row stays in its page (and its index entries in theirs) until the page is
        rewritten; VACUUM FULL writes the tables afresh and drops the old files, so an erased
        person is gone from the data files as well as from every query. ANALYZE then samples
        the planner's statistics (which may quote column values) from the rows that remain.
        VACUUM keeps a deleted row while any session of the database holds a snapshot older
        than the deletion. Such a snapshot need not exist yet when VACUUM is asked for: a
        snapshot's xmin is the oldest transaction still running anywhere on the server, in
        any database, so while one that began before the deletion runs (another database's
        CREATE DATABASE or VACUUM FULL on a shared server, or our own writer between two
        statements) every statement that starts here — a follower's next batch — takes an
        old snapshot, and VACUUM FULL, which reads its horizon only once it holds the tables'
        lock, copies the row into the new files. So erasure waits (bounded) until a fresh
        snapshot here is newer than the deletion and no session of this database still
        holds an older one; after that no new snapshot can be older."""
        conn = self.connection()
        horizon = conn.execute(
            "SELECT pg_snapshot_xmax(pg_current_snapshot()) AS next").fetchone()["next"]
        deadline = time.monotonic() + SCRUB_WAIT_SECONDS
        while (held := conn.execute(SCRUB_HELD_BACK, (horizon, horizon, horizon)).fetchone())[
                "older_running"] or held["sessions"]:
            if time.monotonic() >= deadline:
                log.warning("erasure waited %s s for sessions older than the deletion (pid "
                            "database state since: %s); the erased rows stay in the data "
                            "files until the next erasure", SCRUB_WAIT_SECONDS,
                            held["sessions"] or "a prepared transaction")
                break
            time.sleep(0.05)
        conn.execute("VACUUM (FULL, ANALYZE) users, invitees")

    def close(self) -> None:
        self.pool.close()


class PostgresReads:
    """Queries from Sanic's event loop, on a few async connections of the worker's own, handed
    out last-in first-out and opened when first needed (up to `max_size`; a statement that
    finds them all busy waits for one). psycopg_pool's AsyncConnectionPool cost ~65 µs of a
    worker's CPU per statement in its locks, logging and connection context, as much as the
    statement itself (16 tasks on loopback: 151-171 µs per statement through the pool, 85-91
    µs here); every list and GET one event is one statement. A connection that breaks (the
    server restarted, the session was ended) is dropped, and a statement that failed on one
    that had been idle is tried once more on a new one: these are reads, safe to repeat."""

    def __init__(self, conninfo: str, max_size: int = 4) -> None:
        self.conninfo = conninfo
        self.max_size = max_size
        self._idle: list[psycopg.AsyncConnection[DictRow]] = []
        self._waiting: deque[asyncio.Future[psycopg.AsyncConnection[DictRow] | None]] = deque()
        self._counted = 0  # connections open, being opened or in use
        # (statement, key column) → key → the lookups waiting for the loop to turn
        self._lookups: dict[tuple[str, str], dict[str, list[asyncio.Future[Row | None]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        """One connection up front, so a database that cannot be reached fails the start."""
        self._counted += 1
        try:
            self._idle.append(await self._connect())
        except BaseException:
            self._counted -= 1
            raise

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        self._counted -= len(idle)
        for conn in idle:
            await conn.close()

    async def fetchall(self, statement: str, parameters: Sequence[Any]) -> list[Row]:
        return await self._fetch(placeholders(statement), parameters, again=True)

    async def _fetch(self, query: str, parameters: Sequence[Any], again: bool) -> list[Row]:
        conn, reused = await self._take()
        try:
            cursor = await conn.execute(query, parameters)
            return list(await cursor.fetchall())
        except psycopg.OperationalError:
            if not (again and reused and conn.broken):
                raise
        finally:
            self._give_back(conn)
        # It broke while idle, so the statement never ran; the other idle ones most likely
        # broke with it (a restart): once more, on a new connection.
        idle, self._idle = self._idle, []
        for other in idle:
            self._counted -= 1
            await other.close()
        return await self._fetch(query, parameters, again=False)

    async def lookup(self, sql: str, column: str, key: str) -> Row | None:
        """Lookups of one statement asked for in the same turn of the event loop go out as one
        statement, `IN` all their keys, when the loop turns: under load many requests reach
        their lookup together (each HTTP request a task woken in the same turn), and one
        round trip for all of them costs the worker and PostgreSQL a fraction of one each."""
        waiting = self._lookups.get((sql, column))
        if waiting is None:
            waiting = self._lookups[(sql, column)] = {}
            asyncio.get_running_loop().call_soon(self._look_up, sql, column)
        found: asyncio.Future[Row | None] = asyncio.get_running_loop().create_future()
        waiting.setdefault(key, []).append(found)
        return await found

    def _look_up(self, sql: str, column: str) -> None:
        waiting = self._lookups.pop((sql, column))
        task = asyncio.get_running_loop().create_task(self._answer(sql, column, waiting))
        self._tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, sql: str, column: str,
                      waiting: dict[str, list[asyncio.Future[Row | None]]]) -> None:
        keys = list(waiting)
        try:
            rows = await self.fetchall(sql.replace("{keys}", ",".join("?" * len(keys))), keys)
        except Exception as exc:
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        by_key = {row[column]: row for row in rows}
        for key, futures in waiting.items():
            for future in futures:
                if not future.done():  # its request may have been cancelled meanwhile
                    future.set_result(by_key.get(key))

    async def _connect(self) -> psycopg.AsyncConnection[DictRow]:
        return await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, row_factory=dict_row,
            application_name=f"alphabet reads {socket.gethostname()} {os.getpid()}",
        )

    async def _take(self) -> tuple[psycopg.AsyncConnection[DictRow], bool]:
        """A connection, and whether it has been used before (and so may have broken while
        idle)."""
        while True:
            if self._idle:
                return self._idle.pop(), True
            if self._counted < self.max_size:
                self._counted += 1
                try:
                    return await self._connect(), False
                except BaseException:
                    self._counted -= 1
                    self._wake_one(None)
                    raise
            waiter: asyncio.Future[psycopg.AsyncConnection[DictRow] | None] = (
                asyncio.get_running_loop().create_future())
            self._waiting.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and (conn := waiter.result()):
                    self._give_back(conn)  # handed over just as this task was cancelled
                raise
            if handed is not None:
                return handed, True
            # None: a connection was dropped, so there is room to open another

    def _give_back(self, conn: psycopg.AsyncConnection[DictRow]) -> None:
        """To the next waiter, or the idle list; dropped instead if it is broken or was left
        inside a statement (a cancelled request)."""
        if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
            self._counted -= 1
            if not conn.closed:
                asyncio.get_running_loop().create_task(conn.close())
            self._wake_one(None)
            return
        if not self._wake_one(conn):
            self._idle.append(conn)

    def _wake_one(self, conn: psycopg.AsyncConnection[DictRow] | None) -> bool:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False


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


# How long a listening thread may take to notice it was stopped (it is a daemon: a process
# that ends does not wait for it).
STOP_SECONDS = 5.0


class Listener:
    """Wakes a follower whenever a fact is saved by any process: LISTEN on the channel that
    eventsourcing's PostgreSQL recorder NOTIFYs in every insert transaction. It wakes the
    follower once more each time it (re)connects, for whatever was saved while it was not
    listening."""

    def __init__(self, conninfo: str, channel: str, wake: Callable[[], None]) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self.wake = wake
        self.stopped = threading.Event()

    def start(self) -> Listener:
        threading.Thread(target=self.run, name=f"listen {self.channel}", daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.wake()
                    while not self.stopped.is_set():  # how soon a stop is seen
                        for _ in conn.notifies(timeout=STOP_SECONDS):
                            self.wake()
            except psycopg.Error as exc:
                log.warning("LISTEN %s failed (%s); listening again in 1 s", self.channel, exc)
                self.stopped.wait(1)

    async def run_async(self) -> None:
        """The same, on an event loop (a worker's own tail of the log)."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.wake()
                    async for _ in conn.notifies():
                        self.wake()
            except psycopg.Error as exc:
                log.warning("LISTEN %s failed (%s); listening again in 1 s", self.channel, exc)
                await asyncio.sleep(1)
