"""The reference implementation's batch endpoints: up to 1000 creates, updates or deletes, all
or nothing in one transaction, with every failing item reported by its index."""

from __future__ import annotations

from json import dumps as json_dumps
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, TypeAdapter, ValidationError
from sanic import Blueprint, Request, json
from sanic.response import JSONResponse
from sanic_ext import openapi

from api.context import CurrentUser, Services, now, off_loop
from api.docs import responses
from api.errors import ApiError, explain, invalid_body
from api.events import position_header, to_utc
from api.present import aggregates_json
from api.schemas import BatchChangeItem, EventCreateBody, EventList
from domain.application import Written, each
from domain.errors import InvalidItemsError

bp = Blueprint("batch", url_prefix="/api")

MAX_ITEMS = 1000
Creates = TypeAdapter(Annotated[list[EventCreateBody], Field(max_length=MAX_ITEMS)])
Changes = TypeAdapter(Annotated[list[BatchChangeItem], Field(max_length=MAX_ITEMS)])
Ids = TypeAdapter(Annotated[list[UUID], Field(max_length=MAX_ITEMS)])


@bp.post("/batch_events")
@openapi.summary(f"Create up to {MAX_ITEMS} events at once, all or nothing")
@openapi.body({"application/json": list[EventCreateBody]})
@responses({201: EventList, 422: None}, auth=True)
async def create_batch(request: Request, services: Services, user: CurrentUser) -> JSONResponse:
    items = [item.model_dump() for item in parse_items(request, Creates, "events")]
    fields = await off_loop(each, items, lambda item: command_fields(services, item))
    written = await off_loop(services.app.create_events, owner_id=user.id, items=fields)
    return batch_json(services, written, user, 201)


@bp.put("/batch_events")
@openapi.summary(f"Change up to {MAX_ITEMS} events at once (each item has its id), all or nothing")
@openapi.body({"application/json": list[BatchChangeItem]})
@responses({200: EventList, 422: None}, auth=True)
async def change_batch(request: Request, services: Services, user: CurrentUser) -> JSONResponse:
    items = parse_items(request, Changes, "events")
    changes = await off_loop(
        each, items, lambda item: command_fields(services, item.model_dump(exclude_none=True,
                                                                           exclude={"id"}))
    )
    written = await off_loop(
        services.app.update_events, by=user.id, now=now(),
        items=[(item.id, change) for item, change in zip(items, changes, strict=True)],
    )
    return batch_json(services, written, user, 200)


@bp.delete("/batch_events")
@openapi.summary(f"Delete up to {MAX_ITEMS} events at once (a list of ids), all or nothing")
@openapi.body({"application/json": list[UUID]})
@responses({200: EventList, 422: None}, auth=True)
async def delete_batch(request: Request, services: Services, user: CurrentUser) -> JSONResponse:
    ids = parse_items(request, Ids, "ids")
    written = await off_loop(services.app.delete_events, by=user.id, event_ids=ids)
    return batch_json(services, written, user, 200)


def command_fields(services: Services, fields: dict[str, Any]) -> dict[str, Any]:
    """As api.events.command_fields, for one item, on a worker thread already."""
    fields = to_utc(fields)
    if "participants" in fields:
        fields["participants"] = services.people.resolve(fields["participants"])
    return fields


def parse_items(request: Request, adapter: TypeAdapter[Any], key: str) -> Any:
    """A JSON array, or an object holding it under `key`; item errors are reported by index."""
    try:
        body = TypeAdapter(Any).validate_json(request.body or b"")
    except ValidationError as exc:
        raise invalid_body(exc) from None
    if isinstance(body, dict) and set(body) == {key}:
        body = body[key]
    if not isinstance(body, list):
        raise ApiError(422, "invalid_fields", f"the body must be a JSON array (or {{\"{key}\": "
                       "[...]}) of at most 1000 items")
    try:
        return adapter.validate_json(json_dumps(body), strict=True)
    except ValidationError as exc:
        items: dict[str, dict[str, str]] = {}
        for error in exc.errors(include_url=False, include_input=False):
            if not error["loc"]:
                raise ApiError(422, "invalid_fields",
                               f"a batch holds at most {MAX_ITEMS} items") from None
            index, *field = error["loc"]
            name = ".".join(str(part) for part in field) or "item"
            items.setdefault(str(index), {}).setdefault(name, explain(error))
        raise InvalidItemsError(items) from None


def batch_json(
    services: Services, written: Written, user: CurrentUser, status: int
) -> JSONResponse:
    shown = aggregates_json(written.aggregates, services.people, user.id)
    return json({"events": shown}, status=status, headers=position_header(written))
