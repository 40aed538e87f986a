"""ALPHABET_EVENT_STORE chooses the backend: unset, SQLite files as ever; a postgresql:// URL,
the event store and the state database in that database, configured for eventsourcing and for
psycopg from the one URL. And the shared SQL's placeholders as psycopg needs them."""

from __future__ import annotations

import pytest

from alphabet.settings import Postgres, Settings, SettingsError


def test_without_an_event_store_url_everything_stays_in_sqlite_files() -> None:
    settings = Settings.from_env({"ALPHABET_DATA_DIR": "/srv/alphabet"})
    assert settings.postgres is None
    assert str(settings.event_store_path) == "/srv/alphabet/events.sqlite"


def test_a_postgresql_url_configures_eventsourcing_and_the_state_database() -> None:
    settings = Settings.from_env({
        "ALPHABET_EVENT_STORE": "postgresql://alphabet:s%40cret@db.example:6543/events"
                                "?schema=tenant_a"})
    assert settings.postgres == Postgres("db.example", 6543, "alphabet", "s@cret", "events",
                                         "tenant_a")
    assert settings.postgres.eventsourcing_env() == {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": "projections.postgres.recorder:LockingRecorder",
        "POSTGRES_ENABLE_DB_FUNCTIONS": "y", "POSTGRES_DBNAME": "events",
        "POSTGRES_HOST": "db.example", "POSTGRES_PORT": "6543", "POSTGRES_USER": "alphabet",
        "POSTGRES_PASSWORD": "s@cret", "POSTGRES_SCHEMA": "tenant_a"}
    conninfo = settings.postgres.conninfo
    assert "host='db.example'" in conninfo and "password='s@cret'" in conninfo
    assert "options='-c search_path=tenant_a'" in conninfo


def test_the_port_and_schema_have_defaults_and_quotes_in_a_password_are_escaped() -> None:
    found = Postgres.from_url("postgres://me:it's@localhost/db")
    assert (found.port, found.schema, found.password) == (5432, "public", "it's")
    assert r"password='it\'s'" in found.conninfo


@pytest.mark.parametrize("url", [
    "mysql://me@host/db", "postgresql://host/db", "postgresql://me@/db",
    "postgresql://me@host/", "postgresql://me@host:port/db",
    "postgresql://me@host/db?schema=Drop%20Table",
])
def test_an_unusable_event_store_url_is_refused_naming_the_variable(url: str) -> None:
    with pytest.raises(SettingsError, match="ALPHABET_EVENT_STORE"):
        Settings.from_env({"ALPHABET_EVENT_STORE": url})


def test_the_shared_sql_placeholders_become_psycopgs_and_literals_are_kept() -> None:
    pytest.importorskip("psycopg")
    from projections.postgres.dialect import placeholders

    assert placeholders("SELECT * FROM t WHERE a = ? AND b IN (?, ?)") == (
        "SELECT * FROM t WHERE a = %s AND b IN (%s, %s)")
    assert placeholders("SELECT '?', '50%' FROM t WHERE c LIKE ? || '%'") == (
        "SELECT '?', '50%%' FROM t WHERE c LIKE %s || '%%'")


@pytest.mark.parametrize("minutes", ["0", "527041", "99999999999999"])
def test_a_reminder_lead_time_outside_a_minute_to_a_year_is_refused(minutes: str) -> None:
    with pytest.raises(SettingsError, match="ALPHABET_REMINDER_MINUTES"):
        Settings.from_env({"ALPHABET_REMINDER_MINUTES": minutes})
    assert Settings.from_env({"ALPHABET_REMINDER_MINUTES": "527040"}).reminder_minutes == 527040


def test_operators_are_usernames_listed_with_commas_in_any_case_and_spacing() -> None:
    named = Settings.from_env({"ALPHABET_OPERATORS": " Alice ,bob,, CAROL "}).operators

    assert named == frozenset({"alice", "bob", "carol"})
    assert Settings.from_env({}).operators == frozenset()
