"""The User aggregate: an account's life as facts that hold no personal data."""

from __future__ import annotations

from typing import Any

import pytest

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


def test_password_changed_and_deleted_carry_nothing_but_their_envelope() -> None:
    _, facts = life_of_a_user()

    for fact in facts[2:]:
        assert set(vars(fact)) == ENVELOPE, type(fact).__name__


def test_no_fact_of_a_user_holds_a_personal_value() -> None:
    """Whatever a fact holds is an id, a version, a time, a topic or a list of field names:
    no string in it could be someone's username, email or password hash."""
    _, facts = life_of_a_user()

    for fact in facts:
        assert set(vars(fact)) <= ENVELOPE | {"originator_topic", "fields"}
        for key, value in vars(fact).items():
            if isinstance(value, str):
                assert key == "originator_topic", f"{type(fact).__name__}.{key} = {value!r}"
                assert value.startswith("domain.users:")
            if key == "fields":
                assert set(value) <= {"username", "email"}


def test_deleting_a_user_twice_is_gone() -> None:
    user = User()
    user.delete()
    user.collect_events()

    with pytest.raises(GoneError):
        user.delete()

    assert user.collect_events() == []
    assert user.version == 2
