"""Builds the long-lived objects from settings; each process (worker, follower, command) calls
these once."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import redis
import redis.asyncio
from eventsourcing.application import AggregateNotFoundError

from alphabet.settings import Settings
from api.context import Services, SigninPolicy
from api.security import Tokens
from consumers.hub import Hub
from consumers.mail import Mailer, MailQueue, OutboxTransport, SmtpTransport, Transport
from consumers.messages import LoadEvent, MessageMaker
from consumers.notify import LocalTail, RedisNotifier, RedisRelay, prime
from consumers.remind import RemindersView, Scheduler
from domain.application import EventsApplication
from domain.events import Event
from projections.database import StateDatabase
from projections.events_queries import EventsReader
from projections.events_view import EventsView
from projections.follower import Follower, Log, View, create
from projections.people import People
from projections.sessions import Sessions

log = logging.getLogger(__name__)


def event_application(settings: Settings) -> EventsApplication:
    settings.prepare_data_dir()
    return EventsApplication(env={
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(settings.event_store_path),
        "SQLITE_LOCK_TIMEOUT": "30",
    })


def views(settings: Settings) -> list[View]:
    return [EventsView(), *consumer_views(settings)]


def consumer_views(settings: Settings) -> list[View]:
    """Mail and reminders: followed inside `alphabet serve`, or by the faust agents of
    `alphabet worker` when Kafka is configured."""
    return [MailQueue(), RemindersView(settings.reminder_minutes)]


def served_views(settings: Settings) -> list[View]:
    return [EventsView()] if settings.kafka_url else views(settings)


def state_database(settings: Settings) -> StateDatabase:
    settings.prepare_data_dir()
    db = StateDatabase(settings.state_path)
    db.create_schema()
    with db.write() as conn:
        for view in views(settings):
            create(conn, view)
    return db


def follower(settings: Settings, app: EventsApplication, db: StateDatabase) -> Follower:
    return Follower(db, Log(app.recorder, app.mapper), served_views(settings))


def event_loader(app: EventsApplication) -> LoadEvent:
    """The event at a version (or its latest), for messages the notifier cannot derive."""

    def load(event_id: UUID, version: int | None) -> Event | None:
        try:
            found: Any = app.repository.get(event_id, version=version)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, Event) else None

    return load


def services(settings: Settings) -> Services:
    app = event_application(settings)
    db = state_database(settings)
    secret = settings.secret()
    return Services(
        app=app,
        db=db,
        log=Log(app.recorder, app.mapper),
        follower=follower(settings, app, db),
        people=People(db),
        sessions=Sessions(db),
        tokens=Tokens(secret, settings.access_token_minutes * 60,
                      settings.refresh_token_days * 86400),
        signin=SigninPolicy(
            per_account=settings.signin_failures_per_account,
            per_address=settings.signin_failures_per_address,
            window_seconds=settings.signin_window_seconds,
            trusted_proxies=settings.trusted_proxies,
            secret=secret,
        ),
        reader=EventsReader(settings.state_path, secret),
        hub=Hub(),
        load_event=event_loader(app),
        outbox=settings.outbox_dir,
    )


def notifications(settings: Settings, services: Services) -> Coroutine[Any, Any, None]:
    """What feeds this worker's sockets: Redis when configured (one notifier for everyone),
    else the worker's own tail of the log."""
    if settings.redis_url:
        relay = RedisRelay(redis.asyncio.from_url(settings.redis_url), settings.redis_namespace,
                           services.hub, services.log.head)
        return relay.run()
    tail = LocalTail(services.log, MessageMaker(services.load_event, services.people.names),
                     services.hub)
    services.wake = tail.wake
    return tail.run()


def prime_notifier(settings: Settings) -> None:
    if settings.redis_url:
        app = event_application(settings)
        prime(redis.Redis.from_url(settings.redis_url), settings.redis_namespace,
              Log(app.recorder, app.mapper).head())
        app.close()


def run_notifier(settings: Settings, **_: Any) -> None:
    """With Redis: the one reader of the log that publishes WebSocket messages (a managed
    process beside the workers)."""
    app = event_application(settings)
    db = state_database(settings)
    notifier = RedisNotifier(
        Log(app.recorder, app.mapper),
        MessageMaker(event_loader(app), People(db).names),
        redis.Redis.from_url(settings.redis_url or ""),
        settings.redis_namespace,
    )
    signal.signal(signal.SIGTERM, lambda *_: notifier.stop())
    signal.signal(signal.SIGINT, lambda *_: notifier.stop())
    notifier.run()
    app.close()


def mailer(settings: Settings, app: EventsApplication, db: StateDatabase) -> Mailer:
    people = People(db)
    transport: Transport = (SmtpTransport(settings.smtp_url) if settings.smtp_url
                            else OutboxTransport(settings.outbox_dir, people.address))
    return Mailer(db, transport, event_loader(app), people.names, people.address,
                  settings.mail_from)


def run_consumers(settings: Settings, **_: Any) -> None:
    """Views, mail and reminders for all workers, in one managed process beside them. Killing
    it is safe at any instant: each batch and its position commit together, and mail is sent
    at least once with a Message-ID that shows a duplicate."""
    app = event_application(settings)
    db = state_database(settings)
    runner = follower(settings, app, db)
    scheduler = Scheduler(db, app.record_reminder, lambda: datetime.now(UTC), runner.wake)
    stopped = threading.Event()
    delivery = mailer(settings, app, db)

    def stop(*_: Any) -> None:
        stopped.set()
        scheduler.stop()
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not settings.kafka_url:
        threading.Thread(target=scheduler.run, name="reminders", daemon=True).start()
        threading.Thread(target=lambda: asyncio.run(delivery.run(stopped)), name="mail",
                         daemon=True).start()
    log.info("consumers started: %s", ", ".join(v.name for v in runner.views))
    runner.run()
    app.close()
