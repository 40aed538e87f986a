"""Reads from Sanic's event loop on PostgreSQL: a worker's own free list of async
connections, and lookups gathered per turn of the loop."""

from __future__ import annotations

import asyncio
import os
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

from projections.database import Row
from projections.postgres.dialect import placeholders

Found = TypeVar("Found")


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
        # (statement, key column) → key → the reads waiting for the loop to turn
        self._waiting_turn: dict[tuple[str, str], dict[str, list[asyncio.Future[Any]]]] = {}
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
        statement for all their keys when the loop turns: under load many requests reach
        their lookup together (each HTTP request a task woken in the same turn), and one
        round trip for all of them costs the worker and PostgreSQL a fraction of one each.
        The keys go as one array, `= ANY(...)`, so the statement's text is the same however
        many there are and psycopg prepares it once a connection: as `IN ($1, ..., $n)` each
        count of keys was a statement of its own, planned afresh on every connection until
        it had been seen five times (the long tail of GET one event's latency at first)."""
        keyed = sql.replace("IN ({keys})", "= ANY(?)")

        async def rows_of(keys: list[str]) -> dict[str, Row]:
            return {row[column]: row for row in await self.fetchall(keyed, [keys])}

        return (await self._next_turn((sql, column), key, rows_of)).get(key)

    async def shared(self, sql: str) -> list[Row]:
        """The rows of a statement without parameters (the names count every signed-in write
        reads), read once for all who ask in the same turn of the loop: the statement goes
        out after each of them asked, so each gets what a read of its own would have seen.
        Group commit answers a batch's requests together, and their clients' next requests
        then arrive together too."""
        async def rows_of(_: list[str]) -> dict[str, list[Row]]:
            return {"": await self.fetchall(sql, ())}

        return (await self._next_turn((sql, ""), "", rows_of))[""]

    async def _next_turn(self, slot: tuple[str, str], key: str,
                         read: Callable[[list[str]], Awaitable[dict[str, Found]]],
                         ) -> dict[str, Found]:
        """What `read` finds for the keys of every caller of `slot` in this turn of the loop,
        read once when the loop turns."""
        loop = asyncio.get_running_loop()
        waiting = self._waiting_turn.get(slot)
        if waiting is None:
            waiting = self._waiting_turn[slot] = {}
            loop.call_soon(self._turned, slot, read)
        found: asyncio.Future[dict[str, Found]] = loop.create_future()
        waiting.setdefault(key, []).append(found)
        return await found

    def _turned(self, slot: tuple[str, str],
                read: Callable[[list[str]], Awaitable[dict[str, Any]]]) -> None:
        waiting = self._waiting_turn.pop(slot)
        task = asyncio.get_running_loop().create_task(self._answer(waiting, read))
        self._tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _answer(waiting: dict[str, list[asyncio.Future[dict[str, Any]]]],
                      read: Callable[[list[str]], Awaitable[dict[str, Any]]]) -> None:
        futures = [future for each in waiting.values() for future in each]
        try:
            found = await read(list(waiting))
        except Exception as exc:
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future in futures:
            if not future.done():  # its request may have been cancelled meanwhile
                future.set_result(found)

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
