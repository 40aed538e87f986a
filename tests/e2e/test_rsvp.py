"""One-click answers for outside invitees, end to end on both backends (SPEC §6.3): the links
come out of emails really delivered to an SMTP server (aiosmtpd) on loopback by a real
`alphabet serve`, and are followed over real HTTP. A link records the invitee's answer as a
fact (by their invitee id), visible to the owner; a tampered, expired, stale or otherwise bad
link shows its page and changes nothing. Invitations' ATTENDEE lines carry PARTSTAT."""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from consumers.rsvp import RsvpLinks
from tests.conftest import Person, Server, at, event_body, eventually, sign_up
from tests.e2e.test_mail_e2e import mail_server, smtp
from tests.integration.test_mail import Received, SmtpServer

__all__ = ["mail_server", "smtp"]  # fixtures: a server that delivers to aiosmtpd

LINK = re.compile(r"^[ \t]+(Yes|Maybe|No): (\S+)", re.MULTILINE)
ANSWER_OF = {"Yes": "accepted", "Maybe": "tentative", "No": "declined"}


@pytest.fixture(scope="module")
def client(mail_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mail_server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def host(client: httpx.Client) -> Person:
    return sign_up(client, "host")


def invitee_address() -> str:
    return f"invitee_{uuid.uuid4().hex[:8]}@outside.example"


def create(http: httpx.Client, owner: Person, **fields: Any) -> dict[str, Any]:
    answer = http.post("/api/events/", json=event_body(**fields), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    event: dict[str, Any] = answer.json()["event"]
    return event


def email(smtp: SmtpServer, event_id: str, to: str, kind: str) -> Received:
    """The email of this kind about the event delivered to `to`, once it has arrived."""

    def found() -> Received | None:
        return next((r for r in smtp.received() if r.message_id.startswith(f"<{event_id}.")
                     and r.to == to and r.kind == kind), None)

    return eventually(found, f"the {kind} email to {to}")


def links(received: Received) -> dict[str, str]:
    """The one-click links of an email's plain text, by answer."""
    body = received.message.get_body(("plain",))
    assert body is not None
    return {ANSWER_OF[label]: url for label, url in LINK.findall(body.get_content())}


def partstat(received: Received) -> str:
    [attendee] = [component["ATTENDEE"] for component in received.calendar().walk("VEVENT")]
    return str(attendee.params["PARTSTAT"])


def history(http: httpx.Client, owner: Person, event_id: str) -> list[dict[str, Any]]:
    answer = http.get(f"/api/event/{event_id}/history", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["history"]
    return found


def attendees(http: httpx.Client, owner: Person, event_id: str) -> dict[str, str]:
    event = http.get(f"/api/event/{event_id}", headers=owner.headers).json()["event"]
    return {a["participant"]: a["response"] for a in event["attendees"]}


def assert_page(answer: httpx.Response, status: int, heading: str) -> str:
    """A small accessible HTML page: its language, a title, and a heading saying `heading`."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html"), answer.headers
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["referrer-policy"] == "no-referrer"
    text = answer.text
    assert '<html lang="en">' in text
    assert re.search(r"<title>[^<]+</title>", text), text
    assert f"<h1>{heading}</h1>" in text, text
    return text


def server_links(server: Server) -> RsvpLinks:
    """Links signed with the server's own key (generated into its data dir)."""
    return RsvpLinks((server.data_dir / "secret_key").read_text().strip(), server.url)


def erase_invitee(server: Server, invitee_id: str) -> None:
    """What an erasure of an invitee does to their personal data: the address is gone."""
    if server.backend.url is None:
        with sqlite3.connect(server.data_dir / "state.sqlite", timeout=30) as conn:
            conn.execute("DELETE FROM invitees WHERE id = ?", (invitee_id,))
        return
    import psycopg

    with psycopg.connect(server.backend.url, autocommit=True) as conn:
        conn.execute("DELETE FROM invitees WHERE id = %s", (invitee_id,))


def test_an_invitees_link_from_a_delivered_email_records_their_answer(
    mail_server: Server, smtp: SmtpServer, client: httpx.Client, host: Person
) -> None:
    guest, invitee = sign_up(client, "guest"), invitee_address()
    event = create(client, host, name="Board meeting", participants=[guest.username, invitee])
    event_id = event["id"]
    invitation = email(smtp, event_id, invitee, "created")
    invitee_id = invitation.id_parts()[2]
    found = links(invitation)
    assert set(found) == {"accepted", "declined", "tentative"}
    token = found["accepted"].split("/rsvp/")[1].split("?")[0]
    for answer, url in found.items():
        assert url == f"{mail_server.url}/rsvp/{token}?response={answer}"
    assert "@" not in token and invitee.split("@")[0] not in token
    html_part = invitation.message.get_body(("html",))
    assert html_part is not None
    assert all(f'href="{url}"' in html_part.get_content() for url in found.values())
    assert partstat(invitation) == "NEEDS-ACTION"
    # registered users answer signed in: their invitation carries no links
    assert links(email(smtp, event_id, guest.email, "created")) == {}

    page = assert_page(httpx.get(found["declined"], timeout=30), 200,
                       "You declined “Board meeting”")
    assert invitee not in page and guest.username not in page
    assert attendees(client, host, event_id) == {guest.username: "needs_action",
                                                 invitee: "declined"}
    last = history(client, host, event_id)[-1]
    assert (last["type"], last["by"]) == ("Responded", invitee_id)
    assert last["changes"] == {"attendee": invitee, "response": "declined"}
    # a prefetcher following the same link again records nothing
    assert_page(httpx.get(found["declined"], timeout=30), 200, "You declined “Board meeting”")
    assert len(history(client, host, event_id)) == 2

    # each later invitation carries its recipient's own answer as PARTSTAT
    accepted = client.post(f"/api/event/{event_id}/response", json={"response": "accepted"},
                           headers=guest.headers)
    assert accepted.status_code == 200, accepted.text
    renamed = client.patch(f"/api/event/{event_id}", json={"name": "Board meeting (Q4)"},
                           headers=host.headers)
    assert renamed.status_code == 200, renamed.text
    assert partstat(email(smtp, event_id, guest.email, "updated")) == "ACCEPTED"
    assert partstat(email(smtp, event_id, invitee, "updated")) == "DECLINED"


def test_a_tampered_or_foreign_token_changes_nothing_and_answers_400(
    mail_server: Server, smtp: SmtpServer, client: httpx.Client, host: Person
) -> None:
    invitee = invitee_address()
    event_id = create(client, host, participants=[invitee])["id"]
    url = links(email(smtp, event_id, invitee, "created"))["accepted"]
    head, token, query = re.fullmatch(r"(.*/rsvp/)([^?]+)(\?.*)", url).groups()  # type: ignore[union-attr]
    middle = len(token) - 20  # inside the signature, where every character counts
    tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1:]
    for bad in (f"{head}{tampered}{query}", f"{head}not-a-token{query}",
                f"{head}{host.access}{query}", f"{head}{host.refresh}{query}"):
        assert_page(httpx.get(bad, timeout=30), 400, "This answer link is not valid")
    assert_page(httpx.get(f"{head}{token}?response=maybe", timeout=30), 400,
                "This answer link is incomplete")
    assert_page(httpx.get(f"{head}{token}", timeout=30), 400, "This answer link is incomplete")
    # a scanner's HEAD probe of a good link is no answer
    assert httpx.head(url, timeout=30).status_code == 405
    # nor does an answer token pass as an access token
    assert client.get("/api/user/me", headers={"Authorization": f"Bearer {token}"}
                      ).status_code == 401
    assert [entry["type"] for entry in history(client, host, event_id)] == ["Created"]


def test_an_expired_link_answers_410_and_records_nothing(
    mail_server: Server, smtp: SmtpServer, client: httpx.Client, host: Person
) -> None:
    invitee = invitee_address()
    # an event that ended an hour ago: its invitation's links had expired when they were made
    past = create(client, host, participants=[invitee], starting_time=at(hours=-3),
                  end_time=at(hours=-1))["id"]
    url = links(email(smtp, past, invitee, "created"))["accepted"]
    assert_page(httpx.get(url, timeout=30), 410, "This event has ended")
    assert len(history(client, host, past)) == 1
    # a link signed with the server's key whose time ran out while the event still goes on
    event_id = create(client, host, participants=[invitee])["id"]
    invitee_id = email(smtp, event_id, invitee, "created").id_parts()[2]
    expired = server_links(mail_server).links(event_id, invitee_id,
                                              datetime.now(UTC) - timedelta(minutes=1))
    assert_page(httpx.get(expired["accepted"], timeout=30), 410, "This event has ended")
    assert len(history(client, host, event_id)) == 1


def test_links_of_a_deleted_event_a_removed_invitee_or_an_erased_one_record_nothing(
    mail_server: Server, smtp: SmtpServer, client: httpx.Client, host: Person
) -> None:
    kept, removed, erased = invitee_address(), invitee_address(), invitee_address()
    event_id = create(client, host, participants=[kept, removed, erased])["id"]
    found = {who: email(smtp, event_id, who, "created") for who in (kept, removed, erased)}
    changed = client.patch(f"/api/event/{event_id}", json={"participants": [kept, erased]},
                           headers=host.headers)
    assert changed.status_code == 200, changed.text
    assert_page(httpx.get(links(found[removed])["accepted"], timeout=30), 403,
                "You are no longer invited to this event")
    erase_invitee(mail_server, found[erased].id_parts()[2])
    assert_page(httpx.get(links(found[erased])["accepted"], timeout=30), 410,
                "This invitation no longer exists")
    assert [e["type"] for e in history(client, host, event_id)] == ["Created", "Updated"]

    assert client.delete(f"/api/event/{event_id}", headers=host.headers).status_code == 200
    assert_page(httpx.get(links(found[kept])["tentative"], timeout=30), 410,
                "This event can no longer be answered")
    assert [e["type"] for e in history(client, host, event_id)] == ["Created", "Updated",
                                                                    "Deleted"]


def test_a_link_in_news_of_one_occurrence_answers_for_that_occurrence_alone(
    mail_server: Server, smtp: SmtpServer, client: httpx.Client, host: Person
) -> None:
    invitee = invitee_address()
    first = datetime.fromisocalendar(datetime.now(UTC).year + 1, 2, 1).replace(
        hour=10, tzinfo=UTC)
    series = create(client, host, participants=[invitee], starting_time=first.isoformat(),
                    end_time=(first + timedelta(hours=1)).isoformat(),
                    recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"])
    event_id = series["id"]
    invitation = email(smtp, event_id, invitee, "created")
    invitee_id = invitation.id_parts()[2]
    second = first + timedelta(weeks=1)
    key = second.strftime("%Y%m%dT%H%M%SZ")
    occurrence = f"{event_id}_{key}"
    moved = client.patch(f"/api/event/{occurrence}", json={"location": "Room 2"},
                         headers=host.headers)
    assert moved.status_code == 200, moved.text

    def news_of(version: int) -> Received:
        return eventually(lambda: next((
            r for r in smtp.received()
            if r.message_id.startswith(f"<{event_id}.{version}.{invitee_id}.updated.{key}@")),
            None), "the email about the occurrence")

    news = news_of(2)
    assert partstat(news) == "NEEDS-ACTION"
    found = links(news)
    assert set(found) == {"accepted", "declined", "tentative"}
    token = found["tentative"].split("/rsvp/")[1].split("?")[0]
    answering = server_links(mail_server).check(token)
    assert (answering.event_id, answering.original_start) == (event_id, second)

    assert_page(httpx.get(found["tentative"], timeout=30), 200,
                "You answered maybe to “Standup”")
    shown = client.get(f"/api/event/{occurrence}", headers=host.headers).json()["event"]
    assert {a["participant"]: a["response"] for a in shown["attendees"]} == {
        invitee: "tentative"}
    assert attendees(client, host, event_id) == {invitee: "needs_action"}
    last = history(client, host, event_id)[-1]
    assert (last["type"], last["by"], last["instance_id"]) == (
        "Responded", invitee_id, occurrence)
    # the occurrence's next news carries its own answer as PARTSTAT
    again = client.patch(f"/api/event/{occurrence}", json={"location": "Room 3"},
                         headers=host.headers)
    assert again.status_code == 200, again.text
    assert partstat(news_of(4)) == "TENTATIVE"
    # the invitation to the whole series answers for the whole series
    whole = links(invitation)["accepted"].split("/rsvp/")[1].split("?")[0]
    assert server_links(mail_server).check(whole).original_start is None
