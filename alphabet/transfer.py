"""Moving a whole service between stores (SQLite to PostgreSQL when one machine is outgrown, and
back): `alphabet export` writes the event store's facts as JSON Lines in log order, then the
rows the facts cannot give back, and `alphabet import` loads such a file into an empty store,
after which every view is rebuilt from the facts (`alphabet replay`).

What the facts cannot give back: the personal data, kept out of the immutable facts so that
erasing a row erases the person (projections.people) — without it no imported account could
sign in — and which emails were already delivered (the mail outbox is rebuilt from the facts,
so without it the new store would send every email again). Sessions are not carried: people
sign in again. An account whose deletion is recorded in the facts is never exported, even when
its erasure had not finished.

A file is its lines, then a last line holding the SHA-256 of every byte before it and how many
lines of each kind it holds: an import checks the whole file before it writes anything, so a
damaged or truncated file changes nothing.

Over ~300 lines on purpose: the format is written (export), checked (verify) and read (load)
in one module, so the writer and the checks that guard the reader cannot drift apart."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from tqdm import tqdm

from domain.application import EventsApplication
from projections.database import StateDatabase

FORMAT = "alphabet-events-export"
VERSION = 1
PAGE = 1000  # facts read, and written, per transaction
DELETED_ACCOUNT = ":User.Deleted"  # the topic of an account's deletion ends so


@dataclass(frozen=True)
class Table:
    """Rows the facts cannot give back, carried column by column (names fixed here: a file
    never names a column of its own)."""

    name: str
    columns: tuple[str, ...]
    # the account each row belongs to, so a deleted account's rows are left out
    owner: str | None = None


TABLES = (
    Table("users", ("id", "username", "username_key", "email", "email_key", "password_hash",
                    "created_at", "updated_at"), owner="id"),
    Table("invitees", ("id", "email", "email_key")),
    # the mailer's record of what it delivered, made when it first starts
    Table("mail_delivery", ("message_id", "attempts", "next_attempt", "done_at", "outcome")),
)
BY_NAME = {table.name: table for table in TABLES}
FACT_KEYS = {"kind", "id", "originator_id", "originator_version", "topic", "state"}


class TransferError(Exception):
    """Why a file cannot be imported, or a store not imported into: one line for the operator."""


@dataclass(frozen=True)
class Summary:
    facts: int
    rows: dict[str, int]


def bar(description: str, total: int | None, unit: str) -> tqdm[Any]:
    return tqdm(desc=description, total=total, unit=unit, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# export


class Lines:
    """Writes JSON lines and hashes every byte written."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def write(self, entry: dict[str, Any]) -> None:
        data = json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        self.digest.update(data)
        self.handle.write(data)


def export(app: EventsApplication, db: StateDatabase, path: Path) -> Summary:
    """Written beside `path` and renamed into place when whole, so a failed export leaves no
    file that looks like one. The facts up to the log's head when it starts; stop the server
    first for a copy with nothing written after it."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb") as handle:
            lines = Lines(handle)
            lines.write({"kind": "header", "format": FORMAT, "version": VERSION,
                         "exported_at": datetime.now(UTC).isoformat()})
            facts, deleted = _export_facts(app, lines)
            rows = {table.name: _export_rows(db, table, deleted, lines) for table in TABLES}
            handle.write(json.dumps({"kind": "end", "facts": facts, "rows": rows,
                                     "sha256": lines.digest.hexdigest()}).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return Summary(facts, rows)


def _export_facts(app: EventsApplication, lines: Lines) -> tuple[int, set[str]]:
    recorder = app.recorder
    head = recorder.max_notification_id() or 0
    done = 0
    at = 0
    deleted: set[str] = set()
    with bar("export facts", head, "fact") as progress:
        while at < head:
            page = recorder.select_notifications(start=at, limit=PAGE, stop=head,
                                                 inclusive_of_start=False)
            if not page:
                break
            for notification in page:
                originator = str(notification.originator_id)
                lines.write({"kind": "fact", "id": notification.id, "originator_id": originator,
                             "originator_version": notification.originator_version,
                             "topic": notification.topic,
                             "state": base64.b64encode(notification.state).decode()})
                if notification.topic.endswith(DELETED_ACCOUNT):
                    deleted.add(originator)
            done += len(page)
            progress.update(page[-1].id - at)
            at = page[-1].id
    return done, deleted


def _export_rows(db: StateDatabase, table: Table, deleted: set[str], lines: Lines) -> int:
    if not _exists(db, table.name):
        return 0
    count = 0
    rows = db.connection().execute(
        f"SELECT {', '.join(table.columns)} FROM {table.name} ORDER BY {table.columns[0]}")
    for row in tqdm(rows, desc=f"export {table.name}", unit="row", file=sys.stderr):
        if table.owner is not None and row[table.owner] in deleted:
            continue
        lines.write({"kind": "row", "table": table.name,
                     "row": {column: row[column] for column in table.columns}})
        count += 1
    return count


def _exists(db: StateDatabase, table: str) -> bool:
    return bool(db.connection().execute(db.dialect.has_table, (table,)).fetchone()["found"])


# ---------------------------------------------------------------------------------------------
# import


def check_empty(app: EventsApplication, db: StateDatabase) -> None:
    """Refuses a store holding anything an import would mix with: facts, or accounts,
    invitees or delivered mail (views are rebuilt anyway)."""
    facts = app.recorder.max_notification_id() or 0
    held = {table.name: db.connection().execute(
        f"SELECT COUNT(*) AS n FROM {table.name}").fetchone()["n"]
        for table in TABLES if _exists(db, table.name)}
    if facts or any(held.values()):
        what = ", ".join([*([f"{facts} facts"] if facts else []),
                          *(f"{n} rows of {name}" for name, n in held.items() if n)])
        raise TransferError(f"the store is not empty ({what}); import only into a new store")


def verify(path: Path) -> Summary:
    """The whole file, checked before anything is written: its checksum, its counts, and
    every line's shape."""
    digest = hashlib.sha256()
    counts: Counter[str] = Counter()
    last_fact = 0
    previous: bytes | None = None
    header = False
    size = path.stat().st_size
    with path.open("rb") as handle, bar("verify", size, "B") as progress:
        progress.unit_scale = True
        for number, line in enumerate(handle, start=1):
            progress.update(len(line))
            if previous is not None:
                digest.update(previous)
                entry = _parse(previous, number - 1)
                if number == 2:
                    _check_header(entry)
                    header = True
                else:
                    kind = _check_entry(entry, number - 1, last_fact)
                    counts[kind] += 1
                    if kind == "fact":
                        last_fact = entry["id"]
            previous = line
    if previous is None or not header:
        raise TransferError(f"{path} is not an {FORMAT} file (no header line)")
    end = _parse(previous, None)
    if end.get("kind") != "end" or not isinstance(end.get("sha256"), str):
        raise TransferError(f"{path} has no checksum line at its end: it is not a whole export")
    if end["sha256"] != digest.hexdigest():
        raise TransferError(f"{path} fails its checksum (SHA-256): it has been changed or "
                            "damaged since it was exported")
    rows = {table.name: counts[table.name] for table in TABLES}
    if end.get("facts") != counts["fact"] or end.get("rows") != rows:
        raise TransferError(f"{path} holds other counts than its last line says")
    return Summary(counts["fact"], rows)


def _parse(line: bytes, number: int | None) -> dict[str, Any]:
    where = "its last line" if number is None else f"line {number}"
    try:
        entry = json.loads(line)
    except ValueError:
        raise TransferError(f"{where} is not JSON") from None
    if not isinstance(entry, dict):
        raise TransferError(f"{where} is not a JSON object")
    return entry


def _check_header(entry: dict[str, Any]) -> None:
    if entry.get("kind") != "header" or entry.get("format") != FORMAT:
        raise TransferError(f"this is not an {FORMAT} file (no header line)")
    if entry.get("version") != VERSION:
        raise TransferError(f"this file is format version {entry.get('version')!r}; this "
                            f"version of alphabet reads version {VERSION}")


def _check_entry(entry: dict[str, Any], number: int, last_fact: int) -> str:
    """Returns what the line holds: "fact" or a table's name."""
    if entry.get("kind") == "fact":
        ok = (set(entry) == FACT_KEYS and isinstance(entry["id"], int)
              and entry["id"] > last_fact and isinstance(entry["originator_version"], int)
              and isinstance(entry["topic"], str) and isinstance(entry["state"], str)
              and _uuid(entry["originator_id"]) and _base64(entry["state"]))
        if not ok:
            raise TransferError(f"line {number} is not a fact in log order")
        return "fact"
    table = BY_NAME.get(entry.get("table", ""))
    if entry.get("kind") != "row" or table is None or not isinstance(entry.get("row"), dict) \
            or set(entry["row"]) != set(table.columns):
        raise TransferError(f"line {number} is neither a fact nor a row of "
                            f"{', '.join(BY_NAME)}")
    return table.name


def _uuid(text: Any) -> bool:
    try:
        UUID(text)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def _base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except binascii.Error:
        return False
    return True


def load(app: EventsApplication, db: StateDatabase, path: Path, expected: Summary) -> None:
    """Writes a verified file, a page per transaction: the rows first, then the facts, so a
    mailer already following the new store finds each recipient's address and what was
    delivered before the facts that queue their emails."""
    from consumers.mail.delivery import DELIVERY_SCHEMA

    with db.write() as conn:  # as the mailer makes it, for the deliveries to go into
        conn.execute(DELIVERY_SCHEMA)
    rows: list[Sequence[Any]] = []
    table = TABLES[0]
    with bar("import rows", sum(expected.rows.values()), "row") as progress:
        for entry in _entries(path, "row"):
            if entry["table"] != table.name or len(rows) == PAGE:
                _insert_rows(db, table, rows, progress)
                table = BY_NAME[entry["table"]]
            rows.append([entry["row"][column] for column in table.columns])
        _insert_rows(db, table, rows, progress)
    facts: list[StoredEvent] = []
    with bar("import facts", expected.facts, "fact") as progress:
        for entry in _entries(path, "fact"):
            facts.append(StoredEvent(UUID(entry["originator_id"]), entry["originator_version"],
                                     entry["topic"], base64.b64decode(entry["state"])))
            if len(facts) == PAGE:
                _insert_facts(app, facts, progress)
        _insert_facts(app, facts, progress)


def _entries(path: Path, kind: str) -> Iterator[dict[str, Any]]:
    """The lines of a kind between the header and the checksum line."""
    with path.open("rb") as handle:
        lines = iter(handle)
        next(lines)
        previous = next(lines)
        for line in lines:
            entry = json.loads(previous)
            if entry["kind"] == kind:
                yield entry
            previous = line


def _insert_facts(app: EventsApplication, page: list[StoredEvent], progress: tqdm[Any]) -> None:
    if page:
        app.recorder.insert_events(page)
        progress.update(len(page))
        page.clear()


def _insert_rows(db: StateDatabase, table: Table, page: list[Sequence[Any]],
                 progress: tqdm[Any]) -> None:
    if page:
        with db.write() as conn:
            conn.executemany(f"INSERT INTO {table.name} ({', '.join(table.columns)}) "
                             f"VALUES ({', '.join('?' * len(table.columns))})", page)
        progress.update(len(page))
        page.clear()
