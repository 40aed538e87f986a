"""Sessions: refresh-token families (rotation with reuse detection, RFC 9700 §4.14) and sign-in
failure counters, shared by every worker through the state database."""

from __future__ import annotations

import math
from dataclasses import dataclass

from projections.database import StateDatabase


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

    def failures_retry_after(self, key: str, limit: int, now: float) -> int:
        """Seconds until `key` may try again (0 while it is under `limit`)."""
        row = self.db.connection().execute(
            "SELECT window_ends FROM signin_failures WHERE key = ? AND count >= ? "
            "AND window_ends > ?",
            (key, limit, now),
        ).fetchone()
        return math.ceil(row["window_ends"] - now) if row else 0

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
