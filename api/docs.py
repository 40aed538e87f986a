"""What each route declares about itself (body, answers, headers, query), and the OpenAPI 3.0
document built from those declarations and the app's own routes. Schemas come from the same
pydantic models that validate and shape the bodies, so the document cannot drift from the code.

Built here rather than by sanic-ext's generator, which keys an operation by its handler (a
route's alias and PUT/PATCH got one operationId), writes `*/*` content for a bodiless answer,
has no response headers, and lets a query parameter hide a path parameter of the same name."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from sanic import Sanic

from api.schemas import ErrorOut, OpenAPI30

F = TypeVar("F", bound=Callable[..., Any])

JSON = "application/json"
CALENDAR = "text/calendar"
HTML = "text/html"
PLAIN_TEXT = "text/plain"
BEARER = "bearer"
SCHEMAS = "#/components/schemas/{model}"
VALIDATION: JsonSchemaMode = "validation"
SERIALIZATION: JsonSchemaMode = "serialization"
# The longest request line and header block the server reads (sanic's REQUEST_MAX_HEADER_SIZE):
# any request can be refused for either, before it reaches its operation.
EVERY_REQUEST = (414, 431)

# The headers a write's answer carries: its log position; an event's also its version.
WRITTEN = ("X-Position",)
VERSIONED = ("ETag",)
EVENT_WRITTEN = ("ETag", "X-Position")

HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {"description": 'the event\'s version, quoted ("3"): send it back as If-Match '
             "or If-None-Match", "schema": {"type": "string"}},
    "X-Position": {"description": "the position in the event log this answer reflects: pass "
                   "it as ?min_position to a list to read your own write",
                   "schema": {"type": "integer", "minimum": 0}},
    "Location": {"description": "the new event's URL", "schema": {"type": "string"}},
    "Retry-After": {"description": "seconds to wait before trying again",
                    "schema": {"type": "integer", "minimum": 0}},
    "WWW-Authenticate": {"description": "the scheme to authenticate with (Bearer)",
                         "schema": {"type": "string"}},
}


@dataclass(frozen=True)
class Answer:
    """One documented response: a model (None: the error envelope, or no body for 204/304),
    the response headers it carries, and its media type."""

    model: type[BaseModel] | None = None
    headers: tuple[str, ...] = ()
    media: str = JSON


@dataclass(frozen=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str


@dataclass(frozen=True)
class RequestHeader:
    name: str
    description: str


@dataclass
class Operation:
    summary: str
    responses: dict[int, Answer]
    body: type[BaseModel] | None = None
    auth: bool = False
    query: Sequence[Query] = ()
    headers: Sequence[RequestHeader] = ()
    links: Mapping[int, Mapping[str, dict[str, Any]]] = field(default_factory=dict)
    # What a route's path holds after its parameter, inside the parameter's pattern (an
    # event's .ics).
    suffix: str = ""
    # The names of the handler's routes this documents (/api/user/me beside /{user_id}, whose
    # answers differ); every route of the handler when empty.
    routes: frozenset[str] = frozenset()


IF_MATCH = RequestHeader("If-Match", 'the version you read (its ETag, "3" or W/"3"); the '
                         "change is refused with 412 if the event has moved on since")
IF_NONE_MATCH = RequestHeader("If-None-Match", "ETags you hold (or *): answered 304 with no "
                              "body if the event's version is one of them")


def documented(summary: str, responses: Mapping[int, Answer | None], *,
               body: type[BaseModel] | None = None, auth: bool = False,
               query: Sequence[Query] = (), headers: Sequence[RequestHeader] = (),
               links: Mapping[int, Mapping[str, dict[str, Any]]] | None = None,
               suffix: str = "", routes: Sequence[str] = ()) -> Callable[[F], F]:
    """Declares a route's operation. The answers any such route can give are added here: 401
    when it needs a token, 400/413/422 when it reads a JSON body, 400/412 with If-Match, and
    414/431 for every request."""
    answers = {status: answer or Answer() for status, answer in responses.items()}
    if auth:
        answers.setdefault(401, Answer(headers=("WWW-Authenticate",)))
    if body is not None:
        for status in (400, 413, 422):
            answers.setdefault(status, Answer())
    if IF_MATCH in headers:
        for status in (400, 412):
            answers.setdefault(status, Answer())
    for status in EVERY_REQUEST:
        answers.setdefault(status, Answer())
    declared = Operation(summary, answers, body, auth, tuple(query), tuple(headers),
                         dict(links or {}), suffix, frozenset(routes))

    def declare(func: F) -> F:
        func.__dict__.setdefault("openapi", []).append(declared)
        return func

    return declare


def operations_of(handler: Any) -> list[Operation]:
    found = getattr(handler, "openapi", [])
    return [entry for entry in found if isinstance(entry, Operation)]


PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "event_id": {"description": "the event's id, or an occurrence's (<event id>_<original "
                 "start in UTC as YYYYMMDDTHHMMSSZ>, from /instances)",
                 "schema": {"type": "string",
                            "pattern": "^[0-9a-fA-F-]{32,36}(_[0-9]{8}T[0-9]{6}Z)?$"}},
    "user_id": {"description": "an account's id", "schema": {"type": "string"}},
    "location": {"description": "words the location must contain (case and accents ignored)",
                 "schema": {"type": "string", "minLength": 1}},
    "token": {"description": "an invitation's answer token, from its email's link",
              "schema": {"type": "string"}},
    "secret": {"description": "a calendar feed's secret, as POST /api/user/me/calendar_feed "
               "gave it in the feed's URL", "schema": {"type": "string", "minLength": 1}},
}
_PARAMETER = re.compile(r"<(\w+)(?::[^>]*)?>")


def openapi_path(uri: str) -> tuple[str, list[str]]:
    """A sanic route's URI as an OpenAPI path ({id} for <id:str>), and its path parameters'
    names."""
    names: list[str] = []

    def template(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return "{" + match.group(1) + "}"

    path = _PARAMETER.sub(template, uri)
    return "/" + path.strip("/"), names


Refs = Mapping[tuple[Any, JsonSchemaMode], dict[str, Any]]


def openapi_document(app: Sanic[Any, Any], title: str, version: str, description: str,
                     extensions: Mapping[str, Any]) -> dict[str, Any]:
    """The whole document: one operation per documented route and method, operationIds
    from the route names (so an alias and PATCH beside PUT get their own)."""
    routes = [(route, declared) for route in sorted(app.router.routes, key=lambda r: r.uri)
              if not route.extra.websocket for declared in operations_of(route.handler)
              if not declared.routes or route.name.split(".")[-1] in declared.routes]
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = {(ErrorOut, SERIALIZATION)}
    for _, declared in routes:
        if declared.body is not None:
            models.add((declared.body, VALIDATION))
        models.update((answer.model, SERIALIZATION) for answer in declared.responses.values()
                      if answer.model is not None)
    refs, schemas = models_json_schema(
        sorted(models, key=lambda pair: (pair[0].__name__, pair[1])),
        ref_template=SCHEMAS, schema_generator=OpenAPI30)
    paths: dict[str, dict[str, Any]] = {}
    for route, declared in routes:
        path, names = openapi_path(route.uri)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            _, tag, name = route.name.split(".")  # app.blueprint.handler
            paths.setdefault(path + declared.suffix, {})[method.lower()] = {
                "tags": [tag], **operation_json(declared, name, names,
                                                refs)}
    # A path that extends another comes first ({event_id}.ics before {event_id}): tools that
    # try templates in document order (openapi-core) then match the more specific one.
    ordered = sorted(paths.items(), key=lambda item: (item[0].split("{")[0], -len(item[0])))
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version, "description": description},
        "paths": dict(ordered),
        "components": {
            "schemas": schemas.get("$defs", {}),
            "headers": HEADERS,
            "securitySchemes": {BEARER: {"type": "http", "scheme": "bearer",
                                         "bearerFormat": "JWT"}},
        },
        **extensions,
    }


def operation_json(declared: Operation, operation_id: str, names: list[str], refs: Refs
                   ) -> dict[str, Any]:
    parameters = [{"name": name, "in": "path", "required": True, **PATH_PARAMETERS[name]}
                  for name in names]
    parameters += [{"name": query.name, "in": "query", "required": False,
                    "description": query.description, "schema": query.schema}
                   for query in declared.query if query.name not in names]
    parameters += [{"name": header.name, "in": "header", "required": False,
                    "description": header.description, "schema": {"type": "string"}}
                   for header in declared.headers]
    found: dict[str, Any] = {
        "operationId": operation_id,
        "summary": declared.summary,
        "responses": {str(status): response_json(status, answer, refs,
                                                 declared.links.get(status, {}))
                      for status, answer in sorted(declared.responses.items())},
    }
    if parameters:
        found["parameters"] = parameters
    if declared.body is not None:
        found["requestBody"] = {"required": True, "content": {JSON: {
            "schema": refs[declared.body, VALIDATION]}}}
    found["security"] = [{BEARER: []}] if declared.auth else []
    return found


def response_json(status: int, answer: Answer, refs: Refs,
                  links: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {"description": HTTPStatus(status).phrase}
    if answer.media != JSON:
        found["content"] = {answer.media: {"schema": {"type": "string"}}}
    elif status not in (204, 304):
        found["content"] = {JSON: {"schema": refs[answer.model or ErrorOut, SERIALIZATION]}}
    if answer.headers:
        found["headers"] = {name: {"$ref": f"#/components/headers/{name}"}
                            for name in answer.headers}
    if links:
        found["links"] = dict(links)
    return found
