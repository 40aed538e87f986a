"""The mail and remind agents. They only hand each record, with its place in its partition, to
the ledger, which applies it through the same handler the embedded follower uses (MailQueue,
RemindersView)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from consumers.kafka.app import KafkaWorker
from consumers.kafka.ledger import Ledger


def add_agents(worker: KafkaWorker, ledger: Ledger) -> dict[str, Any]:
    """One agent per handler. Both read every record of the partitions this worker is given;
    faust commits a record's offset once both have returned from it, and the ledger holds what
    each has applied (faust may commit past a record that was not)."""
    agents = {}
    for name in ledger.handlers:

        def make(name: str) -> Any:
            async def agent(stream: Any) -> AsyncIterator[int]:
                async for event in stream.events():
                    message = event.message
                    await ledger.handle(name, message.partition, message.offset, event.value)
                    yield event.value.position

            agent.__name__ = name
            return agent

        agents[name] = worker.app.agent(worker.facts, name=name)(make(name))
    return agents
