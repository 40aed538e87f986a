"""The mail and remind agents. They only decode a record and hand the fact to the same handler
the embedded follower uses (MailQueue, RemindersView)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from eventsourcing.persistence import Mapper

from consumers.kafka.app import KafkaWorker
from consumers.kafka.records import FactRecord, decode
from domain.storage import Database, Handler

log = logging.getLogger(__name__)


def handle(db: Database, handler: Handler, mapper: Mapper[Any], record: FactRecord) -> None:
    """Apply one fact. Kafka redelivers after a crash, so this must be idempotent: the handlers'
    writes are upserts and inserts ON CONFLICT DO NOTHING keyed by deterministic ids."""
    with db.write() as conn:
        handler.apply(conn, record.position, decode(mapper, record))


def add_agents(worker: KafkaWorker, db: Database, mapper: Mapper[Any],
               handlers: Sequence[Handler]) -> dict[str, Any]:
    """One agent per handler. Both read every record of the partitions this worker is given,
    and faust commits a record's offset once both have handled it."""
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
