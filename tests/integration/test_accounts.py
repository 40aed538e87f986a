"""The accounts service on real stores (SQLite event store, state database, dev outbox): what
each use case leaves behind when it is stopped between its two writes, and that asking again
completes it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from alphabet import wiring
from alphabet.settings import Settings
from consumers.mail.dev_outbox import erase_outbox
from domain.accounts import Accounts
from domain.application import EventsApplication
from domain.errors import ConflictError, GoneError
from domain.events import Event
from domain.users import User
from projections.database import StateDatabase
from projections.events_view import OwnedEvents
from projections.people import People
from tests.unit.fixtures import fields

STAMP = "2031-03-01T09:00:00Z"
HASH = "$argon2id$not-a-real-hash"


class Stopping(People):
    """The real People, stopped once (as a killed process would be) at the write named in
    `fail`."""

    fail: str | None = None

    def _stop(self, name: str) -> None:
        if self.fail == name:
            self.fail = None
            raise ConflictError("stopped here", {"username": "is already taken"})

    def erase(self, user_id: str) -> None:
        self._stop("erase")
        super().erase(user_id)


class FailingRegistration(EventsApplication):
    def register_user(self, user_id: UUID | None = None) -> Any:
        raise OSError("the event store is gone")


@dataclass
class System:
    app: EventsApplication
    db: StateDatabase
    people: Stopping
    accounts: Accounts
    outbox: Path

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def user_facts(self, user_id: str) -> list[type]:
        return [type(fact) for fact in self.app.events.get(UUID(user_id))]


def build(tmp_path: Path, app_class: type[EventsApplication] = EventsApplication) -> System:
    settings = Settings(data_dir=tmp_path)
    settings.prepare_data_dir()
    app = app_class(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                         "SQLITE_DBNAME": str(settings.event_store_path)})
    db = wiring.state_database(settings)
    people = Stopping(db)
    runner = wiring.follower(settings, app, db)
    outbox = settings.outbox_dir
    accounts = Accounts(app, people, OwnedEvents(db, runner.run_once),
                        lambda person: erase_outbox(outbox, person))
    return System(app, db, people, accounts, outbox)


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    built = build(tmp_path)
    yield built
    built.app.close()
    built.db.close()


def test_sign_up_reserves_the_name_then_registers_under_the_reserved_id(system: System) -> None:
    user_id = system.accounts.sign_up("alice", "alice@example.com", HASH, STAMP)

    account = system.people.by_id(user_id)
    assert account is not None and account.username == "alice"
    assert system.user_facts(user_id) == [User.Registered]


def test_a_sign_up_for_a_taken_name_records_no_fact(system: System) -> None:
    system.accounts.sign_up("alice", "alice@example.com", HASH, STAMP)
    head = system.head()

    with pytest.raises(ConflictError):
        system.accounts.sign_up("ALICE", "other@example.com", HASH, STAMP)

    assert system.head() == head


def test_a_sign_up_whose_fact_is_not_saved_releases_the_name(tmp_path: Path) -> None:
    failing = build(tmp_path, FailingRegistration)
    try:
        with pytest.raises(OSError):
            failing.accounts.sign_up("alice", "alice@example.com", HASH, STAMP)

        assert failing.people.by_username("alice") is None
        failing.people.check_free("alice", "alice@example.com")  # free again: no 409
        assert failing.head() == 0
    finally:
        failing.app.close()
        failing.db.close()


def test_a_change_whose_fact_is_refused_puts_the_old_values_back(system: System) -> None:
    """The values go first; the account deleted in the meantime (its fact refused, 410)
    leaves them as they were, so nothing changed and nothing says it did."""
    user_id = system.accounts.sign_up("alice", "alice@example.com", HASH, STAMP)
    system.app.delete_user(UUID(user_id))  # the facts only: its data is not erased yet
    head = system.head()

    with pytest.raises(GoneError):
        system.accounts.change(user_id, {"email": "new@example.com", "password_hash": "$new"},
                               "2031-03-02T09:00:00Z")

    account = system.people.by_id(user_id)
    assert account is not None
    assert (account.email, account.password_hash, account.updated_at) == (
        "alice@example.com", HASH, STAMP)
    assert system.head() == head


def test_a_change_writes_the_values_before_its_fact(system: System) -> None:
    """Whoever the fact reaches first (a socket checking its token's password) finds the new
    values already in place."""
    user_id = system.accounts.sign_up("alice", "alice@example.com", HASH, STAMP)
    seen: list[str | None] = []
    change_user = system.app.change_user

    def watched(*args: Any, **kwargs: Any) -> Any:
        account = system.people.by_id(user_id)
        seen.append(account.password_hash if account else None)
        return change_user(*args, **kwargs)

    system.app.change_user = watched  # type: ignore[method-assign]
    system.accounts.change(user_id, {"password_hash": "$new"}, STAMP)

    assert seen == ["$new"]
    assert system.user_facts(user_id) == [User.Registered, User.PasswordChanged]


def test_a_change_to_a_name_someone_else_holds_records_nothing(system: System) -> None:
    system.accounts.sign_up("bob", "bob@example.com", HASH, STAMP)
    user_id = system.accounts.sign_up("alice", "alice@example.com", HASH, STAMP)
    head = system.head()

    with pytest.raises(ConflictError):
        system.accounts.change(user_id, {"username": "Bob"}, STAMP)
    system.accounts.change(user_id, {"username": "ALICE"}, STAMP)  # one's own, recased

    assert system.head() == head + 1
    account = system.people.by_id(user_id)
    assert account is not None and account.username == "ALICE"


def test_delete_cascades_and_erases_the_person_and_their_mail(system: System) -> None:
    user_id = system.accounts.sign_up("alice", "alice@example.com", HASH, STAMP)
    event_id = system.app.create_event(owner_id=user_id, **fields()).aggregate.id
    letters = [system.outbox / user_id, system.outbox / "someone" / user_id]
    for folder in letters:
        folder.mkdir(parents=True)
        (folder / "letter.eml").write_text("Subject: hello\n")

    written = system.accounts.delete(user_id, by=user_id)

    assert written.position == system.head()
    assert isinstance(system.app.history(event_id)[-1], Event.Deleted)
    assert system.people.by_id(user_id) is None
    assert not any(folder.exists() for folder in letters)


def test_a_deletion_stopped_before_its_erasure_is_finished_by_asking_again(
    system: System,
) -> None:
    user_id = system.accounts.sign_up("alice", "alice@example.com", HASH, STAMP)
    system.people.fail = "erase"

    with pytest.raises(ConflictError):
        system.accounts.delete(user_id, by=user_id)
    assert system.people.by_id(user_id) is not None  # still signs in, so may ask again
    head = system.head()

    system.accounts.delete(user_id, by=user_id)

    assert system.head() == head  # nothing recorded twice
    assert system.people.by_id(user_id) is None


def test_an_account_whose_sign_up_stopped_before_its_fact_is_registered_when_deleted(
    system: System,
) -> None:
    """A process killed between the reservation and the Registered fact leaves personal data
    with no User; its deletion records the missing fact first, then deletes and erases."""
    user_id = "3f1c7c2e-8a0b-4d57-9f57-1f0f3e9f6c11"
    system.people.add_user(user_id, "alice", "alice@example.com", HASH, STAMP)
    event_id = system.app.create_event(owner_id=user_id, **fields()).aggregate.id

    system.accounts.delete(user_id, by=user_id)

    assert system.user_facts(user_id) == [User.Registered, User.Deleted]
    assert isinstance(system.app.history(event_id)[-1], Event.Deleted)
    assert system.people.by_id(user_id) is None
