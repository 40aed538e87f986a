"""The processes `alphabet serve` manages beside its workers, and their main loops: the views'
follower with the reminder clock, mail delivery, and (with Redis) the notifier. Each loop is
supervised (projections.faults): a failure is logged, retried with backoff and recorded as a
fault for /readyz, never the end of the process. Each sleeps until something wakes it (a save,
on SQLite through the data dir's doorbell, on PostgreSQL through LISTEN; the views moving on),
with a long safety poll, so an idle server costs next to nothing. wiring builds the objects."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial
from typing import Any

import redis

from alphabet import heap, wiring
from alphabet.settings import Settings
from consumers.mail.delivery import Mailer
from consumers.messages import MessageMaker
from consumers.notify import RedisNotifier
from consumers.remind import Scheduler
from projections.faults import Backoff, Faults
from projections.follower import Log
from projections.people import People

log = logging.getLogger(__name__)

# How much the mail process defers to the others (os.nice: 0 is the default, 19 the least).
MAILER_NICENESS = 10
# How often the mailer looks unasked: for retries falling due (1 s, 2 s, 4 s... after a
# failure), and as a safety net.
MAILER_POLL_SECONDS = 1.0


class Lifetime:
    """A managed process's life: SIGTERM/SIGINT, or `alphabet serve` gone, end it, stopping
    whatever runs at that moment."""

    def __init__(self) -> None:
        self.ended = threading.Event()
        self._stop: Callable[[], None] = lambda: None

    def running(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        if self.ended.is_set():
            stop()

    def end(self) -> None:
        self.ended.set()
        self._stop()


def supervised(name: str, main: Callable[[Settings, Lifetime, ExitStack], None],
               settings: Settings) -> None:
    """Runs a managed process's main until the process is told to stop: one that fails (its
    database unreachable at start-up, say) is started again after a backoff, with what it
    opened closed. Sanic's manager does not restart a managed process that ends."""
    lifetime = Lifetime()
    stop_on_signals(lifetime.end)
    heap.freeze()
    backoff = Backoff(f"{name} process", None)
    while not lifetime.ended.is_set():
        try:
            with ExitStack() as opened:
                main(settings, lifetime, opened)
        except Exception as exc:
            lifetime.ended.wait(backoff.failed(exc))


def run_notifier(settings: Settings, **_: Any) -> None:
    supervised("notifier", notifier, settings)


def notifier(settings: Settings, lifetime: Lifetime, opened: ExitStack) -> None:
    """With Redis: the one reader of the log that publishes WebSocket messages (a managed
    process beside the workers; on PostgreSQL, one across all instances)."""
    app = wiring.event_application(settings)
    opened.callback(app.close)
    db = wiring.state_database(settings)
    opened.callback(db.close)
    shared = wiring.leases(settings)
    publisher = RedisNotifier(
        Log(app.recorder, app.mapper),
        MessageMaker(wiring.event_loader(app), People(db).names),
        redis.Redis.from_url(settings.redis_url or ""),
        settings.redis_namespace,
        poll=wiring.poll_seconds(settings),
        leading=partial(shared.holds, "notifier"),
        faults=Faults(db),
    )
    opened.callback(wiring.listen(settings, app, publisher.wake).start().stop)
    lifetime.running(publisher.stop)
    publisher.run()


def run_consumers(settings: Settings, **_: Any) -> None:
    supervised("consumers", consumers, settings)


def consumers(settings: Settings, lifetime: Lifetime, opened: ExitStack) -> None:
    """Views and the reminder clock for all workers, in one managed process beside them (on
    PostgreSQL, each role runs in one such process across all instances). Killing it is safe
    at any instant: each batch and its position commit together. The clock stays here at the
    usual priority: it costs a query a second, and the facts it records take the event
    store's write lock, which a process the OS puts off must not hold while writers wait."""
    app = wiring.event_application(settings)
    opened.callback(app.close)
    db = wiring.state_database(settings)
    opened.callback(db.close)
    shared = wiring.leases(settings)
    bell = wiring.doorbell(settings)
    runner = wiring.follower(settings, app, db, shared, bell)
    scheduler = Scheduler(db, app.record_reminder, lambda: datetime.now(UTC),
                          wiring.ringing(runner.wake, bell),
                          leading=partial(shared.holds, "scheduler"), faults=Faults(db),
                          series=wiring.series_reminders(settings, app))
    opened.callback(scheduler.stop)

    def stop() -> None:
        scheduler.stop()
        runner.stop()

    opened.callback(wiring.listen(settings, app, runner.wake, bell).start().stop)
    if not settings.kafka_url:
        threading.Thread(target=scheduler.run, name="reminders", daemon=True).start()
    log.info("consumers started: %s", ", ".join(v.name for v in runner.views))
    lifetime.running(stop)
    runner.run()


def run_mailer(settings: Settings, **_: Any) -> None:
    """Mail delivery (reminders included) in a managed process of its own at a lower OS
    priority: sending can wait, so a backlog yields the CPU to the workers serving requests
    and to the views' follower (how soon a write is visible), and no longer shares the
    follower's GIL. On PostgreSQL one such process across all instances holds the mailer's
    lease. Killing it is safe at any instant: mail is sent at least once, with a Message-ID
    that shows a duplicate. The views' follower says when it has moved on (new mail may be
    queued): on SQLite it rings the data dir's doorbell, on PostgreSQL it NOTIFYs. (On
    PostgreSQL the mailer had only its look every MAILER_POLL_SECONDS: one event's email came a
    second after its write, against a few milliseconds for the view.)"""
    os.nice(MAILER_NICENESS)  # first, so every thread started below inherits it
    supervised("mailer", mail, settings)


def mail(settings: Settings, lifetime: Lifetime, opened: ExitStack) -> None:
    app = wiring.event_application(settings)
    opened.callback(app.close)
    db = wiring.state_database(settings)
    opened.callback(db.close)
    stopped = threading.Event()
    woken = threading.Event()

    def stop() -> None:
        stopped.set()
        woken.set()

    opened.callback(wiring.views_moved(settings, woken.set).start().stop)
    leading = partial(wiring.leases(settings).holds, "mailer")
    lifetime.running(stop)
    asyncio.run(deliver(wiring.mailer(settings, app, db), Backoff("mailer", Faults(db)),
                        stopped, woken, leading))


async def deliver(mailer: Mailer, backoff: Backoff, stopped: threading.Event,
                  woken: threading.Event, leading: Callable[[], bool]) -> None:
    """Deliver until stopped, while `leading` (one mailer across instances sharing the state
    database); after a pass that sent nothing, sleep until woken or the next safety look."""
    while not stopped.is_set():
        woken.clear()  # before the pass, so a ring during it is not lost
        delivered = 0
        try:
            if await asyncio.to_thread(leading):  # a standby leaves the holder's fault alone
                delivered = await mailer.send_due()
                backoff.succeeded()
        except Exception as exc:  # the loop is the mail service itself: never ends
            await asyncio.to_thread(woken.wait, await asyncio.to_thread(backoff.failed, exc))
            continue
        if not delivered:
            await asyncio.to_thread(woken.wait, MAILER_POLL_SECONDS)


def stop_on_signals(stop: Callable[[], None]) -> None:
    """A managed process stops on SIGTERM/SIGINT, and also when `alphabet serve` itself is
    gone without telling it (killed with SIGKILL): an orphan would go on following the log."""
    signal.signal(signal.SIGTERM, lambda *_: stop())
    signal.signal(signal.SIGINT, lambda *_: stop())
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        log.warning("alphabet serve is gone; stopping")
        stop()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
