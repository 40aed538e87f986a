"""The OpenAPI document and the docs UI, fetched from the running server: every auth, user and
event route is described with its request body and its success response's schema."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from tests.conftest import Person, event_body, sign_up

# (method, path as the document spells it, success status, takes a body)
ROUTES: list[tuple[str, str, int, bool]] = [
    ("post", "/api/auth/signup", 201, True),
    ("post", "/api/auth/signin", 200, True),
    ("post", "/api/auth/refresh", 200, True),
    ("post", "/api/token/refresh", 200, True),
    ("post", "/api/auth/signout", 204, True),
    ("get", "/api/user/me", 200, False),
    ("get", "/api/user/{user_id}", 200, False),
    ("put", "/api/user/{user_id}", 200, True),
    ("delete", "/api/user/{user_id}", 200, False),
    ("post", "/api/events", 201, True),
    ("get", "/api/event/{event_id}", 200, False),
    ("put", "/api/event/{event_id}", 200, True),
    ("patch", "/api/event/{event_id}", 200, True),
    ("delete", "/api/event/{event_id}", 200, False),
    ("get", "/api/event/{event_id}/history", 200, False),
    ("get", "/api/operator/status", 200, False),
    ("post", "/api/operator/replay", 200, False),
]


@pytest.fixture(scope="module")
def document(http: httpx.Client) -> dict[str, Any]:
    answer = http.get("/docs/openapi.json")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    found: dict[str, Any] = answer.json()
    return found


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The operation for a path, whether the document spells it with a trailing slash or not."""
    paths = {key.rstrip("/") or "/": value for key, value in document["paths"].items()}
    assert path in paths, f"{path} is not in the document: {sorted(paths)}"
    assert method in paths[path], f"{method.upper()} {path} is not in the document"
    found: dict[str, Any] = paths[path][method]
    return found


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref to the schema it names (it must exist)."""
    seen = 0
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = document
        for part in ref[2:].split("/"):
            assert part in target, f"{ref} does not resolve"
            target = target[part]
        schema = target
        seen += 1
        assert seen < 20, "a $ref cycle"
    return schema


def json_schema(document: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    assert "application/json" in content, content
    schema = content["application/json"].get("schema")
    assert isinstance(schema, dict) and schema, content
    resolved = resolve(document, schema)
    assert resolved.get("type") == "object" or "properties" in resolved, resolved
    return resolved


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in all_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in all_refs(value)]
    return []


def test_the_openapi_document_is_json_for_openapi_3_with_a_title_and_version(
    document: dict[str, Any]
) -> None:
    assert str(document["openapi"]).startswith("3.")
    assert document["info"]["title"]
    assert document["info"]["version"]
    assert isinstance(document["paths"], dict) and document["paths"]


def test_openapi_spec_validator_finds_the_served_document_valid(
    document: dict[str, Any]
) -> None:
    validate(document)  # raises with the first error it finds


def test_every_operation_has_an_operation_id_of_its_own(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert {"refresh", "token_refresh", "change_event", "patch_event", "search_events",
            "get_event_ics"} <= set(ids)


def test_websockets_are_described_but_not_operations(document: dict[str, Any]) -> None:
    assert not [path for path in document["paths"] if path.startswith("/ws")]
    assert set(document["x-websockets"]) >= {"/ws/events", "/ws/events/{event_id}"}


def test_every_reference_in_the_document_resolves(document: dict[str, Any]) -> None:
    refs = all_refs(document)
    assert refs
    for ref in set(refs):
        resolve(document, {"$ref": ref})


@pytest.mark.parametrize(("method", "path", "success", "takes_body"), ROUTES,
                         ids=[f"{m.upper()} {p}" for m, p, _, _ in ROUTES])
def test_every_api_route_is_documented_with_its_body_and_success_schema(
    document: dict[str, Any], method: str, path: str, success: int, takes_body: bool
) -> None:
    found = operation(document, method, path)
    if takes_body:
        assert "requestBody" in found, f"{method.upper()} {path} documents no request body"
        schema = json_schema(document, found["requestBody"]["content"])
        assert schema.get("properties"), schema
    responses = found["responses"]
    assert str(success) in responses, f"{method.upper()} {path}: {sorted(responses)}"
    if success != 204:
        schema = json_schema(document, responses[str(success)]["content"])
        assert schema.get("properties"), schema
    for parameter in (part[1:-1] for part in path.split("/") if part.startswith("{")):
        names = [p["name"] for p in found.get("parameters", []) if p.get("in") == "path"]
        assert parameter in names, f"{method.upper()} {path} does not document {parameter}"


def test_the_event_schemas_name_every_field_of_the_contract(document: dict[str, Any]) -> None:
    created = json_schema(document, operation(document, "post", "/api/events")["requestBody"][
        "content"])
    assert {"name", "starting_time", "end_time", "location", "participants"} <= set(
        created["properties"])
    assert {"name", "starting_time", "end_time", "location"} <= set(created.get("required", []))
    read = json_schema(document, operation(document, "get", "/api/event/{event_id}")[
        "responses"]["200"]["content"])
    event = resolve(document, read["properties"]["event"])
    assert set(event["properties"]) >= {
        "id", "name", "starting_time", "end_time", "location", "participants", "owner",
        "owner_username", "version", "created_at", "updated_at",
    }
    trail = json_schema(document, operation(document, "get", "/api/event/{event_id}/history")[
        "responses"]["200"]["content"])
    entry = resolve(document, trail["properties"]["history"]["items"])
    assert set(entry["properties"]) >= {"version", "type", "at", "by", "changes"}


def test_error_responses_are_documented_with_the_error_envelope(
    document: dict[str, Any]
) -> None:
    found = operation(document, "put", "/api/event/{event_id}")
    for status in ("401", "403", "404", "409", "410", "412", "422"):
        assert status in found["responses"], status
        envelope = json_schema(document, found["responses"][status]["content"])
        detail = resolve(document, envelope["properties"]["error"])
        assert {"code", "message", "fields"} <= set(detail["properties"])


def test_the_authenticated_routes_declare_the_bearer_scheme(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items()
              if s.get("type") == "http" and s.get("scheme") == "bearer"]
    assert bearer
    for method, path, _, _ in ROUTES:
        if path.startswith(("/api/event", "/api/user")):
            security = operation(document, method, path).get("security", [])
            assert any(set(requirement) & set(bearer) for requirement in security), path


def test_the_document_describes_the_websockets_it_cannot_model(
    document: dict[str, Any]
) -> None:
    description = document["info"].get("description", "")
    assert "ws/events" in description, "the WebSocket paths are not described"


def test_a_documented_response_matches_what_the_server_sends(
    http: httpx.Client, document: dict[str, Any]
) -> None:
    owner: Person = sign_up(http, "docs")
    answer = http.post("/api/events/", json=event_body(), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    written = json_schema(document, operation(document, "post", "/api/events")["responses"][
        "201"]["content"])
    assert set(answer.json()) == set(written["required"])
    event = resolve(document, written["properties"]["event"])
    # every required field, and no field the document does not name (a series' and an
    # occurrence's own fields are optional: absent from a single event)
    assert set(event["required"]) <= set(answer.json()["event"]) <= set(event["properties"])


def test_the_docs_ui_answers_html(http: httpx.Client) -> None:
    for path in ("/docs", "/docs/", "/docs/redoc"):
        answer = http.get(path, follow_redirects=True)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert "openapi.json" in answer.text or "<html" in answer.text.lower()


def null_types(node: Any, where: str = "") -> list[str]:
    """Where a schema says `"type": "null"`, which only OpenAPI 3.1 allows."""
    if isinstance(node, dict):
        found = [where] if node.get("type") == "null" else []
        return found + [spot for key, value in node.items()
                        for spot in null_types(value, f"{where}/{key}")]
    if isinstance(node, list):
        return [spot for i, value in enumerate(node) for spot in null_types(value, f"{where}/{i}")]
    return []


def test_the_schemas_keep_to_the_openapi_version_the_document_declares(
    document: dict[str, Any]
) -> None:
    if str(document["openapi"]).startswith("3.0"):
        # OpenAPI 3.0 has no "null" type (it writes `nullable: true`); 3.0 tools reject it.
        assert null_types(document) == []
