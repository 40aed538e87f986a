"""The events view: the current, undeleted events, answering "which events start when, where,
with whom" for lists and location search without replaying aggregates; and whose events were
cancelled when (events_cancelled), for the calendar feeds that show recent cancellations."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from domain.events import Event, responses_after
from domain.presentation import instant
from domain.storage import LIVE, Connection, Place
from projections.database import SQLITE, Dialect, StateDatabase
from projections.follower import Fact
from projections.occurrences import Occurrences, SeriesFolder
from projections.search import BY_ID, FROM_SEQ

# A view row's columns as `EventsView.created` gives them, before the search's own.
ROW = ("id", "owner_id", "name", "location", "starting_time", "end_time", "participants",
       "version", "position", "created_at", "updated_at", "responses", "time_zone",
       "recurrence")


# Columns the view gained after its first release, with what the rows made before them hold
# (there were no answers before answers existed): a database made before gains them when it
# is migrated, without a replay.
ADDED_COLUMNS = {"responses": "TEXT NOT NULL DEFAULT '{}'",
                 # events were in UTC before they had zones
                 "time_zone": "TEXT NOT NULL DEFAULT 'UTC'",
                 # no event recurred before series existed
                 "recurrence": "TEXT NOT NULL DEFAULT '[]'"}


class EventsSql:
    """The events view's statements in one dialect, made once from its tables' names at its
    place; the words' statements are its search's."""

    def __init__(self, dialect: Dialect, place: Place) -> None:
        view, people = place("events_view"), place("event_people")
        cancelled = place("events_cancelled")
        self.view = view
        self.tables = (view, people, cancelled)
        self.search = dialect.search.at(place)
        search = f",\n                {self.search.column}" if self.search.column else ""
        self.create = [
            f"""CREATE TABLE IF NOT EXISTS {view} (
                seq {dialect.serial_key},
                id TEXT NOT NULL UNIQUE,
                owner_id TEXT NOT NULL,
                name TEXT NOT NULL,
                location TEXT NOT NULL,
                starting_time TEXT NOT NULL,
                end_time TEXT NOT NULL,
                participants TEXT NOT NULL,
                version BIGINT NOT NULL,
                position BIGINT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                responses TEXT NOT NULL,
                time_zone TEXT NOT NULL DEFAULT 'UTC',
                recurrence TEXT NOT NULL DEFAULT '[]'{search}
            )""",
            f"""CREATE TABLE IF NOT EXISTS {people} (
                person_id TEXT NOT NULL,
                starting_time TEXT NOT NULL,
                event_id TEXT NOT NULL,
                PRIMARY KEY (person_id, starting_time, event_id)
            ){dialect.without_rowid}""",
            # One row per person concerned (the owner and each participant) per deleted event:
            # a feed finds a person's recent cancellations by the key's prefix. Kept, like the
            # facts they come from, so that a replay makes the same rows as the follower did
            # (a prune by the clock would not); a feed reads only the last days of them.
            f"""CREATE TABLE IF NOT EXISTS {cancelled} (
                person_id TEXT NOT NULL,
                cancelled_at TEXT NOT NULL,
                event_id TEXT NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (person_id, cancelled_at, event_id)
            ){dialect.without_rowid}""",
            *self.search.schema(),
        ]
        # Kept apart from the tables because a rebuilt table is renamed into place and its
        # indexes must then take the live names. event_people needs none: its rows are found
        # by their whole key, which the event's row holds.
        self.indexes = {f"{view}_start": f"{view} (starting_time, id)",
                        f"{view}_owner": f"{view} (owner_id)",
                        # free/busy: an owner's events that end after a window's start,
                        # and their series (whose later occurrences may fall in it)
                        f"{view}_owner_end": f"{view} (owner_id, end_time, starting_time)",
                        f"{view}_series": f"{view} (owner_id, starting_time) "
                                          "WHERE recurrence <> '[]'",
                        **self.search.indexes()}
        self.columns = columns = (*ROW, *self.search.columns)
        self.insert = (f"INSERT INTO {view} ({', '.join(columns)}) "
                       f"VALUES ({', '.join('?' * len(columns))})")
        # a loader's rows, numbered by the loader (`seq` the first of `values`)
        self.load = (f"INSERT INTO {view} (seq, {', '.join(columns)})"
                     f"{dialect.numbering().overriding} "
                     f"VALUES ({', '.join('?' * (1 + len(columns)))})")
        self.row = f"SELECT seq, name, location, responses FROM {view} WHERE id = ?"
        self.delete = f"DELETE FROM {view} WHERE seq = ?"
        self.top = f"SELECT id, seq FROM {view} ORDER BY seq DESC LIMIT ?"
        # The event_people rows (person_id, starting_time, event_id) of the view rows `v` a
        # write names (BY_ID or FROM_SEQ): one query for adding and removing them alike, made
        # inside the database from the rows' participants, in key order.
        listed = {rows: f"SELECT j.value, v.starting_time, v.id "
                        f"FROM {view} v, {dialect.participants} WHERE {rows}"
                  for rows in (BY_ID, FROM_SEQ)}
        self.add_people = {rows: f"INSERT INTO {people} {select} ORDER BY 1, 2, 3"
                           for rows, select in listed.items()}
        # found by their whole key, listed from the event's row (before it changes)
        self.remove_people = (f"DELETE FROM {people} WHERE (person_id, starting_time, event_id) "
                              f"IN ({listed[BY_ID]})")
        # A deleted event's cancellation rows, from its row before it goes: the owner's and
        # each participant's (UNION: an owner who is also a participant gets one).
        # (The parameters are cast: PostgreSQL cannot tell their types in a UNION's columns.)
        given = "CAST(? AS TEXT), v.id, CAST(? AS BIGINT)"
        self.cancel = (f"INSERT INTO {cancelled} SELECT v.owner_id, {given} FROM {view} v "
                       f"WHERE {BY_ID} UNION SELECT j.value, {given} "
                       f"FROM {view} v, {dialect.participants} WHERE {BY_ID}")
        self.cancelled = f"INSERT INTO {cancelled} VALUES (?, ?, ?, ?)"

    def values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """A row's values in the order `insert` names its columns."""
        return tuple(row[column] for column in self.columns)

    def update(self, columns: Iterable[str]) -> str:
        """Setting `columns` (those a fact changes) of the row numbered by the last `?`."""
        assignments = ", ".join(f"{name} = ?" for name in columns)
        return f"UPDATE {self.view} SET {assignments} WHERE seq = ?"


class EventsView:
    name = "events"

    def __init__(self, dialect: Dialect = SQLITE, place: Place = LIVE) -> None:
        self.dialect = dialect
        self.place = place
        self.sql = EventsSql(dialect, place)
        self.search = self.sql.search
        self.occurrences = Occurrences(place)
        self.tables: Sequence[str] = (*self.sql.tables, *self.search.tables,
                                      *self.occurrences.sql.tables)

    def at(self, place: Place) -> EventsView:
        return EventsView(self.dialect, place)

    def schema(self) -> list[str]:
        return [*self.sql.create, *self.occurrences.sql.create]

    def indexes(self) -> dict[str, str]:
        return {**self.sql.indexes, **self.occurrences.sql.indexes}

    def apply(self, conn: Connection, position: int, fact: Fact) -> None:
        match fact:
            case Event.Created():
                self._insert(conn, position, fact)
            case Event.Updated() | Event.Responded() | Event.OccurrenceChanged() \
                    | Event.OccurrenceCancelled():
                self._update(conn, position, fact)
            case Event.Deleted():
                self._delete(conn, fact)
            case _:
                pass
        self.occurrences.apply(conn, fact)

    def maintain(self, conn: Connection, now: datetime) -> bool:
        """Extend series' occurrences as time passes (projections.occurrences); True while
        some were (a series far behind takes several turns, MATERIALISED rows a turn)."""
        return self.occurrences.extend(conn, now) > 0

    def add_columns(self, conn: Connection) -> None:
        """The ADDED_COLUMNS a table made before them lacks (in one transaction with the
        check: a migration is one at a time, see alphabet.wiring.migrate)."""
        for column, definition in ADDED_COLUMNS.items():
            if not conn.execute(self.dialect.has_column, (self.sql.view, column)
                                ).fetchone()["found"]:
                conn.execute(f"ALTER TABLE {self.sql.view} ADD COLUMN {column} {definition}")

    def loader(self, reads: Connection) -> EventsLoader:
        return EventsLoader(self, reads)

    def created(self, position: int, fact: Any) -> dict[str, Any]:
        """The row a Created fact makes, but its seq, which is the table's to give."""
        stamp = instant(fact.timestamp)
        return {
            "id": str(fact.originator_id), "owner_id": fact.owner_id, "name": fact.name,
            "location": fact.location, "starting_time": instant(fact.starting_time),
            "end_time": instant(fact.end_time), "participants": json.dumps(fact.participants),
            "version": fact.originator_version, "position": position, "created_at": stamp,
            "updated_at": stamp, "responses": "{}", "time_zone": fact.time_zone,
            "recurrence": json.dumps(list(fact.recurrence)),
            **self.search.values(fact.name, fact.location),
        }

    def updated(self, row: Mapping[str, Any], position: int, fact: Any) -> dict[str, Any]:
        """The columns an Updated or Responded fact sets on `row`, the event's row before it
        (its name and location are needed to index the words again when one of them changes,
        its responses to keep those that stand)."""
        columns: dict[str, Any] = {}
        if isinstance(fact, Event.OccurrenceChanged | Event.OccurrenceCancelled) or (
                isinstance(fact, Event.Responded) and fact.original_start is not None):
            return self.stamped(columns, position, fact)  # a series' row holds its rule alone
        if isinstance(fact, Event.Responded):
            responses = {**json.loads(row["responses"]), fact.participant: fact.response}
            columns["responses"] = json.dumps(responses)
            return self.stamped(columns, position, fact)
        changes = fact.changes
        before = json.loads(row["responses"])
        if (after := responses_after(before, changes)) != before:
            columns["responses"] = json.dumps(after)
        for name in ("name", "location", "time_zone"):
            if name in changes:
                columns[name] = changes[name]
        for name in ("starting_time", "end_time"):
            if name in changes:
                columns[name] = instant(changes[name])
        for name in ("participants", "recurrence"):
            if name in changes:
                columns[name] = json.dumps(changes[name])
        if "name" in columns or "location" in columns:
            columns.update(self.search.values(columns.get("name", row["name"]),
                                              columns.get("location", row["location"])))
        return self.stamped(columns, position, fact)

    @staticmethod
    def stamped(columns: dict[str, Any], position: int, fact: Any) -> dict[str, Any]:
        columns.update(
            version=fact.originator_version, position=position, updated_at=instant(fact.timestamp)
        )
        return columns

    def cancelled(self, row: Mapping[str, Any], fact: Any) -> list[tuple[str, str, str, int]]:
        """The cancellation rows a Deleted fact makes of `row`, as `EventsSql.cancel` makes
        them inside the database."""
        stamp, version = instant(fact.timestamp), fact.originator_version
        people = dict.fromkeys([row["owner_id"], *json.loads(row["participants"])])
        return [(person, stamp, row["id"], version) for person in people]

    def add_people(self, conn: Connection, rows: str, value: Any) -> None:
        """The people rows of the view rows `rows` names (BY_ID or FROM_SEQ, for `value`)."""
        conn.execute(self.sql.add_people[rows], (value,))

    def _insert(self, conn: Connection, position: int, fact: Any) -> None:
        row = self.created(position, fact)
        conn.execute(self.sql.insert, self.sql.values(row))
        self.search.added(conn, BY_ID, row["id"])
        self.add_people(conn, BY_ID, row["id"])

    def _update(self, conn: Connection, position: int, fact: Any) -> None:
        event_id = str(fact.originator_id)
        row = conn.execute(self.sql.row, (event_id,)).fetchone()
        if row is None:
            return
        columns = self.updated(row, position, fact)
        moved = "participants" in columns or "starting_time" in columns
        if moved:
            conn.execute(self.sql.remove_people, (event_id,))
        conn.execute(self.sql.update(columns), (*columns.values(), row["seq"]))
        if "name" in columns or "location" in columns:
            self.search.changed(conn, row["seq"], columns.get("name", row["name"]),
                                columns.get("location", row["location"]))
        if moved:
            self.add_people(conn, BY_ID, event_id)

    def _delete(self, conn: Connection, fact: Any) -> None:
        event_id = str(fact.originator_id)
        row = conn.execute(self.sql.row, (event_id,)).fetchone()
        if row is None:
            return
        stamp, version = instant(fact.timestamp), fact.originator_version
        conn.execute(self.sql.cancel, (stamp, version, event_id, stamp, version, event_id))
        self.search.removed(conn, row["seq"])
        conn.execute(self.sql.remove_people, (event_id,))
        conn.execute(self.sql.delete, (row["seq"],))


class EventsLoader:
    """Fills the events view's tables, created empty, from the log in batches: a batch's facts
    are folded in memory into the final row of each event the batch creates, and those rows
    are written with one statement per table, in key order; an event created and then changed
    or deleted within the batch costs no statement of its own. A fact about an event an
    earlier batch wrote goes the follower's way, one by one, before the batch's new rows (one
    of which may take the number its deletion freed)."""

    def __init__(self, view: EventsView, reads: Connection) -> None:
        self.view = view
        self.reads = reads
        self.numbers = view.dialect.numbering()
        # the rows of the events created in this batch and alive, by id, in seq order
        self.fresh: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []  # their ids, the deleted ones dropped lazily
        self.earlier: list[tuple[int, Fact]] = []
        self.gone: set[str] = set()  # events of earlier batches deleted in this one
        # the cancellation rows of the events created and deleted in this batch
        self.cancelled: list[tuple[str, str, str, int]] = []
        self.series = SeriesFolder(view.occurrences)

    def fold(self, facts: Sequence[tuple[int, Fact]]) -> None:
        for position, fact in facts:
            event_id = str(fact.originator_id)
            match fact:
                case Event.Created():
                    self._create(event_id, position, fact)
                    self.series.fold(event_id, self.fresh[event_id], fact)
                case Event.Updated() | Event.Responded() | Event.OccurrenceChanged() \
                        | Event.OccurrenceCancelled() if event_id in self.fresh:
                    self._update(self.fresh[event_id], position, fact)
                    self.series.fold(event_id, self.fresh[event_id], fact)
                case Event.Deleted() if event_id in self.fresh:
                    self.cancelled += self.view.cancelled(self.fresh.pop(event_id), fact)
                case Event.Updated() | Event.Responded() | Event.OccurrenceChanged() \
                        | Event.OccurrenceCancelled() | Event.Deleted():
                    self.earlier.append((position, fact))
                    if isinstance(fact, Event.Deleted):
                        self.gone.add(event_id)
                case _:
                    pass

    def write(self, conn: Connection) -> None:
        for position, fact in self.earlier:
            self.view.apply(conn, position, fact)
        if self.fresh:
            self._insert(conn, list(self.fresh.values()))
        self.series.write(conn, self.fresh)
        if self.cancelled:
            conn.executemany(self.view.sql.cancelled, self.cancelled)
        self.fresh.clear()
        self.cancelled.clear()
        self.order.clear()
        self.earlier.clear()
        self.gone.clear()

    def _create(self, event_id: str, position: int, fact: Any) -> None:
        seq = self.numbers.next(self._top)
        self.fresh[event_id] = {"seq": seq, **self.view.created(position, fact)}
        self.order.append(event_id)

    def _update(self, row: dict[str, Any], position: int, fact: Any) -> None:
        row.update(self.view.updated(row, position, fact))

    def _top(self) -> int:
        """The largest seq among the rows alive now: the last fresh one's if any is left (a
        fresh row was numbered above every row alive then), else the table's."""
        while self.order and self.order[-1] not in self.fresh:
            self.order.pop()
        if self.order:
            return int(self.fresh[self.order[-1]]["seq"])
        rows = self.reads.execute(self.view.sql.top, (len(self.gone) + 1,))
        return next((row["seq"] for row in rows if row["id"] not in self.gone), 0)

    def _insert(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """The rows, then their words and people copied from them inside the database: the
        batch's rows are the ones numbered from its first."""
        view, first = self.view, rows[0]["seq"]
        conn.executemany(view.sql.load, [(row["seq"], *view.sql.values(row)) for row in rows])
        view.search.added(conn, FROM_SEQ, first)
        view.add_people(conn, FROM_SEQ, first)
        self.numbers.drawn(conn, view.sql.view)


class OwnedEvents:
    """domain.accounts' owned-events lookup: the events the view lists for an owner, once the
    view is caught up to the log's head (`catch_up`, the follower's run_once), so none saved
    before the question is missed. An account's deletion cascades to these as well as to
    those its Ownership holds: events created before Ownership was recorded are only here."""

    def __init__(self, db: StateDatabase, catch_up: Callable[[], object]) -> None:
        self.db = db
        self.catch_up = catch_up

    def __call__(self, owner_id: str) -> list[str]:
        self.catch_up()
        rows = self.db.connection().execute(
            "SELECT id FROM events_view WHERE owner_id = ?", (owner_id,))
        return [r["id"] for r in rows]
