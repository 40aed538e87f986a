"""`alphabet worker`: the scale-out consumers on Kafka. Kept apart from wiring so the embedded
default never imports faust."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka.errors import KafkaError
from mode import Service

from alphabet.logs import logging_config
from alphabet.settings import Settings
from alphabet.wiring import (
    consumer_views,
    event_application,
    leases,
    listen,
    mailer,
    poll_seconds,
    series_reminders,
    state_database,
    views_moved,
)
from consumers.kafka.agents import add_agents
from consumers.kafka.app import TOPIC, KafkaOptions, create_faust_app
from consumers.kafka.broker import GroupLag, ensure_topic
from consumers.kafka.health import HealthServer
from consumers.kafka.ledger import LEDGER_SCHEMA, Ledger
from consumers.kafka.relay import Relay, backoff
from consumers.mail.delivery import Mailer
from consumers.messages import event_id_of
from consumers.remind import Scheduler
from domain.application import EventsApplication
from projections.database import StateDatabase
from projections.follower import Leases, position, set_position

log = logging.getLogger(__name__)

RELAY = "relay"  # the relay's position in the tracking table, and its lease
ROLES = (RELAY, "mailer", "scheduler")


def fact_key(notification: Any, fact: Any) -> str:
    """Facts of one event share a key (and so a partition, and their order)."""
    return event_id_of(fact) or str(notification.originator_id)


class Lead:
    """Whether this worker holds a role's lease, remembering the last answer for the health
    report (asking again would try to take it)."""

    def __init__(self, shared: Leases, role: str) -> None:
        self.shared = shared
        self.role = role
        self.held = False

    def __call__(self) -> bool:
        self.held = self.shared.holds(self.role)
        return self.held


class TrackedPosition:
    """The relay's position, in the state database's tracking table."""

    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    def load(self) -> int:
        return position(self.db.connection(), RELAY)

    def save(self, at: int) -> None:
        with self.db.write() as conn:
            set_position(conn, RELAY, at)


class Consuming(faust.Worker):
    """faust's worker, telling when it consumes: its start ends once the group has given it
    its partitions."""

    consuming = False

    async def on_startup_finished(self) -> None:
        self.consuming = True
        await super().on_startup_finished()


class BrokerGate(Service):
    """Holds faust's app back until the broker answers and the facts topic exists, saying what
    is wrong meanwhile: faust's own start would end the worker with a stack trace."""

    def __init__(self, options: KafkaOptions, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.options = options
        self.error: str | None = None

    async def on_start(self) -> None:
        failures = 0
        while True:
            try:
                count = await ensure_topic(self.options)
                break
            except (KafkaError, OSError, RuntimeError) as exc:
                failures += 1
                wait = backoff(failures)
                self.error = f"{type(exc).__name__}: {exc}"
                log.error("Kafka broker at %s cannot be reached (%s); trying again in %.0f s "
                          "(mail delivery and reminders go on meanwhile)",
                          self.options.url, self.error, wait)
                await asyncio.sleep(wait)
        self.error = None
        log.info("Kafka broker at %s answers; topic %s has %d partitions; joining group %s",
                 self.options.url, TOPIC, count, self.options.group)


class Roles(Service):
    """The relay, mail delivery, the reminder clock and the health endpoint. They start before
    faust's app, so none waits for the consumer group: each role runs in one worker at a time,
    the holder of its lease, whatever partitions that worker has."""

    def __init__(self, relay: Relay, delivery: Mailer, scheduler: Scheduler,
                 leads: dict[str, Lead], health: HealthServer, extra: list[Any],
                 group_lag: GroupLag, mail_woken: asyncio.Event, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mail_woken = mail_woken
        self.relay = relay
        self.delivery = delivery
        self.scheduler = scheduler
        self.leads = leads
        self.health = health
        self.extra = extra
        self.group_lag = group_lag
        self.stopped = asyncio.Event()
        self.delivery_stopped = threading.Event()
        self.running: list[asyncio.Task[None]] = []

    async def on_start(self) -> None:
        await self.health.start()
        self.running = [
            asyncio.create_task(self.relay.run(self.stopped)),
            asyncio.create_task(self.delivery.run(self.delivery_stopped,
                                                  leading=self.leads["mailer"],
                                                  woken=self.mail_woken)),
            asyncio.create_task(self.clock()),
            *(asyncio.create_task(job) for job in self.extra),
        ]

    async def clock(self) -> None:
        """Records due reminders, once a second, while holding the scheduler's lease."""
        while not self.stopped.is_set():
            try:
                if await asyncio.to_thread(self.leads["scheduler"]):
                    await asyncio.to_thread(self.scheduler.run_once)
            except self.scheduler.db.transient:
                log.exception("reminder check failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped.wait(), 1.0)

    async def on_stop(self) -> None:
        """Lets the relay finish its batch and the mailer its pass (so what they did is
        recorded), then stops the rest."""
        self.stopped.set()
        self.delivery_stopped.set()
        finishing = self.running[:3]
        if finishing:
            await asyncio.wait(finishing, timeout=15)
        for task in self.running:
            task.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)
        await self.health.stop()
        await self.group_lag.close()


def run_worker(settings: Settings) -> None:
    """`alphabet worker`: the relay from the log to Kafka and the faust agents that run mail and
    reminders, plus mail delivery, the reminder clock and a health endpoint. Kafka's consumer
    group shares the agents' partitions among workers; the relay, delivery and the clock run
    in one worker at a time (leases, on PostgreSQL)."""
    options = KafkaOptions(settings.kafka_url or "", settings.kafka_group,
                           settings.kafka_partitions, settings.kafka_session_seconds)
    app = event_application(settings)
    db = state_database(settings, also=[LEDGER_SCHEMA])
    shared = leases(settings)
    leads = {role: Lead(shared, role) for role in ROLES}
    faust_app = create_faust_app(options)
    # Set when the views have moved on (new mail may be queued): on PostgreSQL each record an
    # agent applies NOTIFYs the views' channel in its transaction, and every worker's mailer
    # LISTENs (views_moved); on SQLite the data dir's doorbell, rung by every save, wakes it.
    mail_woken = asyncio.Event()
    announce = None
    if settings.postgres:
        from projections.postgres import views_notify

        announce = views_notify(settings.postgres.schema)
    ledger = Ledger(db, app.mapper, consumer_views(settings), options, announce)
    add_agents(faust_app, ledger)
    positions = TrackedPosition(db)
    relay = Relay(options, app.recorder, app.mapper, fact_key, positions, leads[RELAY],
                  poll=max(poll_seconds(settings), 0.05))
    listener = listen(settings, app, relay.wake)
    gate = BrokerGate(options)
    group_lag = GroupLag(options)
    worker: Consuming | None = None

    def assigned() -> list[int]:
        """The facts topic's partitions faust has given this worker (none before it consumes)."""
        if worker is None or not worker.consuming:
            return []
        return sorted(tp.partition for tp in faust_app.app.consumer.assignment()
                      if tp.topic == TOPIC)

    async def report() -> tuple[bool, dict[str, Any]]:
        consuming = worker is not None and worker.consuming
        head, at = await asyncio.to_thread(lambda: (head_of(app), positions.load()))
        body: dict[str, Any] = {
            "broker": options.url, "group": options.group, "topic": TOPIC,
            "assigned": assigned(),
            "relay": {"position": at, "head": head, "lag": max(head - at, 0),
                      "error": relay.error},
            "roles": {role: lead.held for role, lead in leads.items()},
        }
        try:
            lag = await group_lag.measure()
            body["lag"] = {"total": sum(lag.values()),
                           "partitions": {str(p): n for p, n in lag.items()}}
        except (KafkaError, OSError) as exc:
            body["broker_error"] = gate.error or f"{type(exc).__name__}: {exc}"
            body["status"] = "broker unreachable"
            return False, body
        body["status"] = "consuming" if consuming else "joining the consumer group"
        return consuming, body

    host, port = settings.worker_health
    roles = Roles(relay, mailer(settings, app, db),
                  Scheduler(db, app.record_reminder, lambda: datetime.now(UTC),
                            series=series_reminders(settings, app)), leads,
                  HealthServer(host, port, report),
                  [listener.run_async(), ledger.sweeps(assigned, GroupLag(options)),
                   views_moved(settings, mail_woken.set).run_async()],
                  group_lag, mail_woken)
    worker = Consuming(faust_app.app, roles, gate, loglevel=settings.log_level.lower(),
                       logging_config=logging_config(settings.log_level, settings.log_format))
    try:
        worker.execute_from_commandline()
    finally:
        app.close()
        db.close()


def head_of(app: EventsApplication) -> int:
    return app.recorder.max_notification_id() or 0
