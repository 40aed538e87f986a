"""Calendar feeds over real HTTP on both backends: a feed URL needs no header and lists the
owner's events and those they take part in (nobody else's, and no one's address), answers
304 to its ETag, shows a deleted event as cancelled, and answers 404 once replaced, revoked or
its account deleted; calendar parsers of others' (ical.js, vobject) read it; its secret is
stored only as a digest."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.conftest import Person, Server, assert_error, event_body, eventually, sign_up
from tests.mail_clients import by_icaljs, by_vobject, expanded_by_icaljs

FEED = "/api/user/me/calendar_feed"


def new_feed(http: httpx.Client, person: Person) -> str:
    """The feed's path (its URL without the server's address)."""
    answer = http.post(FEED, headers=person.headers)
    assert answer.status_code == 201, answer.text
    url = answer.json()["url"]
    assert url.startswith(str(http.base_url).rstrip("/") + "/calendar/"), url
    assert url.endswith(".ics")
    return urlsplit(url).path


def secret_of(path: str) -> str:
    return path.removeprefix("/calendar/").removesuffix(".ics")


def create(http: httpx.Client, person: Person, **fields: Any) -> str:
    answer = http.post("/api/events/", headers=person.headers, json=event_body(**fields))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["event"]["id"])


def feed_when(http: httpx.Client, path: str, holds: Callable[[str], bool],
              what: str) -> httpx.Response:
    """The feed (no header sent) once its text satisfies `holds`: it reads the events view,
    which applies each write a moment after it is answered."""
    seen: list[httpx.Response] = []

    def poll() -> httpx.Response | None:
        answer = httpx.get(str(http.base_url).rstrip("/") + path, timeout=30)
        seen[:] = [answer]
        return answer if answer.status_code == 200 and holds(answer.text) else None

    return eventually(poll, lambda: f"{what}; the feed answered {seen[-1].status_code}: "
                                    f"{seen[-1].text[:2000]}")


def test_a_feed_lists_owned_and_taken_part_in_events_but_not_others_nor_anyones_address(
        http: httpx.Client) -> None:
    me, friend = sign_up(http, "feeder"), sign_up(http, "friend")
    invitee = "outside.guest@example.org"
    not_mine = create(http, friend, name="Not mine")
    mine = create(http, me, name="Mine", participants=[friend.username, invitee])
    theirs = create(http, friend, name="Theirs, with me", participants=[me.username])
    path = new_feed(http, me)
    # the view applies the log in order: with the last write in it, so are the ones before
    answer = feed_when(http, path, lambda text: mine in text and theirs in text,
                       "the owned event and the one taken part in")
    assert answer.headers["content-type"].startswith("text/calendar")
    assert "etag" in answer.headers
    text = answer.text
    assert not_mine not in text
    for private in (friend.email, invitee, me.email, "mailto:"):
        assert private not in text, f"{private} is in the feed"
    [parsed] = by_icaljs([text])
    assert {event.uid for event in parsed} == {mine, theirs}
    assert {event.uid for event in by_vobject(text)} == {mine, theirs}
    assert all(event.attendees == () and event.organizer is None for event in parsed)


def test_a_feed_answers_304_to_its_etag_until_one_of_its_events_changes(
        http: httpx.Client) -> None:
    me = sign_up(http, "etag")
    event_id = create(http, me, name="Before")
    path = new_feed(http, me)
    first = feed_when(http, path, lambda text: event_id in text, "the event")
    tag = first.headers["etag"]
    for held in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        again = http.get(path, headers={"If-None-Match": held})
        assert again.status_code == 304, (held, again.text)
        assert again.content == b"" and again.headers["etag"] == tag
    assert http.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    changed = http.patch(f"/api/event/{event_id}", headers=me.headers, json={"name": "After"})
    assert changed.status_code == 200, changed.text
    moved = feed_when(http, path, lambda text: "SUMMARY:After" in text, "the change")
    assert moved.headers["etag"] != tag
    assert http.get(path, headers={"If-None-Match": tag}).status_code == 200


def test_a_new_feed_url_replaces_the_old_one_which_then_answers_404(
        http: httpx.Client) -> None:
    me = sign_up(http, "rotate")
    event_id = create(http, me, name="Rotated", time_zone="Europe/Berlin",
                      starting_time="2030-07-01T09:00:00+02:00",
                      end_time="2030-07-01T10:00:00+02:00")
    old = new_feed(http, me)
    feed_when(http, old, lambda text: event_id in text, "the event")
    new = new_feed(http, me)
    assert new != old
    assert_error(http.get(old), 404)
    text = feed_when(http, new, lambda found: event_id in found, "the event").text
    assert "BEGIN:VTIMEZONE" in text and "DTSTART;TZID=Europe/Berlin:" in text
    [parsed] = by_icaljs([text])
    assert [(event.uid, event.start) for event in parsed] == [
        (event_id, datetime(2030, 7, 1, 7, tzinfo=UTC))]
    assert [event.uid for event in by_vobject(text)] == [event_id]


def test_a_deleted_event_stays_in_the_feed_as_cancelled(http: httpx.Client) -> None:
    me, friend = sign_up(http, "cancel"), sign_up(http, "guest")
    kept = create(http, me, name="Kept")
    gone = create(http, friend, name="Called off", participants=[me.username])
    path = new_feed(http, me)
    feed_when(http, path, lambda text: gone in text, "the event")
    deleted = http.delete(f"/api/event/{gone}", headers=friend.headers)
    assert deleted.status_code == 200, deleted.text
    text = feed_when(http, path, lambda found: "STATUS:CANCELLED" in found, "the cancellation").text
    [parsed] = by_icaljs([text])
    status = {event.uid: event.status for event in parsed}
    assert status == {kept: None, gone: "CANCELLED"}
    assert {event.uid: event.status for event in by_vobject(text)} == status
    [cancelled] = [event for event in parsed if event.uid == gone]
    assert cancelled.summary == "Called off"


def test_a_revoked_feed_answers_404(http: httpx.Client) -> None:
    me = sign_up(http, "revoke")
    path = new_feed(http, me)
    assert http.get(path).status_code == 200
    for _ in range(2):  # revoking what is already revoked is no error
        answer = http.delete(FEED, headers=me.headers)
        assert answer.status_code == 204, answer.text
    assert_error(http.get(path), 404)
    assert_error(http.delete(FEED), 401)
    assert_error(http.post(FEED), 401)


def test_a_feed_shows_only_its_owners_events_and_a_made_up_secret_finds_nothing(
        http: httpx.Client) -> None:
    me, someone = sign_up(http, "mine"), sign_up(http, "someone")
    theirs = create(http, someone, name="Someone's")
    mine = create(http, me, name="Me")
    their_feed, my_feed = new_feed(http, someone), new_feed(http, me)
    feed_when(http, their_feed, lambda text: theirs in text, "their event")
    text = feed_when(http, my_feed, lambda found: mine in found, "my event").text
    assert theirs not in text
    # a token is no key to a feed: only its secret is
    assert_error(http.get(f"/calendar/{secret_of(my_feed)[:-1]}x.ics", headers=me.headers), 404)
    assert_error(http.get("/calendar/.ics"), 404)
    assert_error(http.get("/calendar/not-a-secret.ics"), 404)


def test_the_secret_is_stored_only_as_its_digest(http: httpx.Client, server: Server) -> None:
    me = sign_up(http, "digest")
    secret = secret_of(new_feed(http, me))
    rows = server.rows("SELECT secret_hash FROM calendar_feeds WHERE user_id = ?", (me.id,))
    assert rows == [(hashlib.sha256(secret.encode()).hexdigest(),)]
    assert server.holding(secret) == []


def test_a_deleted_accounts_feed_answers_404_and_its_digest_is_erased(
        http: httpx.Client, server: Server) -> None:
    doomed = sign_up(http, "doomed")
    path = new_feed(http, doomed)
    stored = hashlib.sha256(secret_of(path).encode()).hexdigest()
    assert http.get(path).status_code == 200
    assert server.holding(stored), "precondition: the digest is stored"
    answer = http.delete(f"/api/user/{doomed.id}", headers=doomed.headers)
    assert answer.status_code == 200, answer.text
    assert_error(http.get(path), 404)
    assert server.rows("SELECT * FROM calendar_feeds WHERE user_id = ?", (doomed.id,)) == []
    assert server.holding(stored) == []


def test_a_recurring_event_comes_with_its_rule_and_ical_js_expands_it_as_the_api_lists_it(
        http: httpx.Client) -> None:
    """A weekly series in a feed, one occurrence moved and one cancelled: RRULE, EXDATE and a
    VEVENT with RECURRENCE-ID, which ical.js expands into the occurrences /instances lists."""
    me = sign_up(http, "series")
    first = datetime(datetime.now(UTC).year + 1, 2, 2, 8, tzinfo=UTC)
    created = http.post("/api/events/", headers=me.headers, json=event_body(
        name="Weekly", starting_time=first.isoformat(),
        end_time=(first + timedelta(hours=1)).isoformat(), time_zone="Europe/Berlin",
        recurrence=["RRULE:FREQ=WEEKLY;COUNT=4"]))
    assert created.status_code == 201, created.text
    series_id = created.json()["event"]["id"]
    window = {"starts_after": (first - timedelta(days=1)).isoformat(),
              "starts_before": (first + timedelta(days=40)).isoformat()}
    listed = http.get(f"/api/event/{series_id}/instances", params=window, headers=me.headers)
    assert listed.status_code == 200, listed.text
    moved, cancelled = listed.json()["events"][1], listed.json()["events"][2]
    later = datetime.fromisoformat(moved["starting_time"]) + timedelta(hours=3)
    assert http.patch(f"/api/event/{moved['id']}", headers=me.headers, json={
        "name": "Moved once", "starting_time": later.isoformat(),
        "end_time": (later + timedelta(hours=1)).isoformat()}).status_code == 200
    assert http.delete(f"/api/event/{cancelled['id']}", headers=me.headers).status_code == 200
    path = new_feed(http, me)
    text = feed_when(http, path, lambda found: "RECURRENCE-ID" in found and "EXDATE" in found,
                     "the series with its changed and cancelled occurrences").text
    assert "RRULE:FREQ=WEEKLY;COUNT=4" in text
    occurrences = http.get(f"/api/event/{series_id}/instances", params=window,
                           headers=me.headers).json()["events"]
    expanded = expanded_by_icaljs(text, first - timedelta(days=1), first + timedelta(days=40))

    def moment(value: str) -> datetime:
        return datetime.fromisoformat(value).astimezone(UTC)

    assert [(moment(e["start"]), e["summary"]) for e in expanded] == [
        (moment(e["starting_time"]), e["name"]) for e in occurrences]
    assert len(occurrences) == 3 and occurrences[1]["name"] == "Moved once"

    deleted = http.delete(f"/api/event/{series_id}", headers=me.headers)
    assert deleted.status_code == 200, deleted.text
    text = feed_when(http, path, lambda found: "STATUS:CANCELLED" in found, "the cancellation").text
    [parsed] = by_icaljs([text])
    assert {event.status for event in parsed} == {"CANCELLED"} and len(parsed) == 2
    assert "RRULE:FREQ=WEEKLY;COUNT=4" in text
