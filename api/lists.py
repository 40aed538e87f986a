"""Lists and searches, answered by the events view (never by replaying aggregates), with
read-your-writes through ?min_position, and the iCalendar exports."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass, replace
from urllib.parse import unquote

from sanic import Blueprint, Request, raw
from sanic.response import HTTPResponse

from api.context import (
    LARGEST,
    CurrentUser,
    Visitor,
    off_loop,
    signed_in,
    visited,
    whole_number,
)
from api.docs import CALENDAR, Answer, Query, documented
from api.errors import ApiError
from api.events import ICS, parse_time
from api.present import calendar_events, with_people
from api.rendered import JSON, RenderedEvents, page_body
from api.schemas import EventList, is_username
from consumers.calendar import calendar
from domain.application import EventsApplication
from domain.errors import InvalidFieldsError
from domain.events import time_problem
from domain.presentation import instant
from projections.events_queries import EventsReader, Filters, Moved, Page
from projections.events_view import EventsView
from projections.faults import FactFailed
from projections.follower import Follower
from projections.people import PeopleReader

bp = Blueprint("lists", url_prefix="/api")


@dataclass(frozen=True)
class ListsServices:
    """What lists read: pages from the events view, rendered with names; the follower to
    bring the view up to a client's ?min_position; the store, for an exported series'
    occurrences' own changes and cancellations."""

    reader: EventsReader
    rendered: RenderedEvents
    people_reader: PeopleReader
    follower: Follower
    app: EventsApplication


DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# How long a list waits for the view to reach a client's ?min_position.
READ_YOUR_WRITES_SECONDS = 2.0

TEXT = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}
FILTERS = [
    Query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
          f"page size, default {DEFAULT_LIMIT} ({MAX_LIMIT} for .ics), at most {MAX_LIMIT}"),
    Query("cursor", TEXT, "the `next` of the previous page (valid only with the same filters)"),
    Query("starts_after", TIME, "RFC 3339: starting_time at or after"),
    Query("starts_before", TIME, "RFC 3339: starting_time before"),
    Query("location", TEXT, "words the location must contain (case and accents ignored)"),
    Query("q", TEXT, "words the name must contain (case and accents ignored)"),
    Query("participant", TEXT, "a participant's username"),
    Query("single_events", {"type": "boolean"},
          "true: each series' occurrences in its place (by start, with cursors); filters other "
          "than times look at the series' own fields"),
    Query("min_position", {"type": "integer", "minimum": 0},
          "wait (up to 2 s) until the view has reached this X-Position"),
]
PAGE = {200: Answer(EventList, ("X-Position",)), 422: None}


@bp.get("/events")
@documented("List events by starting time, with filters and cursor pagination", PAGE,
            auth=True, query=FILTERS)
@visited(ListsServices)
async def list_events(request: Request, services: ListsServices, visitor: Visitor) -> HTTPResponse:
    return await page_json(request, services, visitor, await filters(request, services))


@bp.get("/search_event/<location:path>")
@documented("Events whose location has these words (case and accents ignored)", PAGE,
            auth=True, query=FILTERS)
@visited(ListsServices)
async def search_events(request: Request, services: ListsServices, visitor: Visitor,
                        location: str) -> HTTPResponse:
    found = await filters(request, services, location=unquote(location).strip("/"))
    return await page_json(request, services, visitor, found)


@bp.get("/events.ics")
@documented("The listed events as an iCalendar file (same filters as the list)",
            {200: Answer(media=CALENDAR), 422: None}, auth=True, query=FILTERS)
@signed_in(ListsServices)
async def events_ics(request: Request, services: ListsServices, user: CurrentUser) -> HTTPResponse:
    await read_your_writes(request, services)
    # a calendar file holds series whole (RRULE), never their occurrences one by one
    found = replace(await filters(request, services), single_events=False)
    page = await services.reader.page(found,
                                      request.args.get("cursor"), limit(request, default=MAX_LIMIT),
                                      whole=True)
    # each series whole, as GET /api/event/{id}.ics and the feed show it
    events = await off_loop(calendar_events, services.app, page.rows)
    shown = await with_people(events, services.people_reader, user.id, user.names_count)
    return raw(calendar(shown), content_type=ICS)


async def page_json(request: Request, services: ListsServices, visitor: Visitor,
                    found: Filters) -> HTTPResponse:
    """One statement reads the page's keys, the names count it is shown under and the view's
    position (X-Position), a second the whole rows of events this worker has no text for;
    waiting for ?min_position comes first."""
    await read_your_writes(request, services)
    reader, cursor, size = services.reader, request.args.get("cursor"), limit(request)
    page: Page = await reader.page(found, cursor, size)
    user = await visitor.signed_in(page.names_count)
    try:
        events = await services.rendered.render(page.rows, user.id, user.names_count,
                                                reader.complete)
    except Moved:  # an event changed between the two statements: read the page whole
        page = await reader.page(found, cursor, size, whole=True)
        user = await visitor.signed_in(page.names_count)
        events = await services.rendered.render(page.rows, user.id, user.names_count)
    return raw(page_body(events, page.next), content_type=JSON,
               headers={"X-Position": str(page.reached)})


async def read_your_writes(request: Request, services: ListsServices) -> None:
    """Wait until the view has applied the client's own write. Rather than sleep, the worker
    brings the view up to date itself (the follower's batches are idempotent by position)."""
    wanted = integer(request, "min_position", 0)
    if wanted <= 0 or await services.reader.position("events") >= wanted:
        return
    # A fact the view cannot apply is the supervised follower's to report (/readyz): the list
    # answers from the view as it stands, its X-Position saying how far that is.
    with suppress(TimeoutError, FactFailed):
        await asyncio.wait_for(
            off_loop(services.follower.run_once, services.follower.named(EventsView.name)),
            READ_YOUR_WRITES_SECONDS)


async def filters(request: Request, services: ListsServices, **given: str) -> Filters:
    args = request.args
    participant_id = None
    if (username := args.get("participant")) is not None:
        account = await services.people_reader.by_username(username) \
            if is_username(username) else None
        # An unknown username matches no event; the nil id keeps the page empty.
        participant_id = account.id if account else "00000000-0000-0000-0000-000000000000"
    return Filters(
        starts_after=time_arg(request, "starts_after"),
        starts_before=time_arg(request, "starts_before"),
        location=given.get("location", args.get("location")),
        q=args.get("q"),
        participant_id=participant_id,
        single_events=flag(request, "single_events"),
    )


def time_arg(request: Request, name: str) -> str | None:
    value = request.args.get(name)
    if value is None:
        return None
    try:
        moment = parse_time(value)
    except ApiError:
        raise ApiError(422, "invalid_fields", f"{name} must be an RFC 3339 time with an offset, "
                       "e.g. 2026-12-01T18:00:00Z", {name: "not a time with an offset"}) from None
    if (problem := time_problem(moment)) is not None:
        raise InvalidFieldsError({name: problem})
    return instant(moment)


def flag(request: Request, name: str) -> bool:
    """A boolean query parameter: true or false (absent: false)."""
    text = str(request.args.get(name, "false"))
    if text not in ("true", "false"):
        raise ApiError(422, "invalid_fields", f"{name} must be true or false",
                       {name: "must be true or false"})
    return text == "true"


def limit(request: Request, default: int = DEFAULT_LIMIT) -> int:
    return integer(request, "limit", default, 1, MAX_LIMIT)


def integer(request: Request, name: str, default: int, minimum: int = 0,
            maximum: int = LARGEST) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    value = whole_number(text, minimum, maximum)
    if value is None:
        problem = f"must be a whole number from {minimum} to {maximum} (digits 0-9)"
        raise ApiError(422, "invalid_fields", f"{name} {problem}", {name: problem})
    return value
