"""Word search in the events view, the one part of it whose SQL cannot be shared: SQLite has FTS5,
PostgreSQL has tsvector and GIN. Both match every word of a query, ignoring case, accents and
punctuation, so `tel aviv`, `Tel-Aviv`, `TEL AVIV` and `Tél Avív` all find "Tel Aviv Port"."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from domain.storage import LIVE, Place

if TYPE_CHECKING:
    from domain.storage import Connection

WORD = re.compile(r"[^\W_]+")
# Which view rows `v` a write indexes: one event's (by its id), or a loaded batch's (numbered
# from the batch's first seq); each takes one parameter.
BY_ID = "v.id = ?"
FROM_SEQ = "v.seq >= ?"
# PostgreSQL refuses a lexeme of 2 KiB or more, in a tsvector and a tsquery alike.
LEXEME_BYTES = 2047


def words(text: str) -> list[str]:
    """Runs of letters and digits: punctuation separates words, as FTS5's unicode61 tokenizer
    splits them."""
    return WORD.findall(text)


def fold(text: str) -> str:
    """Case and accents dropped (é → e, ß → ss), as `unicode61 remove_diacritics 2` does."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class Search(Protocol):
    """How the events view indexes an event's name and location and finds the rows matching
    words: `source` is the FROM clause of a page searched by words alone, with `match` its
    condition; `condition` narrows rows already joined from elsewhere (a participant's). Each
    takes the `query` as its one parameter, and names the live tables (the only ones read).
    The writing side is bound to a place (`at`) like the view it belongs to."""

    tables: Sequence[str]
    column: str
    # The view row's columns that `values` fills, in order.
    columns: Sequence[str]
    source: str
    match: str
    condition: str
    # Whether a page searched by words sorts the matches' keys alone, then reads its rows.
    sort_keys_first: bool

    def at(self, place: Place) -> Search: ...

    def schema(self) -> list[str]: ...

    def indexes(self) -> dict[str, str]: ...

    def values(self, name: str, location: str) -> dict[str, Any]: ...

    def added(self, conn: Connection, rows: str, value: Any) -> None: ...

    def changed(self, conn: Connection, seq: int, name: str, location: str) -> None: ...

    def removed(self, conn: Connection, seq: int) -> None: ...

    def query(self, location: str, name: str) -> str: ...


class Fts5Search:
    """SQLite: an FTS5 table beside the view, sharing its rowid with the view's seq."""

    column = ""
    columns: Sequence[str] = ()
    # CROSS JOIN: SQLite then reads the matches first and never reorders the join
    source = "events_search s CROSS JOIN events_view v ON v.seq = s.rowid"
    match = "events_search MATCH ?"
    condition = "v.seq IN (SELECT rowid FROM events_search WHERE events_search MATCH ?)"
    # Sorting whole rows of 200 matches took twice as long as sorting their keys.
    sort_keys_first = True

    def __init__(self, place: Place = LIVE) -> None:
        table, view = place("events_search"), place("events_view")
        self.tables: Sequence[str] = (table,)
        self.create = f"""CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5(
                name, location, tokenize = "unicode61 remove_diacritics 2"
            )"""
        # the view rows `v` a write names, copied inside the database
        self.add = {rows: f"INSERT INTO {table} (rowid, name, location) "
                          f"SELECT v.seq, v.name, v.location FROM {view} v WHERE {rows}"
                    for rows in (BY_ID, FROM_SEQ)}
        self.change = f"UPDATE {table} SET name = ?, location = ? WHERE rowid = ?"
        self.remove = f"DELETE FROM {table} WHERE rowid = ?"

    def at(self, place: Place) -> Fts5Search:
        return Fts5Search(place)

    def schema(self) -> list[str]:
        return [self.create]

    def indexes(self) -> dict[str, str]:
        return {}

    def values(self, name: str, location: str) -> dict[str, Any]:
        return {}

    def added(self, conn: Connection, rows: str, value: Any) -> None:
        """Indexes the view rows `rows` names (BY_ID or FROM_SEQ, for `value`)."""
        conn.execute(self.add[rows], (value,))

    def changed(self, conn: Connection, seq: int, name: str, location: str) -> None:
        conn.execute(self.change, (name, location, seq))

    def removed(self, conn: Connection, seq: int) -> None:
        conn.execute(self.remove, (seq,))

    def query(self, location: str, name: str) -> str:
        """Every word as a quoted token of its column; FTS5 folds them as it folded the rows."""
        return " AND ".join(
            f"{column} : (" + " ".join(f'"{w}"' for w in found) + ")"
            for column, found in (("location", words(location)), ("name", words(name)))
            if found
        )


class TsvectorSearch:
    """PostgreSQL: a tsvector column of the view row with a GIN index. The words are folded and
    split here, in Python, for the row and the query alike, so matching never depends on the
    database's locale, its text-search parser (which keeps `a.b` or `x-y` whole) or an
    extension; the name's words carry weight A and the location's weight B, so one index
    answers both `q` and `location`."""

    tables: Sequence[str] = ()
    column = "search tsvector NOT NULL"
    columns: Sequence[str] = ("search",)
    source = "events_view v"
    match = "v.search @@ ?::tsquery"
    condition = "v.search @@ ?::tsquery"
    # The planner would join the sorted keys back by reading the whole view.
    sort_keys_first = False

    def __init__(self, place: Place = LIVE) -> None:
        view = place("events_view")
        index = f"{view}_search"
        # An index made before `fastupdate` was turned off keeps its options through CREATE
        # INDEX IF NOT EXISTS: turned off there too (once; ALTER INDEX takes a lock).
        self.create = f"""DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM pg_class WHERE relname = '{index}'
                       AND relnamespace = current_schema()::regnamespace
                       AND NOT coalesce(reloptions @> '{{fastupdate=off}}', false)) THEN
                ALTER INDEX {index} SET (fastupdate = off);
            END IF;
        END $$"""
        # Without GIN's `fastupdate`: with it, every changed row's words wait in a pending
        # list (up to 4 MB) that each search then reads through, and that the write which
        # fills it merges in one long stall. A view changed by every PUT and searched as
        # often is better served by updating the index in place.
        self.index = {index: f"{view} USING GIN (search) WITH (fastupdate = off)"}

    def at(self, place: Place) -> TsvectorSearch:
        return TsvectorSearch(place)

    def schema(self) -> list[str]:
        return [self.create]

    def indexes(self) -> dict[str, str]:
        return self.index

    def values(self, name: str, location: str) -> dict[str, Any]:
        lexemes = [(w, "A") for w in lexemes_of(name)] + [(w, "B") for w in lexemes_of(location)]
        return {"search": " ".join(f"'{w}':{at}{weight}"
                                   for at, (w, weight) in enumerate(lexemes, start=1))}

    def added(self, conn: Connection, rows: str, value: Any) -> None:
        """Nothing beyond the row: its `search` column came with `values`."""

    def changed(self, conn: Connection, seq: int, name: str, location: str) -> None:
        """Nothing beyond the row: its `search` column came with `values`."""

    def removed(self, conn: Connection, seq: int) -> None:
        """Nothing beyond the row."""

    def query(self, location: str, name: str) -> str:
        terms = [f"'{w}':B" for w in lexemes_of(location)]
        terms += [f"'{w}':A" for w in lexemes_of(name)]
        return " & ".join(terms)


def lexemes_of(text: str) -> list[str]:
    """The folded words of a text, each cut to what PostgreSQL accepts as a lexeme: the same
    cut for rows and queries, so a longer query word (which no name or location of 200
    characters can hold) simply matches nothing, rather than failing the search."""
    return [w.encode()[:LEXEME_BYTES - 1].decode(errors="ignore") for w in words(fold(text))]
