"""Operators: accounts that may delete any event and any account, see the views' lag and
replay them. An account is an operator when ALPHABET_OPERATORS names it, or when a grant
(`alphabet operator grant USER`, a `User.OperatorGranted` fact) stands on it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Concatenate, ParamSpec, TypeVar
from uuid import UUID

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from api.context import CurrentUser, current_user, off_loop, provided
from api.docs import Answer, Query, documented
from api.errors import ApiError
from api.health import HealthServices, views_lag
from api.schemas import OperatorStatus, Replayed
from domain.application import EventsApplication
from domain.errors import ForbiddenError
from projections.database import StateDatabase
from projections.follower import Log
from projections.replay import replay

bp = Blueprint("operators", url_prefix="/api/operator")

P = ParamSpec("P")
R = TypeVar("R")

NOT_OPERATOR = "only an operator may do this (see ALPHABET_OPERATORS and `alphabet operator`)"


@dataclass(frozen=True)
class Operators:
    """Who is an operator: the setting first (no I/O); then the account's own facts, through
    the aggregate cache, so a grant or revocation made by the command line counts from the
    next request on."""

    # usernames (case-folded) that ALPHABET_OPERATORS names
    named: frozenset[str]
    app: EventsApplication

    async def include(self, user: CurrentUser) -> bool:
        if user.username.casefold() in self.named:
            return True
        return await off_loop(self.app.is_operator, UUID(user.id))


@dataclass(frozen=True)
class OperatorServices:
    """What the operators' handlers use: the views this worker follows, their lag, and the
    state database and log a replay rebuilds them from."""

    operators: Operators
    health: HealthServices
    db: StateDatabase
    log: Log


def operating(
    handler: Callable[Concatenate[Request, OperatorServices, CurrentUser, P], Awaitable[R]],
) -> Callable[Concatenate[Request, P], Awaitable[R]]:
    """As `signed_in`, answering 403 to an account that is not an operator."""

    @wraps(handler)
    async def as_operator(request: Request, /, *args: P.args, **kwargs: P.kwargs) -> R:
        found = provided(request, OperatorServices)
        user = await current_user(request)
        if not await found.operators.include(user):
            raise ForbiddenError(NOT_OPERATOR)
        return await handler(request, found, user, *args, **kwargs)

    return as_operator


@bp.get("/status")
@documented("For operators: the event log's head and each view's lag behind it",
            {200: Answer(OperatorStatus), 403: None}, auth=True)
@operating
async def operator_status(request: Request, found: OperatorServices, user: CurrentUser
                          ) -> JSONResponse:
    head = await off_loop(found.log.head)
    return json({"operator": True, "position": head, "views": await views_lag(found.health, head)})


# One replay at a time in this worker (PostgreSQL also queues replays across processes and
# instances: `exclusive`); a second request waits for the first, then rebuilds again.
_replaying = asyncio.Lock()


@bp.post("/replay")
@documented("For operators: rebuild the views from the event store beside the live ones and "
            "swap them in (as `alphabet replay`); the service keeps answering meanwhile",
            {200: Answer(Replayed), 403: None, 422: None}, auth=True,
            query=[Query("view", {"type": "string"},
                         "one view's name (default: every view this service follows)")])
@operating
async def replay_views(request: Request, found: OperatorServices, user: CurrentUser
                       ) -> JSONResponse:
    names = [view.name for view in found.health.follower.views]
    wanted = request.args.get("view")
    if wanted is not None and wanted not in names:
        raise ApiError(422, "invalid_fields", f"no view named {wanted!r} (there is: "
                       f"{', '.join(names)})", {"view": f"must be one of {', '.join(names)}"})
    chosen = [view for view in found.health.follower.views if wanted in (None, view.name)]

    def rebuild() -> dict[str, int]:
        with found.db.exclusive("replay"):
            return {view.name: replay(found.db, found.log, view) for view in chosen}

    async with _replaying:
        rebuilt = await off_loop(rebuild)
    return json({"views": rebuilt})
