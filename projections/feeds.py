"""Calendar feeds: each account's subscription secret, kept only as its digest beside the
account (so erasing the account erases it: the table's rows go with the user's, ON DELETE
CASCADE), and the question a calendar app's poll asks of the events view: which events, at
which versions, the feed's owner has now, and which of theirs were cancelled lately."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from projections.database import AsyncReads, Dialect, Row, StateDatabase
from projections.events_queries import REACHED, VIEW_COLUMNS


def new_secret() -> str:
    """256 random bits, URL-safe (43 characters): the whole of a feed URL's protection."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What is stored of a secret: its SHA-256. A fast unsalted hash is right here, unlike for
    passwords: the secret is 256 random bits, so no guess list or precomputed table can reach
    it and no slow hash would make a search of 2^256 any harder; and being deterministic,
    the digest is the lookup key itself (one indexed equality per poll, where a salted hash
    would need the row found first). Whoever reads the table learns nothing that opens a
    feed: the digest cannot be turned back into the URL's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


class CalendarFeeds:
    """An account's feed secret: issued (replacing any earlier one) and revoked, written
    through the state database from a thread."""

    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    def issue(self, user_id: str) -> str:
        """A new secret for the account, returned once and stored only as its digest; the
        earlier one stops working in the same statement."""
        secret = new_secret()
        with self.db.write() as conn:
            conn.execute("INSERT INTO calendar_feeds VALUES (?, ?) ON CONFLICT(user_id) "
                         "DO UPDATE SET secret_hash = excluded.secret_hash",
                         (user_id, digest(secret)))
        return secret

    def revoke(self, user_id: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM calendar_feeds WHERE user_id = ?", (user_id,))


# Feeds whose keys a worker keeps (FeedReader), each a few hundred bytes and its recent
# cancellations: more than the worker's feed texts (api.feeds.KEPT_BYTES) are likely to hold.
KEPT_FEEDS = 100_000


def feed_tag(live: Sequence[tuple[str, int]], cancelled: Sequence[tuple[str, int, str]]) -> str:
    """A feed's ETag: a digest of its events' ids and versions and whether each is cancelled,
    which decide its text (a feed names nobody)."""
    listed = sorted([f"{event_id} {version}" for event_id, version in live]
                    + [f"{event_id} {version} cancelled" for event_id, version, _ in cancelled])
    return '"' + hashlib.sha256("\n".join(listed).encode()).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class FeedKeys:
    """What decides a feed's text: its ETag (feed_tag of its live events' (id, version) and
    its recent cancellations'), and those cancellations (id, version of the deletion, when)."""

    user_id: str
    tag: str
    cancelled: list[tuple[str, int, str]]


@dataclass(frozen=True)
class Known:
    """A feed's keys as read when the events view had applied the log up to `reached`; they
    stand while it still has (each fact the view applies moves its tracking row in the same
    transaction as the rows it changes) and no cancellation of theirs has aged out of the
    feed (`oldest`, its time, or None without any)."""

    reached: int
    oldest: str | None
    keys: FeedKeys


class FeedReader:
    """A feed's events from the event loop: the secret's account by its digest's unique index
    (a lookup: on PostgreSQL the polls waiting at once share one statement), with how far
    the events view has got; then, unless the view is where it was when this worker last
    read this account's keys, one statement whose every part goes by an index: the account's
    events (events_view_owner), those it takes part in (event_people's key, each then looked
    up by the view's id index: Dialect.among, since PostgreSQL hashed the whole view to join
    a feed's events, in proportion to the view rather than to the feed) and its cancellations
    (events_cancelled's key, from a given time). The account comes as a value rather than a
    subquery so that PostgreSQL plans with it: for an unknown value it must guess, and where
    a few accounts own most events (as in bench/'s load) it guessed a scan of the view.

    Calendar apps poll a feed over and over, and the keys statement costs PostgreSQL ~4 µs
    of CPU an event (a feed of 250, ~1 ms), the lookup tens: a poll that finds the view
    unmoved answers from the keys kept (the lookup's snapshot holds the position; keys read
    after it are at least as new, and the next poll that finds it unmoved proves them
    current). Any fact applied moves the view, so under a steady stream of writes most polls
    read their keys again, as every poll did before."""

    def __init__(self, reads: AsyncReads, dialect: Dialect, kept: int = KEPT_FEEDS) -> None:
        self.reads = reads
        self.kept = kept
        self._known: dict[str, Known] = {}  # by account, the least recently read first
        self.owner_sql = (f"SELECT secret_hash, user_id, {REACHED} AS reached "
                          "FROM calendar_feeds WHERE secret_hash IN ({keys})")
        owned = "FROM events_view v WHERE v.owner_id = ?"
        taking_part = "FROM events_view v WHERE v.id " + dialect.among.format(
            rows="SELECT p.event_id FROM event_people p WHERE p.person_id = ?")
        # cancelled_at is NULL for a live event
        self.keys_sql = (
            f"SELECT v.id, v.version, NULL AS cancelled_at {owned} "
            f"UNION SELECT v.id, v.version, NULL {taking_part} "
            "UNION SELECT c.event_id, c.version, c.cancelled_at FROM events_cancelled c "
            "WHERE c.person_id = ? AND c.cancelled_at >= ?")
        self.rows_sql = f"SELECT {VIEW_COLUMNS} {owned} UNION SELECT {VIEW_COLUMNS} {taking_part}"

    async def keys(self, secret: str, cancelled_since: str) -> FeedKeys | None:
        """None when no account has this secret (never had, or it was replaced or revoked)."""
        found = await self.reads.lookup(self.owner_sql, "secret_hash", digest(secret))
        if found is None:
            return None
        user_id, reached = str(found["user_id"]), int(found["reached"])
        known = self._known.get(user_id)
        if known is not None and known.reached == reached and (
                known.oldest is None or known.oldest >= cancelled_since):
            return known.keys
        rows = await self.reads.fetchall(self.keys_sql,
                                         (user_id, user_id, user_id, cancelled_since))
        cancelled = [(row["id"], int(row["version"]), row["cancelled_at"]) for row in rows
                     if row["cancelled_at"] is not None]
        keys = FeedKeys(user_id, feed_tag([(row["id"], int(row["version"])) for row in rows
                                           if row["cancelled_at"] is None], cancelled),
                        cancelled)
        self._known.pop(user_id, None)
        while self._known and len(self._known) >= self.kept:
            del self._known[next(iter(self._known))]
        self._known[user_id] = Known(reached, min((at for _, _, at in cancelled), default=None),
                                     keys)
        return keys

    async def rows(self, user_id: str) -> list[Row]:
        """The account's live events' whole rows, as they are now."""
        return await self.reads.fetchall(self.rows_sql, (user_id, user_id))
