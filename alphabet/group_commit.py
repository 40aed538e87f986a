"""Group commit: one writer thread per process saves whatever commands have queued in a single
transaction, so N concurrent writers cost one fsync instead of N (SQLite with synchronous=FULL
manages a few thousand single-row transactions a second; batches reach tens of thousands).

It is the application's executor (domain.writing.Executor) in the server's workers, chosen
when alphabet.wiring builds the application: `EventsApplication(env, writer=GroupCommit)`.
Its thread starts with it and stops when the application is closed."""

from __future__ import annotations

import copy
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from domain.writing import Aggregates, Command, Save, WriteNow, Written

log = logging.getLogger(__name__)

Item = tuple[Command, "Future[Written]"]


class GroupCommit:
    def __init__(self, aggregates: Aggregates, save: Save, max_batch: int = 256,
                 on_batch: Callable[[int], None] = lambda size: None) -> None:
        self.aggregates = aggregates
        self.save = save
        # A command of a batch that lost a race to another process is settled on its own.
        self.alone = WriteNow(aggregates, save)
        self.max_batch = max_batch
        self.on_batch = on_batch  # told each saved batch's size (for /metrics)
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
                return
            items = [first]
            while len(items) < self.max_batch:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.queue.put(None)
                    break
                items.append(more)
            try:
                self._commit(items)
            except Exception as exc:  # never leave a request waiting forever
                log.exception("group commit failed")
                for _, done in items:
                    if not done.done():
                        done.set_exception(exc)

    def _commit(self, items: list[Item]) -> None:
        batch = Batch(self.aggregates)
        decided: list[tuple[Command, Future[Written], list[Any], list[dict[str, Any]],
                            set[Fact]]] = []
        for command, done in items:
            try:
                aggregates = command.get(batch)
                changes = command.act(aggregates) or []
            except Exception as exc:  # a refused command (a domain error) answers only itself
                done.set_exception(exc)
                continue
            decided.append((command, done, aggregates, changes, batch.keep(aggregates)))
        if not decided:
            return
        try:
            recordings = self.save(*batch.changed.values())
        except IntegrityError:
            # Another process won a race on some aggregate: settle each command on its own.
            for command, done, *_ in decided:
                self._settle_alone(command, done)
            return
        self.on_batch(len(decided))
        positions = {(r.domain_event.originator_id, r.domain_event.originator_version):
                     r.notification.id for r in recordings}
        for _, done, aggregates, changes, own in decided:
            position = max((positions[fact] for fact in own), default=None)
            done.set_result(Written(aggregates, changes, position))

    def _settle_alone(self, command: Command, done: Future[Written]) -> None:
        try:
            done.set_result(self.alone(command))
        except Exception as exc:
            done.set_exception(exc)


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
