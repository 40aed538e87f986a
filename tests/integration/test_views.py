"""The events view on real SQLite files: fed from a real event store's notification log with
tracking, it survives a SIGKILL at any instant without skipping or repeating a fact, two
followers racing over one state database apply every fact exactly once, a replay rebuilds it
row for row, and no page shape scans the whole view."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alphabet import wiring
from alphabet.settings import Settings
from consumers.mail.outbox import MailQueue
from consumers.remind import RemindersView
from domain.application import EventsApplication
from domain.events import ANSWERS, Event
from domain.presentation import instant
from domain.storage import REBUILD
from projections import single_events
from projections.database import (
    SQLITE,
    AsyncReads,
    Dialect,
    InlineReads,
    Row,
    SqliteDatabase,
    StateDatabase,
)
from projections.events_queries import Filters, busy_query, matched, page_query
from projections.events_view import EventsView
from projections.faults import FactFailed
from projections.feeds import CalendarFeeds, FeedKeys, FeedReader
from projections.follower import (
    Follower,
    Log,
    View,
    catch_up_batch,
    create,
    position,
    set_position,
)
from projections.replay import replay
from tests.conftest import Spawn

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 500
CREATE_CHUNKS = 8  # 4,000 events created, 500 per atomic save
UPDATES = 300
DELETES = 100
CHURNED = 40
# the churn's series (one every sixth event, from the fourth), events beside the CHURNED
CHURNED_SERIES = len(range(3, CHURNED, 6))
# the series' occurrences and exceptions (projections.occurrences), compared row by row
SERIES_TABLES = ("event_series", "event_occurrences")
RESPONDED = 600  # of the first events, the odd ones answered (some then moved, some recast)
LOCATIONS = ("Tel Aviv Port", "Haifa Bay", "Jérusalem Old City", "Café Tél Avív")

# The follower the server runs, built like alphabet.wiring.follower but with small batches so a
# kill lands in the middle of the catch-up.
FOLLOWER_SCRIPT = """
import sys
from pathlib import Path
from alphabet import wiring
from alphabet.settings import Settings
from domain.application import EventsApplication
from projections.follower import Follower, Log

app = EventsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                             "SQLITE_DBNAME": sys.argv[1]})
settings = Settings(data_dir=Path(sys.argv[2]))
db = wiring.state_database(settings)
Follower(db, Log(app.recorder, app.mapper), wiring.views(settings), batch=50).run_once()
app.close()
"""


# ---------------------------------------------------------------------------------------------
# helpers


@dataclass
class Store:
    """An event store file holding a mixed history, and its log's head."""

    path: Path
    head: int

    def application(self) -> EventsApplication:
        return EventsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                                      "SQLITE_DBNAME": str(self.path)})

    def copied(self, directory: Path) -> Store:
        """The same history in a file of its own under `directory`, for a test that saves
        more facts (the store itself is shared by the module's tests)."""
        path = directory / "events.sqlite"
        with sqlite3.connect(self.path) as source, sqlite3.connect(path) as copy:
            source.backup(copy)
        return Store(path, self.head)


def state(data_dir: Path) -> StateDatabase:
    return wiring.state_database(Settings(data_dir=data_dir))


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the view's tables (the FTS table by its content, not its internals)."""
    conn = sqlite3.connect(path)
    try:
        return {
            "events_view": conn.execute("SELECT * FROM events_view ORDER BY seq").fetchall(),
            "event_people": conn.execute(
                "SELECT * FROM event_people ORDER BY person_id, starting_time, event_id"
            ).fetchall(),
            "events_cancelled": conn.execute(
                "SELECT * FROM events_cancelled ORDER BY person_id, cancelled_at, event_id"
            ).fetchall(),
            "events_search": conn.execute(
                "SELECT rowid, name, location FROM events_search ORDER BY rowid"
            ).fetchall(),
            **{table: conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
               for table in SERIES_TABLES},
        }
    finally:
        conn.close()


def tracked(path: Path, view: str = "events") -> int:
    conn = sqlite3.connect(path, timeout=30)
    try:
        row = conn.execute("SELECT position FROM tracking WHERE view = ?", (view,)).fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def search_ids(db: StateDatabase, filters: Filters) -> list[str]:
    """What a page of the view answers, through the product's own query."""
    sql, params = page_query(filters, None, 10_000)
    return [row["id"] for row in db.connection().execute(sql, params)]


def build_up_to(db: StateDatabase, log: Log, last: int) -> None:
    """The view as it must be once exactly the facts up to `last` are applied."""
    view = EventsView()
    with db.write() as conn:
        at = 0
        while facts := [(pos, fact) for pos, fact in log.read(at, 1000) if pos <= last]:
            for pos, fact in facts:
                view.apply(conn, pos, fact)
            at = facts[-1][0]
        set_position(conn, view.name, at)


def race_two_followers(store: Store, db: StateDatabase, view: EventsView, batch: int,
                       timeout: float) -> tuple[list[int], list[BaseException]]:
    """Two threads catching `view` up in one state database at once, each reading the log
    through its own recorder: how many facts each applied, and what either raised."""
    start = threading.Barrier(2)
    applied = [0, 0]
    failures: list[BaseException] = []

    def follow(slot: int) -> None:
        app = store.application()
        log = Log(app.recorder, app.mapper)
        try:
            start.wait()
            while count := catch_up_batch(db, log, view, batch)[0]:
                applied[slot] += count
                time.sleep(0.001)  # out of the lock for a moment, so the other gets a turn
        except BaseException as exc:  # reported by the caller, with the thread's traceback
            failures.append(exc)
        finally:
            app.close()

    threads = [threading.Thread(target=follow, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return applied, failures


# ---------------------------------------------------------------------------------------------
# fixtures


def new_store(tmp_path_factory: pytest.TempPathFactory, name: str, people: int
              ) -> tuple[Path, EventsApplication, str, list[str], datetime]:
    """An empty store with an owner, `people` participant ids and a start two days ahead."""
    path = tmp_path_factory.mktemp(name) / "events.sqlite"
    app = EventsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                                 "SQLITE_DBNAME": str(path)})
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    return path, app, str(uuid.uuid4()), [str(uuid.uuid4()) for _ in range(people)], base


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A few thousand facts: batch creates, participants' answers, then updates (renames, moves
    in time that void the answers, participant changes, relocations) and deletes, each saved
    on its own."""
    path, app, owner, people, base = new_store(tmp_path_factory, "store", 12)
    ids: list[uuid.UUID] = []
    for chunk in range(CREATE_CHUNKS):
        items = [
            {
                "name": f"Meeting {chunk}-{i}",
                # a few events share one start, so the (starting_time, id) order matters
                "starting_time": base + timedelta(minutes=(chunk * CHUNK + i) // 3),
                "end_time": base + timedelta(minutes=(chunk * CHUNK + i) // 3 + 45),
                "location": LOCATIONS[i % len(LOCATIONS)],
                "participants": people[i % 7:i % 7 + i % 4],
            }
            for i in range(CHUNK)
        ]
        ids += [event.id for event in app.create_events(owner_id=owner, items=items).aggregates]
    answered = 0
    for i, event_id in enumerate(ids[1:RESPONDED:2]):
        for person in app.get_event(event_id).participants:
            app.respond(event_id, participant=person, response=ANSWERS[i % 3], by=person)
            answered += 1
    assert answered > RESPONDED // 4
    now = datetime.now(UTC)
    for i, event_id in enumerate(ids[:UPDATES]):
        changes: dict[str, Any] = {"name": f"Renamed {i}"}
        if i % 2:
            changes["participants"] = people[i % 5:i % 5 + 2]
        if i % 3 == 0:
            start = base + timedelta(days=3, minutes=i)
            changes.update(starting_time=start, end_time=start + timedelta(hours=1))
        if i % 5 == 0:
            changes["location"] = LOCATIONS[(i + 1) % len(LOCATIONS)]
        app.update_event(event_id, by=owner, now=now, expected_version=None, changes=changes)
    for event_id in ids[UPDATES:UPDATES + DELETES]:
        app.delete_event(event_id, by=owner, expected_version=None)
    head = Log(app.recorder, app.mapper).head()
    app.close()
    # and the owner's Ownership: opened with the first chunk, then a fact adding each chunk's
    assert head == CREATE_CHUNKS * CHUNK + answered + UPDATES + DELETES + 1 + CREATE_CHUNKS
    yield Store(path, head)


@pytest.fixture(scope="module")
def reference(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The view built by one follower in batches of 1,000 (the server's setting), timed."""
    data_dir = tmp_path_factory.mktemp("reference")
    app = store.application()
    db = state(data_dir)
    views = wiring.views(Settings(data_dir=data_dir))  # every view the server follows
    follower = Follower(db, Log(app.recorder, app.mapper), views, batch=1000)
    started = time.perf_counter()
    applied = follower.run_once()
    elapsed = time.perf_counter() - started
    app.close()
    print(f"\nfollower catch-up, batch=1000: {store.head} facts through {len(views)} views in "
          f"{elapsed:.3f} s = {store.head / elapsed:,.0f} facts/s")
    assert applied == store.head * len(views)
    assert tracked(data_dir / "state.sqlite") == store.head
    answered = db.connection().execute(
        "SELECT COUNT(*) AS n FROM events_view WHERE responses != '{}'").fetchone()["n"]
    assert 0 < answered < RESPONDED // 2  # answers kept, and those of moved events voided
    return data_dir / "state.sqlite"


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Events made one by one, a third of them deleted at once (the newest row, so SQLite gives
    its number to the next event), the oldest deleted now and then, the oldest changed now
    and then, some of them series with an occurrence changed: a replay in small batches meets
    each of these within a batch and across one."""
    path, app, owner, people, base = new_store(tmp_path_factory, "churn", 5)
    alive: list[uuid.UUID] = []
    series: list[uuid.UUID] = []
    for i in range(CHURNED):
        start = base + timedelta(hours=i)
        alive.append(app.create_event(
            owner_id=owner, name=f"Churn {i}", starting_time=start,
            end_time=start + timedelta(hours=1), location=LOCATIONS[i % len(LOCATIONS)],
            participants=people[i % 3:i % 3 + 2],
            recurrence=["RRULE:FREQ=DAILY;COUNT=3"] if i % 6 == 0 else [],
        ).aggregates[0].id)
        if i % 6 == 0:
            app.change_occurrence(alive[-1], start + timedelta(days=1), by=owner,
                                  now=datetime.now(UTC), expected_version=None,
                                  changes={"name": f"Occurrence {i}"})
        if i % 2 == 0:  # answered at once (within a replay's batch) and later (across one)
            for event_id in (alive[-1], alive[0]):
                person = app.get_event(event_id).participants[-1]
                app.respond(event_id, participant=person, response=ANSWERS[i % 3], by=person)
        if i % 3 == 1:
            app.delete_event(alive.pop(), by=owner, expected_version=None)
        if i % 5 == 4:
            app.delete_event(alive.pop(0), by=owner, expected_version=None)
        if i % 4 == 2:
            changes = {"name": f"Renamed {i}", "participants": people[i % 4:],
                       "starting_time": start, "end_time": start + timedelta(hours=2)}
            app.update_event(alive[0], by=owner, now=datetime.now(UTC), expected_version=None,
                             changes=changes)
        if i % 6 == 3:  # a series, one of its occurrences changed and one cancelled at once,
            series.append(churned_series(app, owner, start, i))
        if i % 6 == 5:  # and an earlier one's changed across batches: its rule, then more
            churn_series(app, owner, series[0], i)
    head = Log(app.recorder, app.mapper).head()
    app.close()
    return Store(path, head)


def churned_series(app: EventsApplication, owner: str, start: datetime, i: int) -> uuid.UUID:
    """A daily series (unbounded, or ten days; in Berlin or UTC) with its second occurrence
    changed and its third cancelled."""
    rule = "RRULE:FREQ=DAILY" if i % 12 == 3 else "RRULE:FREQ=DAILY;COUNT=10"
    event_id: uuid.UUID = app.create_event(
        owner_id=owner, name=f"Series {i}", starting_time=start,
        end_time=start + timedelta(hours=1), location=LOCATIONS[i % len(LOCATIONS)],
        participants=[], recurrence=[rule],
        time_zone="Europe/Berlin" if i % 12 == 3 else "UTC").aggregates[0].id
    app.change_occurrence(event_id, start + timedelta(days=1), by=owner, now=datetime.now(UTC),
                          expected_version=None, changes={"name": f"Moved {i}",
                                                          "starting_time": start})
    app.cancel_occurrence(event_id, start + timedelta(days=2), by=owner, expected_version=None)
    return event_id


def churn_series(app: EventsApplication, owner: str, event_id: uuid.UUID, i: int) -> None:
    """A series' rule changed (occurrences' changes that no longer occur are dropped) and
    another occurrence cancelled."""
    event = app.get_event(event_id)
    start = event.starting_time
    app.update_event(event_id, by=owner, now=datetime.now(UTC), expected_version=None,
                     changes={"recurrence": ["RRULE:FREQ=DAILY;INTERVAL=2"] if i % 12 == 5
                              else ["RRULE:FREQ=DAILY;COUNT=20"]})
    app.cancel_occurrence(event_id, start + timedelta(days=4 + 2 * (i // 6)), by=owner,
                          expected_version=None)


def rebuild_alone(db: StateDatabase, store: Store, view: View) -> dict[str, int]:
    """`view` built for a rebuild, followed through the whole of `store` in a state database
    holding none of the view's live tables (any statement naming one fails): how many rows
    each rebuild table holds. The live tracking row must stay unwritten."""
    rebuilt = view.at(REBUILD)
    assert not set(rebuilt.tables) & set(view.tables)
    with db.write() as conn:
        create(conn, rebuilt)
    app = store.application()
    try:
        log = Log(app.recorder, app.mapper)
        while catch_up_batch(db, log, rebuilt, 7)[0]:
            pass
    finally:
        app.close()
    conn = db.connection()
    assert position(conn, view.name) == 0
    assert position(conn, REBUILD(view.name)) == store.head
    return {table: conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]
            for table in rebuilt.tables}


VIEWS = {"events": lambda: EventsView(), "mail": MailQueue,
         "reminders": lambda: RemindersView(60)}


@pytest.mark.parametrize("name", VIEWS)
def test_a_view_built_for_a_rebuild_writes_only_its_rebuild_tables(
    churn: Store, tmp_path: Path, name: str
) -> None:
    db = SqliteDatabase(tmp_path / "state.sqlite")
    db.create_schema()  # the state database's own tables, none of a view's
    try:
        counts = rebuild_alone(db, churn, VIEWS[name]())
        assert counts and all(counts.values()), counts
        live = {row["name"] for row in db.connection().execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert not live & set(VIEWS[name]().tables)
    finally:
        db.close()


# ---------------------------------------------------------------------------------------------
# tracking: crash, restart, concurrency


def test_a_follower_killed_mid_catch_up_resumes_without_skipping_or_repeating_a_fact(
    store: Store, tmp_path: Path, spawn: Spawn
) -> None:
    state(tmp_path / "a")  # the schema exists before the follower starts, so it can be polled
    state_a = tmp_path / "a" / "state.sqlite"
    command = [sys.executable, "-c", FOLLOWER_SCRIPT, str(store.path), str(tmp_path / "a")]

    follower = spawn(command, cwd=ROOT, stderr=subprocess.PIPE)
    killed_at = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and follower.poll() is None:
            at = tracked(state_a)
            if store.head // 3 <= at < store.head:  # well into the catch-up, not done
                os.kill(follower.pid, signal.SIGKILL)
                killed_at = at
                break
            time.sleep(0.002)
    finally:
        if follower.poll() is None and not killed_at:
            follower.kill()
        follower.wait()
    assert killed_at, (f"the follower was never caught mid-way (exit {follower.returncode}): "
                       f"{follower.stderr.read().decode() if follower.stderr else ''}")
    assert follower.returncode == -signal.SIGKILL

    # What survived the kill is exactly the facts up to the tracked position: each batch and
    # its position were committed together.
    survived = tracked(state_a)
    assert killed_at <= survived < store.head
    app = store.application()
    log = Log(app.recorder, app.mapper)
    expected_then = state(tmp_path / "then")
    build_up_to(expected_then, log, survived)
    assert snapshot(state_a) == snapshot(tmp_path / "then" / "state.sqlite")

    # Restarted, it finishes the job.
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=120)
    assert finished.returncode == 0, finished.stderr.decode()
    assert tracked(state_a) == store.head

    # A fresh replay from position 0 gives the same view, row for row.
    db_b = state(tmp_path / "b")
    assert replay(db_b, log, EventsView()) == store.head
    app.close()
    restarted, rebuilt = snapshot(state_a), snapshot(tmp_path / "b" / "state.sqlite")
    assert len(restarted["events_view"]) == CREATE_CHUNKS * CHUNK - DELETES
    assert restarted == rebuilt
    assert tracked(tmp_path / "b" / "state.sqlite") == store.head

    # The full-text index of the restarted view is intact and answers like the rebuilt one.
    conn = sqlite3.connect(state_a)
    conn.execute("INSERT INTO events_search(events_search) VALUES ('integrity-check')")
    conn.close()
    db_a = SqliteDatabase(state_a)
    for words in ("tel aviv", "TEL-AVIV", "jerusalem", "cafe"):
        found = search_ids(db_a, Filters(location=words))
        assert found and found == search_ids(db_b, Filters(location=words))


def test_two_threads_catching_up_one_state_database_apply_every_fact_exactly_once(
    store: Store, reference: Path, tmp_path: Path
) -> None:
    db = state(tmp_path)
    applied, failures = race_two_followers(store, db, EventsView(), batch=20, timeout=120)
    assert not failures, failures
    assert all(applied), f"one thread never got a batch: {applied}"
    assert sum(applied) == store.head
    assert position(db.connection(), "events") == store.head
    assert snapshot(tmp_path / "state.sqlite") == snapshot(reference)


def test_replaying_a_caught_up_view_beside_the_live_one_changes_no_row(
    store: Store, reference: Path, tmp_path: Path
) -> None:
    db = state(tmp_path)
    app = store.application()
    log = Log(app.recorder, app.mapper)
    Follower(db, log, [EventsView()], batch=1000).run_once()
    before = snapshot(tmp_path / "state.sqlite")
    assert replay(db, log, EventsView(), batch=333) == store.head
    app.close()
    after = snapshot(tmp_path / "state.sqlite")
    assert after == before == snapshot(reference)
    assert position(db.connection(), "events") == store.head
    leftovers = db.connection().execute(
        "SELECT name FROM sqlite_master WHERE name LIKE '%rebuild%'"
    ).fetchall()
    assert leftovers == []


def test_a_followers_views_share_each_read_of_new_facts_and_build_what_they_build_alone(
    store: Store, tmp_path: Path
) -> None:
    """Views behind together catch up in one transaction on one read of the new facts; the
    same views followed one by one (each its own follower) read them once each and build the
    same rows."""
    app = store.copied(tmp_path).application()
    reads: list[int] = []
    select = app.recorder.select_notifications

    def counted(*args: Any, **kwargs: Any) -> Any:
        found = select(*args, **kwargs)
        reads.append(len(found))
        return found

    app.recorder.select_notifications = counted  # type: ignore[method-assign]
    views = [EventsView(), MailQueue(), RemindersView(30)]
    together = Follower(state(tmp_path / "together"), Log(app.recorder, app.mapper), views,
                        batch=1000)
    alone_db = state(tmp_path / "alone")
    alone = [Follower(alone_db, Log(app.recorder, app.mapper), [view], batch=1000)
             for view in views]
    together.run_once()
    for follower in alone:
        follower.run_once()
    (_, first), = [item for item in Log(app.recorder, app.mapper).read(0, 10)
                   if isinstance(item[1], Event.Created)][:1]
    now = datetime.now(UTC)
    app.update_event(first.originator_id, by=first.owner_id, now=now, expected_version=None,
                     changes={"location": "Acre"})
    app.create_event(owner_id=first.owner_id, name="Late", starting_time=now + timedelta(days=9),
                     end_time=now + timedelta(days=10), location="Haifa Bay",
                     participants=[first.owner_id])

    reads.clear()
    assert together.run_once() == 3 * 3
    assert reads == [3]  # the update, the creation and its owner's Ownership, read once
    reads.clear()
    for follower in alone:
        follower.run_once()
    assert reads == [3, 3, 3]  # each view reads them for itself
    app.close()
    assert snapshot(tmp_path / "together" / "state.sqlite") == snapshot(
        tmp_path / "alone" / "state.sqlite")
    for db in (together.db, alone_db):
        assert {position(db.connection(), view.name) for view in views} == {store.head + 3}


class Refusing(RemindersView):
    """The reminders view, unable to apply one fact."""

    def __init__(self, refused: int) -> None:
        super().__init__(30)
        self.refused = refused

    def apply(self, conn: Any, position: int, fact: Any) -> None:
        if position == self.refused:
            raise ValueError("this view cannot apply this fact")
        super().apply(conn, position, fact)


def test_views_caught_up_together_go_on_alone_past_one_that_cannot_apply_a_fact(
    store: Store, tmp_path: Path
) -> None:
    """A batch of views together is one transaction: one view's failure rolls all of them
    back, and then each goes on alone, so only the failing view is held back."""
    app = store.copied(tmp_path).application()
    refused = store.head - 10
    views = [EventsView(), MailQueue(), Refusing(refused)]
    follower = Follower(state(tmp_path), Log(app.recorder, app.mapper, keep_last=True), views,
                        batch=1000)
    with pytest.raises(FactFailed) as failed:
        follower.run_once()
    assert failed.value.position == refused
    conn = follower.db.connection()
    assert position(conn, "events") == position(conn, "mail") == store.head
    # the refusing view stands where its last whole batch before the refused fact ended
    assert position(conn, "reminders") == (refused - 1) // 1000 * 1000
    app.close()


@pytest.mark.parametrize("batch", [1, 2, 3, 5, 1000])
def test_a_replay_in_any_batches_numbers_and_fills_the_rows_as_the_follower_did(
    churn: Store, tmp_path: Path, batch: int
) -> None:
    app = churn.application()
    log = Log(app.recorder, app.mapper)
    Follower(state(tmp_path / "followed"), log, [EventsView()], batch=1).run_once()
    assert replay(state(tmp_path / "replayed"), log, EventsView(), batch=batch) == churn.head
    app.close()
    followed = snapshot(tmp_path / "followed" / "state.sqlite")
    assert snapshot(tmp_path / "replayed" / "state.sqlite") == followed
    # numbers were given again: fewer than one per event made
    assert max(row[0] for row in followed["events_view"]) < CHURNED + CHURNED_SERIES
    # deletions left their cancellations (created and deleted in one batch, or in two)
    assert followed["events_cancelled"]


def test_facts_saved_while_a_replay_runs_are_in_the_view_it_swaps_in(
    store: Store, tmp_path: Path
) -> None:
    app = store.copied(tmp_path).application()
    log = Log(app.recorder, app.mapper)
    # The history's first two events (each creation also records its owner's Ownership facts).
    first, second = [fact for _, fact in log.read(0, 10) if isinstance(fact, Event.Created)][:2]
    owner, now = first.owner_id, datetime.now(UTC)

    def save_during_the_replay(done: int, total: int) -> None:
        if done == CHUNK:
            app.create_event(owner_id=owner, name="Late", starting_time=now + timedelta(days=9),
                             end_time=now + timedelta(days=10), location="Haifa Bay",
                             participants=[owner])
            app.update_event(first.originator_id, by=owner, now=now, expected_version=None,
                             changes={"location": "Acre", "participants": []})
            app.delete_event(second.originator_id, by=owner, expected_version=None)

    rebuilt = state(tmp_path / "rebuilt")
    # the late event's Created and its owner's Ownership fact, the update, the delete
    assert replay(rebuilt, log, EventsView(), batch=CHUNK,
                  progress=save_during_the_replay) == store.head + 4
    Follower(state(tmp_path / "followed"), log, [EventsView()]).run_once()
    app.close()
    assert snapshot(tmp_path / "rebuilt" / "state.sqlite") == snapshot(
        tmp_path / "followed" / "state.sqlite")
    assert position(rebuilt.connection(), "events") == store.head + 4


# ---------------------------------------------------------------------------------------------
# query plans

T1, T2 = "2026-01-01T00:00:00.000000Z", "2030-01-01T00:00:00.000000Z"
AFTER = ("2027-06-01T00:00:00.000000Z", "7d1c6a4e-0000-4000-8000-000000000000")
PERSON = "11111111-1111-4111-8111-111111111111"
SHAPES: dict[str, tuple[Filters, tuple[str, str] | None]] = {
    "no filter": (Filters(), None),
    "cursor": (Filters(), AFTER),
    "location": (Filters(location="Tel Aviv"), None),
    "location with cursor": (Filters(location="Tel Aviv"), AFTER),
    "q": (Filters(q="standup"), None),
    "location and q": (Filters(location="haifa", q="standup"), None),
    "participant": (Filters(participant_id=PERSON), None),
    "participant with cursor": (Filters(participant_id=PERSON), AFTER),
    "participant and location": (Filters(participant_id=PERSON, location="tel aviv"), None),
    "participant, q and times": (
        Filters(participant_id=PERSON, q="standup", starts_after=T1, starts_before=T2), None),
    "starts_after": (Filters(starts_after=T1), None),
    "starts_before": (Filters(starts_before=T2), None),
    "starts_after and starts_before": (Filters(starts_after=T1, starts_before=T2), None),
    "times with cursor": (Filters(starts_after=T1, starts_before=T2), AFTER),
    "location and times": (Filters(location="haifa", starts_after=T1, starts_before=T2), None),
    "participant and times": (
        Filters(participant_id=PERSON, starts_after=T1, starts_before=T2), None),
}
# A table read from end to end, no index. Not `k`: a search page's matching keys, sorted and
# cut to the page before the page's rows are read.
FULL_SCAN = re.compile(r"^SCAN (?!k$)(\w+)$")


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> StateDatabase:
    return state(tmp_path_factory.mktemp("plans"))


@pytest.mark.parametrize("shape", SHAPES)
def test_no_page_shape_scans_the_whole_view(planned: StateDatabase, shape: str) -> None:
    filters, after = SHAPES[shape]
    sql, params = page_query(filters, after, 101)
    plan = [row["detail"] for row in
            planned.connection().execute("EXPLAIN QUERY PLAN " + sql, params)]
    assert plan
    for line in plan:
        assert not FULL_SCAN.match(line), f"{shape}: full scan in {plan}"
        if "VIRTUAL TABLE" in line:
            # the full-text table is only ever entered through a MATCH constraint
            assert re.search(r"VIRTUAL TABLE INDEX \d+:\S*M", line), f"{shape}: {plan}"
    if not (filters.location or filters.q):
        # read in index order, so LIMIT stops the read: no sort of every row
        assert not any("TEMP B-TREE" in line for line in plan), f"{shape}: {plan}"


# single_events=true (projections.single_events): a page's shapes with the flag
SINGLE_SHAPES = {name: (replace(filters, single_events=True), after)
                 for name, (filters, after) in SHAPES.items()}


def single_events_plans(filters: Filters, after: tuple[str, str] | None,
                        explain: Callable[[str, list[Any]], list[str]],
                        dialect: Dialect = SQLITE) -> tuple[list[str], list[str]]:
    """The plans of a single_events page's two statements: its rows, and the series
    pending before its end (a page's end in a year or so from now)."""
    match = matched(filters, dialect)
    return (explain(*single_events.page_query(filters, match, after, 101, dialect)),
            explain(*single_events.pending_query(filters, match, AFTER[0], dialect)))


@pytest.mark.parametrize("shape", SINGLE_SHAPES)
def test_single_events_pages_read_occurrences_and_series_through_their_indexes(
        planned: StateDatabase, shape: str) -> None:
    filters, after = SINGLE_SHAPES[shape]
    page, pending = single_events_plans(filters, after, lambda sql, params: [
        row["detail"] for row in planned.connection().execute("EXPLAIN QUERY PLAN " + sql,
                                                               params)])
    # (a and b are the two parts' rows, at most a page each, merged)
    for line in page + pending:
        assert not FULL_SCAN.match(line) or line in ("SCAN a", "SCAN b"), f"{shape}: {page}"
    assert any(re.match(r"(SCAN|SEARCH) o USING INDEX event_occurrences_(start|series)", line)
               for line in page), page
    if not filters.participant_id:
        # only the series whose occurrences are not all rows yet, by their index
        assert pending[0].startswith("SEARCH s USING INDEX event_series_pending (pending<?)"), \
            pending


def test_a_feed_reads_its_owners_events_through_indexes_alone(planned: StateDatabase) -> None:
    """The secret's account by its digest's unique index, then the owner's events, those
    taken part in and the recent cancellations each through their own index: no scan."""
    reader = FeedReader(InlineReads(Path(), Path()), SQLITE)
    plans = {sql: [row["detail"] for row in planned.connection().execute(
                 "EXPLAIN QUERY PLAN " + sql, params)]
             for sql, params in ((reader.owner_sql.replace("{keys}", "?"), ("0" * 64,)),
                                 (reader.keys_sql, (PERSON, PERSON, PERSON, T1)),
                                 (reader.rows_sql, (PERSON, PERSON)))}
    for plan in plans.values():
        assert plan and not any(FULL_SCAN.match(line) for line in plan), plan
    owner, keys, rows = plans.values()
    assert any("calendar_feeds USING" in line for line in owner), owner
    for plan in (keys, rows):
        for index in ("events_view_owner", "SEARCH p USING PRIMARY KEY (person_id=?)"):
            assert any(index in line for line in plan), (index, plan)
    assert "SEARCH c USING PRIMARY KEY (person_id=? AND cancelled_at>?)" in keys, keys


class CountedReads:
    """Reads that count the statements they are asked for (a lookup is one)."""

    def __init__(self, reads: AsyncReads) -> None:
        self.reads = reads
        self.statements = 0

    async def open(self) -> None:
        await self.reads.open()

    async def close(self) -> None:
        await self.reads.close()

    async def fetchall(self, sql: str, parameters: Sequence[Any]) -> list[Row]:
        self.statements += 1
        return await self.reads.fetchall(sql, parameters)

    async def lookup(self, sql: str, column: str, key: str) -> Row | None:
        self.statements += 1
        return await self.reads.lookup(sql, column, key)

    async def shared(self, sql: str) -> list[Row]:
        self.statements += 1
        return await self.reads.shared(sql)


def polls_read_keys_while_the_view_moves(tmp_path_factory: pytest.TempPathFactory,
                                         db: StateDatabase,
                                         reads_for: Callable[[Path], AsyncReads]) -> None:
    """A feed polled again and again, its events changed and deleted between polls: each
    poll looks the secret up, and reads the feed's keys only when the events view has applied
    a fact since this reader last read them, or one of its cancellations has aged out of the
    feed; the keys are always as a first read would find them."""
    path, app, owner, people, base = new_store(tmp_path_factory, "feed-polls", 2)
    reads = reads_for(path)
    person = people[0]
    ids = [event.id for event in app.create_events(owner_id=owner, items=[{
        "name": f"Polled {i}", "starting_time": base + timedelta(hours=i),
        "end_time": base + timedelta(hours=i, minutes=30), "location": LOCATIONS[0],
        "participants": [person]} for i in range(3)]).aggregates]
    app.create_event(owner_id=owner, name="Not theirs", starting_time=base,
                     end_time=base + timedelta(hours=1), location=LOCATIONS[1],
                     participants=[people[1]])
    follower = Follower(db, Log(app.recorder, app.mapper), [EventsView(db.dialect)])
    follower.run_once()
    with db.write() as conn:
        conn.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (person, "polled", "polled", "p@example.com", "p@example.com", "-", T1, T1))
    secret = CalendarFeeds(db).issue(person)
    counted = CountedReads(reads)
    reader = FeedReader(counted, db.dialect)
    long_ago = "2000-01-01T00:00:00.000000Z"

    async def poll(since: str = long_ago) -> tuple[FeedKeys, int]:
        before = counted.statements
        keys = await reader.keys(secret, since)
        assert keys is not None and keys == await FeedReader(reads, db.dialect).keys(secret,
                                                                                     since)
        return keys, counted.statements - before

    async def polls() -> None:
        await counted.open()
        try:
            assert await reader.keys("made up", long_ago) is None
            first, statements = await poll()
            assert statements == 2 and not first.cancelled
            assert await poll() == (first, 1)  # the view has not moved: the keys kept
            app.update_event(ids[0], by=owner, now=datetime.now(UTC), expected_version=None,
                             changes={"name": "Renamed"})
            follower.run_once()
            renamed, statements = await poll()
            assert statements == 2 and renamed.tag != first.tag
            app.delete_event(ids[1], by=owner, expected_version=None)
            follower.run_once()
            deleted, statements = await poll()
            assert statements == 2 and [event_id for event_id, _, _ in deleted.cancelled] == [
                str(ids[1])]
            assert await poll() == (deleted, 1)
            # the cancellation ages out: the keys are read again, without it
            since = instant(datetime.fromisoformat(deleted.cancelled[0][2]) + timedelta(seconds=1))
            aged, statements = await poll(since)
            assert statements == 2 and not aged.cancelled and aged.tag != deleted.tag
        finally:
            await counted.close()

    try:
        asyncio.run(polls())
    finally:
        app.close()


def test_a_feed_polled_again_reads_its_keys_only_once_the_view_has_moved(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("feed-polls-state")
    db = state(data_dir)
    try:
        polls_read_keys_while_the_view_moves(
            tmp_path_factory, db,
            lambda store: InlineReads(Settings(data_dir=data_dir).state_path, store))
    finally:
        db.close()


def test_free_busy_reads_each_persons_events_through_the_owner_and_end_index(
    planned: StateDatabase,
) -> None:
    sql, params = busy_query([PERSON, "22222222-2222-4222-8222-222222222222"], T1, T2)
    plan = [row["detail"] for row in
            planned.connection().execute("EXPLAIN QUERY PLAN " + sql, params)]
    assert plan
    assert not any(FULL_SCAN.match(line) for line in plan), plan
    assert any("events_view_owner_end" in line and "end_time>?" in line for line in plan), plan
    assert any("events_view_series" in line and "starting_time<?" in line for line in plan), plan
    assert any(re.search(r"SEARCH p USING PRIMARY KEY \(person_id=\? AND starting_time<\?\)",
                         line) for line in plan), plan
