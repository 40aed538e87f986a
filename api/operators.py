"""Operators: accounts that may delete any event and any account, see the views' lag and
replay them. An account is an operator when ALPHABET_OPERATORS names it, or when a grant
(`alphabet operator grant USER`, a `User.OperatorGranted` fact) stands on it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Concatenate, ParamSpec, TypeVar
from uuid import UUID

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from api.context import CurrentUser, Services, current_user, off_loop, services
from api.docs import Answer, Query, documented
from api.errors import ApiError
from api.health import views_lag
from api.schemas import OperatorStatus, Replayed
from domain.errors import ForbiddenError
from projections.replay import replay

bp = Blueprint("operators", url_prefix="/api/operator")

P = ParamSpec("P")
R = TypeVar("R")

NOT_OPERATOR = "only an operator may do this (see ALPHABET_OPERATORS and `alphabet operator`)"


async def is_operator(found: Services, user: CurrentUser) -> bool:
    """The setting first (no I/O); then the account's own facts, through the aggregate cache,
    so a grant or revocation made by the command line counts from the next request on."""
    if user.username.casefold() in found.operators:
        return True
    return await off_loop(found.app.is_operator, UUID(user.id))


def operating(
    handler: Callable[Concatenate[Request, Services, CurrentUser, P], Awaitable[R]],
) -> Callable[Concatenate[Request, P], Awaitable[R]]:
    """As `signed_in`, answering 403 to an account that is not an operator."""

    @wraps(handler)
    async def as_operator(request: Request, /, *args: P.args, **kwargs: P.kwargs) -> R:
        found = services(request)
        user = await current_user(request)
        if not await is_operator(found, user):
            raise ForbiddenError(NOT_OPERATOR)
        return await handler(request, found, user, *args, **kwargs)

    return as_operator


@bp.get("/status")
@documented("For operators: the event log's head and each view's lag behind it",
            {200: Answer(OperatorStatus), 403: None}, auth=True)
@operating
async def operator_status(request: Request, found: Services, user: CurrentUser
                          ) -> JSONResponse:
    head = await off_loop(found.log.head)
    return json({"operator": True, "position": head, "views": await views_lag(found, head)})


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
async def replay_views(request: Request, found: Services, user: CurrentUser) -> JSONResponse:
    names = [view.name for view in found.follower.views]
    wanted = request.args.get("view")
    if wanted is not None and wanted not in names:
        raise ApiError(422, "invalid_fields", f"no view named {wanted!r} (there is: "
                       f"{', '.join(names)})", {"view": f"must be one of {', '.join(names)}"})
    chosen = [view for view in found.follower.views if wanted in (None, view.name)]

    def rebuild() -> dict[str, int]:
        with found.db.exclusive("replay"):
            return {view.name: replay(found.db, found.log, view) for view in chosen}

    async with _replaying:
        rebuilt = await off_loop(rebuild)
    return json({"views": rebuilt})
