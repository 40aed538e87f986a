"""The use cases of Alphabet Events, each read as get → act → save on the event store
(domain.writing says how a use case is written and who saves it).

eventsourcing is synchronous; callers in async code run these methods off the event loop.

Longer than ~300 lines on purpose: one Application is one event store, and its use cases are
its methods, as in eventsourcing's examples. The account use cases are not split off from the
event ones because they write each other's aggregates in one atomic save (a creation adds to
its owner's Ownership, an account's deletion ends its Ownership and its events): a second
class would share the executor, `fetch` and `event_for_write` with this one, an indirection
for no gain. What goes beyond the event store (personal data, mail) is domain.accounts'."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from domain import recurrence
from domain.batches import Refused, each, loaded, unique_ids
from domain.errors import (
    ConflictError,
    DomainError,
    GoneError,
    InvalidFieldsError,
    NotFoundError,
    VersionMismatchError,
)
from domain.events import Event
from domain.ownership import Ownership, ownership_id
from domain.reminders import Reminder
from domain.users import User
from domain.writing import (
    Aggregates,
    Command,
    Executor,
    WriteNow,
    Writer,
    Written,
    last_position,
)

A = TypeVar("A", Event, User, Ownership)
SECOND = timedelta(seconds=1)


class EventsApplication(Application[UUID]):
    """Each write is a use case of named steps — get, act — handed to `execute`, the executor
    the application was built with (domain.writing: `WriteNow` by default; the server's
    workers pass alphabet.group_commit.GroupCommit), which saves."""

    name = "Alphabet"

    def __init__(self, env: Any = None, writer: Writer = WriteNow) -> None:
        super().__init__(env)
        self.execute: Executor = writer(self.repository, self.save)

    def close(self) -> None:
        self.execute.close()
        super().close()

    def create_event(self, *, owner_id: str, **fields: Any) -> Written:
        """The event, and its id added to its owner's Ownership in the same save (which is
        what makes a creation and the owner's account deletion exclude each other). The
        Ownership's fact is saved first, so the write's position (X-Position) is the event's
        own fact, the one its WebSocket message carries."""

        def get(aggregates: Aggregates) -> list[Any]:
            owned = ownership(aggregates, owner_id)
            owned.check_open()
            return [owned, Event.create(owner_id=owner_id, **fields)]

        def act(aggregates: list[Any]) -> list[dict[str, Any]]:
            owned, event = aggregates
            owned.add([event.id])
            return [event.state()]

        return self.execute(Command(get, act)).of(Event)

    def create_events(self, *, owner_id: str, items: Sequence[dict[str, Any]]) -> Written:
        """All or nothing: every event's Created fact goes into one atomic save, with one fact
        adding them all to their owner's Ownership. An empty batch writes nothing at all."""
        if not items:
            return Written([])

        def get(aggregates: Aggregates) -> list[Any]:
            owned = ownership(aggregates, owner_id)
            owned.check_open()
            events = each(items, lambda fields: Event.create(owner_id=owner_id, **fields))
            return [owned, *events]

        def act(aggregates: list[Any]) -> list[dict[str, Any]]:
            owned, *events = aggregates
            owned.add([event.id for event in events])
            return [event.state() for event in events]

        return self.execute(Command(get, act)).of(Event)

    def update_event(
        self,
        event_id: UUID,
        *,
        by: str,
        now: datetime,
        expected_version: int | None,
        changes: dict[str, Any],
    ) -> Written:
        def get(aggregates: Aggregates) -> list[Event]:
            return [self.event_for_write(aggregates, event_id, by, expected_version)]

        def act(events: list[Event]) -> list[dict[str, Any]]:
            return [events[0].change(by=by, now=now, **changes)]

        return self.execute(Command(get, act, pinned=expected_version is not None))

    def delete_event(self, event_id: UUID, *, by: str, expected_version: int | None,
                     operator: bool = False) -> Written:
        """`operator`: `by` may delete anyone's event (see `is_operator`)."""

        def get(aggregates: Aggregates) -> list[Event]:
            return [self.event_for_write(aggregates, event_id, by, expected_version, operator)]

        def act(events: list[Event]) -> None:
            events[0].delete(by=by, operator=operator)

        return self.execute(Command(get, act, pinned=expected_version is not None))

    def change_occurrence(self, event_id: UUID, original_start: datetime, *, by: str,
                          now: datetime, expected_version: int | None,
                          changes: dict[str, Any]) -> Written:
        """One occurrence of a series changed for itself: a fact on the series."""

        def get(aggregates: Aggregates) -> list[Event]:
            return [self.event_for_write(aggregates, event_id, by, expected_version)]

        def act(events: list[Event]) -> list[dict[str, Any]]:
            return [events[0].change_occurrence(original_start, by=by, now=now, **changes)]

        return self.execute(Command(get, act, pinned=expected_version is not None))

    def cancel_occurrence(self, event_id: UUID, original_start: datetime, *, by: str,
                          expected_version: int | None) -> Written:
        def get(aggregates: Aggregates) -> list[Event]:
            return [self.event_for_write(aggregates, event_id, by, expected_version)]

        def act(events: list[Event]) -> None:
            events[0].cancel_occurrence(original_start, by=by)

        return self.execute(Command(get, act, pinned=expected_version is not None))

    def split_series(self, event_id: UUID, original_start: datetime, *, by: str, now: datetime,
                     expected_version: int | None, changes: dict[str, Any]) -> Written:
        """"This and following": the series ends before the occurrence, and a new series
        (answered first) starts there with `changes` over the occurrence's fields; both, and
        the new series in its owner's Ownership, in one atomic save. The occurrence's own
        changes are in the new series' fields; those of the occurrences after it become the
        new series' own facts where it still has them (Event.carry_occurrences), and the
        old series' cancellations there go on as EXDATE lines of the new series."""

        def get(aggregates: Aggregates) -> list[Any]:
            series = self.event_for_write(aggregates, event_id, by, expected_version)
            found = series.occurrence(original_start)
            if original_start == series.starting_time:
                raise InvalidFieldsError({"id": "the first occurrence cannot be split off: "
                                                "change the whole series instead"})
            if found.start <= now:
                raise ConflictError("this occurrence has already started; split the series "
                                    "at a later one")
            try:
                _, following = recurrence.split(series.recurrence, series.starting_time,
                                                series.time_zone, original_start)
            except recurrence.RecurrenceError as exc:
                raise InvalidFieldsError({"recurrence": str(exc)}) from None
            cancelled = sorted(start for start in series.cancelled if start > original_start)
            if cancelled:
                following.append("EXDATE:" + ",".join(map(recurrence.key, cancelled)))
            fields = {**series.occurrence_state(found), "recurrence": following, **changes}
            owned = ownership(aggregates, series.owner_id)
            owned.check_open()
            return [owned, series, Event.create(owner_id=series.owner_id, **fields)]

        def act(aggregates: list[Any]) -> list[dict[str, Any]]:
            owned, series, new = aggregates
            ended, _ = recurrence.split(series.recurrence, series.starting_time, series.time_zone,
                                        original_start)
            owned.add([new.id])
            new.carry_occurrences(series, original_start, by=by)
            return [new.state(), series.change(by=by, now=now, recurrence=ended)]

        return self.execute(Command(get, act, pinned=expected_version is not None))

    def respond(self, event_id: UUID, *, participant: str, response: str, by: str,
                link_at: datetime | None = None,
                original_start: datetime | None = None) -> Written:
        """A participant's answer, to the event or (`original_start`) one occurrence of a
        series; the same answer again records nothing (no position). `link_at`: given through
        an invitation's link at that time, which the event's end has expired."""

        def get(aggregates: Aggregates) -> list[Event]:
            return [fetch(aggregates, Event, event_id)]

        def act(events: list[Event]) -> None:
            if link_at is not None:
                events[0].check_answerable_by_link(link_at, original_start)
            events[0].respond(participant=participant, response=response, by=by,
                              original_start=original_start)

        return self.execute(Command(get, act))

    def update_events(
        self, *, by: str, now: datetime, items: Sequence[tuple[UUID, dict[str, Any]]],
        refused: Refused | None = None,
    ) -> Written:
        """Batch update: every item checked (problems reported by index, with those `refused`
        already), then one atomic save."""
        ids = unique_ids([event_id for event_id, _ in items], refused)

        def get(aggregates: Aggregates) -> list[Event | DomainError]:
            return [self.batch_item(aggregates, event_id, by) for event_id in ids]

        def act(events: list[Event | DomainError]) -> list[dict[str, Any]]:
            return each(
                list(zip(events, items, strict=True)),
                lambda pair: loaded(pair[0]).change(by=by, now=now, **pair[1][1]),
                refused,
            )

        return self.execute(Command(get, act))

    def delete_events(self, *, by: str, event_ids: Sequence[UUID],
                      refused: Refused | None = None) -> Written:
        ids = unique_ids(event_ids, refused)

        def get(aggregates: Aggregates) -> list[Event | DomainError]:
            return [self.batch_item(aggregates, event_id, by) for event_id in ids]

        def delete(event: Event | DomainError) -> dict[str, Any]:
            loaded(event).delete(by=by)
            return {}

        def act(events: list[Event | DomainError]) -> list[dict[str, Any]]:
            return each(events, delete, refused)

        return self.execute(Command(get, act))

    def batch_item(self, aggregates: Aggregates, event_id: UUID, by: str) -> Event | DomainError:
        """A batch item's event, or why it cannot be written: the batch's act reports every
        item's problem, those found getting and those found changing alike."""
        try:
            return self.event_for_write(aggregates, event_id, by, None)
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

    def event_for_write(
        self, aggregates: Aggregates, event_id: UUID, by: str, expected_version: int | None,
        operator: bool = False,
    ) -> Event:
        event = fetch(aggregates, Event, event_id)
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
        original = None
        if event.recurrence:  # the occurrence that starts then, if one still does
            found = recurrence.starting_after(event.series(), starting_time - SECOND, 1)
            if not found or found[0].start != starting_time:
                return Written([event])
            original = found[0].original_start
        elif event.starting_time != starting_time:
            return Written([event])
        if starting_time <= now:
            return Written([event])
        reminder = Reminder(event_id=str(event_id), starting_time=starting_time,
                            original_start=original)
        try:
            return Written([reminder], position=self._save(reminder))
        except IntegrityError:
            return Written([event])

    def series_reminders(self, event_id: UUID, now: datetime, before: timedelta
                         ) -> tuple[list[datetime], datetime | None]:
        """A series' reminders (domain.reminders: one per occurrence): the starts of its
        occurrences whose reminder is due now (starting within `before`), and when the next
        falls due (None: never, unless the series changes)."""
        try:
            event = self.get_event(event_id)
        except (NotFoundError, GoneError):
            return [], None
        if not event.recurrence:
            return [], None
        coming = recurrence.starting_after(event.series(), now, 10)
        due = [one.start for one in coming if one.start - before <= now]
        later = [one.start - before for one in coming if one.start - before > now]
        return due, min(later, default=None)

    def user_deleted(self, user_id: UUID) -> bool:
        """Whether the account has been deleted (or never existed)."""
        try:
            return self._get(User, user_id).deleted
        except NotFoundError:
            return True

    def register_user(self, user_id: UUID | None = None) -> Written:
        """`user_id` is the id the account's personal data was reserved under (a new one when
        not given); registering it again records nothing."""

        def get(aggregates: Aggregates) -> list[User]:
            if user_id is None:
                return [User.register(uuid4())]
            try:
                return [fetch(aggregates, User, user_id)]
            except NotFoundError:
                return [User.register(user_id)]

        def act(_: list[User]) -> None:
            """Registering is the whole of it."""

        return self.execute(Command(get, act))

    def change_user(self, user_id: UUID, *, profile_fields: list[str], password: bool) -> Written:
        def act(users: list[User]) -> None:
            if profile_fields:
                users[0].change_profile(profile_fields)
            if password:
                users[0].change_password()

        return self.execute(Command(self._user(user_id), act))

    def delete_user(self, user_id: UUID, *, by: str | None = None,
                    listed: Sequence[UUID] = ()) -> Written:
        """The account, its Ownership and every live event it owns end in one atomic save, so
        participants are told of each cancellation exactly as if the owner had deleted it, and
        an event created meanwhile is either among them or refused (domain.ownership). The
        events are those its Ownership holds, and those `listed` (the events view's, for
        events created before Ownership was recorded). An account already deleted records
        nothing: a deletion that stopped after this save (before its personal data was
        erased) is finished by asking again. `by` is who deletes it: the account itself, or
        an operator deleting someone else's (the caller checked); every fact of the cascade
        names them."""
        actor = by or str(user_id)

        def get(aggregates: Aggregates) -> list[Any]:
            user = fetch(aggregates, User, user_id)
            if user.deleted:
                return [user]
            owned = ownership(aggregates, str(user_id))
            ids = dict.fromkeys([*self.owned_event_ids(owned), *listed])
            events = [fetch(aggregates, Event, event_id) for event_id in ids]
            return [user, owned, *(event for event in events if not event.deleted)]

        def act(aggregates: list[Any]) -> None:
            user, *rest = aggregates
            if user.deleted:
                return
            user.delete(by=actor)
            owned, *events = rest
            owned.close()
            for event in events:
                event.check_writable(str(user_id))  # only the account's own events go
                event.delete(by=actor, operator=True)

        return self.execute(Command(get, act))

    def owned_event_ids(self, owned: Ownership) -> list[UUID]:
        """The events an Ownership's Added facts name: those stored, and those it holds
        unsaved (a group commit's batch may have added some). Any stored after the version
        this copy was read at make the deletion's save conflict, and it is redone."""
        facts = [*self.events.get(owned.id), *owned.pending_events]
        return [UUID(event_id) for fact in facts if isinstance(fact, Ownership.Added)
                for event_id in fact.event_ids]

    def is_operator(self, user_id: UUID) -> bool:
        """Whether an operator grant stands on the account (read from its facts, through the
        aggregate cache). Operators named by the settings are the caller's to add."""
        try:
            return self._get(User, user_id).operator
        except NotFoundError:
            return False

    def grant_operator(self, user_id: UUID) -> Written:
        def act(users: list[User]) -> None:
            users[0].grant_operator()

        return self.execute(Command(self._user(user_id), act))

    def revoke_operator(self, user_id: UUID) -> Written:
        def act(users: list[User]) -> None:
            users[0].revoke_operator()

        return self.execute(Command(self._user(user_id), act))

    def _user(self, user_id: UUID) -> Callable[[Aggregates], list[User]]:
        """A command's get step for one account."""

        def get(aggregates: Aggregates) -> list[User]:
            return [fetch(aggregates, User, user_id)]

        return get

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
        return fetch(self.repository, cls, aggregate_id, version)

    def _save(self, *aggregates: Any) -> int | None:
        return last_position(self.save(*aggregates))


def ownership(aggregates: Aggregates, owner_id: str) -> Ownership:
    """The owner's Ownership, opened when they have none yet."""
    try:
        return fetch(aggregates, Ownership, ownership_id(owner_id))
    except NotFoundError:
        return Ownership(owner_id=owner_id)


def fetch(aggregates: Aggregates, cls: type[A], aggregate_id: UUID,
          version: int | None = None) -> A:
    """The aggregate of that class, or NotFound (an event's id is no user, and vice versa)."""
    try:
        aggregate: Any = aggregates.get(aggregate_id, version=version)
    except AggregateNotFoundError:
        raise NotFoundError(f"no {cls.__name__.lower()} with id {aggregate_id}") from None
    if not isinstance(aggregate, cls):
        raise NotFoundError(f"no {cls.__name__.lower()} with id {aggregate_id}")
    return aggregate
