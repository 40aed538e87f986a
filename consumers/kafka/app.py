"""Builds the faust app for `alphabet worker`: nothing connects until the worker starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from consumers.kafka.records import FactRecord

TOPIC = "alphabet.facts"


@dataclass(frozen=True)
class KafkaOptions:
    """What an operator chooses: the broker, the consumer group (faust's app id), the facts
    topic's partition count (how many workers can share the agents), and the session timeout
    (how soon the group notices a dead worker and gives its partitions to the others)."""

    url: str
    group: str = "alphabet-events"
    partitions: int = 8
    session_seconds: float = 6.0

    @property
    def bootstrap(self) -> list[str]:
        """host:port of each broker in faust's URL (kafka://h1:9092;h2:9092)."""
        return [server.strip().removeprefix("kafka://")
                for server in self.url.replace(";", ",").split(",") if server.strip()]


@dataclass
class KafkaWorker:
    app: faust.App
    facts: Any  # faust topic of FactRecord keyed by event id


def create_faust_app(options: KafkaOptions) -> KafkaWorker:
    """faust's defaults suit long-lived stream jobs: a 60 s session and rebalance timeout meant a
    killed worker's partitions waited minutes for a new owner. Here a dead member is noticed
    within `session_seconds` (heartbeats at a sixth of it, so a busy loop missing one is no
    death), a rebalance waits for the others at most twice that, and offsets are committed
    every second, so a takeover replays at most a second of facts (each is applied
    idempotently). faust's own web server stays off: the worker serves its health itself
    (alphabet.worker), before faust has partitions."""
    session = options.session_seconds
    app = faust.App(
        options.group,
        broker=options.url,
        store="memory://",
        value_serializer="json",
        topic_partitions=options.partitions,
        web_enabled=False,
        broker_session_timeout=session,
        broker_heartbeat_interval=session / 6,
        broker_rebalance_timeout=session * 2,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
    )
    facts = app.topic(TOPIC, key_type=str, value_type=FactRecord,
                      partitions=options.partitions)
    return KafkaWorker(app, facts)
