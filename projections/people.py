"""Personal data: usernames, email addresses and password hashes of users, and the addresses
of outside invitees. Kept out of the immutable facts so that erasing a row erases the person."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from domain.errors import ConflictError, InvalidFieldsError
from domain.storage import Connection
from projections.database import AsyncReads, StateDatabase

ACCOUNT_SQL = ("SELECT id, username, email, password_hash, created_at, updated_at FROM users "
               "WHERE {key} = ?")
# A counter (the counters table), raised in the same transaction as any change to what
# names() answers for a known id (a rename, an erasure) or to what signs a request in (a new
# password): readers that cache names or accounts compare it.
NAMES_CHANGED = "people.names"
# The counter as a scalar expression, for a reader's own statement to read beside its rows
# (one round trip instead of two on PostgreSQL); 0 until the first rename or erasure.
NAMES_COUNT = f"COALESCE((SELECT value FROM counters WHERE name = '{NAMES_CHANGED}'), 0)"
# A database made before the counters table kept the count in tracking: moved over once (the
# readers' caches compare the count, so it must not start again from 0), idempotently.
MOVE_NAMES_COUNT = [
    "INSERT INTO counters SELECT view, position FROM tracking "
    f"WHERE view = '{NAMES_CHANGED}' ON CONFLICT DO NOTHING",
    f"DELETE FROM tracking WHERE view = '{NAMES_CHANGED}'",
]
CACHED_NAMES = 100_000
# Users and invitees in one statement (one round trip), each id given once per table.
NAMES_SQL = ("SELECT id, username AS name, 'user' AS kind FROM users WHERE id IN ({marks}) "
             "UNION ALL SELECT id, email AS name, 'invitee' AS kind FROM invitees "
             "WHERE id IN ({marks})")
ADDRESSES_SQL = ("SELECT id, email FROM users WHERE id IN ({marks}) "
                 "UNION ALL SELECT id, email FROM invitees WHERE id IN ({marks})")


def names_queries(person_ids: Iterable[str],
                  sql: str = NAMES_SQL) -> Iterator[tuple[str, list[str]]]:
    """How person ids map back to what a client sees, for sync and async readers alike:
    (sql, parameters) in chunks that stay under SQLite's parameter limit; each row has the
    id, the name and its kind ("user" or "invitee"), or with ADDRESSES_SQL the address."""
    ids = list(dict.fromkeys(person_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        yield sql.format(marks=marks), chunk + chunk


@dataclass(frozen=True)
class Account:
    id: str
    username: str
    email: str
    password_hash: str
    created_at: str
    updated_at: str


class People:
    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    def add_user(
        self, user_id: str, username: str, email: str, password_hash: str, stamp: str
    ) -> None:
        with unique_names(self.db), self.db.write() as conn:
            conn.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (user_id, username, key(username), email, key(email), password_hash, stamp, stamp),
            )

    def check_free(self, username: str, email: str) -> None:
        """Refuse a taken name before any fact is recorded for the new account."""
        row = self.db.connection().execute(
            "SELECT username_key = ? AS u, email_key = ? AS e FROM users "
            "WHERE username_key = ? OR email_key = ?",
            (key(username), key(email), key(username), key(email)),
        ).fetchall()
        taken = {}
        if any(r["u"] for r in row):
            taken["username"] = "is already taken"
        if any(r["e"] for r in row):
            taken["email"] = "is already registered"
        if taken:
            raise ConflictError(_taken_message(taken), taken)

    def by_id(self, user_id: str) -> Account | None:
        return self._one(ACCOUNT_SQL.format(key="id"), user_id)

    def by_username(self, username: str) -> Account | None:
        return self._one(ACCOUNT_SQL.format(key="username_key"), key(username))

    def update(self, user_id: str, changes: dict[str, str], stamp: str) -> None:
        """`changes` maps username/email/password_hash to new values."""
        columns = dict(changes)
        for name in ("username", "email"):
            if name in changes:
                columns[f"{name}_key"] = key(changes[name])
        columns["updated_at"] = stamp
        assignments = ", ".join(f"{name} = ?" for name in columns)
        with unique_names(self.db), self.db.write() as conn:
            conn.execute(
                f"UPDATE users SET {assignments} WHERE id = ?", (*columns.values(), user_id)
            )
            if changes.keys() & {"username", "password_hash"}:
                names_changed(conn)

    def addresses(self, person_ids: Iterable[str]) -> dict[str, str]:
        """Where to email each person (a user or an invitee), in one statement for a whole
        delivery pass (one per recipient was a third of the statements a write cost on
        PostgreSQL); the erased are absent."""
        conn = self.db.connection()
        return {r["id"]: r["email"] for sql, parameters in names_queries(person_ids, ADDRESSES_SQL)
                for r in conn.execute(sql, parameters)}

    def erase(self, user_id: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
            names_changed(conn)
        self.db.scrub()

    def resolve(self, entries: Iterable[str]) -> list[str]:
        """Turn usernames and invitee addresses into person ids. An unknown username is an
        error that names it; an address becomes an invitee id (the same id every time)."""
        entries = list(entries)
        usernames = [e for e in entries if "@" not in e]
        found = self._ids_by_key("users", "username_key", usernames)
        unknown = [name for name in usernames if key(name) not in found]
        if unknown:
            raise InvalidFieldsError(
                {"participants": "unknown usernames: " + ", ".join(dict.fromkeys(unknown))}
            )
        addresses = [e for e in entries if "@" in e]
        invitees = self._invitee_ids(addresses) if addresses else {}
        return [found[key(e)] if "@" not in e else invitees[key(e)] for e in entries]

    def names(self, person_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """id → ("user", username) or ("invitee", address); erased people are simply absent."""
        conn = self.db.connection()
        found: dict[str, tuple[str, str]] = {}
        for sql, parameters in names_queries(person_ids):
            found.update((r["id"], (r["kind"], r["name"])) for r in conn.execute(sql, parameters))
        return found

    def _ids_by_key(self, table: str, column: str, values: list[str]) -> dict[str, str]:
        if not values:
            return {}
        keys = list({key(v) for v in values})
        marks = ",".join("?" * len(keys))
        rows = self.db.connection().execute(
            f"SELECT id, {column} AS k FROM {table} WHERE {column} IN ({marks})", keys
        )
        return {r["k"]: r["id"] for r in rows}

    def _invitee_ids(self, addresses: list[str]) -> dict[str, str]:
        with self.db.write() as conn:
            conn.executemany(
                "INSERT INTO invitees VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(str(uuid.uuid4()), a, key(a)) for a in addresses],
            )
        return self._ids_by_key("invitees", "email_key", addresses)

    def _one(self, sql: str, value: str) -> Account | None:
        row = self.db.connection().execute(sql, (value,)).fetchone()
        return None if row is None else account_of(row)


class PeopleReader:
    """People as the event loop asks for them, with the same SQL as People: on PostgreSQL
    through the worker's async connection pool, on SQLite inline (projections.database
    InlineReads)."""

    def __init__(self, reads: AsyncReads) -> None:
        self.reads = reads
        # id → (kind, name), or None for an erased person; valid while NAMES_CHANGED holds
        # at _names_seen. Names are read for every event shown, and change rarely.
        self._names: dict[str, tuple[str, str] | None] = {}
        # Accounts by id for signing requests in, or None for an erased one: what they show
        # (id, username) changes only with the same count.
        self._accounts: dict[str, Account | None] = {}
        self._names_seen = -1

    async def by_id(self, user_id: str) -> Account | None:
        return await self._one(ACCOUNT_SQL.format(key="id"), user_id)

    async def by_username(self, username: str) -> Account | None:
        return await self._one(ACCOUNT_SQL.format(key="username_key"), key(username))

    async def ids(self, usernames: Iterable[str]) -> dict[str, str]:
        """The ids of the accounts with these usernames, in one statement, by each name's
        key(); names no account has are left out."""
        wanted = list({key(name) for name in usernames})
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = await self.reads.fetchall(
            f"SELECT id, username_key FROM users WHERE username_key IN ({marks})", wanted)
        return {row["username_key"]: row["id"] for row in rows}

    async def names_count(self, seen: int | None = None) -> int:
        """How many times names have changed (NAMES_CHANGED); a change empties the cache.
        Anything cached from names() is valid while this count holds. `seen` is the count as
        the caller's own statement read it beside its rows (NAMES_COUNT), saving a read."""
        if seen is None:
            rows = await self.reads.shared(f"SELECT {NAMES_COUNT} AS seen")
            seen = int(rows[0]["seen"])
        if seen != self._names_seen or len(self._names) + len(self._accounts) > CACHED_NAMES:
            self._names = {}
            self._accounts = {}
            self._names_seen = seen
        return seen

    async def signed_in(self, user_id: str,
                        seen: int | None = None) -> tuple[Account | None, int]:
        """The account a token names, or None once erased, with the names count it holds
        for: the count is read on every request (or handed over as `seen`, read beside the
        request's rows), and the account's row only when the count has moved (a rename or an
        erasure moves it)."""
        seen = await self.names_count(seen)
        if user_id in self._accounts:
            return self._accounts[user_id], seen
        account = await self.by_id(user_id)
        if self._names_seen == seen:
            self._accounts[user_id] = account
        return account, seen

    async def names(self, person_ids: Iterable[str],
                    seen: int | None = None) -> dict[str, tuple[str, str]]:
        """As People.names, from a cache that one read of the change counter validates (or
        `seen`, the count the caller read before asking). Names are fetched after the counter
        is read and kept only if no other call has since seen another count, so the cache
        never holds a name older than its count."""
        seen = await self.names_count(seen)
        known = self._names
        ids = set(person_ids)
        fetched: dict[str, tuple[str, str] | None] = dict.fromkeys(
            person for person in ids if person not in known)
        for sql, parameters in names_queries(fetched):
            rows = await self.reads.fetchall(sql, parameters)
            fetched.update((r["id"], (r["kind"], r["name"])) for r in rows)
        if self._names_seen == seen:
            known.update(fetched)
        return {person: name for person in ids
                if (name := known.get(person, fetched.get(person))) is not None}

    async def _one(self, sql: str, value: str) -> Account | None:
        rows = await self.reads.fetchall(sql, (value,))
        return account_of(rows[0]) if rows else None


def names_changed(conn: Connection) -> None:
    conn.execute("INSERT INTO counters VALUES (?, 1) ON CONFLICT(name) DO UPDATE "
                 "SET value = counters.value + 1", (NAMES_CHANGED,))


def account_of(row: Any) -> Account:
    return Account(row["id"], row["username"], row["email"], row["password_hash"],
                   row["created_at"], row["updated_at"])


@contextmanager
def unique_names(db: StateDatabase) -> Iterator[None]:
    """Turns a unique-index violation (a race the pre-check lost) into the same 409."""
    try:
        yield
    except db.unique_violation as exc:
        field = "email" if "email_key" in str(exc) else "username"
        taken = {field: "is already taken"}
        raise ConflictError(_taken_message(taken), taken) from None


def _taken_message(taken: dict[str, str]) -> str:
    return " and ".join(f"{name} {problem}" for name, problem in taken.items())


def key(value: str) -> str:
    """Usernames and addresses are unique case-insensitively."""
    return value.casefold()
