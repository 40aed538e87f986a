"""A crowd of WebSocket clients in a process of its own (`python -m bench.crowd URL COUNT`, the
access token in BENCH_TOKEN rather than on a command line anyone can read), so that reading
their messages does not share an event loop with the latency probe.

It opens COUNT sockets on the feed (every change goes to every one of them: the heaviest
fan-out), prints `ready N` once each has had its `ready` message, reads and discards
everything sent, and closes them all when its standard input closes."""

from __future__ import annotations

import asyncio
import os
import resource
import sys

from websockets.asyncio.client import ClientConnection, connect

CONNECT_AT_ONCE = 50


def raise_fd_limit() -> None:
    """A socket is a file descriptor: lift the soft limit to the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def drain(ws: ClientConnection, counter: list[int]) -> None:
    async for _ in ws:
        counter[0] += 1


async def hold(url: str, token: str, count: int) -> None:
    address = url.replace("http://", "ws://", 1) + f"/ws/events?token={token}"
    sockets: list[ClientConnection] = []

    async def one() -> ClientConnection:
        ws = await connect(address, open_timeout=60, max_size=None)
        await asyncio.wait_for(ws.recv(), 60)  # {"type": "ready", ...}
        return ws

    for first in range(0, count, CONNECT_AT_ONCE):
        sockets.extend(await asyncio.gather(
            *(one() for _ in range(min(CONNECT_AT_ONCE, count - first)))))
    received = [0]
    readers = [asyncio.create_task(drain(ws, received)) for ws in sockets]
    print(f"ready {len(sockets)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    for reader in readers:
        reader.cancel()
    print(f"received {received[0]}", flush=True)


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    token = os.environ["BENCH_TOKEN"]
    raise_fd_limit()
    asyncio.run(hold(url, token, count))


if __name__ == "__main__":
    main()
