"""Sessions and sign-in over real HTTP and WebSockets, on both backends: a new password ends
every earlier session; a deleted account's open sockets are closed at once, in every worker,
with or without Redis; and failed sign-ins from a stranger never lock the owner out."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import (
    REDIS_URL,
    Backend,
    Person,
    Server,
    assert_error,
    event_body,
    fresh,
    serving,
    sign_up,
)
from tests.e2e.test_websockets import all_workers_ready, worker_of_each

# The longest wait for a condition on a busy machine; a test passes as soon as it holds.
CEILING = 60.0
NEW_PASSWORD = "a brand new secret"


# ---------------------------------------------------------------------------------------------
# helpers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signin(http: httpx.Client, person: Person, password: str | None = None,
           address: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    return http.post("/api/auth/signin/", json={"username": person.username,
                                                "password": password or person.password},
                     headers=headers)


def refresh(http: httpx.Client, token: str) -> httpx.Response:
    return http.post("/api/auth/refresh/", json={"refresh": token})


async def open_sockets(server: Server, token: str, count: int, spread: bool = False
                       ) -> list[ClientConnection]:
    """`count` feed sockets, each past its "ready" message; with `spread`, more until both
    workers hold some."""
    sockets: list[ClientConnection] = []
    while len(sockets) < count or (
            spread and len({*worker_of_each(server, sockets)} - {None}) < 2
            and len(sockets) < 48):
        async with asyncio.timeout(CEILING):
            ws = await connect(f"ws://127.0.0.1:{server.port}/ws/events/?token={token}")
            ready = json.loads(await ws.recv())
        assert ready["type"] == "ready", ready
        sockets.append(ws)
    return sockets


async def close_code_after(ws: ClientConnection, forbidden: set[str]) -> int | None:
    """Read until the server closes the socket; no message may be about an event in
    `forbidden` (one that changed after the socket had to be closed)."""
    try:
        async with asyncio.timeout(CEILING):
            while True:
                message = json.loads(await ws.recv())
                assert message.get("event_id") not in forbidden, message
    except ConnectionClosed:
        pass
    return ws.close_code


async def deleting_closes_every_socket(server: Server, spread: bool) -> None:
    """The account's sockets all close with 4401 when it is deleted, and none hears of a
    change made after the deletion answered."""
    if spread:
        await all_workers_ready(server)
    with httpx.Client(base_url=server.url, timeout=CEILING) as http:
        leaving, staying = sign_up(http, "leaving"), sign_up(http, "staying")
        sockets = await open_sockets(server, leaving.access, 4, spread)
        if spread:
            assert len({*worker_of_each(server, sockets)}) == 2, "both workers hold sockets"
        try:
            deleted = await asyncio.to_thread(http.delete, f"/api/user/{leaving.id}",
                                              headers=leaving.headers)
            assert deleted.status_code == 200, deleted.text
            later = await asyncio.to_thread(http.post, "/api/events/", json=event_body(),
                                            headers=staying.headers)
            assert later.status_code == 201, later.text
            forbidden = {later.json()["event"]["id"]}
            codes = await asyncio.gather(*(close_code_after(ws, forbidden) for ws in sockets))
        finally:
            for ws in sockets:
                await asyncio.wait_for(ws.close(), CEILING)
    assert codes == [4401] * len(sockets)


# ---------------------------------------------------------------------------------------------
# a new password ends every earlier session


def test_a_new_password_ends_every_other_session_and_gives_the_changer_a_fresh_pair(
        http: httpx.Client) -> None:
    person = sign_up(http, "careful")
    other_device = signin(http, person).json()
    changed = http.put(f"/api/user/{person.id}", json={"password": NEW_PASSWORD,
                                                       "current_password": person.password},
                       headers=person.headers)
    assert changed.status_code == 200, changed.text
    fresh_pair = changed.json()
    assert {"user", "access", "refresh"} <= set(fresh_pair), fresh_pair

    for old in (person.refresh, other_device["refresh"]):
        assert_error(refresh(http, old), 401)
    for old in (person.access, other_device["access"]):
        error = assert_error(http.get("/api/user/me", headers=bearer(old)), 401)
        assert "password" in error["message"], error

    assert http.get("/api/user/me", headers=bearer(fresh_pair["access"])).status_code == 200
    rotated = refresh(http, fresh_pair["refresh"])
    assert rotated.status_code == 200, rotated.text
    assert http.get("/api/user/me", headers=bearer(rotated.json()["access"])).status_code == 200
    assert signin(http, person, NEW_PASSWORD).status_code == 200
    assert_error(signin(http, person), 401)


def test_a_refresh_token_spent_before_a_password_change_gives_no_working_pair_after_it(
        http: httpx.Client) -> None:
    """A pair rotated from an old refresh token carries the old stamp: refused too."""
    person = sign_up(http, "racing")
    changed = http.put(f"/api/user/{person.id}", json={"password": NEW_PASSWORD,
                                                       "current_password": person.password},
                       headers=person.headers)
    assert changed.status_code == 200, changed.text
    assert_error(refresh(http, person.refresh), 401)


def test_a_change_without_a_new_password_keeps_every_session(http: httpx.Client) -> None:
    person = sign_up(http, "renamed")
    renamed = http.put(f"/api/user/{person.id}", json={"username": f"{person.username}_2"},
                       headers=person.headers)
    assert renamed.status_code == 200, renamed.text
    assert set(renamed.json()) == {"user"}
    assert http.get("/api/user/me", headers=person.headers).status_code == 200
    assert refresh(http, person.refresh).status_code == 200


async def test_sockets_opened_before_a_password_change_close_with_4401(
        server: Server, http: httpx.Client) -> None:
    person = sign_up(http, "sockets")
    sockets = await open_sockets(server, person.access, 2)
    try:
        changed = await asyncio.to_thread(
            http.put, f"/api/user/{person.id}", json={"password": NEW_PASSWORD,
                                                      "current_password": person.password},
            headers=person.headers)
        assert changed.status_code == 200, changed.text
        codes = await asyncio.gather(*(close_code_after(ws, set()) for ws in sockets))
        assert codes == [4401, 4401]
        # and a socket opened with the fresh token stays open and hears the next change
        [fresh_socket] = await open_sockets(server, changed.json()["access"], 1)
        try:
            made = await asyncio.to_thread(http.post, "/api/events/", json=event_body(),
                                           headers=bearer(changed.json()["access"]))
            async with asyncio.timeout(CEILING):
                heard = json.loads(await fresh_socket.recv())
            assert heard["event_id"] == made.json()["event"]["id"], heard
        finally:
            await fresh_socket.close()
    finally:
        for ws in sockets:
            await asyncio.wait_for(ws.close(), CEILING)


# ---------------------------------------------------------------------------------------------
# a deleted account's sockets close at once


async def test_a_deleted_accounts_sockets_close_with_4401_at_once(server: Server) -> None:
    await deleting_closes_every_socket(server, spread=False)


@pytest.mark.redis
async def test_with_two_workers_and_redis_a_deleted_accounts_sockets_all_close_with_4401(
        tmp_path: Path, backend: Backend, redis_namespace: str) -> None:
    with fresh(backend.kind) as own:
        shared = Server(tmp_path / "data", workers=2, backend=own, env={
            "ALPHABET_REDIS_URL": REDIS_URL, "ALPHABET_REDIS_NAMESPACE": redis_namespace})
        await asyncio.to_thread(shared.start)
        try:
            await deleting_closes_every_socket(shared, spread=True)
        finally:
            await asyncio.to_thread(shared.stop)


async def test_with_two_workers_without_redis_a_deleted_accounts_sockets_all_close_with_4401(
        tmp_path: Path, backend: Backend) -> None:
    with fresh(backend.kind) as own:
        local = Server(tmp_path / "data", workers=2, backend=own, env={"ALPHABET_REDIS_URL": ""})
        await asyncio.to_thread(local.start)
        try:
            await deleting_closes_every_socket(local, spread=True)
        finally:
            await asyncio.to_thread(local.stop)


# ---------------------------------------------------------------------------------------------
# failed sign-ins lock out the address that made them, not the owner


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[Server]:
    """A server behind a trusted proxy (loopback), so each test can sign in from any address
    through X-Forwarded-For; the account's own ceiling is low enough to reach."""
    env = {"ALPHABET_TRUSTED_PROXIES": "127.0.0.1", "ALPHABET_SIGNIN_FAILURES_PER_ACCOUNT": "6"}
    with serving(tmp_path_factory.mktemp("proxied") / "data", backend.kind, env=env) as running:
        yield running


@pytest.fixture(scope="module")
def via_proxy(proxied: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxied.url, timeout=CEILING) as client:
        yield client


def address() -> str:
    """A documentation address (RFC 5737) no other test uses."""
    return f"203.0.{uuid.uuid4().int % 200}.{uuid.uuid4().int % 250 + 1}"


def test_a_strangers_five_wrong_passwords_do_not_lock_the_owner_out(
        via_proxy: httpx.Client) -> None:
    owner = sign_up(via_proxy, "owner")
    stranger = address()
    for _ in range(5):
        assert_error(signin(via_proxy, owner, "a wrong guess", stranger), 401)
    locked = signin(via_proxy, owner, "another guess", stranger)
    assert_error(locked, 429)
    assert locked.headers["Retry-After"].isdigit()
    # The owner, from anywhere else, signs in as ever.
    assert signin(via_proxy, owner, address=address()).status_code == 200


def test_guesses_from_many_addresses_meet_the_accounts_ceiling_but_not_where_the_owner_signs_in(
        via_proxy: httpx.Client) -> None:
    owner = sign_up(via_proxy, "target")
    home = address()
    assert signin(via_proxy, owner, address=home).status_code == 200
    for _ in range(6):  # the account's ceiling, one guess from each of six addresses
        assert_error(signin(via_proxy, owner, "a wrong guess", address()), 401)
    assert_error(signin(via_proxy, owner, address=address()), 429)
    assert signin(via_proxy, owner, address=home).status_code == 200


def test_sign_in_counters_keep_no_raw_username_or_address(via_proxy: httpx.Client,
                                                          proxied: Server) -> None:
    owner = sign_up(via_proxy, "private")
    where = "203.0.113.177"
    assert_error(signin(via_proxy, owner, "a wrong guess", where), 401)
    assert signin(via_proxy, owner, address=where).status_code == 200
    keys = [row[0] for row in proxied.rows("SELECT key FROM signin_failures")]
    assert keys and not any(owner.username.casefold() in key or where in key for key in keys)
