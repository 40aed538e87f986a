"""Events: create, read (always from the event store, so never lagging), change, delete, and
read the audit trail or an earlier state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sanic import Blueprint, Request, json, raw
from sanic.response import HTTPResponse, JSONResponse

from api.conditional import etag, not_modified
from api.context import (
    LARGEST,
    Commands,
    CurrentUser,
    Visitor,
    if_match,
    now,
    off_loop,
    parse,
    signed_in,
    visited,
    whole_number,
)
from api.docs import (
    CALENDAR,
    EVENT_WRITTEN,
    IF_MATCH,
    IF_NONE_MATCH,
    VERSIONED,
    WRITTEN,
    Answer,
    Query,
    documented,
)
from api.errors import ApiError
from api.operators import Operators
from api.present import aggregate_json, history_json, occurrences_json, position_header, with_people
from api.rendered import JSON, RenderedEvents, event_body
from api.schemas import (
    EventChangeBody,
    EventCreateBody,
    EventEnvelope,
    EventWritten,
    HistoryOut,
    Message,
    ResponseBody,
)
from consumers.calendar import calendar
from domain.application import EventsApplication
from domain.errors import NotFoundError
from domain.events import Event
from domain.presentation import calendar_fields
from domain.recurrence import parse_key
from domain.writing import Written
from projections.events_queries import EventsReader
from projections.people import People, PeopleReader

bp = Blueprint("events", url_prefix="/api")


@dataclass(frozen=True)
class EventsServices:
    """What the events handlers use: commands go to the application (and ring the notifier),
    a current event is read from the events view with the store's latest version beside it."""

    app: EventsApplication
    command: Commands
    # participants' usernames to ids, from a thread
    people: People
    people_reader: PeopleReader
    reader: EventsReader
    rendered: RenderedEvents
    operators: Operators


# An event's id holds no dot, so /api/event/{id}.ics is a route of its own, answering GET only
# (one route for both had PUT, PATCH and DELETE in the .ics path's Allow).
EVENT = "/event/<event_id:[^/.]+>"
EVENT_ICS = r"/event/<event_id:[^/]+\.ics>"

ICS = "text/calendar; charset=utf-8"


# Where a created event's id leads: each operation on it (schemathesis follows these links).
EVENT_LINKS = {
    name: {"operationId": name, "parameters": {"event_id": "$response.body#/event/id"}}
    for name in ("get_event", "get_event_ics", "change_event", "patch_event", "delete_event",
                 "event_history", "respond_to_event")
}


@bp.post("/events")
@documented("Create an event; every participant is emailed its details",
            {201: Answer(EventWritten, (*EVENT_WRITTEN, "Location"))},
            body=EventCreateBody, auth=True, links={201: EVENT_LINKS})
@signed_in(EventsServices)
async def create_event(request: Request,
                       services: EventsServices, user: CurrentUser) -> JSONResponse:
    data = parse(request, EventCreateBody)
    fields = await command_fields(services, data.model_dump())
    written = await services.command(services.app.create_event, owner_id=user.id, **fields)
    return await written_json(services, written, user, "Event created", status=201)


@bp.get(EVENT)
@documented("One event, or one occurrence of a series (by its occurrence id), as it is now or "
            "(with as_of) as it was",
            {200: Answer(EventEnvelope, VERSIONED), 304: Answer(headers=VERSIONED), 404: None,
             410: None, 422: None},
            auth=True, headers=[IF_NONE_MATCH],
            query=[Query("as_of", {"type": "string"},
                         "a version (a whole number) or an RFC 3339 time with its offset")])
@visited(EventsServices)
async def get_event(request: Request, services: EventsServices, visitor: Visitor,
                    event_id: str) -> HTTPResponse:
    uid, original = target(event_id)
    as_of = request.args.get("as_of")
    current = await services.reader.current(str(uid)) \
        if as_of is None and original is None else None
    user = await visitor.signed_in(current["names_count"] if current is not None else None)
    if current is not None and current["latest"] == current["version"]:
        # The view row is provably current: its version is the store's latest, read with it.
        if unchanged := not_modified(request, current["version"]):
            return unchanged
        [text] = await services.rendered.render([current], user.id, user.names_count)
        return raw(event_body(text), content_type=JSON,
                   headers={"ETag": etag(current["version"])})
    if as_of is None:
        event = await off_loop(services.app.get_event, uid)
    elif as_of.strip().isascii() and as_of.strip().isdigit():
        version = whole_number(as_of)
        if version is None:
            raise ApiError(422, "invalid_fields", f"as_of: no version is above {LARGEST}",
                           {"as_of": f"a version must be at most {LARGEST}"})
        event = await off_loop(services.app.event_at_version, uid, version)
    else:
        event = await off_loop(services.app.event_as_of, uid, parse_time(as_of))
    if unchanged := not_modified(request, event.version):
        return unchanged
    if original is not None:
        [shown] = await occurrences_json(event, [event.occurrence(original)],
                                         services.people_reader, user.id, user.names_count)
    else:
        shown = await aggregate_json(event, services.people_reader, user.id, user.names_count)
    return json({"event": shown}, headers={"ETag": etag(event.version)})


@bp.get(EVENT_ICS, name="get_event_ics")
@documented("One event as an iCalendar file",
            {200: Answer(headers=VERSIONED, media=CALENDAR), 304: Answer(headers=VERSIONED),
             404: None, 410: None},
            auth=True, headers=[IF_NONE_MATCH], suffix=".ics")
@signed_in(EventsServices)
async def event_ics(request: Request, services: EventsServices, user: CurrentUser,
                    event_id: str) -> HTTPResponse:
    event = await off_loop(services.app.get_event, event_uuid(event_id.removesuffix(".ics")))
    if unchanged := not_modified(request, event.version):
        return unchanged
    shown = await with_people(calendar_fields(event), services.people_reader, user.id,
                              user.names_count)
    return raw(calendar(shown), content_type=ICS,
               headers={"ETag": etag(event.version)})


@bp.put(EVENT)
@bp.patch(EVENT, name="patch_event")
@documented("Change an event (fields given are merged; only the owner; not once started); on "
            "an occurrence id, that occurrence only",
            {200: Answer(EventWritten, EVENT_WRITTEN), 403: None, 404: None, 409: None,
             410: None},
            body=EventChangeBody, auth=True, headers=[IF_MATCH])
@signed_in(EventsServices)
async def change_event(request: Request, services: EventsServices, user: CurrentUser,
                       event_id: str) -> JSONResponse:
    uid, original = target(event_id)
    expected = if_match(request)
    data = parse(request, EventChangeBody)
    changes = await command_fields(services, data.model_dump(exclude_unset=True))
    if original is not None:
        written = await services.command(
            services.app.change_occurrence, uid, original, by=user.id, now=now(),
            expected_version=expected, changes=changes)
        return await written_json(services, written, user, "Event updated", original=original)
    written = await services.command(
        services.app.update_event, uid, by=user.id, now=now(),
        expected_version=expected, changes=changes,
    )
    return await written_json(services, written, user, "Event updated")


@bp.delete(EVENT)
@documented("Delete an event (its owner, or an operator: the fact names who); participants "
            "are told. On an occurrence id, cancel that occurrence only (its owner)",
            {200: Answer(Message, WRITTEN), 403: None, 404: None, 410: None},
            auth=True, headers=[IF_MATCH])
@signed_in(EventsServices)
async def delete_event(request: Request, services: EventsServices, user: CurrentUser,
                       event_id: str) -> JSONResponse:
    uid, original = target(event_id)
    if original is not None:
        written = await services.command(services.app.cancel_occurrence, uid, original,
                                         by=user.id, expected_version=if_match(request))
        return json({"message": f'Occurrence {event_id} of event "{written.aggregate.name}" '
                                'cancelled'}, headers=position_header(written))
    written = await services.command(services.app.delete_event, uid, by=user.id,
        expected_version=if_match(request), operator=await services.operators.include(user),
    )
    return json({"message": f'Event "{written.aggregate.name}" deleted'},
                headers=position_header(written))


@bp.post(EVENT + "/response")
@documented("Answer the event's invitation: a participant only (the owner too when a "
            "participant), also once it has started; the same answer again records nothing. "
            "On an occurrence id, for that occurrence only (the series' answer stands for the "
            "others)",
            {200: Answer(EventEnvelope, EVENT_WRITTEN), 403: None, 404: None, 410: None},
            body=ResponseBody, auth=True)
@signed_in(EventsServices)
async def respond_to_event(request: Request, services: EventsServices, user: CurrentUser,
                           event_id: str) -> JSONResponse:
    data = parse(request, ResponseBody)
    uid, original = target(event_id)
    written = await services.command(services.app.respond, uid, participant=user.id,
                                     response=data.response, by=user.id,
                                     original_start=original)
    return await written_json(services, written, user, original=original)


@bp.get(EVENT + "/history")
@documented("The audit trail: every fact recorded about the event",
            {200: Answer(HistoryOut), 404: None}, auth=True)
@signed_in(EventsServices)
async def event_history(request: Request, services: EventsServices, user: CurrentUser,
                        event_id: str) -> JSONResponse:
    facts = await off_loop(services.app.history, event_uuid(event_id))
    owner_id = facts[0].owner_id
    return json({"history": await history_json(facts, services.people_reader, user.id,
                                                owner_id, user.names_count)})


async def command_fields(services: EventsServices, fields: dict[str, Any]) -> dict[str, Any]:
    """Participants to person ids, as the facts hold them (the domain takes times in any
    offset, checks their range and keeps them in UTC)."""
    if "participants" in fields:
        fields["participants"] = await off_loop(services.people.resolve, fields["participants"])
    return fields


async def written_json(services: EventsServices, written: Written, user: CurrentUser,
                       message: str | None = None, status: int = 200,
                       original: datetime | None = None) -> JSONResponse:
    """`{"message", "event"}`, or `{"event"}` alone without a message; the event, or its
    occurrence at `original` (its original start)."""
    event: Event = written.aggregate
    if original is None:
        shown = await aggregate_json(event, services.people_reader, user.id, user.names_count)
    else:
        [shown] = await occurrences_json(event, [event.occurrence(original)],
                                         services.people_reader, user.id, user.names_count)
    headers = {"ETag": etag(event.version), **position_header(written)}
    if status == 201:
        headers["Location"] = f"/api/event/{event.id}"
    body = {"event": shown} if message is None else {"message": message, "event": shown}
    return json(body, status=status, headers=headers)


def target(value: str) -> tuple[UUID, datetime | None]:
    """An event's id, or an occurrence's (`<event id>_<original start, YYYYMMDDTHHMMSSZ>`):
    the event and the occurrence's original start (None for the event itself)."""
    event_part, underscore, start_part = value.partition("_")
    if not underscore:
        return event_uuid(value), None
    start = parse_key(start_part)
    if start is None:
        raise NotFoundError(f"no event with id {value}")
    return event_uuid(event_part), start


def event_uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NotFoundError(f"no event with id {value}") from None


def parse_time(value: str) -> datetime:
    """RFC 3339 with an offset; a space before the offset is a '+' that a URL turned into a
    space (as_of=2026-12-01T18:00:00 02:00)."""
    text = value.strip()
    if len(text) > 6 and text[-6] == " ":
        text = text[:-6] + "+" + text[-5:]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(422, "invalid_fields", "as_of must be a version (integer) or an RFC 3339 "
                       "time such as 2026-12-01T18:00:00Z", {"as_of": "not a version or a time"})\
            from None
    if moment.tzinfo is None:
        raise ApiError(422, "invalid_fields", "as_of needs a UTC offset, e.g. ...T18:00:00+02:00",
                       {"as_of": "a time must include its UTC offset"})
    return moment
