"""Incremental sync (SPEC §6.5): what happened to events after a log position, read from the
event store's notification log in log order. The REST twin of a socket's `?after=` resume: the
same replay, so the same positions and message kinds, each event shown to the viewer as GET
one shows it (the owner sees invitees' addresses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from api.context import CurrentUser, off_loop, signed_in
from api.docs import Answer, Query, documented
from api.lists import DEFAULT_LIMIT, MAX_LIMIT, integer, limit
from api.schemas import ChangesOut
from consumers.messages import KINDS, LoadEvent
from consumers.notify import LogReader, replay
from domain.events import Event
from projections.people import People

bp = Blueprint("changes", url_prefix="/api")


@dataclass(frozen=True)
class ChangesServices:
    """The log to read from, and what turns its facts into messages: the store for an
    event's state, and people's names (both from a thread); `reach`, the most log positions
    one request reads (ALPHABET_SYNC_READ_LIMIT, and never fewer than its limit)."""

    log: LogReader
    load_event: LoadEvent
    people: People
    reach: int


DELETED = KINDS[Event.Deleted]


@bp.get("/events/changes")
@documented("Changes of events after a log position, in log order (incremental sync)",
            {200: Answer(ChangesOut), 422: None}, auth=True, query=[
                Query("after", {"type": "integer", "minimum": 0},
                      "a log position: the `next_after` of the previous page, a write's "
                      "X-Position or a socket's; 0 (the default) starts at the beginning"),
                Query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                      f"changes per page, default {DEFAULT_LIMIT}, at most {MAX_LIMIT}"),
            ])
@signed_in(ChangesServices)
async def event_changes(request: Request, services: ChangesServices,
                        user: CurrentUser) -> JSONResponse:
    """Up to the head as it is when asked, but no further than `reach` positions: a page
    that is not full has read everything up to where its next page starts, however many facts
    about no event (such as accounts') lay there; a full page ends at its last change. So a
    long run of such facts costs a few small requests (empty pages that move on), never one
    that reads the whole log."""
    after, size = integer(request, "after", 0), limit(request)
    head = await off_loop(services.log.head)
    until = min(head, after + max(size, services.reach))
    found = await off_loop(replay, services.log, services.load_event, services.people.names,
                           None, after, until, size, user.id)
    next_after = found[-1]["position"] if len(found) == size else until
    return json({"changes": [change(message) for message in found], "next_after": next_after})


def change(message: dict[str, Any]) -> dict[str, Any]:
    """A message as a change: a deletion's event is null (an occurrence's cancellation names
    the occurrence in `instance_id`, as its message does)."""
    found = {
        "position": message["position"],
        "event_id": message["event_id"],
        "type": message["type"],
        "version": message["version"],
        "event": None if message["type"] == DELETED else message["event"],
    }
    if "instance_id" in message:
        found["instance_id"] = message["instance_id"]
    return found
