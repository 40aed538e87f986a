"""The use cases of Alphabet Events, read as get → act → save on the event store.

eventsourcing is synchronous; callers in async code run these methods off the event loop."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from domain.errors import (
    ConflictError,
    DomainError,
    GoneError,
    InvalidItemsError,
    NotFoundError,
    VersionMismatchError,
)
from domain.events import Event
from domain.reminders import Reminder
from domain.users import User

# Writers racing on one aggregate retry from a fresh read; this bounds pathological contention.
MAX_ATTEMPTS = 50

A = TypeVar("A", Event, User)
# A batch's items already found invalid: index in the batch → field → problem.
Refused = Mapping[int, dict[str, str]]


@dataclass
class Written:
    """What a write produced: the aggregates after it, what changed in each (for updates), and
    the log position of its last fact (None when the command changed nothing)."""

    aggregates: list[Any]
    changes: list[dict[str, Any]] = field(default_factory=list)
    position: int | None = None

    @property
    def aggregate(self) -> Any:
        return self.aggregates[0]


@dataclass(frozen=True)
class Command:
    """A use case's deciding step, apart from its saving: `load` reads (or creates) the
    aggregates, `act` applies the rules to them and returns what changed in each. An executor
    saves the result, redoing the command on fresh state when another writer won a race — or,
    for a `strict` command (If-Match), refusing it instead."""

    load: Callable[[], list[Any]]
    act: Callable[[list[Any]], list[dict[str, Any]] | None]
    strict: bool = False


class EventsApplication(Application[UUID]):
    name = "Alphabet"

    def __init__(self, env: Any = None) -> None:
        super().__init__(env)
        # Replaced by a group-committing executor when many writers share one process.
        self.execute: Callable[[Command], Written] = self.execute_now

    def create_event(self, *, owner_id: str, **fields: Any) -> Written:
        return self.execute(Command(
            lambda: [Event.create(owner_id=owner_id, **fields)],
            lambda events: [events[0].state()],
        ))

    def create_events(self, *, owner_id: str, items: Sequence[dict[str, Any]]) -> Written:
        """All or nothing: every event's Created fact goes into one atomic save."""
        return self.execute(Command(
            lambda: each(items, lambda fields: Event.create(owner_id=owner_id, **fields)),
            lambda events: [event.state() for event in events],
        ))

    def update_event(
        self,
        event_id: UUID,
        *,
        by: str,
        now: datetime,
        expected_version: int | None,
        changes: dict[str, Any],
    ) -> Written:
        return self.execute(Command(
            lambda: [self.get_event_for_write(event_id, by, expected_version)],
            lambda events: [events[0].change(by=by, now=now, **changes)],
            expected_version is not None,
        ))

    def delete_event(self, event_id: UUID, *, by: str, expected_version: int | None,
                     operator: bool = False) -> Written:
        """`operator`: `by` may delete anyone's event (see `is_operator`)."""
        return self.execute(Command(
            lambda: [self.get_event_for_write(event_id, by, expected_version, operator)],
            lambda events: events[0].delete(by=by, operator=operator),
            expected_version is not None,
        ))

    def update_events(
        self, *, by: str, now: datetime, items: Sequence[tuple[UUID, dict[str, Any]]],
        refused: Refused | None = None,
    ) -> Written:
        """Batch update: every item checked (problems reported by index, with those `refused`
        already), then one atomic save."""
        ids = unique_ids([event_id for event_id, _ in items], refused)
        return self.execute(Command(
            lambda: [self._loaded_for_write(event_id, by) for event_id in ids],
            lambda events: each(
                list(zip(events, items, strict=True)),
                lambda pair: loaded(pair[0]).change(by=by, now=now, **pair[1][1]),
                refused,
            ),
        ))

    def delete_events(self, *, by: str, event_ids: Sequence[UUID],
                      refused: Refused | None = None) -> Written:
        ids = unique_ids(event_ids, refused)

        def delete(event: Event | DomainError) -> dict[str, Any]:
            loaded(event).delete(by=by)
            return {}

        return self.execute(Command(
            lambda: [self._loaded_for_write(event_id, by) for event_id in ids],
            lambda events: each(events, delete, refused),
        ))

    def _loaded_for_write(self, event_id: UUID, by: str) -> Event | DomainError:
        """A batch item's event, or why it cannot be written: the batch's act reports every
        item's problem, those found loading and those found changing alike."""
        try:
            return self.get_event_for_write(event_id, by, None)
        except DomainError as exc:
            return exc

    def get_event(self, event_id: UUID, version: int | None = None) -> Event:
        """The event as it is (or was at `version`); a deleted one is Gone, not missing."""
        event = self._get(Event, event_id, version)
        if event.deleted:
            raise GoneError(f'event "{event.name}" has been deleted')
        return event

    def event_at_version(self, event_id: UUID, version: int) -> Event:
        latest = self._get(Event, event_id)
        if not 1 <= version <= latest.version:
            raise NotFoundError(
                f"event {event_id} has versions 1 to {latest.version}; there is no {version}"
            )
        return self.get_event(event_id, version)

    def get_event_for_write(
        self, event_id: UUID, by: str, expected_version: int | None, operator: bool = False
    ) -> Event:
        event = self._get(Event, event_id)
        event.check_writable(by, operator)
        if expected_version is not None and event.version != expected_version:
            raise VersionMismatchError(
                f"the event is at version {event.version}, not {expected_version}; "
                "read it again and retry"
            )
        return event

    def event_as_of(self, event_id: UUID, at: datetime) -> Event:
        facts = [fact for fact in self.history(event_id) if fact.timestamp <= at]
        if not facts:
            raise NotFoundError(f"event {event_id} did not exist yet at {at.isoformat()}")
        return self.get_event(event_id, facts[-1].originator_version)

    def history(self, event_id: UUID) -> list[Any]:
        """Every fact of the event in order (Event.Created, .Updated, .Deleted)."""
        facts: list[Any] = list(self.events.get(event_id))
        if not facts or not isinstance(facts[0], Event.Created):
            raise NotFoundError(f"no event with id {event_id}")
        return facts

    def record_reminder(self, event_id: UUID, starting_time: datetime, now: datetime) -> Written:
        """Record that the reminder for this start fell due — unless the event was deleted,
        moved or has started, or the reminder was already recorded (then nothing is written)."""
        try:
            event = self.get_event(event_id)
        except (NotFoundError, GoneError):
            return Written([])
        if event.starting_time != starting_time or starting_time <= now:
            return Written([event])
        reminder = Reminder(event_id=str(event_id), starting_time=starting_time)
        try:
            return Written([reminder], position=self._save(reminder))
        except IntegrityError:
            return Written([event])

    def user_deleted(self, user_id: UUID) -> bool:
        """Whether the account has been deleted (or never existed)."""
        try:
            return self._get(User, user_id).deleted
        except NotFoundError:
            return True

    def register_user(self) -> Written:
        return self.execute(Command(lambda: [User()], lambda users: None))

    def change_user(self, user_id: UUID, *, profile_fields: list[str], password: bool) -> Written:
        def act(users: list[User]) -> None:
            if profile_fields:
                users[0].change_profile(profile_fields)
            if password:
                users[0].change_password()

        return self.execute(Command(lambda: [self._get(User, user_id)], act))

    def delete_user(self, user_id: UUID, owned_event_ids: Sequence[UUID],
                    by: str | None = None) -> Written:
        """The account and every live event it owns end in one atomic save, so participants
        are told of each cancellation exactly as if the owner had deleted it. An account
        already deleted records nothing: a deletion that stopped after this save (before its
        personal data was erased) is finished by asking again. `by` is the operator deleting
        someone else's account (the caller checked): every fact of the cascade names them."""
        actor = by or str(user_id)

        def load() -> list[Any]:
            owned = [self._get(Event, event_id) for event_id in owned_event_ids]
            return [self._get(User, user_id), *(e for e in owned if not e.deleted)]

        def act(aggregates: list[Any]) -> None:
            if aggregates[0].deleted:
                return
            aggregates[0].delete(by=actor)
            for event in aggregates[1:]:
                event.check_writable(str(user_id))  # only the account's own events go
                event.delete(by=actor, operator=True)

        return self.execute(Command(load, act))

    def is_operator(self, user_id: UUID) -> bool:
        """Whether an operator grant stands on the account (read from its facts, through the
        aggregate cache). Operators named by the settings are the caller's to add."""
        try:
            return self._get(User, user_id).operator
        except NotFoundError:
            return False

    def grant_operator(self, user_id: UUID) -> Written:
        return self.execute(Command(lambda: [self._get(User, user_id)],
                                    lambda users: users[0].grant_operator()))

    def revoke_operator(self, user_id: UUID) -> Written:
        return self.execute(Command(lambda: [self._get(User, user_id)],
                                    lambda users: users[0].revoke_operator()))

    def operators(self) -> list[str]:
        """The ids of the accounts whose operator grant stands, from the grant and revoke
        facts alone (the log filtered by their topics), in the order they were granted."""
        topics = [get_topic(User.OperatorGranted), get_topic(User.OperatorRevoked),
                  get_topic(User.Deleted)]
        granted: dict[str, None] = {}
        after = 0
        while notifications := self.recorder.select_notifications(
                start=after, limit=1000, topics=topics, inclusive_of_start=False):
            for notification in notifications:
                fact = self.mapper.to_domain_event(notification)
                user_id = str(fact.originator_id)
                if isinstance(fact, User.OperatorGranted):
                    granted[user_id] = None
                else:
                    granted.pop(user_id, None)
            after = notifications[-1].id
        return list(granted)

    def _get(self, cls: type[A], aggregate_id: UUID, version: int | None = None) -> A:
        try:
            aggregate: Any = self.repository.get(aggregate_id, version=version)
        except AggregateNotFoundError:
            raise NotFoundError(f"no {cls.__name__.lower()} with id {aggregate_id}") from None
        if not isinstance(aggregate, cls):
            raise NotFoundError(f"no {cls.__name__.lower()} with id {aggregate_id}")
        return aggregate

    def execute_now(self, command: Command) -> Written:
        """Read, act, save; when another writer saved first, read again and redo the command
        on the newer state (or answer 412 when the client pinned a version)."""
        for _ in range(MAX_ATTEMPTS):
            aggregates = command.load()
            changes = command.act(aggregates)
            try:
                position = self._save(*aggregates)
            except IntegrityError:
                if command.strict:
                    raise VersionMismatchError(
                        "the event was changed by someone else; read it again and retry"
                    ) from None
                continue
            return Written(aggregates, changes or [], position)
        raise ConflictError("too many concurrent changes to this item; try again")

    def _save(self, *aggregates: Any) -> int | None:
        recordings = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else None


T = TypeVar("T")
R = TypeVar("R")


def each(items: Sequence[T], act: Callable[[T], R], refused: Refused | None = None) -> list[R]:
    """Apply `act` to every item, collecting every refusal by index before giving up, so a
    batch is answered with all its problems at once and nothing is stored. `refused` holds
    the problems already found in other items of the batch, by their index in it; `items`
    are the batch's other items, in order."""
    done, problems = sift(items, act, refused)
    if problems:
        raise InvalidItemsError(report(problems))
    return done


def sift(items: Sequence[T], act: Callable[[T], R],
         refused: Refused | None = None) -> tuple[list[R], dict[int, dict[str, str]]]:
    """As `each`, without giving up: what `act` made of the items it accepted (in order), and
    the problems of the whole batch so far, `refused` and the items `act` refused."""
    problems = dict(refused or {})
    done: list[R] = []
    for index, item in zip(indexes(len(items), problems), items, strict=True):
        try:
            done.append(act(item))
        except DomainError as exc:
            problems[index] = exc.fields or {"error": str(exc)}
    return done, problems


def indexes(count: int, refused: Refused) -> list[int]:
    """The indexes in the whole batch of `count` items that are not `refused`."""
    return [i for i in range(count + len(refused)) if i not in refused][:count]


def report(problems: Refused) -> dict[str, dict[str, str]]:
    return {str(index): problems[index] for index in sorted(problems)}


def loaded(event: Event | DomainError) -> Event:
    if isinstance(event, DomainError):
        raise event
    return event


def unique_ids(ids: Sequence[UUID], refused: Refused | None = None) -> Sequence[UUID]:
    refused = refused or {}
    seen: set[UUID] = set()
    repeated = {}
    for index, event_id in zip(indexes(len(ids), refused), ids, strict=True):
        if event_id in seen:
            repeated[index] = {"id": "appears more than once in the batch"}
        seen.add(event_id)
    if repeated:
        raise InvalidItemsError(report({**refused, **repeated}))
    return ids
