"""What travels on the facts topic: a stored fact as the notification log holds it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import faust
from eventsourcing.persistence import Mapper, Notification


class FactRecord(faust.Record, serializer="json"):
    """One notification of the log; `state` is the stored event's JSON text, decoded by the
    application's mapper on the consuming side."""

    position: int
    originator_id: str
    originator_version: int
    topic: str
    state: str


def encode(notification: Notification) -> FactRecord:
    return FactRecord(
        position=notification.id,
        originator_id=str(notification.originator_id),
        originator_version=notification.originator_version,
        topic=notification.topic,
        state=notification.state.decode(),
    )


def decode(mapper: Mapper[Any], record: FactRecord) -> Any:
    return mapper.to_domain_event(Notification(
        id=record.position,
        originator_id=UUID(record.originator_id),
        originator_version=record.originator_version,
        topic=record.topic,
        state=record.state.encode(),
    ))
