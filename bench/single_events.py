"""Lists and search with `single_events=true` over 10,000 series beside the plain list, read
in-process through the server's EventsReader (the statements a request runs, without HTTP),
on SQLite and, with --postgres URL, on PostgreSQL.

    python -m bench.single_events [--series 10000] [--singles 10000] [--postgres URL]

The store: SERIES series (a tenth daily and unbounded, the rest weekly, half of those
unbounded and half 20 times) and SINGLES single events, starting over the next 30 days,
loaded by `alphabet replay`'s bulk loader (timed: it materialises the occurrences). Each query
runs for about `--seconds` (at least 5 times): median and 95th percentile, and the ratio to
the plain list's first page. Never part of the test run."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alphabet import wiring
from alphabet.settings import Postgres, Settings
from bench.load import LOCATIONS
from domain.presentation import instant
from projections.database import AsyncReads, InlineReads
from projections.events_queries import EventsReader, Filters
from projections.events_view import EventsView
from projections.follower import Log
from projections.replay import replay

CHUNK = 1000
PAGE = 100


def items(series: int, singles: int, now: datetime) -> list[dict[str, Any]]:
    rng = random.Random(7)
    made = []
    for i in range(series + singles):
        start = (now + timedelta(minutes=rng.randrange(30 * 24 * 60))).replace(microsecond=0)
        rule = ([] if i >= series else ["RRULE:FREQ=DAILY"] if i % 10 == 0
                else ["RRULE:FREQ=WEEKLY"] if i % 2 else ["RRULE:FREQ=WEEKLY;COUNT=20"])
        made.append({"name": f"Meeting {i}", "starting_time": start,
                     "end_time": start + timedelta(minutes=45),
                     "location": LOCATIONS[i % len(LOCATIONS)], "participants": [],
                     "recurrence": rule, "time_zone": "Europe/Berlin" if i % 3 else "UTC"})
    rng.shuffle(made)
    return made


async def timed(run: Callable[[], Awaitable[Any]], seconds: float) -> dict[str, float]:
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 5 or time.perf_counter() < deadline:
        started = time.perf_counter()
        await run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"median_ms": round(statistics.median(times), 3),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 3), "runs": len(times)}


async def measure(reader: EventsReader, now: datetime, seconds: float) -> dict[str, Any]:
    async def third(filters: Filters) -> None:
        cursor = None
        for _ in range(3):
            cursor = (await reader.page(filters, cursor, PAGE, whole=True)).next

    later = Filters(starts_after=instant(now + timedelta(days=2 * 365)), single_events=True)
    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "list, first page": lambda: reader.page(Filters(), None, PAGE, whole=True),
        "list single_events, first page": lambda: reader.page(
            Filters(single_events=True), None, PAGE, whole=True),
        "list single_events, pages 1-3 by cursor": lambda: third(Filters(single_events=True)),
        "list, pages 1-3 by cursor": lambda: third(Filters()),
        "list single_events, 2 years ahead (past the horizon)": lambda: reader.page(
            later, None, PAGE, whole=True),
        "search 'haifa', first page": lambda: reader.page(
            Filters(location="haifa"), None, PAGE, whole=True),
        "search 'haifa' single_events, first page": lambda: reader.page(
            Filters(location="haifa", single_events=True), None, PAGE, whole=True),
    }
    found: dict[str, Any] = {}
    for name, run in cases.items():
        found[name] = await timed(run, seconds)
        print(f"  {name:<55} median {found[name]['median_ms']:>9.3f} ms   "
              f"p95 {found[name]['p95_ms']:>9.3f} ms", flush=True)
    base = found["list, first page"]["median_ms"]
    for name in found:
        found[name]["ratio_to_list"] = round(found[name]["median_ms"] / base, 2)
    return found


def run(settings: Settings, reads: AsyncReads, series: int, singles: int,
        seconds: float) -> dict[str, Any]:
    now = datetime.now(UTC)
    app = wiring.event_application(settings, create_tables=True)
    db = wiring.state_database(settings)
    try:
        made = items(series, singles, now)
        started = time.perf_counter()
        for chunk in range(0, len(made), CHUNK):
            app.create_events(owner_id=str(uuid.uuid4()), items=made[chunk:chunk + CHUNK])
        stored = time.perf_counter() - started
        started = time.perf_counter()
        replay(db, Log(app.recorder, app.mapper), EventsView(db.dialect))
        loaded = time.perf_counter() - started
        counts = {table: db.connection().execute(
            f"SELECT COUNT(*) AS n FROM {table}").fetchone()["n"]
            for table in ("events_view", "event_series", "event_occurrences")}
        print(f"  stored {len(made):,} events in {stored:.1f} s; view rebuilt in {loaded:.1f} s "
              f"({counts})", flush=True)

        async def read() -> dict[str, Any]:
            await reads.open()
            try:
                reader = EventsReader(reads, "bench", db.dialect, wiring.events_table(app))
                return await measure(reader, now, seconds)
            finally:
                await reads.close()

        return {"rows": counts, "store_seconds": round(stored, 1),
                "rebuild_seconds": round(loaded, 1), "queries": asyncio.run(read())}
    finally:
        app.close()
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--singles", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=3.0, help="per query")
    parser.add_argument("--postgres", help="a server's URL: also measure on a fresh database")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL alone")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    results: dict[str, Any] = {"series": args.series, "singles": args.singles, "page": PAGE}
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            print("SQLite:", flush=True)
            settings = Settings(data_dir=Path(folder))
            settings.prepare_data_dir()
            results["sqlite"] = run(settings, InlineReads(settings.state_path,
                                                          settings.event_store_path),
                                    args.series, args.singles, args.seconds)
    if args.postgres:
        import psycopg

        from projections.postgres import PostgresReads

        name = f"alphabet_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres + "/postgres", autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        try:
            print("PostgreSQL:", flush=True)
            settings = Settings(data_dir=Path(tempfile.mkdtemp()),
                                postgres=Postgres.from_url(f"{args.postgres}/{name}"))
            assert settings.postgres is not None
            results["postgres"] = run(settings, PostgresReads(settings.postgres.conninfo),
                                      args.series, args.singles, args.seconds)
        finally:
            with psycopg.connect(args.postgres + "/postgres", autocommit=True) as admin:
                admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
