"""The events view: the current, undeleted events, answering "which events start when, where,
with whom" for lists and location search without replaying aggregates."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from domain.events import Event
from domain.presentation import instant
from domain.storage import Connection
from projections.database import SQLITE, Dialect, StateDatabase
from projections.follower import Fact


class EventsView:
    name = "events"

    def __init__(self, dialect: Dialect = SQLITE) -> None:
        self.dialect = dialect
        self.search = dialect.search
        self.tables: Sequence[str] = ("events_view", "event_people", *self.search.tables)

    def schema(self, suffix: str = "") -> list[str]:
        search = f",\n                {self.search.column}" if self.search.column else ""
        return [
            f"""CREATE TABLE IF NOT EXISTS events_view{suffix} (
                seq {self.dialect.serial_key},
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
                updated_at TEXT NOT NULL{search}
            )""",
            f"""CREATE TABLE IF NOT EXISTS event_people{suffix} (
                person_id TEXT NOT NULL,
                starting_time TEXT NOT NULL,
                event_id TEXT NOT NULL,
                PRIMARY KEY (person_id, starting_time, event_id)
            ){self.dialect.without_rowid}""",
            *self.search.schema(suffix),
        ]

    def indexes(self, suffix: str = "") -> dict[str, str]:
        """Index name → definition; kept apart from the tables because a rebuilt table is
        renamed into place and its indexes must then take the live names. event_people needs
        none: its rows are found by their whole key, which the event's row holds."""
        return {
            f"events_view{suffix}_start": f"events_view{suffix} (starting_time, id)",
            f"events_view{suffix}_owner": f"events_view{suffix} (owner_id)",
            **self.search.indexes(suffix),
        }

    def apply(self, conn: Connection, position: int, fact: Fact, suffix: str = "") -> None:
        match fact:
            case Event.Created():
                self._insert(conn, position, fact, suffix)
            case Event.Updated():
                self._update(conn, position, fact, suffix)
            case Event.Deleted():
                self._delete(conn, str(fact.originator_id), suffix)
            case _:
                pass

    def loader(self, reads: Connection, suffix: str) -> EventsLoader:
        return EventsLoader(self, reads, suffix)

    def created(self, position: int, fact: Any) -> dict[str, Any]:
        """The row a Created fact makes, but its seq, which is the table's to give."""
        stamp = instant(fact.timestamp)
        return {
            "id": str(fact.originator_id), "owner_id": fact.owner_id, "name": fact.name,
            "location": fact.location, "starting_time": instant(fact.starting_time),
            "end_time": instant(fact.end_time), "participants": json.dumps(fact.participants),
            "version": fact.originator_version, "position": position, "created_at": stamp,
            "updated_at": stamp, **self.search.values(fact.name, fact.location),
        }

    def updated(self, row: Mapping[str, Any], position: int, fact: Any) -> dict[str, Any]:
        """The columns an Updated fact sets on `row`, the event's row before it (its name and
        location are needed to index the words again when one of them changes)."""
        changes = fact.changes
        columns: dict[str, Any] = {}
        for name in ("name", "location"):
            if name in changes:
                columns[name] = changes[name]
        for name in ("starting_time", "end_time"):
            if name in changes:
                columns[name] = instant(changes[name])
        if "participants" in changes:
            columns["participants"] = json.dumps(changes["participants"])
        if "name" in columns or "location" in columns:
            columns.update(self.search.values(columns.get("name", row["name"]),
                                              columns.get("location", row["location"])))
        columns.update(
            version=fact.originator_version, position=position, updated_at=instant(fact.timestamp)
        )
        return columns

    def insert(self, conn: Connection, rows: Sequence[dict[str, Any]], suffix: str,
               overriding: str = "") -> None:
        """View rows, each with the same columns (the first's)."""
        conn.executemany(
            f"INSERT INTO events_view{suffix} ({', '.join(rows[0])}){overriding} "
            f"VALUES ({', '.join('?' * len(rows[0]))})",
            [tuple(row.values()) for row in rows],
        )

    def add_people(self, conn: Connection, condition: str, value: Any, suffix: str) -> None:
        """The people rows of the view rows `v` matching `condition` (one `?`, for `value`),
        made inside the database from the rows' participants, in key order."""
        conn.execute(
            f"INSERT INTO event_people{suffix} {self._people(condition, suffix)} "
            "ORDER BY 1, 2, 3",
            (value,),
        )

    def _insert(self, conn: Connection, position: int, fact: Any, suffix: str) -> None:
        row = self.created(position, fact)
        self.insert(conn, [row], suffix)
        self.search.added(conn, "v.id = ?", row["id"], suffix)
        self.add_people(conn, "v.id = ?", row["id"], suffix)

    def _update(self, conn: Connection, position: int, fact: Any, suffix: str) -> None:
        event_id = str(fact.originator_id)
        row = conn.execute(
            f"SELECT seq, name, location FROM events_view{suffix} WHERE id = ?", (event_id,)
        ).fetchone()
        if row is None:
            return
        columns = self.updated(row, position, fact)
        moved = "participants" in columns or "starting_time" in columns
        if moved:
            self._remove_people(conn, event_id, suffix)
        assignments = ", ".join(f"{name} = ?" for name in columns)
        conn.execute(
            f"UPDATE events_view{suffix} SET {assignments} WHERE seq = ?",
            (*columns.values(), row["seq"]),
        )
        if "name" in columns or "location" in columns:
            self.search.changed(conn, row["seq"], columns.get("name", row["name"]),
                                columns.get("location", row["location"]), suffix)
        if moved:
            self.add_people(conn, "v.id = ?", event_id, suffix)

    def _delete(self, conn: Connection, event_id: str, suffix: str) -> None:
        row = conn.execute(
            f"SELECT seq FROM events_view{suffix} WHERE id = ?", (event_id,)
        ).fetchone()
        if row is None:
            return
        self.search.removed(conn, row["seq"], suffix)
        self._remove_people(conn, event_id, suffix)
        conn.execute(f"DELETE FROM events_view{suffix} WHERE seq = ?", (row["seq"],))

    def _remove_people(self, conn: Connection, event_id: str, suffix: str) -> None:
        """Found by their whole key, listed from the event's row (before it changes)."""
        conn.execute(
            f"DELETE FROM event_people{suffix} WHERE (person_id, starting_time, event_id) IN "
            f"({self._people('v.id = ?', suffix)})",
            (event_id,),
        )

    def _people(self, condition: str, suffix: str) -> str:
        """The event_people rows (person_id, starting_time, event_id) of the view rows `v`
        matching `condition`: one query for adding and removing them alike."""
        return (f"SELECT j.value, v.starting_time, v.id "
                f"FROM events_view{suffix} v, {self.dialect.participants} "
                f"WHERE {condition}")


class EventsLoader:
    """Fills the events view's tables, created empty, from the log in batches: a batch's facts
    are folded in memory into the final row of each event the batch creates, and those rows
    are written with one statement per table, in key order; an event created and then changed
    or deleted within the batch costs no statement of its own. A fact about an event an
    earlier batch wrote goes the follower's way, one by one, before the batch's new rows (one
    of which may take the number its deletion freed)."""

    def __init__(self, view: EventsView, reads: Connection, suffix: str) -> None:
        self.view = view
        self.reads = reads
        self.suffix = suffix
        self.numbers = view.dialect.numbering()
        # the rows of the events created in this batch and alive, by id, in seq order
        self.fresh: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []  # their ids, the deleted ones dropped lazily
        self.earlier: list[tuple[int, Fact]] = []
        self.gone: set[str] = set()  # events of earlier batches deleted in this one

    def fold(self, facts: Sequence[tuple[int, Fact]]) -> None:
        for position, fact in facts:
            event_id = str(fact.originator_id)
            match fact:
                case Event.Created():
                    self._create(event_id, position, fact)
                case Event.Updated() if event_id in self.fresh:
                    self._update(self.fresh[event_id], position, fact)
                case Event.Deleted() if event_id in self.fresh:
                    del self.fresh[event_id]
                case Event.Updated() | Event.Deleted():
                    self.earlier.append((position, fact))
                    if isinstance(fact, Event.Deleted):
                        self.gone.add(event_id)
                case _:
                    pass

    def write(self, conn: Connection) -> None:
        for position, fact in self.earlier:
            self.view.apply(conn, position, fact, self.suffix)
        if self.fresh:
            self._insert(conn, list(self.fresh.values()))
        self.fresh.clear()
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
        rows = self.reads.execute(
            f"SELECT id, seq FROM events_view{self.suffix} ORDER BY seq DESC LIMIT ?",
            (len(self.gone) + 1,),
        )
        return next((row["seq"] for row in rows if row["id"] not in self.gone), 0)

    def _insert(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """The rows, then their words and people copied from them inside the database: the
        batch's rows are the ones numbered from its first."""
        view, suffix, first = self.view, self.suffix, rows[0]["seq"]
        view.insert(conn, rows, suffix, self.numbers.overriding)
        view.search.added(conn, "v.seq >= ?", first, suffix)
        view.add_people(conn, "v.seq >= ?", first, suffix)
        self.numbers.drawn(conn, f"events_view{suffix}")


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
