"""A series' occurrences (SPEC §6.2): listed from the series' aggregate, which holds its rule
and its occurrences' own changes and cancellations, and split "this and following". One
occurrence's GET, PUT/PATCH and DELETE are api.events' routes on its occurrence id."""

from __future__ import annotations

from datetime import datetime

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from api.conditional import etag
from api.context import CurrentUser, if_match, now, off_loop, parse, signed_in
from api.docs import EVENT_WRITTEN, IF_MATCH, Answer, Query, documented
from api.errors import ApiError
from api.events import EVENT, EventsServices, command_fields, target
from api.lists import TIME, limit, time_arg
from api.present import aggregate_json, occurrences_json, position_header
from api.schemas import EventChangeBody, EventEnvelope, EventList
from domain.events import Event
from domain.presentation import instant
from domain.recurrence import occurrences, parse_key

bp = Blueprint("occurrences", url_prefix="/api")


@bp.get(EVENT + "/instances")
@documented("A series' occurrences in a window, by original start, with cursor pagination "
            "for unbounded rules (a single event has none)",
            {200: Answer(EventList), 404: None, 410: None, 422: None}, auth=True,
            query=[Query("starts_after", TIME, "RFC 3339: original start at or after (default: "
                         "now)"),
                   Query("starts_before", TIME, "RFC 3339: original start before"),
                   Query("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
                         "page size, default 100, at most 1000"),
                   Query("cursor", {"type": "string"}, "the `next` of the previous page")])
@signed_in(EventsServices)
async def instances(request: Request, services: EventsServices, user: CurrentUser,
                    event_id: str) -> JSONResponse:
    uid, original = target(event_id)
    if original is not None:
        raise ApiError(404, "not_found", "an occurrence has no occurrences of its own: ask its "
                       "series (recurring_event_id)")
    after = cursor_start(request) or time_arg(request, "starts_after") or instant(now())
    before = time_arg(request, "starts_before")
    size = limit(request)
    event = await off_loop(services.app.get_event, uid)
    found = occurrences(event.series(), datetime.fromisoformat(after),
                        datetime.fromisoformat(before) if before else None,
                        size + 1) if event.recurrence else []
    shown = await occurrences_json(event, found[:size], services.people_reader, user.id,
                                   user.names_count)
    more = found[size].key if len(found) > size else None
    return json({"events": shown, "next": more})


def cursor_start(request: Request) -> str | None:
    """A page's cursor is the original start of the next page's first occurrence (its key)."""
    cursor = request.args.get("cursor")
    if cursor is None:
        return None
    start = parse_key(cursor)
    if start is None:
        raise ApiError(422, "invalid_fields", "cursor is not the `next` of a page of instances",
                       {"cursor": "not a cursor of this list"})
    return instant(start)


@bp.post(EVENT + "/split")
@documented('"This and following": the series ends before this occurrence and a new series '
            "with the given changes starts there (both saved at once)",
            {201: Answer(EventEnvelope, (*EVENT_WRITTEN, "Location")), 403: None, 404: None,
             409: None, 410: None},
            body=EventChangeBody, auth=True, headers=[IF_MATCH])
@signed_in(EventsServices)
async def split(request: Request, services: EventsServices, user: CurrentUser,
                event_id: str) -> JSONResponse:
    data = parse(request, EventChangeBody)
    uid, original = target(event_id)
    if original is None:
        raise ApiError(404, "not_found", "split an occurrence: POST /api/event/<occurrence id>"
                       "/split (ids from /instances)")
    changes = await command_fields(services, data.model_dump(exclude_unset=True))
    written = await services.command(
        services.app.split_series, uid, original, by=user.id, now=now(),
        expected_version=if_match(request), changes=changes)
    new: Event = written.of(Event).aggregates[-1]
    shown = await aggregate_json(new, services.people_reader, user.id, user.names_count)
    return json({"event": shown}, status=201,
                headers={"ETag": etag(new.version), "Location": f"/api/event/{new.id}",
                         **position_header(written)})
