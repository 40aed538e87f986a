"""The views on PostgreSQL, fed from the same event store's log as tests.integration.test_views:
the same facts give the same rows as on SQLite, search matches exactly the words SQLite's FTS5
matches, no page shape reads the whole view, two followers racing apply every fact once, a
replay rebuilds the view row for row, and a follower killed while holding its lease is taken
over by another process with nothing lost or applied twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alphabet import wiring
from alphabet.settings import Postgres, Settings
from domain.storage import LIVE, Connection, Place
from projections.database import StateDatabase
from projections.events_queries import Filters, busy_query, page_query
from projections.events_view import EventsView
from projections.feeds import FeedReader
from projections.follower import Fact, Follower, Log, position
from projections.postgres.dialect import POSTGRES, placeholders
from projections.postgres.reads import PostgresReads
from projections.postgres.state import PostgresDatabase
from projections.replay import replay
from tests.conftest import ROOT, Backend, Spawn, fresh
from tests.integration.test_views import (
    CHURNED,
    CHURNED_SERIES,
    LOCATIONS,
    PERSON,
    SERIES_TABLES,
    SHAPES,
    SINGLE_SHAPES,
    T1,
    T2,
    VIEWS,
    Store,
    churn,
    new_store,
    polls_read_keys_while_the_view_moves,
    race_two_followers,
    rebuild_alone,
    reference,
    single_events_plans,
    store,
)

__all__ = ["churn", "reference", "store"]  # fixtures shared with the SQLite tests
pytestmark = pytest.mark.postgres

# The view's columns both backends have (PostgreSQL adds `search`, SQLite has its FTS table).
VIEW_COLUMNS = ("seq, id, owner_id, name, location, starting_time, end_time, participants, "
                "version, position, created_at, updated_at, responses")

# A follower process as `alphabet serve` runs it on PostgreSQL (leases, small batches so a
# kill lands mid-way), following the events view with a ledger of every fact it applies.
FOLLOWER_SCRIPT = """
import logging, sys
from pathlib import Path
from alphabet import wiring
from alphabet.settings import Postgres, Settings
from domain.application import EventsApplication
from projections.follower import Follower, Log
from projections.postgres.leases import AdvisoryLeases
from tests.integration.test_views_postgres import Ledgered

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
app = EventsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                             "SQLITE_DBNAME": sys.argv[1]})
settings = Settings(data_dir=Path(sys.argv[3]), postgres=Postgres.from_url(sys.argv[2]))
view = Ledgered()
db = wiring.state_database(settings)
db.create_schema(view.schema())
leases = AdvisoryLeases(settings.postgres.conninfo, "public", retry=0.1)
Follower(db, Log(app.recorder, app.mapper), [view], batch=20, poll_seconds=0.1,
         leases=leases).run()
"""


class Ledgered(EventsView):
    """The events view, also keeping one row per fact applied and who applied it, with no
    unique key: a fact applied twice would show as two rows."""

    def __init__(self, place: Place = LIVE) -> None:
        super().__init__(POSTGRES, place)
        self.ledger = place("ledger")
        self.tables = (*self.tables, self.ledger)

    def at(self, place: Place) -> Ledgered:
        return Ledgered(place)

    def schema(self) -> list[str]:
        return [*super().schema(), f"CREATE TABLE IF NOT EXISTS {self.ledger} "
                "(position BIGINT NOT NULL, pid INTEGER NOT NULL)"]

    def apply(self, conn: Connection, position: int, fact: Fact) -> None:
        super().apply(conn, position, fact)
        conn.execute(f"INSERT INTO {self.ledger} VALUES (?, ?)", (position, os.getpid()))


def settings_for(backend: Backend, data_dir: Path) -> Settings:
    assert backend.url is not None
    return Settings(data_dir=data_dir, postgres=Postgres.from_url(backend.url))


@contextmanager
def analysed_view(app: Any, data_dir: Path) -> Iterator[Backend]:
    """A fresh PostgreSQL database holding the events view of `app`'s store (closed here),
    analysed, so plans are the ones real statistics give."""
    with fresh("postgres") as made:
        db = wiring.state_database(settings_for(made, data_dir))
        Follower(db, Log(app.recorder, app.mapper), [EventsView(POSTGRES)], batch=1000).run_once()
        app.close()
        with psycopg.connect(made.url or "", autocommit=True) as conn:
            conn.execute("ANALYZE")
        try:
            yield made
        finally:
            db.close()


def rows(backend: Backend, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return backend.rows(Path(), sql, params)


def view_rows(read: Any, columns: str = VIEW_COLUMNS) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "events_view": read(f"SELECT {columns} FROM events_view ORDER BY seq"),
        "event_people": read(
            "SELECT * FROM event_people ORDER BY person_id, starting_time, event_id"),
        "events_cancelled": read(
            "SELECT * FROM events_cancelled ORDER BY person_id, cancelled_at, event_id"),
        **{table: read(f"SELECT * FROM {table} ORDER BY id") for table in SERIES_TABLES},
    }


def sqlite_rows(path: Path, columns: str = VIEW_COLUMNS) -> dict[str, list[tuple[Any, ...]]]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return view_rows(lambda sql: conn.execute(sql).fetchall(), columns)
    finally:
        conn.close()


def search_ids(db: StateDatabase, filters: Filters) -> list[str]:
    sql, params = page_query(filters, None, 10_000, db.dialect)
    return [row["id"] for row in db.connection().execute(sql, params)]


@pytest.fixture(scope="module")
def database() -> Iterator[Backend]:
    with fresh("postgres") as made:
        yield made


@pytest.fixture(scope="module")
def built(store: Store, database: Backend,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[StateDatabase]:
    """The events view on PostgreSQL, built by the server's follower from the whole log."""
    db = wiring.state_database(settings_for(database, tmp_path_factory.mktemp("pg")))
    app = store.application()
    started = time.perf_counter()
    Follower(db, Log(app.recorder, app.mapper), [EventsView(POSTGRES)], batch=1000).run_once()
    elapsed = time.perf_counter() - started
    app.close()
    print(f"\nPostgreSQL follower catch-up, batch=1000: {store.head} facts in {elapsed:.3f} s = "
          f"{store.head / elapsed:,.0f} facts/s")
    with psycopg.connect(database.url or "", autocommit=True) as conn:
        conn.execute("ANALYZE")
    yield db
    db.close()


# ---------------------------------------------------------------------------------------------
# the same view, the same search


def test_the_same_facts_give_the_same_rows_on_both_backends(
    built: StateDatabase, database: Backend, reference: Path
) -> None:
    assert position(built.connection(), "events") > 0
    on_postgres = view_rows(lambda sql: rows(database, sql))
    assert on_postgres == sqlite_rows(reference)
    assert len(on_postgres["events_view"]) > 3000


@pytest.mark.parametrize("filters", [
    Filters(location="tel aviv"), Filters(location="Tel-Aviv"), Filters(location="TEL AVIV"),
    Filters(location="Tél Avív"), Filters(location="jerusalem"), Filters(location="CAFE"),
    Filters(location="old city"), Filters(location="aviv port"), Filters(q="renamed 12"),
    Filters(q="MEETING", location="haifa"), Filters(location="nowhere at all"),
], ids=repr)
def test_search_finds_exactly_what_sqlite_finds(
    built: StateDatabase, reference: Path, filters: Filters
) -> None:
    from projections.database import SqliteDatabase

    sqlite = SqliteDatabase(reference)
    try:
        assert search_ids(built, filters) == search_ids(sqlite, filters)
    finally:
        sqlite.close()


def test_tel_aviv_port_is_found_whatever_the_case_accents_or_punctuation(
    built: StateDatabase,
) -> None:
    found = [set(search_ids(built, Filters(location=words)))
             for words in ("tel aviv", "Tel-Aviv", "TEL AVIV", "Tél Avív", "tel, aviv!")]
    assert found[0] and all(ids == found[0] for ids in found)
    names = {row["location"] for row in built.connection().execute(
        "SELECT DISTINCT location FROM events_view WHERE id = ANY(?)", (list(found[0]),))}
    assert names == {"Tel Aviv Port", "Café Tél Avív"}


@pytest.mark.parametrize("name", VIEWS)
def test_a_view_built_for_a_rebuild_writes_only_its_rebuild_tables(
    churn: Store, database: Backend, name: str
) -> None:
    """As on SQLite, in a schema of its own holding none of the view's live tables."""
    assert database.url is not None
    schema = f"rebuild_{name}"
    db = PostgresDatabase(Postgres.from_url(f"{database.url}?schema={schema}").conninfo, schema)
    db.create_schema()  # the state database's own tables, none of a view's
    view = EventsView(POSTGRES) if name == "events" else VIEWS[name]()
    try:
        counts = rebuild_alone(db, churn, view)
        assert counts and all(counts.values()), counts
        live = {row["tablename"] for row in db.connection().execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = ?", (schema,))}
        assert set(counts) <= live
        assert not live & set(view.tables)
    finally:
        db.close()
        with psycopg.connect(database.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")  # the replay test looks for leftovers


# ---------------------------------------------------------------------------------------------
# query plans


@pytest.mark.parametrize("shape", SHAPES)
def test_no_page_shape_reads_the_whole_view(built: StateDatabase, database: Backend,
                                            shape: str, capsys: pytest.CaptureFixture[str]) -> None:
    filters, after = SHAPES[shape]
    sql, params = page_query(filters, after, 101, POSTGRES)
    plan = [line for (line,) in rows(database, "EXPLAIN " + placeholders(sql), params)]
    with capsys.disabled():
        print(f"\n{shape}:\n  " + "\n  ".join(plan))
    # (the counts read beside the rows come from `tracking`, a row per view, and `counters`,
    # a row per counter: each scanned whole)
    assert not [line for line in plan if "Seq Scan" in line
                and "tracking" not in line and "counters" not in line], plan
    if filters.location or filters.q:
        # words are matched in the index, or filtered on rows an index hands over in page order
        assert any("events_view_search" in line or "Filter: (search @@" in line
                   for line in plan), plan
    if not (filters.location or filters.q) and not filters.participant_id:
        assert not any("Sort" in line for line in plan), plan


SERIES = 1000


@pytest.fixture(scope="module")
def with_series(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The events view on PostgreSQL holding weekly series, a third of them unbounded (their
    occurrences past the horizon pending), beside three times as many single events,
    analysed, so the planner weighs real tables."""
    _, app, owner, people, base = new_store(tmp_path_factory, "series", 3)
    for chunk in range(0, 4 * SERIES, 250):
        app.create_events(owner_id=owner, items=[{
            "name": f"Event {i}", "starting_time": base + timedelta(minutes=i),
            "end_time": base + timedelta(minutes=i + 30), "location": LOCATIONS[i % 4],
            "participants": people[i % 3:], "time_zone": "UTC",
            "recurrence": ["RRULE:FREQ=WEEKLY" + ("" if i % 12 == 0 else ";COUNT=20")]
            if i % 4 == 0 else []} for i in range(chunk, chunk + 250)])
    with analysed_view(app, tmp_path_factory.mktemp("pg-series")) as made:
        yield made


@pytest.mark.parametrize("shape", SINGLE_SHAPES)
def test_single_events_pages_read_occurrences_and_series_through_their_indexes(
        with_series: Backend, shape: str, capsys: pytest.CaptureFixture[str]) -> None:
    filters, after = SINGLE_SHAPES[shape]
    page, pending = single_events_plans(filters, after, lambda sql, params: [
        line for (line,) in rows(with_series, "EXPLAIN " + placeholders(sql), params)],
        POSTGRES)
    with capsys.disabled():
        print(f"\nsingle_events, {shape}:\n  " + "\n  ".join(page + pending))
    # neither the occurrences nor the series are ever read whole (the view's rows may be,
    # where words match a quarter of this small table)
    assert not [line for line in page + pending if "Seq Scan on event_" in line], page + pending
    assert any("event_occurrences_start" in line or "event_occurrences_series" in line
               for line in page), page
    if not filters.participant_id:
        assert any("event_series_pending" in line for line in pending), pending


def test_rare_words_are_looked_up_in_the_gin_index(built: StateDatabase,
                                                   database: Backend) -> None:
    sql, params = page_query(Filters(q="renamed 123"), None, 101, POSTGRES)
    plan = "\n".join(line for (line,) in rows(database, "EXPLAIN " + placeholders(sql), params))
    assert "Bitmap Index Scan on events_view_search" in plan, plan


def test_free_busy_reads_each_persons_events_through_an_index(
    built: StateDatabase, database: Backend,
) -> None:
    sql, params = busy_query([PERSON, "22222222-2222-4222-8222-222222222222"], T1, T2,
                             POSTGRES)
    plan = "\n".join(line for (line,) in rows(database, "EXPLAIN " + placeholders(sql), params))
    # owners: (owner_id) or (owner_id, end_time, starting_time), as the statistics choose,
    # and their series by the partial index; participants: event_people's key. (event_series,
    # a row per series and only a few here, may be read whole beside each row found: its key
    # serves once it is larger.)
    assert not [line for line in plan.splitlines()
                if "Seq Scan" in line and "event_series" not in line], plan
    assert "Index Cond: (owner_id = ANY" in plan, plan
    assert "event_people_pkey" in plan, plan


def test_a_feed_reads_its_owners_events_through_indexes_alone(
    built: StateDatabase, database: Backend,
) -> None:
    reader = FeedReader(PostgresReads(""), POSTGRES)
    statements = ((reader.owner_sql.replace("{keys}", "?"), ("0" * 64,)),
                  (reader.keys_sql, (PERSON, PERSON, PERSON, T1)),
                  (reader.rows_sql, (PERSON, PERSON)))
    owner, keys, rows_plan = ["\n".join(line for (line,) in rows(
        database, "EXPLAIN " + placeholders(sql), params)) for sql, params in statements]
    for plan in (keys, rows_plan):
        assert "Seq Scan" not in plan, plan
        assert "events_view_owner" in plan and "event_people_pkey" in plan, plan
    assert "events_cancelled_pkey" in keys, keys
    # an empty table may be read whole; a used one is searched by the digest's index
    assert "calendar_feeds_secret_hash_key" in owner or "Seq Scan on calendar_feeds" in owner



def test_a_feed_polled_again_reads_its_keys_only_once_the_view_has_moved(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with fresh("postgres") as made:
        settings = settings_for(made, tmp_path_factory.mktemp("pg-feed-polls"))
        db = wiring.state_database(settings)
        try:
            polls_read_keys_while_the_view_moves(
                tmp_path_factory, db, lambda _: PostgresReads(settings.postgres.conninfo))
        finally:
            db.close()

FEED_PEOPLE = 40  # each takes part in one event in 20, as a user of bench/'s load does


@pytest.fixture(scope="module")
def many_feeds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backend, str]]:
    """The events view on PostgreSQL holding 3,000 events of one owner, each with two of
    FEED_PEOPLE participants, analysed; and one participant, whose feed is ~150 events of the
    view's 3,000."""
    _, app, owner, people, base = new_store(tmp_path_factory, "feeds", FEED_PEOPLE)
    for chunk in range(0, 3000, 500):
        app.create_events(owner_id=owner, items=[{
            "name": f"Event {i}", "starting_time": base + timedelta(minutes=i),
            "end_time": base + timedelta(minutes=i + 30), "location": LOCATIONS[i % 4],
            "participants": [people[i % FEED_PEOPLE], people[(i // FEED_PEOPLE) % FEED_PEOPLE]],
        } for i in range(chunk, chunk + 500)])
    with analysed_view(app, tmp_path_factory.mktemp("pg-feeds")) as made:
        yield made, people[0]


def test_a_feed_looks_its_events_up_one_by_one_however_large_the_view(
        many_feeds: tuple[Backend, str]) -> None:
    """A participant's feed of ~150 events among 3,000: each looked up by the view's id index.
    Joined to event_people, PostgreSQL hashed the whole view for them (a seq scan per poll,
    its cost in proportion to the view: ~3 ms of the server's CPU at bench/'s 7,000 rows)."""
    database, person = many_feeds
    [(feed,)] = rows(database, "SELECT count(*) FROM event_people WHERE person_id = ?",
                     (person,))
    assert 140 < feed < 160
    reader = FeedReader(PostgresReads(""), POSTGRES)
    for sql, params in ((reader.keys_sql, (person, person, person, T1)),
                        (reader.rows_sql, (person, person))):
        plan = "\n".join(line for (line,) in rows(
            database, "EXPLAIN " + placeholders(sql), params))
        assert "Seq Scan on events_view" not in plan and "Hash Join" not in plan, plan
        assert "Index Cond: (id = ANY" in plan and "event_people_pkey" in plan, plan


def test_lookups_of_any_number_of_keys_are_one_prepared_statement(
        built: StateDatabase, database: Backend) -> None:
    """Lookups gathered per turn of the event loop (GET one event's, a feed's secret) go out
    as one statement whatever the number of keys: psycopg prepares it once a connection,
    rather than one statement per count of keys, each planned afresh until seen five times."""
    sql = "SELECT id, name FROM events_view WHERE id IN ({keys})"
    ids = [row[0] for row in rows(database, "SELECT id FROM events_view ORDER BY seq LIMIT 4")]

    async def look_up() -> tuple[list[list[str | None]], list[str]]:
        reads = PostgresReads(database.url or "", max_size=1)  # one connection: its statements
        await reads.open()
        try:
            found = []
            for _ in range(6):
                for count in range(1, 5):
                    answers = await asyncio.gather(*(reads.lookup(sql, "id", key)
                                                     for key in [*ids[:count], "missing"]))
                    found.append([answer["id"] if answer else None for answer in answers])
            prepared = await reads.fetchall("SELECT statement FROM pg_prepared_statements", [])
            return found, [row["statement"] for row in prepared]
        finally:
            await reads.close()

    found, prepared = asyncio.run(look_up())
    assert found == [[*ids[:count], None] for _ in range(6) for count in range(1, 5)]
    assert [text for text in prepared if "events_view" in text] == [
        "SELECT id, name FROM events_view WHERE id = ANY($1)"]


def test_a_shared_read_is_one_statement_for_all_who_ask_in_one_turn_and_none_before(
        database: Backend) -> None:
    """The names count that signed-in writes read goes out once for every caller waiting in a
    turn of the event loop; a caller that asks once it has gone out gets a statement of its
    own (it must see no less than what a read of its own would). A sequence tells the
    statements apart: each nextval is one statement the server ran."""
    with psycopg.connect(database.url or "", autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE IF NOT EXISTS shared_reads")
    sql = "SELECT nextval('shared_reads') AS n"

    async def read() -> tuple[list[int], list[int], int]:
        reads = PostgresReads(database.url or "")
        await reads.open()
        try:
            together = await asyncio.gather(*(reads.shared(sql) for _ in range(16)))
            first = asyncio.ensure_future(reads.shared(sql))
            await asyncio.sleep(0)  # the loop turns: the first read goes out alone
            later = await asyncio.gather(reads.shared(sql), reads.shared(sql))
            alone = (await first)[0]["n"]
            return [r[0]["n"] for r in together], [r[0]["n"] for r in later], alone
        finally:
            await reads.close()

    together, later, alone = asyncio.run(read())
    assert len(set(together)) == 1, together
    assert len(set(later)) == 1 and later[0] > alone > together[0], (together, alone, later)


# ---------------------------------------------------------------------------------------------
# followers: exactly once, replay, takeover


def test_two_threads_catching_up_apply_every_fact_exactly_once(
    store: Store, reference: Path, tmp_path: Path
) -> None:
    with fresh("postgres") as own:
        db = wiring.state_database(settings_for(own, tmp_path))
        applied, failures = race_two_followers(store, db, EventsView(POSTGRES), batch=50,
                                               timeout=300)
        db.close()
        assert not failures, failures
        assert all(applied), f"one thread never got a batch: {applied}"
        assert sum(applied) == store.head
        assert view_rows(lambda sql: rows(own, sql)) == sqlite_rows(reference)


def test_replay_rebuilds_the_view_row_for_row_and_leaves_no_rebuild_names(
    store: Store, built: StateDatabase, database: Backend, reference: Path
) -> None:
    before = view_rows(lambda sql: rows(database, sql))
    app = store.application()
    assert replay(built, Log(app.recorder, app.mapper), EventsView(POSTGRES), batch=700) == (
        store.head)
    app.close()
    assert view_rows(lambda sql: rows(database, sql)) == before == sqlite_rows(reference)
    assert rows(database, "SELECT relname FROM pg_class WHERE relname LIKE '%rebuild%'") == []
    indexes = {name for (name,) in rows(
        database, "SELECT indexname FROM pg_indexes WHERE tablename = 'events_view'")}
    assert indexes == {"events_view_pkey", "events_view_id_key", "events_view_start",
                       "events_view_owner", "events_view_owner_end", "events_view_series",
                       "events_view_search"}
    # the rebuilt table numbers its next rows after the last one the replay wrote
    assert rows(database, "SELECT pg_get_serial_sequence('events_view', 'seq')") == [
        ("public.events_view_seq_seq",)]
    assert rows(database, "SELECT last_value FROM events_view_seq_seq") == rows(
        database, "SELECT max(seq) FROM events_view")


def test_a_replay_in_small_batches_numbers_the_rows_as_the_follower_did(
    churn: Store, tmp_path: Path
) -> None:
    with fresh("postgres") as own:
        db = wiring.state_database(settings_for(own, tmp_path))
        app = churn.application()
        log = Log(app.recorder, app.mapper)
        Follower(db, log, [EventsView(POSTGRES)], batch=1).run_once()
        followed = view_rows(lambda sql: rows(own, sql))
        assert replay(db, log, EventsView(POSTGRES), batch=2) == churn.head
        app.close()
        db.close()
        assert view_rows(lambda sql: rows(own, sql)) == followed
        # an identity never gives a number twice: the next row follows every event made
        assert rows(own, "SELECT last_value FROM events_view_seq_seq") == [
            (CHURNED + CHURNED_SERIES,)]


class Lines:
    """A process's stdout, read line by line from a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(target=lambda: self.lines.extend(iter(stdout.readline, "")),
                         daemon=True).start()

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def wait_until(what: str, check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.01)


def test_a_follower_killed_while_holding_its_lease_is_taken_over_with_nothing_lost_or_twice(
    store: Store, reference: Path, tmp_path: Path, spawn: Spawn
) -> None:
    with fresh("postgres") as own:
        command = [sys.executable, "-c", FOLLOWER_SCRIPT, str(store.path), own.url or "",
                   str(tmp_path)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}

        def start() -> tuple[subprocess.Popen[str], Lines]:
            process = spawn(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
            return process, Lines(process)

        def tracked(view: str) -> int:
            found = rows(own, "SELECT position FROM tracking WHERE view = ?", (view,))
            return int(found[0][0]) if found else 0

        holder, holder_says = start()
        standby: subprocess.Popen[str] | None = None
        try:
            wait_until("the first follower leads",
                       lambda: holder_says.saw("took the lease of events"))
            standby, standby_says = start()
            wait_until("the catch-up is well under way",
                       lambda: tracked("events") >= store.head // 4, timeout=120)
            assert tracked("events") < store.head, "the kill must land mid-way"
            assert not standby_says.saw("took the lease"), "two leaders at once"
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait()
            killed_at = time.monotonic()
            wait_until("the standby takes over",
                       lambda: standby_says.saw("took the lease of events"))
            took_over = time.monotonic() - killed_at
            wait_until("the standby finishes", lambda: tracked("events") == store.head,
                       timeout=180)
        finally:
            for process in (holder, standby):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()

        assert took_over < 5, f"takeover took {took_over:.1f} s"
        ledger = rows(own, "SELECT position, pid FROM ledger ORDER BY position")
        assert [at for at, _ in ledger] == list(range(1, store.head + 1)), "lost or repeated"
        assert standby is not None and {pid for _, pid in ledger} == {holder.pid, standby.pid}
        # the same rows in the same order; only seq differs, as the killed transaction had
        # drawn numbers from the identity sequence, which no rollback gives back
        unnumbered = VIEW_COLUMNS.removeprefix("seq, ")
        assert view_rows(lambda sql: rows(own, sql), unnumbered) == sqlite_rows(
            reference, unnumbered)


def test_writes_refused_for_a_unique_violation_leave_later_writes_working() -> None:
    """A write refused by a unique index (a name taken in a race) aborts its pipelined
    transaction. psycopg counted the statements that pipeline skipped towards preparing them,
    kept the name of one the server never saw, and every later write on that connection
    failed with "prepared statement does not exist" (the fuzzer's 500s on sign-in, refresh,
    sign-out, renames and deletions). A refused write must cost only itself."""
    with fresh("postgres") as backend:
        assert backend.url
        db = PostgresDatabase(backend.url, max_size=1)
        try:
            with db.write() as conn:
                conn.execute("CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
            for number in range(8):
                with db.write() as conn:
                    conn.execute("INSERT INTO names VALUES (?, ?)", (number, f"n{number}"))
                    conn.execute("UPDATE names SET name = ? WHERE id = ?", (f"m{number}", number))
            refused = 0
            for number in range(100, 120):
                try:
                    with db.write() as conn:
                        taken = "m0" if number % 2 else f"x{number}"
                        conn.execute("UPDATE names SET name = ? WHERE id = ?", (taken, 1))
                        conn.execute("INSERT INTO names VALUES (?, ?)", (number, f"y{number}"))
                except db.unique_violation:
                    refused += 1
            assert refused == 10
            rows = db.connection().execute("SELECT count(*) AS n FROM names").fetchone()["n"]
            assert rows == 8 + 10
        finally:
            db.close()


def test_a_process_starting_beside_a_writer_waits_for_none_of_the_writers_tables(
        tmp_path: Path) -> None:
    """CREATE INDEX IF NOT EXISTS takes its table's SHARE lock before it looks for the index,
    and keeps it to the end of the transaction: a worker starting while another already wrote
    deadlocked (CI) with a writer holding one table and waiting for another. Here a writer
    holds every table; the process starting gives up on a lock after a second rather than
    waiting, so a lock asked for fails the test. An index that is missing is still made."""
    with fresh("postgres") as backend:
        settings = settings_for(backend, tmp_path)
        made = [*wiring.tables(settings), *wiring.indexes(settings)]
        wiring.state_database(settings).close()
        assert settings.postgres is not None
        impatient = psycopg.conninfo.make_conninfo(settings.postgres.conninfo,
                                                   options="-c lock_timeout=1000")
        starting = PostgresDatabase(impatient)
        try:
            with psycopg.connect(backend.url or "") as writer:
                for (table,) in rows(backend, "SELECT tablename FROM pg_tables "
                                              "WHERE schemaname = 'public'"):
                    writer.execute(f'LOCK TABLE "{table}" IN ROW EXCLUSIVE MODE')
                starting.create_schema(made)
            with psycopg.connect(backend.url or "", autocommit=True) as admin:
                admin.execute("DROP INDEX event_series_pending")
            starting.create_schema(made)
            assert rows(backend, "SELECT indexname FROM pg_indexes "
                                 "WHERE indexname = 'event_series_pending'")
        finally:
            starting.close()
