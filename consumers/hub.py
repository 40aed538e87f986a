"""The WebSocket hub of one worker: who is subscribed to what, each with a bounded queue, so a
slow client is dropped rather than stalling everyone else."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]


@dataclass(eq=False)
class Subscriber:
    """One socket: all events (event_id None) or one event's messages."""

    event_id: str | None
    queue: asyncio.Queue[Message]
    dropped: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    def __init__(self, max_queue: int = 1000) -> None:
        self.max_queue = max_queue
        self.subscribers: set[Subscriber] = set()
        # Every message up to here has been handed out; later ones will reach new subscribers.
        self.position = 0

    def subscribe(self, event_id: str | None) -> Subscriber:
        subscriber = Subscriber(event_id, asyncio.Queue(self.max_queue))
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def advance(self, position: int) -> None:
        self.position = max(self.position, position)

    def publish(self, message: Message) -> None:
        self.advance(message["position"])
        for subscriber in list(self.subscribers):
            if subscriber.event_id not in (None, message["event_id"]):
                continue
            try:
                subscriber.queue.put_nowait(message)
            except asyncio.QueueFull:
                self.unsubscribe(subscriber)
                subscriber.dropped.set()
