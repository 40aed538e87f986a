"""Passwords (argon2id) and tokens (HS256 JWTs): the cryptography, kept apart from the routes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ALGORITHM = "HS256"
# `pwd`: the credential stamp (see Tokens.stamp), so a new password ends every earlier token.
REQUIRED_CLAIMS = ["exp", "iat", "jti", "sub", "type", "pwd"]
# A JWT in compact form: three base64url parts. Anything else (other characters, bytes that are
# not UTF-8, a megabyte of text) is refused before the JWT library sees it.
COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
MAX_TOKEN = 4096
# Verified tokens remembered per worker (a few MB at most); the memo is simply emptied when full.
VERIFIED_KEPT = 20_000

# OWASP's minimum for argon2id: 19 MiB, two passes, one lane.
PASSWORDS = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when a username is unknown, so a miss costs what a wrong password costs
# and timing does not tell which usernames exist.
DUMMY_HASH = PASSWORDS.hash("not a real password")


# argon2 is slow on purpose (~40 ms, 19 MiB a hash): it gets threads of its own, as many as
# there are cores, so a burst of sign-ins queues here instead of taking every thread the
# event store and the database need.
HASHING = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="argon2")


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(HASHING, PASSWORDS.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        HASHING, _verify, password_hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return PASSWORDS.verify(password_hash or DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


class TokenError(Exception):
    """A token that must not be honoured; the message says why, for the client."""


@dataclass(frozen=True)
class Claims:
    user_id: str
    jti: str
    family: str | None
    expires_at: float
    stamp: str


class Tokens:
    """Issues and checks access and refresh tokens. Only HS256 is accepted (never `none` or
    another algorithm), and an access token never passes as a refresh token or the reverse."""

    def __init__(self, secret: str, access_seconds: int, refresh_seconds: int) -> None:
        self.secret = secret
        self.access_seconds = access_seconds
        self.refresh_seconds = refresh_seconds
        self._verified: dict[str, tuple[Claims, str]] = {}
        self._stamps: dict[str, str] = {}

    def stamp(self, password_hash: str) -> str:
        """The credential stamp of an account: a keyed digest of its password hash. Every
        token carries the stamp it was issued under, and a token whose stamp is not the
        account's now (its password has changed since) is refused. Keyed, so a token, which
        anyone holding it can read, tells nothing of the hash. Remembered per hash: every
        request checks one, and the HMAC (~5 µs) would be a few percent of a small GET."""
        stamp = self._stamps.get(password_hash)
        if stamp is None:
            if len(self._stamps) >= VERIFIED_KEPT:
                self._stamps.clear()
            digest = hmac.new(self.secret.encode(), password_hash.encode(), hashlib.sha256)
            stamp = self._stamps[password_hash] = digest.hexdigest()[:22]
        return stamp

    def access(self, user_id: str, stamp: str) -> str:
        return self._encode(user_id, stamp, "access", self.access_seconds, {})[0]

    def refresh(self, user_id: str, stamp: str, family: str | None = None
                ) -> tuple[str, Claims]:
        family = family or str(uuid.uuid4())
        return self._encode(user_id, stamp, "refresh", self.refresh_seconds, {"fam": family})

    def check(self, token: str, kind: str) -> Claims:
        verified = self._verified.get(token)
        if verified is None:
            verified = self._verify(token)
            if len(self._verified) >= VERIFIED_KEPT:
                self._verified.clear()
            self._verified[token] = verified
        claims, token_kind = verified
        if claims.expires_at <= time.time():
            raise TokenError("the token has expired")
        if token_kind != kind:
            raise TokenError(f"this is not an {kind} token" if kind == "access"
                             else f"this is not a {kind} token")
        return claims

    def _verify(self, token: str) -> tuple[Claims, str]:
        """The signature check, done once per token: a token's text fixes its claims, so a
        verified token is remembered (its expiry is still checked on every use)."""
        if len(token) > MAX_TOKEN or not COMPACT.fullmatch(token):
            raise TokenError("the token is not valid")
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=[ALGORITHM], options={"require": REQUIRED_CLAIMS}
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired") from None
        except jwt.InvalidTokenError:
            raise TokenError("the token is not valid") from None
        return (Claims(str(claims["sub"]), str(claims["jti"]), claims.get("fam"), claims["exp"],
                       str(claims["pwd"])), str(claims["type"]))

    def _encode(
        self, user_id: str, stamp: str, kind: str, lifetime: int, extra: dict[str, Any]
    ) -> tuple[str, Claims]:
        now = int(time.time())
        jti = str(uuid.uuid4())
        payload = {"sub": user_id, "type": kind, "jti": jti, "iat": now, "exp": now + lifetime,
                   "pwd": stamp}
        token = jwt.encode({**payload, **extra}, self.secret, algorithm=ALGORITHM)
        return token, Claims(user_id, jti, extra.get("fam"), now + lifetime, stamp)
