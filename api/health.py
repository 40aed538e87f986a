"""Liveness and readiness: is the process up; can it reach the store; how far behind each
view is."""

from __future__ import annotations

from dataclasses import dataclass

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from api.context import off_loop, served
from api.docs import Answer, documented
from api.schemas import Health, Readiness
from projections.events_queries import EventsReader
from projections.follower import Follower, Log

bp = Blueprint("health")


@dataclass(frozen=True)
class HealthServices:
    """What readiness reads: the log's head, and each followed view's position."""

    log: Log
    follower: Follower
    reader: EventsReader


@bp.get("/healthz")
@documented("The process is up", {200: Answer(Health)})
async def healthz(request: Request) -> JSONResponse:
    return json({"status": "ok"})


@bp.get("/readyz")
@documented("The event store answers; each view's lag behind it in log positions",
            {200: Answer(Readiness), 503: Answer(Readiness)})
@served(HealthServices)
async def readyz(request: Request, services: HealthServices) -> JSONResponse:
    try:
        head = await off_loop(services.log.head)
    except Exception as exc:  # any failure of the store means "not ready", with the reason
        return json({"status": "unavailable", "reason": str(exc)}, status=503)
    return json({"status": "ready", "position": head, "views": await views_lag(services, head)})


async def views_lag(services: HealthServices, head: int) -> dict[str, dict[str, int]]:
    """Each view this process follows: the position it has reached and how far behind `head`."""
    views = {}
    for view in services.follower.views:
        at = await services.reader.position(view.name)
        views[view.name] = {"position": at, "lag": max(head - at, 0)}
    return views
