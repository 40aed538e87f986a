"""One place that turns every failure into the contract's error envelope and status."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from sanic import Request, json
from sanic.constants import HTTP_METHODS
from sanic.exceptions import SanicException
from sanic.response import JSONResponse

from api.schemas import USERNAME_RULE
from domain.errors import (
    AccountClosedError,
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
    AccountClosedError: (401, "unauthorized"),
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
    414: "uri_too_long",
    416: "range_not_satisfiable",
    431: "headers_too_large",
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
        challenge = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return envelope(status, code, str(exc), exc.fields, challenge, items=items)
    if isinstance(exc, SanicException):
        status, message = sanic_status(request, exc)
        if status >= 500:
            log.exception("server error on %s %s", request.method, request.path, exc_info=exc)
        headers = dict(getattr(exc, "headers", None) or {})
        if status == 405 and "Allow" not in headers:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return envelope(status, SANIC_CODES.get(status, "error"), message, headers=headers)
    log.exception("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return envelope(500, "internal", "something went wrong on our side; it has been logged")


# Sanic reports a request head over REQUEST_MAX_HEADER_SIZE as a 413 with this message, whether
# it is the request line (the URL) or the header fields that are too long.
HEAD_TOO_LARGE = "Request header exceeds the size limit"


def sanic_status(request: Request, exc: SanicException) -> tuple[int, str]:
    """The status and a true message for Sanic's own refusals."""
    status = exc.status_code
    config = request.app.config
    if status == 413 and str(exc) == HEAD_TOO_LARGE:
        limit = config.REQUEST_MAX_HEADER_SIZE
        if _request_line_fits(request, limit):
            return 431, f"the request's header fields are larger than {limit / 2**10:g} KiB"
        return 414, f"the URL is longer than {limit / 2**10:g} KiB"
    if status == 413:
        return 413, f"the request body is larger than {config.REQUEST_MAX_SIZE / 2**20:g} MiB"
    return status, str(exc)


def _request_line_fits(request: Request, limit: int) -> bool:
    """Whether the received head's first line (method, URL, version) ended within the limit.
    Sanic hands its error handler a stand-in request without the head, so this reads what the
    connection received; if that cannot be read, the headers are blamed."""
    received = getattr(getattr(request, "stream", None), "recv_buffer", None)
    if not isinstance(received, bytes | bytearray):
        return True
    return b"\r\n" in received[:limit]


def allowed_methods(request: Request) -> list[str]:
    """The methods the requested path answers. Sanic's router names them only for a path
    without parameters, and a 405 must carry them all in Allow (RFC 9110 §15.5.6)."""
    allowed = []
    for method in HTTP_METHODS:
        try:
            request.app.router.get(request.path, method, request.headers.getone("host", None))
        except SanicException:
            continue
        allowed.append(str(method))
    return allowed
