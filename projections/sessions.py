"""Sessions: refresh-token families (rotation with reuse detection, RFC 9700 §4.14) and sign-in
failure counters, shared by every worker through the state database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from projections.database import StateDatabase


@dataclass(frozen=True)
class Window:
    """A sign-in counter: how many failures, until when."""

    count: int
    ends: float


@dataclass(frozen=True)
class Rotation:
    """The outcome of presenting a refresh token."""

    ok: bool
    user_id: str | None = None
    family: str | None = None
    reused: bool = False


class Sessions:
    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    def add_refresh(self, jti: str, family: str, user_id: str, expires_at: float) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO refresh_tokens (jti, family, user_id, expires_at) VALUES (?, ?, ?, ?)",
                (jti, family, user_id, expires_at),
            )

    def rotate(self, jti: str, now: float) -> Rotation:
        """Spend a refresh token once. Presenting one already rotated means it was stolen or
        replayed: the whole family is revoked, the thief's copy and the owner's alike. Spending
        is one conditional UPDATE, so of two concurrent presentations exactly one finds the
        token still active, on either database."""
        with self.db.write() as conn:
            spent = conn.execute(
                "UPDATE refresh_tokens SET state = 'rotated' "
                "WHERE jti = ? AND state = 'active' AND expires_at > ? RETURNING family, user_id",
                (jti, now),
            ).fetchone()
            if spent is not None:
                return Rotation(ok=True, user_id=spent["user_id"], family=spent["family"])
            row = conn.execute(
                "SELECT family, state, expires_at FROM refresh_tokens WHERE jti = ?", (jti,)
            ).fetchone()
            if row is not None and row["state"] == "rotated" and row["expires_at"] > now:
                conn.execute(
                    "UPDATE refresh_tokens SET state = 'revoked' WHERE family = ?", (row["family"],)
                )
                return Rotation(ok=False, reused=True)
            return Rotation(ok=False)

    def revoke(self, jti: str) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE refresh_tokens SET state = 'revoked' WHERE jti = ?", (jti,))

    def revoke_all(self, user_id: str) -> None:
        """Every session of the account ends: no refresh token of it works any more."""
        with self.db.write() as conn:
            conn.execute("UPDATE refresh_tokens SET state = 'revoked' "
                         "WHERE user_id = ? AND state <> 'revoked'", (user_id,))

    def signin_counts(self, keys: Sequence[str], now: float) -> dict[str, Window]:
        """The counters among `keys` whose window is still open."""
        marks = ",".join("?" * len(keys))
        rows = self.db.connection().execute(
            f"SELECT key, count, window_ends FROM signin_failures WHERE key IN ({marks}) "
            "AND window_ends > ?", (*keys, now),
        ).fetchall()
        return {row["key"]: Window(int(row["count"]), float(row["window_ends"])) for row in rows}

    def remember(self, key: str, until: float) -> None:
        """A mark that lasts until `until` (kept beside the counters, with a count of 0)."""
        with self.db.write() as conn:
            conn.execute("INSERT INTO signin_failures VALUES (?, 0, ?) ON CONFLICT(key) "
                         "DO UPDATE SET window_ends = excluded.window_ends", (key, until))

    def record_failure(self, keys: list[str], window: float, now: float) -> None:
        with self.db.write() as conn:
            conn.executemany(
                "INSERT INTO signin_failures AS f VALUES (?, 1, ?) ON CONFLICT(key) DO UPDATE SET "
                "count = CASE WHEN f.window_ends > ? THEN f.count + 1 ELSE 1 END, "
                "window_ends = CASE WHEN f.window_ends > ? THEN f.window_ends ELSE ? END",
                [(k, now + window, now, now, now + window) for k in keys],
            )

    def clear_failures(self, key: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM signin_failures WHERE key = ?", (key,))
