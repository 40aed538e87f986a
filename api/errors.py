"""One place that turns every failure into the contract's error envelope and status."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from sanic import Request, json
from sanic.exceptions import SanicException
from sanic.response import JSONResponse

from api.schemas import USERNAME_RULE
from domain.errors import (
    ConflictError,
    DomainError,
    ForbiddenError,
    GoneError,
    InvalidFieldsError,
    InvalidItemsError,
    NotFoundError,
    VersionMismatchError,
)

log = logging.getLogger(__name__)

DOMAIN_STATUS: dict[type[DomainError], tuple[int, str]] = {
    InvalidFieldsError: (422, "invalid_fields"),
    InvalidItemsError: (422, "invalid_items"),
    NotFoundError: (404, "not_found"),
    GoneError: (410, "gone"),
    ForbiddenError: (403, "forbidden"),
    ConflictError: (409, "conflict"),
    VersionMismatchError: (412, "version_mismatch"),
    DomainError: (422, "invalid"),
}

SANIC_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    416: "range_not_satisfiable",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the edge itself raises (auth, malformed input, rate limits)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.fields = fields or {}
        self.headers = headers or {}


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def invalid_body(exc: ValidationError) -> ApiError:
    """pydantic's errors, one message per field, in words a person can act on."""
    errors = exc.errors(include_url=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return ApiError(400, "malformed_json", f"the body is not valid JSON: {errors[0]['msg']}")
    if any(e["type"] == "model_type" and not e["loc"] for e in errors):
        return ApiError(422, "invalid_fields", "the body must be a JSON object")
    fields: dict[str, str] = {}
    for error in errors:
        name = ".".join(str(part) for part in error["loc"]) or "body"
        fields.setdefault(name, explain(error))
    message = "; ".join(f"{name}: {problem}" for name, problem in fields.items())
    return ApiError(422, "invalid_fields", message, fields)


def explain(error: Any) -> str:
    match error["type"]:
        case "timezone_aware":
            return "a time must include its UTC offset, e.g. 2026-12-01T18:00:00+02:00 or ...Z"
        case "extra_forbidden":
            return "unknown field"
        case "string_pattern_mismatch" if "x00" in str(error["ctx"].get("pattern", "")):
            return "must be one line of text, without control characters"
        case "string_pattern_mismatch":
            return f"must be {USERNAME_RULE}"
        case "value_error":
            return str(error["ctx"]["error"])
    return str(error["msg"])


def envelope(status: int, code: str, message: str, fields: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None,
             items: dict[str, dict[str, str]] | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message, "fields": fields or {}}
    if items is not None:
        error["items"] = items
    return json({"error": error}, status=status, headers=headers)


def handle(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ApiError):
        return envelope(exc.status, exc.code, str(exc), exc.fields, exc.headers)
    if isinstance(exc, DomainError):
        status, code = next(
            DOMAIN_STATUS[cls] for cls in type(exc).__mro__ if cls in DOMAIN_STATUS
        )
        items = exc.items if isinstance(exc, InvalidItemsError) else None
        return envelope(status, code, str(exc), exc.fields, items=items)
    if isinstance(exc, SanicException):
        status = exc.status_code
        if status >= 500:
            log.exception("server error on %s %s", request.method, request.path, exc_info=exc)
        message = "the request body is larger than 1 MiB" if status == 413 else str(exc)
        return envelope(status, SANIC_CODES.get(status, "error"), message,
                        headers=getattr(exc, "headers", None))
    log.exception("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return envelope(500, "internal", "something went wrong on our side; it has been logged")
