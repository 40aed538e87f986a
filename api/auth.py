"""Sign-up, sign-in (rate limited, no user enumeration), refresh-token rotation and sign-out."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass
from json import dumps as json_text
from typing import Protocol

from sanic import Blueprint, Request, empty, json
from sanic.response import HTTPResponse, JSONResponse

from api.context import (
    PASSWORD_CHANGED,
    client_address,
    now,
    off_loop,
    parse,
    served,
)
from api.docs import Answer, documented
from api.errors import ApiError, unauthorized
from api.present import user_json
from api.schemas import (
    RefreshBody,
    SigninBody,
    SignupBody,
    SignupOut,
    TokenPair,
    is_username,
)
from api.security import Claims, TokenError, Tokens, hash_password, verify_password
from domain.accounts import Accounts
from domain.presentation import utc
from projections.people import Account, PeopleReader
from projections.sessions import Sessions, Window

bp = Blueprint("auth", url_prefix="/api")


@dataclass(frozen=True)
class SigninPolicy:
    """How many failed sign-ins may come per window: for one account from one client address
    (`per_pair`), from one address whatever the account, and for one account from addresses
    it has never signed in from (see api.auth.retry_after)."""

    per_pair: int
    per_account: int
    per_address: int
    window_seconds: int
    trusted_proxies: frozenset[str]
    secret: str



@dataclass(frozen=True)
class AuthServices:
    """What sign-up, sign-in, refresh and sign-out use: accounts to register, sessions for
    refresh tokens and failed sign-ins, tokens to issue."""

    accounts: Accounts
    people_reader: PeopleReader
    sessions: Sessions
    tokens: Tokens
    signin: SigninPolicy


WRONG_CREDENTIALS = "the username or the password is wrong"
# How long an address an account signed in from stays exempt from the account's own ceiling.
KNOWN_SECONDS = 90 * 86400


@bp.post("/auth/signup")
@documented("Create an account and sign in", {201: Answer(SignupOut), 409: None},
            body=SignupBody)
@served(AuthServices)
async def signup(request: Request, services: AuthServices) -> JSONResponse:
    data = parse(request, SignupBody)
    await off_loop(services.accounts.check_free, data.username, data.email)
    password_hash = await hash_password(data.password)
    user_id = await off_loop(services.accounts.sign_up, data.username, data.email,
                             password_hash, utc(now()))
    account = await services.people_reader.by_id(user_id)
    assert account is not None
    tokens = await issue(services, account)
    return json({**tokens, "user": user_json(account, user_id)}, status=201)


@bp.post("/auth/signin")
@documented("Sign in with username and password",
            {200: Answer(TokenPair), 401: None, 429: Answer(headers=("Retry-After",))},
            body=SigninBody)
@served(AuthServices)
async def signin(request: Request, services: AuthServices) -> JSONResponse:
    data = parse(request, SigninBody)
    policy = services.signin
    keys = Counters.of(policy.secret, data.username,
                       client_address(request, policy.trusted_proxies))
    moment = time.time()
    windows = await off_loop(services.sessions.signin_counts, keys.all, moment)
    wait = retry_after(policy, keys, windows, moment)
    if wait:
        raise ApiError(429, "rate_limited",
                       f"too many failed sign-ins; try again in {wait} seconds",
                       headers={"Retry-After": str(wait)})
    account = (await services.people_reader.by_username(data.username)
               if is_username(data.username) else None)
    ok = await verify_password(account.password_hash if account else None, data.password)
    if not ok or account is None:
        await off_loop(services.sessions.record_failure, [keys.pair, keys.address, keys.account],
                       policy.window_seconds, moment)
        raise unauthorized(WRONG_CREDENTIALS)
    await off_loop(services.sessions.clear_failures, keys.pair)
    await off_loop(services.sessions.remember, keys.known, moment + KNOWN_SECONDS)
    return json(await issue(services, account))


@bp.post("/auth/refresh")
@bp.post("/token/refresh", name="token_refresh")
@documented("Exchange a refresh token for a new pair (the old one is spent); "
            "/api/token/refresh is the same", {200: Answer(TokenPair), 401: None},
            body=RefreshBody)
@served(AuthServices)
async def refresh(request: Request, services: AuthServices) -> JSONResponse:
    data = parse(request, RefreshBody)
    claims = _refresh_claims(services, data.refresh)
    rotation = await off_loop(services.sessions.rotate, claims.jti, time.time())
    if rotation.reused:
        raise unauthorized("this refresh token was already used; every session it belongs to "
                           "has been signed out, sign in again")
    if not rotation.ok or rotation.user_id is None:
        raise unauthorized("this refresh token is no longer valid; sign in again")
    account = await services.people_reader.by_id(rotation.user_id)
    if account is None:
        raise unauthorized("this account no longer exists")
    if claims.stamp != services.tokens.stamp(account.password_hash):
        raise unauthorized(PASSWORD_CHANGED)
    return json(await issue(services, account, rotation.family))


@bp.post("/auth/signout")
@documented("Revoke a refresh token", {204: None, 401: None}, body=RefreshBody)
@served(AuthServices)
async def signout(request: Request, services: AuthServices) -> HTTPResponse:
    data = parse(request, RefreshBody)
    claims = _refresh_claims(services, data.refresh)
    await off_loop(services.sessions.revoke, claims.jti)
    return empty()


def _refresh_claims(services: AuthServices, token: str) -> Claims:
    try:
        return services.tokens.check(token, "refresh")
    except TokenError as exc:
        raise unauthorized(str(exc)) from None


class Issuing(Protocol):
    """What issuing a token pair needs (sign-in, refresh, and a password change in api.users)."""

    @property
    def tokens(self) -> Tokens: ...

    @property
    def sessions(self) -> Sessions: ...


async def issue(services: Issuing, account: Account, family: str | None = None
                ) -> dict[str, str]:
    """A new token pair for the account, under its current credential stamp."""
    stamp = services.tokens.stamp(account.password_hash)
    refresh_token, claims = services.tokens.refresh(account.id, stamp, family)
    await off_loop(services.sessions.add_refresh, claims.jti, claims.family or "", account.id,
                   claims.expires_at)
    return {"access": services.tokens.access(account.id, stamp), "refresh": refresh_token}


@dataclass(frozen=True)
class Counters:
    """The sign-in counters one attempt touches, by key: keyed hashes, never a raw username
    or address."""

    pair: str  # failures for this account from this address
    address: str  # failures from this address, whatever the account
    account: str  # failures for this account, from any address
    known: str  # there while this account has signed in from this address lately

    @classmethod
    def of(cls, secret: str, username: str, address: str) -> Counters:
        name = username.casefold()
        pair = _digest(secret, json_text([name, address]))
        return cls("pair:" + pair, "address:" + _digest(secret, address),
                   "account:" + _digest(secret, name), "known:" + pair)

    @property
    def all(self) -> list[str]:
        return [self.pair, self.address, self.account, self.known]


def retry_after(policy: SigninPolicy, keys: Counters, windows: dict[str, Window],
                now: float) -> int:
    """Seconds until this attempt may be made (0: now). Failures lock out the address that
    made them — from that account (`per_pair`), or from every account (`per_address`) — and
    never the owner elsewhere: a stranger's five wrong passwords cost the stranger, not the
    owner. Against many addresses guessing one account, the account has a much higher
    ceiling of its own (`per_account`), which holds only for addresses it has not signed in
    from lately, so an owner is not locked out even then from where they usually sign in."""
    limits = [(keys.pair, policy.per_pair), (keys.address, policy.per_address)]
    if keys.known not in windows:
        limits.append((keys.account, policy.per_account))
    return max((math.ceil(windows[key].ends - now) for key, limit in limits
                if key in windows and windows[key].count >= limit), default=0)


def _digest(secret: str, value: str) -> str:
    """Counter keys hold keyed hashes, never a raw username or address."""
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]
