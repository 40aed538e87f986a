"""The user aggregate: an account's life as facts that carry no personal data at all."""

from __future__ import annotations

from eventsourcing.domain import Aggregate, event

from domain.errors import GoneError


class User(Aggregate):
    """A registered account. Username, email and password hash live in the personal-data
    table that deletion wipes; the facts only say *that* something changed."""

    @event("Registered")
    def __init__(self) -> None:
        self.deleted = False

    @event("ProfileChanged")
    def change_profile(self, fields: list[str]) -> None:
        """`fields` names what changed (e.g. ["email"]), never the values."""

    @event("PasswordChanged")
    def change_password(self) -> None:
        pass

    def delete(self) -> None:
        if self.deleted:
            raise GoneError("this account has been deleted")
        self._record_deletion()

    @event("Deleted")
    def _record_deletion(self) -> None:
        self.deleted = True
