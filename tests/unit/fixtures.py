"""What the domain's unit tests share: a fixed clock and a valid set of event fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2031, 3, 1, 9, 0, tzinfo=UTC)
START = NOW + timedelta(days=1)
END = START + timedelta(hours=1)


def fields(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Standup",
        "starting_time": START,
        "end_time": END,
        "location": "Tel Aviv Port",
        "participants": ["p-1", "p-2"],
        "recurrence": [],
        "time_zone": "UTC",
    }
    values.update(overrides)
    return values
