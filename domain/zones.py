"""Named time zones (SPEC §6.1): an event's `time_zone` is an IANA name, checked against the
names the zone database lists, and is where its instants are shown in local time. The facts
keep instants in UTC; a zone only says how people see them."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

DEFAULT_ZONE = "UTC"
ZONE_RULE = "must be an IANA time zone name such as Europe/Berlin or UTC"
# Files of the zone database that name no place: the machine's own zone (a link that
# differs between hosts) and tzdata's placeholder for "not set".
NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})


@cache
def zone_names() -> frozenset[str]:
    """The names accepted. Asked of the list, not of ZoneInfo itself: ZoneInfo opens any path
    under its search path (`posix/…`, `right/…`, a name in another case on a case-insensitive
    disk) and raises ValueError or OSError for others, none of which a client should reach."""
    return frozenset(available_timezones() - NOT_PLACES)


def zone_problem(name: object) -> str | None:
    """What is wrong with a `time_zone`, if anything."""
    if not isinstance(name, str) or name not in zone_names():
        return ZONE_RULE
    return None


def local(moment: datetime, name: str) -> datetime:
    """The instant with the offset the zone has then (a name already checked)."""
    return moment.astimezone(ZoneInfo(name))
