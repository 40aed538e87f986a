"""Batches: every item of a batch is checked, and all the problems are reported at once by the
item's index, so a client fixes them in one go and nothing is stored until none is left."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar
from uuid import UUID

from domain.errors import DomainError, InvalidItemsError

# A batch's items already found invalid: index in the batch → field → problem.
Refused = Mapping[int, dict[str, str]]

T = TypeVar("T")
R = TypeVar("R")


def each(items: Sequence[T], act: Callable[[T], R], refused: Refused | None = None) -> list[R]:
    """Apply `act` to every item, collecting every refusal by index before giving up, so a
    batch is answered with all its problems at once and nothing is stored. `refused` holds
    the problems already found in other items of the batch, by their index in it; `items`
    are the batch's other items, in order."""
    done, problems = sift(items, act, refused)
    if problems:
        raise InvalidItemsError(report(problems))
    return done


def sift(items: Sequence[T], act: Callable[[T], R],
         refused: Refused | None = None) -> tuple[list[R], dict[int, dict[str, str]]]:
    """As `each`, without giving up: what `act` made of the items it accepted (in order), and
    the problems of the whole batch so far, `refused` and the items `act` refused."""
    problems = dict(refused or {})
    done: list[R] = []
    for index, item in zip(indexes(len(items), problems), items, strict=True):
        try:
            done.append(act(item))
        except DomainError as exc:
            problems[index] = exc.fields or {"error": str(exc)}
    return done, problems


def indexes(count: int, refused: Refused) -> list[int]:
    """The indexes in the whole batch of `count` items that are not `refused`."""
    return [i for i in range(count + len(refused)) if i not in refused][:count]


def report(problems: Refused) -> dict[str, dict[str, str]]:
    return {str(index): problems[index] for index in sorted(problems)}


def loaded(item: T | DomainError) -> T:
    """A batch item as got, or the refusal found getting it (raised now, in the act step,
    where `each` reports it with the others)."""
    if isinstance(item, DomainError):
        raise item
    return item


def unique_ids(ids: Sequence[UUID], refused: Refused | None = None) -> Sequence[UUID]:
    refused = refused or {}
    seen: set[UUID] = set()
    repeated = {}
    for index, event_id in zip(indexes(len(ids), refused), ids, strict=True):
        if event_id in seen:
            repeated[index] = {"id": "appears more than once in the batch"}
        seen.add(event_id)
    if repeated:
        raise InvalidItemsError(report({**refused, **repeated}))
    return ids
