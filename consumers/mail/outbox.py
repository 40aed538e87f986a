"""The outbox view: a tracked follower of the log that keeps who is in each event and queues
one row per email to send, in the same transaction as its position. The mailer
(consumers.mail.delivery) reads the rows; nothing here sends anything."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain.events import Event, instance_of
from domain.recurrence import key
from domain.reminders import Reminder
from domain.storage import LIVE, Connection, Place
from projections.database import insert_rows

# The domain of an outbox row's key; each message's Message-ID header is at the configured domain
# instead (header_message_id).
KEY_DOMAIN = "alphabet-events"

# Every outbox row up to this log position is settled (sent or dropped); see Mailer.due.
MARK = "mail.settled"


def message_id(event_id: str, version: int, person_id: str, kind: str) -> str:
    return f"<{event_id}.{version}.{person_id}.{kind}@{KEY_DOMAIN}>"


class MailSql:
    """The outbox view's statements, made once from its tables' names at its place."""

    def __init__(self, place: Place) -> None:
        events, outbox = place("mail_events"), place("mail_outbox")
        self.tables = (events, outbox)
        self.create = [
            f"""CREATE TABLE IF NOT EXISTS {events} (
                event_id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                participants TEXT NOT NULL
            )""",
            f"""CREATE TABLE IF NOT EXISTS {outbox} (
                message_id TEXT PRIMARY KEY,
                event_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                person_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                changes TEXT NOT NULL,
                position BIGINT NOT NULL
            )""",
        ]
        self.indexes = {f"{outbox}_position": f"{outbox} (position)",
                        f"{outbox}_person": f"{outbox} (person_id)"}
        self.remember = (f"INSERT INTO {events} VALUES (?, ?, ?) ON CONFLICT(event_id) DO UPDATE "
                         "SET version = excluded.version, participants = excluded.participants")
        self.event = f"SELECT version, participants FROM {events} WHERE event_id = ?"
        self.forget = f"DELETE FROM {events} WHERE event_id = ?"
        self.queue = (f"INSERT INTO {outbox} (message_id, event_id, version, person_id, kind, "
                      "changes, position) VALUES {rows} ON CONFLICT DO NOTHING")
        # Through Kafka a fact can be handled after later ones (each partition goes at its own
        # pace), queuing rows behind the mailer's settled mark: the mark is pulled back so they
        # are seen. The update always matches the mark's row, so it waits for a mailer moving
        # the mark (Mailer._mark) and then sees where it moved. A rebuild's rows are not the
        # mailer's until the swap, which keeps the live mark.
        self.pull_mark = None if place.rebuild else (
            "UPDATE tracking SET position = CASE WHEN position >= ? THEN ? "
            "ELSE position END WHERE view = ?")


class MailQueue:
    """The mail consumer's bookkeeping: who is in each event (to know whom an update removed)
    and one outbox row per email to send."""

    name = "mail"

    def __init__(self, place: Place = LIVE) -> None:
        self.place = place
        self.sql = MailSql(place)
        self.tables: Sequence[str] = self.sql.tables

    def at(self, place: Place) -> MailQueue:
        return MailQueue(place)

    def schema(self) -> list[str]:
        return self.sql.create

    def indexes(self) -> dict[str, str]:
        return self.sql.indexes

    def apply(self, conn: Connection, position: int, fact: Any) -> None:
        match fact:
            case Event.Created():
                self._remember(conn, str(fact.originator_id), 1, fact.participants)
                self._queue(conn, position, fact.originator_id, 1, fact.participants,
                            "created", {})
            case Event.Updated():
                event_id = str(fact.originator_id)
                before = self._participants(conn, event_id)
                after = fact.changes.get("participants", before)
                removed = [p for p in before if p not in after]
                self._remember(conn, event_id, fact.originator_version, after)
                self._queue(conn, position, event_id, fact.originator_version,
                            [*after, *removed], "updated", fact.changes)
            case Event.Deleted():
                event_id = str(fact.originator_id)
                self._queue(conn, position, event_id, fact.originator_version,
                            self._participants(conn, event_id), "deleted", {})
                conn.execute(self.sql.forget, (event_id,))
            case Event.OccurrenceChanged() | Event.OccurrenceCancelled():
                # news of one occurrence, its key in the kind ("updated.20270329T070000Z")
                event_id = str(fact.originator_id)
                news = "updated" if isinstance(fact, Event.OccurrenceChanged) else "deleted"
                series = self._participants(conn, event_id)
                self._remember(conn, event_id, fact.originator_version, series)
                people = [*series, *getattr(fact, "changes", {}).get("participants", [])]
                self._queue(conn, position, event_id, fact.originator_version, people,
                            f"{news}.{instance_of(fact)}", getattr(fact, "changes", {}))
            case Reminder.Due():
                row = conn.execute(self.sql.event, (fact.event_id,)).fetchone()
                if row is not None:  # None: the event was deleted after the reminder fell due
                    of = "" if fact.original_start is None else f".{key(fact.original_start)}"
                    self._queue(conn, position, fact.event_id, row["version"],
                                json.loads(row["participants"]), f"reminder{of}", {})
            case _:
                pass

    def _participants(self, conn: Connection, event_id: str) -> list[str]:
        row = conn.execute(self.sql.event, (event_id,)).fetchone()
        return list(json.loads(row["participants"])) if row else []

    def _remember(self, conn: Connection, event_id: str, version: int,
                  participants: list[str]) -> None:
        conn.execute(self.sql.remember, (event_id, version, json.dumps(participants)))

    def _queue(self, conn: Connection, position: int, event_id: Any, version: int,
               people: list[str], kind: str, changes: dict[str, Any]) -> None:
        detail = json.dumps(sorted(changes))
        insert_rows(conn, self.sql.queue, [
            (message_id(str(event_id), version, person, kind), str(event_id), version, person,
             kind, detail, position) for person in dict.fromkeys(people)])
        if people and self.sql.pull_mark:
            conn.execute(self.sql.pull_mark, (position, position - 1, MARK))


@dataclass(frozen=True)
class Outgoing:
    """One row of the outbox, as the mailer reads it."""

    message_id: str
    event_id: str
    version: int
    person_id: str
    kind: str
    changed: list[str]
    attempts: int
