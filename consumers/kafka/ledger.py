"""What each agent has applied of each partition, kept in the state database with the writes
the record brought (one transaction): a record is applied only when it is the next one its
partition's ledger expects, and a record the group moved past unapplied is read again from the
topic and applied.

faust's offsets cannot be the only record of what was handled. faust acks a record whose
handling raised or was cancelled, skips and acks a fetched record of an earlier group
generation, and counts a jump in offsets as a gap already handled; after any of these the
group's committed offset can pass records no agent applied, and their emails are never sent
(seen in CI: a worker killed mid-stream, its survivor never mailing one event's changes). The
ledger does not depend on any of that: whatever faust delivers or commits, each handler applies
each partition's records once, in order, and a sweep fills what the group committed past."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from eventsourcing.persistence import Mapper

from consumers.kafka.app import TOPIC, KafkaOptions
from consumers.kafka.broker import REQUEST_MS, GroupLag
from consumers.kafka.records import FactRecord, decode
from consumers.kafka.relay import backoff
from domain.storage import Database, Handler

log = logging.getLogger(__name__)

T = TypeVar("T")

LEDGER_SCHEMA = """CREATE TABLE IF NOT EXISTS kafka_applied (
    handler TEXT NOT NULL,
    part INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    last_position BIGINT NOT NULL,
    PRIMARY KEY (handler, part)
)"""

# Takes the ledger row's lock (made where missing: a partition is read from offset 0) and
# answers the offset it expects and the latest log position it has applied, so that two
# workers briefly given one partition never apply its records twice or out of order.
EXPECTED = ("INSERT INTO kafka_applied VALUES (?, ?, 0, 0) ON CONFLICT (handler, part) DO "
            "UPDATE SET next_offset = kafka_applied.next_offset "
            "RETURNING next_offset, last_position")
# Only ever forward: another worker may have gone further meanwhile.
MOVE = ("UPDATE kafka_applied SET next_offset = ? WHERE handler = ? AND part = ? "
        "AND next_offset < ?")
APPLIED = ("UPDATE kafka_applied SET next_offset = ?, last_position = CASE WHEN "
           "last_position > ? THEN last_position ELSE ? END WHERE handler = ? AND part = ?")
RESTART = ("UPDATE kafka_applied SET next_offset = ?, last_position = 0 "
           "WHERE handler = ? AND part = ?")

# How long a read of the topic waits for records before it gives up until the next sweep.
READ_MS = 5000

# How often each worker compares the group's committed offsets with the ledger.
SWEEP_SECONDS = 2.0


class Ledger:
    """Applies records through the handlers, each at most once and in its partition's order,
    retrying a failed one (never skipping it), and reads back from the topic what faust let
    pass unapplied."""

    def __init__(self, db: Database, mapper: Mapper[Any], handlers: Sequence[Handler],
                 options: KafkaOptions, announce: str | None = None) -> None:
        """`announce`: a statement sent in each record's transaction (on PostgreSQL a NOTIFY,
        delivered at commit, that wakes the mailer of whichever worker holds its lease)."""
        self.db = db
        self.announce = announce
        self.mapper = mapper
        self.handlers = {handler.name: handler for handler in handlers}
        self.options = options
        # one applier at a time per handler and partition in this process (the agent, a fill)
        self.locks: dict[tuple[str, int], asyncio.Lock] = defaultdict(asyncio.Lock)

    def apply(self, name: str, partition: int, offset: int, record: FactRecord) -> int:
        """Applies the record when it is the one expected; returns the offset expected next
        (past `offset` when it is applied, now or before)."""
        with self.db.write() as conn:
            row = conn.execute(EXPECTED, (name, partition)).fetchone()
            expected, seen = int(row["next_offset"]), int(row["last_position"])
            if offset < expected and record.position > seen:
                # Not a redelivery: a fact newer than any applied here, at an offset passed
                # already. The topic was made again (or truncated), and the relay goes on
                # from its own position, so the partition starts over.
                log.warning("%s: partition %d starts over at offset %d (expected %d) with a "
                            "newer fact (%d); the topic was made again", name, partition,
                            offset, expected, record.position)
                conn.execute(RESTART, (offset, name, partition))
                expected = offset
            if expected != offset:
                return expected
            self.handlers[name].apply(conn, record.position, decode(self.mapper, record))
            conn.execute(APPLIED, (offset + 1, record.position, record.position, name,
                                   partition))
            if self.announce:
                conn.execute(self.announce)
        return offset + 1

    def move(self, name: str, partition: int, offset: int) -> None:
        with self.db.write() as conn:
            conn.execute(EXPECTED, (name, partition))
            conn.execute(MOVE, (offset, name, partition, offset))

    def expected(self) -> dict[tuple[str, int], int]:
        return {(row["handler"], int(row["part"])): int(row["next_offset"]) for row in
                self.db.connection().execute("SELECT * FROM kafka_applied")}

    async def handle(self, name: str, partition: int, offset: int, record: FactRecord) -> None:
        """The agent's call for each record faust gives it."""
        async with self.locks[(name, partition)]:
            expected = await self._retrying(self.apply, name, partition, offset, record)
            if expected < offset:  # records before this one were passed over: them first
                await self._fill(name, partition, expected, offset + 1)

    async def sweeps(self, assigned: Callable[[], Iterable[int]], group: GroupLag) -> None:
        """Sweeps every SWEEP_SECONDS for as long as the worker runs (`group`'s clients are
        the sweep's own, closed when it ends)."""
        try:
            while True:
                try:
                    await self.sweep(assigned, group.committed)
                except Exception as exc:  # the broker or the database away: the next pass
                    log.warning("ledger sweep failed (%s: %s); trying again",
                                type(exc).__name__, exc)
                await asyncio.sleep(SWEEP_SECONDS)
        finally:
            await group.close()

    async def sweep(self, assigned: Callable[[], Iterable[int]],
                    committed: Callable[[], Awaitable[dict[int, int]]]) -> None:
        """One pass: for the partitions this worker is given, reads back what the group has
        committed and a handler has not applied (no later record of theirs may come to show
        the gap to the agent)."""
        done: dict[int, int] = await committed()
        expected = await asyncio.to_thread(self.expected)
        for partition in assigned():
            end = done.get(partition, -1)
            for name in self.handlers:
                if expected.get((name, partition), 0) < end:
                    async with self.locks[(name, partition)]:  # the agent may be on it
                        start = (await asyncio.to_thread(self.expected)).get((name, partition), 0)
                        if start < end:
                            await self._fill(name, partition, start, end)

    async def _fill(self, name: str, partition: int, start: int, end: int) -> None:
        """Applies the records from `start` up to `end` (exclusive), read from the topic with a
        consumer of its own that joins no group. Offsets the topic no longer holds (retention)
        or never had are passed, saying so."""
        log.warning("%s: records %d-%d of partition %d were passed over unapplied; reading "
                    "them again from %s", name, start, end - 1, partition, TOPIC)
        async for offset, record in self._read(partition, start, end):
            if offset > start:
                log.warning("%s: partition %d holds no records %d-%d; going on from %d", name,
                            partition, start, offset - 1, offset)
                await self._retrying(self.move, name, partition, offset)
            start = await self._retrying(self.apply, name, partition, offset, record)
            if start >= end:  # another worker may have gone further meanwhile
                return

    async def _read(self, partition: int, start: int, end: int
                    ) -> AsyncIterator[tuple[int, FactRecord]]:
        """The partition's records from `start` (from its first, where retention removed
        `start`) up to `end`, or as far as it answers within READ_MS (the next sweep goes
        on)."""
        tp = TopicPartition(TOPIC, partition)
        reader = AIOKafkaConsumer(bootstrap_servers=self.options.bootstrap,
                                  request_timeout_ms=REQUEST_MS, enable_auto_commit=False,
                                  auto_offset_reset="earliest")
        await reader.start()
        try:
            reader.assign([tp])
            reader.seek(tp, start)
            # not bounded by the partition's end offset: Tansu reports a stale one at times
            while start < end:
                batch = await reader.getmany(tp, timeout_ms=READ_MS, max_records=500)
                if not batch:
                    log.warning("partition %d gave no records from %d within %d ms",
                                partition, start, READ_MS)
                    return
                for message in batch.get(tp, []):
                    if message.offset >= end:
                        return
                    start = message.offset + 1
                    yield message.offset, FactRecord.loads(message.value, serializer="json")
        finally:
            await reader.stop()

    @staticmethod
    async def _retrying(call: Callable[..., T], *args: Any) -> T:
        """Runs a database call in a thread until it succeeds: a record is never given up."""
        failures = 0
        while True:
            try:
                return await asyncio.to_thread(call, *args)
            except Exception:
                failures += 1
                wait = backoff(failures)
                log.exception("applying a Kafka record failed; trying again in %.0f s", wait)
                await asyncio.sleep(wait)
