"""The state database on PostgreSQL: the adapter that runs the shared SQL (`?` placeholders,
rows by column name) through a psycopg 3 pool, as sqlite3's connections do for SQLite, and
the erasure's scrub of the data files."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import psycopg
import psycopg.errors
import psycopg_pool
from eventsourcing import persistence
from psycopg.rows import DictRow, dict_row

from domain.storage import Rows
from projections.database import SCHEMA, Dialect
from projections.postgres.dialect import POSTGRES, placeholders
from projections.postgres.leases import lock_key

log = logging.getLogger(__name__)

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
# The name an index statement makes, as follower.index_statements and SCHEMA write them.
INDEX_NAME = re.compile(r"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS (?P<name>\w+) ")


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
        queues them (concurrent CREATE ... IF NOT EXISTS can otherwise collide). An index
        that exists is not asked for again: CREATE INDEX IF NOT EXISTS takes its table's
        SHARE lock before it looks, and holds it to the end of this transaction, so a worker
        starting while another already writes deadlocked with a writer that holds one of the
        tables and waits for another (seen in CI: the occurrence horizon's transaction)."""
        with self.write() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(?, ?)", lock_key(self.schema, "schema"))
            if self.schema != "public":
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            existing = {row["name"] for row in conn.execute(
                "SELECT indexname AS name FROM pg_indexes WHERE schemaname = ?", (self.schema,))}
            for statement in [*SCHEMA, *statements]:
                if (index := INDEX_NAME.match(statement)) and index["name"] in existing:
                    continue
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
        conn.execute("VACUUM (FULL, ANALYZE) users, invitees, calendar_feeds")

    def close(self) -> None:
        self.pool.close()
