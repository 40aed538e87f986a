"""Group commit: one writer thread per process saves whatever commands have queued in a single
transaction, so N concurrent writers cost one fsync instead of N (SQLite with synchronous=FULL
manages a few thousand single-row transactions a second; batches reach tens of thousands).

It is the application's executor (domain.writing.Executor) in the server's workers, chosen
when alphabet.wiring builds the application: `EventsApplication(env, writer=GroupCommit)`.
Its thread starts with it and stops when the application is closed.

Workers of one store race, and the loser's batch is decided and saved again, whole, on fresh
state; a writer that lost a race decides and saves its batches in turns for a while after
(`turns`: on PostgreSQL projections.postgres.WriterTurns; SQLite's workers go on without).
Turns cost two round trips a batch, which a writer that never races (one worker, or writers
of different owners) would pay on every write: 1 ms of a single client's 9–10 ms POST."""

from __future__ import annotations

import copy
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from domain.errors import ConflictError
from domain.writing import MAX_ATTEMPTS, Aggregates, Command, Save, Written

log = logging.getLogger(__name__)

Item = tuple[Command, "Future[Written]"]

# How long after a lost race a writer takes turns: while turns are taken nothing races, so
# under lasting contention a writer loses one race this often and takes turns again.
CONTENDED_SECONDS = 60.0


class Turns(Protocol):
    """Held around each batch's deciding and saving: one writer at a time across processes."""

    def __call__(self) -> AbstractContextManager[object]: ...

    def close(self) -> None: ...


class Anytime:
    """No turns: the writer is alone (or races, and redoes what it lost)."""

    def __call__(self) -> AbstractContextManager[object]:
        return nullcontext()

    def close(self) -> None:
        """Nothing is held."""


class GroupCommit:
    def __init__(self, aggregates: Aggregates, save: Save, max_batch: int = 256,
                 on_batch: Callable[[int], None] = lambda size: None,
                 turns: Turns | None = None,
                 contended_seconds: float | None = CONTENDED_SECONDS) -> None:
        """`contended_seconds`: how long after a lost race turns are taken (None: always)."""
        self.aggregates = aggregates
        self.save = save
        self.max_batch = max_batch
        self.on_batch = on_batch  # told each saved batch's size (for /metrics)
        self.turns = turns or Anytime()  # used by the thread alone
        self.contended_seconds = contended_seconds
        self.lost_race_at = -float("inf")  # monotonic time of the last lost race
        self.queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)

    def __call__(self, command: Command) -> Written:
        """Called from a request's worker thread; blocks until the batch holding it commits."""
        done: Future[Written] = Future()
        self.queue.put((command, done))
        return done.result()

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                self.turns.close()
                return
            items = [first]
            try:
                self._commit(items)
            except Exception as exc:  # never leave a request waiting forever
                log.exception("group commit failed")
                for _, done in items:
                    if not done.done():
                        done.set_exception(exc)

    def _commit(self, items: list[Item]) -> None:
        """Take the commands queued (once this writer's turn has come: those queued while it
        waited join the batch), decide and save them. When another process saved first to one
        of the batch's aggregates (two workers' creations by one owner both add to the owner's
        Ownership), decide the whole batch again on fresh state and save it again, in one
        transaction. Settling each command on its own instead made a lost race cost one
        transaction per command, each racing the other process's next batch in turn: with two
        workers on PostgreSQL, creations by one owner cost twice the CPU they cost with one."""
        pending = items
        for attempt in range(MAX_ATTEMPTS):
            with self._turn():
                if not attempt:
                    self._take_queued(items)
                batch = Batch(self.aggregates)
                decided = [(command, done, *taken) for command, done in pending
                           if (taken := self._decide(batch, command, done)) is not None]
                if not decided:
                    return
                try:
                    recordings = self.save(*batch.changed.values())
                except IntegrityError:
                    self.lost_race_at = time.monotonic()
                    pending = [(command, done) for command, done, *_ in decided]
                    continue
            self.on_batch(len(decided))
            positions = {(r.domain_event.originator_id, r.domain_event.originator_version):
                         r.notification.id for r in recordings}
            for _, done, aggregates, changes, own in decided:
                position = max((positions[fact] for fact in own), default=None)
                done.set_result(Written(aggregates, changes, position))
            return
        for _, done in pending:
            done.set_exception(ConflictError("too many concurrent changes; try again"))

    def _turn(self) -> AbstractContextManager[object]:
        if self.contended_seconds is None or (
                time.monotonic() - self.lost_race_at < self.contended_seconds):
            return self.turns()
        return nullcontext()

    def _take_queued(self, items: list[Item]) -> None:
        while len(items) < self.max_batch:
            try:
                more = self.queue.get_nowait()
            except queue.Empty:
                return
            if more is None:  # closing: the batch is saved first
                self.queue.put(None)
                return
            items.append(more)

    @staticmethod
    def _decide(batch: Batch, command: Command, done: Future[Written],
                ) -> tuple[list[Any], list[dict[str, Any]], set[Fact]] | None:
        """A command's get and act on the batch; a refused command (a domain error) is
        answered at once, alone, and leaves the batch as it was."""
        try:
            aggregates = command.get(batch)
            changes = command.act(aggregates) or []
        except Exception as exc:
            done.set_exception(exc)
            return None
        return aggregates, changes, batch.keep(aggregates)


# A fact by its aggregate's id and the version it brings the aggregate to.
Fact = tuple[UUID, int]


class Batch:
    """What a batch's commands have decided so far: the newest state of each aggregate they
    read, and which facts each recorded. A command reads an aggregate an earlier command of
    the batch changed from here — a copy, so a command refused halfway leaves it as it was —
    and records on top, so commands on one aggregate (renames of one event, creations by
    one owner, which all add to the owner's Ownership) are applied in turn and saved in the
    same transaction."""

    def __init__(self, store: Aggregates) -> None:
        self.store = store
        self.changed: dict[UUID, Any] = {}
        self.recorded: set[Fact] = set()

    def get(self, aggregate_id: UUID, *, version: int | None = None) -> Any:
        if version is None and aggregate_id in self.changed:
            aggregate = self.changed[aggregate_id]
            # Facts are immutable: the copy shares those already pending (copying them
            # again for each command made a batch of n creations by one owner cost n²).
            shared = {id(fact): fact for fact in aggregate.pending_events}
            return copy.deepcopy(aggregate, shared)
        return self.store.get(aggregate_id, version=version)

    def keep(self, aggregates: list[Any]) -> set[Fact]:
        """Take a command's aggregates as the batch's newest; the facts it recorded (those
        pending that an earlier command did not), whose last position is its answer's."""
        own = {(aggregate.id, fact.originator_version) for aggregate in aggregates
               for fact in aggregate.pending_events} - self.recorded
        self.recorded |= own
        self.changed.update((aggregate.id, aggregate) for aggregate in aggregates)
        return own
