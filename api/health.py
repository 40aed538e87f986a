"""Liveness and readiness: is the process up; can it reach the store; how far behind each
view is."""

from __future__ import annotations

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from api.context import Services, off_loop, served
from api.docs import Answer, documented
from api.schemas import Health, Readiness

bp = Blueprint("health")


@bp.get("/healthz")
@documented("The process is up", {200: Answer(Health)})
async def healthz(request: Request) -> JSONResponse:
    return json({"status": "ok"})


@bp.get("/readyz")
@documented("The event store answers; each view's lag behind it in log positions",
            {200: Answer(Readiness), 503: Answer(Readiness)})
@served
async def readyz(request: Request, services: Services) -> JSONResponse:
    try:
        head = await off_loop(services.log.head)
    except Exception as exc:  # any failure of the store means "not ready", with the reason
        return json({"status": "unavailable", "reason": str(exc)}, status=503)
    return json({"status": "ready", "position": head, "views": await views_lag(services, head)})


async def views_lag(services: Services, head: int) -> dict[str, dict[str, int]]:
    """Each view this process follows: the position it has reached and how far behind `head`."""
    views = {}
    for view in services.follower.views:
        at = await services.reader.position(view.name)
        views[view.name] = {"position": at, "lag": max(head - at, 0)}
    return views
