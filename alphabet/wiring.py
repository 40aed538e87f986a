"""Builds the long-lived objects from settings; each process (worker, follower, command) calls
these once."""

from __future__ import annotations

import logging
import signal
from collections.abc import Coroutine
from typing import Any
from uuid import UUID

import redis
import redis.asyncio
from eventsourcing.application import AggregateNotFoundError

from alphabet.settings import Settings
from api.context import Services, SigninPolicy
from api.security import Tokens
from consumers.hub import Hub
from consumers.messages import LoadEvent, MessageMaker
from consumers.notify import LocalTail, RedisNotifier, RedisRelay
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


def views() -> list[View]:
    return [EventsView()]


def state_database(settings: Settings) -> StateDatabase:
    settings.prepare_data_dir()
    db = StateDatabase(settings.state_path)
    db.create_schema()
    with db.write() as conn:
        for view in views():
            create(conn, view)
    return db


def follower(app: EventsApplication, db: StateDatabase) -> Follower:
    return Follower(db, Log(app.recorder, app.mapper), views())


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
        follower=follower(app, db),
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
        reader=EventsReader(settings.state_path),
        hub=Hub(),
        load_event=event_loader(app),
    )


def notifications(settings: Settings, services: Services) -> Coroutine[Any, Any, None]:
    """What feeds this worker's sockets: Redis when configured (one notifier for everyone),
    else the worker's own tail of the log."""
    if settings.redis_url:
        relay = RedisRelay(redis.asyncio.from_url(settings.redis_url), services.hub,
                           services.log.head)
        return relay.run()
    tail = LocalTail(services.log, MessageMaker(services.load_event, services.people.names),
                     services.hub)
    services.wake = tail.wake
    return tail.run()


def run_notifier(settings: Settings, **_: Any) -> None:
    """With Redis: the one reader of the log that publishes WebSocket messages (a managed
    process beside the workers)."""
    app = event_application(settings)
    db = state_database(settings)
    notifier = RedisNotifier(
        Log(app.recorder, app.mapper),
        MessageMaker(event_loader(app), People(db).names),
        redis.Redis.from_url(settings.redis_url or ""),
    )
    signal.signal(signal.SIGTERM, lambda *_: notifier.stop())
    signal.signal(signal.SIGINT, lambda *_: notifier.stop())
    notifier.run()
    app.close()


def run_follower(settings: Settings, **_: Any) -> None:
    """The one follower of the views for all workers (a Sanic managed process). Killing it is
    safe at any instant: each batch and its position commit together."""
    app = event_application(settings)
    runner = follower(app, state_database(settings))
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    signal.signal(signal.SIGINT, lambda *_: runner.stop())
    log.info("view follower started")
    runner.run()
    app.close()
