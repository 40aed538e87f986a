"""Recurring events (SPEC §6.2): a series' RFC 5545 lines (one RRULE, any EXDATE and RDATE)
checked and expanded by python-dateutil, in the series' own time zone, so a 09:00
Europe/Berlin meeting stays at 09:00 local across a DST change. Pure: no I/O, no clock.

The API other modules use:
* `check(lines, start, zone)`: the reason a recurrence is refused (RecurrenceError), or None.
* `Series(...)`: a series' rule with its occurrences' own changes and cancellations.
* `occurrences(series, after, before, limit)`: its occurrences in a window, in order of
  their original start, overrides applied and cancellations left out; `starts(...)` the bare
  original starts (lazily: an unbounded rule is only ever read up to a bound).
* `occurs(series, original_start)`, `key(start)` / `parse_key(text)` (occurrence ids),
  `split(lines, start, zone, at)` (the lines of the two series a split makes),
  `wall_time(start, zone, at)` (the rule's wall time of its occurrence at an instant).

Choices (written down in the README): an occurrence is keyed, filtered and ordered by its
original start; a rule must have its first occurrence at the series' start (RFC 5545 leaves
an unsynchronised DTSTART undefined, and calendar apps disagree about it); occurrences come at
most daily (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY, without BYHOUR/BYMINUTE/BYSECOND), and
DAILY and WEEKLY rules take no BYSETPOS and at most one of BYMONTH, BYMONTHDAY, BYYEARDAY and
BYWEEKNO: such rules can describe an empty set, which dateutil can only find empty by
walking every period up to the year 9999 (seconds for a daily rule)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rruleset, rrulestr
from icalendar.prop import vDDDLists

MAX_LINES = 100
MAX_LINE = 10_000
MAX_DATES = 1000
KEY_FORMAT = "%Y%m%dT%H%M%SZ"
FREQUENCIES = frozenset({"DAILY", "WEEKLY", "MONTHLY", "YEARLY"})
PARTS = frozenset({"FREQ", "UNTIL", "COUNT", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYYEARDAY",
                   "BYWEEKNO", "BYMONTH", "BYSETPOS", "WKST"})
NARROWING = ("BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO")
# Each numeric part's values (RFC 5545 §3.3.10), signed ones from either end, never 0:
# dateutil does not check them, and a value out of range makes a rule with no occurrence.
RANGES = {"BYMONTH": (12, False), "BYMONTHDAY": (31, True), "BYYEARDAY": (366, True),
          "BYWEEKNO": (53, True), "BYSETPOS": (366, True)}
# The parts RFC 5545 §3.3.10 allows with each FREQ (BYYEARDAY not with DAILY, WEEKLY or
# MONTHLY; BYMONTHDAY not with WEEKLY; BYWEEKNO with YEARLY only).
NOT_WITH = {"DAILY": {"BYYEARDAY", "BYWEEKNO"}, "WEEKLY": {"BYYEARDAY", "BYMONTHDAY", "BYWEEKNO"},
            "MONTHLY": {"BYYEARDAY", "BYWEEKNO"}, "YEARLY": set()}
# How far after its first start a series is expanded: dateutil walks a rule from its start
# (a daily rule to the year 9000 took seconds), so every expansion stops here. Occurrences
# beyond it are not listed, nor found by id.
HORIZON = timedelta(days=366 * 100)
WEEKDAY = re.compile(r"([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)")


class RecurrenceError(ValueError):
    """Why a recurrence is refused, in words a client can act on."""


@dataclass(frozen=True)
class Series:
    """A series as the expansion needs it: its first occurrence (UTC), the length of each, its
    zone and lines, and what its occurrences changed or cancelled, keyed by original start."""

    start: datetime
    end: datetime
    zone: str
    recurrence: Sequence[str]
    overrides: Mapping[datetime, Mapping[str, Any]] = field(default_factory=dict)
    cancelled: frozenset[datetime] = frozenset()


@dataclass(frozen=True)
class Occurrence:
    original_start: datetime
    start: datetime
    end: datetime
    # the occurrence's own changes (fields of an event), applied over the series' fields
    changes: Mapping[str, Any]

    @property
    def key(self) -> str:
        return key(self.original_start)


def key(start: datetime) -> str:
    """An occurrence's part of its id: its original start in UTC, YYYYMMDDTHHMMSSZ."""
    return start.astimezone(UTC).strftime(KEY_FORMAT)


def parse_key(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, KEY_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def check(lines: Sequence[str], start: datetime, zone: str) -> str | None:
    """The reason `lines` cannot recur from `start` in `zone`, or None when they can."""
    try:
        rules(lines, start, zone)
    except RecurrenceError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class Parsed:
    """A recurrence's lines read: the rule and the EXDATE and RDATE instants (local, aware)."""

    rule: rrule
    exdates: list[datetime]
    rdates: list[datetime]

    def set(self) -> rruleset:
        found = rruleset()
        found.rrule(self.rule)
        for moment in self.exdates:
            found.exdate(moment)
        for moment in self.rdates:
            found.rdate(moment)
        return found


def rules(lines: Sequence[str], start: datetime, zone: str) -> rruleset:
    """The lines as dateutil's rule set, anchored at `start` in local wall time."""
    return parsed(lines, start, zone).set()


def parsed(lines: Sequence[str], start: datetime, zone: str) -> Parsed:
    if len(lines) > MAX_LINES:
        raise RecurrenceError(f"at most {MAX_LINES} lines")
    local = start.astimezone(time_zone(zone))
    if local.microsecond:
        raise RecurrenceError("a recurring event's starting_time must be in whole seconds "
                              "(RFC 5545 times have no fractions)")
    rule: rrule | None = None
    dates: dict[str, list[datetime]] = {"EXDATE": [], "RDATE": []}
    for line in lines:
        if len(line) > MAX_LINE:
            raise RecurrenceError(f"a line must be at most {MAX_LINE} characters")
        name, _, value = line.partition(":")
        kind = name.partition(";")[0].strip().upper()
        if kind == "RRULE":
            if rule is not None:
                raise RecurrenceError("only one RRULE line is allowed")
            rule = _rule(value, local)
        elif kind in dates:
            dates[kind].extend(_dates(name, value, local))
            if len(dates["EXDATE"]) + len(dates["RDATE"]) > MAX_DATES:
                raise RecurrenceError(f"at most {MAX_DATES} EXDATE and RDATE values")
        else:
            raise RecurrenceError(f'"{line[:40]}" is not an RRULE, EXDATE or RDATE line')
    if rule is None:
        raise RecurrenceError("needs one RRULE line (e.g. RRULE:FREQ=WEEKLY;BYDAY=MO)")
    try:
        first = rule.replace(until=local, count=None)[0]
    except IndexError:
        first = None
    except (ValueError, OverflowError) as exc:
        raise RecurrenceError(f"the RRULE cannot be expanded ({exc})") from None
    if first != local:
        raise RecurrenceError("the RRULE's first occurrence must be the event's starting_time "
                              f"({local.isoformat()} in {zone})")
    return Parsed(rule, dates["EXDATE"], dates["RDATE"])


def _rule(value: str, local: datetime) -> rrule:
    parts: dict[str, str] = {}
    for part in value.strip().upper().split(";"):
        name, equals, setting = part.partition("=")
        if not equals or name not in PARTS or name in parts:
            raise RecurrenceError(f'"{part[:40]}" is not a part of an RRULE this service takes '
                                  f"({', '.join(sorted(PARTS))}, each once)")
        parts[name] = setting
    frequency = parts.get("FREQ")
    if frequency not in FREQUENCIES:
        raise RecurrenceError("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY")
    if wrong := sorted(NOT_WITH[frequency].intersection(parts)):
        raise RecurrenceError(f"{', '.join(wrong)} cannot go with FREQ={frequency} "
                              "(RFC 5545 §3.3.10)")
    for name, (largest, signed) in RANGES.items():
        if name in parts and not all(_in_range(value, largest, signed)
                                     for value in parts[name].split(",")):
            sign = "±" if signed else ""
            raise RecurrenceError(f"{name} takes values {sign}1 to {sign}{largest}")
    if "BYDAY" in parts:
        _check_weekdays(parts["BYDAY"], frequency)
    if "BYSETPOS" in parts and not {"BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO",
                                    "BYMONTH"}.intersection(parts):
        raise RecurrenceError("BYSETPOS needs another BYxxx part to pick from (RFC 5545)")
    if frequency in ("DAILY", "WEEKLY") and (
            "BYSETPOS" in parts or sum(name in parts for name in NARROWING) > 1):
        raise RecurrenceError(f"a {frequency} rule takes no BYSETPOS and at most one of "
                              f"{', '.join(NARROWING)}: use FREQ=MONTHLY or YEARLY")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("COUNT and UNTIL exclude each other (RFC 5545 §3.3.10)")
    for name in ("COUNT", "INTERVAL"):
        if name in parts and not (parts[name].isascii() and parts[name].isdigit()
                                  and 0 < int(parts[name]) < 10**9):
            raise RecurrenceError(f"{name} must be a whole number from 1 below 1000000000")
    try:
        rule = rrulestr(value, dtstart=local)
    except (ValueError, TypeError, OverflowError, IndexError, KeyError) as exc:
        reason = str(exc) or type(exc).__name__
        if "UNTIL" in reason:
            reason = "UNTIL must be a UTC time, e.g. UNTIL=20271231T230000Z"
        raise RecurrenceError(f"not a valid RRULE ({reason})") from None
    if not isinstance(rule, rrule):
        raise RecurrenceError("not a valid RRULE")
    return rule


def _in_range(value: str, largest: int, signed: bool) -> bool:
    digits = value[1:] if signed and value[:1] in "+-" else value
    return digits.isascii() and digits.isdigit() and 1 <= int(digits) <= largest


def _check_weekdays(days: str, frequency: str) -> None:
    """Weekdays, with an ordinal (2MO, -1FR) only where a month or year numbers them: within
    a month up to the 5th, within a year up to the 53rd."""
    for day in days.split(","):
        found = WEEKDAY.fullmatch(day)
        if found is None:
            raise RecurrenceError(f"BYDAY takes weekdays such as MO or -1FR, not {day[:20]!r}")
        if found.group(1) is None:
            continue
        largest = {"MONTHLY": 5, "YEARLY": 53}.get(frequency)
        if largest is None:
            raise RecurrenceError(f"BYDAY takes no ordinal ({day}) with FREQ={frequency}")
        if not _in_range(found.group(1), largest, True):
            raise RecurrenceError(f"a BYDAY ordinal with FREQ={frequency} is ±1 to ±{largest}")


def _dates(name: str, value: str, local: datetime) -> list[datetime]:
    """An EXDATE or RDATE line's instants, read by icalendar: a zone-less time is in the
    series' zone; a date stands for the series' time of day on it."""
    params = dict(param.partition("=")[::2] for param in name.split(";")[1:])
    zone = params.get("TZID")
    try:
        values = vDDDLists.from_ical(value.strip(), zone)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, KeyError) as exc:
        raise RecurrenceError(f"{name.split(';')[0]} has a value that is not a date or time "
                              f"({exc})") from None
    found = []
    for moment in values:
        if isinstance(moment, datetime):
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=local.tzinfo)
        elif isinstance(moment, date):
            moment = datetime.combine(moment, local.timetz())
        else:
            raise RecurrenceError(f"{name.split(';')[0]} takes dates and times only")
        found.append(moment.astimezone(local.tzinfo))
    return found


def time_zone(zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise RecurrenceError(f"unknown time zone {zone!r}") from None


def starts(series: Series, after: datetime | None = None, before: datetime | None = None,
           since: datetime | None = None) -> Iterator[datetime]:
    """The series' original starts (UTC) from `after` (inclusive) up to `before` (exclusive)
    and the HORIZON, ascending, lazily. A series without recurrence has its start alone.
    `since`, one of the series' starts known already (a view's first one not materialised),
    at or before `after`: the rule is walked from there rather than from its first start."""
    horizon = series.start + HORIZON
    before = horizon if before is None else min(before, horizon)
    if after is not None and after >= before:
        return
    if not series.recurrence:
        moments: Iterator[datetime] = iter([series.start])
    else:
        found = parsed(series.recurrence, series.start, series.zone)
        if since is not None and after is not None and since <= after:
            found = resumed(series, found, since)
        moments = found.set().xafter(after, inc=True) if after is not None else iter(found.set())
    for moment in moments:
        moment = moment.astimezone(UTC)
        if before is not None and moment >= before:
            return
        if after is None or moment >= after:
            yield moment


def resumed(series: Series, found: Parsed, since: datetime) -> Parsed:
    """The lines with their rule rebased onto its own occurrence at `since` (UTC): the same
    occurrences from there on (a rule has its periods, INTERVAL's phase included, counted from
    an occurrence's, and every BYxxx part chosen within a whole period but for a WEEKLY rule's
    first week, which takes no BYSETPOS), without walking the periods before. Left as they are
    where that is not proven exact: a COUNT (it counts from the first start), or `since` not
    the rule's own (an RDATE)."""
    if (_part(series.recurrence, "COUNT") is not None
            or since in {moment.astimezone(UTC) for moment in found.rdates}):
        return found
    local = wall_time(series.start, series.zone, since)
    if local is None:
        return found
    return Parsed(found.rule.replace(dtstart=local), found.exdates, found.rdates)


def wall_time(start: datetime, zone: str, at: datetime) -> datetime | None:
    """The rule's own wall time of its occurrence at `at` (UTC), or None when `at` is not at
    the rule's time of day: that time of day (fold 0, as dateutil makes each) on the day whose
    instant is `at`. A time in a DST gap is not its own UTC round trip, so `at` read back in
    the zone would give another time of day."""
    first = start.astimezone(time_zone(zone))
    day = at.astimezone(first.tzinfo).date()
    for near in (day, day - timedelta(days=1), day + timedelta(days=1)):
        local = datetime.combine(near, first.time().replace(fold=0), tzinfo=first.tzinfo)
        if local.astimezone(UTC) == at:
            return local
    return None


def occurrences(series: Series, after: datetime | None = None, before: datetime | None = None,
                limit: int | None = None) -> list[Occurrence]:
    """At most `limit` occurrences with an original start in [after, before), cancelled ones
    left out. The caller bounds an unbounded rule by `before` or `limit`."""
    if before is None and limit is None and not bounded(series.recurrence):
        raise ValueError("an unbounded rule's expansion needs a window's end or a limit")
    found = (occurrence(series, start) for start in starts(series, after, before)
             if start not in series.cancelled)
    return list(islice(found, limit))


def bounded(lines: Sequence[str]) -> bool:
    """Whether the lines have finitely many occurrences (none, or an RRULE with COUNT or
    UNTIL)."""
    return not lines or _part(lines, "COUNT") is not None or _part(lines, "UNTIL") is not None


def occurrence(series: Series, original_start: datetime) -> Occurrence:
    """The occurrence at an original start (not checked to be one: see `occurs`)."""
    changes = series.overrides.get(original_start, {})
    start = changes.get("starting_time", original_start)
    end = changes.get("end_time", original_start + (series.end - series.start))
    return Occurrence(original_start, start, end, changes)


def starting_after(series: Series, after: datetime, count: int) -> list[Occurrence]:
    """The first `count` occurrences whose own start (moved or not) is after `after`, in order
    of that start: the rule's from a day before (an occurrence moves by its own change within
    about a day, as Google Calendar's UI moves one), and any that a change moved there."""
    near = occurrences(series, after - timedelta(days=1), limit=count + 2)
    moved = [occurrence(series, start) for start in series.overrides]
    found = {one.original_start: one for one in [*near, *moved] if one.start > after}
    return sorted(found.values(), key=lambda one: one.start)[:count]


def occurs(series: Series, original_start: datetime) -> bool:
    """Whether the rule has an occurrence at this original start (cancelled or not)."""
    if original_start >= series.start + HORIZON:
        return False
    return next(starts(series, original_start, original_start + timedelta(seconds=1)),
                None) == original_start


def split(lines: Sequence[str], start: datetime, zone: str,
          at: datetime) -> tuple[list[str], list[str]]:
    """The lines of the two series a split at the occurrence `at` makes: the first ends just
    before it (its RRULE's UNTIL; COUNT dropped), the second recurs from it by the same rule
    (a COUNT reduced by the occurrences before `at`); each keeps its own side's EXDATE and
    RDATE values, written as UTC times. Refused when `at` is the rule's time of day in a DST
    gap (02:30 on a spring-forward day in Europe/Berlin, at 03:30 CEST): the second series
    starts at that instant, which its zone reads as 03:30, so its rule would go on at 03:30
    rather than 02:30; a series stores no wall time apart from its starting_time."""
    found = parsed(lines, start, zone)
    local = wall_time(start, zone, at)
    if local is not None and at.astimezone(local.tzinfo).time() != local.time():
        raise RecurrenceError(
            f"this occurrence's time of day ({local:%H:%M}) does not exist on {local:%Y-%m-%d} "
            f"in {zone} (a daylight saving change); split the series at another occurrence")
    # COUNT counts the rule's occurrences, EXDATEs or not (RFC 5545 §3.8.5.1)
    before = len(found.rule.between(start, at - timedelta(seconds=1), inc=True))
    until = (at - timedelta(seconds=1)).astimezone(UTC).strftime(KEY_FORMAT)
    halves: tuple[list[str], list[str]] = ([], [])
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip().upper() != "RRULE":
            continue
        kept = [part for part in value.split(";")
                if part.partition("=")[0].strip().upper() not in ("COUNT", "UNTIL")]
        halves[0].append("RRULE:" + ";".join([*kept, f"UNTIL={until}"]))
        count = _part(lines, "COUNT")
        rest = [f"COUNT={int(count) - before}"] if count else (
            [f"UNTIL={_part(lines, 'UNTIL')}"] if _part(lines, "UNTIL") else [])
        halves[1].append("RRULE:" + ";".join([*kept, *rest]))
    for kind, moments in (("EXDATE", found.exdates), ("RDATE", found.rdates)):
        for half, side in ((0, [m for m in moments if m < at]),
                           (1, [m for m in moments if m >= at])):
            if side:
                halves[half].append(f"{kind}:" + ",".join(key(m) for m in sorted(side)))
    return halves


def _part(lines: Sequence[str], name: str) -> str | None:
    """A part's value in the lines' RRULE (already checked), e.g. COUNT's."""
    for line in lines:
        head, _, value = line.partition(":")
        if head.strip().upper() == "RRULE":
            for part in value.split(";"):
                part_name, _, setting = part.partition("=")
                if part_name.strip().upper() == name:
                    return setting.strip()
    return None
