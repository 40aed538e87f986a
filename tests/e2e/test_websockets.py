"""WebSockets over real sockets against a real `alphabet serve` (SPEC §4 "WebSocket"): the feed
and per-event sockets, authentication by query or first message, resume with ?after=, what a
message hides, fan-out across workers (with and without Redis), and the hub's bounded queues."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from consumers.hub import Hub
from tests.conftest import (
    REDIS_URL,
    WAIT_SECONDS,
    Backend,
    Person,
    Server,
    event_body,
    fresh,
    sign_up,
)

# The longest anything here waits for one thing: a ceiling for a busy machine, never a pause
# (how soon a change reaches a socket is measured in bench/, not asserted here).
TIMEOUT = WAIT_SECONDS
QUIET = 0.3  # how long "nothing more arrives" is watched for
MESSAGE_KEYS = {"type", "event_id", "version", "position", "message", "event", "changes"}


# ---------------------------------------------------------------------------------------------
# helpers


def ws_url(server: Server, path: str, **params: str) -> str:
    query = f"?{urlencode(params)}" if params else ""
    return f"ws://127.0.0.1:{server.port}{path}{query}"


@asynccontextmanager
async def socket(server: Server, path: str, **params: str) -> AsyncIterator[ClientConnection]:
    async with asyncio.timeout(TIMEOUT):
        ws = await connect(ws_url(server, path, **params), open_timeout=TIMEOUT)
    try:
        yield ws
    finally:
        await asyncio.wait_for(ws.close(), TIMEOUT)


async def receive(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    message: dict[str, Any] = json.loads(raw)
    return message


async def ready(ws: ClientConnection) -> int:
    """The first message must be {"type": "ready", "position": N}; returns N."""
    first = await receive(ws)
    assert first["type"] == "ready", first
    assert set(first) == {"type", "position"}, first
    assert isinstance(first["position"], int) and first["position"] >= 0, first
    position: int = first["position"]
    return position


async def nothing_more(ws: ClientConnection, seconds: float = QUIET) -> None:
    try:
        extra = await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message: {extra!r}")


async def refused_with(server: Server, path: str, first: str | None = None,
                       timeout: float = TIMEOUT, **params: str) -> int:
    """How the server turns the socket away: the HTTP status if it refuses the upgrade, else the
    close code it sends (reading until it closes, failing if a real message arrives)."""
    try:
        async with asyncio.timeout(TIMEOUT):
            ws = await connect(ws_url(server, path, **params), open_timeout=TIMEOUT)
    except InvalidStatus as refused:
        return refused.response.status_code
    try:
        if first is not None:
            await ws.send(first)
        async with asyncio.timeout(timeout):
            while True:
                message = await ws.recv()
                raise AssertionError(f"the server sent {message!r} instead of closing")
    except ConnectionClosed:
        pass
    finally:
        await asyncio.wait_for(ws.close(), TIMEOUT)
    assert ws.close_code is not None
    return ws.close_code


@asynccontextmanager
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
        yield http


def position_of(answer: httpx.Response) -> int:
    assert "X-Position" in answer.headers, answer.headers
    return int(answer.headers["X-Position"])


async def create(http: httpx.AsyncClient, owner: Person,
                 **overrides: Any) -> tuple[dict[str, Any], int]:
    answer = await http.post("/api/events/", json=event_body(**overrides), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    event: dict[str, Any] = answer.json()["event"]
    return event, position_of(answer)


async def update(http: httpx.AsyncClient, owner: Person, event_id: str,
                 **fields: Any) -> tuple[dict[str, Any], int]:
    answer = await http.put(f"/api/event/{event_id}", json=fields, headers=owner.headers)
    assert answer.status_code == 200, answer.text
    event: dict[str, Any] = answer.json()["event"]
    return event, position_of(answer)


async def delete(http: httpx.AsyncClient, owner: Person, event_id: str) -> int:
    answer = await http.delete(f"/api/event/{event_id}", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    return position_of(answer)


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


# ---- which worker process holds which socket (read from /proc, Linux only) -------------------


def descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        children = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= children
        frontier = children
    return found


def server_side_inodes(server_port: int) -> dict[int, int]:
    """client port → inode of the server's end of that established loopback connection."""
    found: dict[int, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        if state == "01" and int(local.split(":")[1], 16) == server_port:
            found[int(remote.split(":")[1], 16)] = inode
    return found


def worker_of_each(server: Server, sockets: list[ClientConnection]) -> list[int | None]:
    """The pid of the server process holding each client socket's other end."""
    assert server.process is not None
    inodes = server_side_inodes(server.port)
    owner_of_inode: dict[int, int] = {}
    for pid in descendants(server.process.pid) | {server.process.pid}:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owner_of_inode[int(target[8:-1])] = pid
    return [owner_of_inode.get(inodes.get(ws.local_address[1], -1)) for ws in sockets]


# ---------------------------------------------------------------------------------------------
# fixtures




@pytest.fixture(scope="module")
def watcher(http: httpx.Client) -> Person:
    """Someone else: every signed-in user may subscribe to every event."""
    return sign_up(http, "watcher")


# ---------------------------------------------------------------------------------------------
# per-event sockets


@pytest.mark.parametrize("path", ["/ws/events/{id}/", "/ws/events/{id}"])
async def test_an_update_reaches_the_event_socket_as_the_spec_describes_it(
    server: Server, owner: Person, watcher: Person, path: str,
) -> None:
    async with client(server) as http:
        event, _ = await create(http, owner, name=unique("Standup"))
        async with socket(server, path.format(id=event["id"]), token=watcher.access) as ws:
            await ready(ws)
            new_name = unique("Retro")
            updated, position = await update(http, owner, event["id"], name=new_name)
            message = await receive(ws)
    assert set(message) == MESSAGE_KEYS, message
    assert message["type"] == "event.updated"
    assert message["event_id"] == event["id"]
    assert message["position"] == position
    assert message["version"] == updated["version"] == event["version"] + 1
    assert message["message"] == f'Event "{new_name}" has been updated.'
    assert message["changes"] == {"name": new_name}
    assert message["event"]["name"] == new_name
    for key in ("id", "starting_time", "end_time", "location", "owner", "owner_username",
                "version"):
        assert message["event"][key] == updated[key], key


async def test_an_event_socket_hears_only_its_own_event_including_its_deletion(
    server: Server, owner: Person, watcher: Person,
) -> None:
    async with client(server) as http:
        mine, _ = await create(http, owner, name=unique("Mine"))
        other, _ = await create(http, owner, name=unique("Other"))
        async with socket(server, f"/ws/events/{mine['id']}/", token=watcher.access) as ws:
            await ready(ws)
            await update(http, owner, other["id"], location="Elsewhere")
            _, updated_at = await update(http, owner, mine["id"], location="Jaffa")
            await update(http, owner, other["id"], location="Haifa")
            deleted_at = await delete(http, owner, mine["id"])
            await delete(http, owner, other["id"])
            first = await receive(ws)
            second = await receive(ws)
            await nothing_more(ws)
    assert (first["type"], first["event_id"], first["position"]) == (
        "event.updated", mine["id"], updated_at)
    assert first["changes"] == {"location": "Jaffa"}
    assert (second["type"], second["event_id"], second["position"]) == (
        "event.deleted", mine["id"], deleted_at)
    assert second["message"] == f'Event "{mine["name"]}" has been deleted.'


async def test_the_event_in_a_message_shows_invitee_in_place_of_every_invitees_address(
    server: Server, owner: Person, watcher: Person,
) -> None:
    guest = f"guest-{uuid.uuid4().hex[:6]}@example.com"
    newcomer = f"new-{uuid.uuid4().hex[:6]}@example.org"
    async with client(server) as http, socket(server, "/ws/events/", token=owner.access) as ws:
        await ready(ws)
        event, _ = await create(http, owner, participants=[watcher.username, guest])
        created = await receive(ws)
        _, position = await update(http, owner, event["id"],
                                   participants=[watcher.username, guest, newcomer])
        updated_raw = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert created["event_id"] == event["id"] and created["type"] == "event.created"
    assert sorted(created["event"]["participants"]) == sorted([watcher.username, "invitee"])
    assert guest not in json.dumps(created)
    updated = json.loads(updated_raw)
    assert updated["position"] == position
    assert sorted(updated["event"]["participants"]) == sorted(
        [watcher.username, "invitee", "invitee"])
    assert "participants" in updated["changes"]
    assert guest not in str(updated_raw) and newcomer not in str(updated_raw)
    assert "@" not in json.dumps(updated["event"]) + json.dumps(updated["changes"])


# ---------------------------------------------------------------------------------------------
# the feed


@pytest.mark.parametrize("path", ["/ws/events/", "/ws/events"])
async def test_the_feed_receives_every_change_in_log_order_including_events_created_later(
    server: Server, owner: Person, watcher: Person, path: str,
) -> None:
    expected: list[tuple[str, str, int]] = []
    async with client(server) as http, socket(server, path, token=watcher.access) as ws:
        live_from = await ready(ws)
        first, at = await create(http, owner, name=unique("First"))
        expected.append(("event.created", first["id"], at))
        second, at = await create(http, owner, name=unique("Second"))
        expected.append(("event.created", second["id"], at))
        _, at = await update(http, owner, first["id"], name=unique("First again"))
        expected.append(("event.updated", first["id"], at))
        _, at = await update(http, owner, second["id"], location="Jerusalem")
        expected.append(("event.updated", second["id"], at))
        at = await delete(http, owner, first["id"])
        expected.append(("event.deleted", first["id"], at))
        received = [await receive(ws) for _ in expected]
        await nothing_more(ws)
    positions = [m["position"] for m in received]
    assert positions == sorted(set(positions)), "positions must be strictly increasing"
    assert positions[0] > live_from
    assert [(m["type"], m["event_id"], m["position"]) for m in received] == expected
    assert received[0]["message"] == f'Event "{first["name"]}" has been created.'
    assert received[0]["event"]["name"] == first["name"]
    assert received[0]["version"] == first["version"]
    assert received[1]["message"] == f'Event "{second["name"]}" has been created.'
    assert all(set(m) == MESSAGE_KEYS for m in received)


# ---------------------------------------------------------------------------------------------
# authentication


async def test_a_token_sent_as_the_first_message_authenticates_the_socket(
    server: Server, owner: Person, watcher: Person,
) -> None:
    async with client(server) as http:
        event, _ = await create(http, owner)
        async with socket(server, f"/ws/events/{event['id']}/") as ws:
            await ws.send(json.dumps({"token": watcher.access}))
            await ready(ws)
            _, position = await update(http, owner, event["id"], location="Eilat")
            message = await receive(ws)
    assert (message["type"], message["position"]) == ("event.updated", position)


async def test_a_socket_that_sends_no_token_within_five_seconds_is_closed_with_4401(
    server: Server,
) -> None:
    started = time.monotonic()
    code = await refused_with(server, "/ws/events/")
    waited = time.monotonic() - started
    assert code == 4401
    assert waited >= 4.5, f"closed after {waited:.1f} s"


async def test_a_first_message_that_is_not_a_token_closes_the_socket_with_4401(
    server: Server,
) -> None:
    assert await refused_with(server, "/ws/events/", first="hello") == 4401
    assert await refused_with(server, "/ws/events/", first=json.dumps({"token": 42})) == 4401


async def test_a_bad_token_is_refused_with_401_or_closed_with_4401(
    server: Server, watcher: Person,
) -> None:
    forged = jwt.encode({"sub": watcher.id, "type": "access", "jti": "x", "iat": int(time.time()),
                         "exp": int(time.time()) + 600},
                        "not the server key, but long enough for HS256", algorithm="HS256")
    unsigned = jwt.encode({"sub": watcher.id, "type": "access", "jti": "x",
                           "iat": int(time.time()), "exp": int(time.time()) + 600},
                          None, algorithm="none")
    for token in ("garbage", watcher.access[:-3] + "abc", forged, unsigned):
        assert await refused_with(server, "/ws/events/", token=token) in (401, 4401), token
    assert await refused_with(server, "/ws/events/",
                              first=json.dumps({"token": forged})) in (401, 4401)


async def test_a_refresh_token_is_not_accepted_on_a_socket(
    server: Server, watcher: Person,
) -> None:
    assert await refused_with(server, "/ws/events/", token=watcher.refresh) in (401, 4401)
    assert await refused_with(server, "/ws/events/",
                              first=json.dumps({"token": watcher.refresh})) in (401, 4401)


async def test_a_deleted_users_token_no_longer_opens_a_socket(
    server: Server, http: httpx.Client,
) -> None:
    leaving = sign_up(http, "leaving")
    async with socket(server, "/ws/events/", token=leaving.access) as ws:
        await ready(ws)
    answer = http.delete(f"/api/user/{leaving.id}", headers=leaving.headers)
    assert answer.status_code == 200, answer.text
    assert await refused_with(server, "/ws/events/", token=leaving.access) in (401, 4401)


async def test_a_token_that_expires_while_connected_closes_the_socket_with_4401(
    server: Server, watcher: Person,
) -> None:
    """Sixteen sockets: the expiry must be told with 4401 every time, not most of the time."""
    secret = (server.data_dir / "secret_key").read_text().strip()
    now = int(time.time())
    stamp = jwt.decode(watcher.access, options={"verify_signature": False})["pwd"]
    short_lived = jwt.encode({"sub": watcher.id, "type": "access", "jti": str(uuid.uuid4()),
                              "iat": now, "exp": now + 2, "pwd": stamp}, secret,
                             algorithm="HS256")

    async def close_code_at_expiry(stagger: float) -> int | None:
        await asyncio.sleep(stagger)  # connect at different sub-millisecond offsets
        async with socket(server, "/ws/events/", token=short_lived) as ws:
            await ready(ws)
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(TIMEOUT):
                    while True:
                        message = json.loads(await ws.recv())
                        assert message["type"] != "ready"
            return ws.close_code

    codes = await asyncio.gather(*(close_code_at_expiry(n * 0.0137) for n in range(16)))
    assert codes == [4401] * 16


@pytest.mark.parametrize("event_id", [str(uuid.uuid4()), "not-a-uuid", "12345"])
async def test_a_socket_for_an_unknown_or_malformed_event_id_is_refused_or_closed_with_4404(
    server: Server, watcher: Person, event_id: str,
) -> None:
    assert await refused_with(server, f"/ws/events/{event_id}/",
                              token=watcher.access) in (404, 4404)
    assert await refused_with(server, f"/ws/events/{event_id}",
                              first=json.dumps({"token": watcher.access})) in (404, 4404)


# ---------------------------------------------------------------------------------------------
# resume with ?after=


async def test_resuming_the_feed_with_after_replays_exactly_what_was_missed_then_continues_live(
    server: Server, owner: Person, watcher: Person,
) -> None:
    async with client(server) as http:
        async with socket(server, "/ws/events/", token=watcher.access) as ws:
            await ready(ws)
            event, created_at = await create(http, owner, name=unique("Resumable"))
            seen = await receive(ws)
            assert seen["position"] == created_at
        missed: list[int] = []
        _, at = await update(http, owner, event["id"], location="Acre")
        missed.append(at)
        other, at = await create(http, owner, name=unique("While away"))
        missed.append(at)
        _, at = await update(http, owner, event["id"], name=unique("Renamed"))
        missed.append(at)
        async with socket(server, "/ws/events/", token=watcher.access,
                          after=str(seen["position"])) as ws:
            live_from = await ready(ws)
            replayed = [await receive(ws) for _ in missed]
            _, live_at = await update(http, owner, other["id"], location="Nazareth")
            live = await receive(ws)
            await nothing_more(ws)
    assert [m["position"] for m in replayed] == missed
    assert [m["type"] for m in replayed] == ["event.updated", "event.created", "event.updated"]
    assert replayed[0]["changes"] == {"location": "Acre"}
    assert replayed[1]["event_id"] == other["id"]
    assert live_from >= seen["position"]
    assert live["position"] == live_at > missed[-1]
    assert live["event_id"] == other["id"]


async def test_resuming_an_event_socket_with_after_replays_only_that_events_messages(
    server: Server, owner: Person, watcher: Person,
) -> None:
    async with client(server) as http:
        mine, created_at = await create(http, owner, name=unique("Mine"))
        other, _ = await create(http, owner, name=unique("Other"))
        mine_positions = [created_at]
        await update(http, owner, other["id"], location="A")
        mine_positions.append((await update(http, owner, mine["id"], location="B"))[1])
        await update(http, owner, other["id"], location="C")
        mine_positions.append((await update(http, owner, mine["id"], location="D"))[1])
        async with socket(server, f"/ws/events/{mine['id']}/", token=watcher.access,
                          after=str(created_at - 1)) as ws:
            await ready(ws)
            replayed = [await receive(ws) for _ in mine_positions]
            await update(http, owner, other["id"], location="E")
            _, live_at = await update(http, owner, mine["id"], location="F")
            live = await receive(ws)
            await nothing_more(ws)
    assert [m["position"] for m in replayed] == mine_positions
    assert {m["event_id"] for m in replayed} == {mine["id"]}
    assert [m["type"] for m in replayed] == ["event.created", "event.updated", "event.updated"]
    assert replayed[0]["message"] == f'Event "{mine["name"]}" has been created.'
    assert [m["event"]["location"] for m in replayed[1:]] == ["B", "D"]
    assert (live["event_id"], live["position"]) == (mine["id"], live_at)


@pytest.mark.parametrize("after", ["abc", "-1", "1.5"])
async def test_an_after_that_is_not_a_log_position_closes_the_socket_with_4400(
    server: Server, watcher: Person, after: str,
) -> None:
    assert await refused_with(server, "/ws/events/", token=watcher.access,
                              after=after) in (400, 4400)


# ---------------------------------------------------------------------------------------------
# several workers


async def all_workers_ready(server: Server, timeout: float = WAIT_SECONDS) -> None:
    """Server.start returns once one worker answers; wait for every worker's "Worker ready"."""
    deadline = time.monotonic() + timeout
    while server.log_path.read_text(errors="replace").count("Worker ready") < server.workers:
        assert server.process is not None and server.process.poll() is None, "server exited"
        assert time.monotonic() < deadline, server.log_path.read_text(errors="replace")
        await asyncio.sleep(0.1)


async def every_socket_hears_every_put_in_order(server: Server) -> None:
    """Open feed sockets until both workers hold some, then check that five PUTs reach them all,
    in order, with the positions the PUTs answered."""
    await all_workers_ready(server)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as sync_http:
        owner = sign_up(sync_http, "multi")
    sockets: list[ClientConnection] = []
    try:
        holders: set[int] = set()
        while len(sockets) < 8 or (len(holders) < 2 and len(sockets) < 48):
            async with asyncio.timeout(TIMEOUT):
                ws = await connect(ws_url(server, "/ws/events/", token=owner.access))
            sockets.append(ws)
            await ready(ws)
            holders = {pid for pid in worker_of_each(server, sockets) if pid is not None}
        owners = worker_of_each(server, sockets)
        assert None not in owners, "every socket should be held by a server process"
        assert len(set(owners)) == 2, f"sockets should be spread over both workers: {owners}"
        async with client(server) as http:
            event, _ = await create(http, owner, name=unique("Fan-out"))
            created = [await receive(ws) for ws in sockets]
            assert {m["event_id"] for m in created} == {event["id"]}
            positions = []
            for n in range(5):
                positions.append((await update(http, owner, event["id"], name=f"Fan-out {n}"))[1])
        for index, ws in enumerate(sockets):
            heard = [await receive(ws) for _ in positions]
            assert [m["position"] for m in heard] == positions, f"socket {index} ({owners[index]})"
            assert [m["event"]["name"] for m in heard] == [f"Fan-out {n}" for n in range(5)]
            await nothing_more(ws, 0.05)
    finally:
        for ws in sockets:
            await asyncio.wait_for(ws.close(), TIMEOUT)


async def test_two_workers_sharing_redis_deliver_every_message_to_every_socket_in_order(
    tmp_path: Path, redis_namespace: str, backend: Backend,
) -> None:
    with fresh(backend.kind) as own:
        shared = Server(tmp_path / "data", workers=2, backend=own, env={
            "ALPHABET_REDIS_URL": REDIS_URL, "ALPHABET_REDIS_NAMESPACE": redis_namespace})
        await asyncio.to_thread(shared.start)
        try:
            await every_socket_hears_every_put_in_order(shared)
        finally:
            await asyncio.to_thread(shared.stop)


async def test_two_workers_without_redis_each_follow_the_log_and_deliver_every_message_in_order(
    tmp_path: Path, backend: Backend,
) -> None:
    with fresh(backend.kind) as own:
        local = Server(tmp_path / "data", workers=2, backend=own, env={"ALPHABET_REDIS_URL": ""})
        await asyncio.to_thread(local.start)
        try:
            await every_socket_hears_every_put_in_order(local)
        finally:
            await asyncio.to_thread(local.stop)


# ---------------------------------------------------------------------------------------------
# a slow client (the hub, in-process: a real socket cannot be made slow on demand)


def hub_message(position: int, event_id: str = "e1") -> dict[str, Any]:
    return {"type": "event.updated", "event_id": event_id, "position": position}


async def test_a_subscriber_that_never_reads_is_dropped_on_overflow_while_a_reader_keeps_receiving(
) -> None:
    hub = Hub(max_queue=3)
    slow = hub.subscribe(None)
    reader = hub.subscribe(None)
    received: list[int] = []
    for position in (1, 2, 3):
        hub.publish(hub_message(position))
        received.append(reader.queue.get_nowait()["position"])
    assert not slow.dropped.is_set(), "a full queue is not yet an overflow"
    hub.publish(hub_message(4))
    received.append(reader.queue.get_nowait()["position"])
    assert slow.dropped.is_set()
    assert slow not in hub.subscribers
    assert reader in hub.subscribers and not reader.dropped.is_set()
    hub.publish(hub_message(5))
    received.append(reader.queue.get_nowait()["position"])
    assert received == [1, 2, 3, 4, 5]
    assert slow.queue.qsize() == 3, "a dropped subscriber gets nothing more"
    assert hub.position == 5


async def test_the_hub_gives_an_event_subscriber_only_that_events_messages() -> None:
    hub = Hub(max_queue=3)
    one = hub.subscribe("e1")
    for position in range(1, 10):
        hub.publish(hub_message(position, "e2"))
    hub.publish(hub_message(10, "e1"))
    assert not one.dropped.is_set()
    assert one.queue.get_nowait()["position"] == 10
    assert one.queue.empty()


# ---------------------------------------------------------------------------------------------
# latency


async def test_fifty_updates_each_reach_the_socket_in_turn_and_latency_is_printed(
    server: Server, owner: Person, watcher: Person, capsys: pytest.CaptureFixture[str],
) -> None:
    latencies: list[float] = []
    async with client(server) as http:
        event, _ = await create(http, owner, name=unique("Timed"))
        async with socket(server, f"/ws/events/{event['id']}/", token=watcher.access) as ws:
            await ready(ws)
            for n in range(50):
                started = time.perf_counter()
                _, position = await update(http, owner, event["id"], name=f"Timed {n}")
                message = await receive(ws)
                latencies.append((time.perf_counter() - started) * 1000)
                assert message["position"] == position
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    with capsys.disabled():
        print(f"\nPUT-to-WebSocket latency over {len(latencies)} updates (PUT sent → message "
              f"received): p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms, "
              f"max {max(latencies):.1f} ms")
