"""Rebuilding a view from position 0 beside the live one, then swapping it in: the server keeps
answering from the live tables until one short transaction renames the new ones into place."""

from __future__ import annotations

from collections.abc import Callable

from projections.database import Connection, StateDatabase
from projections.follower import (
    Log,
    View,
    catch_up_batch,
    claim,
    create,
    position,
    set_position,
)

SUFFIX = "__rebuild"


def replay(
    db: StateDatabase,
    log: Log,
    view: View,
    *,
    batch: int = 1000,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> int:
    """Rebuild `view`; returns the position it was rebuilt to. `progress(done, total)` is told
    after every batch (total is the log's head when the rebuild started)."""
    tracking = view.name + SUFFIX
    with db.write() as conn:
        _drop(conn, view, SUFFIX)
        create(conn, view, SUFFIX)
        conn.execute("DELETE FROM tracking WHERE view = ?", (tracking,))
    total = log.head()
    done = 0
    while done < total and catch_up_batch(db, log, view, batch, SUFFIX, tracking):
        done = position(db.connection(), tracking)
        progress(done, total)
    with db.write() as conn:
        # The live view's tracking row first, as its follower takes it before the tables: the
        # follower then waits for the swap instead of deadlocking with it.
        claim(conn, view.name)
        # Facts written during the rebuild are applied under the lock, then the swap.
        while facts := log.read(position(conn, tracking), batch):
            for at, fact in facts:
                view.apply(conn, at, fact, SUFFIX)
            set_position(conn, tracking, facts[-1][0])
        rebuilt = position(conn, tracking)
        _drop(conn, view, "")
        db.dialect.rename(conn, view, SUFFIX)
        create(conn, view)
        set_position(conn, view.name, rebuilt)
        conn.execute("DELETE FROM tracking WHERE view = ?", (tracking,))
    return rebuilt


def _drop(conn: Connection, view: View, suffix: str) -> None:
    for table in view.tables:
        conn.execute(f"DROP TABLE IF EXISTS {table}{suffix}")
