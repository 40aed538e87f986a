"""The composition root of the HTTP service: `create_app` builds the Sanic app from api/'s
blueprints; clients are created when a worker starts and closed when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

from sanic import Sanic
from sanic.config import Config
from sanic_ext.extensions.http.extension import HTTPExtension

from alphabet import heap, processes, wiring
from alphabet.logs import logging_config
from alphabet.settings import Settings
from api import (
    auth,
    batch,
    changes,
    console,
    docs_pages,
    events,
    feeds,
    freebusy,
    health,
    lists,
    metrics,
    occurrences,
    operators,
    rsvp,
    users,
    websockets,
)
from api.docs import openapi_document
from api.errors import handle
from api.request import Request

MAX_BODY = 1024 * 1024
CORS_MAX_AGE = 3600

DESCRIPTION = """Event-sourced calendar events: every change is an immutable fact.

Authenticate with `Authorization: Bearer <access token>` from /api/auth/signin/.
Every write answers `X-Position`, its position in the event log; `ETag` is an event's version
and `If-Match` pins it (`If-None-Match` on a read answers 304 while it is current). Errors are
`{"error": {"code", "message", "fields"}}`. A method a path does not have answers 405 with
`Allow`.

## WebSockets (OpenAPI cannot describe them; `x-websockets` lists them too)

* `/ws/events/{event_id}` — a message for each change of that event;
  `/ws/events` — the feed of every change (a trailing slash is optional).
* When `ALPHABET_CORS_ORIGINS` is set, a handshake whose `Origin` is neither one of those
  origins nor the server's own is refused with 403.
* Authenticate with `?token=<access token>`, or send `{"token": "..."}` as the first message
  within 5 s. A missing or bad token closes the socket with code 4401, an unknown event with
  4404; an expired token closes it with 4401 (reconnect with `?after=`).
* First the server sends `{"type": "ready", "position": N}`: the log position it is live from.
* Then one message per change, in log order: `{"type": "event.created" | "event.updated" |
  "event.deleted" | "event.reminder" | "event.response", "event_id", "version", "position",
  "message", "event", "changes"}`, where `message` is `Event "<name>" has been created.`
  (updated, deleted); an `event.response`'s `changes` are `{"attendee", "response"}`: who
  answered (as in `participants`) and what. A message about one occurrence of a series (its
  change, cancellation or reminder) adds `"instance_id"` (the occurrence's id) and shows that
  occurrence as `event`; a cancelled occurrence is an `event.deleted` (the series stays).
* Resume after a disconnect with `?after=<position>`: what was missed is replayed from the event
  store, then the socket continues live, with no gap and no duplicate.
* A client that falls more than 1,000 messages behind is closed with 1013 (resume with `after`).
"""

WEBSOCKETS = {
    "/ws/events": "every change of every event, in log order",
    "/ws/events/{event_id}": "every change of one event, in log order",
    "query": {"token": "an access token (or send {\"token\": ...} first, within 5 s)",
              "after": "a log position: replay what came after it, then go on live"},
    "messages": ["ready", "event.created", "event.updated", "event.deleted", "event.reminder",
                 "event.response"],
    "close codes": {"4400": "a bad ?after", "4401": "no, a bad or an expired token",
                    "4404": "no such event", "1013": "too far behind (resume with ?after)"},
}

_names = itertools.count()
App = Sanic[Config, SimpleNamespace]


async def until_cancelled(work: Coroutine[Any, Any, None]) -> None:
    """A task that runs as long as the worker: Sanic cancels it when the worker stops, and
    warns of every task that ends so ("was cancelled before it completed"). For these,
    following the log until the server stops, cancellation is the normal end."""
    with contextlib.suppress(asyncio.CancelledError):
        await work


def scraped(settings: Settings) -> metrics.Scraped:
    """What /metrics reads the lag of: the events view, and the consumers' views (mail,
    reminders) — or, with Kafka, the relay that feeds their agents (the agents' own lag is the
    consumer group's, on `alphabet worker`'s health endpoint)."""
    consumers = [view.name for view in wiring.consumer_views(settings)]
    views = [view.name for view in wiring.views(settings) if view.name not in consumers]
    return metrics.Scraped(views, ["relay"] if settings.kafka_url else consumers,
                           settings.metrics_token)


def create_app(settings: Settings | None = None) -> App:
    settings = settings or Settings.from_env()
    suffix = next(_names)
    app = Sanic("alphabet" if suffix == 0 else f"alphabet{suffix}", strict_slashes=False,
                log_config=logging_config(settings.log_level, settings.log_format),
                request_class=Request)
    app.config.REQUEST_MAX_SIZE = MAX_BODY
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.CORS_ORIGINS = settings.cors_origins
    # What a page script on an allowed origin may send and read: Authorization cannot be
    # covered by "*" (Fetch standard), so the list is explicit; preflights are cached an hour.
    app.config.CORS_ALLOW_HEADERS = ["Authorization", "Content-Type", "If-Match",
                                     "If-None-Match"]
    app.config.CORS_EXPOSE_HEADERS = ["ETag", "X-Position", "Location", "Retry-After"]
    app.config.CORS_MAX_AGE = CORS_MAX_AGE
    # sanic-ext's CORS alone: its injection's per-request signal cost ~5% of a GET (handlers
    # get their services from api.context's decorators) and its OpenAPI generator falls short
    # (api.docs builds the document).
    app.extend(built_in_extensions=False, extensions=[HTTPExtension])
    for blueprint in (health.bp, auth.bp, users.bp, feeds.bp, lists.bp, changes.bp, events.bp,
                      occurrences.bp, batch.bp, freebusy.bp, operators.bp, websockets.bp,
                      docs_pages.bp, console.bp, metrics.bp, rsvp.bp):
        app.blueprint(blueprint)
    app.error_handler.add(Exception, handle)
    metrics.instrument(app, scraped(settings))
    app.ctx.openapi = openapi_document(app, "Alphabet Events", "0.1.0", DESCRIPTION,
                                       {"x-websockets": WEBSOCKETS})

    @app.main_process_start
    async def prepare(app: App) -> None:
        settings.secret()  # written once here, before workers race to create it
        wiring.migrate(settings)
        wiring.prime_notifier(settings)

    @app.before_server_start
    async def start(app: App) -> None:
        # Writers wait in threads for their group commit: allow many at once.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=64))
        app.ctx.worker = wiring.worker(settings)
        app.ctx.services = app.ctx.worker.blueprints
        await app.ctx.worker.reads.open()
        heap.freeze()
        for number, task in enumerate(wiring.notifications(settings, app.ctx.worker)):
            app.add_task(until_cancelled(task), name=f"notifications-{number}")

    @app.after_server_stop
    async def stop(app: App) -> None:
        services: wiring.Worker = app.ctx.worker
        await services.reads.close()
        services.app.close()
        services.db.close()
        metrics.process_stopped()

    @app.main_process_ready
    async def manage(app: App) -> None:
        app.manager.manage("Consumers", processes.run_consumers, {"settings": settings})
        if not settings.kafka_url:  # with Kafka, `alphabet worker` delivers mail
            app.manager.manage("Mailer", processes.run_mailer, {"settings": settings})
        if settings.redis_url:
            app.manager.manage("Notifier", processes.run_notifier, {"settings": settings})

    return app
