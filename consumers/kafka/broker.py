"""What the worker asks the broker itself, beside faust: that the facts topic exists with the
chosen partition count (before anything produces to it), and the consumer group's committed
offsets: how far it is behind the topic's end (its lag, for the worker's health), and how far
the ledger's sweep may read (consumers.kafka.ledger)."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from consumers.kafka.app import TOPIC, KafkaOptions

log = logging.getLogger(__name__)

# How long one question to the broker may take before it counts as unreachable.
REQUEST_MS = 5000


async def ensure_topic(options: KafkaOptions) -> int:
    """Create the facts topic with `options.partitions` where missing; returns the partition
    count it has. A topic made earlier with another count is left as it is (adding partitions
    would move events' keys to other partitions while older facts of theirs wait in the old
    ones, breaking their order), and the difference is logged."""
    admin = AIOKafkaAdminClient(bootstrap_servers=options.bootstrap, request_timeout_ms=REQUEST_MS)
    await admin.start()
    try:
        try:
            response = await admin.create_topics([NewTopic(TOPIC, options.partitions, 1)])
            error = next((error for _, error, *_ in response.topic_errors if error), 0)
            if error and error != TopicAlreadyExistsError.errno:
                raise RuntimeError(f"the broker refused to create {TOPIC} (error {error})")
        except TopicAlreadyExistsError:
            pass
        described: list[dict[str, Any]] = await admin.describe_topics([TOPIC])
        count = len(described[0]["partitions"]) if described else 0
    finally:
        await admin.close()
    if count != options.partitions:
        log.warning("topic %s has %d partitions, not the %d of ALPHABET_KAFKA_PARTITIONS; "
                    "keeping it as it is (changing it would break one event's order)",
                    TOPIC, count, options.partitions)
    return count


class GroupLag:
    """The consumer group's committed offset against the end of each partition of the facts
    topic, through clients of its own that join no group."""

    def __init__(self, options: KafkaOptions) -> None:
        self.options = options
        self.admin: AIOKafkaAdminClient | None = None
        self.ends: AIOKafkaConsumer | None = None

    async def measure(self) -> dict[int, int]:
        """Partition → records not yet committed by the group (all of them before its first
        commit; never below 0: Tansu can report a stale end). Raises the client's error when
        the broker does not answer."""
        ends, committed = await self._offsets()
        return {p: max(end - max(committed.get(p, 0), 0), 0) for p, end in ends.items()}

    async def committed(self) -> dict[int, int]:
        """Partition → the group's committed offset (-1 or missing before its first commit)."""
        return (await self._offsets())[1]

    async def _offsets(self) -> tuple[dict[int, int], dict[int, int]]:
        """Each partition's end and the group's committed offset."""
        try:
            if self.admin is None or self.ends is None:
                self.admin = AIOKafkaAdminClient(bootstrap_servers=self.options.bootstrap,
                                                 request_timeout_ms=REQUEST_MS)
                await self.admin.start()
                self.ends = AIOKafkaConsumer(bootstrap_servers=self.options.bootstrap,
                                             request_timeout_ms=REQUEST_MS)
                await self.ends.start()
            await self.ends.topics()  # fresh metadata: the topic's partitions
            partitions = [TopicPartition(TOPIC, p)
                          for p in sorted(self.ends.partitions_for_topic(TOPIC) or [])]
            ends = await self.ends.end_offsets(partitions)
            committed = await self.admin.list_consumer_group_offsets(
                self.options.group, partitions=partitions)
        except Exception:
            await self.close()
            raise
        return ({tp.partition: ends[tp] for tp in partitions},
                {tp.partition: committed[tp].offset for tp in partitions if tp in committed})

    async def close(self) -> None:
        if self.admin is not None:
            await self.admin.close()
        if self.ends is not None:
            await self.ends.stop()
        self.admin = self.ends = None
