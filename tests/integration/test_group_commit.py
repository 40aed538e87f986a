"""Group commit on a real SQLite event store: many writers share one transaction, and every
command still gets exactly its own answer (its changes, its position, or its refusal)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from alphabet.group_commit import GroupCommit
from alphabet.settings import Postgres
from domain.application import EventsApplication, ownership
from domain.errors import ForbiddenError, InvalidItemsError, VersionMismatchError
from domain.events import Event
from domain.writing import Aggregates, Command, Save, WriteNow, Writer, Written
from projections.postgres import WriterTurns
from tests.conftest import eventually, fresh

NOW = datetime.now(UTC)


class CountingApplication(EventsApplication):
    """Counts transactions, to show that writers were grouped."""

    saves = 0

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        type(self).saves += 1
        return super().save(*objs, **kwargs)


def store(path: Path, cls: type[EventsApplication] = EventsApplication,
          writer: Writer = WriteNow) -> EventsApplication:
    return cls(writer=writer, env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                                   "SQLITE_DBNAME": str(path / "events.sqlite")})


def new_event(app: EventsApplication, name: str = "Standup") -> UUID:
    written = app.create_event(owner_id="owner", name=name, location="Haifa",
                               starting_time=NOW + timedelta(days=1),
                               end_time=NOW + timedelta(days=1, hours=1), participants=[])
    event_id: UUID = written.aggregate.id
    return event_id


class CountedTurns:
    """Turns that are always free, counted: which batches took one."""

    def __init__(self) -> None:
        self.taken = 0

    def __call__(self) -> AbstractContextManager[object]:
        self.taken += 1
        return nullcontext()

    def close(self) -> None:
        """Nothing is held."""


@pytest.fixture
def grouped(tmp_path: Path) -> Any:
    CountingApplication.saves = 0
    app = store(tmp_path, CountingApplication,
                lambda aggregates, save: GroupCommit(aggregates, save, turns=CountedTurns()))
    assert isinstance(app.execute, GroupCommit)
    yield app
    app.close()
    assert not app.execute.thread.is_alive(), "closing the application stops its writer"


def test_concurrent_creates_share_transactions_and_each_gets_its_own_position(
    grouped: EventsApplication,
) -> None:
    with ThreadPoolExecutor(32) as pool:
        written = list(pool.map(lambda i: grouped.create_event(
            owner_id="owner", name=f"event {i}", location="Haifa",
            starting_time=NOW + timedelta(days=1), end_time=NOW + timedelta(days=2),
            participants=[]), range(200)))
    positions = [w.position for w in written]
    # Each create saves its event and adds it to the owner's Ownership (opened by the first):
    # 401 facts, and each answer holds the position of its own last one, no two alike.
    assert grouped.recorder.max_notification_id() == 401
    assert len({p for p in positions if p is not None and 1 <= p <= 401}) == 200
    assert all(w.aggregate.name == f"event {i}" for i, w in enumerate(written))
    assert CountingApplication.saves < 200, "writers were not grouped"


def test_changes_to_one_event_in_one_batch_are_all_applied_in_turn(
    grouped: EventsApplication,
) -> None:
    event_id = new_event(grouped)

    def rename(i: int) -> Written:
        return grouped.update_event(event_id, by="owner", now=NOW, expected_version=None,
                                    changes={"name": f"name {i}"})

    with ThreadPoolExecutor(16) as pool:
        written = list(pool.map(rename, range(40)))
    versions = sorted(w.aggregate.version for w in written)
    assert versions == list(range(2, 42))
    assert len(grouped.history(event_id)) == 41


def test_a_refused_command_fails_alone_and_the_rest_of_its_batch_commits(
    grouped: EventsApplication,
) -> None:
    event_id = new_event(grouped)

    def attempt(i: int) -> str:
        try:
            if i % 2:
                grouped.update_event(event_id, by="intruder", now=NOW, expected_version=None,
                                     changes={"name": "stolen"})
            else:
                grouped.update_event(event_id, by="owner", now=NOW, expected_version=1,
                                     changes={"name": f"pinned {i}"})
        except ForbiddenError:
            return "403"
        except VersionMismatchError:
            return "412"
        return "200"

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(attempt, range(10)))
    assert outcomes.count("403") == 5
    assert outcomes.count("200") == 1 and outcomes.count("412") == 4
    assert grouped.get_event(event_id).version == 2


def test_a_batch_that_loses_a_race_to_another_process_settles_each_command_anew(
    tmp_path: Path, grouped: EventsApplication,
) -> None:
    event_id = new_event(grouped)
    other_process = store(tmp_path)
    raced = []

    def get(aggregates: Aggregates) -> list[Any]:
        event = grouped.event_for_write(aggregates, event_id, "owner", None)
        if not raced:  # another writer saves between this read and the batch's save
            raced.append(other_process.update_event(
                event_id, by="owner", now=NOW, expected_version=None,
                changes={"location": "Eilat"}))
        return [event]

    written = grouped.execute(Command(
        get, lambda events: [events[0].change(by="owner", now=NOW, name="Retro")]))
    event = grouped.get_event(event_id)
    assert (event.name, event.location, event.version) == ("Retro", "Eilat", 3)
    assert written.position is not None and written.aggregate.version == 3


def test_a_batch_of_creations_that_loses_a_race_is_saved_again_in_one_transaction(
    tmp_path: Path, grouped: EventsApplication,
) -> None:
    """Two workers creating events for one owner both add to the owner's Ownership, so one
    of their batches loses the race. It is decided again on fresh state and saved again as
    one: two transactions for the batch, not one per command (each of which raced the other
    worker's next batch in turn, and cost creations on two workers twice their CPU)."""
    new_event(grouped)  # the owner's Ownership is opened
    turns = grouped.execute.turns  # type: ignore[attr-defined]
    assert turns.taken == 0, "a writer that never raced takes no turn"
    other_worker = store(tmp_path)
    holding, released = threading.Event(), threading.Event()
    raced: list[Written] = []

    def hold(aggregates: Aggregates) -> list[Any]:  # keeps the writer busy while we queue
        holding.set()
        released.wait()
        return []

    def race(aggregates: Aggregates) -> list[Any]:
        """Last in the batch: the creations before it have read the Ownership."""
        if not raced:
            raced.append(new_event(other_worker, "Elsewhere"))
        return []

    queued = grouped.execute.queue  # type: ignore[attr-defined]
    with ThreadPoolExecutor(12) as pool:
        held = pool.submit(grouped.execute, Command(hold, lambda _: None))
        eventually(holding.is_set, "the writer took the holding command")
        creations = [pool.submit(new_event, grouped, f"event {i}") for i in range(10)]
        eventually(lambda: queued.qsize() == 10, "ten creations queued")
        racing = pool.submit(grouped.execute, Command(race, lambda _: None))
        eventually(lambda: queued.qsize() == 11, "the racing command queued")
        saves = CountingApplication.saves
        released.set()
        held.result()
        created = [creation.result() for creation in creations]
        racing.result()
    assert raced, "the other worker saved between the batch's reads and its save"
    # the holding command's batch, the batch that lost, and the same batch saved again
    assert CountingApplication.saves - saves == 3
    # the batch saved again took a turn
    assert turns.taken == 1
    owned = grouped.owned_event_ids(ownership(grouped.repository, "owner"))
    assert set(created) <= set(owned) and len(owned) == 12
    new_event(grouped, "After")
    assert turns.taken == 2, "the next batch takes its turn too, for a while"


@pytest.mark.postgres
def test_workers_on_postgresql_take_turns_so_creations_by_one_owner_never_race() -> None:
    """While one worker decides its batch (it has read the owner's Ownership), the other
    worker's writer waits for its turn and then reads the Ownership as the first one left it:
    no save is lost to a unique violation and redone."""
    with fresh("postgres") as made:
        assert made.url is not None
        postgres = Postgres.from_url(made.url)
        lost: list[int] = []

        def writer(aggregates: Aggregates, save: Save) -> GroupCommit:
            def counted(*objs: Any, **kwargs: Any) -> Any:
                try:
                    return save(*objs, **kwargs)
                except IntegrityError:
                    lost.append(1)
                    raise

            return GroupCommit(aggregates, counted, contended_seconds=None,
                               turns=WriterTurns(postgres.conninfo, postgres.schema))

        env = {**postgres.eventsourcing_env(), "CREATE_TABLE": "y"}
        first, second = (EventsApplication(writer=writer, env=env) for _ in range(2))
        try:
            new_event(first)  # the owner's Ownership is opened
            deciding, released = threading.Event(), threading.Event()

            def get(aggregates: Aggregates) -> list[Any]:
                owned = ownership(aggregates, "owner")
                deciding.set()
                released.wait()
                return [owned, Event.create(owner_id="owner", name="First", location="Haifa",
                                            starting_time=NOW + timedelta(days=1),
                                            end_time=NOW + timedelta(days=2), participants=[])]

            def act(aggregates: list[Any]) -> None:
                aggregates[0].add([aggregates[1].id])

            with (ThreadPoolExecutor(2) as pool,
                  psycopg.connect(made.url, autocommit=True) as watcher):
                held = pool.submit(first.execute, Command(get, act))
                try:
                    eventually(deciding.is_set, "the first worker read the Ownership")
                    waiting = pool.submit(new_event, second, "Second")
                    eventually(lambda: watcher.execute(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT "
                        "granted AND database = (SELECT oid FROM pg_database WHERE datname = "
                        "current_database())").fetchone() == (1,),
                        "the second worker waits for its turn")
                finally:
                    released.set()
                created = [held.result().aggregates[1].id, waiting.result()]
        finally:
            first.close()
            second.close()
        assert not lost, "a save lost a race and was redone"
        reread = EventsApplication(env=env)
        assert set(created) <= set(reread.owned_event_ids(ownership(reread.repository, "owner")))
        reread.close()


def test_a_command_refused_halfway_through_a_batch_leaves_no_trace_in_it(
    grouped: EventsApplication,
) -> None:
    """A batch deletion refused after it deleted its first item (the second is someone
    else's) shares a batch with renames of that item: they see the item as it was, never
    the refused command's half-done deletion, and it is saved by none."""
    own = new_event(grouped)
    foreign = grouped.create_event(owner_id="stranger", name="Theirs", location="Haifa",
                                   starting_time=NOW + timedelta(days=1),
                                   end_time=NOW + timedelta(days=1, hours=1),
                                   participants=[]).aggregate.id

    def attempt(i: int) -> str:
        if i % 2:
            try:
                grouped.delete_events(by="owner", event_ids=[own, foreign])
            except InvalidItemsError:
                return "refused"
            return "deleted"
        grouped.update_event(own, by="owner", now=NOW, expected_version=None,
                             changes={"name": f"name {i}"})
        return "renamed"

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(attempt, range(40)))
    assert outcomes.count("refused") == 20 and outcomes.count("renamed") == 20
    assert grouped.get_event(own).version == 21
