"""`alphabet worker` as an operator meets it, against a real broker (Tansu, in memory): the topic
gets the configured partition count and the group its name, the health endpoint shows the lag,
SIGTERM commits the offsets and leaves, and a broker that is down at start is reported clearly
and retried until it answers."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.conftest import Backend, Server, event_body, free_port, fresh, sign_up
from tests.e2e.kafka_stack import (
    Broker,
    Expected,
    Worker,
    all_arrive,
    read_topic,
    running,
    timed_smtp,
    wait_for,
)
from tests.integration.test_mail import SmtpServer

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = timed_smtp().start()
    yield server
    server.stop()


@pytest.fixture
def database() -> Iterator[str]:
    with fresh("postgres") as made:
        assert made.url
        yield made.url


def serving(tmp_path: Path, database: str, env: dict[str, str]) -> Server:
    (tmp_path / "serve").mkdir()
    return Server(tmp_path / "serve" / "data", backend=Backend("postgres", database),
                  env={"ALPHABET_SECRET_KEY": secrets.token_urlsafe(48), **env})


def write(server: Server, count: int) -> Expected:
    """`count` events, each with one guest: one email each."""
    expected = Expected()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        owner, guest = sign_up(http, "owner"), sign_up(http, "guest")
        for n in range(count):
            answer = http.post("/api/events/", headers=owner.headers, json=event_body(
                name=f"Event {n}", participants=[guest.username]))
            assert answer.status_code == 201, answer.text
            expected.add(answer.json()["event"]["id"], 1, [guest.id], "created")
    return expected


def group_offsets(broker: Broker, group: str) -> tuple[int, dict[int, int], dict[int, int]]:
    """(the facts topic's partition count, each partition's end as its records show it, the
    group's committed offsets)."""

    async def ask() -> tuple[int, dict[int, int]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.url.removeprefix("kafka://"))
        await admin.start()
        try:
            topic = (await admin.describe_topics(["alphabet.facts"]))[0]
            partitions = [TopicPartition("alphabet.facts", p["partition"])
                          for p in topic["partitions"]]
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
        finally:
            await admin.close()
        return len(partitions), {tp.partition: o.offset for tp, o in committed.items()}

    count, committed = asyncio.run(ask())
    ends = {p: 0 for p in range(count)}
    for partition, offset, _ in read_topic(broker):
        ends[partition] = max(ends[partition], offset + 1)
    return count, ends, committed


def test_the_topic_has_the_configured_partitions_and_sigterm_commits_and_leaves(
    tmp_path: Path, database: str, smtp: SmtpServer,
) -> None:
    broker = Broker(tmp_path).start()
    env = {"ALPHABET_KAFKA_URL": broker.url, "ALPHABET_SMTP_URL": smtp.url,
           "ALPHABET_KAFKA_PARTITIONS": "3", "ALPHABET_KAFKA_GROUP": "mail-and-reminders"}
    server = serving(tmp_path, database, env)
    worker, again = Worker(server), Worker(server)
    with running(broker, server, worker, again):
        server.start()
        report = worker.start().wait_consuming()
        assert (report["group"], report["assigned"]) == ("mail-and-reminders", [0, 1, 2])
        expected = write(server, 30)
        all_arrive(smtp, expected, "the emails")
        worker.terminate()  # SIGTERM, as an orchestrator stops it
        assert worker.process is not None and worker.process.returncode == 0, worker.log()
        count, ends, committed = group_offsets(broker, "mail-and-reminders")
        assert count == 3 and sum(ends.values()) > 30
        assert committed == ends  # everything handled was committed on the way out

        more = write(server, 30)  # while no worker runs
        again.start().wait_consuming()
        all_arrive(smtp, more, "the emails written while no worker ran")


def test_a_broker_down_at_start_is_reported_and_retried_and_the_lag_is_shown(
    tmp_path: Path, database: str, smtp: SmtpServer,
) -> None:
    port = free_port()
    env = {"ALPHABET_KAFKA_URL": f"kafka://127.0.0.1:{port}", "ALPHABET_SMTP_URL": smtp.url}
    server = serving(tmp_path, database, env)
    worker = Worker(server)
    broker = Broker(tmp_path, port=port)
    with running(broker, server, worker):
        server.start()
        # 9 facts waiting in the log: 2 sign-ups, the owner's Ownership opened and each of the 3
        # events added to it, and the 3 events' Created.
        expected = write(server, 3)
        worker.start()
        status, report = wait_for(worker.health, "the worker's health answers")
        assert status == 503 and report["status"] == "broker unreachable", report
        assert "KafkaConnectionError" in report["broker_error"], report
        assert report["relay"]["lag"] == 9 and report["relay"]["position"] == 0, report
        wait_for(lambda: "cannot be reached" in worker.log(), "the log says what is wrong")

        broker.start()
        wait_for(worker.consuming, "the worker consumes once the broker is up")
        all_arrive(smtp, expected, "the emails written before the broker came up")
        caught_up = wait_for(lambda: (r := worker.consuming()) and r["lag"]["total"] == 0 and r,
                             "the group has committed every record")
        assert caught_up["relay"] == {"position": 9, "head": 9, "lag": 0, "error": None}
        assert caught_up["roles"] == {"relay": True, "mailer": True, "scheduler": True}
