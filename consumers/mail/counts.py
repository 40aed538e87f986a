"""What /metrics tells of mail, read from the tables mail owns: the outbox (its view) and the
deliveries the mailer records beside it (created when the mailer first starts, so it may not
exist yet)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from consumers.mail.outbox import MARK

# A read from the event loop: a statement and its parameters to rows read by column name
# (AsyncReads.fetchall).
Fetch = Callable[[str, Sequence[Any]], Awaitable[Sequence[Any]]]

# Every row past the outbox's settled mark without an outcome is still to send.
OUTCOMES = ("SELECT COALESCE(SUM(CASE WHEN outcome = 'sent' THEN 1 ELSE 0 END), 0) AS sent, "
            "COALESCE(SUM(CASE WHEN outcome LIKE 'dropped%' THEN 1 ELSE 0 END), 0) AS dropped, "
            "COALESCE(SUM(attempts), 0) AS failed FROM mail_delivery")
PENDING = ("SELECT COUNT(*) AS pending FROM mail_outbox o {join} WHERE o.position > "
           "COALESCE((SELECT position FROM tracking WHERE view = ?), 0) {undone}")
NONE_YET = {"sent": 0, "failed": 0, "dropped": 0}


@dataclass(frozen=True)
class MailCounts:
    sent: int
    failed: int  # delivery attempts that failed (each is retried with backoff)
    dropped: int  # not sent because the recipient or the event was erased
    pending: int


async def mail_counts(fetch: Fetch, has_table: str) -> MailCounts:
    """`has_table` is the dialect's statement asking whether a table exists."""
    delivered = int((await fetch(has_table, ("mail_delivery",)))[0]["found"])
    counts = (await fetch(OUTCOMES, ()))[0] if delivered else NONE_YET
    pending = await fetch(PENDING.format(
        join="LEFT JOIN mail_delivery d ON d.message_id = o.message_id" if delivered else "",
        undone="AND d.done_at IS NULL" if delivered else ""), (MARK,))
    return MailCounts(int(counts["sent"]), int(counts["failed"]), int(counts["dropped"]),
                      int(pending[0]["pending"]))
