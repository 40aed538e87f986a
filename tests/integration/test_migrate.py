"""`alphabet migrate` on either backend: creates every table of the event store and the state
database, changes nothing when run again, and instances starting at once (several migrations
together on an empty database) all succeed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, ROOT, Backend, Spawn, fresh

TABLES = {"users", "invitees", "refresh_tokens", "calendar_feeds", "signin_failures", "tracking",
          "counters", "events_view",
          "event_people", "events_cancelled", "mail_events", "mail_outbox", "reminders",
          "reminder_series"}


def migrate(spawn: Spawn, backend: Backend, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ALPHABET_DATA_DIR": str(data_dir),
           "ALPHABET_LOG_FORMAT": "text", **backend.env}
    return spawn([sys.executable, "-m", "alphabet.cli", "migrate"], cwd=ROOT, env=env,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def tables(backend: Backend, data_dir: Path) -> set[str]:
    if backend.url is None:
        found = backend.rows(data_dir, "SELECT name FROM sqlite_master WHERE type = 'table'")
        store = data_dir / "events.sqlite"
        assert store.exists()
    else:
        found = backend.rows(data_dir, "SELECT tablename FROM pg_tables "
                                       "WHERE schemaname = current_schema()")
    return {name for (name,) in found}


@pytest.mark.parametrize("kind", BACKENDS)
def test_migrations_started_together_all_succeed_and_a_later_one_changes_nothing(
    kind: str, tmp_path: Path, spawn: Spawn
) -> None:
    with fresh(kind) as backend:
        together = [migrate(spawn, backend, tmp_path) for _ in range(3)]
        for process in together:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err.decode()
            assert b"schema up to date" in out
        made = tables(backend, tmp_path)
        assert made >= TABLES
        if backend.url is not None:
            assert "alphabet_events" in made  # eventsourcing's store, in the same database
        again = migrate(spawn, backend, tmp_path)
        assert again.wait(timeout=120) == 0
        assert tables(backend, tmp_path) == made


@pytest.mark.postgres
def test_migrate_turns_off_fastupdate_on_a_search_index_made_with_it(tmp_path: Path,
                                                                     spawn: Spawn) -> None:
    """A database made before the search index went without GIN's pending list keeps its
    index through CREATE INDEX IF NOT EXISTS; migrate alters it, once."""
    with fresh("postgres") as backend:
        options = ("SELECT reloptions FROM pg_class WHERE relname = 'events_view_search' "
                   "AND relnamespace = current_schema()::regnamespace")
        assert migrate(spawn, backend, tmp_path).wait(timeout=120) == 0
        assert backend.rows(tmp_path, options) == [(["fastupdate=off"],)]
        import psycopg

        assert backend.url is not None
        with psycopg.connect(backend.url, autocommit=True) as conn:
            conn.execute("ALTER INDEX events_view_search RESET (fastupdate)")
        assert backend.rows(tmp_path, options) == [(None,)]
        assert migrate(spawn, backend, tmp_path).wait(timeout=120) == 0
        assert backend.rows(tmp_path, options) == [(["fastupdate=off"],)]


def write(backend: Backend, data_dir: Path, sql: str) -> None:
    """A statement on the state database from outside the server (as an older version)."""
    if backend.url is None:
        conn = sqlite3.connect(data_dir / "state.sqlite", timeout=30)
        try:
            with conn:
                conn.execute(sql)
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(backend.url, autocommit=True) as conn:
        conn.execute(sql)


@pytest.mark.parametrize("kind", BACKENDS)
def test_migrate_moves_the_names_count_out_of_tracking_into_its_own_table(
    kind: str, tmp_path: Path, spawn: Spawn
) -> None:
    """A database made when the names count was a row of the tracking table keeps its count
    (the workers' caches compare it, so it must not go back to 0) in the counters table, and
    tracking is left with followers' positions alone; migrating again changes nothing."""
    with fresh(kind) as backend:
        assert migrate(spawn, backend, tmp_path).wait(timeout=120) == 0
        write(backend, tmp_path, "INSERT INTO tracking VALUES ('people.names', 7)")
        for _ in range(2):
            assert migrate(spawn, backend, tmp_path).wait(timeout=120) == 0
            assert backend.rows(tmp_path, "SELECT name, value FROM counters") == [
                ("people.names", 7)]
            assert backend.rows(
                tmp_path, "SELECT view FROM tracking WHERE view = 'people.names'") == []


@pytest.mark.parametrize("kind", BACKENDS)
def test_migrate_gives_an_events_view_made_before_answers_existed_their_column(
    kind: str, tmp_path: Path, spawn: Spawn
) -> None:
    """A view made before attendees' responses lacks their column: migrate adds it, and the
    rows it holds have no answers (there were none then); migrating again changes nothing."""
    with fresh(kind) as backend:
        assert migrate(spawn, backend, tmp_path).wait(timeout=120) == 0
        write(backend, tmp_path, "ALTER TABLE events_view DROP COLUMN responses")
        search = ", search" if backend.url else ""
        words = ", to_tsvector('simple', 'old')" if backend.url else ""
        write(backend, tmp_path, "INSERT INTO events_view (id, owner_id, name, location, "
              "starting_time, end_time, participants, version, position, created_at, "
              f"updated_at{search}) VALUES ('e', 'o', 'Old', 'Port', 's', 'e', '[]', 1, 1, "
              f"'c', 'u'{words})")
        for _ in range(2):
            assert migrate(spawn, backend, tmp_path).wait(timeout=120) == 0
            assert backend.rows(tmp_path, "SELECT id, responses FROM events_view") == [
                ("e", "{}")]


@pytest.mark.parametrize("kind", BACKENDS)
def test_migrate_gives_an_events_view_made_before_zones_existed_their_column_as_utc(
    kind: str, tmp_path: Path, spawn: Spawn
) -> None:
    with fresh(kind) as backend:
        assert migrate(spawn, backend, tmp_path).wait(timeout=120) == 0
        write(backend, tmp_path, "ALTER TABLE events_view DROP COLUMN time_zone")
        search = ", search" if backend.url else ""
        words = ", to_tsvector('simple', 'old')" if backend.url else ""
        write(backend, tmp_path, "INSERT INTO events_view (id, owner_id, name, location, "
              "starting_time, end_time, participants, version, position, created_at, "
              f"updated_at, responses{search}) VALUES ('e', 'o', 'Old', 'Port', 's', 'e', '[]', "
              f"1, 1, 'c', 'u', '{{}}'{words})")
        for _ in range(2):
            assert migrate(spawn, backend, tmp_path).wait(timeout=120) == 0
            assert backend.rows(tmp_path, "SELECT id, time_zone FROM events_view") == [
                ("e", "UTC")]
