"""The mail and remind agents, and the relay that feeds them. Agents only decode a record and
hand the fact to the same handler the embedded follower uses (MailQueue, RemindersView)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification

from consumers.kafka.app import KafkaWorker
from consumers.kafka.records import FactRecord

log = logging.getLogger(__name__)


class Handler(Protocol):
    """A tracked consumer's handler (consumers.mail.MailQueue, consumers.remind.RemindersView)."""

    name: str

    def apply(self, conn: Any, position: int, fact: Any, suffix: str = "") -> None: ...


class Database(Protocol):
    def write(self) -> Any: ...


def decode(mapper: Mapper[Any], record: FactRecord) -> Any:
    return mapper.to_domain_event(Notification(
        id=record.position,
        originator_id=UUID(record.originator_id),
        originator_version=record.originator_version,
        topic=record.topic,
        state=record.state.encode(),
    ))


def encode(notification: Notification) -> FactRecord:
    return FactRecord(
        position=notification.id,
        originator_id=str(notification.originator_id),
        originator_version=notification.originator_version,
        topic=notification.topic,
        state=notification.state.decode(),
    )


def handle(db: Database, handler: Handler, mapper: Mapper[Any], record: FactRecord) -> None:
    """Apply one fact. Kafka redelivers after a crash, so this must be idempotent: the handlers'
    writes are upserts and inserts ON CONFLICT DO NOTHING keyed by deterministic ids."""
    with db.write() as conn:
        handler.apply(conn, record.position, decode(mapper, record))


def add_agents(worker: KafkaWorker, db: Database, mapper: Mapper[Any],
               handlers: Sequence[Handler]) -> dict[str, Any]:
    """One agent per handler, each in its own consumer group position on the facts topic."""
    agents = {}
    for handler in handlers:

        def make(handler: Handler) -> Any:
            async def agent(stream: AsyncIterator[FactRecord]) -> AsyncIterator[int]:
                async for record in stream:
                    await asyncio.to_thread(handle, db, handler, mapper, record)
                    yield record.position

            agent.__name__ = handler.name
            return agent

        agents[handler.name] = worker.app.agent(worker.facts, name=handler.name)(make(handler))
    return agents


class LogSource(Protocol):
    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *,
                             inclusive_of_start: bool = True) -> Sequence[Notification]: ...


async def relay_once(worker: KafkaWorker, recorder: LogSource, after: int,
                     key_of: Callable[[Notification, Any], str], mapper: Mapper[Any],
                     limit: int = 500) -> int:
    """Publish the next batch of the log after `after`, keyed by event id, and wait for the
    broker's acknowledgements; returns the position reached (to be tracked by the caller)."""
    batch = await asyncio.to_thread(recorder.select_notifications, after, limit,
                                    inclusive_of_start=False)
    pending = []
    for notification in batch:
        key = key_of(notification, mapper.to_domain_event(notification))
        pending.append(await worker.facts.send(key=key, value=encode(notification)))
    for future in pending:
        await future
    return batch[-1].id if batch else after
