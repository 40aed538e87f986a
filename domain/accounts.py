"""Accounts: sign-up, change and deletion, each a use case over two stores — the facts (the
event store, through EventsApplication) and the person's data (usernames, addresses,
password hashes: never in a fact) — and, for deletion, the mail kept about the person.
The routes (api/users.py, api/auth.py) call one method each; the ports below are what the
composition root (alphabet.wiring) plugs in: the state database's People for the personal
data, the events view for the owned-events lookup, the dev outbox for mail erasure.

The two stores are separate transactions (separate files on SQLite), so no use case here
writes both atomically. Each orders its writes so that a failure between them leaves a state
that is consistent and that asking again completes; the method says how."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID, uuid4

from domain.application import EventsApplication
from domain.errors import NotFoundError
from domain.writing import Written


class Person(Protocol):
    """An account's personal data as stored (projections.people.Account)."""

    @property
    def username(self) -> str: ...

    @property
    def email(self) -> str: ...

    @property
    def password_hash(self) -> str: ...

    @property
    def updated_at(self) -> str: ...


class PersonalData(Protocol):
    """Usernames, addresses and password hashes by account id (projections.people.People)."""

    def check_free(self, username: str, email: str) -> None:
        """ConflictError (409) when another account holds either."""

    def add_user(self, user_id: str, username: str, email: str, password_hash: str,
                 stamp: str) -> None:
        """ConflictError when the name or the address is taken, however late the race."""

    def by_id(self, user_id: str) -> Person | None: ...

    def update(self, user_id: str, changes: dict[str, str], stamp: str) -> None:
        """Sets username/email/password_hash; ConflictError as add_user."""

    def erase(self, user_id: str) -> None:
        """Removes the row for good (no copy left in any file)."""


# The ids of the events the view lists for an owner, the view caught up to the log's head.
OwnedEventsLookup = Callable[[str], Sequence[str]]
# Removes every email kept that was sent to the person or names them.
MailErasure = Callable[[str], None]


@dataclass(frozen=True)
class Accounts:
    app: EventsApplication
    people: PersonalData
    owned_events: OwnedEventsLookup
    erase_mail: MailErasure

    def check_free(self, username: str, email: str) -> None:
        """Refuse a taken name before the costly password hash is computed."""
        self.people.check_free(username, email)

    def sign_up(self, username: str, email: str, password_hash: str, stamp: str) -> str:
        """Reserve the name and address first (the unique index refuses a lost race with a
        409 and nothing recorded), then record the Registered fact under the reserved id.
        Should that fact not be saved, the reservation is released: it named nobody yet. A
        process killed between the two leaves a reservation without a User: it signs in,
        and its first change or deletion records the Registered fact first (`registered`)."""
        user_id = uuid4()
        self.people.add_user(str(user_id), username, email, password_hash, stamp)
        try:
            self.app.register_user(user_id)
        except BaseException:
            self.people.erase(str(user_id))
            raise
        return str(user_id)

    def change(self, user_id: str, changes: dict[str, str], stamp: str) -> Written:
        """`changes` maps username/email/password_hash to new values. The values go first: a
        name taken, however late the race, is refused there (409) before any fact. Then the
        fact; should it not be saved (the account deleted meanwhile: 410; the store failing),
        the old values are put back, so nothing changed and the same request may be asked
        again. The values must be in place before the fact: a socket told of a password
        change checks its token against the password then (api.websockets), and with the
        fact first it could still find the old one and stay open. Only a process killed
        between the two leaves a change without its fact — the facts say *that* a field
        changed, never what, so the trail under-states one change; nothing is read back
        from it."""
        before = self.people.by_id(user_id)
        self.people.update(user_id, changes, stamp)
        try:
            return self.registered(user_id, lambda: self.app.change_user(
                UUID(user_id),
                profile_fields=sorted(set(changes) - {"password_hash"}),
                password="password_hash" in changes,
            ))
        except BaseException:
            if before is not None:
                self.people.update(user_id, {name: getattr(before, name) for name in changes},
                                   before.updated_at)
            raise

    def delete(self, user_id: str, *, by: str) -> Written:
        """The erasure and its whole cascade: the account's facts (User.Deleted, its
        Ownership closed, each live event it owns deleted — one atomic save), then its
        personal data, then the mail kept about it. A deletion stopped after the save is
        finished by asking again: the account still signs in until its data is erased, and
        a second deletion records nothing and erases. `by` is who asks: the account
        itself, or an operator (the caller checked), whom every fact of the cascade names."""
        listed = [UUID(event_id) for event_id in self.owned_events(user_id)]
        written = self.registered(
            user_id, lambda: self.app.delete_user(UUID(user_id), by=by, listed=listed))
        self.people.erase(user_id)
        self.erase_mail(user_id)
        return written

    def registered(self, user_id: str, use_case: Callable[[], Written]) -> Written:
        """The use case on the account's User; for an account whose sign-up stopped before
        its Registered fact (see sign_up), that fact is recorded first."""
        try:
            return use_case()
        except NotFoundError:
            if not self.app.register_user(UUID(user_id)).position:
                raise  # the User was there: what is missing is something else
            return use_case()
