"""Following the notification log: each view applies a batch of facts and records the new
position in the same transaction, so a crash can neither skip a fact nor apply one twice."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from eventsourcing.persistence import ApplicationRecorder, Mapper

from domain.storage import Connection, Handler, Place
from projections.database import StateDatabase
from projections.faults import Backoff, FactFailed, Faults

log = logging.getLogger(__name__)

Fact = Any  # a domain event decoded from the notification log


class View(Handler, Protocol):
    """A read model: a handler of facts (domain.storage.Handler) and the tables it owns, at the
    place it was built for: live, or (`at(REBUILD)`) beside the live ones for a replay."""

    place: Place
    # its tables' names at its place
    tables: Sequence[str]

    def at(self, place: Place) -> View: ...

    def schema(self) -> list[str]: ...

    def indexes(self) -> dict[str, str]: ...


@runtime_checkable
class Maintained(Protocol):
    """A view with work that time brings rather than a fact (the events view extends series'
    materialised occurrences as time passes): `maintain(conn, now)` does one transaction's
    share of what is due at `now` and says whether more is."""

    def maintain(self, conn: Connection, now: datetime) -> bool: ...


class Leases(Protocol):
    """Whether this process may run a role now (a view's follower, the mailer, ...)."""

    def holds(self, role: str) -> bool: ...


class Alone:
    """The embedded default: one serving process tree per data dir, so every role is ours."""

    def holds(self, role: str) -> bool:
        return True


def statements(view: View) -> list[str]:
    """The DDL of a view's tables and indexes, idempotent."""
    return [*view.schema(), *index_statements(view)]


def index_statements(view: View) -> list[str]:
    """The DDL of a view's indexes alone, idempotent (made after a migration's new columns,
    which some of them index)."""
    return [f"CREATE INDEX IF NOT EXISTS {name} ON {definition}"
            for name, definition in view.indexes().items()]


def create(conn: Connection, view: View) -> None:
    """Create a view's tables and indexes (inside the caller's transaction)."""
    for statement in statements(view):
        conn.execute(statement)


def tracked(view: View) -> str:
    """The view's row in the tracking table, at its place (a rebuild keeps its own)."""
    return view.place(view.name)


class Log:
    """The store's notification log, read in bulk (the library's own log pages hold only 10).
    A follower's log keeps its last read (`keep_last`): the views it brings up after a
    wake-up each read the same new facts, and decoding them once saves every view after the
    first its read (on PostgreSQL a round trip each) and its decoding. Only for readers that
    go on to the log's head, as a follower does: a read served from it holds no fact saved
    since."""

    def __init__(self, recorder: ApplicationRecorder, mapper: Mapper[Any],
                 keep_last: bool = False) -> None:
        self.recorder = recorder
        self.mapper = mapper
        self.keep_last = keep_last
        # (after, limit, facts): the last read, replaced whole, so threads sharing the log
        # never see half of one
        self._last: tuple[int, int, list[tuple[int, Fact]]] = (0, 0, [])

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    def read(self, after: int, limit: int) -> list[tuple[int, Fact]]:
        """Up to `limit` facts past `after`, from the last read where it holds them: where
        that read was short it held every fact then visible, and the follower reads the rest
        from the store on its next turn."""
        start, asked, kept = self._last
        if kept and start <= after < kept[-1][0]:
            found = [item for item in kept if item[0] > after][:limit]
            if len(found) == limit or len(kept) < asked:
                return found
        notifications = self.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        facts = []
        for n in notifications:
            try:
                facts.append((n.id, self.mapper.to_domain_event(n)))
            except Exception as exc:  # a stored fact this code cannot decode
                raise FactFailed(n.id, exc) from exc
        if self.keep_last:
            self._last = (after, limit, facts)
        return facts


def position(conn: Connection, view: str) -> int:
    row = conn.execute("SELECT position FROM tracking WHERE view = ?", (view,)).fetchone()
    return int(row["position"]) if row else 0


def positions(conn: Connection, views: Sequence[View]) -> dict[str, int]:
    """Each view's position by its name, in one read (0 for a view that has none yet)."""
    names = [tracked(view) for view in views]
    found = {r["view"]: int(r["position"]) for r in conn.execute(
        f"SELECT view, position FROM tracking WHERE view IN ({','.join('?' * len(names))})",
        names)} if names else {}
    return {view.name: found.get(tracked(view), 0) for view in views}


def claim(conn: Connection, view: str) -> int:
    """The view's position, its tracking row locked until the transaction ends: whoever else
    catches up the same view waits here and then reads the position this one leaves. (SQLite's
    BEGIN IMMEDIATE has locked the whole file already; PostgreSQL locks the row.)"""
    row = conn.execute(
        "INSERT INTO tracking VALUES (?, 0) ON CONFLICT(view) DO UPDATE "
        "SET position = tracking.position RETURNING position",
        (view,),
    ).fetchone()
    return int(row["position"])


def claim_all(conn: Connection, views: Sequence[View]) -> dict[str, int]:
    """As `claim`, for several views in one statement (rows locked in name order, so two
    followers claiming overlapping views never wait on each other in a cycle)."""
    names = sorted(tracked(view) for view in views)
    rows = conn.execute(
        f"INSERT INTO tracking VALUES {', '.join(['(?, 0)'] * len(names))} ON CONFLICT(view) "
        "DO UPDATE SET position = tracking.position RETURNING view, position", names)
    found = {r["view"]: int(r["position"]) for r in rows}
    return {view.name: found[tracked(view)] for view in views}


def set_position(conn: Connection, view: str, at: int) -> None:
    set_positions(conn, [(view, at)])


def set_positions(conn: Connection, moved: Sequence[tuple[str, int]]) -> None:
    """Each tracking row's new position, all in one statement."""
    conn.execute(f"INSERT INTO tracking VALUES {', '.join(['(?, ?)'] * len(moved))} "
                 "ON CONFLICT(view) DO UPDATE SET position = excluded.position",
                 [value for row in moved for value in row])


def apply(conn: Connection, view: View, facts: Sequence[tuple[int, Fact]]) -> None:
    for pos, fact in facts:
        try:
            view.apply(conn, pos, fact)
        except Exception as exc:  # the whole batch rolls back; it is tried again whole
            raise FactFailed(pos, exc) from exc


def catch_up_batch(db: StateDatabase, log_: Log, view: View, batch: int) -> tuple[int, int]:
    """Apply the next batch of facts to one view: how many were applied, and the view's
    position after them. The position is claimed inside the write transaction, so two
    followers of one view never apply a fact twice."""
    tracking = tracked(view)
    with db.write() as conn:
        at = claim(conn, tracking)
        facts = log_.read(at, batch)
        apply(conn, view, facts)
        if facts:
            at = facts[-1][0]
            set_position(conn, tracking, at)
    return len(facts), at


def catch_up_together(db: StateDatabase, log_: Log, views: Sequence[View], batch: int,
                      ) -> tuple[int, dict[str, int]]:
    """As `catch_up_batch`, for several views in one transaction: their positions claimed
    and recorded in one statement each and one commit for all, where a transaction a view
    cost PostgreSQL its own BEGIN, claim, position and COMMIT (a WAL flush) for every
    creation. Each view applies the facts past its own position."""
    with db.write() as conn:
        at = claim_all(conn, views)
        facts = log_.read(min(at.values()), batch)
        applied = 0
        for view in views:
            new = [(pos, fact) for pos, fact in facts if pos > at[view.name]]
            apply(conn, view, new)
            applied += len(new)
        moved = [(tracked(view), facts[-1][0]) for view in views
                 if facts and facts[-1][0] > at[view.name]]
        if moved:
            set_positions(conn, moved)
    return applied, {name: max(at[name], facts[-1][0]) if facts else at[name]
                     for name in at}


# How often the follower does a Maintained view's clock-driven work (and once at its start).
MAINTAIN_SECONDS = 3600.0


class Follower:
    """Keeps views current: catches up in large batches, then waits for the next fact. Whatever
    saves a fact wakes it (`wake`: a writer in this process; on SQLite the data dir's
    doorbell, on PostgreSQL LISTEN), and it looks unasked only every `poll_seconds`, a safety
    net. When instances share the state database, it follows only the views whose lease it
    holds. Each view is supervised on its own: one that cannot apply a fact is retried with
    backoff and its fault recorded, while the others go on. A Maintained view's work is done
    once caught up, at the start and then every `maintain_seconds`."""

    def __init__(
        self,
        db: StateDatabase,
        log_: Log,
        views: Sequence[View],
        *,
        batch: int = 1000,
        poll_seconds: float = 0.01,
        leases: Leases | None = None,
        faults: Faults | None = None,
        advanced: Callable[[], None] = lambda: None,
        maintain_seconds: float = MAINTAIN_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.log = log_
        self.views = views
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.leases = leases or Alone()
        self.faults = faults
        self.advanced = advanced  # told after facts were applied (the mailer waits on it)
        self.maintain_seconds = maintain_seconds
        self.clock = clock
        self._maintained: dict[str, float] = {}  # a view's last maintenance (monotonic)
        self._woken = threading.Event()
        self._stopped = threading.Event()

    def wake(self) -> None:
        self._woken.set()

    def stop(self) -> None:
        self._stopped.set()
        self._woken.set()

    def named(self, name: str) -> list[View]:
        """The view of that name, for a run_once of it alone (a request that needs one view
        current must not wait on, or fail with, another)."""
        return [view for view in self.views if view.name == name]

    def run_once(self, views: Sequence[View] | None = None) -> int:
        """Bring the views (all by default) up to the log's head; cheap reads first, so an
        idle look never takes the write lock."""
        views = self.views if views is None else views
        head = self.log.head()
        at = positions(self.db.connection(), views)
        applied = self._together(views, at, head)
        return applied + sum(self._catch_up(view, at[view.name], head) for view in views)

    def _catch_up(self, view: View, at: int, head: int) -> int:
        """Batches until the view's position reaches `head` (another follower may have
        applied some meanwhile, which a batch's claim finds)."""
        applied = 0
        while at < head:
            count, at = catch_up_batch(self.db, self.log, view, self.batch)
            applied += count
        return applied

    def _together(self, views: Sequence[View], at: dict[str, int], head: int) -> int:
        """Batches for all the views behind at once until each reaches `head`, keeping `at`
        current: where a batch fails (a view cannot apply a fact) the views go on alone from
        where the last batch left them, so each failure is its own view's."""
        behind = [view for view in views if at[view.name] < head]
        applied = 0
        try:
            while len(behind) > 1 and min(at[view.name] for view in behind) < head:
                count, reached = catch_up_together(self.db, self.log, behind, self.batch)
                at.update(reached)
                applied += count
                if not count:  # nothing past the views' positions: the head read was ahead
                    break
        except Exception:
            log.debug("views caught up together failed; each goes on alone", exc_info=True)
        return applied

    def run(self) -> None:
        backoffs = {view.name: Backoff(view.name, self.faults) for view in self.views}
        while not self._stopped.is_set():
            # Cleared before reading, so a wake during the catch-up is not lost.
            self._woken.clear()
            due = [view for view in self.views
                   if backoffs[view.name].due_in() <= 0 and self.leases.holds(view.name)]
            applied, head, at = 0, 0, {}
            try:  # where the log and the views stand, read once for all of them
                head = self.log.head()
                at = positions(self.db.connection(), due)
            except Exception as exc:  # the store is out of reach: every view waits
                for view in due:
                    backoffs[view.name].failed(exc)
                due = []
            applied += self._together(due, at, head)
            for view in due:
                backoff = backoffs[view.name]
                try:
                    applied += self._catch_up(view, at[view.name], head)
                    self.maintain(view)
                except Exception as exc:  # this view waits its backoff; the others go on
                    backoff.failed(exc)
                else:
                    backoff.succeeded()
            if applied:
                self.advanced()
            self._woken.wait(min([self.poll_seconds, *(b.due_in() for b in backoffs.values()
                                                       if b.attempts)]))

    def maintain(self, view: View) -> None:
        """A Maintained view's work, if due: each share in a transaction that holds the view's
        tracking row, as a batch of facts does, so it never interleaves with them."""
        last = self._maintained.get(view.name)
        if not isinstance(view, Maintained) or (
                last is not None and time.monotonic() - last < self.maintain_seconds):
            return
        more = True
        while more:
            with self.db.write() as conn:
                claim(conn, tracked(view))
                more = view.maintain(conn, self.clock())
        self._maintained[view.name] = time.monotonic()
