"""Series' occurrences in the events view, for lists and searches with `single_events=true`
(SPEC §6.2): a page must never expand every series in the database, only those that can have
an occurrence in its window.

Two tables, kept by the events view from the same facts (so a replay rebuilds them exactly):
* `event_occurrences`: each series' occurrences, materialised for a horizon — original starts
  before `HORIZON` past the later of the series' start and its latest fact's time, at most
  `MATERIALISED` of them — with their own changes applied; indexed by (starting_time, id), the
  order of a page. A fact's rows depend on the facts alone, never on the clock, so replay
  equals live; as time passes, `Occurrences.extend` (run by the view's follower, see
  projections.follower.Maintained) materialises more of each series whose rows end within
  `LOOKAHEAD` of the present, up to `HORIZON` past it. Rows a series has are the same
  whenever they were made, so an extended view and a replayed one answer alike, though the
  replayed one may end earlier until its own extension runs.
* `event_series`: per series, its occurrences' own changes and cancellations (what a rule
  change must prune, as the aggregate does), its first start, its last (NULL while unknown:
  an unbounded rule, or one longer than was materialised) and `pending`, the first original
  start not materialised (NULL when none is left), indexed. Occurrences past a series'
  horizon are expanded when a page reaches them, and then only for the series whose
  `pending` lies before the page's end."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from domain.events import OWN_RESPONSES, RECURRING, RETIMING, Event, occurrence_responses_after
from domain.presentation import instance_id, instant
from domain.recurrence import Occurrence, Series, key, occurrence, occurs, parse_key, starts
from domain.storage import Connection, Place
from projections.database import Row

# How far past a series' start (or its latest fact, if later) its occurrences are kept as rows,
# and how many at most: a daily series has a year of rows, a weekly one eight.
HORIZON = timedelta(days=400)
MATERIALISED = 400
# A series is extended once its rows end (its `pending` start) within this of the present, so
# a page up to half a year ahead finds every row made; and at most this many series a
# transaction, so the view's follower never holds its lock for long.
LOOKAHEAD = HORIZON / 2
EXTEND_BATCH = 100
TIMES = ("starting_time", "end_time")
# An occurrence's own answers (SPEC §6.3), kept among its own changes, by person id: a page
# shows them over the series' (projections.single_events.shown_row), free/busy reads them
RESPONSES = OWN_RESPONSES


@dataclass
class Exceptions:
    """A series' occurrences' own changes (JSON-ready: times as instants) and cancellations,
    by occurrence key (domain.recurrence.key)."""

    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)

    def answered_by(self, person: str) -> bool:
        """Whether `person` answered one of the occurrences for itself."""
        return any(person in own.get(RESPONSES, {}) for own in self.overrides.values())

    @classmethod
    def read(cls, row: Mapping[str, Any] | Row | None) -> Exceptions:
        if row is None:
            return cls()
        return cls(json.loads(row["overrides"]), json.loads(row["cancelled"]))


def encoded(changes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: instant(value) if name in TIMES else value for name, value in changes.items()}


def decoded(changes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: datetime.fromisoformat(value) if name in TIMES else value
            for name, value in changes.items()}


def series_of(row: Mapping[str, Any] | Row, exceptions: Exceptions) -> Series | None:
    """The series an events view row (its times, zone and recurrence) and its exceptions
    describe, or None for a single event."""
    lines = json.loads(row["recurrence"])
    if not lines:
        return None
    overrides = {parse_key(k): decoded(v) for k, v in exceptions.overrides.items()}
    return Series(datetime.fromisoformat(row["starting_time"]),
                  datetime.fromisoformat(row["end_time"]), row["time_zone"], lines,
                  {start: changes for start, changes in overrides.items() if start is not None},
                  frozenset(start for start in map(parse_key, exceptions.cancelled)
                            if start is not None))


def advance(row: Mapping[str, Any], exceptions: Exceptions, fact: Any) -> Exceptions:
    """A series' exceptions after `fact`, as the aggregate folds them; `row` is the event's
    view row after the fact."""
    if isinstance(fact, Event.Created):
        return Exceptions()
    if isinstance(fact, Event.Responded) and fact.original_start is not None:
        start = key(fact.original_start)
        own = exceptions.overrides.get(start, {})
        answers = {**own.get(RESPONSES, {}), fact.participant: fact.response}
        return Exceptions({**exceptions.overrides, start: {**own, RESPONSES: answers}},
                          exceptions.cancelled)
    if isinstance(fact, Event.OccurrenceChanged):
        start = key(fact.original_start)
        own = {**exceptions.overrides.get(start, {}), **encoded(fact.changes)}
        answers = occurrence_responses_after(
            own.pop(RESPONSES, {}), fact.changes,
            own.get("participants", json.loads(row["participants"])))
        overrides = {**exceptions.overrides, start: {**own, **({RESPONSES: answers}
                                                               if answers else {})}}
        return Exceptions(overrides, exceptions.cancelled)
    if isinstance(fact, Event.OccurrenceCancelled):
        start = key(fact.original_start)
        overrides = {k: v for k, v in exceptions.overrides.items() if k != start}
        return Exceptions(overrides, sorted({*exceptions.cancelled, start}))
    if isinstance(fact, Event.Updated) and RECURRING.intersection(fact.changes):
        series = series_of(row, Exceptions())
        if series is None:
            return Exceptions()
        kept = [k for k in [*exceptions.overrides, *exceptions.cancelled]
                if (moment := parse_key(k)) is not None and occurs(series, moment)]
        exceptions = Exceptions({k: v for k, v in exceptions.overrides.items() if k in kept},
                                [k for k in exceptions.cancelled if k in kept])
    if isinstance(fact, Event.Updated):
        return answers_kept(row, exceptions, fact.changes)
    return exceptions


def answers_kept(row: Mapping[str, Any], exceptions: Exceptions,
                 changes: Mapping[str, Any]) -> Exceptions:
    """Occurrences' own answers after a change of the series, as the aggregate keeps them:
    none after a new time; a removed participant's go."""
    if not RETIMING.intersection(changes) and "participants" not in changes:
        return exceptions
    overrides = {}
    for start, own in exceptions.overrides.items():
        kept = {name: value for name, value in own.items() if name != RESPONSES}
        invited = own.get("participants", json.loads(row["participants"]))
        answers = {} if RETIMING.intersection(changes) else {
            person: answer for person, answer in own.get(RESPONSES, {}).items()
            if person in invited}
        if answers:
            kept[RESPONSES] = answers
        if kept:
            overrides[start] = kept
    return Exceptions(overrides, exceptions.cancelled)


def shapes_occurrences(fact: Any) -> bool:
    """Whether a fact can change a series' occurrences' rows (an answer to the whole series
    shows through the view's row)."""
    return isinstance(fact, Event.Created | Event.Updated | Event.OccurrenceChanged
                      | Event.OccurrenceCancelled) or (
        isinstance(fact, Event.Responded) and fact.original_start is not None)


class OccurrencesSql:
    """The two tables' statements at a place."""

    def __init__(self, place: Place) -> None:
        series, rows, view = place("event_series"), place("event_occurrences"), \
            place("events_view")
        self.tables = (series, rows)
        self.create = [
            f"""CREATE TABLE IF NOT EXISTS {series} (
                id TEXT PRIMARY KEY,
                first_start TEXT NOT NULL,
                last_start TEXT,
                pending TEXT,
                overrides TEXT NOT NULL,
                cancelled TEXT NOT NULL
            )""",
            f"""CREATE TABLE IF NOT EXISTS {rows} (
                id TEXT PRIMARY KEY,
                series_id TEXT NOT NULL,
                original_start TEXT NOT NULL,
                starting_time TEXT NOT NULL,
                end_time TEXT NOT NULL,
                changes TEXT NOT NULL
            )""",
        ]
        self.indexes = {f"{rows}_start": f"{rows} (starting_time, id)",
                        f"{rows}_series": f"{rows} (series_id, starting_time, id)",
                        f"{series}_pending": f"{series} (pending)",
                        f"{series}_first": f"{series} (first_start)",
                        f"{series}_last": f"{series} (last_start)"}
        self.exceptions = f"SELECT overrides, cancelled FROM {series} WHERE id = ?"
        self.view_row = (f"SELECT starting_time, end_time, time_zone, recurrence, "
                         f"participants FROM {view} WHERE id = ?")
        self.drop_rows = f"DELETE FROM {rows} WHERE series_id = ?"
        self.drop_series = f"DELETE FROM {series} WHERE id = ?"
        self.insert_series = (f"INSERT INTO {series} (id, first_start, last_start, pending, "
                              "overrides, cancelled) VALUES (?, ?, ?, ?, ?, ?)")
        self.moved_on = f"UPDATE {series} SET pending = ?, last_start = ? WHERE id = ?"
        self.due = (f"SELECT s.id, s.pending, s.overrides, s.cancelled, v.starting_time, "
                    f"v.end_time, v.time_zone, v.recurrence FROM {series} s JOIN {view} v "
                    "ON v.id = s.id WHERE s.pending < ? ORDER BY s.pending LIMIT ?")
        self.insert_row = (f"INSERT INTO {rows} (id, series_id, original_start, starting_time, "
                           "end_time, changes) VALUES (?, ?, ?, ?, ?, ?)")


class Occurrences:
    """The events view's part that keeps series' occurrences (called after the view's own
    row has taken the fact, so `row` is the event as it is now)."""

    def __init__(self, place: Place) -> None:
        self.sql = OccurrencesSql(place)

    def apply(self, conn: Connection, fact: Any) -> None:
        event_id = str(fact.originator_id)
        if isinstance(fact, Event.Deleted):
            self.drop(conn, event_id)
            return
        if not shapes_occurrences(fact) or (
                isinstance(fact, Event.Created) and not fact.recurrence):
            return  # a new single event: no series, and none before it
        row = conn.execute(self.sql.view_row, (event_id,)).fetchone()
        if row is None or (not json.loads(row["recurrence"])
                           and "recurrence" not in getattr(fact, "changes", {})):
            return  # a single event that was one before the fact too: it has no rows
        before = Exceptions.read(conn.execute(self.sql.exceptions, (event_id,)).fetchone())
        self.write(conn, event_id, row, advance(row, before, fact), fact.timestamp)

    def drop(self, conn: Connection, event_id: str) -> None:
        conn.execute(self.sql.drop_rows, (event_id,))
        conn.execute(self.sql.drop_series, (event_id,))

    def write(self, conn: Connection, event_id: str, row: Mapping[str, Any],
              exceptions: Exceptions, base: datetime, *, new: bool = False) -> None:
        """The series' rows afresh, materialised to the horizon from `base` (a fact's time).
        `new`: it has none yet (a rebuild's loader knows, and its tables have no index to
        find a series' rows by until the end: each drop would read every row)."""
        if not new:
            self.drop(conn, event_id)
        series = series_of(row, exceptions)
        if series is None:
            return
        conn.execute(self.sql.insert_series, (
            event_id, instant(series.start), None, None, json.dumps(exceptions.overrides),
            json.dumps(exceptions.cancelled)))
        self.materialise(conn, event_id, series, exceptions, starts(series),
                         max(series.start, base) + HORIZON)

    def extend(self, conn: Connection, now: datetime) -> int:
        """Materialise more rows of the series whose rows end within LOOKAHEAD of `now`, the
        earliest first, at most EXTEND_BATCH of them: up to HORIZON past `now` (at most
        MATERIALISED rows each). Returns how many series it extended."""
        due = conn.execute(self.sql.due, (instant(now + LOOKAHEAD), EXTEND_BATCH)).fetchall()
        for row in due:
            exceptions = Exceptions.read(row)
            series = series_of(row, exceptions)
            if series is None:  # a series has lines; the check only narrows the type
                continue
            pending = datetime.fromisoformat(row["pending"])
            self.materialise(conn, row["id"], series, exceptions,
                             starts(series, pending, since=pending), now + HORIZON)
        return len(due)

    def materialise(self, conn: Connection, event_id: str, series: Series,
                    exceptions: Exceptions, found: Iterator[datetime],
                    horizon: datetime) -> None:
        """Rows for the original starts `found` yields before `horizon` (at most
        MATERIALISED; at least one, so an extension always moves on), and where the series'
        rows now end: `pending`, the first start left out, or NULL with its last start when
        none is left."""
        ahead = list(islice(found, MATERIALISED + 1))
        kept = [start for start in ahead[:MATERIALISED] if start < horizon]
        pending = ahead[len(kept)] if len(kept) < len(ahead) else None
        last = kept[-1] if pending is None and kept else None
        conn.execute(self.sql.moved_on, (instant(pending) if pending else None,
                                         instant(last) if last else None, event_id))
        conn.executemany(self.sql.insert_row, [
            occurrence_row(event_id, occurrence(series, start), exceptions)
            for start in kept if start not in series.cancelled])


def occurrence_row(event_id: str, found: Occurrence,
                   exceptions: Exceptions) -> tuple[str, str, str, str, str, str]:
    return (instance_id(event_id, found.key), event_id, instant(found.original_start),
            instant(found.start), instant(found.end),
            json.dumps(exceptions.overrides.get(found.key, {})))


class SeriesFolder:
    """The loader's side (projections.events_view.EventsLoader): a batch's new events'
    exceptions folded in memory, fact by fact as `Occurrences.apply` would, then written once
    from their final rows, each from its latest fact's time (new events: no rows to drop)."""

    def __init__(self, occurrences: Occurrences) -> None:
        self.occurrences = occurrences
        self.folded: dict[str, tuple[Exceptions, datetime]] = {}

    def fold(self, event_id: str, row: Mapping[str, Any], fact: Any) -> None:
        if shapes_occurrences(fact):
            before = self.folded.get(event_id, (Exceptions(), fact.timestamp))[0]
            self.folded[event_id] = (advance(row, before, fact), fact.timestamp)

    def write(self, conn: Connection, rows: Mapping[str, Mapping[str, Any]]) -> None:
        for event_id, row in rows.items():
            if event_id in self.folded and json.loads(row["recurrence"]):
                exceptions, base = self.folded[event_id]
                self.occurrences.write(conn, event_id, row, exceptions, base, new=True)
        self.folded.clear()
