"""The user aggregate: an account's life as facts that carry no personal data at all."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import GoneError


class User(Aggregate):
    """A registered account. Username, email and password hash live in the personal-data
    table that deletion wipes; the facts only say *that* something changed."""

    class Registered(Aggregate.Created):
        pass

    class ProfileChanged(Aggregate.Event):
        fields: list[str]

    class PasswordChanged(Aggregate.Event):
        pass

    class Deleted(Aggregate.Event):
        pass

    @event(Registered)
    def __init__(self) -> None:
        self.deleted = False

    @classmethod
    def register(cls, user_id: UUID) -> User:
        """A new account under the id its personal data was reserved with."""
        return cls._create(cls.Registered, id=user_id)

    def change_profile(self, fields: list[str]) -> None:
        """`fields` names what changed (e.g. ["email"]), never the values."""
        self.check_live()
        self._record_profile_change(fields)

    def change_password(self) -> None:
        self.check_live()
        self._record_password_change()

    def delete(self) -> None:
        self.check_live()
        self._record_deletion()

    def check_live(self) -> None:
        if self.deleted:
            raise GoneError("this account has been deleted")

    @event(ProfileChanged)
    def _record_profile_change(self, fields: list[str]) -> None:
        pass

    @event(PasswordChanged)
    def _record_password_change(self) -> None:
        pass

    @event(Deleted)
    def _record_deletion(self) -> None:
        self.deleted = True
