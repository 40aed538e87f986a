"""`alphabet worker`: the scale-out consumers on Kafka. Kept apart from wiring so the embedded
default never imports faust."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from functools import partial
from typing import Any

import faust

from alphabet.settings import Settings
from alphabet.wiring import consumer_views, event_application, leases, mailer, state_database
from consumers.kafka.agents import add_agents, relay_once
from consumers.kafka.app import create_faust_app
from consumers.messages import event_id_of
from consumers.remind import Scheduler
from projections.follower import position, set_position


def run_worker(settings: Settings) -> None:
    """`alphabet worker`: the relay from the log to Kafka, and the faust agents that run mail
    and reminders, plus mail delivery and the reminder clock. Kafka's consumer groups share the
    agents' partitions among workers; the relay, delivery and the clock run in one worker at a
    time (leases, on PostgreSQL)."""
    app = event_application(settings)
    db = state_database(settings)
    shared = leases(settings)
    worker = create_faust_app(settings.kafka_url or "")
    add_agents(worker, db, app.mapper, consumer_views(settings))
    delivery = mailer(settings, app, db)
    scheduler = Scheduler(db, app.record_reminder, lambda: datetime.now(UTC))

    @worker.app.task
    async def relay() -> None:
        while True:
            if not await asyncio.to_thread(shared.holds, "relay"):
                await asyncio.sleep(1)
                continue
            at = position(db.connection(), "relay")
            reached = await relay_once(worker, app.recorder, at, fact_key, app.mapper)
            if reached == at:
                await asyncio.sleep(0.05)
                continue
            with db.write() as conn:
                set_position(conn, "relay", reached)

    @worker.app.task
    async def deliver() -> None:
        await delivery.run(threading.Event(), leading=partial(shared.holds, "mailer"))

    @worker.app.timer(interval=1.0)
    async def remind() -> None:
        if await asyncio.to_thread(shared.holds, "scheduler"):
            await asyncio.to_thread(scheduler.run_once)

    faust.Worker(worker.app, loglevel=settings.log_level.lower()).execute_from_commandline()


def fact_key(notification: Any, fact: Any) -> str:
    """Facts of one event share a key (and so a partition, and their order)."""
    return event_id_of(fact) or str(notification.originator_id)
