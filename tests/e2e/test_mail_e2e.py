"""Email end to end: a real `alphabet serve` process configured with ALPHABET_SMTP_URL and a real
SMTP server (aiosmtpd) on loopback. Changes made over HTTP reach every participant's inbox
within seconds; an SMTP outage across a restart of the server loses nothing, and a repeat is
only ever a repeat of the same Message-ID."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from alphabet.processes import MAILER_NICENESS
from tests.conftest import Backend, Person, Server, event_body, eventually, serving, sign_up
from tests.e2e.test_websockets import descendants
from tests.integration.test_mail import Received, SmtpServer, assert_duplicates_only_by_message_id
from tests.mail_clients import Address, by_icaljs, by_vobject


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mail_server(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer,
                backend: Backend) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("mail") / "data", backend.kind,
                 env={"ALPHABET_SMTP_URL": smtp.url}) as running:
        yield running


def wait_for(what: str, check: Callable[[], bool]) -> None:
    eventually(check, what, interval=0.1)


def mail_about(smtp: SmtpServer, event_id: str) -> list[Received]:
    return [r for r in smtp.received() if r.message_id.startswith(f"<{event_id}.")]


def kinds_by_address(smtp: SmtpServer, event_id: str) -> set[tuple[str, str]]:
    return {(r.to, r.kind) for r in mail_about(smtp, event_id)}


def create(http: httpx.Client, owner: Person, **fields: Any) -> str:
    answer = http.post("/api/events/", json=event_body(**fields), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    event_id: str = answer.json()["event"]["id"]
    return event_id


def outbox_attempts(server: Server, event_id: str, version: int) -> list[int]:
    """How often the server has tried each email of one version (read-only look)."""
    return [r[0] for r in server.rows(
        "SELECT COALESCE(d.attempts, 0) FROM mail_outbox o LEFT JOIN mail_delivery d "
        "ON d.message_id = o.message_id WHERE o.event_id = ? AND o.version = ? "
        "AND d.done_at IS NULL", (event_id, version))]


def failed_both(server: Server, event_id: str, version: int) -> bool:
    attempts = outbox_attempts(server, event_id, version)
    return len(attempts) == 2 and min(attempts) >= 1


def test_creating_updating_and_deleting_over_http_emails_every_participant(
    mail_server: Server, smtp: SmtpServer
) -> None:
    invitee = f"invitee_{uuid.uuid4().hex[:8]}@outside.example"
    with httpx.Client(base_url=mail_server.url, timeout=30) as http:
        owner = sign_up(http, "owner")
        guest = sign_up(http, "guest")
        event_id = create(http, owner, name="Quarterly", participants=[guest.username, invitee])
        changed = http.patch(f"/api/event/{event_id}", json={"name": "Quarterly review"},
                             headers=owner.headers)
        assert changed.status_code == 200, changed.text
        deleted = http.delete(f"/api/event/{event_id}", headers=owner.headers)
        assert deleted.status_code == 200, deleted.text

    expected = {(address, kind) for address in (guest.email, invitee)
                for kind in ("created", "updated", "deleted")}
    wait_for("created, updated and deleted emails to both participants",
             lambda: kinds_by_address(smtp, event_id) >= expected)

    received = mail_about(smtp, event_id)
    assert kinds_by_address(smtp, event_id) == expected
    assert owner.email not in {r.to for r in received}
    guest_mail = {r.kind: r for r in received if r.to == guest.email}
    for version, kind in enumerate(("created", "updated", "deleted"), start=1):
        assert guest_mail[kind].message_id == (
            f"<{event_id}.{version}.{guest.id}.{kind}@localhost>")
    assert guest_mail["updated"].subject == 'Updated: "Quarterly review"'
    assert guest_mail["deleted"].subject.startswith("Cancelled:")
    assert_duplicates_only_by_message_id(received)


def test_an_email_held_up_by_an_smtp_outage_arrives_after_the_server_restarts(
    mail_server: Server, smtp: SmtpServer
) -> None:
    invitee = f"invitee_{uuid.uuid4().hex[:8]}@outside.example"
    with httpx.Client(base_url=mail_server.url, timeout=30) as http:
        owner = sign_up(http, "owner")
        guest = sign_up(http, "guest")
        event_id = create(http, owner, name="Offsite", participants=[guest.username, invitee])
        wait_for("the invitations", lambda: kinds_by_address(smtp, event_id) == {
            (guest.email, "created"), (invitee, "created")})

        smtp.stop()
        changed = http.patch(f"/api/event/{event_id}", json={"location": "Haifa Bay"},
                             headers=owner.headers)
        assert changed.status_code == 200, changed.text
        assert changed.json()["event"]["version"] == 2
    # The consumer has tried and failed (so the retry path, not the first try, delivers).
    wait_for("a failed delivery attempt of both updates",
             lambda: failed_both(mail_server, event_id, 2))
    assert not any(r.kind == "updated" for r in mail_about(smtp, event_id))

    mail_server.stop()
    smtp.start()
    mail_server.start()

    expected = {(guest.email, "created"), (invitee, "created"),
                (guest.email, "updated"), (invitee, "updated")}
    wait_for("the held-up updates", lambda: kinds_by_address(smtp, event_id) == expected)
    received = mail_about(smtp, event_id)
    updates = {r.to: r for r in received if r.kind == "updated"}
    assert updates[guest.email].message_id == (
        f"<{event_id}.2.{guest.id}.updated@localhost>")
    assert updates[invitee].id_parts()[:2] == (event_id, 2)
    for update in updates.values():
        text = update.message.get_body(("plain",))
        assert text is not None and "Haifa Bay" in text.get_content()
    # the pass records what it sent when it ends, a moment after the server has the emails
    wait_for("the deliveries recorded", lambda: outbox_attempts(mail_server, event_id, 2) == [])
    assert_duplicates_only_by_message_id(smtp.received())


def test_invitations_made_over_http_are_itip_messages_that_calendar_parsers_understand(
    mail_server: Server, smtp: SmtpServer
) -> None:
    invitee = f"invitee_{uuid.uuid4().hex[:8]}@outside.example"
    start = datetime(2031, 6, 3, 9, 30, tzinfo=UTC)
    with httpx.Client(base_url=mail_server.url, timeout=30) as http:
        owner = sign_up(http, "owner")
        guest = sign_up(http, "guest")
        event_id = create(http, owner, name="Planning", participants=[guest.username, invitee],
                          starting_time=start.isoformat(),
                          end_time=(start + timedelta(hours=1)).isoformat())
        for change in ({"name": "Planning, round two"},
                       {"starting_time": (start + timedelta(days=1)).isoformat(),
                        "end_time": (start + timedelta(days=1, hours=1)).isoformat()}):
            answer = http.patch(f"/api/event/{event_id}", json=change, headers=owner.headers)
            assert answer.status_code == 200, answer.text
        assert http.delete(f"/api/event/{event_id}", headers=owner.headers).status_code == 200

    wait_for("four emails to each participant",
             lambda: len({(r.to, r.id_parts()[1]) for r in mail_about(smtp, event_id)}) == 8)
    received = sorted(mail_about(smtp, event_id), key=lambda r: (r.to, r.id_parts()[1]))
    emails = [item.read() for item in received]
    calendars = by_icaljs([email.inline_calendar for email in emails])
    seen = set()
    for item, email, (by_icaljs_,) in zip(received, emails, calendars, strict=True):
        (by_vobject_,) = by_vobject(email.inline_calendar)
        assert by_icaljs_ == by_vobject_
        version = item.id_parts()[1]
        method, sequence, status, begins = {
            1: ("REQUEST", 0, None, start),
            2: ("REQUEST", 0, None, start),
            3: ("REQUEST", 1, None, start + timedelta(days=1)),
            4: ("CANCEL", 2, "CANCELLED", start + timedelta(days=1)),
        }[version]
        assert email.part("text/calendar").get_param("method") == method
        assert (by_icaljs_.method, by_icaljs_.sequence, by_icaljs_.status) == (
            method, sequence, status)
        assert (by_icaljs_.uid, by_icaljs_.start) == (event_id, begins)
        assert by_icaljs_.organizer == Address("mailto:events@localhost", cn=owner.username)
        (attendee,) = by_icaljs_.attendees
        assert attendee.value == f"mailto:{item.to}"
        assert attendee.cn == (guest.username if item.to == guest.email else None)
        parsed = email.parsed  # mail-parser
        assert not parsed.defects
        assert parsed.headers["Auto-Submitted"] == "auto-generated"
        assert parsed.headers["Date"].endswith(" +0000")
        assert parsed.text_plain[0].startswith(owner.username)
        seen.add((item.to, version))
    assert seen == {(to, v) for to in (guest.email, invitee) for v in range(1, 5)}


def test_mail_is_delivered_by_a_process_of_its_own_at_a_lower_os_priority(
    mail_server: Server,
) -> None:
    assert mail_server.process is not None
    niceness = {}
    for pid in descendants(mail_server.process.pid) | {mail_server.process.pid}:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        niceness[pid] = int(stat.rsplit(")", 1)[1].split()[16])
    # the mailer alone defers; the workers and the views' follower keep the usual priority
    assert sorted(niceness.values()).count(MAILER_NICENESS) == 1, niceness
    assert set(niceness.values()) == {0, MAILER_NICENESS}, niceness


def test_a_change_or_cancellation_of_one_occurrence_emails_it_with_its_instance_id(
    mail_server: Server, smtp: SmtpServer
) -> None:
    first = datetime(2031, 6, 2, 9, tzinfo=UTC)
    second = first + timedelta(days=7)
    key = second.strftime("%Y%m%dT%H%M%SZ")
    with httpx.Client(base_url=mail_server.url, timeout=30) as http:
        owner = sign_up(http, "owner")
        guest = sign_up(http, "guest")
        event_id = create(http, owner, name="Weekly", participants=[guest.username],
                          starting_time=first.isoformat(),
                          end_time=(first + timedelta(hours=1)).isoformat(),
                          recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"])
        occurrence = f"{event_id}_{key}"
        answer = http.patch(f"/api/event/{occurrence}", json={"name": "Just this once"},
                            headers=owner.headers)
        assert answer.status_code == 200, answer.text
        assert http.delete(f"/api/event/{occurrence}", headers=owner.headers).status_code == 200

    wait_for("the creation's and both occurrence emails",
             lambda: len(mail_about(smtp, event_id)) >= 3)
    by_id = {r.message_id: r for r in mail_about(smtp, event_id)}
    changed = by_id[f"<{event_id}.2.{guest.id}.updated.{key}@localhost>"]
    cancelled = by_id[f"<{event_id}.3.{guest.id}.deleted.{key}@localhost>"]
    assert changed.subject == 'Updated: "Just this once"'
    for item, status in ((changed, None), (cancelled, "CANCELLED")):
        assert f"Only this occurrence: {occurrence}" in item.read().parsed.text_plain[0]
        (vevent,) = item.calendar().walk("VEVENT")
        assert str(vevent["UID"]) == event_id
        assert vevent.decoded("RECURRENCE-ID") == second
        assert "RRULE" not in vevent
        assert vevent.get("STATUS") == status
