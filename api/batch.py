"""The reference implementation's batch endpoints: up to 1000 creates, updates or deletes, all
or nothing in one transaction, with every failing item reported by its index."""

from __future__ import annotations

from dataclasses import dataclass
from json import dumps as json_dumps
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from api.context import Commands, CurrentUser, now, off_loop, signed_in
from api.docs import WRITTEN, Answer, documented
from api.errors import ApiError, explain, invalid_body
from api.present import aggregates_json, position_header
from api.schemas import MAX_BATCH, BatchChanges, BatchCreates, BatchIds, EventsOut
from domain.application import EventsApplication
from domain.batches import Refused, each, sift
from domain.events import check_fields
from domain.writing import Written
from projections.people import People, PeopleReader

bp = Blueprint("batch", url_prefix="/api")


@dataclass(frozen=True)
class BatchServices:
    """What the batch handlers use: the application's batch commands, participants' names
    resolved to ids, and names to show the written events with."""

    app: EventsApplication
    command: Commands
    people: People
    people_reader: PeopleReader


Batch = TypeVar("Batch", BatchCreates, BatchChanges, BatchIds)


@bp.post("/batch_events")
@documented(f"Create up to {MAX_BATCH} events at once, all or nothing",
            {201: Answer(EventsOut, WRITTEN)}, body=BatchCreates, auth=True)
@signed_in(BatchServices)
async def create_batch(request: Request,
                       services: BatchServices, user: CurrentUser) -> JSONResponse:
    items, refused = parse_items(request, BatchCreates, "events")
    fields = await off_loop(each, [item.model_dump() for item in items],
                            lambda item: checked(services, item), refused)
    written = await services.command(services.app.create_events, owner_id=user.id, items=fields)
    return await batch_json(services, written, user, 201)


@bp.put("/batch_events")
@documented(f"Change up to {MAX_BATCH} events at once (each item has its id), all or nothing",
            {200: Answer(EventsOut, WRITTEN)}, body=BatchChanges, auth=True)
@signed_in(BatchServices)
async def change_batch(request: Request,
                       services: BatchServices, user: CurrentUser) -> JSONResponse:
    items, refused = parse_items(request, BatchChanges, "events")
    # Every item's problems in one answer: those of its fields here, those of its event in
    # the command.
    changes, refused = await off_loop(
        sift, items, lambda item: (item.id, command_fields(
            services, item.model_dump(exclude_unset=True, exclude={"id"}))), refused,
    )
    written = await services.command(services.app.update_events, by=user.id, now=now(),
                            items=changes, refused=refused)
    return await batch_json(services, written, user, 200)


@bp.delete("/batch_events")
@documented(f"Delete up to {MAX_BATCH} events at once (a list of ids), all or nothing",
            {200: Answer(EventsOut, WRITTEN)}, body=BatchIds, auth=True)
@signed_in(BatchServices)
async def delete_batch(request: Request,
                       services: BatchServices, user: CurrentUser) -> JSONResponse:
    ids, refused = parse_items(request, BatchIds, "ids")
    written = await services.command(services.app.delete_events, by=user.id, event_ids=ids,
                            refused=refused)
    return await batch_json(services, written, user, 200)


def command_fields(services: BatchServices, fields: dict[str, Any]) -> dict[str, Any]:
    """As api.events.command_fields, for one item, on a worker thread already."""
    if "participants" in fields:
        fields["participants"] = services.people.resolve(fields["participants"])
    return fields


def checked(services: BatchServices, fields: dict[str, Any]) -> dict[str, Any]:
    """One new item resolved and checked against the event rules, so a batch reports unknown
    usernames and broken rules of every item in one answer."""
    fields = command_fields(services, fields)
    check_fields(fields)
    return fields


def parse_items(request: Request, model: type[Batch], key: str) -> tuple[Any, Refused]:
    """A JSON array, or an object holding it under `key`: its valid items, in order, and the
    problems of the others by index (the rules then check the valid ones, so a batch is
    answered with every item's problems at once)."""
    try:
        body = TypeAdapter(Any).validate_json(request.body or b"")
    except ValidationError as exc:
        raise invalid_body(exc) from None
    if isinstance(body, dict) and set(body) == {key}:
        body = body[key]
    if not isinstance(body, list):
        raise ApiError(422, "invalid_fields", f"the body must be a JSON array (or {{\"{key}\": "
                       f"[...]}}) of at most {MAX_BATCH} items")
    try:
        return model.model_validate_json(json_dumps(body), strict=True).root, {}
    except ValidationError as exc:
        refused: dict[int, dict[str, str]] = {}
        for error in exc.errors(include_url=False, include_input=False):
            if not error["loc"]:
                raise ApiError(422, "invalid_fields",
                               f"a batch holds at most {MAX_BATCH} items") from None
            index, *field = error["loc"]
            name = ".".join(str(part) for part in field) or "item"
            refused.setdefault(int(index), {}).setdefault(name, explain(error))
    valid = [item for index, item in enumerate(body) if index not in refused]
    return model.model_validate_json(json_dumps(valid), strict=True).root, refused


async def batch_json(
    services: BatchServices, written: Written, user: CurrentUser, status: int
) -> JSONResponse:
    shown = await aggregates_json(written.aggregates, services.people_reader, user.id,
                                  user.names_count)
    return json({"events": shown}, status=status, headers=position_header(written))
