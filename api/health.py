"""Liveness and readiness: is the process up; can it reach the store; how far behind each
view is; does any view or loop keep failing (projections.faults)."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from api.context import Services, off_loop, served
from api.docs import Answer, documented
from api.schemas import Health, Readiness
from projections.faults import COLUMNS

bp = Blueprint("health")

# Failures in a row at one position before the service says it is not ready: one failure
# retried with success is a blip; a second is a fact (or a dependency) that keeps failing.
FAILING_AFTER = 2


@bp.get("/healthz")
@documented("The process is up", {200: Answer(Health)})
async def healthz(request: Request) -> JSONResponse:
    return json({"status": "ok"})


@bp.get("/readyz")
@documented("The event store answers; each view's lag behind it in log positions; 503 while "
            "a view or loop keeps failing (`faults` names it, the position and the error)",
            {200: Answer(Readiness), 503: Answer(Readiness)})
@served
async def readyz(request: Request, services: Services) -> JSONResponse:
    try:
        head = await off_loop(services.log.head)
    except Exception as exc:  # any failure of the store means "not ready", with the reason
        return json({"status": "unavailable", "reason": str(exc)}, status=503)
    views = await views_lag(services, head)
    found = await faults(services)
    failing = any(fault["attempts"] >= FAILING_AFTER for fault in found)
    return json({"status": "failing" if failing else "ready", "position": head,
                 "views": views, "faults": found}, status=503 if failing else 200)


async def views_lag(services: Services, head: int) -> dict[str, dict[str, int]]:
    """Each view this process follows: the position it has reached and how far behind `head`."""
    views = {}
    for view in services.follower.views:
        at = await services.reader.position(view.name)
        views[view.name] = {"position": at, "lag": max(head - at, 0)}
    return views


async def faults(services: Services) -> list[dict[str, Any]]:
    """The supervised loops failing now, wherever they run (projections.faults)."""
    return [dict(row) for row in await services.reads.fetchall(
        f"SELECT {COLUMNS} FROM faults ORDER BY name", ())]
