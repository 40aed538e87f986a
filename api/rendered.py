"""Events as JSON text, rendered from view rows once per worker and reused. A view row at a
given version never changes (facts are immutable), and the names it shows hold until the
people reader's change counter moves; so (id, version, whether the viewer is the owner) and
that count decide the text completely. Lists show a hundred events per request, and decoding,
naming and serialising them was most of a list's cost (py-spy, bench/)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence

from api.present import rows_json
from projections.database import Row
from projections.people import PeopleReader

JSON = "application/json"
# Entries kept per worker: a few thousand events' worth of the hottest pages, some MiB.
RENDERED_KEPT = 20_000

Key = tuple[str, int, bool]
# The whole rows of key rows (a page read only what decides a text): EventsReader.complete.
Complete = Callable[[Sequence[Row]], Awaitable[list[Row]]]


class RenderedEvents:
    def __init__(self, people: PeopleReader, kept: int = RENDERED_KEPT) -> None:
        self.people = people
        self.kept = kept
        self._texts: dict[Key, bytes] = {}
        self._count = -1  # the names count the texts were rendered under

    async def render(self, rows: Sequence[Row], viewer_id: str, count: int,
                     complete: Complete | None = None) -> list[bytes]:
        """Each row's event JSON, in order, as of names `count` (read by the caller with or
        before the rows: CurrentUser.names_count). Missing texts are kept only if no other
        call has since seen another count. Rows that hold only their keys are `complete`d
        where their text is missing."""
        if count != self._count:
            self._texts = {}
            self._count = count
        texts = self._texts
        keys = [(row["id"], row["version"], row["owner_id"] == viewer_id) for row in rows]
        found = [texts.get(key) for key in keys]
        missing = [index for index, text in enumerate(found) if text is None]
        made: dict[int, bytes] = {}
        if missing:
            wanted = [rows[index] for index in missing]
            if complete is not None:
                wanted = await complete(wanted)
            shown = await rows_json(wanted, self.people, viewer_id, count)
            made = {index: json.dumps(event, ensure_ascii=False).encode()
                    for index, event in zip(missing, shown, strict=True)}
            if self._count == count:
                while texts and len(texts) + len(made) > self.kept:
                    del texts[next(iter(texts))]  # oldest first: dicts keep insertion order
                texts.update((keys[index], text) for index, text in made.items())
        return [made[index] if text is None else text for index, text in enumerate(found)]


def page_body(events: Sequence[bytes], next_cursor: str | None) -> bytes:
    """{"events": [...], "next": ...}: the rendered texts are spliced in as they are, not
    parsed and serialised again."""
    return (b'{"events":[' + b",".join(events) + b'],"next":' + json.dumps(next_cursor).encode()
            + b"}")


def event_body(event: bytes) -> bytes:
    return b'{"event":' + event + b"}"
