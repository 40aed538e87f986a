"""The user aggregate: an account's life as facts that carry no personal data at all."""

from __future__ import annotations

from typing import Any
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
        """`by` is who deleted the account: its owner, or an operator. Facts stored before
        operators existed (version 1) had no `by`: the owner deleted their own account."""

        by: str
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["by"] = str(state["originator_id"])

    class OperatorGranted(Aggregate.Event):
        """The account may delete any event and any account, and replay the views."""

    class OperatorRevoked(Aggregate.Event):
        pass

    @event(Registered)
    def __init__(self) -> None:
        self.deleted = False
        self.operator = False

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

    def delete(self, by: str | None = None) -> None:
        """`by` another account than this one is an operator (the caller checked)."""
        self.check_live()
        self._record_deletion(by=by or str(self.id))

    def grant_operator(self) -> None:
        """Granting twice records nothing: the trail shows each real change once."""
        self.check_live()
        if not self.operator:
            self._record_grant()

    def revoke_operator(self) -> None:
        self.check_live()
        if self.operator:
            self._record_revocation()

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
    def _record_deletion(self, by: str) -> None:
        self.deleted = True
        self.operator = False

    @event(OperatorGranted)
    def _record_grant(self) -> None:
        self.operator = True

    @event(OperatorRevoked)
    def _record_revocation(self) -> None:
        self.operator = False
