"""WebSocket subscriptions: one event's changes, or the feed of every change. Authenticated by
token, resumable with ?after=<position>, closed with 4401 when the token expires."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from sanic import Blueprint, Request
from sanic.response import JSONResponse
from sanic.server.websockets.impl import WebsocketImplProtocol

from api.context import PASSWORD_CHANGED, off_loop, provided, whole_number
from api.errors import envelope
from api.metrics import SOCKETS
from api.security import Claims, TokenError, Tokens
from consumers.hub import Hub, Subscriber
from consumers.messages import LoadEvent
from consumers.notify import replay
from domain.application import EventsApplication
from domain.errors import GoneError, NotFoundError
from projections.follower import Log
from projections.people import People, PeopleReader

bp = Blueprint("websockets")


@dataclass(frozen=True)
class SocketServices:
    """What subscriptions use: tokens and accounts to admit a socket (and to close it once
    the account is gone), the hub that fans messages out, and the log and store to replay
    what a resuming client missed."""

    tokens: Tokens
    people_reader: PeopleReader
    app: EventsApplication
    hub: Hub
    log: Log
    load_event: LoadEvent
    # names for replayed messages, from a thread
    people: People


AUTH_SECONDS = 5
CLOSE_AUTH = 4401
CLOSE_UNKNOWN = 4404
CLOSE_BAD_REQUEST = 4400
CLOSE_TOO_SLOW = 1013
ACCOUNT_GONE = "this account no longer exists"
# Encoded messages kept for sockets still catching up (about a hub queue's worth).
ENCODED_KEPT = 2000


@bp.on_request
async def check_origin(request: Request) -> JSONResponse | None:
    """A browser page may open a WebSocket to any site (no CORS applies to it), so with
    ALPHABET_CORS_ORIGINS set, a handshake from a page of another origin is refused. A
    client that sends no Origin is not a browser page and is let through."""
    origin = request.headers.get("origin")
    if origin is None or origin_allowed(origin, request.app.config.CORS_ORIGINS,
                                        request.headers.get("host", "")):
        return None
    return envelope(403, "forbidden", f"WebSocket connections from {origin} are not allowed "
                    "(ALPHABET_CORS_ORIGINS)")


def origin_allowed(origin: str, allowed: str, host: str) -> bool:
    """Unset or * allows any origin; else one of the comma-separated origins, or the server's
    own (a page it served itself)."""
    origins = {entry.strip().rstrip("/") for entry in allowed.split(",") if entry.strip()}
    return not origins or "*" in origins or origin.rstrip("/") in origins \
        or urlsplit(origin).netloc == host


# sanic's websocket decorator is untyped
@bp.websocket("/ws/events")  # type: ignore[untyped-decorator]
async def feed(request: Request, ws: WebsocketImplProtocol) -> None:
    with SOCKETS.track_inprogress():
        await subscribe(request, ws, None)


@bp.websocket("/ws/events/<event_id:str>")  # type: ignore[untyped-decorator]
async def one_event(request: Request, ws: WebsocketImplProtocol, event_id: str) -> None:
    with SOCKETS.track_inprogress():
        await subscribe(request, ws, event_id)


async def subscribe(request: Request, ws: WebsocketImplProtocol, event_id: str | None) -> None:
    services = provided(request, SocketServices)
    claims = await authenticate(request, ws, services)
    if claims is None:
        return
    if event_id is not None and not await known_event(services, event_id):
        await ws.close(CLOSE_UNKNOWN, f"no event with id {event_id}")
        return
    given = request.args.get("after")
    after = None if given is None else whole_number(given)
    if given is not None and after is None:
        await ws.close(CLOSE_BAD_REQUEST, "after must be a log position (a whole number)")
        return
    hub = services.hub
    subscriber = hub.subscribe(event_id, claims.user_id)
    try:
        # Subscribed first, then checked: an account closed or a password changed from here
        # on is noticed by the hub, and one before is seen by this check.
        if (reason := await signed_out(services, claims)) is not None:
            await ws.close(CLOSE_AUTH, reason)
            return
        # Live from the log's head, not from wherever this worker's tail has got: the
        # subscriber is registered first, so every message after the head reaches it; what
        # the tail has yet to hand out up to the head is history (?after= replays it), and a
        # write answered before the socket opened is never announced on it as new.
        live_from = max(hub.position, await off_loop(services.log.head))
        await ws.send(json.dumps({"type": "ready", "position": live_from}))
        if after is not None and after < live_from:
            missed = await off_loop(replay, services.log, services.load_event,
                                    services.people.names, event_id, after, live_from)
            for message in missed:
                await ws.send(encoded(message))
        await pump(ws, subscriber, live_from, lambda: signed_out(services, claims),
                   claims.expires_at)
    finally:
        hub.unsubscribe(subscriber)


async def pump(ws: WebsocketImplProtocol, subscriber: Subscriber, last: int,
               check: Callable[[], Awaitable[str | None]], expires_at: float) -> None:
    """Send live messages (each once, in order) until the client leaves, falls too far behind,
    its token expires, or its account is signed out (deleted, or its password changed: the
    hub hears of it from the log, in every worker, and `check` says whether it concerns this
    socket's token)."""

    async def send_live() -> None:
        nonlocal last
        while True:
            message = await subscriber.queue.get()
            if message["position"] > last:
                await ws.send(encoded(message))
                last = message["position"]

    async def until_closed() -> None:
        while True:
            await ws.recv()

    async def until_signed_out() -> str:
        while True:
            await subscriber.noticed.wait()
            subscriber.noticed.clear()
            notices, subscriber.notices = subscriber.notices, []
            if "account.deleted" in notices:
                return ACCOUNT_GONE
            if (reason := await check()) is not None:
                return reason

    # The timer itself says the token expired: a loop's sleep may end a hair before the clock.
    expiry = asyncio.create_task(asyncio.sleep(max(expires_at - time.time(), 0)))
    tasks = {
        asyncio.create_task(send_live()),
        asyncio.create_task(until_closed()),
        asyncio.create_task(subscriber.dropped.wait()),
        expiry,
        signing_out := asyncio.create_task(until_signed_out()),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    if signing_out.done() and not signing_out.cancelled():
        await ws.close(CLOSE_AUTH, signing_out.result())
    elif subscriber.dropped.is_set():
        await ws.close(CLOSE_TOO_SLOW, "too far behind; reconnect with ?after=<position>")
    elif expiry.done() and not expiry.cancelled():
        await ws.close(CLOSE_AUTH, "the token has expired; reconnect with a fresh one and ?after")


def encoded(message: dict[str, Any]) -> str:
    """A message's JSON, made once however many sockets receive it (a position names exactly
    one message, so it is the key)."""
    position = message["position"]
    text = _encoded.get(position)
    if text is None:
        text = _encoded[position] = json.dumps(message)
        while len(_encoded) > ENCODED_KEPT:
            _encoded.popitem(last=False)
    return text


_encoded: OrderedDict[int, str] = OrderedDict()


async def authenticate(request: Request, ws: WebsocketImplProtocol,
                       services: SocketServices) -> Claims | None:
    """?token=<access token>, or a first message {"token": ...} within 5 seconds."""
    token = request.args.get("token")
    if token is None:
        first = await ws.recv(timeout=AUTH_SECONDS)
        token = token_from(first)
    reason = "send ?token=<access token> or {\"token\": ...} first"
    if token:
        try:
            claims = services.tokens.check(token, "access")
            refused = await signed_out(services, claims)
            if refused is None:
                return claims
            reason = refused
        except TokenError as exc:
            reason = str(exc)
    await ws.close(CLOSE_AUTH, reason)
    return None


async def signed_out(services: SocketServices, claims: Claims) -> str | None:
    """Why a socket's token no longer signs it in (None while it does): the account is gone,
    or its password changed after the token was issued. Deletion is read from the event
    store, where it is recorded before the account's personal data is erased."""
    account = await services.people_reader.by_id(claims.user_id)
    if account is None or await off_loop(services.app.user_deleted, UUID(claims.user_id)):
        return ACCOUNT_GONE
    if claims.stamp != services.tokens.stamp(account.password_hash):
        return PASSWORD_CHANGED
    return None


def token_from(first: Any) -> str | None:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        token = json.loads(first).get("token")
        return token if isinstance(token, str) else None
    return None


async def known_event(services: SocketServices, event_id: str) -> bool:
    """An event that exists or existed (a deleted one still has a history to replay)."""
    try:
        await off_loop(services.app.history, UUID(event_id))
    except (ValueError, NotFoundError, GoneError):
        return False
    return True
