"""Free/busy (SPEC §6.6): when each of some people is busy in a window (the events they own,
and those whose invitation they accepted; a series' occurrences expanded), read from the
events view with one indexed statement for everyone, and told as merged intervals only: no
names, places or ids of events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from json import loads

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from api.context import CurrentUser, signed_in
from api.docs import Answer, Query, documented
from api.lists import time_arg
from api.schemas import FreeBusyOut, is_username
from domain.errors import InvalidFieldsError
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
from projections.occurrences import Exceptions, series_of
from projections.people import PeopleReader, key

bp = Blueprint("freebusy", url_prefix="/api")


@dataclass(frozen=True)
class FreeBusyServices:
    """Accounts by username, and the events view's busy times."""

    reader: EventsReader
    people_reader: PeopleReader


TIME = {"type": "string", "format": "date-time"}
NOT_FOUND = {"error": "not_found"}


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
    times = busy_times(rows, start, end)
    return json({"calendars": {
        name: NOT_FOUND if person is None else {"busy": [
            {"start": utc(begins), "end": utc(ends)}
            for begins, ends in busy(times[person], start, end)]}
        for name, person in people.items()}})


def busy_times(rows: Iterable[Row], start: datetime, end: datetime
               ) -> dict[str, list[Interval]]:
    """Each person's busy times from the view's rows: a single event's own, a series'
    occurrences (expanded by domain.recurrence, with their own changes and cancellations);
    a participant's only where they accepted."""
    times: dict[str, list[Interval]] = defaultdict(list)
    for row in rows:
        person = row["person_id"]
        answers = None if row["responses"] is None else loads(row["responses"])
        exceptions = Exceptions.read(row if row["overrides"] is not None else None)
        if not keeps_busy(person, answers) and not exceptions.answered_by(person):
            continue  # (an occurrence they answered for itself may keep them busy)
        series = series_of(row, exceptions)
        if series is None:
            times[person].append((datetime.fromisoformat(row["starting_time"]),
                                  datetime.fromisoformat(row["end_time"])))
        else:
            times[person] += occurrence_times(series, start, end,
                                              None if answers is None else person,
                                              loads(row["participants"]), answers)
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
