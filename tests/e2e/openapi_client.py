"""openapi-core over httpx: the served document as openapi-core loads it, and httpx's requests
and responses in the shapes openapi-core reads (it ships adapters for other clients only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.media_types.util import plain_loads
from werkzeug.datastructures import Headers, ImmutableMultiDict


@dataclass
class Sent:
    """An httpx request as openapi-core's Request protocol."""

    request: httpx.Request

    def __post_init__(self) -> None:
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(self.request.url.params.multi_items()),
            header=Headers(list(self.request.headers.multi_items())),
        )

    @property
    def host_url(self) -> str:
        return f"{self.request.url.scheme}://{self.request.url.netloc.decode()}"

    @property
    def path(self) -> str:
        return self.request.url.path

    @property
    def method(self) -> str:
        return self.request.method.lower()

    @property
    def content_type(self) -> str:
        return self.request.headers.get("content-type", "")

    @property
    def body(self) -> bytes | None:
        return self.request.content or None


@dataclass
class Received:
    """An httpx response as openapi-core's Response protocol."""

    response: httpx.Response

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def content_type(self) -> str:
        return self.response.headers.get("content-type", "")

    @property
    def headers(self) -> Headers:
        return Headers(list(self.response.headers.multi_items()))

    @property
    def data(self) -> bytes | None:
        return self.response.content or None


def load(document: dict[str, Any], base_url: str) -> OpenAPI:
    """openapi-core refuses a document it finds invalid, so loading is itself a check. It
    reads text/plain as text but other text types as bytes, which no string schema accepts:
    iCalendar is text, told here."""
    config = Config(extra_media_type_deserializers={"text/calendar": plain_loads})
    return OpenAPI.from_dict({**document, "servers": [{"url": base_url}]}, config=config)


def check(api: OpenAPI, response: httpx.Response) -> None:
    """Raises unless the response is one its operation documents: status, media type, body
    schema and declared headers."""
    api.validate_response(Sent(response.request), Received(response))
