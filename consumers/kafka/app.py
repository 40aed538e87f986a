"""Builds the faust app for `alphabet worker`: nothing connects until the worker starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from consumers.kafka.records import FactRecord

TOPIC = "alphabet.facts"


@dataclass
class KafkaWorker:
    app: faust.App
    facts: Any  # faust topic of FactRecord keyed by event id


def create_faust_app(broker: str, app_id: str = "alphabet-events") -> KafkaWorker:
    app = faust.App(app_id, broker=broker, store="memory://", value_serializer="json",
                    topic_partitions=8)
    facts = app.topic(TOPIC, key_type=str, value_type=FactRecord)
    return KafkaWorker(app, facts)
