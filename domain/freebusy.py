"""Free/busy (SPEC §6.6): when someone is busy within a window, as merged intervals that say
nothing of what keeps them busy. Pure: the caller reads the events and hands their times in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from domain.events import ANSWERS, OWN_RESPONSES
from domain.recurrence import Series, occurrences

MAX_USERS = 50
MAX_WINDOW = timedelta(days=93)
# The one answer that makes a participant busy (an owner always is): declining, being unsure
# or not having answered leaves the time free.
BUSY_ANSWER = ANSWERS[0]

Interval = tuple[datetime, datetime]


def keeps_busy(person: str, responses: Mapping[str, str] | None) -> bool:
    """Whether an event keeps `person` busy: theirs (no responses to ask), or one whose
    invitation they accepted."""
    return responses is None or responses.get(person) == BUSY_ANSWER


def occurrence_times(series: Series, start: datetime, end: datetime,
                     participant: str | None = None, participants: Sequence[str] = (),
                     responses: Mapping[str, str] | None = None) -> list[Interval]:
    """The times of a series' occurrences that may overlap [start, end): every one for its
    owner (no `participant`); for a participant, those that still name them (an occurrence's
    own participants replace the series' `participants`) and that they accepted (an
    occurrence's own answers, among its changes, over the series' `responses`). Expanded from
    a series' length before the window, so an occurrence under way at its start counts (one
    that its own change made longer may be missed there)."""
    return [(found.start, found.end)
            for found in occurrences(series, start - (series.end - series.start), end)
            if participant is None
            or (participant in found.changes.get("participants", participants)
                and keeps_busy(participant, {**(responses or {}),
                                             **found.changes.get(OWN_RESPONSES, {})}))]

def window_problems(start: datetime, end: datetime) -> dict[str, str]:
    """What is wrong with a window [start, end), by the field to blame."""
    if end <= start:
        return {"starts_before": "must be after starts_after"}
    if end - start > MAX_WINDOW:
        return {"starts_before": f"must be at most {MAX_WINDOW.days} days after starts_after"}
    return {}


def busy(intervals: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    """The intervals cut to the window [start, end), in order, those that overlap or touch
    joined into one (a meeting from 9 to 10 and one from 10 to 11 are one busy hour-pair, as
    Google Calendar's free/busy shows them)."""
    merged: list[Interval] = []
    for begins, ends in sorted((max(b, start), min(e, end)) for b, e in intervals):
        if begins >= ends:
            continue
        if merged and begins <= merged[-1][1]:
            if ends > merged[-1][1]:
                merged[-1] = (merged[-1][0], ends)
        else:
            merged.append((begins, ends))
    return merged
