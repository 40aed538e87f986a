"""A fact a view cannot apply, written straight into the event store of a running server (as a
bug, an old release or a hand-edited store could leave one), on both backends: the view's loop
is restarted with backoff and says so in the log, /readyz answers 503 naming the view, the
position and the error, the other views go on, and nothing is skipped. Once the stored fact is
repaired the view applies it, the fault clears and /readyz answers 200 again."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from alphabet import wiring
from alphabet.settings import Settings
from domain.events import Event
from tests.conftest import Person, Server, event_body, eventually, sign_up

POISON_YEAR = "0001-01-01"  # the reminder, 30 minutes before, falls before year 1
REPAIRED_YEAR = "2099-01-01"


def readiness(http: httpx.Client) -> tuple[int, dict[str, Any]]:
    answer = http.get("/readyz")
    return answer.status_code, answer.json()


def poison(server: Server) -> tuple[str, int]:
    """Save an event starting in year 1, past the rules that refuse such a time on every
    write (the aggregate is built without Event.create's checks); returns its id and log
    position. On SQLite the data dir's doorbell is rung, as every writer of the server does;
    PostgreSQL NOTIFYs by itself."""
    settings = Settings.from_env(server.command_env)
    app = wiring.event_application(settings)
    try:
        start = datetime.fromisoformat(f"{POISON_YEAR}T00:00:00+00:00")
        event = Event(owner_id=str(app.register_user().aggregate.id), name="Poisoned",
                      starting_time=start, end_time=start.replace(hour=1),
                      location="Nowhere", participants=[], time_zone="UTC", recurrence=[])
        [recording] = app.save(event)
        position = recording.notification.id
    finally:
        app.close()
    bell = wiring.doorbell(settings)
    if bell is not None:
        bell.ring()
    return str(event.id), position


def repair(server: Server, event_id: str) -> None:
    """What an operator would do: rewrite the stored fact with a time the view can handle."""
    settings = Settings.from_env(server.command_env)
    app = wiring.event_application(settings)
    table = app.recorder.events_table_name  # type: ignore[attr-defined]
    app.close()
    if server.backend.url is None:
        with sqlite3.connect(settings.event_store_path, timeout=30) as conn:
            changed = conn.execute(
                f"UPDATE {table} SET state = CAST(replace(CAST(state AS TEXT), ?, ?) AS BLOB) "
                "WHERE originator_id = ?",
                (POISON_YEAR, REPAIRED_YEAR, event_id.replace("-", ""))).rowcount
    else:
        import psycopg

        with psycopg.connect(server.backend.url, autocommit=True) as pg:
            changed = pg.execute(
                f"UPDATE {table} SET state = convert_to(replace(convert_from(state, 'UTF8'), "
                "%s, %s), 'UTF8') WHERE originator_id = %s",
                (POISON_YEAR, REPAIRED_YEAR, event_id)).rowcount
    assert changed == 1, changed
    bell = wiring.doorbell(settings)
    if bell is not None:
        bell.ring()


@pytest.fixture(scope="module")
def poisoned(server: Server, http: httpx.Client) -> Iterator[tuple[str, int]]:
    yield poison(server)


def test_a_fact_a_view_cannot_apply_makes_readyz_503_naming_view_position_and_error(
    server: Server, http: httpx.Client, poisoned: tuple[str, int]
) -> None:
    _, position = poisoned

    def failing() -> dict[str, Any] | None:
        status, body = readiness(http)
        return body if status == 503 else None

    body = eventually(failing, lambda: f"/readyz still answers {readiness(http)}")
    assert body["status"] == "failing", body
    [fault] = [f for f in body["faults"] if f["name"] == "reminders"]
    assert fault["position"] == position, body
    assert "OverflowError" in fault["error"], fault
    assert fault["attempts"] >= 2, fault
    # The view stopped before the fact (its batch rolled back whole), and stays there: the
    # fact is retried, never skipped.
    assert body["views"]["reminders"]["position"] < position, body


def test_the_restart_with_backoff_is_logged(server: Server,
                                            poisoned: tuple[str, int]) -> None:
    _, position = poisoned
    pattern = re.compile(rf"reminders failed at position {position} \(OverflowError: .*\); "
                         r"restarting in (\d+\.\d) s with backoff \(attempt (\d+)\)")

    def restarts() -> list[tuple[str, str]] | None:
        found = pattern.findall(server.log_path.read_text(errors="replace"))
        return found if len(found) >= 3 else None

    found = eventually(restarts, "three logged restarts of the reminders view")
    delays = [float(delay) for delay, _ in found]
    assert [int(attempt) for _, attempt in found[:3]] == [1, 2, 3], found
    assert delays[0] < delays[1] < delays[2], delays  # the backoff grows


def test_the_other_views_go_on(http: httpx.Client, owner: Person,
                               poisoned: tuple[str, int]) -> None:
    """The events view follows past the fact the reminders view is stuck on (listed without
    ?min_position, so by the supervised follower, not by the request itself)."""
    answer = http.post("/api/events/", json=event_body(name="After the poison"),
                       headers=owner.headers)
    assert answer.status_code == 201, answer.text

    def listed() -> list[str]:
        page = http.get("/api/events/", params={"q": "poison"}, headers=owner.headers)
        return [e["name"] for e in page.json()["events"]]

    assert eventually(listed, lambda: f"listed: {listed()}") == ["After the poison"]


def test_requests_that_bring_the_events_view_forward_do_not_stumble_on_the_stuck_view(
    http: httpx.Client, poisoned: tuple[str, int]
) -> None:
    """Deleting an account and reading one's own write (?min_position) bring the events view
    up to date themselves: the reminders view's fault is not theirs to fail with."""
    leaving = sign_up(http, "leaving")
    written = http.post("/api/events/", json=event_body(name="Read back"),
                        headers=leaving.headers)
    assert written.status_code == 201, written.text
    listed = http.get("/api/events/", params={"min_position": written.headers["X-Position"],
                                               "q": "read back"}, headers=leaving.headers)
    assert listed.status_code == 200, listed.text
    assert [e["name"] for e in listed.json()["events"]] == ["Read back"]
    deleted = http.delete("/api/user/me", headers=leaving.headers)
    assert deleted.status_code == 200, deleted.text


def test_once_the_fact_is_repaired_it_is_applied_and_readyz_is_200_again(
    server: Server, http: httpx.Client, poisoned: tuple[str, int]
) -> None:
    event_id, position = poisoned
    repair(server, event_id)

    def ready() -> dict[str, Any] | None:
        status, body = readiness(http)
        return body if status == 200 else None

    body = eventually(ready, lambda: f"/readyz still answers {readiness(http)}")
    assert body["status"] == "ready", body
    assert body["faults"] == [], body
    assert body["views"]["reminders"]["position"] >= position, body
    rows = server.rows("SELECT starting_time FROM reminders WHERE event_id = ?", (event_id,))
    assert [r[0][:10] for r in rows] == [REPAIRED_YEAR], rows
    eventually(lambda: "reminders recovered after" in server.log_path.read_text(errors="replace"),
               "the recovery in the log")
