"""The relay: publishes the notification log to the facts topic, keyed by event id (so one
event's facts share a partition and keep their order), from a position of its own that it
commits only after the broker has acknowledged a batch. A crash or a broker outage therefore
re-sends at most the batch in flight (the agents apply a fact idempotently), never the whole
log, and never skips a fact. It has a producer of its own rather than faust's, so it runs
from the worker's start whatever the consumer group is doing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from eventsourcing.persistence import Mapper, Notification

from consumers.kafka.app import TOPIC, KafkaOptions
from consumers.kafka.broker import REQUEST_MS, ensure_topic
from consumers.kafka.records import encode

log = logging.getLogger(__name__)

RETRY_MAX_SECONDS = 30.0


class LogSource(Protocol):
    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *,
                             inclusive_of_start: bool = True) -> Sequence[Notification]: ...


class Positions(Protocol):
    """Where the relay's own position is kept (the state database's tracking table)."""

    def load(self) -> int: ...

    def save(self, position: int) -> None: ...


class Producer(Protocol):
    """aiokafka's producer, as the relay uses it."""

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]: ...


KeyOf = Callable[[Notification, Any], str]


def backoff(failures: int) -> float:
    """Seconds to wait after the n-th failure in a row to reach the broker: 1, 2, 4 … 30."""
    return min(0.5 * 2.0 ** failures, RETRY_MAX_SECONDS)


async def relay_once(producer: Producer, recorder: LogSource, after: int, key_of: KeyOf,
                     mapper: Mapper[Any], limit: int = 500) -> int:
    """Publish the next batch of the log after `after` and wait for the broker's
    acknowledgements; returns the position reached (to be committed by the caller). aiokafka
    keeps one batch in flight per partition, so a partition gets the facts in log order."""
    batch = await asyncio.to_thread(recorder.select_notifications, after, limit,
                                    inclusive_of_start=False)
    pending = []
    for notification in batch:
        key = key_of(notification, mapper.to_domain_event(notification))
        pending.append(await producer.send(TOPIC, value=encode(notification).dumps(),
                                           key=key.encode()))
    await asyncio.gather(*pending)
    return batch[-1].id if batch else after


class Relay:
    """Runs while this process holds the relay's lease (one relay across all workers)."""

    def __init__(self, options: KafkaOptions, recorder: LogSource, mapper: Mapper[Any],
                 key_of: KeyOf, positions: Positions, leading: Callable[[], bool],
                 poll: float = 1.0) -> None:
        self.options = options
        self.recorder = recorder
        self.mapper = mapper
        self.key_of = key_of
        self.positions = positions
        self.leading = leading
        self.poll = poll
        self.error: str | None = None
        self.woken = asyncio.Event()

    def wake(self) -> None:
        """Something was saved (called on the event loop: PostgreSQL's LISTEN)."""
        self.woken.set()

    async def run(self, stopped: asyncio.Event) -> None:
        producer: AIOKafkaProducer | None = None
        failures = 0
        try:
            while not stopped.is_set():
                self.woken.clear()  # before reading: a fact saved from here on wakes the pause
                if not await asyncio.to_thread(self.leading):
                    await self._pause(stopped, self.poll)
                    continue
                try:
                    if producer is None:
                        await ensure_topic(self.options)
                        producer = AIOKafkaProducer(bootstrap_servers=self.options.bootstrap,
                                                    acks="all", request_timeout_ms=REQUEST_MS)
                        await producer.start()
                        log.info("relay publishing to %s on %s", TOPIC, self.options.url)
                    moved = await self._publish(producer)
                except (KafkaError, OSError, RuntimeError) as exc:
                    failures += 1
                    wait = backoff(failures)
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.warning("relay: Kafka at %s does not answer (%s); publishing again from "
                                "its committed position in %.0f s", self.options.url,
                                self.error, wait)
                    await self._drop(producer)
                    producer = None
                    await self._pause(stopped, wait)
                    continue
                failures, self.error = 0, None
                if not moved:
                    await self._pause(stopped, self.poll)
        finally:
            await self._drop(producer)

    async def _publish(self, producer: Producer) -> bool:
        at = await asyncio.to_thread(self.positions.load)
        reached = await relay_once(producer, self.recorder, at, self.key_of, self.mapper)
        if reached == at:
            return False
        await asyncio.to_thread(self.positions.save, reached)
        return True

    async def _pause(self, stopped: asyncio.Event, seconds: float) -> None:
        """Until woken (a fact was saved), stopped, or `seconds` have passed."""
        waits = [asyncio.ensure_future(self.woken.wait()), asyncio.ensure_future(stopped.wait())]
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()

    @staticmethod
    async def _drop(producer: AIOKafkaProducer | None) -> None:
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()
