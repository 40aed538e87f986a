"""The event store's saves on PostgreSQL (projections.postgres.recorder): one statement that
still takes the table's lock, so facts commit in the order of their positions."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from alphabet.settings import Postgres
from domain.application import EventsApplication
from domain.events import Event
from projections.postgres.recorder import LockingRecorder
from tests.conftest import eventually, fresh

pytestmark = pytest.mark.postgres

NOW = datetime.now(UTC)


@pytest.fixture
def store() -> Iterator[tuple[EventsApplication, str]]:
    with fresh("postgres") as made:
        assert made.url is not None
        with psycopg.connect(made.url, autocommit=True) as conn:  # calls of functions counted
            conn.execute(f"ALTER DATABASE {made.url.rpartition('/')[2]} SET track_functions = 'pl'")
        env = {**Postgres.from_url(made.url).eventsourcing_env(), "CREATE_TABLE": "y"}
        app = EventsApplication(env=env)
        try:
            yield app, made.url
        finally:
            app.close()


def created(app: EventsApplication, name: str) -> UUID:
    event_id: UUID = app.create_event(
        owner_id="owner", name=name, location="Haifa", starting_time=NOW + timedelta(days=1),
        end_time=NOW + timedelta(days=1, hours=1), participants=[]).aggregate.id
    return event_id


def test_a_save_is_one_call_of_the_locking_function(
        store: tuple[EventsApplication, str]) -> None:
    app, url = store
    assert isinstance(app.recorder, LockingRecorder)
    created(app, "Standup")
    with psycopg.connect(url, autocommit=True) as conn:
        [(body,)] = conn.execute(
            "SELECT prosrc FROM pg_proc WHERE proname = %s",
            (app.recorder.pg_function_name_insert_events,)).fetchall()
        transactions = conn.execute(
            "SELECT xmin::text::bigint FROM alphabet_events").fetchall()
        eventually(lambda: conn.execute(
            "SELECT calls FROM pg_stat_user_functions WHERE funcname = %s",
            (app.recorder.pg_function_name_insert_events,)).fetchall() == [(1,)],
            "the save called the function once")
    assert "LOCK TABLE" in body and "IN EXCLUSIVE MODE" in body and "NOTIFY" in body
    # the creation's facts (the event's, its owner's Ownership's) in one transaction
    assert len(transactions) >= 2 and len(set(transactions)) == 1


def test_a_save_waits_for_the_table_lock_that_orders_commits(
        store: tuple[EventsApplication, str]) -> None:
    """ROW SHARE conflicts with the EXCLUSIVE lock the function takes but not with a plain
    INSERT's: a save without the lock would go through while it is held."""
    app, url = store
    first = created(app, "First")
    with (psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as watcher,
          ThreadPoolExecutor(1) as pool):
        holder.execute("LOCK TABLE alphabet_events IN ROW SHARE MODE")
        saving = pool.submit(created, app, "Second")
        eventually(lambda: watcher.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = 'alphabet_events'::regclass "
            "AND mode = 'ExclusiveLock' AND NOT granted").fetchone() == (1,),
            "the save waits for the table lock")
        assert not saving.done()
        holder.rollback()
        second = saving.result(timeout=30)
    assert app.get_event(second).version == 1 and app.get_event(first).version == 1


def test_facts_get_rising_positions_and_a_conflict_stores_nothing(
        store: tuple[EventsApplication, str]) -> None:
    app, _ = store
    events = [Event.create(owner_id="owner", name=f"E{n}", location="Haifa",
                           starting_time=NOW + timedelta(days=1),
                           end_time=NOW + timedelta(days=2), participants=[])
              for n in range(3)]
    recordings = app.save(*events)
    positions = [r.notification.id for r in recordings]
    assert positions == sorted(positions) and len(set(positions)) == 3
    assert [r.domain_event.originator_id for r in recordings] == [e.id for e in events]
    head = app.recorder.max_notification_id()
    stale = app.repository.get(events[0].id)
    again = app.repository.get(events[0].id)
    stale.change(by="owner", now=NOW, name="One way")
    again.change(by="owner", now=NOW, name="Another way")
    app.save(stale)
    with pytest.raises(IntegrityError):
        app.save(again)
    assert app.recorder.max_notification_id() == (head or 0) + 1
    assert app.repository.get(events[0].id).name == "One way"
