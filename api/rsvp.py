"""One-click answers from an invitation email (SPEC §6.3): `GET /rsvp/{token}?response=...`
records an outside invitee's answer and shows a small page saying what was recorded.

A GET that changes state is what the spec asks for (one click, from any mail client). Link
scanners and prefetchers that follow every link of an email are met by idempotence: the same
answer again records nothing, so only a scanner that follows the three links in turn can change
an answer, and it always ends on the last one it followed — no worse than a guess, never an
error. Every failure (bad link, bad answer, expired, deleted, no longer invited, erased) shows
its page and changes nothing."""

from __future__ import annotations

import html
from dataclasses import dataclass
from uuid import UUID

from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from sanic.response import html as html_response

from api.context import Commands, now, off_loop, served
from api.docs import HTML, Answer, Query, documented
from api.present import position_header
from consumers.rsvp import BadLinkError, ExpiredLinkError, RsvpLinks
from domain.application import EventsApplication
from domain.errors import ForbiddenError, GoneError, NotFoundError
from domain.events import ANSWERS
from projections.people import People

bp = Blueprint("rsvp")

# What the page's heading says was recorded, by answer.
RECORDED = {"accepted": "You accepted “{name}”", "declined": "You declined “{name}”",
            "tentative": "You answered maybe to “{name}”"}
# The token is a key: kept out of caches, referrers and search engines; the page loads nothing.
PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                "X-Robots-Tag": "noindex", "Content-Security-Policy": "default-src 'none'"}
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – Alphabet Events</title>
</head>
<body>
<main>
<h1>{title}</h1>
<p>{text}</p>
</main>
</body>
</html>
"""


@dataclass(frozen=True)
class RsvpServices:
    """The links' check, the invitee's address (a live lookup: an erased invitee's link
    must fail at once), and the answer's command."""

    links: RsvpLinks
    people: People
    app: EventsApplication
    command: Commands


@bp.get("/rsvp/<token:str>")
@documented("An outside invitee's one-click answer from their invitation email: records it "
            "and shows a page saying so (no token header: the link's token is the key)",
            {200: Answer(headers=("X-Position",), media=HTML), 400: Answer(media=HTML),
             403: Answer(media=HTML), 404: Answer(media=HTML), 410: Answer(media=HTML)},
            query=[Query("response", {"type": "string", "enum": list(ANSWERS)},
                         "the answer the link stands for")])
@served(RsvpServices)
async def rsvp(request: Request, services: RsvpServices, token: str) -> HTTPResponse:
    if request.method == "HEAD":  # sanic-ext hands HEAD to GET's handler; a probe is no answer
        return page(405, "Open the link to answer", "Nothing was recorded.", {"Allow": "GET"})
    response = request.args.get("response")
    if response not in ANSWERS:
        return page(400, "This answer link is incomplete",
                    "Its answer must be one of: " + ", ".join(ANSWERS) + ". Nothing was recorded.")
    try:
        answering = services.links.check(token)
        event_id = UUID(answering.event_id)
    except (BadLinkError, ValueError):
        return page(400, "This answer link is not valid",
                    "Use a link exactly as your invitation gives it. Nothing was recorded.")
    except ExpiredLinkError:
        return page(410, "This event has ended",
                    "It can no longer be answered. Nothing was recorded.")
    if not await off_loop(services.people.addresses, [answering.invitee_id]):
        return page(410, "This invitation no longer exists",
                    "Your address has been removed. Nothing was recorded.")
    try:
        written = await services.command(
            services.app.respond, event_id, participant=answering.invitee_id,
            response=response, by=answering.invitee_id, link_at=now(),
            original_start=answering.original_start)
    except NotFoundError:
        return page(404, "There is no such event", "Nothing was recorded.")
    except GoneError as exc:
        return page(410, "This event can no longer be answered", f"{exc}. Nothing was recorded.")
    except ForbiddenError:
        return page(403, "You are no longer invited to this event", "Nothing was recorded.")
    title = RECORDED[response].format(name=written.aggregate.name)
    return page(200, title, "Your answer is recorded. To change it, use another answer link "
                "in the invitation.", position_header(written))


def page(status: int, title: str, text: str,
         headers: dict[str, str] | None = None) -> HTTPResponse:
    return html_response(PAGE.format(title=html.escape(title), text=html.escape(text)),
                         status=status, headers={**PAGE_HEADERS, **(headers or {})})
