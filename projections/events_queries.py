"""Questions the events view answers, asked from async code through aiosqlite: pages of events
by time with filters, location search, and how far the view has got."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from domain.errors import InvalidFieldsError
from projections.events_view import match_words
from projections.people import names_queries

COLUMNS = ("id, owner_id, name, location, starting_time, end_time, participants, version, "
           "created_at, updated_at")


@dataclass(frozen=True)
class Filters:
    """What a page is restricted to; a cursor is valid only with the filters that made it."""

    starts_after: str | None = None
    starts_before: str | None = None
    location: str | None = None
    q: str | None = None
    participant_id: str | None = None

    def seal(self, start: str, event_id: str, secret: str) -> str:
        """Binds a cursor's place to these filters; keyed, so a client can neither forge a
        cursor nor re-aim one at other filters."""
        text = json.dumps([asdict(self), start, event_id], sort_keys=True)
        return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()[:24]


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next: str | None


def encode_cursor(row: dict[str, Any], filters: Filters, secret: str) -> str:
    start, event_id = row["starting_time"], row["id"]
    raw = json.dumps([start, event_id, filters.seal(start, event_id, secret)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, filters: Filters, secret: str) -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        start, event_id, seal = json.loads(base64.urlsafe_b64decode(padded))
        valid = hmac.compare_digest(str(seal), filters.seal(str(start), str(event_id), secret))
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise InvalidFieldsError({"cursor": "is not a cursor from a page with these same filters"})
    return start, event_id


def page_query(
    filters: Filters, after: tuple[str, str] | None, limit: int
) -> tuple[str, list[Any]]:
    """The SQL for one page. Each shape is driven by an index: the participant's rows, the
    full-text match, or the (starting_time, id) index; never a scan of the whole view."""
    matches = [m for m in (match_words("location", filters.location or ""),
                           match_words("name", filters.q or "")) if m]
    for name, text in (("location", filters.location), ("q", filters.q)):
        if text is not None and not match_words(name, text):
            raise InvalidFieldsError({name: "must contain at least one letter or digit"})
    match = " AND ".join(matches)
    where: list[str] = []
    params: list[Any] = []
    if filters.participant_id:
        source = "event_people p CROSS JOIN events_view v ON v.id = p.event_id"
        start, ident = "p.starting_time", "p.event_id"
        where.append("p.person_id = ?")
        params.append(filters.participant_id)
        if match:
            where.append("v.seq IN (SELECT rowid FROM events_search WHERE events_search MATCH ?)")
            params.append(match)
    elif match:
        source = "events_search s CROSS JOIN events_view v ON v.seq = s.rowid"
        start, ident = "v.starting_time", "v.id"
        where.append("events_search MATCH ?")
        params.append(match)
    else:
        source = "events_view v"
        start, ident = "v.starting_time", "v.id"
    if filters.starts_after:
        where.append(f"{start} >= ?")
        params.append(filters.starts_after)
    if filters.starts_before:
        where.append(f"{start} < ?")
        params.append(filters.starts_before)
    if after:
        where.append(f"({start}, {ident}) > (?, ?)")
        params.extend(after)
    sql = f"SELECT {', '.join('v.' + c.strip() for c in COLUMNS.split(','))} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {start}, {ident} LIMIT ?"
    params.append(limit)
    return sql, params


def current_row(conn: sqlite3.Connection, event_id: str) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM events_view WHERE id = ?", (event_id,)).fetchone()
    return dict(row) if row else None


class EventsReader:
    """One aiosqlite connection per worker, read-only, to the state database."""

    def __init__(self, path: Path, secret: str) -> None:
        self.path = path
        self.secret = secret
        self._conn: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self._conn = await aiosqlite.connect(self.path)
        self._conn.row_factory = aiosqlite.Row
        await self._conn.execute("PRAGMA query_only = ON")
        await self._conn.execute("PRAGMA busy_timeout = 30000")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    @property
    def conn(self) -> aiosqlite.Connection:
        assert self._conn is not None, "EventsReader.open() was not awaited"
        return self._conn

    async def page(self, filters: Filters, cursor: str | None, limit: int) -> Page:
        after = decode_cursor(cursor, filters, self.secret) if cursor else None
        sql, params = page_query(filters, after, limit + 1)
        async with self.conn.execute(sql, params) as rows:
            found = [dict(row) for row in await rows.fetchall()]
        more = len(found) > limit
        found = found[:limit]
        cursor = encode_cursor(found[-1], filters, self.secret) if more and found else None
        return Page(found, cursor)

    async def names(self, person_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        for sql, chunk, kind in names_queries(person_ids):
            async with self.conn.execute(sql, chunk) as rows:
                found.update((r[0], (kind, r[1])) for r in await rows.fetchall())
        return found

    async def position(self, view: str) -> int:
        async with self.conn.execute(
            "SELECT position FROM tracking WHERE view = ?", (view,)
        ) as rows:
            row = await rows.fetchone()
        return int(row[0]) if row else 0
