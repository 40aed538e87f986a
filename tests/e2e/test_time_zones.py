"""Named time zones over real HTTP (SPEC §6.1), on both backends: an event's `time_zone` is an
IANA name; answers keep the instants in UTC and show them in the zone beside them, on either
side of a DST change; the zone is a fact of its own; calendar files carry TZID with a VTIMEZONE
that parsers none of us wrote (icalendar, ical.js) read back to the same local and UTC times;
emails show the zone's local time and name."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import icalendar
import pytest

from tests.conftest import Person, Server, assert_error, event_body, eventually, sign_up
from tests.mail_clients import by_icaljs, read_email

# Each pair: the same 09:00 local, the week before and after the zone's spring change (Berlin
# goes to summer time on 2027-03-28, New York on 2027-03-14).
BEFORE_AND_AFTER = {
    "Europe/Berlin": [("2027-03-26T09:00:00+01:00", "2027-03-26T08:00:00Z"),
                      ("2027-03-29T09:00:00+02:00", "2027-03-29T07:00:00Z")],
    "America/New_York": [("2027-03-12T09:00:00-05:00", "2027-03-12T14:00:00Z"),
                         ("2027-03-15T09:00:00-04:00", "2027-03-15T13:00:00Z")],
}
# Not zones: an offset, a path out of the zone directory, the machine's own zone, a name in
# the wrong case, an abbreviation, a NUL byte, nothing, a number, and a name too long.
NOT_ZONES: list[Any] = ["+02:00", "../../etc/passwd", "/etc/localtime", "localtime",
                        "europe/berlin", "CEST", "Europe/Berlin\x00", "", "Mars/Olympus", 2,
                        "Europe/" + "x" * 300]


def post(http: httpx.Client, owner: Person, **fields: Any) -> httpx.Response:
    answer = http.post("/api/events/", json=event_body(**fields), headers=owner.headers)
    assert answer.status_code == 201, answer.text
    return answer


def create(http: httpx.Client, owner: Person, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = post(http, owner, **fields).json()["event"]
    return event


def hour_later(start: str) -> str:
    """The same time an hour later (the tables' times are on the hour, 08:00 to 14:00)."""
    hour = int(start[11:13])
    return f"{start[:11]}{hour + 1:02}{start[13:]}"


def listed(http: httpx.Client, owner: Person, name: str, position: str) -> list[dict[str, Any]]:
    """The events named `name` as the list shows them, once the view has the write."""
    answer = http.get("/api/events/", params={"q": name, "min_position": position},
                      headers=owner.headers)
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["events"] if e["name"] == name]


@pytest.mark.parametrize("zone", sorted(BEFORE_AND_AFTER))
def test_an_event_in_a_named_zone_is_shown_in_local_time_on_both_sides_of_dst(
        http: httpx.Client, owner: Person, zone: str) -> None:
    name = f"Standup {uuid.uuid4().hex[:8]}"
    for local_start, utc_start in BEFORE_AND_AFTER[zone]:
        # given in UTC, shown in the zone: the offset is the zone's on that day
        made = http.post("/api/events/", json=event_body(
            name=name, starting_time=utc_start, end_time=hour_later(local_start),
            time_zone=zone), headers=owner.headers)
        assert made.status_code == 201, made.text
        event = made.json()["event"]
        expected = {"time_zone": zone, "starting_time": utc_start,
                    "end_time": hour_later(utc_start), "local_start": local_start,
                    "local_end": hour_later(local_start)}
        assert {k: event[k] for k in expected} == expected
        read = http.get(f"/api/event/{event['id']}", headers=owner.headers)
        assert {k: read.json()["event"][k] for k in expected} == expected
        [shown] = [e for e in listed(http, owner, name, made.headers["X-Position"])
                   if e["id"] == event["id"]]
        assert {k: shown[k] for k in expected} == expected


def test_an_event_without_a_zone_is_in_utc(http: httpx.Client, owner: Person) -> None:
    event = create(http, owner, starting_time="2027-06-01T09:00:00+02:00",
                   end_time="2027-06-01T10:00:00+02:00")
    assert (event["time_zone"], event["starting_time"], event["local_start"],
            event["local_end"]) == ("UTC", "2027-06-01T07:00:00Z", "2027-06-01T07:00:00+00:00",
                                    "2027-06-01T08:00:00+00:00")


@pytest.mark.parametrize("zone", NOT_ZONES, ids=repr)
def test_a_zone_that_is_not_an_iana_name_is_refused_naming_the_field(
        http: httpx.Client, owner: Person, zone: Any) -> None:
    error = assert_error(http.post("/api/events/", json=event_body(time_zone=zone),
                                   headers=owner.headers), 422, "invalid_fields")
    assert set(error["fields"]) == {"time_zone"}
    event = create(http, owner)
    error = assert_error(http.patch(f"/api/event/{event['id']}", json={"time_zone": zone},
                                    headers=owner.headers), 422, "invalid_fields")
    assert set(error["fields"]) == {"time_zone"}
    assert http.get(f"/api/event/{event['id']}", headers=owner.headers).json()["event"] == event


def test_batches_take_zones_and_refuse_bad_ones_by_item(http: httpx.Client,
                                                        owner: Person) -> None:
    made = http.post("/api/batch_events/", json=[event_body(time_zone="Asia/Tokyo"),
                                                 event_body()], headers=owner.headers)
    assert made.status_code == 201, made.text
    tokyo, utc = made.json()["events"]
    assert (tokyo["time_zone"], tokyo["local_start"][-6:], utc["time_zone"]) == (
        "Asia/Tokyo", "+09:00", "UTC")
    changed = http.put("/api/batch_events/", json=[{"id": utc["id"], "time_zone": "Asia/Dubai"}],
                       headers=owner.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"][0]["local_start"][-6:] == "+04:00"
    refused = http.put("/api/batch_events/", json=[
        {"id": tokyo["id"], "name": "Fine"}, {"id": utc["id"], "time_zone": "Nowhere/Else"}],
        headers=owner.headers)
    assert refused.status_code == 422, refused.text
    assert set(refused.json()["error"]["items"]["1"]) == {"time_zone"}, refused.text
    assert http.get(f"/api/event/{tokyo['id']}", headers=owner.headers).json()["event"][
        "name"] == tokyo["name"]


def test_changing_the_zone_alone_keeps_the_instants_and_is_a_fact(
        http: httpx.Client, owner: Person) -> None:
    name = f"Moved zone {uuid.uuid4().hex[:8]}"
    event = create(http, owner, name=name, starting_time="2027-03-29T09:00:00+02:00",
                   end_time="2027-03-29T10:00:00+02:00", time_zone="Europe/Berlin")
    answer = http.patch(f"/api/event/{event['id']}", json={"time_zone": "America/New_York"},
                        headers=owner.headers)
    assert answer.status_code == 200, answer.text
    changed = answer.json()["event"]
    assert changed["version"] == event["version"] + 1
    assert (changed["starting_time"], changed["end_time"]) == (event["starting_time"],
                                                               event["end_time"])
    assert (changed["time_zone"], changed["local_start"], changed["local_end"]) == (
        "America/New_York", "2027-03-29T03:00:00-04:00", "2027-03-29T04:00:00-04:00")
    # the same zone again changes nothing and records nothing
    again = http.patch(f"/api/event/{event['id']}", json={"time_zone": "America/New_York"},
                       headers=owner.headers)
    assert again.status_code == 200 and again.json()["event"]["version"] == changed["version"]
    # the list's rendered text follows the new version
    [shown] = listed(http, owner, name, answer.headers["X-Position"])
    assert (shown["time_zone"], shown["local_start"]) == ("America/New_York",
                                                          changed["local_start"])

    history = http.get(f"/api/event/{event['id']}/history", headers=owner.headers).json()
    created, updated = history["history"]
    assert created["type"] == "Created" and created["changes"]["time_zone"] == "Europe/Berlin"
    assert (updated["type"], updated["changes"]) == ("Updated", {"time_zone": "America/New_York"})
    before = http.get(f"/api/event/{event['id']}", params={"as_of": event["version"]},
                      headers=owner.headers).json()["event"]
    assert (before["time_zone"], before["local_start"]) == ("Europe/Berlin",
                                                            "2027-03-29T09:00:00+02:00")


def test_calendar_files_name_the_zone_and_parsers_read_the_same_times(
        http: httpx.Client, owner: Person) -> None:
    name = f"Zoned {uuid.uuid4().hex[:8]}"
    events = [create(http, owner, name=name, starting_time=utc_start,
                     end_time=hour_later(local_start), time_zone=zone)
              for zone, pairs in BEFORE_AND_AFTER.items() for local_start, utc_start in pairs]
    made = post(http, owner, name=name, starting_time="2027-03-29T09:00:00Z",
                end_time="2027-03-29T10:00:00Z")
    plain = made.json()["event"]
    texts = []
    for event in events:
        answer = http.get(f"/api/event/{event['id']}.ics", headers=owner.headers)
        assert answer.status_code == 200, answer.text
        texts.append(answer.text)
        calendar = icalendar.Calendar.from_ical(answer.text)
        [vevent] = calendar.walk("VEVENT")
        assert vevent["DTSTART"].params["TZID"] == event["time_zone"]
        start = vevent.decoded("DTSTART")
        assert start.isoformat() == event["local_start"]
        assert start.astimezone(UTC) == datetime.fromisoformat(event["starting_time"])
        assert [str(zone["TZID"]) for zone in calendar.walk("VTIMEZONE")] == [event["time_zone"]]
    whole = http.get("/api/events.ics", params={"q": name,
                                                "min_position": made.headers["X-Position"]},
                     headers=owner.headers)
    assert whole.status_code == 200, whole.text
    assert sorted(str(z["TZID"]) for z in icalendar.Calendar.from_ical(whole.text).walk(
        "VTIMEZONE")) == sorted(BEFORE_AND_AFTER)
    texts.append(whole.text)
    plain_text = http.get(f"/api/event/{plain['id']}.ics", headers=owner.headers).text
    assert "DTSTART:20270329T090000Z" in plain_text and "VTIMEZONE" not in plain_text

    *singles, listed_ = by_icaljs(texts)
    by_uid = {e.uid: e for e in listed_}
    for event, (read,) in zip(events, singles, strict=True):
        for found in (read, by_uid[event["id"]]):
            assert found.tzid == event["time_zone"]
            assert found.local_start == event["local_start"][:19]
            assert found.local_end == event["local_end"][:19]
            assert found.start == datetime.fromisoformat(event["starting_time"])
            assert found.end == datetime.fromisoformat(event["end_time"])


def test_emails_show_the_zones_local_time_and_name(http: httpx.Client, owner: Person,
                                                   server: Server) -> None:
    guest = sign_up(http, "guest")
    event = create(http, owner, name="Zoned invitation", participants=[guest.username],
                   starting_time="2027-03-29T07:00:00Z", end_time="2027-03-29T08:00:00Z",
                   time_zone="Europe/Berlin")

    def written() -> list[Path] | None:
        found = [p for p in (server.data_dir / "outbox").rglob("*.eml") if event["id"] in p.name]
        return found or None

    [path] = eventually(written, "the invitation in the dev outbox")
    email = read_email(path.read_bytes())
    when = "Monday 29 March 2027, 09:00–10:00 Europe/Berlin (CEST, UTC+02:00)"
    assert f"When:  {when}" in email.text("text/plain")
    assert "09:00 Europe/Berlin (CEST, UTC+02:00)" in str(email.message["Subject"])
    [[invitation]] = by_icaljs([email.inline_calendar])
    assert (invitation.tzid, invitation.local_start) == ("Europe/Berlin", "2027-03-29T09:00:00")
    assert invitation.start == datetime(2027, 3, 29, 7, tzinfo=UTC)
