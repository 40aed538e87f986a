"""Liveness and readiness: is the process up; can it reach the store; how far behind each
view is; does any view or loop keep failing (projections.faults)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from api.context import off_loop, served
from api.docs import Answer, documented
from api.schemas import Health, Readiness
from projections.events_queries import EventsReader
from projections.follower import Follower, Log

bp = Blueprint("health")

# Failures in a row at one position before the service says it is not ready: one failure
# retried with success is a blip; a second is a fact (or a dependency) that keeps failing.
FAILING_AFTER = 2


@dataclass(frozen=True)
class HealthServices:
    """What readiness reads: the log's head, each followed view's position, and the
    supervised loops failing now, wherever they run (projections.faults)."""

    log: Log
    follower: Follower
    reader: EventsReader
    faults: Callable[[], Awaitable[list[dict[str, Any]]]]


@bp.get("/healthz")
@documented("The process is up", {200: Answer(Health)})
async def healthz(request: Request) -> JSONResponse:
    return json({"status": "ok"})


@bp.get("/readyz")
@documented("The event store answers; each view's lag behind it in log positions; 503 while "
            "a view or loop keeps failing (`faults` names it, the position and the error)",
            {200: Answer(Readiness), 503: Answer(Readiness)})
@served(HealthServices)
async def readyz(request: Request, services: HealthServices) -> JSONResponse:
    try:
        head = await off_loop(services.log.head)
    except Exception as exc:  # any failure of the store means "not ready", with the reason
        return json({"status": "unavailable", "reason": str(exc)}, status=503)
    views = await views_lag(services, head)
    found = await services.faults()
    failing = any(fault["attempts"] >= FAILING_AFTER for fault in found)
    return json({"status": "failing" if failing else "ready", "position": head,
                 "views": views, "faults": found}, status=503 if failing else 200)


async def views_lag(services: HealthServices, head: int) -> dict[str, dict[str, int]]:
    """Each view this process follows: the position it has reached and how far behind `head`."""
    views = {}
    for view in services.follower.views:
        at = await services.reader.position(view.name)
        views[view.name] = {"position": at, "lag": max(head - at, 0)}
    return views

