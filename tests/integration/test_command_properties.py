"""Property: any sequence of commands on the application — creates, changes, deletes, batches of
each, accounts registered and deleted, valid or not — leaves the event store, every view caught
up from its log (events, mail, reminders), and a fresh replay of that log equal. Hypothesis
writes the sequences; each runs on a real SQLite event store and state database, with the views
caught up at random points between commands, as the server's follower does.

A refused command records nothing: the log's head does not move."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from alphabet import wiring
from alphabet.settings import Settings
from domain.application import EventsApplication
from domain.errors import AccountClosedError, DomainError
from domain.events import EARLIEST, LATEST
from domain.presentation import instant
from projections.database import StateDatabase
from projections.follower import Follower, Log
from projections.replay import replay

NOW = datetime(2031, 3, 1, 9, 0, tzinfo=UTC)
PEOPLE = [str(uuid4()) for _ in range(6)]
OFFSETS = st.sampled_from([UTC, *(timezone(timedelta(minutes=m)) for m in (-840, -330, 60, 840))])

# Mostly valid and around now (so changes meet both "not started" and "already started"),
# sometimes at the ends of the supported range or outside it, sometimes anything at all.
near_now = st.integers(-3 * 86400, 30 * 86400).map(lambda s: NOW + timedelta(seconds=s))
edges = st.sampled_from([EARLIEST, LATEST - timedelta(microseconds=1), LATEST,
                         EARLIEST - timedelta(microseconds=1)])
anywhere = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                        timezones=st.just(UTC))


def mostly(usual: st.SearchStrategy[Any], *rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` nine times in ten, else one of `rare` (and `usual` when shrinking)."""
    return st.integers(0, 9).flatmap(lambda n: usual if n < 9 else st.one_of(*rare))


moments = mostly(near_now, edges, anywhere).flatmap(
    lambda moment: OFFSETS.map(moment.astimezone))
valid_texts = st.sampled_from(["Standup", "Café Tél Avív", "Haifa Bay", "x" * 200])
texts = mostly(valid_texts, st.sampled_from([" ", "", "x" * 201]), st.text(max_size=40))
people = st.lists(st.sampled_from(PEOPLE), max_size=4)
OWNER_MOSTLY = mostly(st.just(True), st.just(False))


@st.composite
def event_fields(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(moments)
    lasting = st.integers(1, 7200).map(lambda s: start + timedelta(seconds=s)
                                       if start < LATEST - timedelta(days=1) else start)
    end = draw(mostly(lasting, moments))
    return {"name": draw(texts), "starting_time": start, "end_time": end,
            "location": draw(texts), "participants": draw(people)}


@st.composite
def event_changes(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly what a client changes (a name, a place, the people, both times at once), else
    any subset of fields with any values."""
    fields = draw(event_fields())
    usual = st.sampled_from([("name",), ("location",), ("participants",),
                             ("starting_time", "end_time"), ("name", "participants")])
    anything = st.sets(st.sampled_from(sorted(fields)), max_size=len(fields))
    return {name: fields[name] for name in draw(mostly(usual, anything))}


def scratch() -> Path:
    """A directory for one example's SQLite files: in memory (/dev/shm) where there is one,
    since these properties are about logic, and an fsync per save costs seconds per run on
    a busy disk."""
    memory = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="alphabet-properties-",
                                 dir=memory if memory.is_dir() else None))


class Commands(RuleBasedStateMachine):
    """One application and its views on fresh SQLite files per example."""

    users = Bundle("users")
    events = Bundle("events")

    def __init__(self) -> None:
        super().__init__()
        self.home = scratch()
        self.app = EventsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                                          "SQLITE_DBNAME": str(self.home / "events.sqlite")})
        self.settings = Settings(data_dir=self.home / "live")
        self.db = wiring.state_database(self.settings)
        self.log = Log(self.app.recorder, self.app.mapper)
        self.views = wiring.views(self.settings)
        self.follower = Follower(self.db, self.log, self.views, batch=7)
        self.owned: dict[str, list[UUID]] = {}
        self.deleted: list[str] = []
        self.commands = 0
        self.refused = 0

    def teardown(self) -> None:
        try:
            self.follower.run_once()
            self.check_store_and_views_agree()
            self.check_a_fresh_replay_equals_the_live_views()
            RUNS.append((self.commands, self.refused))
        finally:
            self.app.close()
            self.db.close()
            shutil.rmtree(self.home, ignore_errors=True)

    # -- commands --------------------------------------------------------------------------

    def run(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        """A command, and the rule that a refused one records nothing."""
        head = self.log.head()
        self.commands += 1
        try:
            return command(*args, **kwargs)
        except DomainError:
            self.refused += 1
            assert self.log.head() == head, "a refused command recorded facts"
            return None

    @initialize(target=users)
    def first_user(self) -> str:
        return self.register()

    @rule(target=users)
    def register(self) -> str:
        user_id = str(self.app.register_user().aggregate.id)
        self.owned[user_id] = []
        return user_id

    @rule(target=events, owner=users, fields=event_fields())
    def create(self, owner: str, fields: dict[str, Any]) -> Any:
        return multiple(*self.remember(owner, self.run(self.app.create_event, owner_id=owner,
                                                       **fields)))

    @rule(target=events, owner=users, items=st.lists(event_fields(), min_size=1, max_size=4))
    def create_batch(self, owner: str, items: list[dict[str, Any]]) -> Any:
        return multiple(*self.remember(owner, self.run(self.app.create_events, owner_id=owner,
                                                       items=items)))

    @rule(event=events, stranger=users, owner=OWNER_MOSTLY, changes=event_changes(),
          pinned=st.booleans())
    def update(self, event: UUID, stranger: str, owner: bool, changes: dict[str, Any],
               pinned: bool) -> None:
        version = self.version(event) if pinned else None
        self.run(self.app.update_event, event, by=self.actor(event, stranger, owner), now=NOW,
                 expected_version=version, changes=changes)

    @rule(stranger=users, owner=OWNER_MOSTLY,
          items=st.lists(st.tuples(events, event_changes()), min_size=1, max_size=4))
    def update_batch(self, stranger: str, owner: bool,
                     items: list[tuple[UUID, dict[str, Any]]]) -> None:
        self.run(self.app.update_events, by=self.actor(items[0][0], stranger, owner), now=NOW,
                 items=items)

    @rule(event=events, stranger=users, owner=OWNER_MOSTLY)
    def delete(self, event: UUID, stranger: str, owner: bool) -> None:
        self.run(self.app.delete_event, event, by=self.actor(event, stranger, owner),
                 expected_version=None)

    @rule(stranger=users, owner=OWNER_MOSTLY, ids=st.lists(events, min_size=1, max_size=4))
    def delete_batch(self, stranger: str, owner: bool, ids: list[UUID]) -> None:
        self.run(self.app.delete_events, by=self.actor(ids[0], stranger, owner), event_ids=ids)

    @precondition(lambda self: len(self.owned) > 1)
    @rule(user=consumes(users))
    def delete_user(self, user: str) -> None:
        """Not told which events the account owns: its Ownership must know them all."""
        if self.run(self.app.delete_user, UUID(user), by=user) is not None:
            self.deleted.append(user)

    @precondition(lambda self: self.deleted)
    @rule(data=st.data(), fields=event_fields())
    def create_for_a_deleted_account(self, data: st.DataObject, fields: dict[str, Any]) -> None:
        owner = data.draw(st.sampled_from(self.deleted))
        head = self.log.head()
        with pytest.raises(AccountClosedError):
            self.app.create_event(owner_id=owner, **fields)
        assert self.log.head() == head

    @rule()
    def catch_up(self) -> None:
        self.follower.run_once()

    def actor(self, event: UUID, stranger: str, owner: bool) -> str:
        """Who sends a command about `event`: mostly its owner, sometimes anyone."""
        return next((user for user, ids in self.owned.items() if event in ids), stranger) \
            if owner else stranger

    def remember(self, owner: str, written: Any) -> list[UUID]:
        made = [aggregate.id for aggregate in written.aggregates] if written else []
        self.owned.setdefault(owner, []).extend(made)
        return made

    def version(self, event: UUID) -> int:
        try:
            return int(self.app.repository.get(event).version)
        except AggregateNotFoundError:  # an id no command created: refused as not found
            return 1

    # -- what must hold --------------------------------------------------------------------

    @invariant()
    def every_stored_event_keeps_the_rules(self) -> None:
        for ids in self.owned.values():
            for event_id in ids:
                event = self.app.repository.get(event_id)
                assert EARLIEST <= event.starting_time < event.end_time < LATEST
                assert event.starting_time.utcoffset() == timedelta(0)
                assert event.name.strip() and event.location.strip()
                assert len(set(event.participants)) == len(event.participants)

    @invariant()
    def no_event_of_a_deleted_account_is_live(self) -> None:
        for user in self.deleted:
            for event_id in self.owned.get(user, []):
                assert self.app.repository.get(event_id).deleted

    def check_store_and_views_agree(self) -> None:
        conn = self.db.connection()
        rows = {r["id"]: r for r in conn.execute("SELECT * FROM events_view")}
        people = {(r["person_id"], r["event_id"]) for r in conn.execute(
            "SELECT person_id, event_id FROM event_people")}
        reminders = {r["event_id"]: r["starting_time"] for r in conn.execute(
            "SELECT event_id, starting_time FROM reminders")}
        live = [self.app.repository.get(i) for ids in self.owned.values() for i in ids]
        live = [event for event in live if not event.deleted]
        assert set(rows) == {str(event.id) for event in live}
        assert set(reminders) == set(rows)
        assert people == {(person, str(event.id)) for event in live
                          for person in event.participants}
        for event in live:
            row = rows[str(event.id)]
            assert (row["owner_id"], row["name"], row["location"], row["version"]) == (
                event.owner_id, event.name, event.location, event.version)
            assert (row["starting_time"], row["end_time"]) == (
                instant(event.starting_time), instant(event.end_time))
            assert json.loads(row["participants"]) == event.participants
            assert reminders[str(event.id)] == instant(event.starting_time)
        assert self.log.head() == max(
            (int(r["position"]) for r in conn.execute("SELECT position FROM tracking "
                                                      "WHERE view IN ('events', 'mail', "
                                                      "'reminders')")), default=0)

    def check_a_fresh_replay_equals_the_live_views(self) -> None:
        """Every view rebuilt from position 0 into a state database of its own."""
        fresh = wiring.state_database(Settings(data_dir=self.home / "replayed"))
        try:
            for view in self.views:
                replay(fresh, self.log, view, batch=5)
            for view in self.views:
                for table in view.tables:
                    assert contents(fresh, table) == contents(self.db, table), table
        finally:
            fresh.close()


def contents(db: StateDatabase, table: str) -> list[str]:
    """A table's rows, in an order that depends on nothing but their values."""
    columns = "rowid, *" if table == "events_search" else "*"
    return sorted(repr(tuple(row)) for row in db.connection().execute(
        f"SELECT {columns} FROM {table}"))


# How many sequences ran, and how many commands each held (and how many were refused):
# printed by the test, so a run reports the cases it tried.
RUNS: list[tuple[int, int]] = []

Commands.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class TestCommands(Commands.TestCase):  # type: ignore[name-defined,misc]
    """Runs the machine; then says how many cases it tried."""

    @classmethod
    def tearDownClass(cls) -> None:
        commands = sum(n for n, _ in RUNS)
        refused = sum(r for _, r in RUNS)
        print(f"\n{len(RUNS)} command sequences, {commands} commands ({refused} refused), "
              "store = views = replay after each")
        super().tearDownClass()
