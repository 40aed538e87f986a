"""What travels on the facts topic: a stored fact as the notification log holds it."""

from __future__ import annotations

import faust


class FactRecord(faust.Record, serializer="json"):
    """One notification of the log; `state` is the stored event's JSON text, decoded by the
    application's mapper on the consuming side."""

    position: int
    originator_id: str
    originator_version: int
    topic: str
    state: str
