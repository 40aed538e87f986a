"""The outbox view: a tracked follower of the log that keeps who is in each event and queues
one row per email to send, in the same transaction as its position. The mailer
(consumers.mail.delivery) reads the rows; nothing here sends anything."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain.events import Event
from domain.reminders import Reminder
from domain.storage import Connection

# The domain of an outbox row's key; each message's Message-ID header is at the configured domain
# instead (header_message_id).
KEY_DOMAIN = "alphabet-events"

# Every outbox row up to this log position is settled (sent or dropped); see Mailer.due.
MARK = "mail.settled"


def message_id(event_id: str, version: int, person_id: str, kind: str) -> str:
    return f"<{event_id}.{version}.{person_id}.{kind}@{KEY_DOMAIN}>"


class MailQueue:
    """The mail consumer's bookkeeping: who is in each event (to know whom an update removed)
    and one outbox row per email to send."""

    name = "mail"
    tables: Sequence[str] = ("mail_events", "mail_outbox")

    def schema(self, suffix: str = "") -> list[str]:
        return [
            f"""CREATE TABLE IF NOT EXISTS mail_events{suffix} (
                event_id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                participants TEXT NOT NULL
            )""",
            f"""CREATE TABLE IF NOT EXISTS mail_outbox{suffix} (
                message_id TEXT PRIMARY KEY,
                event_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                person_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                changes TEXT NOT NULL,
                position BIGINT NOT NULL
            )""",
        ]

    def indexes(self, suffix: str = "") -> dict[str, str]:
        return {
            f"mail_outbox{suffix}_position": f"mail_outbox{suffix} (position)",
            f"mail_outbox{suffix}_person": f"mail_outbox{suffix} (person_id)",
        }

    def apply(self, conn: Connection, position: int, fact: Any, suffix: str = "") -> None:
        match fact:
            case Event.Created():
                self._remember(conn, str(fact.originator_id), 1, fact.participants, suffix)
                self._queue(conn, position, fact.originator_id, 1, fact.participants,
                            "created", {}, suffix)
            case Event.Updated():
                event_id = str(fact.originator_id)
                before = self._participants(conn, event_id, suffix)
                after = fact.changes.get("participants", before)
                removed = [p for p in before if p not in after]
                self._remember(conn, event_id, fact.originator_version, after, suffix)
                self._queue(conn, position, event_id, fact.originator_version,
                            [*after, *removed], "updated", fact.changes, suffix)
            case Event.Deleted():
                event_id = str(fact.originator_id)
                self._queue(conn, position, event_id, fact.originator_version,
                            self._participants(conn, event_id, suffix), "deleted", {}, suffix)
                conn.execute(f"DELETE FROM mail_events{suffix} WHERE event_id = ?", (event_id,))
            case Reminder.Due():
                row = conn.execute(
                    f"SELECT version, participants FROM mail_events{suffix} WHERE event_id = ?",
                    (fact.event_id,),
                ).fetchone()
                if row is not None:
                    self._queue(conn, position, fact.event_id, row["version"],
                                json.loads(row["participants"]), "reminder", {}, suffix)
            case _:
                pass

    def _participants(self, conn: Connection, event_id: str, suffix: str) -> list[str]:
        row = conn.execute(
            f"SELECT participants FROM mail_events{suffix} WHERE event_id = ?", (event_id,)
        ).fetchone()
        return list(json.loads(row["participants"])) if row else []

    def _remember(self, conn: Connection, event_id: str, version: int,
                  participants: list[str], suffix: str) -> None:
        conn.execute(
            f"INSERT INTO mail_events{suffix} VALUES (?, ?, ?) ON CONFLICT(event_id) DO UPDATE "
            "SET version = excluded.version, participants = excluded.participants",
            (event_id, version, json.dumps(participants)),
        )

    def _queue(self, conn: Connection, position: int, event_id: Any, version: int,
               people: list[str], kind: str, changes: dict[str, Any], suffix: str) -> None:
        detail = json.dumps(sorted(changes))
        conn.executemany(
            f"INSERT INTO mail_outbox{suffix} (message_id, event_id, version, "
            "person_id, kind, changes, position) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [(message_id(str(event_id), version, person, kind), str(event_id), version, person,
              kind, detail, position) for person in dict.fromkeys(people)],
        )
        if people and not suffix:
            # Through Kafka a fact can be handled after later ones (each partition goes at its
            # own pace), queuing rows behind the mailer's settled mark: pull the mark back so
            # they are seen. The update always matches the mark's row, so it waits for a
            # mailer moving the mark (Mailer._mark) and then sees where it moved.
            conn.execute("UPDATE tracking SET position = CASE WHEN position >= ? THEN ? "
                         "ELSE position END WHERE view = ?", (position, position - 1, MARK))


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
