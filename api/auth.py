"""Sign-up, sign-in (rate limited, no user enumeration), refresh-token rotation and sign-out."""

from __future__ import annotations

import hashlib
import hmac
import time

from sanic import Blueprint, Request, empty, json
from sanic.response import HTTPResponse, JSONResponse

from api.context import Services, client_address, now, off_loop, parse, served
from api.docs import Answer, documented
from api.errors import ApiError, unauthorized
from api.present import user_json
from api.schemas import RefreshBody, SigninBody, SignupBody, SignupOut, TokenPair
from api.security import Claims, TokenError, hash_password, verify_password
from domain.errors import ConflictError
from domain.presentation import utc

bp = Blueprint("auth", url_prefix="/api")

WRONG_CREDENTIALS = "the username or the password is wrong"


@bp.post("/auth/signup")
@documented("Create an account and sign in", {201: Answer(SignupOut), 409: None},
            body=SignupBody)
@served
async def signup(request: Request, services: Services) -> JSONResponse:
    data = parse(request, SignupBody)
    await off_loop(services.people.check_free, data.username, data.email)
    password_hash = await hash_password(data.password)
    user_uuid = (await off_loop(services.app.register_user)).aggregate.id
    user_id = str(user_uuid)
    try:
        await off_loop(services.people.add_user, user_id, data.username, data.email,
                       password_hash, utc(now()))
    except ConflictError:
        # Lost a race for the name after the Registered fact: close that account at once.
        await off_loop(services.app.delete_user, user_uuid, [])
        raise
    account = await services.people_reader.by_id(user_id)
    assert account is not None
    tokens = await _issue(services, user_id)
    return json({**tokens, "user": user_json(account, user_id)}, status=201)


@bp.post("/auth/signin")
@documented("Sign in with username and password",
            {200: Answer(TokenPair), 401: None, 429: Answer(headers=("Retry-After",))},
            body=SigninBody)
@served
async def signin(request: Request, services: Services) -> JSONResponse:
    data = parse(request, SigninBody)
    policy = services.signin
    account_key = "account:" + _digest(policy.secret, data.username.casefold())
    address = client_address(request, policy.trusted_proxies)
    address_key = "address:" + _digest(policy.secret, address)
    moment = time.time()
    wait = await off_loop(lambda: max(
        services.sessions.failures_retry_after(account_key, policy.per_account, moment),
        services.sessions.failures_retry_after(address_key, policy.per_address, moment),
    ))
    if wait:
        raise ApiError(429, "rate_limited",
                       f"too many failed sign-ins; try again in {wait} seconds",
                       headers={"Retry-After": str(wait)})
    account = await services.people_reader.by_username(data.username)
    ok = await verify_password(account.password_hash if account else None, data.password)
    if not ok or account is None:
        await off_loop(services.sessions.record_failure, [account_key, address_key],
                       policy.window_seconds, moment)
        raise unauthorized(WRONG_CREDENTIALS)
    await off_loop(services.sessions.clear_failures, account_key)
    return json(await _issue(services, account.id))


@bp.post("/auth/refresh")
@bp.post("/token/refresh", name="token_refresh")
@documented("Exchange a refresh token for a new pair (the old one is spent); "
            "/api/token/refresh is the same", {200: Answer(TokenPair), 401: None},
            body=RefreshBody)
@served
async def refresh(request: Request, services: Services) -> JSONResponse:
    data = parse(request, RefreshBody)
    claims = _refresh_claims(services, data.refresh)
    rotation = await off_loop(services.sessions.rotate, claims.jti, time.time())
    if rotation.reused:
        raise unauthorized("this refresh token was already used; every session it belongs to "
                           "has been signed out, sign in again")
    if not rotation.ok or rotation.user_id is None:
        raise unauthorized("this refresh token is no longer valid; sign in again")
    return json(await _issue(services, rotation.user_id, rotation.family))


@bp.post("/auth/signout")
@documented("Revoke a refresh token", {204: None, 401: None}, body=RefreshBody)
@served
async def signout(request: Request, services: Services) -> HTTPResponse:
    data = parse(request, RefreshBody)
    claims = _refresh_claims(services, data.refresh)
    await off_loop(services.sessions.revoke, claims.jti)
    return empty()


def _refresh_claims(services: Services, token: str) -> Claims:
    try:
        return services.tokens.check(token, "refresh")
    except TokenError as exc:
        raise unauthorized(str(exc)) from None


async def _issue(services: Services, user_id: str, family: str | None = None) -> dict[str, str]:
    refresh_token, claims = services.tokens.refresh(user_id, family)
    await off_loop(services.sessions.add_refresh, claims.jti, claims.family or "", user_id,
                   claims.expires_at)
    return {"access": services.tokens.access(user_id), "refresh": refresh_token}


def _digest(secret: str, value: str) -> str:
    """Counter keys hold keyed hashes, never a raw username or address."""
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]
