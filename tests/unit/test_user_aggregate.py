"""The User aggregate: an account's life as facts that hold no personal data."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from domain.application import EventsApplication
from domain.errors import GoneError
from domain.users import User

# What a fact may carry besides its own fields: the envelope every eventsourcing fact has.
ENVELOPE = {"originator_id", "originator_version", "timestamp"}


def life_of_a_user() -> tuple[User, list[Any]]:
    user = User()
    user.change_profile(["username", "email"])
    user.change_password()
    user.delete()
    return user, list(user.collect_events())


def test_a_user_lives_through_registered_profile_changed_password_changed_and_deleted() -> None:
    user, facts = life_of_a_user()

    assert [type(fact) for fact in facts] == [
        User.Registered,
        User.ProfileChanged,
        User.PasswordChanged,
        User.Deleted,
    ]
    assert [fact.originator_version for fact in facts] == [1, 2, 3, 4]
    assert all(fact.originator_id == user.id for fact in facts)
    assert user.deleted is True


def test_a_new_user_is_not_deleted() -> None:
    user = User()

    assert user.deleted is False
    assert user.version == 1


def test_the_registered_fact_carries_nothing_but_its_envelope() -> None:
    registered = User().collect_events()[0]

    assert isinstance(registered, User.Registered)
    assert set(vars(registered)) <= ENVELOPE | {"originator_topic"}


def test_profile_changed_names_the_changed_fields_and_never_their_values() -> None:
    user = User()
    user.collect_events()

    user.change_profile(["email"])

    (fact,) = user.collect_events()
    assert isinstance(fact, User.ProfileChanged)
    assert set(vars(fact)) == ENVELOPE | {"fields"}
    assert fact.fields == ["email"]


def test_password_changed_carries_nothing_but_its_envelope_and_deleted_only_who() -> None:
    user, facts = life_of_a_user()

    assert set(vars(facts[2])) == ENVELOPE
    assert set(vars(facts[3])) == ENVELOPE | {"by"}
    assert facts[3].by == str(user.id)


def test_no_fact_of_a_user_holds_a_personal_value() -> None:
    """Whatever a fact holds is an id, a version, a time, a topic or a list of field names:
    no string in it could be someone's username, email or password hash."""
    _, facts = life_of_a_user()

    for fact in facts:
        assert set(vars(fact)) <= ENVELOPE | {"originator_topic", "fields", "by"}
        for key, value in vars(fact).items():
            if key == "by":
                assert UUID(value) == fact.originator_id  # an account's id, nothing more
            elif isinstance(value, str):
                assert key == "originator_topic", f"{type(fact).__name__}.{key} = {value!r}"
                assert value.startswith("domain.users:")
            if key == "fields":
                assert set(value) <= {"username", "email"}


def test_an_operator_deleting_an_account_is_named_by_the_fact() -> None:
    user = User()
    operator = str(uuid4())

    user.delete(by=operator)

    deleted = user.collect_events()[-1]
    assert isinstance(deleted, User.Deleted)
    assert deleted.by == operator


def test_a_deletion_stored_before_operators_existed_is_read_as_the_owners_own() -> None:
    """Version 1 of User.Deleted had no `by`: such stored facts are upcast on reading."""
    mapper = EventsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
    user = User()
    user.delete()
    stored = mapper.to_stored_event(user.collect_events()[-1])
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2
    del state["by"]
    old = StoredEvent(stored.originator_id, stored.originator_version, stored.topic,
                      json.dumps(state).encode())

    read = mapper.to_domain_event(old)

    assert isinstance(read, User.Deleted)
    assert read.by == str(user.id)


def test_grants_and_revocations_are_facts_recorded_only_when_they_change_something() -> None:
    user = User()
    user.collect_events()

    user.grant_operator()
    user.grant_operator()
    assert user.operator is True
    user.revoke_operator()
    user.revoke_operator()

    assert [type(f) for f in user.collect_events()] == [User.OperatorGranted,
                                                        User.OperatorRevoked]
    assert user.operator is False


def test_a_deleted_account_is_no_operator_and_cannot_be_granted() -> None:
    user = User()
    user.grant_operator()
    user.delete()

    assert user.operator is False
    with pytest.raises(GoneError):
        user.grant_operator()


def test_deleting_a_user_twice_is_gone() -> None:
    user = User()
    user.delete()
    user.collect_events()

    with pytest.raises(GoneError):
        user.delete()

    assert user.collect_events() == []
    assert user.version == 2
