"""The worker's health endpoint: a tiny HTTP server (aiohttp, which faust brings) answering
GET / with a JSON report, 200 when the worker consumes and 503 while it cannot (the broker
unreachable, the group not joined yet). It starts with the worker, before the broker answers,
so an operator sees why a worker is not consuming rather than a refused connection."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Report = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


class HealthServer:
    def __init__(self, host: str, port: int, report: Report) -> None:
        self.host = host
        self.port = port
        self.report = report
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._answer)
        app.router.add_get("/healthz", self._answer)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _answer(self, request: web.Request) -> web.Response:
        healthy, body = await self.report()
        return web.Response(text=json.dumps(body), status=200 if healthy else 503,
                            content_type="application/json")
