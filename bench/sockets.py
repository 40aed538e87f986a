"""How fast a change becomes visible: PUT → WebSocket message (alone, and with a crowd of other
sockets held by bench/crowd.py), and POST → listed by the events view (read without
min_position, i.e. what a client that does not wait for its own write sees)."""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.load import LOCATIONS
from bench.server import Child

PROBE_SOCKETS = 25  # the updated events, each watched by its own socket, rotated through
MESSAGE_SECONDS = 10
CROWD_READY_SECONDS = 120
VISIBLE_SECONDS = 10


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1e3, 2)

    return {"n": len(ordered), "p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": at(1.0)}


async def websocket_latency(url: str, token: str, event_ids: list[str],
                            updates: int) -> dict[str, Any]:
    """PUT a name change, wait for that version's message on the event's socket. Timed from the
    PUT being sent (what a user sees) and from its answer (the notification path alone; can be
    negative when the message beats the answer)."""
    watched = event_ids[:PROBE_SOCKETS]
    base = url.replace("http://", "ws://", 1)
    inboxes: dict[str, asyncio.Queue[tuple[float, dict[str, Any]]]] = {
        e: asyncio.Queue() for e in watched}

    async def watch(event_id: str) -> ClientConnection:
        ws = await connect(f"{base}/ws/events/{event_id}?token={token}", max_size=None)
        await asyncio.wait_for(ws.recv(), MESSAGE_SECONDS)  # {"type": "ready", ...}
        return ws

    async def read(event_id: str, ws: ClientConnection) -> None:
        async for raw in ws:
            inboxes[event_id].put_nowait((time.perf_counter(), json.loads(raw)))

    sockets = await asyncio.gather(*(watch(e) for e in watched))
    readers = [asyncio.create_task(read(e, ws)) for e, ws in zip(watched, sockets, strict=True)]
    from_sent: list[float] = []
    from_answer: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            for number in range(updates):
                event_id = watched[number % len(watched)]
                sent = time.perf_counter()
                answer = await client.put(f"/api/event/{event_id}",
                                          json={"name": f"Socket probe {number}"})
                answered = time.perf_counter()
                answer.raise_for_status()
                version = answer.json()["event"]["version"]
                while True:
                    arrived, message = await asyncio.wait_for(inboxes[event_id].get(),
                                                              MESSAGE_SECONDS)
                    if message.get("type") == "event.updated" and message["version"] == version:
                        break
                from_sent.append(arrived - sent)
                from_answer.append(arrived - answered)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        for reader in readers:
            reader.cancel()
    return {"from_put_sent": percentiles(from_sent),
            "from_put_answered": percentiles(from_answer)}


def visible_lag(url: str, token: str, samples: int) -> dict[str, float]:
    """Create an event with a unique word in its name, then poll the list for that word as fast
    as one connection allows; the lag is from the create's answer to the first poll that
    shows it (so it includes up to one poll's round trip)."""
    lags: list[float] = []
    with httpx.Client(base_url=url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        for number in range(samples):
            word = f"probe{uuid.uuid4().hex}"
            start = f"2099-01-01T{number % 24:02d}:00:00Z"
            end = f"2099-01-01T{number % 24:02d}:30:00Z"
            client.post("/api/events/", json={
                "name": f"Visibility {word}", "starting_time": start, "end_time": end,
                "location": LOCATIONS[number % len(LOCATIONS)], "participants": [],
            }).raise_for_status()
            created = time.perf_counter()
            while True:
                page = client.get("/api/events/", params={"q": word})
                seen = time.perf_counter()
                page.raise_for_status()
                if page.json()["events"]:
                    break
                if seen - created > VISIBLE_SECONDS:
                    raise RuntimeError(f"event not listed {VISIBLE_SECONDS} s after its create")
            lags.append(seen - created)
    return percentiles(lags)


class Crowd(Child):
    """bench/crowd.py's process: `count` feed sockets held open while we measure."""

    def __init__(self, url: str, token: str, count: int, log_path: Path) -> None:
        super().__init__([sys.executable, "-m", "bench.crowd", url, str(count)], log_path,
                         {"BENCH_TOKEN": token}, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.popen.stdout is not None
        waiting, _, _ = select.select([self.popen.stdout], [], [], CROWD_READY_SECONDS)
        line = self.popen.stdout.readline().decode() if waiting else ""
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"the socket crowd did not connect; its log: {log_path}\n"
                               f"{log_path.read_text()[-3000:]}")
        self.count = int(line.split()[1])

    def disperse(self) -> int:
        """Close the crowd's sockets (by closing its input); returns the messages it read."""
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self.popen.stdin.close()
        waiting, _, _ = select.select([self.popen.stdout], [], [], CROWD_READY_SECONDS)
        line = self.popen.stdout.readline().decode() if waiting else ""
        self.stop()
        return int(line.split()[1]) if line.startswith("received") else -1
