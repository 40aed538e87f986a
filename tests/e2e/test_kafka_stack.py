"""The scale-out stack with real processes: two `alphabet serve` instances on one PostgreSQL
database, a Kafka-protocol broker (Tansu), two `alphabet worker` processes in one consumer
group and an SMTP server, all on loopback. Every email is counted by Message-ID."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from tests.conftest import Person, Server, at, event_body, fresh, sign_up
from tests.e2e.kafka_stack import (
    Broker,
    Expected,
    Worker,
    all_arrive,
    running,
    timed_smtp,
    wait_for,
)
from tests.integration.test_mail import SmtpServer

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


@dataclass
class Stack:
    instances: tuple[Server, Server]
    workers: tuple[Worker, Worker]
    smtp: SmtpServer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("kafka-stack")
    smtp = timed_smtp().start()
    broker = Broker(base).start()
    env = {"ALPHABET_KAFKA_URL": broker.url, "ALPHABET_SMTP_URL": smtp.url,
           "ALPHABET_SECRET_KEY": secrets.token_urlsafe(48), "ALPHABET_REMINDER_MINUTES": "1",
           "ALPHABET_KAFKA_PARTITIONS": "4"}
    with fresh("postgres") as database:
        first = Server(tmp_path_factory.mktemp("first") / "data", backend=database, env=env)
        second = Server(tmp_path_factory.mktemp("second") / "data", backend=database, env=env)
        workers = (Worker(first), Worker(second))
        with running(smtp, broker, first, second, *workers):
            first.start()
            second.start()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.wait_consuming()
            yield Stack((first, second), workers, smtp)


def post(http: httpx.Client, owner: Person, **fields: object) -> dict[str, object]:
    answer = http.post("/api/events/", json=event_body(**fields), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    return answer.json()["event"]  # type: ignore[no-any-return]


def put(http: httpx.Client, owner: Person, event_id: str, **fields: object) -> int:
    answer = http.put(f"/api/event/{event_id}", json=fields, headers=owner.headers)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["event"]["version"])


def test_every_email_arrives_when_two_instances_write_and_two_workers_share_the_facts(
    stack: Stack,
) -> None:
    one, two = (httpx.Client(base_url=s.url, timeout=30) for s in stack.instances)
    clients = (one, two)
    with one, two:
        owner = sign_up(one, "owner")
        people = [sign_up(clients[n % 2], f"guest{n}") for n in range(6)]
        expected = Expected()
        made = []
        for n in range(8):
            a, b, c = (people[(n + k) % 6] for k in range(3))
            writer, other = clients[n % 2], clients[(n + 1) % 2]
            event = post(writer, owner, name=f"Meeting {n}",
                         participants=[a.username, b.username])
            expected.add(event["id"], 1, [a.id, b.id], "created")
            version = put(other, owner, event["id"], name=f"Meeting {n}, moved",
                          participants=[b.username, c.username])
            expected.add(event["id"], version, [a.id, b.id, c.id], "updated")  # a: removed
            if n % 2 == 0:
                answer = writer.delete(f"/api/event/{event['id']}", headers=owner.headers)
                assert answer.status_code == 200, answer.text
                expected.add(event["id"], version + 1, [b.id, c.id], "deleted")
            made.append(event["id"])

        # One event's facts in order: each update emails the new participant and the one it
        # removed, which the mail agent knows only from the update before it.
        ordered = post(one, owner, name="Relay race", participants=[people[1].username])
        expected.add(ordered["id"], 1, [people[1].id], "created")
        for version in range(2, 14):
            now, before = people[version % 3], people[(version - 1) % 3]
            assert put(clients[version % 2], owner, ordered["id"],
                       participants=[now.username]) == version
            expected.add(ordered["id"], version, [now.id, before.id], "updated")
        made.append(ordered["id"])

    repeats = all_arrive(stack.smtp, expected, "every email of two instances' writes")
    about_ours = {r.message_id for r in stack.smtp.received()
                  if r.message_id.strip("<").split(".")[0] in made}
    assert about_ours == expected.ids  # and none to anyone else: one event's facts in order
    print(f"\n{len(expected.ids)} emails expected, all delivered, {repeats} repeats")


def test_a_reminder_fires_once_with_two_workers(stack: Stack) -> None:
    first = stack.instances[0]
    with httpx.Client(base_url=first.url, timeout=30) as http:
        owner = sign_up(http, "owner")
        guests = [sign_up(http, "guest") for _ in range(2)]
        # ALPHABET_REMINDER_MINUTES=1: due about 20 s from now
        event = post(http, owner, name="Soon", starting_time=at(seconds=80),
                     end_time=at(seconds=140), participants=[g.username for g in guests])
    expected = Expected()
    expected.add(event["id"], 1, [g.id for g in guests], "reminder")
    repeats = all_arrive(stack.smtp, expected, "the reminder emails")

    def reminder_facts() -> list[tuple[object, ...]] | None:
        try:
            return first.rows("SELECT count(*) FROM alphabet_events WHERE topic LIKE ? AND "
                              "convert_from(state, 'UTF8') LIKE ?",
                              ("%Reminder.Due", f"%{event['id']}%"))
        except psycopg.OperationalError:  # a PostgreSQL server shared by busy test runs
            return None

    assert wait_for(reminder_facts, "a free connection to PostgreSQL") == [(1,)]
    print(f"\nreminder: 1 fact, {len(expected.ids)} emails, {repeats} repeats")
