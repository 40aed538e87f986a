"""PostgreSQL's side of the SQL the state database shares with SQLite: the `?` placeholders
as psycopg's `%s`, and the dialect's differences (identity numbering, search, joins, the
renames of a replay's swap)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from domain.storage import Connection
from projections.database import Numbering, Tables
from projections.search import Search, TsvectorSearch

TOKENS = re.compile(r"'[^']*'|\?|%")


@lru_cache(maxsize=1024)
def placeholders(statement: str) -> str:
    """The shared SQL's `?` placeholders as psycopg's `%s`; a literal `%` doubled. A `?` inside
    a quoted literal stays as it is.

    Kept although each view makes its statements once per dialect: what differs between the
    dialects there is DDL, numbering and search, not the placeholders, and most statements are
    not a view's (personal data, sessions, the readers' pages, the mailer, reminders' scheduler,
    tracking) and are written once for both backends, as the storage port promises
    (domain.storage). psycopg knows only `%s`; sqlite3 would need `?` rewritten the other way.
    Each distinct text is translated once (the cache), so a statement pays a dict lookup."""

    def swap(found: re.Match[str]) -> str:
        token = found.group()
        if token == "?":
            return "%s"
        return token.replace("%", "%%")

    return TOKENS.sub(swap, statement)


class IdentityNumbering:
    """PostgreSQL's identity column: numbers drawn from a sequence, never given twice. The
    sequence is told how far the loader's numbers went, so the follower's next row follows."""

    overriding = " OVERRIDING SYSTEM VALUE"

    def __init__(self) -> None:
        self.last = 0

    def next(self, top: Callable[[], int]) -> int:
        self.last += 1
        return self.last

    def drawn(self, conn: Connection, table: str) -> None:
        conn.execute("SELECT setval(pg_get_serial_sequence(?, 'seq'), ?)", (table, self.last))


class PostgresDialect:
    name = "postgresql"
    serial_key = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    without_rowid = ""
    # PostgreSQL has no ON for a CROSS JOIN, and plans the order from statistics itself
    ordered_join = "JOIN"
    # An IN (or a join) is planned as a join, which the planner may hash over the whole
    # table when the subquery's rows are more than a few: the ~250 events of a calendar feed
    # among 7,000 in the view cost ~3 ms of the server's CPU that way. ARRAY() runs the
    # subquery first (an InitPlan), and `= ANY` of an array goes by the column's index.
    among = "= ANY(ARRAY({rows}))"
    search: Search = TsvectorSearch()
    participants = "json_array_elements_text(v.participants::json) AS j(value)"
    has_table = ("SELECT COUNT(*) AS found FROM pg_tables WHERE tablename = ? "
                 "AND schemaname = current_schema()")
    has_column = ("SELECT COUNT(*) AS found FROM information_schema.columns WHERE table_name = ? "
                  "AND column_name = ? AND table_schema = current_schema()")
    renames_indexes = True

    def numbering(self) -> Numbering:
        return IdentityNumbering()

    def rename(self, conn: Connection, rebuilt: Tables, live: Tables) -> None:
        """Tables, their indexes and their identity sequences (each named after its table)
        all take the live names, so nothing is rebuilt inside the swap and no rebuild name
        is left behind."""
        for table, name in zip(rebuilt.tables, live.tables, strict=True):
            conn.execute(f"ALTER TABLE {table} RENAME TO {name}")
            owned = conn.execute(
                "SELECT c.relname AS name, c.relkind AS kind FROM pg_class c "
                "WHERE c.relnamespace = current_schema()::regnamespace "
                "AND c.relkind IN ('i', 'S') AND starts_with(c.relname, ?)",
                (table,),
            ).fetchall()
            for row in owned:
                kind = "INDEX" if row["kind"] == "i" else "SEQUENCE"
                renamed = name + row["name"][len(table):]
                conn.execute(f"ALTER {kind} {row['name']} RENAME TO {renamed}")


POSTGRES = PostgresDialect()
