"""`python -m bench [--quick] [--out FILE]`: start the server on the embedded default with fresh
data, load it, measure it with wrk and WebSocket clients at 1 and 2 workers, measure the storage
path in-process, and print every figure beside its baseline from this same run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from bench import compare, idle, load, server, sockets, storage, wrk
from bench.cpu import CpuMeter, per_request
from bench.load import Dataset
from bench.postgres import DEFAULT_SERVER, scratch_database
from bench.text import cpu, number, percent, table

CONNECTIONS = (16, 64)
WORKERS = (1, 2)
APPEND_WRITERS = (1, 32)
ROTATION = 1000  # distinct events a GET or PUT scenario walks through
SCALE_OUT_INSTANCES = 2
SCALE_OUT_SCENARIOS = ("get_one", "list", "search", "put", "post")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"


@dataclass(frozen=True)
class Plan:
    """How much a run does: FULL for figures worth comparing, QUICK for a check in minutes."""

    users: int
    events: int
    wrk_seconds: float
    warmup_seconds: float  # 0: no warm-up runs
    append_seconds: float  # each in-process append and raw one-row-per-transaction figure
    ws_updates: int
    lag_samples: int
    crowd: int
    visibility_workers: tuple[int, ...]  # where WebSocket and list lag are measured
    replay_facts: int
    settle_seconds: float  # the longest wait for the views to apply the load
    rounds: int  # wrk runs per figure, its median reported (see `measure`)


FULL = Plan(users=1000, events=10_000, wrk_seconds=10, warmup_seconds=2, append_seconds=10,
            ws_updates=500, lag_samples=200, crowd=1000, visibility_workers=(1, 2),
            replay_facts=100_000, settle_seconds=120, rounds=3)
QUICK = Plan(users=200, events=2000, wrk_seconds=3, warmup_seconds=1, append_seconds=3,
             ws_updates=200, lag_samples=50, crowd=1000, visibility_workers=(1,),
             replay_facts=20_000, settle_seconds=60, rounds=3)


@dataclass(frozen=True)
class Target:
    """A bar a figure must clear: a ratio to its baseline at least `minimum`, or an absolute
    latency at most `maximum` milliseconds."""

    text: str
    minimum: float | None = None
    maximum: float | None = None

    def verdict(self, value: float) -> str:
        if self.minimum is not None:
            return "PASS" if value >= self.minimum else "MISS"
        assert self.maximum is not None
        return "PASS" if value <= self.maximum else "MISS"


# The longest wait for earlier runs' facts and emails before a run (a quick run's POSTs queue
# ~30,000 emails; the mailer sends 1,000–2,000 a second).
DRAIN_SECONDS = 120

HTTP_TARGETS = {
    "get_one": Target("≥ 50%", minimum=0.5),
    "list": Target("≥ 30%", minimum=0.3),
    "search": Target("≥ 30%", minimum=0.3),
    "put": Target("≥ 20%", minimum=0.2),
}
APPEND_TARGET = Target("≥ 50%", minimum=0.5)  # with 32 writers
REPLAY_TARGET = Target("≥ 30%", minimum=0.3)
WS_IDLE_P99 = Target("p99 ≤ 20 ms", maximum=20)
VISIBLE_P50 = Target("p50 ≤ 20 ms", maximum=20)
SCENARIO_LABELS = {
    "get_one": "GET one event", "list": "GET list (100)", "feed": "GET calendar feed",
    "search": "search location",
    "post": "POST create", "put": "PUT update", "signin": "sign-in",
}


def scenarios(data: Dataset, seed: int = 3, feed: str | None = None,
              ) -> dict[str, tuple[list[wrk.Request], bool]]:
    """Each scenario's rotation of requests and whether it carries the token. GETs walk many
    events and pages so no single row stays hot; PUTs walk the benchmark user's own events
    (only an owner may change one) renaming each to a name it never had. `feed`, a calendar
    feed's path, is polled as a calendar app polls it: with no header, over and over."""
    rng = random.Random(seed)
    usernames = [u.username for u in data.users]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [(today + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for d in range(load.HORIZON_DAYS)]
    return {
        "get_one": ([wrk.Request("GET", f"/api/event/{i}") for i in data.other_ids[:ROTATION]],
                    True),
        "list": ([wrk.Request("GET", "/api/events/?" + urlencode({"limit": 100, "starts_after": d}))
                  for d in days], True),
        **({"feed": ([wrk.Request("GET", feed)], False)} if feed else {}),
        "search": ([wrk.Request("GET", "/api/search_event/" + quote(place))
                    for place in load.LOCATIONS], True),
        "put": ([wrk.Request("PUT", f"/api/event/{i}", {"name": f"Renamed {wrk.UNIQUE}"})
                 for i in data.owned_ids[:ROTATION]], True),
        "post": ([wrk.Request("POST", "/api/events/", load.event_body(rng, usernames))
                  for _ in range(100)], True),
        "signin": ([wrk.Request("POST", "/api/auth/signin/", {
            "username": data.owner.username, "password": load.PASSWORD})], False),
    }


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass(frozen=True)
class Entrant:
    """What one figure is measured on: a run's server(s), driven with that run's rotation
    (each backend loaded its own data, so the same scenario's requests differ by run)."""

    run: Run
    targets: list[server.Server]
    requests: list[wrk.Request]
    token: str | None


def typical(rounds: list[dict[str, Any]], rate: str = "rps") -> dict[str, Any]:
    """A figure's rounds as one: the round with the median rate, its p50 and p99 replaced by
    the rounds' medians, and every round's rate and p99 kept beside them."""
    middle = sorted(rounds, key=lambda r: r[rate])[len(rounds) // 2]
    return {
        **middle,
        "p50_ms": statistics.median(r["p50_ms"] for r in rounds),
        "p99_ms": statistics.median(r["p99_ms"] for r in rounds),
        "non_2xx": sum(r["non_2xx"] for r in rounds),
        "socket_errors": sum(r["socket_errors"] for r in rounds),
        "rounds": [{rate: round(r[rate], 1), "p99_ms": r["p99_ms"]} for r in rounds],
    }


def measure(entrants: list[Entrant], name: str, connections: tuple[int, ...],
            warm_up: bool = True, rate: str = "rps") -> list[dict[str, Any]]:
    """Each entrant's figure at each connection count, from `rounds` wrk runs each, the
    entrants taking turns within a round and the order reversed every other round (ABBA).
    Figures that are compared (one backend with the other, one instance with two) are then
    taken minutes apart no more: on a shared machine whose speed drifts by a third between
    one phase and the next, a ratio of two single runs minutes apart measured the drift as
    much as the product. A short discarded run first for each (a fresh worker's caches,
    SQLite's page cache). `rate`: the figure the median round is chosen by."""
    plan = entrants[0].run.plan
    found: list[dict[str, Any]] = [{} for _ in entrants]
    if warm_up and plan.warmup_seconds:
        for entrant in entrants:
            entrant.run.drive(entrant, entrants, name, connections[0], plan.warmup_seconds)
    for c in connections:
        rounds: list[list[dict[str, Any]]] = [[] for _ in entrants]
        for turn in range(plan.rounds):
            order = list(enumerate(entrants))
            for index, entrant in order if turn % 2 == 0 else reversed(order):
                rounds[index].append(entrant.run.drive(entrant, entrants, name, c,
                                                       plan.wrk_seconds))
        for index in range(len(entrants)):
            found[index][str(c)] = typical(rounds[index], rate)
    return found


def together(served: dict[Run, tuple[server.Server, Dataset]], workers: int) -> None:
    """Every scenario on every run's server, measured by `measure` in turns: one run alone,
    or both backends of a --both-backends invocation side by side."""
    rotations = {}
    for run, (product, data) in served.items():
        feed = load.calendar_feed(product.url, load.sign_in(product.url, data.subscriber))
        # the feed grows between phases (the earlier phase's POSTs invite the subscriber too)
        run.results.setdefault("feed_events", {})[f"w{workers}"] = httpx.get(
            product.url + feed, timeout=30).text.count("BEGIN:VEVENT")
        rotations[run] = scenarios(data, feed=feed)

    def entrants(scenario: str) -> list[Entrant]:
        return [Entrant(run, [product], rotations[run][scenario][0],
                        data.owner.access if rotations[run][scenario][1] else None)
                for run, (product, data) in served.items()]

    for name in next(iter(rotations.values())):
        progress(f"wrk {name} (workers {workers})")
        for run, figures in zip(served, measure(entrants(name), name, CONNECTIONS),
                                strict=True):
            run.results["http"].setdefault(f"w{workers}", {})[name] = figures
    progress(f"HTTP appends with {' and '.join(map(str, APPEND_WRITERS))} clients "
             f"(workers {workers})")
    appends = measure(entrants("post"), "append", APPEND_WRITERS, warm_up=False, rate="ok_rps")
    for run, figures in zip(served, appends, strict=True):
        run.results["append"][f"http_w{workers}"] = figures


class Run:
    """One benchmark run: its plan, scratch directory and everything measured so far."""

    def __init__(self, plan: Plan, workdir: Path, event_store: str | None) -> None:
        self.plan = plan
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.event_store = event_store
        self.data_dir = workdir / "data"
        self.event_body = workdir / "baseline-event.json"
        self.list_body = workdir / "baseline-list.json"
        self.results: dict[str, Any] = {
            "http": {}, "baseline_http": {}, "append": {}, "latency": {}, "rss_mib": {},
            "mail": {}, "drain": {"seconds": 0.0, "emails": 0, "runs": 0},
        }
        self.failures: list[str] = []  # answers that were not 2xx, sockets dropped
        self.notes: list[str] = []  # what makes a figure meaningless without being an error

    def drive(self, entrant: Entrant, alongside: list[Entrant], name: str, connections: int,
              seconds: float) -> dict[str, Any]:
        """One wrk run against the entrant's server, or several at once (instances sharing
        a database), with the CPU each part of the machine spent per request meanwhile.
        Every server of `alongside` (the figures taken in turns with this one) must first be
        done with what earlier runs left, or this run would pay for their work."""
        targets = entrant.targets
        label = f"{name} at {connections} connections"
        owners = {id(t): (other.run, t) for other in alongside for t in other.targets}
        for run, target in owners.values():
            run.settle(target, label)
        meter = CpuMeter([target.pid for target in targets], self.event_store)
        before = meter.read()
        result = wrk.spread([target.url for target in targets], name, entrant.requests,
                            entrant.token, connections, seconds, self.workdir)
        spent = per_request(before, meter.read(), result.requests)
        if result.non_2xx or result.socket_errors:
            self.failures.append(f"{label}: {result.non_2xx} non-2xx answers, "
                                 f"{result.socket_errors} socket errors")
        if not result.requests:
            self.notes.append(f"{label}: no answer came back within the {seconds:.0f} s run "
                              "(answers take longer than that)")
        return {**result.as_dict(), "cpu_us": spent}

    def settle(self, target: server.Server, label: str) -> None:
        """Wait until one of this run's servers is idle and owes nothing."""
        waited = target.quiet()
        if waited >= server.QUIET_SECONDS:
            self.notes.append(f"{label} began on a server still busy after {waited:.0f} s")
        if target.deferred:
            self.drain(target, label)

    def drain(self, target: server.Server, label: str) -> None:
        """Wait for the views and the mailer to finish what earlier runs left (a POST run
        queues tens of thousands of emails): its time and the emails sent meanwhile are
        reported as the mailer's pace, each backend's own."""
        seconds, sent, left = load.drain(target.url, DRAIN_SECONDS)
        drained = self.results["drain"]
        drained["seconds"] += seconds
        drained["emails"] += sent
        drained["runs"] += 1
        if left:
            self.notes.append(f"{label} began with {left:,} facts and emails still owed after "
                              f"{seconds:.0f} s")

    def measure(self, targets: list[server.Server], name: str, requests: list[wrk.Request],
                token: str | None, connections: tuple[int, ...],
                warm_up: bool = True) -> dict[str, Any]:
        """One figure per connection count on these servers alone."""
        return measure([Entrant(self, targets, requests, token)], name, connections,
                       warm_up)[0]

    def load(self, product: server.Server) -> Dataset:
        self.results["rss_mib"]["w1_empty"] = product.rss_mib()
        progress(f"loading {self.plan.users} users and {self.plan.events} events")
        started = time.monotonic()
        data = load.load(product.url, self.plan.users, self.plan.events)
        loaded = time.monotonic() - started
        waited, lag = load.settle(product.url, self.plan.settle_seconds)
        self.results["load"] = {"seconds": round(loaded, 1), "settle_seconds": round(waited, 1),
                                "views_lag_left": lag}
        progress(f"loaded in {loaded:.0f} s; views caught up {waited:.1f} s later")
        self.results["rss_mib"]["w1_loaded"] = product.rss_mib()
        self.keep_bodies(product.url, data)
        return data

    def keep_bodies(self, url: str, data: Dataset) -> None:
        """The bodies the bare baseline will serve, exactly as the product answered them: one
        event with a middling number of participants, and the first list page."""
        with httpx.Client(base_url=url, headers=load.auth(data.owner), timeout=30) as client:
            bodies = [client.get(f"/api/event/{i}").json() for i in data.other_ids[:50]]
            page = client.get("/api/events/", params={"limit": 100}).json()
        middle = sorted(bodies, key=lambda b: len(b["event"]["participants"]))[len(bodies) // 2]
        self.event_body.write_text(json.dumps(middle), encoding="utf-8")
        self.list_body.write_text(json.dumps(page), encoding="utf-8")

    def visibility(self, product: server.Server, data: Dataset, workers: int) -> None:
        token = data.owner.access
        latency: dict[str, Any] = {}
        product.quiet()
        self.drain(product, "PUT → WebSocket")
        progress(f"PUT → WebSocket, {self.plan.ws_updates} updates, no other sockets")
        latency["ws_idle"] = asyncio.run(sockets.websocket_latency(
            product.url, token, data.owned_ids, self.plan.ws_updates))
        progress(f"write → listed, {self.plan.lag_samples} samples")
        latency["visible"] = sockets.visible_lag(product.url, token, self.plan.lag_samples)
        progress(f"connecting {self.plan.crowd} feed sockets")
        crowd = sockets.Crowd(product.url, token, self.plan.crowd,
                              self.workdir / f"crowd-w{workers}.log")
        try:
            self.results["rss_mib"][f"w{workers}_sockets"] = product.rss_mib()
            progress(f"PUT → WebSocket with {crowd.count} other sockets")
            latency["ws_crowd"] = asyncio.run(sockets.websocket_latency(
                product.url, token, data.owned_ids, self.plan.ws_updates))
        finally:
            latency["crowd_sockets"] = crowd.count
            latency["crowd_messages_read"] = crowd.disperse()
        expected = crowd.count * self.plan.ws_updates
        if latency["crowd_messages_read"] < expected:
            self.failures.append(f"the crowd read {latency['crowd_messages_read']:,} of "
                                 f"{expected:,} feed messages (sockets closed as too slow?)")
        self.results["latency"][f"w{workers}"] = latency

    @contextmanager
    def serving(self, data: Dataset | None, workers: int
                ) -> Iterator[tuple[server.Server, Dataset]]:
        """One `alphabet serve --workers N` up, loaded on the first call (the data dir is
        kept between calls, so the second starts on the first's data), for what is measured
        against it; the mail it sent meanwhile recorded when it is stopped."""
        progress(f"starting alphabet serve --workers {workers}")
        product = server.product(self.data_dir, workers, self.workdir, self.event_store)
        try:
            if data is None:
                data = self.load(product)
            else:
                self.results["rss_mib"][f"w{workers}_loaded"] = product.rss_mib()
            load.sign_in(product.url, data.owner)  # access tokens last 15 minutes
            queued, sent = load.mail_counts(self.data_dir, self.event_store)
            started = time.monotonic()
            yield product, data
            self.results["rss_mib"][f"w{workers}_end"] = product.rss_mib()
            queued_end, sent_end = load.mail_counts(self.data_dir, self.event_store)
            seconds = time.monotonic() - started
            self.results["mail"][f"w{workers}"] = {
                "pending_start": None if queued is None else queued - sent,
                "pending_end": None if queued_end is None else queued_end - sent_end,
                "delivered": sent_end - sent, "seconds": round(seconds, 1),
                "per_second": round((sent_end - sent) / seconds, 1),
            }
        finally:
            product.stop()

    def baseline(self, workers: int) -> None:
        progress(f"bare Sanic baseline (workers {workers})")
        bare = server.baseline(self.event_body, self.list_body, workers, self.workdir)
        try:
            one = [wrk.Request("GET", "/api/event/00000000-0000-0000-0000-000000000000")]
            page = [wrk.Request("GET", "/api/events/")]
            self.results["baseline_http"][f"w{workers}"] = {
                "event": self.measure([bare], "bare-event", one, None, CONNECTIONS,
                                      warm_up=False),
                "list": self.measure([bare], "bare-list", page, None, CONNECTIONS,
                                     warm_up=False),
            }
        finally:
            bare.stop()

    def storage(self) -> None:
        """Run with no server up, so nothing else competes for the disk."""
        plan = self.plan
        progress(f"replay: building a store of {plan.replay_facts} facts, then replaying")
        replayed = storage.replay_rate(self.workdir / "replay", plan.replay_facts)
        self.results["replay"] = {
            **asdict(replayed), "facts_per_second": replayed.facts_per_second,
            "raw_batched_rows_per_second": storage.raw_batched(
                self.workdir / "raw-batched.sqlite", plan.replay_facts, replayed.state_bytes),
        }
        append = self.results["append"]
        append["in_process"], append["raw_one_row"] = {}, {}
        for writers in APPEND_WRITERS:
            progress(f"in-process appends and raw inserts, {writers} writer(s)")
            append["in_process"][str(writers)] = storage.append_in_process(
                self.workdir / f"append-{writers}", writers, plan.append_seconds)
            append["raw_one_row"][str(writers)] = storage.raw_single(
                self.workdir / f"raw-{writers}.sqlite", writers, plan.append_seconds,
                replayed.state_bytes)

    def scale_out(self, data: Dataset) -> None:
        """Several instances (`alphabet serve --workers 1` each, a data dir and port of their
        own, one signing key) on this run's PostgreSQL database, driven at once, beside the
        first of them alone: measured route by route, the two in turns (`measure`), so both
        figures see the same machine."""
        secret = (self.data_dir / "secret_key").read_text(encoding="utf-8").strip()
        progress(f"scale-out: {SCALE_OUT_INSTANCES} instances on one database")
        fleet: list[server.Server] = []
        try:
            for number in range(SCALE_OUT_INSTANCES):
                data_dir = self.data_dir if number == 0 else self.workdir / f"instance-{number}"
                fleet.append(server.product(data_dir, 1, self.workdir, self.event_store, secret))
            load.sign_in(fleet[0].url, data.owner)
            rotations = scenarios(data)
            measured: dict[str, Any] = {}
            for name in SCALE_OUT_SCENARIOS:
                requests, _ = rotations[name]
                progress(f"wrk {name}: one instance and {len(fleet)}, in turns")
                alone, every = measure([Entrant(self, fleet[:1], requests, data.owner.access),
                                        Entrant(self, fleet, requests, data.owner.access)],
                                       f"{name}-scale-out", CONNECTIONS)
                measured[name] = {"1": alone, str(len(fleet)): every}
        finally:
            for instance in fleet:
                instance.stop()
        self.results["scale_out"] = {"instances": SCALE_OUT_INSTANCES, "http": measured}

    def execute(self, scale_out: bool = False) -> None:
        data = None
        for workers in WORKERS:
            with self.serving(data, workers) as (product, data):
                together({self: (product, data)}, workers)
                if workers in self.plan.visibility_workers:
                    self.visibility(product, data, workers)
            self.baseline(workers)
        if scale_out and data is not None:
            self.scale_out(data)
        self.storage()

    def share(self, other: Run) -> None:
        """Take the baselines and in-process storage figures another run of this same
        invocation measured (they do not depend on the product's backend)."""
        self.results["baseline_http"] = other.results["baseline_http"]
        self.results["replay"] = other.results["replay"]
        for key in ("in_process", "raw_one_row"):
            self.results["append"][key] = other.results["append"][key]

    def summary(self, meta: dict[str, Any]) -> dict[str, Any]:
        results = {"meta": meta, **self.results, "failures": self.failures,
                   "notes": self.notes}
        results["checks"] = checks(results)
        return results


def both_backends(runs: dict[str, Run], scale_out: bool) -> None:
    """SQLite and PostgreSQL in one invocation: at each workers count both servers up at
    once (each on data it loaded itself, the same users and events) and every route's
    figures taken in turns (`measure`), then each one's visibility latencies while the other
    idles; the bare baseline once for both, and the in-process storage figures (SQLite's)
    once."""
    data: dict[str, Dataset | None] = dict.fromkeys(runs)
    for workers in WORKERS:
        with ExitStack() as stack:
            served = {run: stack.enter_context(run.serving(data[name], workers))
                      for name, run in runs.items()}
            together(served, workers)
            for run, (product, loaded) in served.items():
                if workers in run.plan.visibility_workers:
                    for other, (theirs, _) in served.items():
                        if other is not run:  # visibility settles its own server
                            other.settle(theirs, "PUT → WebSocket")
                    run.visibility(product, loaded, workers)
            data = {name: served[run][1] for name, run in runs.items()}
        runs["sqlite"].baseline(workers)
    if scale_out and data["postgresql"] is not None:
        runs["postgresql"].scale_out(data["postgresql"])
    runs["sqlite"].storage()
    runs["postgresql"].share(runs["sqlite"])


# ---- the report ----------------------------------------------------------------------------


def checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every figure with its baseline, ratio and, where there is one, target and verdict."""
    found: list[dict[str, Any]] = []

    def add(group: str, figure: str, value: float, unit: str, baseline: str = "",
            base: float | None = None, target: Target | None = None,
            **extra: Any) -> None:
        share = value / base if base else None
        judged = share if share is not None else value
        found.append({
            "group": group, "figure": figure, "value": round(value, 2), "unit": unit,
            "baseline": baseline, "baseline_value": None if base is None else round(base, 1),
            "ratio": None if share is None else round(share, 4),
            "target": target.text if target else "",
            "verdict": target.verdict(judged) if target else "", **extra,
        })

    for workers in WORKERS:
        bare = results["baseline_http"][f"w{workers}"]
        for name, by_connections in results["http"][f"w{workers}"].items():
            for c, measured in by_connections.items():
                extra = {}
                if name in ("list", "feed", "search"):
                    same = bare["list"][c]["rps"]
                    extra = {"list_body_baseline_value": round(same, 1),
                             "ratio_to_list_body": round(measured["rps"] / same, 4)}
                add("http", f"w{workers} c{c} {SCENARIO_LABELS[name]}", measured["rps"],
                    "req/s", "bare Sanic, one event's body", bare["event"][c]["rps"],
                    HTTP_TARGETS.get(name), workers=workers, connections=int(c), scenario=name,
                    **extra)
    append = results["append"]
    raw = {int(k): v for k, v in append["raw_one_row"].items()}
    for writers in APPEND_WRITERS:
        # Raw writers contending for SQLite's one write lock do worse than one writer alone,
        # so the ceiling for many writers is the best raw figure at up to that many threads.
        best = max((n for n in raw if n <= writers), key=lambda n: raw[n])
        ceiling = f"raw 1 row/txn, {best} thread(s)"
        target = APPEND_TARGET if writers == 32 else None
        for workers in WORKERS:
            add("append", f"HTTP POST, {writers} client(s), w{workers}",
                append[f"http_w{workers}"][str(writers)]["ok_rps"], "facts/s", ceiling,
                raw[best], target)
        add("append", f"EventsApplication + group commit, {writers} thread(s)",
            append["in_process"][str(writers)], "facts/s", ceiling, raw[best], target)
    replayed = results["replay"]
    add("replay", f"replay events view, {replayed['facts']:,} facts",
        replayed["facts_per_second"], "facts/s", "raw 1000 rows/txn",
        replayed["raw_batched_rows_per_second"], REPLAY_TARGET)
    for workers in WORKERS:
        latency = results["latency"].get(f"w{workers}", {})
        for key, label in LATENCIES if latency else ():
            timed = latency[key]["from_put_sent"] if key.startswith("ws") else latency[key]
            for quantile in ("p50_ms", "p99_ms"):
                add("latency", f"w{workers} {label} {quantile[:3]}", timed[quantile], "ms",
                    target=LATENCY_TARGETS.get((key, quantile)))
    return found


LATENCIES = (
    ("ws_idle", "PUT → WS, no other sockets"),
    ("ws_crowd", "PUT → WS, 1,000 feed sockets"),
    ("visible", "write → listed"),
)
LATENCY_TARGETS = {("ws_idle", "p99_ms"): WS_IDLE_P99, ("visible", "p50_ms"): VISIBLE_P50}


def report(results: dict[str, Any]) -> str:
    found = results["checks"]
    http_rows = []
    for workers in WORKERS:
        bare = results["baseline_http"][f"w{workers}"]
        for c in map(str, CONNECTIONS):
            for body in ("event", "list"):
                m = bare[body][c]
                http_rows.append([str(workers), c, f"bare Sanic, {body} body", number(m["rps"]),
                                  number(m["p50_ms"], 2), number(m["p99_ms"], 2),
                                  str(m["non_2xx"]), str(m["socket_errors"]),
                                  cpu(m.get("cpu_us", {})), "", "", "", ""])
            for x in found:
                if x["group"] != "http" or (x["workers"], x["connections"]) != (workers, int(c)):
                    continue
                m = results["http"][f"w{workers}"][x["scenario"]][c]
                http_rows.append([
                    str(workers), c, SCENARIO_LABELS[x["scenario"]], number(m["rps"]),
                    number(m["p50_ms"], 2), number(m["p99_ms"], 2), str(m["non_2xx"]),
                    str(m["socket_errors"]), cpu(m.get("cpu_us", {})), percent(x["ratio"]),
                    percent(x.get("ratio_to_list_body")), x["target"], x["verdict"],
                ])
    storage_rows = [
        [x["figure"], number(x["value"]), x["baseline"], number(x["baseline_value"]),
         percent(x["ratio"]), x["target"], x["verdict"]]
        for x in found if x["group"] in ("append", "replay")
    ]
    latency_rows = []
    for workers in WORKERS:
        latency = results["latency"].get(f"w{workers}", {})
        for key, label in LATENCIES if latency else ():
            sets = ([("from PUT sent", latency[key]["from_put_sent"]),
                     ("from PUT answered", latency[key]["from_put_answered"])]
                    if key != "visible" else [("from create answered", latency[key])])
            for start, q in sets:
                verdicts = [f"{t.text} {t.verdict(q[quantile])}"
                            for (k, quantile), t in LATENCY_TARGETS.items()
                            if k == key and start != "from PUT answered"]
                latency_rows.append([str(workers), label, start, str(q["n"]),
                                     number(q["p50_ms"], 2), number(q["p99_ms"], 2),
                                     number(q["max_ms"], 2), " ".join(verdicts)])
    meta = results["meta"]
    drain = results["drain"]
    mail = "; ".join(
        f"w{w}: {number(m['pending_start']) or '?'} pending at start, "
        f"{number(m['pending_end']) or '?'} at end, {m['per_second']:,.0f}/s delivered"
        for w, m in ((w, results["mail"][f"w{w}"]) for w in WORKERS))
    parts = [
        f"Alphabet Events benchmark ({meta['mode']}, {meta['backend']}): {meta['cpus']} CPUs, "
        "load average "
        f"{meta['loadavg_start']} at start, {meta['loadavg_end']} at end; "
        f"{meta['plan']['users']:,} users, {meta['plan']['events']:,} events loaded in "
        f"{results['load']['seconds']} s",
        f"wrk -t{wrk.THREADS} --latency: wrk's threads share the {meta['cpus']} cores with the "
        "server, so every req/s here (baselines too) is what is left beside the load generator.",
        "A load average above the core count means other work shared the machine: compare "
        "ratios, not absolute figures, and only between calm runs.",
        "",
        "HTTP: ratio = req/s / bare Sanic serving one event's body at the same connections and "
        "workers; 'list body' = the same for a bare route serving a real list page; CPU µs per "
        "request: product/PostgreSQL/wrk/rest of the machine",
        table(["workers", "conns", "scenario", "req/s", "p50 ms", "p99 ms", "non-2xx",
               "sock err", "CPU µs", "ratio", "list body", "target", "verdict"], http_rows),
        "GET calendar feed: one account's feed (events in it: " + ", ".join(
            f"{phase} {count}" for phase, count in results.get("feed_events", {}).items())
        + ") polled as calendar apps poll, with no header and no If-None-Match: each answer "
        "is the whole text.",
        "",
        "Appends and replay (facts/s) against raw sqlite3 with the store's durability "
        "(WAL, synchronous=FULL)",
        table(["figure", "facts/s", "ceiling", "ceiling/s", "ratio", "target", "verdict"],
              storage_rows),
        "",
        "Latency (ms): WS = PUT → that version's message on the event's socket; listed = POST "
        "→ first GET /api/events/?q=<word> (no min_position) showing it",
        table(["workers", "figure", "timed", "n", "p50", "p99", "max", "target"],
              latency_rows),
        "The crowd: " + "; ".join(
            f"{k}: {v['crowd_sockets']:,} sockets read {v['crowd_messages_read']:,} messages"
            for k, v in results["latency"].items()),
        "",
        "Server RSS, whole process tree (MiB): " + ", ".join(
            f"{k} {v:,.0f}" for k, v in results["rss_mib"].items()),
        f"Mail outbox beside the measurements: {mail}",
        "Before each run the views and the mailer finished what earlier runs left: "
        f"{drain['seconds']:,.0f} s over {drain['runs']} runs, {drain['emails']:,} emails sent, "
        f"{drain['emails'] / max(drain['seconds'], 1e-9):,.0f}/s",
    ]
    if "scale_out" in results:
        parts += ["", compare.scale_out_report(results["scale_out"], SCENARIO_LABELS)]
    if results["notes"]:
        parts += ["", "NOTES:", *(f"  {n}" for n in results["notes"])]
    if results["failures"]:
        parts += ["", "FAILURES (every answer should be 2xx):",
                  *(f"  {f}" for f in results["failures"])]
    return "\n".join(parts)


def idle_only(args: argparse.Namespace) -> int:
    """`--idle`: one server at a time, nothing else running beside it from us; on SQLite, on
    --event-store, or on both (a scratch PostgreSQL database) with --both-backends."""
    workdir = Path(tempfile.mkdtemp(prefix="alphabet-bench-idle-"))

    def progress(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    results: dict[str, Any] = {"meta": {
        "started": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "python": platform.python_version(), "idle_seconds": args.idle_seconds}}
    with ExitStack() as stack:
        try:
            stores: dict[str, str | None] = (
                {"sqlite": None, "postgresql": stack.enter_context(
                    scratch_database(args.postgres))} if args.both_backends
                else {"postgresql" if args.event_store else "sqlite": args.event_store})
            for backend, store in stores.items():
                results[backend] = idle.measure(workdir / backend, args.idle_seconds, store,
                                                progress)
        finally:
            server.stop_all()  # before the scratch database is dropped
    print("\n\n".join(idle.report(backend, results[backend])
                       for backend in ("sqlite", "postgresql") if backend in results))
    out = args.out if args.out != DEFAULT_OUT else DEFAULT_OUT.with_name("idle.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"results in {out}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run (about 3 minutes)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON results file")
    parser.add_argument(
        "--event-store", metavar="URL",
        help="serve on PostgreSQL (an empty database, e.g. postgresql://postgres@127.0.0.1/"
             "bench) for the HTTP, WebSocket, lag and memory figures; the in-process append "
             "and replay figures stay on SQLite")
    parser.add_argument(
        "--both-backends", action="store_true",
        help="serve on SQLite and on PostgreSQL in this one run, and print PostgreSQL's "
             "figures per route as a ratio to SQLite's (about twice as long); the PostgreSQL "
             "database is created with a random name on --postgres and dropped afterwards")
    parser.add_argument(
        "--postgres", metavar="URL", default=DEFAULT_SERVER,
        help="the PostgreSQL server --both-backends uses (default: %(default)s)")
    parser.add_argument(
        "--scale-out", action="store_true",
        help=f"on PostgreSQL, also {SCALE_OUT_INSTANCES} instances on one database driven at "
             "once, beside one")
    parser.add_argument(
        "--idle", action="store_true",
        help="only the idle cost: CPU of an unused server's process tree over --idle-seconds, "
             "then its PUT → WebSocket and write → listed latencies (on --event-store if given)")
    parser.add_argument("--idle-seconds", type=float, default=60, metavar="N",
                        help="how long --idle lets the server sit (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.idle:
        if args.both_backends and args.event_store:
            parser.error("--both-backends makes its own database: leave out --event-store")
        return idle_only(args)
    if args.both_backends and args.event_store:
        parser.error("--both-backends makes its own database: leave out --event-store")
    if args.scale_out and not (args.both_backends or args.event_store):
        parser.error("--scale-out needs PostgreSQL: --both-backends or --event-store URL")
    wrk.require()
    # 1,000 sockets need file descriptors: lift our soft limit, which the server inherits.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # A SIGTERM unwinds like Ctrl-C, so every server is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = QUICK if args.quick else FULL
    workdir = Path(tempfile.mkdtemp(prefix="alphabet-bench-"))
    started = time.monotonic()
    meta: dict[str, Any] = {
        "mode": "quick" if args.quick else "full", "plan": asdict(plan),
        "backend": "both" if args.both_backends else
                   "postgresql" if args.event_store else "sqlite",
        "started": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "python": platform.python_version(), "wrk_threads": wrk.THREADS,
        "loadavg_start": [round(x, 1) for x in os.getloadavg()],
    }
    runs: dict[str, Run] = {}
    with ExitStack() as stack:
        try:
            if args.both_backends:
                database = stack.enter_context(scratch_database(args.postgres))
                runs["sqlite"] = Run(plan, workdir / "sqlite", None)
                runs["postgresql"] = Run(plan, workdir / "postgresql", database)
                both_backends(runs, args.scale_out)
            else:
                runs[meta["backend"]] = Run(plan, workdir, args.event_store)
                runs[meta["backend"]].execute(args.scale_out)
            meta["seconds"] = round(time.monotonic() - started)
            meta["loadavg_end"] = [round(x, 1) for x in os.getloadavg()]
            each = {name: run.summary({**meta, "backend": name}) for name, run in runs.items()}
            printed = [report(results) for results in each.values()]
            if args.both_backends:
                compared = {
                    "http": compare.http_rows(each["sqlite"], each["postgresql"],
                                              SCENARIO_LABELS),
                    "latency": compare.latency_rows(each["sqlite"], each["postgresql"],
                                                    dict(LATENCIES)),
                }
                printed.append(compare.report(compared["http"], compared["latency"]))
                results = {"meta": meta, **each, "comparison": compared}
            else:
                [results] = each.values()
        except BaseException:
            partial = workdir / "partial-results.json"
            partial.write_text(json.dumps(
                {"meta": meta, **{name: {**run.results, "failures": run.failures}
                                  for name, run in runs.items()}},
                indent=2, ensure_ascii=False), encoding="utf-8")
            print(f"benchmark aborted; what was measured is in {partial}, logs and data beside "
                  "it", file=sys.stderr)
            raise
        finally:
            server.stop_all()  # before the scratch database is dropped
    print()
    print("\n\n".join(printed))
    print(f"\ntotal {meta['seconds']} s; results in {args.out}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(run.failures for run in runs.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
