"""How a use case is written and saved: each one is a `Command` of two named steps — `get`
(read or create the aggregates) and `act` (apply the rules to them) — and the application's
`Executor` does the third, `save`, in one atomic write. Which executor is chosen when the
application is built (alphabet.wiring): `WriteNow` saves on the caller's thread; the server's
workers use alphabet.group_commit.GroupCommit, which queues commands and saves many in one
transaction. Use cases do not know which one runs them.

The steps are functions rather than code inline so that an executor may redo them: when
another writer saved first (an optimistic-concurrency conflict), the command is redone on
fresh state — or, when the client pinned a version (If-Match), refused."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Recording

from domain.errors import ConflictError, VersionMismatchError

# Writers racing on one aggregate retry from a fresh read; this bounds pathological contention.
MAX_ATTEMPTS = 50


class Aggregates(Protocol):
    """Where a command's `get` step reads aggregates: the repository (eventsourcing's), or a
    group commit's batch, which answers with the batch's own newer copy of an aggregate an
    earlier command in it has changed."""

    def get(self, aggregate_id: UUID, *, version: int | None = None) -> Any: ...


# Saves aggregates' pending facts in one atomic write (eventsourcing's Application.save).
Save = Callable[..., list[Recording[UUID]]]


@dataclass
class Written:
    """What a write produced: the aggregates after it, what changed in each (for updates), and
    the log position of its last fact (None when the command changed nothing)."""

    aggregates: list[Any]
    changes: list[dict[str, Any]] = field(default_factory=list)
    position: int | None = None

    @property
    def aggregate(self) -> Any:
        return self.aggregates[0]

    def of(self, cls: type) -> Written:
        """The same write, answering with its aggregates of one class (the events a creation
        made, without the Ownership saved with them)."""
        return replace(self, aggregates=[a for a in self.aggregates if isinstance(a, cls)])


@dataclass(frozen=True)
class Command:
    """A use case's deciding steps, apart from its saving. `get` reads (or creates) the
    aggregates; `act` applies the rules to them and returns what changed in each. A `pinned`
    command (the client sent If-Match) is refused rather than redone when another writer wins
    the race."""

    get: Callable[[Aggregates], list[Any]]
    act: Callable[[list[Any]], list[dict[str, Any]] | None]
    pinned: bool = field(default=False, kw_only=True)


class Executor(Protocol):
    """Runs a command's steps and saves what they decided, once, atomically."""

    def __call__(self, command: Command) -> Written: ...

    def close(self) -> None: ...


# How an application builds its executor from its repository and its save.
Writer = Callable[[Aggregates, Save], Executor]


class WriteNow:
    """Get, act, save on the caller's thread; when another writer saved first, get again and
    redo the command on the newer state (or refuse a pinned one: 412)."""

    def __init__(self, aggregates: Aggregates, save: Save) -> None:
        self.aggregates = aggregates
        self.save = save

    def __call__(self, command: Command) -> Written:
        for _ in range(MAX_ATTEMPTS):
            aggregates = command.get(self.aggregates)
            changes = command.act(aggregates)
            try:
                recordings = self.save(*aggregates)
            except IntegrityError:
                if command.pinned:
                    raise VersionMismatchError(
                        "the event was changed by someone else; read it again and retry"
                    ) from None
                continue
            return Written(aggregates, changes or [], last_position(recordings))
        raise ConflictError("too many concurrent changes to this item; try again")

    def close(self) -> None:
        """Nothing runs in the background."""


def last_position(recordings: Sequence[Recording[UUID]]) -> int | None:
    return recordings[-1].notification.id if recordings else None
