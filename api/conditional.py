"""Conditional requests (RFC 9110 section 13): an event's ETag is its version, which changes
with every write, so a client holding the current version can skip the body; a calendar
feed's is a digest of what it lists (api.feeds)."""

from __future__ import annotations

from sanic import Request, empty
from sanic.response import HTTPResponse


def etag(version: int) -> str:
    return f'"{version}"'


def not_modified(request: Request, version: int) -> HTTPResponse | None:
    """304 with no body when If-None-Match is * or names this version."""
    return unchanged(request, etag(version))


def unchanged(request: Request, tag: str) -> HTTPResponse | None:
    """304 with no body when If-None-Match is * or names this (quoted) ETag; GET compares
    weakly, so W/"3" matches "3"."""
    raw = request.headers.get("if-none-match")
    if raw is None:
        return None
    held = {tag.strip().removeprefix("W/") for tag in raw.split(",")}
    if "*" in held or tag in held:
        return empty(status=304, headers={"ETag": tag})
    return None
