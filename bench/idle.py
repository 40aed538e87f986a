"""`python -m bench --idle`: what an `alphabet serve` that nobody uses costs, and whether its
wake-ups keep changes prompt. The CPU of the whole process tree (main process, workers, managed
processes) is read from /proc over an idle stretch; then PUT → WebSocket and write → listed
latencies are measured on the same server: between samples its loops are asleep, so each
change must wake them (what a fast polling loop made prompt, a wake-up must keep prompt)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

import httpx

from bench import load, server, sockets
from bench.server import cpu_seconds, descendants, processes

SETTLE_SECONDS = 5.0  # start-up work (migrations, first catch-up) finished before measuring
EVENTS = 25
SAMPLES = 200


def tree_cpu(root: int) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of each process in the tree: pid → (command line, seconds)."""
    running = processes()
    return {pid: (running.get(pid, (0, "?"))[1], cpu_seconds(pid))
            for pid in descendants(root, running)}


def idle_cpu(root: int, seconds: float) -> dict[str, Any]:
    """The tree's CPU over `seconds` of doing nothing, as a percentage of one core, in total
    and per process (a process that appeared or vanished meanwhile counts what it used)."""
    before = tree_cpu(root)
    started = time.monotonic()
    time.sleep(seconds)
    after = tree_cpu(root)
    elapsed = time.monotonic() - started
    per_process = {
        pid: round((spent - before.get(pid, ("", 0.0))[1]) / elapsed * 100, 2)
        for pid, (_, spent) in after.items()}
    return {"seconds": round(elapsed, 1), "processes": len(after),
            "core_percent": round(sum(per_process.values()), 2),
            "per_process_percent": dict(sorted(per_process.items(), key=lambda kv: -kv[1]))}


def measure(workdir: Path, seconds: float, event_store: str | None,
            progress: Any = print) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    progress("starting alphabet serve (1 worker)")
    product = server.product(workdir / "data", 1, workdir, event_store)
    try:
        users = asyncio.run(load.sign_up_all(product.url, load.MAX_PARTICIPANTS + 1))
        data = load.Dataset(users, [], [])
        rng = random.Random(7)
        with httpx.Client(base_url=product.url, timeout=60) as client:
            answer = client.post("/api/batch_events/", headers=load.auth(users[0]), json=[
                load.event_body(rng, [u.username for u in users[1:]]) for _ in range(EVENTS)])
            answer.raise_for_status()
            data.owned_ids.extend(e["id"] for e in answer.json()["events"])
        load.settle(product.url, 60)
        time.sleep(SETTLE_SECONDS)
        progress(f"idle for {seconds:.0f} s")
        cpu = idle_cpu(product.pid, seconds)
        progress(f"PUT → WebSocket and write → listed, {SAMPLES} samples each")
        ws = asyncio.run(sockets.websocket_latency(
            product.url, users[0].access, data.owned_ids, SAMPLES))
        visible = sockets.visible_lag(product.url, users[0].access, SAMPLES)
        return {"cpu": cpu, "ws": ws, "visible": visible,
                "loadavg": [round(x, 1) for x in os.getloadavg()]}
    finally:
        product.stop()


def report(backend: str, results: dict[str, Any]) -> str:
    cpu = results["cpu"]
    ws = results["ws"]["from_put_sent"]
    visible = results["visible"]
    top = ", ".join(f"{pid}: {share}%" for pid, share in
                    list(cpu["per_process_percent"].items())[:6])
    return "\n".join([
        f"Idle `alphabet serve` ({backend}, 1 worker): "
        f"{cpu['core_percent']}% of one core over {cpu['seconds']} s, "
        f"{cpu['processes']} processes (by pid: {top})",
        f"PUT → WebSocket (from PUT sent): n {ws['n']}, p50 {ws['p50_ms']} ms, "
        f"p99 {ws['p99_ms']} ms, max {ws['max_ms']} ms",
        f"write → listed (from create answered): n {visible['n']}, p50 {visible['p50_ms']} ms, "
        f"p99 {visible['p99_ms']} ms, max {visible['max_ms']} ms",
        f"load average at end: {results['loadavg']}",
    ])
