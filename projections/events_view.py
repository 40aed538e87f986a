"""The events view: the current, undeleted events, answering "which events start when, where,
with whom" for lists and location search without replaying aggregates."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

from domain.events import Event
from domain.presentation import instant
from projections.follower import Fact

TABLES = ("events_view", "event_people", "events_search")


def match_words(column: str, text: str) -> str | None:
    """A full-text query requiring every word of `text` in `column`; punctuation separates
    words exactly as the index's tokenizer does, so "Tel-Aviv" finds "Tel Aviv Port"."""
    words = re.findall(r"[^\W_]+", text)
    return f"{column} : (" + " ".join(f'"{w}"' for w in words) + ")" if words else None


class EventsView:
    name = "events"
    tables: Sequence[str] = TABLES

    def schema(self, suffix: str = "") -> list[str]:
        return [
            f"""CREATE TABLE IF NOT EXISTS events_view{suffix} (
                seq INTEGER PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                owner_id TEXT NOT NULL,
                name TEXT NOT NULL,
                location TEXT NOT NULL,
                starting_time TEXT NOT NULL,
                end_time TEXT NOT NULL,
                participants TEXT NOT NULL,
                version INTEGER NOT NULL,
                position INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            f"""CREATE TABLE IF NOT EXISTS event_people{suffix} (
                person_id TEXT NOT NULL,
                starting_time TEXT NOT NULL,
                event_id TEXT NOT NULL,
                PRIMARY KEY (person_id, starting_time, event_id)
            ) WITHOUT ROWID""",
            f"""CREATE VIRTUAL TABLE IF NOT EXISTS events_search{suffix} USING fts5(
                name, location, tokenize = "unicode61 remove_diacritics 2"
            )""",
        ]

    def indexes(self, suffix: str = "") -> dict[str, str]:
        """Index name → definition; kept apart from the tables because a rebuilt table is
        renamed into place and its indexes must then take the live names."""
        return {
            f"events_view{suffix}_start": f"events_view{suffix} (starting_time, id)",
            f"events_view{suffix}_owner": f"events_view{suffix} (owner_id)",
            f"event_people{suffix}_event": f"event_people{suffix} (event_id)",
        }

    def apply(self, conn: sqlite3.Connection, position: int, fact: Fact, suffix: str = "") -> None:
        match fact:
            case Event.Created():
                self._insert(conn, position, fact, suffix)
            case Event.Updated():
                self._update(conn, position, fact, suffix)
            case Event.Deleted():
                self._delete(conn, str(fact.originator_id), suffix)
            case _:
                pass

    def _insert(self, conn: sqlite3.Connection, position: int, fact: Any, suffix: str) -> None:
        event_id = str(fact.originator_id)
        stamp = instant(fact.timestamp)
        cur = conn.execute(
            f"INSERT INTO events_view{suffix} (id, owner_id, name, location, starting_time, "
            "end_time, participants, version, position, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event_id, fact.owner_id, fact.name, fact.location, instant(fact.starting_time),
                instant(fact.end_time), json.dumps(fact.participants), fact.originator_version,
                position, stamp, stamp,
            ),
        )
        conn.execute(
            f"INSERT INTO events_search{suffix} (rowid, name, location) VALUES (?, ?, ?)",
            (cur.lastrowid, fact.name, fact.location),
        )
        self._set_people(conn, event_id, instant(fact.starting_time), fact.participants, suffix)

    def _update(self, conn: sqlite3.Connection, position: int, fact: Any, suffix: str) -> None:
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
        columns.update(
            version=fact.originator_version, position=position, updated_at=instant(fact.timestamp)
        )
        assignments = ", ".join(f"{name} = ?" for name in columns)
        conn.execute(
            f"UPDATE events_view{suffix} SET {assignments} WHERE seq = ?",
            (*columns.values(), row["seq"]),
        )
        if "name" in changes or "location" in changes:
            conn.execute(
                f"UPDATE events_search{suffix} SET name = ?, location = ? WHERE rowid = ?",
                (columns.get("name", row["name"]), columns.get("location", row["location"]),
                 row["seq"]),
            )
        if "participants" in changes or "starting_time" in changes:
            people = changes.get("participants", json.loads(row["participants"]))
            start = columns.get("starting_time", row["starting_time"])
            self._set_people(conn, event_id, start, people, suffix)

    def _delete(self, conn: sqlite3.Connection, event_id: str, suffix: str) -> None:
        row = conn.execute(
            f"SELECT seq FROM events_view{suffix} WHERE id = ?", (event_id,)
        ).fetchone()
        if row is None:
            return
        conn.execute(f"DELETE FROM events_search{suffix} WHERE rowid = ?", (row["seq"],))
        conn.execute(f"DELETE FROM events_view{suffix} WHERE seq = ?", (row["seq"],))
        conn.execute(f"DELETE FROM event_people{suffix} WHERE event_id = ?", (event_id,))

    def _set_people(
        self, conn: sqlite3.Connection, event_id: str, start: str, people: list[str], suffix: str
    ) -> None:
        conn.execute(f"DELETE FROM event_people{suffix} WHERE event_id = ?", (event_id,))
        conn.executemany(
            f"INSERT INTO event_people{suffix} VALUES (?, ?, ?)",
            [(person, start, event_id) for person in people],
        )


def owned_event_ids(conn: sqlite3.Connection, owner_id: str) -> list[str]:
    rows = conn.execute("SELECT id FROM events_view WHERE owner_id = ?", (owner_id,))
    return [r[0] for r in rows]
