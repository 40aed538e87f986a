"""Questions the events view answers, asked from the event loop (SQLite inline, or psycopg's
async connections): pages of events by time with filters, location search, and how far the
view has got."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain.errors import InvalidFieldsError
from projections import single_events
from projections.database import SQLITE, AsyncReads, Dialect, Row
from projections.events_view import EventsView
from projections.people import NAMES_COUNT
from projections.search import words

COLUMNS = ("id, owner_id, name, location, starting_time, end_time, participants, version, "
           "created_at, updated_at, responses, time_zone, recurrence")
VIEW_COLUMNS = ", ".join("v." + column.strip() for column in COLUMNS.split(","))
# What a page needs of a row whose text a worker has rendered already (api.rendered: id,
# version and owner decide it) and its cursor (starting time, id). A page of 100 whole rows
# cost PostgreSQL ~400 µs and psycopg ~600 µs to turn into Python, keys alone about half;
# whole rows are read afterwards for the texts a worker lacks (EventsReader.complete).
KEY_COLUMNS = "v.id, v.owner_id, v.version, v.starting_time"
# Read in the same statement as a page's rows (each a scalar the database computes once): the
# names count the rows are shown under, and how far the view has got (a list's X-Position).
# On PostgreSQL each statement is a round trip costing more than the query itself (~100 µs
# of a worker's CPU), and a list read three.
REACHED = f"COALESCE((SELECT position FROM tracking WHERE view = '{EventsView.name}'), 0)"
COUNTERS = f"{NAMES_COUNT} AS names_count, {REACHED} AS reached"


@dataclass(frozen=True)
class Filters:
    """What a page is restricted to; a cursor is valid only with the filters that made it."""

    starts_after: str | None = None
    starts_before: str | None = None
    location: str | None = None
    q: str | None = None
    participant_id: str | None = None
    # occurrences of series in their place (projections.occurrences), not series once each
    single_events: bool = False

    def seal(self, start: str, event_id: str, secret: str) -> str:
        """Binds a cursor's place to these filters; keyed, so a client can neither forge a
        cursor nor re-aim one at other filters."""
        # vars(), not asdict(): the same flat mapping, without asdict's deep copy per page
        text = json.dumps([vars(self), start, event_id], sort_keys=True)
        return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()[:24]


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next: str | None
    names_count: int  # the people reader's names count, read with the rows
    reached: int  # the events view's position, read with the rows


def encode_cursor(row: Row, filters: Filters, secret: str) -> str:
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


def matched(filters: Filters, dialect: Dialect) -> str | None:
    """The search's query for the filters' words, or None without words."""
    for name, text in (("location", filters.location), ("q", filters.q)):
        if text is not None and not words(text):
            raise InvalidFieldsError({name: "must contain at least one letter or digit"})
    return dialect.search.query(filters.location or "", filters.q or "") or None


def page_query(
    filters: Filters, after: tuple[str, str] | None, limit: int, dialect: Dialect = SQLITE,
    columns: str = VIEW_COLUMNS,
) -> tuple[str, list[Any]]:
    """The SQL for one page (`columns` of its rows, and the COUNTERS). Each shape is driven by
    an index: the participant's rows, the full-text match, or the (starting_time, id) index;
    never a scan of the whole view."""
    search = dialect.search
    match = matched(filters, dialect)
    where: list[str] = []
    params: list[Any] = []
    if filters.participant_id:
        source = f"event_people p {dialect.ordered_join} events_view v ON v.id = p.event_id"
        start, ident = "p.starting_time", "p.event_id"
        where.append("p.person_id = ?")
        params.append(filters.participant_id)
        if match:
            where.append(search.condition)
            params.append(match)
    elif match:
        source = search.source
        start, ident = "v.starting_time", "v.id"
        where.append(search.match)
        params.append(match)
    else:
        source = "events_view v"
        start, ident = "v.starting_time", "v.id"
    bounds, values = single_events.window(filters, after, start, ident)
    where += bounds
    params += values
    if where:
        source += " WHERE " + " AND ".join(where)
    order = f" ORDER BY {start}, {ident}"
    params.append(limit)
    if match and not filters.participant_id and search.sort_keys_first:
        # Matches come in no useful order and are sorted: sort their keys alone, then read
        # the page's rows.
        return (f"SELECT {columns}, {COUNTERS} FROM (SELECT v.seq FROM {source}{order} "
                f"LIMIT ?) k {dialect.ordered_join} events_view v ON v.seq = k.seq{order}",
                params)
    return f"SELECT {columns}, {COUNTERS} FROM {source}{order} LIMIT ?", params


# Free/busy: the events people own or take part in that may overlap a window. Owned ones
# through the (owner_id, end_time, starting_time) index: for each owner the range of events
# that end after the window's start (their current and later ones, not their whole past),
# starts checked in the index itself; and through the partial index of series, those that
# began before (a later occurrence may fall in the window). Taken part in through
# event_people's key (person_id, starting_time): each participant's events that start before
# the window's end, with the responses for the caller to keep the accepted ones (`responses`
# is null for the owner's, who is always busy). A series (`recurrence` not '[]') is a row of
# its first occurrence, with its occurrences' own changes and cancellations (event_series,
# by its key): the caller expands it.
BUSY_COLUMNS = ("v.id, v.starting_time, v.end_time, v.participants, v.time_zone, v.recurrence, "
                "s.overrides, s.cancelled")
BUSY = ("SELECT v.owner_id AS person_id, NULL AS responses, {columns} FROM events_view v "
        "LEFT JOIN event_series s ON s.id = v.id WHERE v.owner_id IN ({marks}) "
        "AND v.end_time > ? AND v.starting_time < ? "
        "UNION ALL SELECT v.owner_id, NULL, {columns} FROM events_view v "
        "LEFT JOIN event_series s ON s.id = v.id WHERE v.owner_id IN ({marks}) "
        "AND v.recurrence <> '[]' AND v.starting_time < ? AND v.end_time <= ? "
        "UNION ALL SELECT p.person_id, v.responses, {columns} "
        "FROM event_people p {join} events_view v ON v.id = p.event_id "
        "LEFT JOIN event_series s ON s.id = v.id WHERE p.person_id IN ({marks}) "
        "AND p.starting_time < ? AND (v.end_time > ? OR v.recurrence <> '[]')")


def busy_query(person_ids: Sequence[str], start: str, end: str,
               dialect: Dialect = SQLITE) -> tuple[str, list[Any]]:
    """The SQL for the events that may keep these people busy in [start, end) (instants as
    the view writes them): rows of person_id, responses and BUSY_COLUMNS."""
    marks = ",".join("?" * len(person_ids))
    return (BUSY.format(marks=marks, join=dialect.ordered_join, columns=BUSY_COLUMNS),
            [*person_ids, start, end, *person_ids, end, start, *person_ids, end, start])


class Moved(Exception):
    """An event changed between the statement that read a page's keys and the one that read
    its whole rows: the page must be read again, whole."""


def store_version(dialect: Dialect, events_table: str) -> str:
    """A scalar SQL expression: the store's latest version of the events view row `v`."""
    if dialect.name == "sqlite":
        # eventsourcing's SQLite recorder keeps ids as 32 hex digits, without dashes.
        return (f"(SELECT MAX(originator_version) FROM store.{events_table} "
                "WHERE originator_id = replace(v.id, '-', ''))")
    return (f"(SELECT MAX(originator_version) FROM {events_table} "
            "WHERE originator_id = CAST(v.id AS uuid))")


class EventsReader:
    """The view's questions, asked through a worker's async reads (InlineReads or
    PostgresReads) in its dialect."""

    def __init__(self, reads: AsyncReads, secret: str, dialect: Dialect,
                 events_table: str) -> None:
        """`events_table`: the event store's table, read beside the view's row (SQLite: the
        store attached to the lookup connection; PostgreSQL: the same database)."""
        self.reads = reads
        self.secret = secret
        self.dialect = dialect
        latest = store_version(dialect, events_table)
        self.current_sql = (f"SELECT {VIEW_COLUMNS}, {latest} AS latest, {NAMES_COUNT} "
                            "AS names_count FROM events_view v WHERE v.id IN ({keys})")

    async def page(self, filters: Filters, cursor: str | None, limit: int,
                   whole: bool = False) -> Page:
        """A page and its counters in one statement (an empty page reads them alone): the
        rows' KEY_COLUMNS, or all their columns when `whole`."""
        after = decode_cursor(cursor, filters, self.secret) if cursor else None
        if filters.single_events:
            return await self.occurrences_page(filters, after, limit)
        sql, params = page_query(filters, after, limit + 1, self.dialect,
                                 VIEW_COLUMNS if whole else KEY_COLUMNS)
        found = await self.reads.fetchall(sql, params)
        counters = found[0] if found else (await self.reads.fetchall(f"SELECT {COUNTERS}", ()))[0]
        more = len(found) > limit
        found = found[:limit]
        cursor = encode_cursor(found[-1], filters, self.secret) if more and found else None
        return Page(found, cursor, int(counters["names_count"]), int(counters["reached"]))

    async def occurrences_page(self, filters: Filters, after: tuple[str, str] | None,
                               limit: int) -> Page:
        """Single events and series' occurrences (projections.single_events): the rows read,
        then the occurrences past their series' materialised ones up to the page's end, whole
        rows (their texts are rendered from them)."""
        match = matched(filters, self.dialect)
        sql, params = single_events.page_query(filters, match, after, limit + 1, self.dialect)
        found: list[Any] = list(await self.reads.fetchall(sql, params))
        until = found[limit]["starting_time"] if len(found) > limit else filters.starts_before
        sql, params = single_events.pending_query(filters, match, until, self.dialect)
        series = await self.reads.fetchall(sql, params)
        if series:
            found += single_events.expanded(series, filters, after, until, limit + 1)
            found.sort(key=lambda row: (row["starting_time"], row["id"]))
        counters = (await self.reads.fetchall(f"SELECT {COUNTERS}", ()))[0]
        more = len(found) > limit
        rows: list[Row] = [single_events.shown_row(row) for row in found[:limit]]
        cursor = encode_cursor(rows[-1], filters, self.secret) if more and rows else None
        return Page(rows, cursor, int(counters["names_count"]), int(counters["reached"]))

    async def complete(self, keys: Sequence[Row]) -> list[Row]:
        """The whole rows of a page's key rows, in order, at the versions the page read; Moved
        if one has changed (or gone) since."""
        marks = ",".join("?" * len(keys))
        rows = await self.reads.fetchall(
            f"SELECT {VIEW_COLUMNS} FROM events_view v WHERE v.id IN ({marks})",
            [key["id"] for key in keys])
        by_id = {row["id"]: row for row in rows}
        whole = [by_id.get(key["id"]) for key in keys]
        if any(row is None or row["version"] != key["version"]
               for row, key in zip(whole, keys, strict=True)):
            raise Moved
        return [row for row in whole if row is not None]

    async def current(self, event_id: str) -> Row | None:
        """The view row with `latest`, the store's latest version for the id, and the names
        count, read in one statement: the row is current exactly when its version equals
        `latest`."""
        return await self.reads.lookup(self.current_sql, "id", event_id)

    async def busy(self, person_ids: Sequence[str], start: str, end: str) -> list[Row]:
        if not person_ids:
            return []
        return await self.reads.fetchall(*busy_query(person_ids, start, end, self.dialect))

    async def position(self, view: str) -> int:
        rows = await self.reads.fetchall("SELECT position FROM tracking WHERE view = ?", (view,))
        return int(rows[0]["position"]) if rows else 0
