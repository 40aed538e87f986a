"""Scale-out: two instances (each its own `alphabet serve` on its own port and data dir) share
one PostgreSQL database and one Redis. A write through either is read, listed and notified
through the other, and when the instance following the log dies, the other takes over."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import Person, Server, event_body, eventually, fresh, sign_up
from tests.e2e.test_websockets import (
    REDIS_URL,
    client,
    create,
    descendants,
    ready,
    receive,
    socket,
    update,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    namespace = f"test-{uuid.uuid4().hex}"
    env = {"ALPHABET_REDIS_URL": REDIS_URL, "ALPHABET_REDIS_NAMESPACE": namespace,
           # instances share a signing key (each data dir would otherwise get its own)
           "ALPHABET_SECRET_KEY": secrets.token_urlsafe(48)}
    with fresh("postgres") as database:
        first = Server(tmp_path_factory.mktemp("first") / "data", backend=database, env=env)
        second = Server(tmp_path_factory.mktemp("second") / "data", backend=database, env=env)
        try:
            yield first.start(), second.start()
        finally:
            first.stop()
            second.stop()
            connection = redis.Redis.from_url(REDIS_URL)
            keys = list(connection.scan_iter(f"{namespace}:*"))
            if keys:
                connection.delete(*keys)
            connection.close()


def lease_holders(server: Server) -> dict[int, int]:
    """Process id → how many leases (advisory locks) it holds in this database (pg_locks shows
    every database of the server), across the instances."""
    found = server.rows(
        "SELECT a.application_name, count(*) FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid "
        "JOIN pg_database d ON d.oid = l.database AND d.datname = current_database() "
        "WHERE l.locktype = 'advisory' AND l.granted GROUP BY a.application_name")
    return {int(name.rsplit(" ", 1)[1]): count for name, count in found}


def processes(server: Server) -> set[int]:
    assert server.process is not None
    return descendants(server.process.pid) | {server.process.pid}


def listed(http: httpx.Client, who: Person, **params: Any) -> tuple[list[str], int]:
    answer = http.get("/api/events/", params=params, headers=who.headers)
    assert answer.status_code == 200, answer.text
    return [e["id"] for e in answer.json()["events"]], int(answer.headers["X-Position"])


async def test_a_write_through_one_instance_is_read_listed_and_notified_through_the_other(
    pair: tuple[Server, Server],
) -> None:
    first, second = pair
    with httpx.Client(base_url=first.url, timeout=30) as one:
        owner = sign_up(one, "owner")
    with httpx.Client(base_url=second.url, timeout=30) as two:
        watcher = sign_up(two, "watcher")  # signed up on the other instance: both know them
    async with socket(second, "/ws/events/", token=watcher.access) as feed, \
            client(first) as writer:
        await ready(feed)
        event, written = await create(writer, owner, name="Shared", participants=[
            watcher.username])
        created = await receive(feed)
        assert (created["type"], created["event_id"], created["position"]) == (
            "event.created", event["id"], written)

        async with socket(second, f"/ws/events/{event['id']}/", token=watcher.access) as one_event:
            await ready(one_event)
            _, changed = await update(writer, owner, event["id"], name="Shared, moved")
            heard = await receive(one_event)
            assert (heard["type"], heard["position"], heard["event"]["name"]) == (
                "event.updated", changed, "Shared, moved")
            assert (await receive(feed))["position"] == changed

    with httpx.Client(base_url=second.url, timeout=30) as two:
        answer = two.get(f"/api/event/{event['id']}", headers=watcher.headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["event"]["name"] == "Shared, moved"
        assert answer.headers["ETag"] == '"2"'
        ids, reached = listed(two, watcher, participant=watcher.username, min_position=changed)
        assert ids == [event["id"]] and reached >= changed


async def test_when_an_instance_dies_the_other_follows_the_log_and_notifies_in_its_place(
    pair: tuple[Server, Server],
) -> None:
    first, second = pair
    # the first instance started first, so its consumers and notifier took the leases
    led_by_first = set(lease_holders(first)) & processes(first)
    assert led_by_first, lease_holders(first)
    with httpx.Client(base_url=second.url, timeout=30) as two:
        owner = sign_up(two, "survivor")
        before, _ = listed(two, owner)
        await asyncio.to_thread(first.kill)

        async with socket(second, "/ws/events/", token=owner.access) as feed, \
                client(second) as writer:
            await ready(feed)
            event, written = await create(writer, owner, name="After the crash")
            # within the takeover time (a lease is retried every second)
            heard = await receive(feed)
            assert (heard["event_id"], heard["position"]) == (event["id"], written)

        # the view catches up with no one asking (no min_position): its follower runs here now
        ids = eventually(lambda: (found := listed(two, owner)[0]) and event["id"] in found
                         and found, "no follower took over the events view")
        assert set(before) <= set(ids)
        ready_now = two.get("/readyz").json()
        assert ready_now["views"]["events"]["lag"] == 0, ready_now
    # every role (three views, mailer, reminder clock, notifier) is taken by the second in
    # turn, each within its retry interval (the mailer's process runs at a lower priority)
    holders = eventually(lambda: (found := lease_holders(second)) and sum(found.values()) >= 6
                         and found, lambda: f"roles held: {lease_holders(second)}")
    assert set(holders) <= processes(second) and sum(holders.values()) == 6, holders


def test_the_instances_share_one_event_log(pair: tuple[Server, Server]) -> None:
    _, second = pair
    with httpx.Client(base_url=second.url, timeout=30) as two:
        owner = sign_up(two, "solo")
        answer = two.post("/api/events/", json=event_body(), headers=owner.headers)
        assert answer.status_code == 201, answer.text
        assert int(answer.headers["X-Position"]) > 3  # after the writes through the first
