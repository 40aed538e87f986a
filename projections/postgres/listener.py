"""LISTEN for the NOTIFY that eventsourcing's PostgreSQL recorder sends with every save, to
wake the followers, and for the one the views' follower sends when it has moved on, to wake
the mailer (new mail may be queued)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

# How long a listening thread may take to notice it was stopped (it is a daemon: a process
# that ends does not wait for it).
STOP_SECONDS = 5.0


def views_channel(schema: str) -> str:
    """Where the views' follower says it has moved on: one channel per schema, so deployments
    sharing a database wake only their own mailer."""
    return f"alphabet_views_{schema}"


def views_notify(schema: str) -> str:
    """The statement that says so: in a transaction, it is delivered at commit."""
    return f'NOTIFY "{views_channel(schema)}"'


class Notify:
    """`views_notify` when called, over a connection of its own kept open between calls (the
    views' follower calls it after each pass that applied facts). A NOTIFY that fails is
    logged and its connection opened again next time: the listener's safety look remains."""

    def __init__(self, conninfo: str, schema: str) -> None:
        self.conninfo = conninfo
        self.channel = views_channel(schema)
        self.statement = views_notify(schema)
        self.conn: psycopg.Connection[Any] | None = None

    def __call__(self) -> None:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(self.conninfo, autocommit=True)
            self.conn.execute(self.statement)
        except psycopg.Error as exc:
            log.warning("NOTIFY %s failed (%s)", self.channel, exc)
            if self.conn is not None:
                self.conn.close()
                self.conn = None


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
