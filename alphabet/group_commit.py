"""Group commit: one writer thread per process saves whatever commands have queued in a single
transaction, so N concurrent writers cost one fsync instead of N (SQLite with synchronous=FULL
manages a few thousand single-row transactions a second; batches reach tens of thousands)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from eventsourcing.persistence import IntegrityError

from domain.application import Command, EventsApplication, Written

log = logging.getLogger(__name__)

Item = tuple[Command, "Future[Written]"]


class GroupCommit:
    def __init__(self, app: EventsApplication, max_batch: int = 256,
                 on_batch: Callable[[int], None] = lambda size: None) -> None:
        self.app = app
        self.max_batch = max_batch
        self.on_batch = on_batch  # told each saved batch's size (for /metrics)
        self.queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="group-commit", daemon=True)

    def start(self) -> None:
        self.app.execute = self.submit
        self.thread.start()

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)
        self.app.execute = self.app.execute_now

    def submit(self, command: Command) -> Written:
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
        batch: list[tuple[Command, Future[Written], list[Any], list[dict[str, Any]]]] = []
        touched: set[Any] = set()
        for command, done in items:
            try:
                aggregates = command.load()
                changes = command.act(aggregates) or []
            except Exception as exc:  # a refused command (a domain error) answers only itself
                done.set_exception(exc)
                continue
            ids = {aggregate.id for aggregate in aggregates}
            if ids & touched:
                # It read state an earlier command of this batch is changing: redo it after.
                self.queue.put((command, done))
                continue
            touched |= ids
            batch.append((command, done, aggregates, changes))
        if not batch:
            return
        try:
            recordings = self.app.save(*(a for _, _, aggregates, _ in batch for a in aggregates))
        except IntegrityError:
            # Another process won a race on some aggregate: settle each command on its own.
            for command, done, _, _ in batch:
                self._settle_alone(command, done)
            return
        self.on_batch(len(batch))
        last: dict[Any, int] = {}
        for recording in recordings:
            last[recording.domain_event.originator_id] = recording.notification.id
        for _, done, aggregates, changes in batch:
            position = max((last[a.id] for a in aggregates if a.id in last), default=None)
            done.set_result(Written(aggregates, changes, position))

    def _settle_alone(self, command: Command, done: Future[Written]) -> None:
        try:
            done.set_result(self.app.execute_now(command))
        except Exception as exc:
            done.set_exception(exc)
