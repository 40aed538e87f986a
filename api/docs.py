"""OpenAPI helpers: every route documents its request body and each response with the same
pydantic models that validate them, so the spec cannot drift from the code."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, TypeVar

from pydantic import BaseModel
from sanic_ext import openapi
from sanic_ext.extensions.openapi.definitions import Component

from api.schemas import ErrorOut

F = TypeVar("F", bound=Callable[..., Any])


def body(model: type[BaseModel]) -> Callable[[F], F]:
    return openapi.body({"application/json": Component(model)}, required=True)


def responses(
    mapping: Mapping[int, type[BaseModel] | None], auth: bool = False
) -> Callable[[F], F]:
    """`None` for a status means the error envelope (or no body for 204)."""

    def decorate(func: F) -> F:
        statuses = dict(mapping)
        if auth:
            statuses.setdefault(401, None)
            func = openapi.secured("token")(func)
        for status, model in statuses.items():
            description = HTTPStatus(status).phrase
            if status == 204:
                func = openapi.response(status, None, description)(func)
                continue
            content = {"application/json": Component(model or ErrorOut)}
            func = openapi.response(status, content, description)(func)
        return func

    return decorate
