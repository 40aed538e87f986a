"""What handlers are given: their blueprint's services (each blueprint declares a small type of
what its handlers use; alphabet.wiring, the composition root, builds one of each per worker
and attaches them to the app by type), the signed-in user (built per request from the JWT),
and small request helpers."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar

from pydantic import BaseModel, ValidationError
from sanic import Request

from api.errors import ApiError, invalid_body, unauthorized
from api.security import TokenError, Tokens
from domain.writing import Written
from projections.people import PeopleReader

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")
P = ParamSpec("P")


@dataclass(frozen=True)
class Gate:
    """What every signed-in request is checked against: the token's signature and the
    account it names (every blueprint's handlers pass through it, whatever else they use)."""

    tokens: Tokens
    # lookups from the event loop (accounts, names)
    people_reader: PeopleReader


class Commands:
    """Runs a write off the loop, then rings this worker's notifier so its sockets hear at
    once. The composition root sets `wake` when it starts the notifier, after the blueprints'
    services are built."""

    def __init__(self) -> None:
        self.wake: Callable[[], None] = lambda: None

    async def __call__(self, func: Callable[..., Written], *args: Any, **kwargs: Any) -> Written:
        written = await off_loop(func, *args, **kwargs)
        if written.position is not None:
            self.wake()
        return written


@dataclass(frozen=True)
class CurrentUser:
    id: str
    username: str
    # The people reader's names count when this request signed in: whatever the request
    # shows of names is at least as fresh as that.
    names_count: int


PASSWORD_CHANGED = "the password has changed since this token was issued; sign in again"


def provided(request: Request, needs: type[S]) -> S:
    """The services of type `needs` the composition root built for this worker (each
    blueprint declares its own type: what its handlers use and nothing more)."""
    found: S = request.app.ctx.services[needs]
    return found


def served(needs: type[S]) -> Callable[[Callable[Concatenate[Request, S, P], Awaitable[R]]],
                                        Callable[Concatenate[Request, P], Awaitable[R]]]:
    """Hands a handler its blueprint's services. Plain calls rather than sanic-ext's
    injection, whose signal dispatch cost about a tenth of a small request (py-spy, bench/)."""

    def serve(handler: Callable[Concatenate[Request, S, P], Awaitable[R]],
              ) -> Callable[Concatenate[Request, P], Awaitable[R]]:
        @wraps(handler)
        async def with_services(request: Request, /, *args: P.args, **kwargs: P.kwargs) -> R:
            return await handler(request, request.app.ctx.services[needs], *args, **kwargs)

        return with_services

    return serve


def signed_in(needs: type[S]) -> Callable[
        [Callable[Concatenate[Request, S, CurrentUser, P], Awaitable[R]]],
        Callable[Concatenate[Request, P], Awaitable[R]]]:
    """Hands a handler its blueprint's services and the signed-in user, or answers 401."""

    def serve(handler: Callable[Concatenate[Request, S, CurrentUser, P], Awaitable[R]],
              ) -> Callable[Concatenate[Request, P], Awaitable[R]]:
        @wraps(handler)
        async def with_user(request: Request, /, *args: P.args, **kwargs: P.kwargs) -> R:
            return await handler(request, request.app.ctx.services[needs],
                                 await current_user(request), *args, **kwargs)

        return with_user

    return serve


@dataclass(frozen=True)
class Visitor:
    """A request whose access token is valid, its account not yet looked up."""

    user_id: str
    stamp: str  # the token's credential stamp: a password change since voids it
    gate: Gate

    async def signed_in(self, names_count: int | None = None) -> CurrentUser:
        """The signed-in user, or 401 once the account is erased or its password changed.
        `names_count` is the people reader's count as the handler's own statement read it
        beside its rows: then the account comes from the reader's cache, with no statement
        of its own."""
        account, count = await self.gate.people_reader.signed_in(self.user_id, names_count)
        if account is None:
            raise unauthorized("this account no longer exists")
        if self.stamp != self.gate.tokens.stamp(account.password_hash):
            raise unauthorized(PASSWORD_CHANGED)
        return CurrentUser(account.id, account.username, count)


def visited(needs: type[S]) -> Callable[
        [Callable[Concatenate[Request, S, Visitor, P], Awaitable[R]]],
        Callable[Concatenate[Request, P], Awaitable[R]]]:
    """As `signed_in`, for handlers whose one statement reads the names count beside their
    rows (GET one event, lists): they confirm the account with it (`Visitor.signed_in`), one
    round trip to PostgreSQL fewer on each such request. An erased account is still told so
    before anything else: a handler that fails first confirms the account before its own
    error goes out."""

    def serve(handler: Callable[Concatenate[Request, S, Visitor, P], Awaitable[R]],
              ) -> Callable[Concatenate[Request, P], Awaitable[R]]:
        @wraps(handler)
        async def with_visitor(request: Request, /, *args: P.args, **kwargs: P.kwargs) -> R:
            visitor = visiting(request)
            try:
                return await handler(request, request.app.ctx.services[needs], visitor,
                                     *args, **kwargs)
            except Exception:
                await visitor.signed_in()
                raise

        return with_visitor

    return serve


def visiting(request: Request) -> Visitor:
    """The token's user, or 401 for a missing or bad token."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("sign in first: send the header Authorization: Bearer <access token>")
    gate: Gate = request.app.ctx.services[Gate]
    try:
        claims = gate.tokens.check(token.strip(), "access")
    except TokenError as exc:
        raise unauthorized(str(exc)) from None
    return Visitor(claims.user_id, claims.stamp, gate)


async def current_user(request: Request) -> CurrentUser:
    """Checked on every request, so a deleted account's tokens stop working at once."""
    return await visiting(request).signed_in()


def parse(request: Request, model: type[M]) -> M:
    try:
        return model.model_validate_json(request.body or b"")
    except ValidationError as exc:
        raise invalid_body(exc) from None


def client_address(request: Request, trusted: frozenset[str]) -> str:
    """The socket's peer, unless that peer is a trusted proxy: then the nearest address in
    X-Forwarded-For that is not itself a trusted proxy."""
    peer = request.conn_info.client_ip if request.conn_info else request.ip
    if peer not in trusted:
        return peer
    for hop in reversed(request.headers.get("x-forwarded-for", "").split(",")):
        hop = hop.strip()
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            continue
        if hop not in trusted:
            return hop
    return peer


def now() -> datetime:
    return datetime.now(UTC)


async def off_loop(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """eventsourcing, argon2 and SQLite writes block; run them where they cannot stall every
    connection of the worker."""
    return await asyncio.to_thread(func, *args, **kwargs)


# The largest log position or version either database can hold (a signed 64-bit integer).
LARGEST = 2**63 - 1


def whole_number(text: str, minimum: int = 0, maximum: int = LARGEST) -> int | None:
    """`text` as a whole number in [minimum, maximum], or None. Only ASCII digits count:
    int() would also take "١٢" (Arabic-Indic digits), "1_000", signs and spaces."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None


def if_match(request: Request) -> int | None:
    """The version a client pinned with If-Match ("3", 3, W/"3"); None for absent or *."""
    raw = request.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    version = whole_number(raw.strip().removeprefix("W/").strip('"'), minimum=1)
    if version is None:
        raise ApiError(400, "bad_request", 'If-Match must be a version such as "3" (the ETag)')
    return version
