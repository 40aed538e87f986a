"""The request class of the app: Sanic's own, able to stand in for a request whose URL cannot be
parsed."""

from __future__ import annotations

from typing import Any

from sanic import Request as SanicRequest
from sanic.exceptions import BadURL

# The method of the stand-in request Sanic builds to answer a request it could not read.
STAND_IN = "NONE"


class Request(SanicRequest):
    """To answer a malformed request, Sanic builds a stand-in request from the same URL; a URL
    that httptools refuses (a NUL byte in the path, say) then fails again, and the connection
    was dropped unanswered with a traceback in the log. The stand-in takes "/" instead, so the
    client gets the 400 it was owed."""

    __slots__ = ()

    def __init__(self, url_bytes: bytes, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(url_bytes, *args, **kwargs)
        except BadURL:
            if kwargs.get("method") != STAND_IN:
                raise
            super().__init__(b"/", *args, **kwargs)
