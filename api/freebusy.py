"""Free/busy (SPEC §6.6): when each of some people is busy in a window (the events they own,
and those whose invitation they accepted; a series' occurrences expanded), read from the
events view with one indexed statement for everyone (series from the store too), and told as
merged intervals only: no names, places or ids of events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from json import loads
from uuid import UUID

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from api.context import CurrentUser, off_loop, signed_in
from api.docs import Answer, Query, documented
from api.lists import time_arg
from api.schemas import FreeBusyOut, is_username
from consumers.messages import LoadEvent
from domain.errors import InvalidFieldsError
from domain.events import Event
from domain.freebusy import (
    MAX_USERS,
    MAX_WINDOW,
    Interval,
    busy,
    keeps_busy,
    occurrence_times,
    window_problems,
)
from domain.presentation import instant, utc
from projections.database import Row
from projections.events_queries import EventsReader
from projections.people import PeopleReader, key

bp = Blueprint("freebusy", url_prefix="/api")


@dataclass(frozen=True)
class FreeBusyServices:
    """Accounts by username, the events view's busy times, and the store for series."""

    reader: EventsReader
    people_reader: PeopleReader
    # a series' aggregate, for its occurrences (from a thread)
    load_event: LoadEvent


TIME = {"type": "string", "format": "date-time"}
NOT_FOUND = {"error": "not_found"}
# A view row's recurrence when the event does not recur.
NO_RECURRENCE = "[]"


@bp.get("/freebusy")
@documented("When people are busy in a window: merged intervals, nothing of the events",
            {200: Answer(FreeBusyOut), 422: None}, auth=True, query=[
                Query("users", {"type": "string"},
                      f"usernames, comma-separated (at most {MAX_USERS}); required"),
                Query("starts_after", TIME, "RFC 3339: the window's start; required"),
                Query("starts_before", TIME, "RFC 3339: the window's end (at most "
                      f"{MAX_WINDOW.days} days after its start); required"),
            ])
@signed_in(FreeBusyServices)
async def freebusy(request: Request, services: FreeBusyServices,
                   user: CurrentUser) -> JSONResponse:
    names = usernames(request)
    start, end = window(request)
    ids = await services.people_reader.ids(name for name in names if is_username(name))
    people = {name: ids.get(key(name)) if is_username(name) else None for name in names}
    rows = await services.reader.busy(sorted({p for p in people.values() if p is not None}),
                                      instant(start), instant(end))
    series = await off_loop(latest, services.load_event,
                            {row["id"] for row in rows if row["recurrence"] != NO_RECURRENCE})
    times = busy_times(rows, series, start, end)
    return json({"calendars": {
        name: NOT_FOUND if person is None else {"busy": [
            {"start": utc(begins), "end": utc(ends)}
            for begins, ends in busy(times[person], start, end)]}
        for name, person in people.items()}})


def latest(load: LoadEvent, event_ids: Iterable[str]) -> dict[str, Event]:
    """The series' aggregates from the store (from a thread): their occurrences' own changes
    and cancellations are not in the view. One the view still shows but the store has
    deleted is left out."""
    found = {event_id: load(UUID(event_id), None) for event_id in event_ids}
    return {event_id: event for event_id, event in found.items()
            if event is not None and not event.deleted}


def busy_times(rows: Iterable[Row], series: Mapping[str, Event], start: datetime,
               end: datetime) -> dict[str, list[Interval]]:
    """Each person's busy times from the view's rows: a single event's own, a series'
    occurrences (expanded by domain.recurrence); a participant's only where they accepted."""
    times: dict[str, list[Interval]] = defaultdict(list)
    for row in rows:
        person = row["person_id"]
        if row["recurrence"] != NO_RECURRENCE:
            if (event := series.get(row["id"])) is not None:
                times[person] += occurrence_times(event, person, start, end)
        elif keeps_busy(person, None if row["responses"] is None else loads(row["responses"])):
            times[person].append((datetime.fromisoformat(row["starting_time"]),
                                  datetime.fromisoformat(row["end_time"])))
    return times


def usernames(request: Request) -> list[str]:
    """`users` as given (comma-separated, or repeated), each name once, in order."""
    names = list(dict.fromkeys(name.strip() for given in request.args.getlist("users", [])
                               for name in given.split(",") if name.strip()))
    if not names:
        raise InvalidFieldsError({"users": "is required: usernames, comma-separated"})
    if len(names) > MAX_USERS:
        raise InvalidFieldsError({"users": f"at most {MAX_USERS} usernames (got {len(names)})"})
    return names


def window(request: Request) -> tuple[datetime, datetime]:
    given = {name: time_arg(request, name) for name in ("starts_after", "starts_before")}
    missing = {name: "is required (an RFC 3339 time with an offset)"
               for name, value in given.items() if value is None}
    if missing:
        raise InvalidFieldsError(missing)
    start, end = (datetime.fromisoformat(value) for value in given.values() if value)
    if problems := window_problems(start, end):
        raise InvalidFieldsError(problems)
    return start, end
