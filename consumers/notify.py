"""Following the log for WebSocket messages. Without Redis each worker follows the log itself
(LocalTail); with Redis one notifier reads it in order and publishes, and every worker relays
what it hears to its own sockets (RedisNotifier, RedisRelay). Either way messages arrive in log
order, so a client's `?after=` resume is exact."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from consumers.hub import Hub, Message
from consumers.messages import (
    NOBODY,
    LoadEvent,
    LookUpNames,
    MessageMaker,
    account_notice,
    event_id_of,
)
from projections.faults import Backoff, Faults

log = logging.getLogger(__name__)

BATCH = 500


class LogReader(Protocol):
    def head(self) -> int: ...

    def read(self, after: int, limit: int) -> list[tuple[int, Any]]: ...


def next_messages(log_: LogReader, maker: MessageMaker, after: int,
                  heard: Callable[[], bool] = lambda: True) -> tuple[list[Message], int, bool]:
    """The messages of the next batch of facts after `after` (with the notices about accounts
    that the hubs act on), the position reached, and whether more may follow at once (a
    full batch: a short one held every fact then saved). None are made while nobody would
    hear them (`heard`: a worker's hub has sockets), and nothing is read but the log's head:
    the maker's names lookup and rendering of each fact were a worker's largest cost of a
    write that no socket heard, paid by every worker, and reading and decoding the facts
    the next. A socket that subscribes later starts live from the log's head, past these
    facts."""
    if not heard():
        maker.forget()  # what it keeps of events would miss these facts
        return [], max(after, log_.head()), False
    facts = log_.read(after, BATCH)
    reached = facts[-1][0] if facts else after
    messages = [m for pos, fact in facts
                if (m := maker.make(pos, fact) or account_notice(pos, fact)) is not None]
    return messages, reached, len(facts) == BATCH


def replay(
    log_: LogReader, load: LoadEvent, names: LookUpNames, event_id: str | None, after: int,
    until: int, limit: int | None = None, viewer: str = NOBODY,
) -> list[Message]:
    """The messages a client missed: from the store, positions after `after` up to `until`,
    the first `limit` of them if given (a sync page), shown as `viewer` may see them. Facts
    that make no message (accounts, ownership) are read past up to `until`."""
    maker = MessageMaker(load, names)
    found: list[Message] = []
    while after < until:
        # (no more than the positions left before `until` can hold)
        facts = [f for f in log_.read(after, min(BATCH, until - after)) if f[0] <= until]
        if not facts:
            break
        for pos, fact in facts:
            if event_id is None or event_id_of(fact) == event_id:
                message = maker.make(pos, fact, viewer)
                if message is not None:
                    found.append(message)
                    if len(found) == limit:
                        return found
        after = facts[-1][0]
    return found


class LocalTail:
    """One worker following the log itself, from the head at start-up. Any save wakes it (a
    write in this worker directly, others through the doorbell or LISTEN); otherwise it looks
    every `poll` seconds, a safety net. A batch it cannot turn into messages is retried with
    backoff (its fault recorded), never skipped: a socket's messages have no gap."""

    def __init__(self, log_: LogReader, maker: MessageMaker, hub: Hub, poll: float = 0.005,
                 faults: Faults | None = None):
        self.log = log_
        self.maker = maker
        self.hub = hub
        self.poll = poll
        self.backoff = Backoff("notifications", faults)
        self.woken = asyncio.Event()

    def wake(self) -> None:
        self.woken.set()

    async def run(self) -> None:
        position = await asyncio.to_thread(self.log.head)
        self.hub.advance(position)
        while True:
            # Cleared before reading, so a wake during the read is not lost.
            self.woken.clear()
            try:
                messages, reached, more = await asyncio.to_thread(
                    next_messages, self.log, self.maker, position,
                    lambda: bool(self.hub.subscribers),
                )
            except Exception as exc:
                await asyncio.sleep(await asyncio.to_thread(self.backoff.failed, exc))
                continue
            await asyncio.to_thread(self.backoff.succeeded)
            for message in messages:
                self.hub.publish(message)
            self.hub.advance(reached)
            position = reached
            if not more:  # until the next save (a save since the read has woken it already)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.woken.wait(), self.poll)


def prime(redis: Any, namespace: str, head: int) -> None:
    """Before any worker serves: the notifier's first position is the log head now, so it can be
    no later than what any worker announces as `ready` (a later start would skip writes)."""
    redis.set(f"{namespace}:notifier:position", head, nx=True)


class RedisNotifier:
    """The one reader of the log for all workers and instances: publishes each message and its
    position to Redis in one transaction, so after a crash it resumes where it stopped, and so
    does whichever notifier takes over (`leading` says whether this one holds the role)."""

    def __init__(self, log_: LogReader, maker: MessageMaker, redis: Any, namespace: str,
                 poll: float = 0.005, leading: Callable[[], bool] = lambda: True,
                 faults: Faults | None = None):
        self.log = log_
        self.maker = maker
        self.redis = redis
        self.channel = f"{namespace}:messages"
        self.position_key = f"{namespace}:notifier:position"
        self.poll = poll
        self.leading = leading
        self.backoff = Backoff("notifier", faults)
        self.stopped = threading.Event()
        self.woken = threading.Event()

    def wake(self) -> None:
        self.woken.set()

    def stop(self) -> None:
        self.stopped.set()
        self.woken.set()

    def run(self) -> None:
        """Supervised: a failure (Redis away, a fact that cannot be told) is retried from the
        position last published, after a backoff."""
        position: int | None = None  # read from Redis whenever this notifier takes the lead
        while not self.stopped.is_set():
            try:
                position = self._step(position)
            except Exception as exc:
                position = None
                self.stopped.wait(self.backoff.failed(exc))

    def _step(self, position: int | None) -> int | None:
        """One batch published, or a wait; returns the position reached."""
        if not self.leading():
            self._wait()
            return None
        if position is None:
            stored = self.redis.get(self.position_key)
            position = int(stored) if stored is not None else self.log.head()
        messages, reached, more = next_messages(self.log, self.maker, position)
        if reached != position:
            with self.redis.pipeline(transaction=True) as pipe:
                for message in messages:
                    pipe.publish(self.channel, json.dumps(message))
                pipe.set(self.position_key, reached)
                pipe.execute()
        self.backoff.succeeded()  # a standby (above) leaves the holder's fault alone
        if not more:
            self._wait()
        return reached

    def _wait(self) -> None:
        self.woken.wait(self.poll)
        self.woken.clear()


class RedisRelay:
    """A worker's ear on the notifier: every message heard goes to this worker's sockets."""

    def __init__(self, redis: Any, namespace: str, hub: Hub, head: Callable[[], int]) -> None:
        self.redis = redis
        self.channel = f"{namespace}:messages"
        self.hub = hub
        self.head = head

    async def run(self) -> None:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.channel)
        # Subscribed first, then the head: anything after it is certain to be heard.
        self.hub.advance(await asyncio.to_thread(self.head))
        try:
            async for item in pubsub.listen():
                if item.get("type") == "message":
                    self.hub.publish(json.loads(item["data"]))
        finally:
            await pubsub.aclose()
