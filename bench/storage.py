"""Storage figures measured in-process: appends straight through EventsApplication, the replay of
the events view, and their ceilings, raw sqlite3 inserts into a table shaped like
eventsourcing's stored_events with the event store's durability (WAL, synchronous=FULL)."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alphabet import wiring
from alphabet.group_commit import GroupCommit
from alphabet.settings import Settings
from bench.load import LOCATIONS, MAX_PARTICIPANTS, NAMES
from projections.follower import Log
from projections.replay import replay

CHUNK = 1000  # create_events saves a chunk in one transaction: the fastest way to fill a store
TOPIC = "domain.events:Event.Created"
STORED_EVENTS = (
    "CREATE TABLE IF NOT EXISTS stored_events (originator_id TEXT, originator_version INTEGER, "
    "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
)


@dataclass
class ReplayResult:
    facts: int
    build_seconds: float
    replay_seconds: float
    state_bytes: int  # mean size of a stored fact's state, for the raw rows to match

    @property
    def facts_per_second(self) -> float:
        return self.facts / self.replay_seconds


def fields(rng: random.Random) -> dict[str, Any]:
    """An event as the application takes it: participants are person ids."""
    start = datetime.now(UTC) + timedelta(hours=2, minutes=15 * rng.randrange(5760))
    return {
        "name": f"{rng.choice(NAMES)} {rng.randrange(1000)}",
        "starting_time": start,
        "end_time": start + timedelta(hours=1),
        "location": rng.choice(LOCATIONS),
        "participants": [str(uuid.uuid4()) for _ in range(rng.randint(0, MAX_PARTICIPANTS))],
    }


def concurrently(writers: int, seconds: float, write: Callable[[int], Callable[[], None]]) -> float:
    """Writes per second of `writers` threads, each calling its own writer until the time is
    up; `write(i)` sets a writer up (e.g. opens its connection) before the clock starts."""
    counts = [0] * writers
    ready = threading.Barrier(writers + 1)
    go = threading.Event()
    deadline = 0.0

    def loop(index: int) -> None:
        once = write(index)
        ready.wait()
        go.wait()
        while time.monotonic() < deadline:
            once()
            counts[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.monotonic()
    deadline = started + seconds
    go.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def append_in_process(directory: Path, writers: int, seconds: float) -> float:
    """Facts/s saving one new event per command, from `writers` threads sharing one
    application with its group commit, as a server worker's thread pool does."""
    app = wiring.event_application(Settings(data_dir=directory), writer=GroupCommit)
    owner = str(uuid.uuid4())

    def writer(index: int) -> Callable[[], None]:
        rng = random.Random(index)

        def once() -> None:
            app.create_event(owner_id=owner, **fields(rng))

        return once

    try:
        return concurrently(writers, seconds, writer)
    finally:
        app.close()


def replay_rate(directory: Path, facts: int) -> ReplayResult:
    """Fill a store with `facts` Created facts, then time rebuilding the events view from
    position 0 (what `alphabet replay events` does)."""
    settings = Settings(data_dir=directory)
    app = wiring.event_application(settings)
    rng = random.Random(7)
    owner = str(uuid.uuid4())
    started = time.perf_counter()
    for first in range(0, facts, CHUNK):
        app.create_events(owner_id=owner,
                          items=[fields(rng) for _ in range(min(CHUNK, facts - first))])
    built = time.perf_counter() - started
    with closing(sqlite3.connect(f"file:{settings.event_store_path}?mode=ro", uri=True)) as store:
        (state_bytes,) = store.execute("SELECT avg(length(state)) FROM stored_events").fetchone()
    db = wiring.state_database(settings)
    view = next(v for v in wiring.views(settings) if v.name == "events")
    log = Log(app.recorder, app.mapper)
    started = time.perf_counter()
    replay(db, log, view)
    replayed = time.perf_counter() - started
    app.close()
    return ReplayResult(facts, built, replayed, round(state_bytes))


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(STORED_EVENTS)
    return conn


def raw_row(state_bytes: int) -> tuple[str, int, str, bytes]:
    return (str(uuid.uuid4()), 1, TOPIC, os.urandom(state_bytes))


INSERT = "INSERT INTO stored_events VALUES (?, ?, ?, ?)"


def raw_single(path: Path, writers: int, seconds: float, state_bytes: int) -> float:
    """Rows/s at one row per transaction; each writer thread opens its own connection."""
    raw_connection(path).close()

    def writer(index: int) -> Callable[[], None]:
        conn = raw_connection(path)

        def once() -> None:
            conn.execute("BEGIN")
            conn.execute(INSERT, raw_row(state_bytes))
            conn.execute("COMMIT")

        return once

    return concurrently(writers, seconds, writer)


def raw_batched(path: Path, rows: int, state_bytes: int) -> float:
    """Rows/s at CHUNK rows per transaction: the ceiling for a replay that commits per batch."""
    conn = raw_connection(path)
    batches = [[raw_row(state_bytes) for _ in range(min(CHUNK, rows - first))]
               for first in range(0, rows, CHUNK)]
    started = time.perf_counter()
    for batch in batches:
        conn.execute("BEGIN")
        conn.executemany(INSERT, batch)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return rows / elapsed
