"""The occurrences the events view materialises are extended as time passes, on both backends
(projections.occurrences): a daily series whose facts are three years old (stored straight
into the event store, as an old release would have left them) has rows only up to two years
ago until `alphabet serve` starts; then its follower materialises the rule's occurrences up to
a year past the present, every one of them and nothing else, and a page far ahead lists the
same occurrences the series' /instances gives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from eventsourcing.domain import CanCreateTimestamp

from alphabet import wiring
from alphabet.settings import Settings
from domain.events import Event
from domain.presentation import instant
from domain.recurrence import Series, starts
from projections.occurrences import HORIZON, LOOKAHEAD
from tests.conftest import Backend, Person, Server, eventually, sign_up

ZONE = "Europe/Berlin"
DAILY = "RRULE:FREQ=DAILY"
YEARS_AGO = timedelta(days=3 * 365)


def store_old_series(server: Server, owner_id: str, now: datetime) -> tuple[str, datetime]:
    """A daily 09:00 Berlin series created (its fact's time) three years before `now`;
    returns its id and first start."""
    created = now - YEARS_AGO
    first = datetime(created.year, created.month, created.day, 9,
                     tzinfo=ZoneInfo(ZONE)).astimezone(UTC)
    app = wiring.event_application(Settings.from_env(server.command_env))
    original = CanCreateTimestamp.create_timestamp
    try:
        CanCreateTimestamp.create_timestamp = staticmethod(lambda: created)  # type: ignore[method-assign]
        event = Event(owner_id=owner_id, name="Old standup", starting_time=first,
                      end_time=first + timedelta(minutes=15), location="Tel Aviv Port",
                      participants=[], time_zone=ZONE, recurrence=[DAILY])
        app.save(event)
    finally:
        CanCreateTimestamp.create_timestamp = original  # type: ignore[method-assign]
        app.close()
    return str(event.id), first


@pytest.fixture
def stopped(tmp_path: Path, backend: Backend) -> Iterator[tuple[Server, Person]]:
    """A server that has served once (so an account exists), ended again: killed, as its
    sign-up is committed, since a SIGTERM so soon after the start can keep Sanic's manager
    from ending (README, Known issues) and a stop would wait it out."""
    server = Server(tmp_path / "data", backend=backend).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            owner = sign_up(http)
    finally:
        server.kill()
    yield server, owner
    server.stop()


def test_a_series_with_old_facts_is_materialised_up_to_a_year_ahead_once_served(
        stopped: tuple[Server, Person]) -> None:
    server, owner = stopped
    now = datetime.now(UTC)
    event_id, first = store_old_series(server, owner.id, now)
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        # GET /api/event/{id} waits for the view (min_position) through the worker's own
        # follower, which catches up but never extends: the consumers' follower does that
        shown = http.get(f"/api/event/{event_id}", headers=owner.headers)
        assert shown.status_code == 200, shown.text

        def extended() -> str | None:
            [(pending,)] = server.rows("SELECT pending FROM event_series WHERE id = ?",
                                       (event_id,))
            return pending if pending and pending >= instant(now + LOOKAHEAD) else None

        pending = datetime.fromisoformat(eventually(
            extended, f"series {event_id} extended past {now + LOOKAHEAD}"))
        assert pending >= now + HORIZON, (pending, now + HORIZON)
        expected = [instant(start) for start in starts(
            Series(first, first + timedelta(minutes=15), ZONE, [DAILY]), before=pending)]
        rows = [start for (start,) in server.rows(
            "SELECT original_start FROM event_occurrences WHERE series_id = ? "
            "ORDER BY original_start", (event_id,))]
        assert rows == expected
        assert len(rows) > 3 * 365 + 365, len(rows)
        # every one at 09:00 in Berlin, winter and summer alike
        assert {datetime.fromisoformat(row).astimezone(ZoneInfo(ZONE)).hour
                for row in rows} == {9}

        window = {"starts_after": instant(now + timedelta(days=300)),
                  "starts_before": instant(now + timedelta(days=307))}
        listed = http.get("/api/events/", params={**window, "single_events": "true"},
                          headers=owner.headers)
        instances = http.get(f"/api/event/{event_id}/instances", params=window,
                             headers=owner.headers)
        assert listed.status_code == instances.status_code == 200, (listed.text, instances.text)
        assert [e["id"] for e in listed.json()["events"]] == \
            [e["id"] for e in instances.json()["events"]]
        assert len(instances.json()["events"]) == 7
