"""The calendar event aggregate: its facts and the rules every change must keep."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate, event

from domain import recurrence
from domain.errors import (
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidFieldsError,
    NotFoundError,
)
from domain.recurrence import Occurrence, Series
from domain.zones import DEFAULT_ZONE, zone_problem

MAX_TEXT = 200
MAX_PARTICIPANTS = 1000
FIELDS = ("name", "starting_time", "end_time", "location", "participants", "time_zone",
          "recurrence")
# What one occurrence of a series may change for itself; the rule (and the zone it recurs in)
# belong to the whole series.
OCCURRENCE_FIELDS = ("name", "starting_time", "end_time", "location", "participants")
# A change of these may move the series' occurrences: its occurrences' own changes and
# cancellations are kept only where an occurrence still is.
RECURRING = frozenset({"recurrence", "starting_time", "time_zone"})
TIMES = ("starting_time", "end_time")
# The instants an event may start and end at (UTC, the end exclusive). Everything that reads
# the facts computes with these times in Python's datetime, whose years run from 1 to 9999:
# the views, the reminder clock (which subtracts its offset), mail and calendar files. Centuries
# of margin on either side leave room for any reminder offset, and a client's UTC offset can
# never push a time out of that range once it is inside this one.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
OUT_OF_RANGE = "must be from 1900-01-01T00:00:00Z up to (not including) 9000-01-01T00:00:00Z"
# A change of these is a new revision of the invitation (RFC 5546 §2.1.4); a new name is not.
RESCHEDULING = frozenset({"starting_time", "end_time", "location"})
# A change of these voids what participants answered (SPEC §6.3: "a change of the event's
# time"; Google Calendar keeps answers when only the place changes, and so do we).
RETIMING = frozenset(TIMES)
# What a participant may answer; before they do, their response is NEEDS_ACTION (RFC 5545's
# PARTSTAT values, in Google Calendar's API spelling).
NEEDS_ACTION = "needs_action"
ANSWERS = ("accepted", "declined", "tentative")
SECOND = timedelta(seconds=1)
# Where a view keeps an occurrence's own answers (person id → answer) among its own changes
OWN_RESPONSES = "responses"


class Event(Aggregate):
    """A calendar event. Participants are person ids (user or invitee), never names or addresses,
    so erasing a person's data leaves nothing personal in the immutable facts."""

    class Created(Aggregate.Created):
        owner_id: str
        name: str
        starting_time: datetime
        end_time: datetime
        location: str
        participants: list[str]
        time_zone: str
        # RFC 5545 lines (domain.recurrence); facts from before recurrence read as none
        recurrence: Sequence[str] = ()
        # Version 2 names the event's zone; facts stored before zones existed read as UTC,
        # which is what their instants were shown in (upcast when read: no migration).
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["time_zone"] = DEFAULT_ZONE

    class Updated(Aggregate.Event):
        changes: dict[str, Any]
        by: str

    class Deleted(Aggregate.Event):
        by: str

    class OccurrenceChanged(Aggregate.Event):
        """One occurrence of a series changed for itself, keyed by its original start."""

        original_start: datetime
        changes: dict[str, Any]
        by: str

    class OccurrenceCancelled(Aggregate.Event):
        original_start: datetime
        by: str

    class Responded(Aggregate.Event):
        """A participant's answer (`participant` a person id; `by` who recorded it: the
        participant, signed in or through their invitation's link)."""

        participant: str
        response: str
        by: str
        # the occurrence answered for (its original start); None, as facts stored before
        # occurrences could be answered read, is an answer for the whole series
        original_start: datetime | None = None

    @event(Created)
    def __init__(
        self,
        *,
        owner_id: str,
        name: str,
        starting_time: datetime,
        end_time: datetime,
        location: str,
        participants: list[str],
        time_zone: str,
        recurrence: Sequence[str] = (),
    ) -> None:
        self.owner_id = owner_id
        self.name = name
        self.starting_time = starting_time
        self.end_time = end_time
        self.location = location
        self.participants = participants
        self.recurrence = list(recurrence)
        # occurrences' own changes and cancellations, by original start (UTC)
        self.overrides: dict[datetime, dict[str, Any]] = {}
        self.cancelled: set[datetime] = set()
        self.time_zone = time_zone
        self.deleted = False
        # person id → answer, for the participants who have answered (the rest need action)
        self.responses: dict[str, str] = {}
        # original start → person id → answer for that occurrence alone, over the series'
        # (NEEDS_ACTION where a move of the occurrence reset an answer)
        self.occurrence_answers: dict[datetime, dict[str, str]] = {}
        # The revision that participants' calendars know the event by (iCalendar's SEQUENCE),
        # and the earliest stamp the next fact may carry (see `stamp`): functions of the facts,
        # so every process that folds them (mail, replay, the Kafka agents) agrees on them.
        self.sequence = 0
        self.next_stamp = datetime.min.replace(tzinfo=UTC)

    @classmethod
    def create(
        cls,
        *,
        owner_id: str,
        name: str,
        starting_time: datetime,
        end_time: datetime,
        location: str,
        participants: list[str],
        time_zone: str = DEFAULT_ZONE,
        recurrence: Sequence[str] = (),
    ) -> Event:
        """Check every rule before the fact exists: a Created fact is never invalid."""
        fields: dict[str, Any] = {
            "name": name,
            "starting_time": starting_time,
            "end_time": end_time,
            "location": location,
            "participants": _unique(participants),
            "recurrence": list(recurrence),
            "time_zone": time_zone,
        }
        check_fields(fields)
        return cls(owner_id=owner_id, **in_utc(fields))

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}

    def change(self, *, by: str, now: datetime, **requested: Any) -> dict[str, Any]:
        """Merge the requested fields; record only what really differs (nothing at all when
        nothing differs) and return those changes."""
        self.check_writable(by)
        unknown = sorted(set(requested) - set(FIELDS))
        if unknown:
            raise InvalidFieldsError({name: "is not a field of an event" for name in unknown})
        if "participants" in requested:
            requested["participants"] = _unique(requested["participants"])
        if "recurrence" in requested:
            requested["recurrence"] = list(requested["recurrence"])
        changes = {k: v for k, v in requested.items() if getattr(self, k) != v}
        if not changes:
            return {}
        if self.starting_time <= now and not self.recurs_after(now):
            raise ConflictError("the event has already started; it can no longer be changed")
        changes = checked_changes(self.state(), changes, now)
        self._record_update(changes=changes, by=by)
        return changes

    def series(self) -> Series:
        return Series(self.starting_time, self.end_time, self.time_zone, self.recurrence,
                      self.overrides, frozenset(self.cancelled))

    def recurs_after(self, now: datetime) -> bool:
        """Whether a series has an occurrence yet to start: until then it may be changed."""
        return bool(self.recurrence) and bool(recurrence.occurrences(self.series(), now,
                                                                     limit=1))

    def occurrence(self, original_start: datetime) -> Occurrence:
        """The occurrence of this series at an original start: NotFound when the rule has
        none there, Gone when it was cancelled (or the series deleted)."""
        if self.deleted:
            raise GoneError(f'event "{self.name}" has been deleted')
        if not self.recurrence or not recurrence.occurs(self.series(), original_start):
            raise NotFoundError(f"event {self.id} has no occurrence starting at "
                                f"{original_start.isoformat()}")
        if original_start in self.cancelled:
            raise GoneError(f'this occurrence of "{self.name}" has been cancelled')
        return recurrence.occurrence(self.series(), original_start)

    def occurrence_state(self, found: Occurrence) -> dict[str, Any]:
        """An occurrence's fields: the series' (and the zone it recurs in), its own changes
        over them."""
        return {**{name: getattr(self, name) for name in OCCURRENCE_FIELDS}, **found.changes,
                "starting_time": found.start, "end_time": found.end,
                "time_zone": self.time_zone}

    def change_occurrence(self, original_start: datetime, *, by: str, now: datetime,
                          **requested: Any) -> dict[str, Any]:
        """As `change`, for one occurrence: it keeps its own changes over the series'."""
        self.check_writable(by)
        found = self.occurrence(original_start)
        unknown = sorted(set(requested) - set(OCCURRENCE_FIELDS))
        if unknown:
            raise InvalidFieldsError({name: "is the whole series': change it on the series"
                                      for name in unknown})
        if "participants" in requested:
            requested["participants"] = _unique(requested["participants"])
        current = self.occurrence_state(found)
        changes = {k: v for k, v in requested.items() if current[k] != v}
        if not changes:
            return {}
        if found.start <= now:
            raise ConflictError("this occurrence has already started; it can no longer be "
                                "changed")
        changes = checked_changes(current, changes, now)
        self._record_occurrence_change(original_start=original_start, changes=changes, by=by)
        return changes

    def carry_occurrences(self, origin: Event, at: datetime, *, by: str) -> None:
        """Record, as this series' own facts, the occurrences' own changes of the series it
        was split off at `at` ("this and following", SPEC §6.2) for each occurrence after `at`
        that this series still has: the split's changes may retime it, and then, as when a
        series' rule or start changes, the changes of occurrences that no longer occur go.
        Each occurrence keeps its own changes over this series' fields, as it kept them over
        the old series' (the split's changes of the same field give way). A moved occurrence
        stays where it was, both times the instants it had: this series may last another
        length, and a start alone moved would then end elsewhere, even before it begins.
        (Its own answers are not carried: a new series starts with none; the one at `at` is
        this series' first start, its changes already in this series' fields.)"""
        ours, theirs = self.series(), origin.series()
        for start in sorted(origin.overrides):
            if start <= at or not recurrence.occurs(ours, start):
                continue
            changes = dict(origin.overrides[start])
            if not changes.keys().isdisjoint(TIMES):
                found = recurrence.occurrence(theirs, start)
                changes.update(starting_time=found.start, end_time=found.end)
            self._record_occurrence_change(original_start=start, changes=changes, by=by)

    def cancel_occurrence(self, original_start: datetime, *, by: str) -> None:
        self.check_writable(by)
        self.occurrence(original_start)
        self._record_occurrence_cancellation(original_start=original_start, by=by)

    def delete(self, *, by: str, operator: bool = False) -> None:
        """An operator may delete anyone's event; the fact names the operator as `by`."""
        self.check_writable(by, operator)
        self._record_deletion(by=by)

    def respond(self, *, participant: str, response: str, by: str,
                original_start: datetime | None = None) -> bool:
        """Record a participant's answer, for the whole series or (`original_start`) one
        occurrence only; the same answer again records nothing (a link prefetcher following
        the link of the answer already given changes nothing). Allowed after the start, as
        Google Calendar allows it ("I went", "I could not come")."""
        if self.deleted:
            raise GoneError(f'event "{self.name}" has been deleted')
        if original_start is None:
            invited, given = self.participants, self.responses
        else:
            invited = self.occurrence_state(self.occurrence(original_start))["participants"]
            given = self.occurrence_answers.get(original_start, {})
        if participant not in invited:
            raise ForbiddenError("only the event's participants may answer its invitation")
        if response not in ANSWERS:
            raise InvalidFieldsError({"response": "must be one of " + ", ".join(ANSWERS)})
        if given.get(participant) == response:
            return False
        self._record_response(participant=participant, response=response, by=by,
                              original_start=original_start)
        return True

    def occurrence_responses(self, original_start: datetime) -> dict[str, str]:
        """An occurrence's answers: its own where given, else the series'."""
        return {**self.responses, **self.occurrence_answers.get(original_start, {})}

    def check_answerable_by_link(self, now: datetime,
                                 original_start: datetime | None = None) -> None:
        """An invitation's answer link expires when the event (or the occurrence it is
        about) ends (SPEC §6.3)."""
        if self.deleted:
            return  # the answer itself is refused as gone
        end = self.end_time if original_start is None else self.occurrence(original_start).end
        if end <= now:
            raise GoneError(f'event "{self.name}" has ended; it can no longer be answered')

    def response_of(self, participant: str, original_start: datetime | None = None) -> str:
        """A participant's answer to the event, or to its occurrence at `original_start`."""
        given = self.responses if original_start is None \
            else self.occurrence_responses(original_start)
        return given.get(participant, NEEDS_ACTION)

    def check_writable(self, by: str, operator: bool = False) -> None:
        if self.deleted:
            raise GoneError(f'event "{self.name}" has been deleted')
        if by != self.owner_id and not operator:
            raise ForbiddenError("only the event's owner may change or delete it")

    @event(Updated)
    def _record_update(self, changes: dict[str, Any], by: str) -> None:
        if self.revised_by(changes):
            self.sequence += 1
        self.next_stamp = self.stamp + SECOND
        self.responses = responses_after(self.responses, changes)
        for name, value in changes.items():
            setattr(self, name, value)
        if RECURRING.intersection(changes):
            self._keep_occurring()
        self._keep_occurrence_answers(changes)

    def _keep_occurring(self) -> None:
        """Occurrences' changes and cancellations where the series no longer occurs go."""
        if not self.recurrence:
            self.overrides, self.cancelled = {}, set()
            return
        series = self.series()
        self.overrides = {start: changes for start, changes in self.overrides.items()
                          if recurrence.occurs(series, start)}
        self.cancelled = {start for start in self.cancelled if recurrence.occurs(series, start)}

    def _keep_occurrence_answers(self, changes: dict[str, Any]) -> None:
        """After a change of the series, occurrences' own answers stand where the occurrence
        still occurs and the person is still among its participants; a new time of the series
        voids them all, as it voids the series' answers."""
        if RETIMING.intersection(changes) or not self.recurrence:
            self.occurrence_answers = {}
            return
        if not self.occurrence_answers or not (RECURRING | {"participants"}) & changes.keys():
            return
        series = self.series()
        kept = {
            start: {person: answer for person, answer in answers.items() if person in
                    self.overrides.get(start, {}).get("participants", self.participants)}
            for start, answers in self.occurrence_answers.items()
            if not RECURRING.intersection(changes) or recurrence.occurs(series, start)}
        self.occurrence_answers = {start: answers for start, answers in kept.items() if answers}

    @event(OccurrenceChanged)
    def _record_occurrence_change(self, original_start: datetime, changes: dict[str, Any],
                                  by: str) -> None:
        self.next_stamp = self.stamp + SECOND
        self.overrides[original_start] = {**self.overrides.get(original_start, {}), **changes}
        answers = occurrence_responses_after(
            self.occurrence_answers.pop(original_start, {}), changes,
            self.overrides[original_start].get("participants", self.participants))
        if answers:
            self.occurrence_answers[original_start] = answers

    @event(OccurrenceCancelled)
    def _record_occurrence_cancellation(self, original_start: datetime, by: str) -> None:
        self.next_stamp = self.stamp + SECOND
        self.overrides.pop(original_start, None)
        self.occurrence_answers.pop(original_start, None)
        self.cancelled.add(original_start)

    @event(Responded)
    def _record_response(self, participant: str, response: str, by: str,
                         original_start: datetime | None) -> None:
        """No new SEQUENCE: an answer is no revision of the event (RFC 5546 §2.1.4)."""
        self.next_stamp = self.stamp + SECOND
        if original_start is None:
            self.responses = {**self.responses, participant: response}
        else:
            self.occurrence_answers[original_start] = {
                **self.occurrence_answers.get(original_start, {}), participant: response}

    @event(Deleted)
    def _record_deletion(self, by: str) -> None:
        self.deleted = True
        self.sequence += 1  # a cancellation is a revision too
        self.next_stamp = self.stamp + SECOND

    @property
    def stamp(self) -> datetime:
        """When the latest fact happened, as calendars are told (iCalendar's DTSTAMP): in whole
        seconds, and at least a second after the fact before, since calendar apps order two
        messages with one SEQUENCE by it and would take a second change within the same
        second for a copy of the first. (A fact's own time is set after its mutator runs, so
        the mutator records the floor and this reads it.)"""
        return max(self.modified_on.replace(microsecond=0), self.next_stamp)

    def revised_by(self, changes: dict[str, Any]) -> bool:
        """A new time or place voids participants' answers, and a removed participant is sent
        a cancellation, which RFC 5546 §2.1.4 has carry a higher sequence than the invitation
        it cancels (so a later invitation to them must not carry a lower one)."""
        if RESCHEDULING.intersection(changes):
            return True
        return "participants" in changes and not set(self.participants).issubset(
            changes["participants"])


def responses_after(responses: dict[str, str], changes: dict[str, Any]) -> dict[str, str]:
    """The answers that stand after an update: none once the time changes; a removed
    participant's go with them (so one added again starts at needs_action)."""
    if RETIMING.intersection(changes):
        return {}
    if "participants" in changes:
        kept = set(changes["participants"])
        return {person: answer for person, answer in responses.items() if person in kept}
    return responses


def occurrence_responses_after(answers: dict[str, str], changes: dict[str, Any],
                               invited: list[str]) -> dict[str, str]:
    """An occurrence's own answers after its own change (`invited`: its participants then): a
    new time resets them all to needs_action, its own, since the series' answers were given
    for another time; otherwise as `responses_after`."""
    if RETIMING.intersection(changes):
        return dict.fromkeys(invited, NEEDS_ACTION)
    return responses_after(answers, changes)


def attendee_responses(participants: list[str], responses: dict[str, str]) -> list[str]:
    """Each participant's response, in the participants' order."""
    return [responses.get(person, NEEDS_ACTION) for person in participants]


def checked_changes(current: dict[str, Any], changes: dict[str, Any],
                    now: datetime) -> dict[str, Any]:
    """Changes of an event or an occurrence, every rule checked against the fields they leave
    (a new start also not in the past), in UTC; or every broken rule at once."""
    problems = field_problems({**current, **changes})
    if "starting_time" in changes and "starting_time" not in problems \
            and changes["starting_time"] < now:
        problems["starting_time"] = "must not be in the past"
    if problems:
        raise InvalidFieldsError(problems)
    return in_utc(changes)


def check_fields(fields: dict[str, Any]) -> None:
    """Collect every broken rule at once, so a client can fix all fields in one go."""
    problems = field_problems(fields)
    if problems:
        raise InvalidFieldsError(problems)


def field_problems(fields: dict[str, Any]) -> dict[str, str]:
    """Each field that breaks a rule, with the rule in words."""
    problems: dict[str, str] = {}
    for name in ("name", "location"):
        value = fields[name]
        if not value.strip():
            problems[name] = "must not be empty"
        elif len(value) > MAX_TEXT:
            problems[name] = f"must be at most {MAX_TEXT} characters (got {len(value)})"
    for name in TIMES:
        if (problem := time_problem(fields[name])) is not None:
            problems[name] = problem
    if not problems.keys() & set(TIMES) and fields["end_time"] <= fields["starting_time"]:
        problems["end_time"] = "must be after starting_time"
    if len(fields["participants"]) > MAX_PARTICIPANTS:
        problems["participants"] = f"at most {MAX_PARTICIPANTS} participants"
    # (an occurrence of a series is checked without one: the zone is the series')
    if "time_zone" in fields and (problem := zone_problem(fields["time_zone"])) is not None:
        problems["time_zone"] = problem
    # the occurrences' rule, in the zone they recur in (an occurrence's fields have neither)
    if fields.get("recurrence") and not problems.keys() & {"starting_time", "time_zone"}:
        problem = recurrence.check(fields["recurrence"], fields["starting_time"],
                                   fields["time_zone"])
        if problem is not None:
            problems["recurrence"] = problem
    return problems


def time_problem(value: datetime) -> str | None:
    """What is wrong with a time an event (or a filter of events) is given, if anything."""
    if value.utcoffset() is None:
        return "must include its UTC offset"
    if not EARLIEST <= value < LATEST:
        return OUT_OF_RANGE
    return None


def in_utc(fields: dict[str, Any]) -> dict[str, Any]:
    """Facts hold instants in UTC, whatever offset the client wrote (times already checked
    to be in range, so the conversion cannot overflow)."""
    return {name: value.astimezone(UTC) if name in TIMES else value
            for name, value in fields.items()}


def fact_by(fact: object) -> str | None:
    """Who caused a fact: the owner for a creation, the recorded actor otherwise."""
    if isinstance(fact, Event.Created):
        return fact.owner_id
    if isinstance(fact, Event.Updated | Event.Deleted | Event.Responded
                  | Event.OccurrenceChanged | Event.OccurrenceCancelled):
        return fact.by
    return None


def fact_changes(fact: object) -> dict[str, Any]:
    """The fields a fact set, whatever its kind."""
    if isinstance(fact, Event.Created):
        # a single event's creation names no recurrence (as its JSON shows none)
        return {name: getattr(fact, name) for name in FIELDS
                if name != "recurrence" or fact.recurrence}
    if isinstance(fact, Event.Updated | Event.OccurrenceChanged):
        return dict(fact.changes)
    if isinstance(fact, Event.Responded):
        return {"attendee": fact.participant, "response": fact.response}
    return {}


def instance_of(fact: object) -> str | None:
    """The occurrence a fact is about (its key, domain.recurrence.key), or None for a fact
    about the whole event."""
    if isinstance(fact, Event.OccurrenceChanged | Event.OccurrenceCancelled | Event.Responded) \
            and fact.original_start is not None:
        return recurrence.key(fact.original_start)
    return None


def fact_people(fact: object) -> set[str]:
    """The people a fact's changes name (to be shown by name): participants, or who answered."""
    changes = fact_changes(fact)
    named = set(changes.get("participants", []))
    if "attendee" in changes:
        named.add(changes["attendee"])
    return named


def _unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))

