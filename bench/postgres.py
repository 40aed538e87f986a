"""PostgreSQL for the benchmark: a database of its own (a random name on the server it is given,
dropped afterwards, so runs never collide with each other or with tests), and what the product
keeps there that the report needs. psycopg is imported only when PostgreSQL is asked for."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"


def with_database(server_url: str, name: str) -> str:
    """The server's URL naming `name` as its database (any query string is kept)."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A fresh, empty database's URL; dropped on the way out, with whatever is still connected
    to it (a server the run could not stop) cut off."""
    import psycopg

    name = f"alphabet_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def outbox_size(database_url: str) -> int | None:
    """Emails queued so far (rows of the mail view's outbox), or None if that table has changed
    shape, lives in a schema of its own (`?schema=`, which libpq would not understand) or the
    server has no connection to spare: a figure of the report, not worth the run."""
    import psycopg

    parts = urlsplit(database_url)
    if parts.query:
        return None
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM mail_outbox").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    except psycopg.OperationalError:  # a server shared with others, out of connections
        return None
    return int(row[0]) if row else None
