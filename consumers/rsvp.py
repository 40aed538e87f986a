"""One-click answers for outside invitees (SPEC §6.3): the signed links an invitation email
carries, and the check of a link's token when it is followed.

A token is an HS256 JWT under the server's secret key that names ids only — the event and the
invitee, never an address, and (`occ`) the occurrence's key when the email is about one
occurrence of a series — and expires when the event (or that occurrence) ends. Its `type` and
audience are its own: an access or refresh token is never accepted as one (it has neither),
and one is never accepted as those (api.security requires their `type` and refuses any
audience)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import jwt

from domain.events import ANSWERS
from domain.recurrence import parse_key

ALGORITHM = "HS256"
KIND = "rsvp"
AUDIENCE = "alphabet-events:rsvp"
REQUIRED = ["exp", "aud", "type", "sub", "evt"]


class BadLinkError(Exception):
    """Not a link this server made (garbled, tampered with, or another kind of token)."""


class ExpiredLinkError(Exception):
    """A link of ours whose event has ended."""


@dataclass(frozen=True)
class Answering:
    """Who a link lets answer, and for which event (and occurrence): ids only."""

    event_id: str
    invitee_id: str
    original_start: datetime | None = None


class RsvpLinks:
    def __init__(self, secret: str, base: str) -> None:
        """`base`: what the links begin with (ALPHABET_PUBLIC_URL, or the address served)."""
        self.secret = secret
        self.base = base.rstrip("/")

    def token(self, event_id: str, invitee_id: str, ends: datetime,
              occurrence: str | None = None) -> str:
        """`occurrence`: the occurrence's key (domain.recurrence.key) the answer is for."""
        claims = {"type": KIND, "aud": AUDIENCE, "evt": event_id, "sub": invitee_id,
                  "exp": int(ends.timestamp())}
        if occurrence is not None:
            claims["occ"] = occurrence
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def links(self, event_id: str, invitee_id: str, ends: datetime,
              occurrence: str | None = None) -> dict[str, str]:
        """One link per answer, by answer (`accepted`, `declined`, `tentative`)."""
        token = self.token(event_id, invitee_id, ends, occurrence)
        return {answer: f"{self.base}/rsvp/{token}?response={answer}" for answer in ANSWERS}

    def check(self, token: str) -> Answering:
        try:
            claims = jwt.decode(token, self.secret, algorithms=[ALGORITHM], audience=AUDIENCE,
                                options={"require": REQUIRED})
        except jwt.ExpiredSignatureError:
            raise ExpiredLinkError("the event has ended; it can no longer be answered") from None
        except jwt.InvalidTokenError:
            raise BadLinkError("this answer link is not valid") from None
        if claims["type"] != KIND:
            raise BadLinkError("this answer link is not valid")
        start = None
        if "occ" in claims:
            start = parse_key(str(claims["occ"]))
            if start is None:
                raise BadLinkError("this answer link is not valid")
        return Answering(str(claims["evt"]), str(claims["sub"]), start)
