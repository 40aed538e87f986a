"""Calendar feeds (subscriptions for calendar apps): a secret URL per account, made and revoked
by the signed-in user, and the feed itself, which calendar apps poll with no header at all.

A feed lists the account's events, owned and taken part in, and those cancelled in the last
CANCELLED_DAYS as STATUS:CANCELLED, built by consumers.calendar like every other export. It
names no attendee and no organiser: its URL is handed to calendar apps and often shared, and
other people's addresses must not travel with it (nor their usernames: a subscriber sees the
events, not who else comes).

Polled by every subscribed app, so a poll costs the secret's lookup, one indexed statement
(the events' ids and versions; none while the events view is where it was at this worker's
last read of them: projections.feeds.FeedReader) and a dictionary lookup: the text is
rendered once per worker for each set of events at their versions, which is also what its
ETag digests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from uuid import UUID

from sanic import Blueprint, Request, empty, json, raw
from sanic.response import HTTPResponse, JSONResponse

from api.conditional import unchanged
from api.context import CurrentUser, now, off_loop, served, signed_in
from api.docs import CALENDAR, VERSIONED, Answer, RequestHeader, documented
from api.events import ICS
from api.present import calendar_events
from api.schemas import CalendarFeed
from consumers.calendar import calendar
from domain.application import EventsApplication
from domain.errors import NotFoundError
from domain.presentation import calendar_fields, instant
from projections.database import Row
from projections.feeds import CalendarFeeds, FeedKeys, FeedReader, feed_tag

bp = Blueprint("feeds")

FEED = "/api/user/me/calendar_feed"
CALENDAR_FEED = r"/calendar/<secret:[^/]+\.ics>"
# How long a deleted event stays in a feed as cancelled, so a calendar app that polls now and
# then still hears of it (Google Calendar polls a subscription every few hours to a day).
CANCELLED_DAYS = 30
# Feed texts a worker keeps, in bytes: a few thousand feeds of a hundred events.
KEPT_BYTES = 64 * 1024 * 1024
FEED_UNCHANGED = RequestHeader("If-None-Match", "the feed's ETag you hold (or *): answered 304 "
                               "with no body while the feed lists the same events unchanged")


class FeedTexts:
    """Feed texts by ETag, oldest dropped first. An ETag digests each event's id and version
    (and whether it is cancelled), which decide its VEVENT completely, and a feed names
    nobody, so two accounts with the same events share one text."""

    def __init__(self, kept_bytes: int = KEPT_BYTES) -> None:
        self.kept_bytes = kept_bytes
        self._texts: dict[str, bytes] = {}
        self._size = 0
        self._making: dict[str, asyncio.Future[tuple[str, bytes]]] = {}

    def get(self, tag: str) -> bytes | None:
        return self._texts.get(tag)

    async def made(self, tag: str, make: Callable[[], Awaitable[tuple[str, bytes]]]
                   ) -> tuple[str, bytes]:
        """The text `make` makes for a feed whose keys gave `tag` (with the tag of what it
        made), kept; made once for all the polls that want it meanwhile. A feed's events
        changed, or a worker that has not rendered it yet: every poll of it misses at once
        (bench/'s 16 connections on one feed: each rendered its 250 events, and the last
        waited ~0.7 s behind the others). A poll that goes away leaves the making to the
        others (shield)."""
        making = self._making.get(tag)
        if making is None:
            making = self._making[tag] = asyncio.ensure_future(self._make(make))
            making.add_done_callback(lambda _: self._making.pop(tag, None))
        return await asyncio.shield(making)

    async def _make(self, make: Callable[[], Awaitable[tuple[str, bytes]]]
                    ) -> tuple[str, bytes]:
        tag, text = await make()
        self.keep(tag, text)
        return tag, text

    def keep(self, tag: str, text: bytes) -> None:
        if len(text) > self.kept_bytes or tag in self._texts:
            return
        while self._size + len(text) > self.kept_bytes:
            self._size -= len(self._texts.pop(next(iter(self._texts))))
        self._texts[tag] = text
        self._size += len(text)


@dataclass(frozen=True)
class FeedsServices:
    """Secrets to issue and revoke; the view's feed query; the store, for a cancelled event
    as it was before its deletion; the public address that feed URLs begin with."""

    feeds: CalendarFeeds
    reader: FeedReader
    app: EventsApplication
    public_url: str | None
    texts: FeedTexts


@bp.post(FEED)
@documented("A new calendar feed URL for calendar apps (it replaces the one before, which "
            "then answers 404)", {201: Answer(CalendarFeed)}, auth=True)
@signed_in(FeedsServices)
async def create_feed(request: Request, services: FeedsServices,
                      user: CurrentUser) -> JSONResponse:
    secret = await off_loop(services.feeds.issue, user.id)
    base = services.public_url or f"{request.scheme}://{request.host}"
    return json({"url": f"{base}/calendar/{secret}.ics"}, status=201)


@bp.delete(FEED)
@documented("Revoke your calendar feed (its URL then answers 404); 204 also when there was none",
            {204: Answer()}, auth=True)
@signed_in(FeedsServices)
async def revoke_feed(request: Request, services: FeedsServices,
                      user: CurrentUser) -> HTTPResponse:
    await off_loop(services.feeds.revoke, user.id)
    return empty(status=204)


@bp.get(CALENDAR_FEED)
@documented(f"A calendar feed: the owner's events and those they take part in, and those "
            f"cancelled in the last {CANCELLED_DAYS} days (STATUS:CANCELLED); no header "
            "needed, the secret is the key; 404 for a secret replaced, revoked or unknown",
            {200: Answer(headers=VERSIONED, media=CALENDAR), 304: Answer(headers=VERSIONED),
             404: None},
            headers=[FEED_UNCHANGED], suffix=".ics")
@served(FeedsServices)
async def calendar_feed(request: Request, services: FeedsServices, secret: str) -> HTTPResponse:
    secret = secret.removesuffix(".ics")
    since = instant(now() - timedelta(days=CANCELLED_DAYS))
    keys = await services.reader.keys(secret, since)
    if keys is None:
        raise NotFoundError("no calendar feed at this address")
    tag = keys.tag
    if answer := unchanged(request, tag):
        return answer
    text = services.texts.get(tag)
    if text is None:
        tag, text = await services.texts.made(tag, partial(fresh, services, keys))
    return raw(text, content_type=ICS, headers={"ETag": tag})


async def fresh(services: FeedsServices, keys: FeedKeys) -> tuple[str, bytes]:
    """The feed's text from its rows as they are now, and its ETag: one may have changed
    since the keys were read, and the ETag is then that of what is sent."""
    rows = await services.reader.rows(keys.user_id)
    tag = feed_tag([(row["id"], row["version"]) for row in rows], keys.cancelled)
    return tag, await off_loop(render, services.app, rows, keys.cancelled)


def render(app: EventsApplication, live: Sequence[Row],
           cancelled: Sequence[tuple[str, int, str]]) -> bytes:
    """The feed's text, its events in order of start (then id), so one set of events always
    gives the same text. A series comes as the store holds it at the row's version
    (api.present.calendar_events), so a calendar app expands it as the API does. A cancelled
    event is shown as it was before its deletion (read from the store at that version: the
    view keeps no row of it), stamped with the deletion's time."""
    events = calendar_events(app, live)
    for event_id, version, at in cancelled:
        when = datetime.fromisoformat(at)
        events += [{**shown, "updated_at": when, "stamp": when, "status": "CANCELLED"}
                   for shown in calendar_fields(app.get_event(UUID(event_id), version - 1))]
    events.sort(key=lambda event: (event["starting_time"], event["id"],
                                   str(event.get("recurrence_id", ""))))
    return calendar(events)
