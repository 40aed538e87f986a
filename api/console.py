"""The operator's console at /console: a page, a script and a style sheet shipped in the package
(api/console_files, no build step, nothing from elsewhere) that drive the public API from the
browser — sign-in, lists and search, an event's audit trail and past versions, the live feed —
and, for operators, the views' lag and replay.

These routes are left out of the OpenAPI document on purpose, as /docs is: they serve files
for people, not operations for clients, and everything the page does goes through operations
the document describes."""

from __future__ import annotations

from pathlib import Path

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, file

bp = Blueprint("console", url_prefix="/console")

FILES = Path(__file__).parent / "console_files"
# Only this origin's scripts, styles and sockets ('self' covers ws: and wss: to it); the page
# cannot be framed, so no other site can overlay it to steal an operator's clicks.
POLICY = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
          "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
          "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

bp.static("/assets", FILES, name="console_assets")


@bp.get("/")
async def console(request: Request) -> HTTPResponse:
    return await file(FILES / "index.html", headers=POLICY)
