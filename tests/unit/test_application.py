"""The use cases of EventsApplication on eventsourcing's own persistence.

One contract, run by subclasses that only change the settings: in memory (POPO) and on a real
SQLite file, where every fact goes through the JSON transcoder and back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Notification

from domain.application import EventsApplication
from domain.errors import (
    AccountClosedError,
    ForbiddenError,
    GoneError,
    InvalidFieldsError,
    InvalidItemsError,
    NotFoundError,
    VersionMismatchError,
)
from domain.events import Event
from domain.ownership import Ownership, ownership_id
from domain.users import User
from domain.writing import Aggregates, Executor, Save, WriteNow, Written
from tests.unit.fixtures import END, NOW, START, fields

PLUS_TWO = timezone(timedelta(hours=2))


class ObservedApplication(EventsApplication):
    """The real application, observed: it counts the facts of each save, and once, right after
    it has read an event for a write, lets another writer save first (the race every
    concurrent writer can meet)."""

    interlude: Callable[[], None] | None = None
    loads: int = 0
    saves: list[int]

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env=env)
        self.saves = []

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        recordings = super().save(*objs, **kwargs)
        self.saves.append(len(recordings))
        return recordings

    def event_for_write(self, aggregates: Aggregates, event_id: UUID, by: str,
                        expected_version: int | None, operator: bool = False) -> Event:
        event = super().event_for_write(aggregates, event_id, by, expected_version, operator)
        self.loads += 1
        if self.interlude is not None:
            interlude, self.interlude = self.interlude, None
            interlude()
        return event


def notifications_after(app: EventsApplication, position: int | None) -> list[Notification]:
    return list(app.recorder.select_notifications(start=(position or 0) + 1, limit=1000))


class ApplicationContract:
    """Every backend must pass these; subclasses only say where the store lives."""

    @pytest.fixture
    def env(self, tmp_path: Path) -> dict[str, str]:
        raise NotImplementedError

    @pytest.fixture
    def app(self, env: dict[str, str]) -> Iterator[EventsApplication]:
        application = EventsApplication(env=env)
        yield application
        application.close()

    @pytest.fixture
    def observed(self, env: dict[str, str]) -> Iterator[ObservedApplication]:
        application = ObservedApplication(env=env)
        yield application
        application.close()

    @pytest.fixture
    def other_writer(
        self, env: dict[str, str], observed: ObservedApplication
    ) -> Iterator[EventsApplication]:
        """Another writer on the same store (a second instance where the store allows it)."""
        yield observed

    def create(self, app: EventsApplication, owner_id: str = "owner", **overrides: Any) -> UUID:
        written = app.create_event(owner_id=owner_id, **fields(**overrides))
        return UUID(str(written.aggregate.id))

    # --- create ---------------------------------------------------------------------------

    def test_create_event_returns_the_event_its_state_and_its_log_position(
        self, app: EventsApplication
    ) -> None:
        before = app.recorder.max_notification_id()

        written = app.create_event(owner_id="owner", **fields())

        assert isinstance(written, Written)
        assert isinstance(written.aggregate, Event)
        assert written.changes == [fields()]
        assert written.position is not None
        assert written.position == app.recorder.max_notification_id()
        # Its owner's Ownership, opened and the event added, then the event's Created: the
        # write's position is the event's own fact.
        owned = ownership_id("owner")
        assert [n.originator_id for n in notifications_after(app, before)] == [
            owned, owned, written.aggregate.id]
        assert app.create_event(owner_id="owner", **fields()).position == written.position + 2

    def test_a_created_event_reads_back_with_every_field(self, app: EventsApplication) -> None:
        start = START.astimezone(PLUS_TWO)
        event_id = self.create(app, starting_time=start, participants=["p-2", "p-1", "p-2"])

        event = app.get_event(event_id)

        assert event.version == 1
        assert event.owner_id == "owner"
        assert event.name == "Standup"
        assert event.location == "Tel Aviv Port"
        assert event.starting_time == start
        # The fact holds the instant in UTC, whatever offset it was given in.
        assert event.starting_time.utcoffset() == timedelta(0)
        assert event.end_time == END
        assert event.end_time.tzinfo is not None
        assert type(event.participants) is list
        assert event.participants == ["p-2", "p-1"]

    def test_an_invalid_event_is_refused_and_nothing_is_stored(
        self, app: EventsApplication
    ) -> None:
        before = app.recorder.max_notification_id()

        with pytest.raises(InvalidFieldsError) as refused:
            app.create_event(owner_id="owner", **fields(name="", end_time=START))

        assert set(refused.value.fields) == {"name", "end_time"}
        assert app.recorder.max_notification_id() == before

    def test_create_events_stores_every_event_in_one_save(self, app: EventsApplication) -> None:
        before = app.recorder.max_notification_id()

        written = app.create_events(
            owner_id="owner", items=[fields(name=f"Talk {i}") for i in range(3)]
        )

        assert [event.name for event in written.aggregates] == ["Talk 0", "Talk 1", "Talk 2"]
        # The owner's Ownership opened and all three added at once, then three Created facts.
        assert written.position == (before or 0) + 5
        stored = notifications_after(app, before)
        assert [n.id for n in stored] == [(before or 0) + i for i in range(1, 6)]
        assert [n.originator_id for n in stored] == [
            *[ownership_id("owner")] * 2, *(event.id for event in written.aggregates)]

    def test_create_events_is_all_or_nothing(self, app: EventsApplication) -> None:
        self.create(app)
        before = app.recorder.max_notification_id()
        items = [fields(name="Good"), fields(location="x" * 201), fields(name="Also good")]

        with pytest.raises(InvalidItemsError) as refused:
            app.create_events(owner_id="owner", items=items)

        assert set(refused.value.items) == {"1"}
        assert set(refused.value.items["1"]) == {"location"}
        assert app.recorder.max_notification_id() == before
        assert notifications_after(app, before) == []

    def test_create_events_reports_every_invalid_item_by_index_at_once(
        self, app: EventsApplication
    ) -> None:
        before = app.recorder.max_notification_id()
        items = [fields(name=""), fields(), fields(end_time=START, location=" ")]

        with pytest.raises(InvalidItemsError) as refused:
            app.create_events(owner_id="owner", items=items)

        assert {index: set(problems) for index, problems in refused.value.items.items()} == {
            "0": {"name"},
            "2": {"end_time", "location"},
        }
        assert app.recorder.max_notification_id() == before

    # --- update ---------------------------------------------------------------------------

    def test_update_event_records_only_what_changed_and_returns_it(
        self, app: EventsApplication
    ) -> None:
        event_id = self.create(app)

        written = app.update_event(
            event_id,
            by="owner",
            now=NOW,
            expected_version=1,
            changes={"name": "Standup", "location": "Jaffa"},
        )

        assert written.changes == [{"location": "Jaffa"}]
        assert written.position == app.recorder.max_notification_id()
        event = app.get_event(event_id)
        assert (event.version, event.name, event.location) == (2, "Standup", "Jaffa")

    def test_an_update_that_changes_nothing_stores_nothing(self, app: EventsApplication) -> None:
        event_id = self.create(app)
        before = app.recorder.max_notification_id()

        written = app.update_event(
            event_id, by="owner", now=NOW, expected_version=None, changes=fields()
        )

        assert written.position is None
        assert all(not changes for changes in written.changes)
        assert app.recorder.max_notification_id() == before
        assert app.get_event(event_id).version == 1

    def test_update_event_with_a_stale_expected_version_is_a_version_mismatch(
        self, app: EventsApplication
    ) -> None:
        event_id = self.create(app)
        app.update_event(
            event_id, by="owner", now=NOW, expected_version=1, changes={"name": "Retro"}
        )
        before = app.recorder.max_notification_id()

        with pytest.raises(VersionMismatchError):
            app.update_event(
                event_id, by="owner", now=NOW, expected_version=1, changes={"location": "Jaffa"}
            )

        assert app.recorder.max_notification_id() == before
        assert app.get_event(event_id).location == "Tel Aviv Port"

    def test_update_event_by_someone_else_is_forbidden(self, app: EventsApplication) -> None:
        event_id = self.create(app)

        with pytest.raises(ForbiddenError):
            app.update_event(
                event_id, by="stranger", now=NOW, expected_version=None, changes={"name": "X"}
            )

        assert app.get_event(event_id).name == "Standup"

    def test_update_event_of_an_unknown_id_is_not_found(self, app: EventsApplication) -> None:
        with pytest.raises(NotFoundError):
            app.update_event(
                uuid4(), by="owner", now=NOW, expected_version=None, changes={"name": "X"}
            )

    def test_update_event_of_a_deleted_event_is_gone(self, app: EventsApplication) -> None:
        event_id = self.create(app)
        app.delete_event(event_id, by="owner", expected_version=None)

        with pytest.raises(GoneError):
            app.update_event(
                event_id, by="owner", now=NOW, expected_version=None, changes={"name": "X"}
            )

    def test_an_update_that_loses_the_race_is_redone_on_the_newer_state(
        self, observed: ObservedApplication, other_writer: EventsApplication
    ) -> None:
        event_id = self.create(observed)

        def someone_else_saves_first() -> None:
            event = other_writer.repository.get(event_id)
            assert isinstance(event, Event)
            event.change(by="owner", now=NOW, location="Jaffa")
            other_writer.save(event)

        observed.interlude = someone_else_saves_first

        written = observed.update_event(
            event_id, by="owner", now=NOW, expected_version=None, changes={"name": "Retro"}
        )

        assert observed.loads == 2  # the first save lost and the command was redone
        assert written.changes == [{"name": "Retro"}]
        event = observed.get_event(event_id)
        assert (event.version, event.name, event.location) == (3, "Retro", "Jaffa")
        updates = observed.history(event_id)[1:]
        assert [fact.changes for fact in updates] == [{"location": "Jaffa"}, {"name": "Retro"}]

    def test_an_update_pinned_to_a_version_that_loses_the_race_is_a_version_mismatch(
        self, observed: ObservedApplication, other_writer: EventsApplication
    ) -> None:
        event_id = self.create(observed)

        def someone_else_saves_first() -> None:
            event = other_writer.repository.get(event_id)
            assert isinstance(event, Event)
            event.change(by="owner", now=NOW, location="Jaffa")
            other_writer.save(event)

        observed.interlude = someone_else_saves_first

        with pytest.raises(VersionMismatchError):
            observed.update_event(
                event_id, by="owner", now=NOW, expected_version=1, changes={"name": "Retro"}
            )

        event = observed.get_event(event_id)
        assert (event.version, event.name, event.location) == (2, "Standup", "Jaffa")

    # --- read -----------------------------------------------------------------------------

    def test_get_event_of_an_unknown_id_is_not_found(self, app: EventsApplication) -> None:
        with pytest.raises(NotFoundError):
            app.get_event(uuid4())

    def test_a_user_id_is_not_an_event(self, app: EventsApplication) -> None:
        user_id = app.register_user().aggregate.id

        with pytest.raises(NotFoundError):
            app.get_event(user_id)
        with pytest.raises(NotFoundError):
            app.history(user_id)

    def test_get_event_of_a_deleted_event_is_gone(self, app: EventsApplication) -> None:
        event_id = self.create(app)

        written = app.delete_event(event_id, by="owner", expected_version=1)

        assert written.position == app.recorder.max_notification_id()
        with pytest.raises(GoneError):
            app.get_event(event_id)

    def test_event_at_version_gives_each_version_as_it_was(self, app: EventsApplication) -> None:
        event_id = self.create(app)
        app.update_event(
            event_id, by="owner", now=NOW, expected_version=None, changes={"name": "Retro"}
        )

        assert app.event_at_version(event_id, 1).name == "Standup"
        assert app.event_at_version(event_id, 1).version == 1
        assert app.event_at_version(event_id, 2).name == "Retro"

    @pytest.mark.parametrize("version", [0, -1, 3, 100])
    def test_event_at_a_version_outside_its_history_is_not_found(
        self, app: EventsApplication, version: int
    ) -> None:
        event_id = self.create(app)
        app.update_event(
            event_id, by="owner", now=NOW, expected_version=None, changes={"name": "Retro"}
        )

        with pytest.raises(NotFoundError):
            app.event_at_version(event_id, version)

    def test_event_at_version_of_an_unknown_id_is_not_found(self, app: EventsApplication) -> None:
        with pytest.raises(NotFoundError):
            app.event_at_version(uuid4(), 1)

    def test_event_at_version_is_gone_from_the_deletion_on(self, app: EventsApplication) -> None:
        event_id = self.create(app)
        app.delete_event(event_id, by="owner", expected_version=None)

        assert app.event_at_version(event_id, 1).name == "Standup"
        with pytest.raises(GoneError):
            app.event_at_version(event_id, 2)

    def test_event_as_of_a_time_before_its_creation_is_not_found(
        self, app: EventsApplication
    ) -> None:
        event_id = self.create(app)
        created = app.history(event_id)[0]

        with pytest.raises(NotFoundError):
            app.event_as_of(event_id, created.timestamp - timedelta(microseconds=1))

    def test_event_as_of_a_time_between_two_facts_gives_the_older_version(
        self, app: EventsApplication
    ) -> None:
        event_id = self.create(app)
        time.sleep(0.01)
        app.update_event(
            event_id, by="owner", now=NOW, expected_version=None, changes={"name": "Retro"}
        )
        created, updated = app.history(event_id)
        assert created.timestamp < updated.timestamp
        between = created.timestamp + (updated.timestamp - created.timestamp) / 2

        assert app.event_as_of(event_id, created.timestamp).version == 1
        as_of = app.event_as_of(event_id, between)
        assert (as_of.version, as_of.name) == (1, "Standup")
        later = app.event_as_of(event_id, updated.timestamp + timedelta(days=1))
        assert (later.version, later.name) == (2, "Retro")

    def test_event_as_of_a_time_after_the_deletion_is_gone(self, app: EventsApplication) -> None:
        event_id = self.create(app)
        app.delete_event(event_id, by="owner", expected_version=None)
        deleted = app.history(event_id)[-1]

        with pytest.raises(GoneError):
            app.event_as_of(event_id, deleted.timestamp)

    def test_history_lists_every_fact_in_order(self, app: EventsApplication) -> None:
        event_id = self.create(app)
        app.update_event(
            event_id, by="owner", now=NOW, expected_version=None, changes={"name": "Retro"}
        )
        app.update_event(
            event_id, by="owner", now=NOW, expected_version=None, changes={"location": "Jaffa"}
        )
        app.delete_event(event_id, by="owner", expected_version=None)

        facts = app.history(event_id)

        assert [type(fact) for fact in facts] == [
            Event.Created,
            Event.Updated,
            Event.Updated,
            Event.Deleted,
        ]
        assert [fact.originator_version for fact in facts] == [1, 2, 3, 4]
        assert [fact.changes for fact in facts[1:3]] == [{"name": "Retro"}, {"location": "Jaffa"}]
        assert facts[3].by == "owner"
        assert [fact.timestamp for fact in facts] == sorted(fact.timestamp for fact in facts)

    def test_history_of_an_unknown_id_is_not_found(self, app: EventsApplication) -> None:
        with pytest.raises(NotFoundError):
            app.history(uuid4())

    def test_facts_come_back_from_the_store_as_they_were_saved(
        self, app: EventsApplication
    ) -> None:
        """Datetimes nested in Updated.changes return aware, equal and in UTC (whatever offset
        the command gave), and participant lists return as lists."""
        event_id = self.create(app)
        new_start = (START + timedelta(hours=1)).astimezone(PLUS_TWO)
        new_end = END + timedelta(hours=2)
        app.update_event(
            event_id,
            by="owner",
            now=NOW,
            expected_version=None,
            changes={
                "starting_time": new_start,
                "end_time": new_end,
                "participants": ["p-3", "p-1"],
            },
        )

        created, updated = app.history(event_id)

        assert isinstance(created, Event.Created)
        assert created.starting_time == START and created.starting_time.tzinfo is not None
        assert type(created.participants) is list
        assert created.participants == ["p-1", "p-2"]
        assert isinstance(updated, Event.Updated)
        assert updated.changes == {
            "starting_time": new_start,
            "end_time": new_end,
            "participants": ["p-3", "p-1"],
        }
        assert isinstance(updated.changes["starting_time"], datetime)
        assert updated.changes["starting_time"].utcoffset() == timedelta(0)
        assert isinstance(updated.changes["end_time"], datetime)
        assert updated.changes["end_time"].utcoffset() == timedelta(0)
        assert type(updated.changes["participants"]) is list
        event = app.get_event(event_id)
        assert (event.starting_time, event.end_time) == (new_start, new_end)
        assert type(event.participants) is list

    # --- users ----------------------------------------------------------------------------

    def test_register_user_stores_a_registered_fact(self, app: EventsApplication) -> None:
        written = app.register_user()

        user = written.aggregate
        assert isinstance(user, User)
        assert written.position == app.recorder.max_notification_id()
        (fact,) = app.events.get(user.id)
        assert isinstance(fact, User.Registered)

    def test_change_user_records_which_profile_fields_changed(self, app: EventsApplication) -> None:
        user_id = app.register_user().aggregate.id

        written = app.change_user(user_id, profile_fields=["email"], password=False)

        assert written.position == app.recorder.max_notification_id()
        facts = list(app.events.get(user_id))
        assert [type(fact) for fact in facts] == [User.Registered, User.ProfileChanged]
        assert facts[1].fields == ["email"]

    def test_change_user_records_a_password_change(self, app: EventsApplication) -> None:
        user_id = app.register_user().aggregate.id

        app.change_user(user_id, profile_fields=[], password=True)

        facts = list(app.events.get(user_id))
        assert [type(fact) for fact in facts] == [User.Registered, User.PasswordChanged]

    def test_change_user_records_profile_and_password_in_one_save(
        self, app: EventsApplication
    ) -> None:
        user_id = app.register_user().aggregate.id
        before = app.recorder.max_notification_id()

        written = app.change_user(user_id, profile_fields=["username", "email"], password=True)

        stored = notifications_after(app, before)
        assert [n.originator_version for n in stored] == [2, 3]
        assert written.position == stored[-1].id
        facts = list(app.events.get(user_id))
        assert facts[1].fields == ["username", "email"]
        assert isinstance(facts[2], User.PasswordChanged)

    def test_change_user_that_changes_nothing_stores_nothing(self, app: EventsApplication) -> None:
        user_id = app.register_user().aggregate.id
        before = app.recorder.max_notification_id()

        written = app.change_user(user_id, profile_fields=[], password=False)

        assert written.position is None
        assert app.recorder.max_notification_id() == before

    def test_change_user_of_an_unknown_id_is_not_found(self, app: EventsApplication) -> None:
        with pytest.raises(NotFoundError):
            app.change_user(uuid4(), profile_fields=["email"], password=False)

    def test_an_event_id_is_not_a_user(self, app: EventsApplication) -> None:
        event_id = self.create(app)

        with pytest.raises(NotFoundError):
            app.change_user(event_id, profile_fields=["email"], password=False)

    def test_a_deleted_user_cannot_change_anymore(self, app: EventsApplication) -> None:
        """A request that passed the token check just before the account was deleted must not
        write a ProfileChanged after Deleted: a deleted user is gone (SPEC §4 Users)."""
        user_id = app.register_user().aggregate.id
        app.delete_user(user_id, by=str(user_id))
        before = app.recorder.max_notification_id()

        with pytest.raises(GoneError):
            app.change_user(user_id, profile_fields=["email"], password=True)

        assert app.recorder.max_notification_id() == before

    def test_delete_user_ends_the_user_and_their_live_events_in_one_save(
        self, observed: ObservedApplication
    ) -> None:
        app = observed
        user_id = app.register_user().aggregate.id
        owner = str(user_id)
        first = self.create(app, owner_id=owner, name="First")
        already_gone = self.create(app, owner_id=owner, name="Already gone")
        second = self.create(app, owner_id=owner, name="Second")
        someone_elses = self.create(app, owner_id="someone else")
        app.delete_event(already_gone, by=owner, expected_version=None)
        before = app.recorder.max_notification_id()

        observed.saves.clear()

        written = app.delete_user(user_id, by=owner, listed=[first, already_gone, second])

        assert observed.saves == [4]

        stored = notifications_after(app, before)
        assert len(stored) == 4
        ids = [n.id for n in stored]
        assert ids == list(range(ids[0], ids[0] + 4))
        assert ids[0] == (before or 0) + 1
        assert written.position == ids[-1]
        assert [n.originator_id for n in stored] == [user_id, ownership_id(owner), first, second]
        user_facts = list(app.events.get(user_id))
        assert isinstance(user_facts[-1], User.Deleted)
        for event_id in (first, second):
            deleted = app.history(event_id)[-1]
            assert isinstance(deleted, Event.Deleted)
            assert deleted.by == owner
            with pytest.raises(GoneError):
                app.get_event(event_id)
        assert len(app.history(already_gone)) == 2
        assert app.get_event(someone_elses).version == 1

    def test_delete_user_stores_nothing_when_one_of_the_events_cannot_be_deleted(
        self, app: EventsApplication
    ) -> None:
        user_id = app.register_user().aggregate.id
        own = self.create(app, owner_id=str(user_id))
        not_theirs = self.create(app, owner_id="someone else")
        before = app.recorder.max_notification_id()

        with pytest.raises(ForbiddenError):
            app.delete_user(user_id, by=str(user_id), listed=[own, not_theirs])

        assert app.recorder.max_notification_id() == before
        assert app.get_event(own).version == 1

    def test_deleting_a_deleted_user_again_stores_nothing_so_a_stopped_deletion_can_finish(
        self, app: EventsApplication
    ) -> None:
        """The HTTP deletion erases personal data after this save; when it stopped in between
        (the fuzzer found one such stop), the account still signs in and asking again must
        reach the erasure instead of answering 410 for good."""
        user_id = app.register_user().aggregate.id
        app.delete_user(user_id, by=str(user_id))
        before = app.recorder.max_notification_id()

        written = app.delete_user(user_id, by=str(user_id))

        assert written.position is None
        assert app.recorder.max_notification_id() == before

    def test_delete_user_of_an_unknown_id_is_not_found(self, app: EventsApplication) -> None:
        user_id = uuid4()
        with pytest.raises(NotFoundError):
            app.delete_user(user_id, by=str(user_id))

    def test_delete_user_cascades_to_every_event_its_ownership_holds_unlisted(
        self, app: EventsApplication
    ) -> None:
        user_id = app.register_user().aggregate.id
        owner = str(user_id)
        one = self.create(app, owner_id=owner)
        batch = app.create_events(owner_id=owner,
                                  items=[fields(name=f"Talk {i}") for i in range(2)])

        app.delete_user(user_id, by=owner)

        for event_id in (one, *(event.id for event in batch.aggregates)):
            assert isinstance(app.history(event_id)[-1], Event.Deleted)
        owned = app.repository.get(ownership_id(owner))
        assert isinstance(owned, Ownership) and owned.closed

    def test_no_event_is_created_for_an_owner_whose_account_is_deleted(
        self, app: EventsApplication
    ) -> None:
        user_id = app.register_user().aggregate.id
        owner = str(user_id)
        app.delete_user(user_id, by=owner)
        before = app.recorder.max_notification_id()

        with pytest.raises(AccountClosedError):
            app.create_event(owner_id=owner, **fields())
        with pytest.raises(AccountClosedError):
            app.create_events(owner_id=owner, items=[fields()])

        assert app.recorder.max_notification_id() == before

    def test_an_event_created_while_its_owner_is_being_deleted_is_deleted_with_the_account(
        self, env: dict[str, str]
    ) -> None:
        """The creation saves between the deletion's get and its save: the deletion's save
        then conflicts on the owner's Ownership, and the deletion, redone, cascades to the
        new event too."""
        race = Interrupted()
        app = EventsApplication(env=env, writer=race.writer)
        try:
            user_id = app.register_user().aggregate.id
            owner = str(user_id)
            first = self.create(app, owner_id=owner)
            raced: list[UUID] = []
            race.interlude = lambda: raced.append(self.create(app, owner_id=owner, name="Raced"))

            app.delete_user(user_id, by=owner)

            assert len(raced) == 1, "the creation did not run inside the deletion"
            for event_id in (first, *raced):
                deleted = app.history(event_id)[-1]
                assert isinstance(deleted, Event.Deleted) and deleted.by == owner
        finally:
            app.close()

    def test_an_event_created_while_its_owner_is_being_deleted_is_refused_when_it_saves_last(
        self, env: dict[str, str]
    ) -> None:
        """The deletion saves between the creation's get and its save: the creation, redone
        on the closed Ownership, is refused as from an erased account, and stores nothing."""
        race = Interrupted()
        app = EventsApplication(env=env, writer=race.writer)
        try:
            user_id = app.register_user().aggregate.id
            owner = str(user_id)
            before = app.recorder.max_notification_id()
            race.interlude = lambda: app.delete_user(user_id, by=owner) and None

            with pytest.raises(AccountClosedError):
                app.create_event(owner_id=owner, **fields())

            assert [n.originator_id for n in notifications_after(app, before)] == [
                user_id, ownership_id(owner), ownership_id(owner)]  # Deleted; Opened, Closed
        finally:
            app.close()

    def test_register_user_under_a_reserved_id_and_again_records_it_once(
        self, app: EventsApplication
    ) -> None:
        user_id = uuid4()

        first = app.register_user(user_id)
        again = app.register_user(user_id)

        assert first.aggregate.id == user_id and first.position is not None
        assert again.position is None
        assert [type(fact) for fact in app.events.get(user_id)] == [User.Registered]


class Interrupted:
    """A writer that, once, lets something else happen between a command's get and its save
    (the race two writers on one aggregate can meet)."""

    def __init__(self) -> None:
        self.interlude: Callable[[], None] | None = None

    def writer(self, aggregates: Aggregates, save: Save) -> Executor:
        def saving(*objs: Any) -> Any:
            if self.interlude is not None:
                interlude, self.interlude = self.interlude, None
                interlude()
            return save(*objs)

        return WriteNow(aggregates, saving)

    # --- operators --------------------------------------------------------------------------

    def test_an_operator_deletes_someone_elses_event_and_the_fact_names_the_operator(
        self, app: EventsApplication
    ) -> None:
        event_id = self.create(app, owner_id="owner")
        with pytest.raises(ForbiddenError):
            app.delete_event(event_id, by="operator", expected_version=None)

        app.delete_event(event_id, by="operator", expected_version=None, operator=True)

        deleted = app.history(event_id)[-1]
        assert isinstance(deleted, Event.Deleted)
        assert deleted.by == "operator"

    def test_an_operator_may_delete_but_not_change_someone_elses_event(
        self, app: EventsApplication
    ) -> None:
        event_id = self.create(app, owner_id="owner")

        with pytest.raises(ForbiddenError):
            app.update_event(event_id, by="operator", now=NOW, expected_version=None,
                             changes={"name": "Mine now"})

    def test_an_account_deleted_by_an_operator_names_the_operator_in_every_fact(
        self, app: EventsApplication
    ) -> None:
        user_id = app.register_user().aggregate.id
        operator = str(app.register_user().aggregate.id)
        owned = self.create(app, owner_id=str(user_id))

        app.delete_user(user_id, by=operator)

        user_deleted = list(app.events.get(user_id))[-1]
        assert isinstance(user_deleted, User.Deleted)
        assert user_deleted.by == operator
        event_deleted = app.history(owned)[-1]
        assert isinstance(event_deleted, Event.Deleted)
        assert event_deleted.by == operator

    def test_grants_and_revocations_decide_who_is_an_operator(
        self, app: EventsApplication
    ) -> None:
        first = app.register_user().aggregate.id
        second = app.register_user().aggregate.id
        third = app.register_user().aggregate.id
        assert not app.is_operator(first)
        assert app.operators() == []

        for user_id in (first, second, third):
            app.grant_operator(user_id)
        assert app.grant_operator(first).position is None  # already one: nothing recorded
        app.revoke_operator(second)
        app.delete_user(third)

        assert app.is_operator(first)
        assert not app.is_operator(second)
        assert not app.is_operator(third)
        assert not app.is_operator(uuid4())
        assert app.operators() == [str(first)]


class TestInMemory(ApplicationContract):
    @pytest.fixture
    def env(self, tmp_path: Path) -> dict[str, str]:
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}


class TestOnSQLiteFile(ApplicationContract):
    @pytest.fixture
    def env(self, tmp_path: Path) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(tmp_path / "e.sqlite"),
        }

    @pytest.fixture
    def other_writer(
        self, env: dict[str, str], observed: ObservedApplication
    ) -> Iterator[EventsApplication]:
        """A second application instance over the same file: another process, in effect."""
        application = EventsApplication(env=env)
        yield application
        application.close()

    def test_a_second_instance_over_the_same_file_reads_what_the_first_wrote(
        self, app: EventsApplication, env: dict[str, str]
    ) -> None:
        event_id = self.create(app)
        second = EventsApplication(env=env)
        try:
            event = second.get_event(event_id)
            assert event.state() == app.get_event(event_id).state()
            assert second.recorder.max_notification_id() == app.recorder.max_notification_id()
        finally:
            second.close()

    def test_an_update_after_another_instance_saved_applies_on_the_newer_state(
        self, app: EventsApplication, env: dict[str, str]
    ) -> None:
        """Nothing is lost: the later writer does not overwrite the earlier one's change."""
        event_id = self.create(app)
        app.get_event(event_id)  # this writer has seen version 1
        second = EventsApplication(env=env)
        try:
            event = second.repository.get(event_id)
            assert isinstance(event, Event)
            event.change(by="owner", now=NOW, location="Jaffa")
            second.save(event)
        finally:
            second.close()

        written = app.update_event(
            event_id, by="owner", now=NOW, expected_version=None, changes={"name": "Retro"}
        )

        assert written.changes == [{"name": "Retro"}]
        event = app.get_event(event_id)
        assert (event.version, event.name, event.location) == (3, "Retro", "Jaffa")
