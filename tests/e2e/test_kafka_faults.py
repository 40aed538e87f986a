"""Faults of the scale-out stack, each with nothing lost: a worker killed mid-stream (or frozen,
so its partitions lag behind the others'), a cold start, the broker stopped and started again
on its durable storage while writes go on, and the SMTP server down for a while. The broker
keeps its data in S3 (moto's server on loopback), so it can restart. Timings are printed, and
measured properly by bench/kafka.py; here only "eventually" is asserted."""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest
from aiokafka.partitioner import DefaultPartitioner

from tests.conftest import Person, Server, event_body, fresh, sign_up
from tests.e2e.kafka_stack import (
    Broker,
    Expected,
    S3Store,
    TimedInbox,
    Worker,
    all_arrive,
    read_topic,
    running,
    tally,
    timed_smtp,
    wait_for,
)
from tests.integration.test_mail import SmtpServer

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

PARTITIONS = 4


@dataclass
class Stack:
    server: Server
    broker: Broker
    smtp: SmtpServer
    owner: Person
    guests: list[Person]

    def worker(self) -> Worker:
        return Worker(self.server).start()

    def arrivals(self) -> list[tuple[float, str]]:
        inbox = self.smtp.inbox
        assert isinstance(inbox, TimedInbox)
        return list(inbox.arrivals)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("kafka-faults")
    smtp = timed_smtp().start()
    store = S3Store(base).start()
    broker = Broker(base, store).start()
    env = {"ALPHABET_KAFKA_URL": broker.url, "ALPHABET_SMTP_URL": smtp.url,
           "ALPHABET_SECRET_KEY": secrets.token_urlsafe(48),
           "ALPHABET_KAFKA_PARTITIONS": str(PARTITIONS)}
    with fresh("postgres") as database:
        server = Server(tmp_path_factory.mktemp("serve") / "data", backend=database, env=env)
        with running(smtp, store, broker, server):
            server.start()
            with httpx.Client(base_url=server.url, timeout=30) as http:
                owner = sign_up(http, "owner")
                guests = [sign_up(http, "guest") for _ in range(3)]
            yield Stack(server, broker, smtp, owner, guests)


@dataclass
class Writes:
    """Events created through the API, with the emails they should bring (each is created with
    two guests, then renamed: four emails)."""

    stack: Stack
    expected: Expected = field(default_factory=Expected)
    ids: list[str] = field(default_factory=list)

    def one(self, http: httpx.Client, n: int) -> str:
        guests = [self.stack.guests[n % 3], self.stack.guests[(n + 1) % 3]]
        owner = self.stack.owner
        answer = http.post("/api/events/", headers=owner.headers, json=event_body(
            name=f"Write {n}", participants=[g.username for g in guests]))
        assert answer.status_code == 201, answer.text
        event_id = answer.json()["event"]["id"]
        self.expected.add(event_id, 1, [g.id for g in guests], "created")
        answer = http.put(f"/api/event/{event_id}", json={"name": f"Write {n}, renamed"},
                          headers=owner.headers)
        assert answer.status_code == 200, answer.text
        self.expected.add(event_id, 2, [g.id for g in guests], "updated")
        self.ids.append(event_id)
        return str(event_id)

    def many(self, count: int, pause: float = 0.0) -> None:
        with httpx.Client(base_url=self.stack.server.url, timeout=60) as http:
            for n in range(count):
                self.one(http, n)
                time.sleep(pause)

    def in_background(self, count: int, pause: float) -> threading.Thread:
        thread = threading.Thread(target=self.many, args=(count, pause), daemon=True)
        thread.start()
        return thread


def partition_of(event_id: str) -> int:
    """Where the relay puts an event's facts (aiokafka's default partitioner, by event id)."""
    every = list(range(PARTITIONS))
    return int(DefaultPartitioner()(event_id.encode(), every, every))


def leader(workers: list[Worker]) -> Worker:
    """The worker holding the mailer's lease (with the relay and the clock, started first)."""
    return next(w for w in workers if (w.consuming() or {}).get("roles", {}).get("mailer"))


def test_a_killed_worker_is_replaced_by_the_other_and_no_email_is_lost(stack: Stack) -> None:
    workers = [stack.worker(), stack.worker()]
    with running(*workers):
        for worker in workers:
            worker.wait_consuming()
        head = last_position(stack)
        writes = Writes(stack)
        writer = writes.in_background(40, 0.1)
        wait_for(lambda: len(writes.ids) >= 10, "ten events written")
        victim = wait_for(lambda: leader(workers), "a worker holds the mailer's lease")
        survivor = next(w for w in workers if w is not victim)
        killed = time.monotonic()
        victim.kill()
        wait_for(lambda: len((survivor.consuming() or {}).get("assigned", [])) == PARTITIONS,
                 "the survivor has every partition")
        takeover = time.monotonic() - killed
        writer.join()
        # the relay's part first (the killed worker held its lease): every fact on the topic
        wanted = set(range(head + 1, last_position(stack) + 1))
        wait_for(lambda: wanted <= set(published(stack.broker)),
                 lambda: f"facts not on the topic: {sorted(wanted - set(published(stack.broker)))}")
        repeats = all_arrive(stack.smtp, writes.expected, "every email across the kill")
        resumed = min(t for t, _ in stack.arrivals() if t > killed) - killed
        assert survivor.consuming() is not None
    print(f"\nkill: {len(writes.expected.ids)} emails, {repeats} repeats; partitions taken "
          f"over in {takeover:.1f} s, mail resumed {resumed:.1f} s after the kill")


def test_a_frozen_worker_lags_behind_the_other_and_its_late_emails_still_go(
    stack: Stack,
) -> None:
    """The mailer must not take a later fact's emails, delivered, to mean that every earlier
    fact's are: through Kafka an earlier fact can be handled after them."""
    first = stack.worker()
    with running(first):
        first.wait_consuming()  # the first worker takes the relay's and the mailer's leases
        second = stack.worker()
        with running(second):
            mine = set(wait_for(lambda: (second.consuming() or {}).get("assigned"),
                                "the second worker has partitions"))
            writes = Writes(stack)
            assert second.process is not None
            second.process.send_signal(signal.SIGSTOP)
            with httpx.Client(base_url=stack.server.url, timeout=60) as http:
                # events until one is on the frozen worker's partitions
                late = next(e for n in range(100) if partition_of(e := writes.one(http, n))
                            in mine)
                # then one on the other worker's: its emails are sent first
                for n in range(100):
                    after = Writes(stack)
                    if partition_of(after.one(http, n)) not in mine:
                        break
            all_arrive(stack.smtp, after.expected, "the emails of the later event")
            second.process.send_signal(signal.SIGCONT)
            all_arrive(stack.smtp, writes.expected, f"the emails of {late}, handled late")


def test_the_first_email_arrives_soon_after_a_cold_start(stack: Stack) -> None:
    writes = Writes(stack)
    started = time.monotonic()
    worker = stack.worker()
    with running(worker):
        writes.many(1)
        all_arrive(stack.smtp, writes.expected, "the first emails after a cold start")
        first = min(t for t, message in stack.arrivals() if message in writes.expected.ids)
    print(f"\ncold start: first email {first - started:.1f} s after the worker started")


def last_position(stack: Stack) -> int:
    return int(stack.server.rows("SELECT max(notification_id) FROM alphabet_events")[0][0])


def published(broker: Broker) -> Counter[int]:
    """How many times each log position is on the facts topic."""
    return Counter(position for _, _, position in read_topic(broker))


def test_the_broker_restarting_while_writes_go_on_loses_nothing(stack: Stack) -> None:
    workers = [stack.worker(), stack.worker()]
    with running(*workers):
        for worker in workers:
            worker.wait_consuming()
        head = last_position(stack)
        before = published(stack.broker)
        writes = Writes(stack)
        writer = writes.in_background(30, 0.2)
        wait_for(lambda: len(writes.ids) >= 5, "five events written")
        stack.broker.stop()
        down = time.monotonic()
        wait_for(lambda: len(writes.ids) >= 15, "writes go on while the broker is down")
        stack.broker.start()
        writer.join()
        repeats = all_arrive(stack.smtp, writes.expected, "every email across the restart")
        back = min(t for t, _ in stack.arrivals() if t > down) - down
        # the relay went on from its committed position: no fact skipped, at most a batch
        # published twice, and nothing of the log before re-sent
        after = published(stack.broker)
        last = last_position(stack)
        assert all(after[position] for position in range(head + 1, last + 1))
        twice = sum(after[position] - 1 for position in range(head + 1, last + 1))
        assert twice <= 500
        assert {p: n for p, n in after.items() if p <= head} == before
        for worker in workers:
            wait_for(worker.consuming, "the worker consumes again")
    print(f"\nbroker restart: {len(writes.expected.ids)} emails, {repeats} repeats, "
          f"{twice} records published twice; first email {back:.1f} s after the "
          "broker went down")


def test_records_the_group_committed_unapplied_are_read_again_from_the_topic(
    stack: Stack,
) -> None:
    """faust commits past a record whose handling raised or was cancelled, or one it fetched
    in an earlier generation of the group. Here the mail view's ledger is set back over one
    event's two records, its outbox rows and deliveries gone, after the group committed past
    them, as if faust had done so: no later record of that partition comes, and the worker's
    sweep reads them again from the topic, so their emails go (again)."""
    worker = stack.worker()
    with running(worker):
        worker.wait_consuming()
        writes = Writes(stack)
        writes.many(3)
        all_arrive(stack.smtp, writes.expected, "the emails of three events")
        wait_for(lambda: (worker.consuming() or {}).get("lag", {}).get("total") == 0,
                 "the group commits past every record")
        event_id = writes.ids[-1]
        positions = {row[0] for row in stack.server.rows(
            "SELECT position FROM mail_outbox WHERE event_id = ?", (event_id,))}
        offsets = [offset for partition, offset, position in read_topic(stack.broker)
                   if position in positions and partition == partition_of(event_id)]
        assert len(offsets) >= 2, offsets
        ids = {m for m in writes.expected.ids if event_id in m}
        sent = Counter(r.message_id for r in stack.smtp.received() if r.message_id in ids)
        assert set(sent) == ids and len(ids) == 4
        url = stack.server.backend.url
        assert url is not None
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            conn.execute("DELETE FROM mail_delivery WHERE message_id IN (SELECT message_id "
                         "FROM mail_outbox WHERE event_id = %s)", (event_id,))
            conn.execute("DELETE FROM mail_outbox WHERE event_id = %s", (event_id,))
            conn.execute("UPDATE kafka_applied SET next_offset = %s WHERE handler = 'mail' "
                         "AND part = %s", (min(offsets), partition_of(event_id)))

        def again() -> bool:
            now = Counter(r.message_id for r in stack.smtp.received() if r.message_id in ids)
            return all(now[m] > sent[m] for m in ids)

        wait_for(again, "the passed-over event's emails, sent again")
        assert "passed over unapplied" in worker.log()


def test_an_smtp_outage_loses_nothing(stack: Stack) -> None:
    worker = stack.worker()
    with running(worker):
        worker.wait_consuming()
        stack.smtp.stop()
        writes = Writes(stack)
        writes.many(5)
        wait_for(lambda: stack.server.rows(
            "SELECT count(*) FROM mail_delivery WHERE outcome LIKE 'retrying%'")[0][0] > 0,
            "the mailer finds SMTP down", every=0.5)
        assert tally(stack.smtp, writes.expected)[0] == writes.expected.ids
        stack.smtp.start()
        repeats = all_arrive(stack.smtp, writes.expected, "every email after the outage")
    print(f"\nSMTP outage: {len(writes.expected.ids)} emails, {repeats} repeats")
