"""Rebuilding a view from position 0 beside the live one, then swapping it in: the server keeps
answering from the live tables until one short transaction renames the new ones into place."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from domain.storage import REBUILD, Connection
from projections.database import StateDatabase
from projections.follower import (
    Fact,
    Log,
    View,
    claim,
    create,
    position,
    set_position,
    tracked,
)

# Facts per transaction: the write lock is held only while a batch's rows are written, and
# a larger batch folds more of an event's facts into one row and writes its rows in key order.
BATCH = 10_000


class Loader(Protocol):
    """Writes a rebuilt view's facts into its tables: `fold` takes a batch in (outside any
    transaction), `write` writes it inside the caller's."""

    def fold(self, facts: Sequence[tuple[int, Fact]]) -> None: ...

    def write(self, conn: Connection) -> None: ...


@runtime_checkable
class Loadable(Protocol):
    """A view with a faster way to fill tables created empty and without their indexes (which
    replay makes once the rows are in) than applying its facts one by one."""

    def loader(self, reads: Connection) -> Loader: ...


class OneByOne:
    """Any other view: its facts applied one by one, as its follower applies them."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.facts: Sequence[tuple[int, Fact]] = ()

    def fold(self, facts: Sequence[tuple[int, Fact]]) -> None:
        self.facts = facts

    def write(self, conn: Connection) -> None:
        for at, fact in self.facts:
            self.view.apply(conn, at, fact)


def replay(
    db: StateDatabase,
    log: Log,
    view: View,
    *,
    batch: int = BATCH,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> int:
    """Rebuild `view` (a live one); returns the position it was rebuilt to. `progress(done,
    total)` is told after every batch (total is the log's head when the rebuild started)."""
    rebuilt = view.at(REBUILD)
    tracking = tracked(rebuilt)
    loader = _loader(db, rebuilt)
    loadable = not isinstance(loader, OneByOne)
    with db.write() as conn:
        _drop(conn, rebuilt)
        _create_empty(conn, rebuilt, loadable)
        conn.execute("DELETE FROM tracking WHERE view = ?", (tracking,))
    total = log.head()
    done = 0
    while done < total and (facts := log.read(done, batch)):
        loader.fold(facts)
        with db.write() as conn:
            _load(conn, loader, tracking, facts)
        done = facts[-1][0]
        progress(done, total)
    if loadable:
        _index(db, rebuilt)
    with db.write() as conn:
        # The live view's tracking row first, as its follower takes it before the tables: the
        # follower then waits for the swap instead of deadlocking with it.
        claim(conn, tracked(view))
        # Facts written during the rebuild are applied under the lock, then the swap.
        while facts := log.read(position(conn, tracking), batch):
            loader.fold(facts)
            _load(conn, loader, tracking, facts)
        reached = position(conn, tracking)
        _drop(conn, view)
        db.dialect.rename(conn, rebuilt, view)
        create(conn, view)
        set_position(conn, tracked(view), reached)
        conn.execute("DELETE FROM tracking WHERE view = ?", (tracking,))
    return reached


def _loader(db: StateDatabase, rebuilt: View) -> Loader:
    if isinstance(rebuilt, Loadable):
        return rebuilt.loader(db.connection())
    return OneByOne(rebuilt)


def _create_empty(conn: Connection, rebuilt: View, loadable: bool) -> None:
    """A loadable view's tables come without their indexes: building an index once over all
    the rows costs less than keeping it in order row by row."""
    if loadable:
        for statement in rebuilt.schema():
            conn.execute(statement)
    else:
        create(conn, rebuilt)


def _index(db: StateDatabase, rebuilt: View) -> None:
    """Where the dialect's rename takes a table's indexes along (PostgreSQL), they are built
    now, so the swap only renames. SQLite cannot rename an index: its swap builds the live
    ones, and any built here would be dropped unused."""
    if db.dialect.renames_indexes:
        with db.write() as conn:
            create(conn, rebuilt)


def _load(conn: Connection, loader: Loader, tracking: str,
          facts: Sequence[tuple[int, Fact]]) -> None:
    loader.write(conn)
    set_position(conn, tracking, facts[-1][0])


def _drop(conn: Connection, view: View) -> None:
    for table in view.tables:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
