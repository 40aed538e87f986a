"""The events view: the current, undeleted events, answering "which events start when, where,
with whom" for lists and location search without replaying aggregates."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from domain.events import Event
from domain.presentation import instant
from projections.database import SQLITE, Connection, Dialect
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
        renamed into place and its indexes must then take the live names."""
        return {
            f"events_view{suffix}_start": f"events_view{suffix} (starting_time, id)",
            f"events_view{suffix}_owner": f"events_view{suffix} (owner_id)",
            f"event_people{suffix}_event": f"event_people{suffix} (event_id)",
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

    def _insert(self, conn: Connection, position: int, fact: Any, suffix: str) -> None:
        event_id = str(fact.originator_id)
        stamp = instant(fact.timestamp)
        row = {
            "id": event_id, "owner_id": fact.owner_id, "name": fact.name,
            "location": fact.location, "starting_time": instant(fact.starting_time),
            "end_time": instant(fact.end_time), "participants": json.dumps(fact.participants),
            "version": fact.originator_version, "position": position, "created_at": stamp,
            "updated_at": stamp, **self.search.values(fact.name, fact.location),
        }
        conn.execute(
            f"INSERT INTO events_view{suffix} ({', '.join(row)}) "
            f"VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
        self.search.added(conn, event_id, suffix)
        self._set_people(conn, event_id, row["starting_time"], fact.participants, suffix)

    def _update(self, conn: Connection, position: int, fact: Any, suffix: str) -> None:
        event_id = str(fact.originator_id)
        row = conn.execute(
            f"SELECT seq, name, location, starting_time, participants FROM events_view{suffix} "
            "WHERE id = ?",
            (event_id,),
        ).fetchone()
        if row is None:
            return
        changes = dict(fact.changes)
        columns: dict[str, Any] = {}
        for name in ("name", "location"):
            if name in changes:
                columns[name] = changes[name]
        for name in ("starting_time", "end_time"):
            if name in changes:
                columns[name] = instant(changes[name])
        if "participants" in changes:
            columns["participants"] = json.dumps(changes["participants"])
        words = "name" in changes or "location" in changes
        named = columns.get("name", row["name"])
        located = columns.get("location", row["location"])
        if words:
            columns.update(self.search.values(named, located))
        columns.update(
            version=fact.originator_version, position=position, updated_at=instant(fact.timestamp)
        )
        assignments = ", ".join(f"{name} = ?" for name in columns)
        conn.execute(
            f"UPDATE events_view{suffix} SET {assignments} WHERE seq = ?",
            (*columns.values(), row["seq"]),
        )
        if words:
            self.search.changed(conn, row["seq"], named, located, suffix)
        if "participants" in changes or "starting_time" in changes:
            people = changes.get("participants", json.loads(row["participants"]))
            start = columns.get("starting_time", row["starting_time"])
            self._set_people(conn, event_id, start, people, suffix)

    def _delete(self, conn: Connection, event_id: str, suffix: str) -> None:
        row = conn.execute(
            f"SELECT seq FROM events_view{suffix} WHERE id = ?", (event_id,)
        ).fetchone()
        if row is None:
            return
        self.search.removed(conn, row["seq"], suffix)
        conn.execute(f"DELETE FROM events_view{suffix} WHERE seq = ?", (row["seq"],))
        conn.execute(f"DELETE FROM event_people{suffix} WHERE event_id = ?", (event_id,))

    def _set_people(
        self, conn: Connection, event_id: str, start: str, people: list[str], suffix: str
    ) -> None:
        conn.execute(f"DELETE FROM event_people{suffix} WHERE event_id = ?", (event_id,))
        conn.executemany(
            f"INSERT INTO event_people{suffix} VALUES (?, ?, ?)",
            [(person, start, event_id) for person in people],
        )


def owned_event_ids(conn: Connection, owner_id: str) -> list[str]:
    rows = conn.execute("SELECT id FROM events_view WHERE owner_id = ?", (owner_id,))
    return [r["id"] for r in rows]
