"""Pages of events with `single_events=true` (SPEC §6.2): single events and series'
occurrences together, by start then id, with the list's cursors. Two statements bound the
work by the page, never by the number of series:
1. the page from the rows: single events (the view's (starting_time, id) index) and
   materialised occurrences (event_occurrences' own), each read up to the page's size;
2. the series with occurrences not materialised before the page's end (event_series'
   `pending` index), each expanded only from there to the page's end (projections.occurrences
   says what is materialised).
Filters other than times (words, a participant) look at the series' own fields."""

from __future__ import annotations

import json
from bisect import insort
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from domain.presentation import instance_id, instant
from domain.recurrence import occurrence, starts
from projections.database import Dialect, Row
from projections.occurrences import RESPONSES, Exceptions, series_of

# The view row's columns a page shows, and what an occurrence's row puts in their place.
SHOWN = ("id", "owner_id", "name", "location", "starting_time", "end_time", "participants",
         "version", "created_at", "updated_at", "responses", "time_zone", "recurrence")
OWN = {"id": "o.id", "starting_time": "o.starting_time", "end_time": "o.end_time"}
SINGLE_COLUMNS = (", ".join(f"v.{name}" for name in SHOWN)
                  + ", NULL AS recurring_event_id, NULL AS original_start, NULL AS changes")
OCCURRENCE_COLUMNS = (", ".join(OWN.get(name, f"v.{name}") for name in SHOWN)
                      + ", o.series_id AS recurring_event_id, o.original_start, o.changes")
SERIES_COLUMNS = (", ".join(f"v.{name}" for name in SHOWN)
                  + ", s.pending, s.overrides, s.cancelled")
# An occurrence's own changes that show in its row (its times are its row's already).
OWN_FIELDS = ("name", "location")


def conditions(filters: Any, dialect: Dialect, match: str | None) -> tuple[list[str], list[Any]]:
    """What the series' or single event's row `v` must meet."""
    where: list[str] = []
    params: list[Any] = []
    if filters.participant_id:
        where.append("v.id IN (SELECT event_id FROM event_people WHERE person_id = ?)")
        params.append(filters.participant_id)
    if match:
        where.append(dialect.search.condition)
        params.append(match)
    return where, params


def page_query(filters: Any, match: str | None, after: tuple[str, str] | None, limit: int,
               dialect: Dialect) -> tuple[str, list[Any]]:
    """Statement 1: up to `limit` rows in page order, each part read by its own index."""
    where, values = conditions(filters, dialect, match)
    times, moments = window(filters, after, "v.starting_time", "v.id")
    singles = " AND ".join(["v.recurrence = '[]'", *where, *times])
    parts = [f"SELECT {SINGLE_COLUMNS} FROM events_view v WHERE {singles} "
             "ORDER BY v.starting_time, v.id LIMIT ?"]
    params = [*values, *moments, limit]
    times, moments = window(filters, after, "o.starting_time", "o.id")
    if where and dialect.name != "sqlite":
        # PostgreSQL hashed every occurrence against the few series some words match: each
        # matching series' first occurrences, through the (series_id, starting_time) index
        own = " AND ".join(["o.series_id = v.id", *times])
        parts.append(
            f"SELECT {OCCURRENCE_COLUMNS} FROM events_view v CROSS JOIN LATERAL (SELECT * "
            f"FROM event_occurrences o WHERE {own} ORDER BY o.starting_time, o.id LIMIT ?) o "
            f"WHERE {' AND '.join(['v.recurrence <> ' + repr('[]'), *where])} "
            "ORDER BY o.starting_time, o.id LIMIT ?")
        params += [*moments, limit, *values, limit]
    elif where:
        # SQLite: the matching series' occurrences through (series_id, starting_time), sorted
        # (as a word search sorts its matches), rather than every occurrence in start order
        # checked against them
        series = " AND ".join(["v.recurrence <> '[]'", *where])
        clause = " AND ".join([f"o.series_id IN (SELECT v.id FROM events_view v WHERE {series})",
                               *times])
        parts.append(f"SELECT {OCCURRENCE_COLUMNS} FROM event_occurrences o "
                     f"{dialect.ordered_join} events_view v ON v.id = o.series_id "
                     f"WHERE {clause} ORDER BY o.starting_time, o.id LIMIT ?")
        params += [*values, *moments, limit]
    else:
        clause = " AND ".join(times) or "TRUE"
        parts.append(f"SELECT {OCCURRENCE_COLUMNS} FROM event_occurrences o "
                     f"{dialect.ordered_join} events_view v ON v.id = o.series_id "
                     f"WHERE {clause} ORDER BY o.starting_time, o.id LIMIT ?")
        params += [*moments, limit]
    union = " UNION ALL ".join(f"SELECT * FROM ({part}) {name}"
                               for part, name in zip(parts, "ab", strict=True))
    return f"{union} ORDER BY starting_time, id LIMIT ?", [*params, limit]


def window(filters: Any, after: tuple[str, str] | None, start: str,
           ident: str) -> tuple[list[str], list[Any]]:
    """A page's bounds on (start, id) columns: the filters' window and the cursor's position,
    the same for plain lists, occurrences and single events."""
    where: list[str] = []
    params: list[Any] = []
    if filters.starts_after:
        where.append(f"{start} >= ?")
        params.append(filters.starts_after)
    if filters.starts_before:
        where.append(f"{start} < ?")
        params.append(filters.starts_before)
    if after:
        where.append(f"({start}, {ident}) > (?, ?)")
        params.extend(after)
    return where, params


def pending_query(filters: Any, match: str | None, until: str | None,
                  dialect: Dialect) -> tuple[str, list[Any]]:
    """Statement 2: the series with occurrences not materialised before `until` (the page's
    end, None for no end)."""
    where, params = conditions(filters, dialect, match)
    if match and dialect.name == "sqlite":
        # the series drive (their `pending` index) and each is tested against the search's
        # rows: `+` keeps SQLite from walking those rows as v's index for every series (10,000
        # series and 400 matches took 0.3 s a page, most of a year-ahead word search)
        where[where.index(dialect.search.condition)] = "+" + dialect.search.condition
    where.insert(0, "s.pending IS NOT NULL" if until is None else "s.pending <= ?")
    if until is not None:
        params.insert(0, until)
    return (f"SELECT {SERIES_COLUMNS} FROM event_series s {dialect.ordered_join} events_view v "
            f"ON v.id = s.id WHERE {' AND '.join(where)}", params)


def expanded(series_rows: list[Row], filters: Any, after: tuple[str, str] | None,
             until: str | None, limit: int) -> list[dict[str, Any]]:
    """The occurrences of statement 2's series from their `pending` start up to `until`
    (inclusive), the first `limit` of each in the window and past the cursor. A series whose
    occurrences keep their starts stops at the first that comes after the `limit` best found
    so far (the page cannot take it): a page far ahead reads a few of each, not `limit`."""
    lowest = max(filter(None, [filters.starts_after, after[0] if after else None]),
                 default=None)
    end = datetime.fromisoformat(until) + timedelta(seconds=1) if until else None
    found: list[dict[str, Any]] = []
    best: list[tuple[str, str]] = []  # the `limit` least (start, id) found, in order
    for row in series_rows:
        exceptions = Exceptions.read(row)
        series = series_of(row, exceptions)
        if series is None:
            continue
        begin = datetime.fromisoformat(max(filter(None, [row["pending"], lowest])))
        kept = 0
        for start in starts(series, begin, end, since=datetime.fromisoformat(row["pending"])):
            if len(best) == limit and not series.overrides and instant(start) > best[-1][0]:
                break
            if start in series.cancelled:
                continue
            one = occurrence(series, start)
            shown = {name: row[name] for name in SHOWN}
            shown.update(id=instance_id(row["id"], one.key), starting_time=instant(one.start),
                         end_time=instant(one.end), recurring_event_id=row["id"],
                         original_start=instant(one.original_start),
                         changes=json.dumps(exceptions.overrides.get(one.key, {})))
            if inside(shown, filters, after):
                found.append(shown)
                insort(best, (shown["starting_time"], shown["id"]))
                del best[limit:]
                kept += 1
                if kept == limit:
                    break
    return found


def inside(row: Mapping[str, Any], filters: Any, after: tuple[str, str] | None) -> bool:
    start = row["starting_time"]
    return ((not filters.starts_after or start >= filters.starts_after)
            and (not filters.starts_before or start < filters.starts_before)
            and (after is None or (start, row["id"]) > after))


def shown_row(row: Row) -> dict[str, Any]:
    """A page's row as the events' presentation reads it: an occurrence's own name,
    location and participants over its series'; the series' rule left out."""
    shown = {name: row[name] for name in (*SHOWN, "recurring_event_id", "original_start")}
    if row["recurring_event_id"] is not None:
        changes = json.loads(row["changes"])
        shown.update({name: changes[name] for name in OWN_FIELDS if name in changes})
        if "participants" in changes:
            shown["participants"] = json.dumps(changes["participants"])
        if RESPONSES in changes:
            shown["responses"] = json.dumps({**json.loads(row["responses"]),
                                             **changes[RESPONSES]})
        shown["recurrence"] = "[]"
    return shown
