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
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from bench import load, server, sockets, storage, wrk
from bench.load import Dataset

CONNECTIONS = (16, 64)
WORKERS = (1, 2)
APPEND_WRITERS = (1, 32)
ROTATION = 1000  # distinct events a GET or PUT scenario walks through
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"


@dataclass(frozen=True)
class Plan:
    users: int
    events: int
    wrk_seconds: float
    warmup_seconds: float
    append_seconds: float  # each in-process append and raw one-row-per-transaction figure
    ws_updates: int
    lag_samples: int
    crowd: int
    replay_facts: int
    settle_seconds: float  # the longest wait for the load's views and emails to catch up


FULL = Plan(users=1000, events=10_000, wrk_seconds=10, warmup_seconds=2, append_seconds=10,
            ws_updates=500, lag_samples=200, crowd=1000, replay_facts=100_000,
            settle_seconds=60)
QUICK = Plan(users=200, events=2000, wrk_seconds=3, warmup_seconds=1, append_seconds=3,
             ws_updates=200, lag_samples=50, crowd=1000, replay_facts=20_000, settle_seconds=10)


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
    "get_one": "GET one event", "list": "GET list (100)", "search": "search location",
    "post": "POST create", "put": "PUT update", "signin": "sign-in",
}


def scenarios(data: Dataset, seed: int = 3) -> dict[str, tuple[list[wrk.Request], bool]]:
    """Each scenario's rotation of requests and whether it carries the token. GETs walk many
    events and pages so no single row stays hot; PUTs walk the benchmark user's own events
    (only an owner may change one) renaming each to a name it never had."""
    rng = random.Random(seed)
    usernames = [u.username for u in data.users]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "get_one": ([wrk.Request("GET", f"/api/event/{i}") for i in data.other_ids[:ROTATION]],
                    True),
        "list": ([wrk.Request("GET", "/api/events/?" + urlencode({
            "limit": 100, "starts_after": (today + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })) for d in range(load.HORIZON_DAYS)], True),
        "search": ([wrk.Request("GET", "/api/search_event/" + quote(place))
                    for place in load.LOCATIONS], True),
        "put": ([wrk.Request("PUT", f"/api/event/{i}", {"name": f"Renamed {wrk.UNIQUE}"})
                 for i in data.owned_ids[:ROTATION]], True),
        "post": ([wrk.Request("POST", "/api/events/", load.event_body(rng, usernames))
                  for _ in range(100)], True),
        "signin": ([wrk.Request("POST", "/api/auth/signin/", {
            "username": data.owner.username, "password": load.PASSWORD})], False),
    }


class Run:
    """One benchmark run: its plan, scratch directory and everything measured so far."""

    def __init__(self, plan: Plan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.results: dict[str, Any] = {
            "http": {}, "baseline_http": {}, "append": {}, "replay": {}, "latency": {},
            "rss_mib": {}, "mail_backlog": {},
        }
        self.failures: list[str] = []

    def wrk(self, url: str, name: str, requests: list[wrk.Request], token: str | None,
            connections: int, seconds: float) -> wrk.Result:
        result = wrk.run(url, name, requests, token, connections, seconds, self.workdir)
        if result.non_2xx or result.socket_errors:
            self.failures.append(f"{name} at {connections} connections: {result.non_2xx} "
                                 f"non-2xx answers, {result.socket_errors} socket errors")
        return result

    def progress(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def serve(self, workers: int) -> server.Server:
        self.progress(f"starting alphabet serve --workers {workers}")
        return server.product(self.data_dir, workers, self.workdir)

    def load(self, product: server.Server) -> Dataset:
        self.results["rss_mib"]["w1_empty"] = product.rss_mib()
        self.progress(f"loading {self.plan.users} users and {self.plan.events} events")
        started = time.monotonic()
        data = load.load(product.url, self.plan.users, self.plan.events)
        self.results["load_seconds"] = round(time.monotonic() - started, 1)
        waited, left = load.settle(product.url, self.data_dir, self.plan.settle_seconds)
        self.results["settle"] = {"waited_seconds": round(waited, 1), "backlog_left": left}
        self.progress(f"loaded in {self.results['load_seconds']} s; waited {waited:.0f} s for "
                      f"views and mail, {left} facts/emails still pending")
        self.results["rss_mib"]["w1_loaded"] = product.rss_mib()
        return data

    def http(self, product: server.Server, data: Dataset, workers: int) -> None:
        token = data.owner.access
        measured: dict[str, Any] = {}
        for name, (requests, authorised) in scenarios(data).items():
            self.progress(f"wrk {name} (workers {workers})")
            self.wrk(product.url, name, requests, token if authorised else None,
                     CONNECTIONS[0], self.plan.warmup_seconds)
            measured[name] = {
                str(c): self.wrk(product.url, name, requests, token if authorised else None,
                                 c, self.plan.wrk_seconds).as_dict()
                for c in CONNECTIONS
            }
        post = scenarios(data)["post"][0]
        self.progress(f"HTTP appends with {APPEND_WRITERS} clients (workers {workers})")
        self.results["append"][f"http_w{workers}"] = {
            str(c): self.wrk(product.url, "append", post, token, c,
                             self.plan.wrk_seconds).as_dict()
            for c in APPEND_WRITERS
        }
        self.results["http"][f"w{workers}"] = measured

    def visibility(self, product: server.Server, data: Dataset, workers: int) -> None:
        token = data.owner.access
        latency: dict[str, Any] = {}
        self.progress(f"PUT → WebSocket, {self.plan.ws_updates} updates, idle (workers {workers})")
        latency["ws_idle"] = asyncio.run(sockets.websocket_latency(
            product.url, token, data.owned_ids, self.plan.ws_updates))
        self.progress(f"write → visible in list, {self.plan.lag_samples} samples")
        latency["visible"] = sockets.visible_lag(product.url, token, self.plan.lag_samples)
        self.progress(f"connecting {self.plan.crowd} feed sockets")
        crowd = sockets.Crowd(product.url, token, self.plan.crowd,
                              self.workdir / f"crowd-w{workers}.log")
        try:
            self.results["rss_mib"][f"w{workers}_sockets"] = product.rss_mib()
            self.progress(f"PUT → WebSocket with {crowd.count} other sockets")
            latency["ws_crowd"] = asyncio.run(sockets.websocket_latency(
                product.url, token, data.owned_ids, self.plan.ws_updates))
        finally:
            latency["ws_crowd_sockets"] = crowd.count
            latency["ws_crowd_messages_read"] = crowd.disperse()
        self.results["latency"][f"w{workers}"] = latency

    def baseline(self, body_file: Path, workers: int) -> None:
        self.progress(f"bare Sanic baseline (workers {workers})")
        bare = server.baseline(body_file, workers, self.workdir)
        try:
            request = [wrk.Request("GET", "/api/event/00000000-0000-0000-0000-000000000000")]
            self.wrk(bare.url, "bare", request, None, CONNECTIONS[0], self.plan.warmup_seconds)
            self.results["baseline_http"][f"w{workers}"] = {
                str(c): self.wrk(bare.url, "bare", request, None, c,
                                 self.plan.wrk_seconds).as_dict()
                for c in CONNECTIONS
            }
        finally:
            bare.stop()

    def storage(self) -> None:
        """With no server running, so nothing else competes for the disk."""
        plan = self.plan
        self.progress(f"replay: building a store of {plan.replay_facts} facts")
        replayed = storage.replay_rate(self.workdir / "replay", plan.replay_facts)
        self.results["replay"] = {
            **asdict(replayed), "facts_per_second": replayed.facts_per_second,
            "raw_batched_rows_per_second": storage.raw_batched(
                self.workdir / "raw-batched.sqlite", plan.replay_facts, replayed.state_bytes),
        }
        for writers in APPEND_WRITERS:
            self.progress(f"in-process appends and raw inserts, {writers} writer(s)")
            self.results["append"].setdefault("in_process", {})[str(writers)] = \
                storage.append_in_process(self.workdir / f"append-{writers}", writers,
                                          plan.append_seconds)
            self.results["append"].setdefault("raw_one_row", {})[str(writers)] = \
                storage.raw_single(self.workdir / f"raw-{writers}.sqlite", writers,
                                   plan.append_seconds, replayed.state_bytes)


def baseline_body(url: str, data: Dataset, path: Path) -> Path:
    """The JSON of one real event with a middling number of participants, as the product
    answered it: the exact body the bare app will serve."""
    headers = load.auth(data.owner)
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        bodies = [client.get(f"/api/event/{i}").json() for i in data.other_ids[:50]]
    middle = sorted(bodies, key=lambda b: len(b["event"]["participants"]))[len(bodies) // 2]
    path.write_text(json.dumps(middle), encoding="utf-8")
    return path


def execute(run: Run) -> None:
    data: Dataset | None = None
    body_file = run.workdir / "baseline-body.json"
    for workers in WORKERS:
        product = run.serve(workers)
        try:
            if data is None:
                data = run.load(product)
                baseline_body(product.url, data, body_file)
            else:
                run.results["rss_mib"][f"w{workers}_loaded"] = product.rss_mib()
            load.sign_in(product.url, data.owner)  # tokens last 15 minutes
            run.results["mail_backlog"][f"w{workers}_start"] = load.backlog(product.url,
                                                                             run.data_dir)
            run.http(product, data, workers)
            run.visibility(product, data, workers)
            run.results["rss_mib"][f"w{workers}_end"] = product.rss_mib()
        finally:
            product.stop()
        run.baseline(body_file, workers)
    run.storage()


# ---- the report ----------------------------------------------------------------------------


def ratio(value: float, base: float) -> float:
    return value / base if base else 0.0


def checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every figure with its baseline, ratio and, where there is one, target and verdict."""
    found: list[dict[str, Any]] = []

    def add(group: str, figure: str, value: float, unit: str, base: float | None = None,
            base_name: str = "", target: Target | None = None) -> None:
        share = ratio(value, base) if base is not None else None
        judged = share if share is not None else value
        found.append({
            "group": group, "figure": figure, "value": round(value, 2), "unit": unit,
            "baseline": base_name, "baseline_value": None if base is None else round(base, 1),
            "ratio": None if share is None else round(share, 3),
            "target": target.text if target else "",
            "verdict": target.verdict(judged) if target else "",
        })

    for workers in WORKERS:
        bare = results["baseline_http"][f"w{workers}"]
        for name, by_connections in results["http"][f"w{workers}"].items():
            for c, measured in by_connections.items():
                add("http", f"w{workers} c{c} {SCENARIO_LABELS[name]}", measured["rps"], "req/s",
                    bare[c]["rps"], "bare Sanic", HTTP_TARGETS.get(name))
    append = results["append"]
    raw = append["raw_one_row"]
    for writers in APPEND_WRITERS:
        target = APPEND_TARGET if writers == 32 else None
        for workers in WORKERS:
            add("append", f"HTTP POST, {writers} client(s), w{workers}",
                append[f"http_w{workers}"][str(writers)]["ok_rps"], "facts/s",
                raw[str(writers)], f"raw 1 row/txn, {writers} thread(s)", target)
        add("append", f"EventsApplication, {writers} thread(s)", append["in_process"][str(writers)],
            "facts/s", raw[str(writers)], f"raw 1 row/txn, {writers} thread(s)", target)
    replayed = results["replay"]
    add("replay", f"replay events view, {replayed['facts']} facts", replayed["facts_per_second"],
        "facts/s", replayed["raw_batched_rows_per_second"], "raw 1000 rows/txn", REPLAY_TARGET)
    for workers in WORKERS:
        latency = results["latency"][f"w{workers}"]
        for key, label in (("ws_idle", "PUT → WS, idle"), ("ws_crowd", "PUT → WS, 1k sockets")):
            for quantile in ("p50_ms", "p99_ms"):
                target = WS_IDLE_P99 if key == "ws_idle" and quantile == "p99_ms" else None
                add("latency", f"w{workers} {label} {quantile[:3]}",
                    latency[key]["from_put_sent"][quantile], "ms", target=target)
        for quantile in ("p50_ms", "p99_ms"):
            target = VISIBLE_P50 if quantile == "p50_ms" else None
            add("latency", f"w{workers} write → listed {quantile[:3]}",
                latency["visible"][quantile], "ms", target=target)
    return found


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows,
                                                                          strict=True)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True))
             .rstrip() for line in [headers, ["-" * w for w in widths], *rows]]
    return "\n".join(lines)


def number(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def report(results: dict[str, Any], found: list[dict[str, Any]]) -> str:
    http_rows = []
    for workers in WORKERS:
        bare = results["baseline_http"][f"w{workers}"]
        for c in map(str, CONNECTIONS):
            http_rows.append([str(workers), c, "bare Sanic (baseline)", number(bare[c]["rps"]),
                              number(bare[c]["p50_ms"], 2), number(bare[c]["p99_ms"], 2),
                              str(bare[c]["non_2xx"]), str(bare[c]["socket_errors"]), "", "", ""])
            for name, by_connections in results["http"][f"w{workers}"].items():
                m = by_connections[c]
                check = next(x for x in found if x["figure"] ==
                             f"w{workers} c{c} {SCENARIO_LABELS[name]}")
                http_rows.append([
                    str(workers), c, SCENARIO_LABELS[name], number(m["rps"]),
                    number(m["p50_ms"], 2), number(m["p99_ms"], 2), str(m["non_2xx"]),
                    str(m["socket_errors"]), f"{check['ratio']:.0%}", check["target"],
                    check["verdict"],
                ])
    storage_rows = [
        [x["figure"], number(x["value"]), x["baseline"], number(x["baseline_value"]),
         f"{x['ratio']:.0%}", x["target"], x["verdict"]]
        for x in found if x["group"] in ("append", "replay")
    ]
    latency_rows = [[x["figure"], number(x["value"], 2), x["target"], x["verdict"]]
                    for x in found if x["group"] == "latency"]
    rss = results["rss_mib"]
    meta = results["meta"]
    parts = [
        f"Alphabet Events benchmark ({meta['mode']}), {meta['cpus']} CPUs, load average "
        f"{meta['loadavg_start']} at start, {meta['loadavg_end']} at end",
        f"wrk -t{wrk.THREADS} --latency: wrk's threads run on the same {meta['cpus']} cores as "
        "the server, so every req/s figure (and its baseline) is what is left beside the load "
        "generator",
        "",
        "HTTP (req/s; ratio to bare Sanic at the same connections and workers)",
        table(["workers", "conns", "scenario", "req/s", "p50 ms", "p99 ms", "non-2xx",
               "sock err", "ratio", "target", ""], http_rows),
        "",
        "Appends and replay (facts/s; ratio to raw sqlite3, WAL + synchronous=FULL)",
        table(["figure", "facts/s", "ceiling", "ceiling/s", "ratio", "target", ""],
              storage_rows),
        "",
        "Latency (WS: from the PUT being sent to its message; listed: from the create's answer "
        "to the first list poll showing it, polled without min_position)",
        table(["figure", "ms", "target", ""], latency_rows),
        "",
        "Server memory (RSS of the whole process tree, MiB): " + ", ".join(
            f"{k} {v:.0f}" for k, v in rss.items()),
        f"Mail backlog (facts + emails pending) when measuring began: {results['mail_backlog']}"
        f"; settle after load: {results['settle']}",
    ]
    if results["failures"]:
        parts += ["", "FAILURES:", *(f"  {f}" for f in results["failures"])]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run (a few minutes)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON results file")
    args = parser.parse_args(argv)
    wrk.require()
    # 1,000 sockets need file descriptors: lift our soft limit, which the server inherits.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # A SIGTERM unwinds like Ctrl-C, so every server is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = QUICK if args.quick else FULL
    workdir = Path(tempfile.mkdtemp(prefix="alphabet-bench-"))
    run = Run(plan, workdir)
    started = time.monotonic()
    meta = {"mode": "quick" if args.quick else "full", "plan": asdict(plan),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "wrk_threads": wrk.THREADS, "loadavg_start": [round(x, 1) for x in os.getloadavg()]}
    try:
        execute(run)
    except BaseException:
        print(f"benchmark aborted; logs and data kept in {workdir}", file=sys.stderr)
        raise
    finally:
        server.stop_all()
    meta["seconds"] = round(time.monotonic() - started)
    meta["loadavg_end"] = [round(x, 1) for x in os.getloadavg()]
    results = {"meta": meta, **run.results, "failures": run.failures}
    results["checks"] = checks(results)
    print()
    print(report(results, results["checks"]))
    print(f"\ntotal {meta['seconds']} s; results in {args.out}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
