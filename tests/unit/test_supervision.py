"""Supervision's parts on a real SQLite state database: the backoff between restarts, the fault
row it keeps (counted per position, cleared by the first success), and a managed process's
main started again after it fails."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from alphabet.processes import Lifetime, supervised
from alphabet.settings import Settings
from projections import faults as fault_table
from projections.database import SqliteDatabase
from projections.faults import Backoff, FactFailed, Faults


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def faults(tmp_path: Path) -> Iterator[Faults]:
    db = SqliteDatabase(tmp_path / "state.sqlite")
    db.create_schema([fault_table.SCHEMA])
    yield Faults(db)
    db.close()


def rows(faults: Faults) -> list[tuple[str, int | None, str, int]]:
    return [(r["name"], r["position"], r["error"], r["attempts"]) for r in
            faults.db.connection().execute(
                "SELECT name, position, error, attempts FROM faults").fetchall()]


def failure(position: int) -> FactFailed:
    try:
        raise OverflowError("date value out of range")
    except OverflowError as cause:
        try:
            raise FactFailed(position, cause) from cause
        except FactFailed as failed:
            return failed


def test_the_backoff_doubles_up_to_its_ceiling_and_the_fault_counts_attempts_per_position(
    faults: Faults, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    backoff = Backoff("reminders", faults, first=0.5, most=4.0, clock=clock)
    delays = [backoff.failed(failure(7)) for _ in range(5)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff.due_in() == 4.0
    assert rows(faults) == [("reminders", 7, "OverflowError: date value out of range", 5)]
    assert "reminders failed at position 7 (OverflowError: date value out of range); " \
           "restarting in 0.5 s with backoff (attempt 1)" in caplog.text
    backoff.failed(failure(8))  # another fact: a new fault, counted afresh
    assert rows(faults) == [("reminders", 8, "OverflowError: date value out of range", 1)]


def test_the_first_success_clears_the_fault_even_one_a_previous_run_left(
    faults: Faults, caplog: pytest.LogCaptureFixture
) -> None:
    faults.record("mailer", None, "OSError: earlier run")
    faults.record("events", 3, "ValueError: another loop's")
    backoff = Backoff("mailer", faults)
    backoff.succeeded()
    assert [r[0] for r in rows(faults)] == ["events"]
    backoff.failed(RuntimeError("down"))
    assert [r[:2] for r in rows(faults)] == [("events", 3), ("mailer", None)]
    with caplog.at_level(logging.WARNING):
        backoff.succeeded()
    assert [r[0] for r in rows(faults)] == ["events"]
    assert "mailer recovered after 1 failed attempts" in caplog.text
    assert backoff.due_in() == 0


def test_a_managed_process_whose_main_fails_is_started_again_until_told_to_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    closed: list[int] = []

    def main(settings: Settings, lifetime: Lifetime, opened: ExitStack) -> None:
        calls.append(len(calls))
        opened.callback(closed.append, len(calls))
        if len(calls) < 3:
            raise ConnectionError("the database is not up yet")
        lifetime.running(lambda: None)
        lifetime.end()  # as SIGTERM would

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        supervised("consumers", main, Settings(data_dir=tmp_path))
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert calls == [0, 1, 2]
    assert closed == [1, 2, 3]  # what each run opened was closed, failed or not
    assert caplog.text.count("consumers process failed (ConnectionError: the database is not "
                             "up yet); restarting in") == 2
