"""The garbage collector in the long-running processes. A full collection walks every object
the process holds, and a worker holds several hundred thousand from its imports alone (Sanic,
pydantic, psycopg, eventsourcing): 55–75 ms a collection, during which the event loop answers
nothing. Under load the objects that requests keep across turns of the loop (64 connections'
worth on PostgreSQL, where each waits for its statement) reach the oldest generation and die
there, so full collections came every second or two, and they were GET one event's p99 at 64
connections on PostgreSQL (43–81 ms against 11–14 on SQLite, 3 s wrk runs at 1 worker). The
managed processes freeze too: a view's or the notifier's pause delays every change's way to
the lists and the sockets."""

from __future__ import annotations

import gc


def freeze() -> None:
    """Moves everything alive now into the permanent generation, which collections skip:
    called once a process has imported and built what it keeps for its whole life, so a full
    collection walks only what was made since (6–10 ms instead of 55–75 in a loaded
    worker)."""
    gc.collect()
    gc.freeze()
