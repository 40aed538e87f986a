"""The port to the state database that everything following the log writes through: the views
(projections/), the mail outbox and reminders (consumers/), and the faust agents that run those
handlers at scale. projections.database implements it on SQLite and PostgreSQL. It lives in the
domain because it is the one package both sides may import (they never import each other,
ARCHITECTURE.md), and it is types only: SQL with `?` placeholders and standard upserts, rows
read by column name, so a handler is written once for both backends."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


class Rows(Protocol):
    """What a statement answers; each row is read by column name (row["id"])."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """sqlite3.Connection as it is, or the PostgreSQL adapter that speaks the same way."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Rows: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


class Database(Protocol):
    """`connection()` reads (and writes single statements) outside any transaction; `write()`
    is one transaction, committed when the block ends and rolled back if it raises."""

    # Failures worth retrying later (the database busy or unreachable), not bugs.
    transient: tuple[type[Exception], ...]

    def connection(self) -> Connection: ...

    def write(self) -> AbstractContextManager[Connection]: ...


@dataclass(frozen=True)
class Place:
    """Where a handler's tables are: the live ones that everything reads, or a rebuild's beside
    them (projections.replay), renamed into place once it has caught up. A handler is built for
    one place and makes its statements from the names the place gives, once, so none of its
    statements can name the other place's tables."""

    rebuild: bool = False

    def __call__(self, table: str) -> str:
        """A table's (or tracking row's) name at this place."""
        return f"{table}__rebuild" if self.rebuild else table


LIVE = Place()
REBUILD = Place(rebuild=True)


class Handler(Protocol):
    """A tracked follower's handler (a view, the mail outbox, reminders): how each fact at its
    log position changes its tables (those of the place it was built for), inside the caller's
    transaction. The embedded follower and the faust agents call the same one."""

    name: str

    def apply(self, conn: Connection, position: int, fact: Any) -> None: ...
