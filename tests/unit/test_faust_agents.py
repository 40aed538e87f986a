"""The faust agents, driven through faust's own test harness, on either backend: they must
leave the same mail and reminder bookkeeping as the embedded followers. (The whole worker
against a real broker: tests/e2e/test_kafka_*.py.)"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import Notification

from alphabet import wiring
from alphabet.settings import Postgres, Settings
from alphabet.worker import fact_key
from consumers.kafka.agents import add_agents
from consumers.kafka.app import KafkaOptions, create_faust_app
from consumers.kafka.ledger import LEDGER_SCHEMA, Ledger
from consumers.kafka.records import FactRecord, encode
from consumers.kafka.relay import relay_once
from consumers.mail.outbox import MailQueue
from domain.application import EventsApplication
from domain.ownership import ownership_id
from domain.storage import Connection, Handler
from projections.database import SqliteDatabase, StateDatabase
from projections.follower import Follower, Log, create
from tests.conftest import BACKENDS, fresh

OPTIONS = KafkaOptions("kafka://127.0.0.1:9092")  # no broker: nothing here reads the topic


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """The worker's settings on each backend, migrated."""
    with fresh(request.param) as backend:
        made = Settings(data_dir=tmp_path / "a",
                        postgres=Postgres.from_url(backend.url) if backend.url else None)
        wiring.migrate(made)
        yield made


def history(app: EventsApplication) -> None:
    now = datetime.now(UTC)
    created = app.create_event(owner_id="owner", name="Launch", location="Haifa",
                               starting_time=now + timedelta(hours=2),
                               end_time=now + timedelta(hours=3), participants=["p1", "p2"])
    event_id = created.aggregate.id
    app.update_event(event_id, by="owner", now=now, expected_version=None,
                     changes={"participants": ["p2", "p3"],
                              "starting_time": now + timedelta(hours=5),
                              "end_time": now + timedelta(hours=6)})
    app.delete_event(event_id, by="owner", expected_version=None)


def bookkeeping(db: StateDatabase) -> dict[str, Any]:
    conn = db.connection()
    return {
        "mail": sorted((r["message_id"], r["person_id"], r["kind"]) for r in conn.execute(
            "SELECT message_id, person_id, kind FROM mail_outbox")),
        "reminders": sorted((r["event_id"], r["starting_time"], r["due_at"])
                            for r in conn.execute("SELECT * FROM reminders")),
    }


def test_agents_leave_the_same_bookkeeping_as_the_embedded_followers(
    tmp_path: Path, settings: Settings
) -> None:
    app = wiring.event_application(settings)
    history(app)
    notifications = app.recorder.select_notifications(start=0, limit=100)

    through_kafka = wiring.state_database(settings)
    agents = agents_on(through_kafka, app, settings)

    async def feed() -> None:
        for name in ("mail", "reminders"):
            async with agents[name].test_context() as agent:
                for notification in notifications:
                    await agent.put(encode(notification), key=str(notification.originator_id))

    asyncio.run(feed())

    embedded = SqliteDatabase(tmp_path / "embedded.sqlite")
    embedded.create_schema()
    with embedded.write() as conn:
        for view in wiring.consumer_views(settings):
            create(conn, view)
    Follower(embedded, Log(app.recorder, app.mapper), wiring.consumer_views(settings)).run_once()

    expected = bookkeeping(embedded)
    assert expected["mail"], "the history should have produced emails"
    assert {kind for _, _, kind in expected["mail"]} == {"created", "updated", "deleted"}
    assert bookkeeping(through_kafka) == expected
    through_kafka.close()
    app.close()


def agents_on(db: StateDatabase, app: EventsApplication, settings: Settings,
              handlers: Sequence[Handler] | None = None) -> dict[str, Any]:
    """The worker's agents over `db` (its ledger's table made), for faust's test harness."""
    db.create_schema([LEDGER_SCHEMA])
    ledger = Ledger(db, app.mapper, handlers or wiring.consumer_views(settings), OPTIONS)
    return add_agents(create_faust_app(OPTIONS), ledger)


def participants(db: StateDatabase) -> list[list[str]]:
    """Who the mail view holds to be in each event."""
    return [json.loads(r["participants"])
            for r in db.connection().execute("SELECT participants FROM mail_events")]


def at_offset_zero_again(settings: Settings, again: int) -> StateDatabase:
    """The event's creation and change at offsets 0 and 1 of one partition, then its fact
    number `again` (0: the creation, 2: the deletion) at offset 0 once more, through the mail
    agent; returns the state database."""
    app = wiring.event_application(settings)
    history(app)
    facts = app.recorder.select_notifications(start=created(app).id, limit=3)
    db = wiring.state_database(settings)
    agents = agents_on(db, app, settings)

    async def feed() -> None:
        async with agents["mail"].test_context() as agent:
            for notification in facts[:2]:
                await agent.put(encode(notification), key=str(facts[0].originator_id))
            agent.sent_offset = 0
            await agent.put(encode(facts[again]), key=str(facts[0].originator_id))

    asyncio.run(feed())
    app.close()
    return db


def test_a_record_delivered_again_after_later_ones_changes_nothing(settings: Settings) -> None:
    """Kafka delivers again what was not committed (a crash, a rebalance). Applied a second
    time after the event's next change, its creation would bring back the participant the
    change removed: the ledger knows the partition is past it."""
    db = at_offset_zero_again(settings, 0)
    assert participants(db) == [["p2", "p3"]]
    rows = db.connection().execute("SELECT person_id, kind FROM mail_outbox").fetchall()
    assert sorted((r["person_id"], r["kind"]) for r in rows) == [
        ("p1", "created"), ("p1", "updated"), ("p2", "created"), ("p2", "updated"),
        ("p3", "updated")]
    db.close()


def test_a_topic_made_again_starts_its_partitions_over(settings: Settings) -> None:
    """A new topic (another cluster, or the old one deleted) numbers its records from 0 again,
    and the relay goes on from its own position: a record at an offset the ledger has passed
    that holds a newer fact than any applied is no redelivery, and is applied."""
    db = at_offset_zero_again(settings, 2)
    rows = db.connection().execute("SELECT kind FROM mail_outbox").fetchall()
    assert "deleted" in {r["kind"] for r in rows}
    assert participants(db) == []
    db.close()


class FailingOnce:
    """The mail queue, failing its first record as a lost database connection would."""

    def __init__(self, handler: MailQueue) -> None:
        self.handler = handler
        self.name = handler.name
        self.failed = False

    def apply(self, conn: Connection, position: int, fact: Any) -> None:
        if not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("disk I/O error")
        self.handler.apply(conn, position, fact)


def test_a_record_whose_handling_fails_is_tried_again_not_passed(settings: Settings) -> None:
    """faust acks a record whose agent raised, so a failure must never leave the agent."""
    app = wiring.event_application(settings)
    history(app)
    first = created(app)
    db = wiring.state_database(settings)
    agents = agents_on(db, app, settings, [FailingOnce(MailQueue())])

    async def feed() -> None:
        async with agents["mail"].test_context() as agent:
            await agent.put(encode(first), key=str(first.originator_id))

    asyncio.run(feed())
    rows = db.connection().execute("SELECT person_id FROM mail_outbox").fetchall()
    assert sorted(r["person_id"] for r in rows) == ["p1", "p2"]
    db.close()
    app.close()


class Collecting:
    """A stand-in for aiokafka's producer at the port: records what the relay sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def created(app: EventsApplication) -> Notification:
    """The history's event Created fact: after the two that open its owner's Ownership and
    add the event to it, which the same save records first."""
    return app.recorder.select_notifications(start=3, limit=1)[0]


def test_the_relay_publishes_the_log_in_order_keyed_by_event_id(settings: Settings) -> None:
    app = wiring.event_application(settings)
    history(app)
    producer = Collecting()

    reached = asyncio.run(relay_once(producer, app.recorder, 0, fact_key, app.mapper, limit=2))
    assert reached == 2
    reached = asyncio.run(relay_once(producer, app.recorder, reached, fact_key, app.mapper))
    assert reached == 5
    records = [FactRecord.loads(value) for _, _, value in producer.sent]
    assert [record.position for record in records] == [1, 2, 3, 4, 5]
    assert {topic for topic, _, _ in producer.sent} == {"alphabet.facts"}
    # The event's facts (created, updated, deleted) share its key; the two that open its
    # owner's Ownership and add the event to it have the Ownership's.
    event, owned = str(created(app).originator_id).encode(), str(ownership_id("owner")).encode()
    assert [key for _, key, _ in producer.sent] == [owned, owned, event, event, event]
    app.close()
