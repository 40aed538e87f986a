"""The WebSocket hub of one worker: who is subscribed to what, each with a bounded queue, so a
slow client is dropped rather than stalling everyone else."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]


# The kinds of message that are about an account rather than an event (consumers.messages):
# never sent to a client, they tell the account's own sockets to check it is still signed in.
ACCOUNT_NOTICES = ("account.deleted", "account.password_changed")


@dataclass(eq=False)
class Subscriber:
    """One socket of one account (`user_id`): all events (event_id None) or one event's
    messages. `notices` holds the account notices heard since the socket last looked."""

    event_id: str | None
    queue: asyncio.Queue[Message]
    user_id: str | None = None
    dropped: asyncio.Event = field(default_factory=asyncio.Event)
    noticed: asyncio.Event = field(default_factory=asyncio.Event)
    notices: list[str] = field(default_factory=list)


class Hub:
    def __init__(self, max_queue: int = 1000) -> None:
        self.max_queue = max_queue
        self.subscribers: set[Subscriber] = set()
        # Every message up to here has been handed out; later ones will reach new subscribers.
        self.position = 0

    def subscribe(self, event_id: str | None, user_id: str | None = None) -> Subscriber:
        subscriber = Subscriber(event_id, asyncio.Queue(self.max_queue), user_id)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def advance(self, position: int) -> None:
        self.position = max(self.position, position)

    def publish(self, message: Message) -> None:
        self.advance(message["position"])
        if message["type"] in ACCOUNT_NOTICES:
            self._notify(message)
            return
        for subscriber in list(self.subscribers):
            if subscriber.event_id not in (None, message["event_id"]):
                continue
            try:
                subscriber.queue.put_nowait(message)
            except asyncio.QueueFull:
                self.unsubscribe(subscriber)
                subscriber.dropped.set()

    def _notify(self, notice: Message) -> None:
        for subscriber in self.subscribers:
            if subscriber.user_id == notice["user_id"]:
                subscriber.notices.append(notice["type"])
                subscriber.noticed.set()
