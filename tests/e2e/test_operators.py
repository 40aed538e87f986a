"""Operators over real HTTP, on each backend: named by ALPHABET_OPERATORS or granted by
`alphabet operator grant`, they delete anyone's event and account (the facts name them),
see the views' lag and replay them; anyone else still hears 403."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from alphabet.settings import Settings
from alphabet.wiring import event_application
from domain.users import User
from tests.conftest import ROOT, Backend, Person, Server, assert_error, event_body, sign_up

SECONDS = 300  # a ceiling for a command on a busy machine, not an expectation
BOSS = f"Boss_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[Server]:
    # Named in another case than the account's: usernames are unique case-insensitively.
    running = Server(tmp_path_factory.mktemp("server") / "data", backend=backend,
                     env={"ALPHABET_OPERATORS": f" someone_else , {BOSS.lower()}"}).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def boss(http: httpx.Client) -> Person:
    password = "correct horse battery"
    answer = http.post("/api/auth/signup/", json={
        "username": BOSS, "email": f"{BOSS}@example.com", "password": password})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Person(body["user"]["id"], BOSS, f"{BOSS}@example.com", password, body["access"],
                  body["refresh"])


def alphabet(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alphabet", *args], cwd=ROOT,
                          env=server.command_env, capture_output=True, text=True,
                          timeout=SECONDS)


def create(http: httpx.Client, who: Person, **fields: Any) -> str:
    answer = http.post("/api/events", json=event_body(**fields), headers=who.headers)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["event"]["id"])


def facts_of(server: Server, aggregate_id: str) -> list[Any]:
    """The stored facts of an aggregate, read from the server's own store."""
    app = event_application(Settings.from_env(server.command_env))
    try:
        return list(app.events.get(UUID(aggregate_id)))
    finally:
        app.close()


def test_an_ordinary_user_may_not_delete_someone_elses_event_or_account(
    http: httpx.Client, owner: Person, other: Person
) -> None:
    event_id = create(http, owner)

    assert_error(http.delete(f"/api/event/{event_id}", headers=other.headers), 403, "forbidden")
    assert_error(http.delete(f"/api/user/{owner.id}", headers=other.headers), 403, "forbidden")

    assert http.get(f"/api/event/{event_id}", headers=owner.headers).status_code == 200
    assert http.get("/api/user/me", headers=owner.headers).status_code == 200


def test_an_operator_named_by_the_setting_deletes_anyones_event_and_the_trail_names_them(
    http: httpx.Client, owner: Person, boss: Person
) -> None:
    event_id = create(http, owner)

    answer = http.delete(f"/api/event/{event_id}", headers=boss.headers)

    assert answer.status_code == 200, answer.text
    assert http.get(f"/api/event/{event_id}", headers=owner.headers).status_code == 410
    trail = http.get(f"/api/event/{event_id}/history", headers=owner.headers).json()["history"]
    assert [(fact["type"], fact["by"]) for fact in trail] == [
        ("Created", owner.id), ("Deleted", boss.id)]


def test_an_operator_deletes_an_account_and_every_fact_of_it_names_the_operator(
    http: httpx.Client, server: Server, boss: Person
) -> None:
    victim = sign_up(http, "victim")
    event_id = create(http, victim)

    answer = http.delete(f"/api/user/{victim.id}", headers=boss.headers)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"message": f'User "{victim.username}" deleted'}
    assert_error(http.get("/api/user/me", headers=victim.headers), 401)
    assert_error(http.get(f"/api/user/{victim.id}", headers=boss.headers), 404)
    assert http.get("/api/user/me", headers=boss.headers).status_code == 200  # not the boss
    trail = http.get(f"/api/event/{event_id}/history", headers=boss.headers).json()["history"]
    assert trail[-1]["type"] == "Deleted"
    assert trail[-1]["by"] == boss.id
    deleted = facts_of(server, victim.id)[-1]
    assert isinstance(deleted, User.Deleted)
    assert deleted.by == boss.id
    # the victim's personal data is erased, as when they delete themselves (that erasure's
    # reach into the files is test_users.py's to check)
    assert server.rows("SELECT count(*) FROM users WHERE id = ?", (victim.id,)) == [(0,)]


def test_the_open_sockets_of_an_account_an_operator_deletes_are_closed_with_4401(
    http: httpx.Client, server: Server, boss: Person
) -> None:
    watcher = sign_up(http, "watcher")
    url = f"ws://127.0.0.1:{server.port}/ws/events?token={watcher.access}"
    with connect(url, open_timeout=SECONDS) as ws:
        assert json.loads(ws.recv(timeout=SECONDS))["type"] == "ready"

        assert http.delete(f"/api/user/{watcher.id}", headers=boss.headers).status_code == 200

        with pytest.raises(ConnectionClosed) as closed:
            while True:  # feed messages of others' changes may come first
                ws.recv(timeout=SECONDS)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


def test_a_user_deleting_their_own_account_is_named_as_its_deleter(
    http: httpx.Client, server: Server
) -> None:
    leaver = sign_up(http, "leaver")

    assert http.delete("/api/user/me", headers=leaver.headers).status_code == 200

    deleted = facts_of(server, leaver.id)[-1]
    assert isinstance(deleted, User.Deleted)
    assert deleted.by == leaver.id


def test_a_grant_on_the_command_line_makes_an_operator_and_a_revocation_ends_it(
    http: httpx.Client, server: Server, owner: Person, boss: Person
) -> None:
    helper = sign_up(http, "helper")
    event_id = create(http, owner)
    assert_error(http.get("/api/operator/status", headers=helper.headers), 403, "forbidden")

    granted = alphabet(server, "operator", "grant", helper.username.upper())
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.strip() == f"operator granted to {helper.username}"
    again = alphabet(server, "operator", "grant", helper.username)
    assert "already had an operator grant; nothing recorded" in again.stdout

    assert http.get("/api/operator/status", headers=helper.headers).status_code == 200
    listed = alphabet(server, "operator", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{helper.username}  (granted)" in listed.stdout.splitlines()
    assert f"{BOSS.lower()}  (ALPHABET_OPERATORS)" in listed.stdout.splitlines()
    assert http.delete(f"/api/event/{event_id}", headers=helper.headers).status_code == 200

    revoked = alphabet(server, "operator", "revoke", helper.username)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"operator revoked from {helper.username}"
    assert_error(http.get("/api/operator/status", headers=helper.headers), 403, "forbidden")
    assert helper.username not in alphabet(server, "operator", "list").stdout
    granted_facts = [type(f) for f in facts_of(server, helper.id)]
    assert granted_facts[-2:] == [User.OperatorGranted, User.OperatorRevoked]


def test_granting_an_unknown_account_fails_plainly(server: Server) -> None:
    done = alphabet(server, "operator", "grant", "nobody_by_that_name")

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == ("alphabet operator: error: no account named "
                                   "'nobody_by_that_name'")


def test_an_operator_sees_each_views_lag_and_replays_them_while_the_lists_stay_the_same(
    http: httpx.Client, owner: Person, boss: Person, other: Person
) -> None:
    made = http.post("/api/events", json=event_body(name="Before the replay"),
                     headers=owner.headers)
    assert made.status_code == 201, made.text
    assert_error(http.post("/api/operator/replay", headers=other.headers), 403, "forbidden")
    assert_error(http.post("/api/operator/replay"), 401)
    before = http.get("/api/events", params={"limit": 1000,
                                             "min_position": made.headers["x-position"]},
                      headers=owner.headers).json()
    assert "Before the replay" in [event["name"] for event in before["events"]]

    status = http.get("/api/operator/status", headers=boss.headers)
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["operator"] is True
    assert set(body["views"]) == {"events", "mail", "reminders"}
    for view in body["views"].values():
        assert view["lag"] == max(body["position"] - view["position"], 0)

    replayed = http.post("/api/operator/replay", headers=boss.headers)

    assert replayed.status_code == 200, replayed.text
    rebuilt = replayed.json()["views"]
    assert set(rebuilt) == {"events", "mail", "reminders"}
    assert all(position >= body["position"] for position in rebuilt.values())
    after = http.get("/api/events", params={"limit": 1000}, headers=owner.headers).json()
    assert after == before
    one = http.post("/api/operator/replay", params={"view": "events"}, headers=boss.headers)
    assert one.status_code == 200, one.text
    assert set(one.json()["views"]) == {"events"}
    error = assert_error(http.post("/api/operator/replay", params={"view": "nope"},
                                   headers=boss.headers), 422, "invalid_fields")
    assert "events" in error["fields"]["view"]
