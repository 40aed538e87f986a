"""Free/busy over real HTTP on both backends (SPEC §6.6): merged busy intervals cut to the
window, nothing of the events in the answer, unknown users marked not_found, and 422s for too
many users or a window that is missing, inverted or longer than 93 days. The answer comes from
the events view, which follows the writes: tests wait for it with `eventually`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import Person, assert_error, event_body, eventually, sign_up

FREEBUSY = "/api/freebusy"
# A day far from now, so nothing else of the module's events falls in it by chance.
DAY = datetime(2031, 3, 4, tzinfo=UTC)


def t(hours: float, day: datetime = DAY) -> datetime:
    return day + timedelta(hours=hours)


def text(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def create(http: httpx.Client, owner: Person, start: datetime, end: datetime,
           **overrides: Any) -> dict[str, Any]:
    answer = http.post("/api/events/", headers=owner.headers, json=event_body(
        starting_time=text(start), end_time=text(end), **overrides))
    assert answer.status_code == 201, answer.text
    event: dict[str, Any] = answer.json()["event"]
    return event


def ask(http: httpx.Client, who: Person, users: list[str], start: datetime,
        end: datetime) -> httpx.Response:
    return http.get(FREEBUSY, headers=who.headers, params={
        "users": ",".join(users), "starts_after": text(start), "starts_before": text(end)})


def calendars(http: httpx.Client, who: Person, users: list[str], start: datetime,
              end: datetime) -> dict[str, Any]:
    answer = ask(http, who, users, start, end)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()["calendars"]
    return found


def intervals(*pairs: tuple[float, float]) -> list[dict[str, str]]:
    return [{"start": text(t(a)), "end": text(t(b))} for a, b in pairs]


def busy_becomes(http: httpx.Client, who: Person, user: str, start: datetime, end: datetime,
                 expected: list[dict[str, str]]) -> None:
    """The view follows the writes: wait until it shows what they wrote."""
    seen: list[Any] = []

    def shows() -> bool:
        seen[:] = [calendars(http, who, [user], start, end)[user]]
        return bool(seen[0] == {"busy": expected})

    eventually(shows, lambda: f"busy of {user} is {seen}, not {expected}")


@pytest.fixture
def alice(http: httpx.Client) -> Person:
    return sign_up(http, "alice")


def test_overlapping_and_touching_events_are_one_busy_interval(
    http: httpx.Client, alice: Person, other: Person,
) -> None:
    for start, end in ((10, 11), (10.5, 12), (12, 13), (11, 11.5), (15, 16)):
        create(http, alice, t(start), t(end))
    busy_becomes(http, other, alice.username, t(0), t(24), intervals((10, 13), (15, 16)))


def test_busy_intervals_are_cut_to_the_window(
    http: httpx.Client, alice: Person, other: Person,
) -> None:
    create(http, alice, t(8), t(10))  # over the window's start
    create(http, alice, t(12), t(13))  # inside
    create(http, alice, t(17), t(20))  # over its end
    create(http, alice, t(5), t(9))  # ends at its start: not busy within
    create(http, alice, t(18), t(19))  # starts at its end: not within
    busy_becomes(http, other, alice.username, t(9), t(18), intervals((9, 10), (12, 13),
                                                                     (17, 18)))
    # an event longer than the window fills it
    create(http, alice, t(-30), t(30))
    busy_becomes(http, other, alice.username, t(9), t(18), intervals((9, 18)))


def test_the_answer_tells_nothing_of_the_events_but_their_times(
    http: httpx.Client, alice: Person, other: Person,
) -> None:
    secret = uuid.uuid4().hex
    event = create(http, alice, t(10), t(11), name=f"Secret {secret}",
                   location=f"Hidden place {secret}", participants=[other.username])
    busy_becomes(http, other, alice.username, t(0), t(24), intervals((10, 11)))
    answer = ask(http, other, [alice.username], t(0), t(24))
    assert secret not in answer.text
    assert event["id"] not in answer.text
    assert other.username not in answer.text
    assert answer.json() == {"calendars": {alice.username: {"busy": intervals((10, 11))}}}


def test_a_deleted_event_frees_its_time_and_a_moved_one_moves_it(
    http: httpx.Client, alice: Person, other: Person,
) -> None:
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) \
        + timedelta(days=3)
    dropped = create(http, alice, t(9, day), t(10, day))
    moved = create(http, alice, t(11, day), t(12, day))
    busy_becomes(http, other, alice.username, day, t(24, day), [
        {"start": text(t(9, day)), "end": text(t(10, day))},
        {"start": text(t(11, day)), "end": text(t(12, day))}])
    assert http.delete(f"/api/event/{dropped['id']}", headers=alice.headers).status_code == 200
    answer = http.patch(f"/api/event/{moved['id']}", headers=alice.headers,
                        json={"starting_time": text(t(14, day)), "end_time": text(t(16, day))})
    assert answer.status_code == 200, answer.text
    busy_becomes(http, other, alice.username, day, t(24, day), [
        {"start": text(t(14, day)), "end": text(t(16, day))}])


def test_several_users_are_answered_each_by_the_name_asked_and_unknown_ones_not_found(
    http: httpx.Client, alice: Person, other: Person,
) -> None:
    bob = sign_up(http, "bob")
    create(http, alice, t(10), t(11))
    create(http, bob, t(13), t(14))
    nobody = f"nobody_{uuid.uuid4().hex[:8]}"
    busy_becomes(http, other, bob.username, t(0), t(24), intervals((13, 14)))
    busy_becomes(http, other, alice.username, t(0), t(24), intervals((10, 11)))
    found = calendars(http, other, [alice.username, nobody, bob.username, "not a name@x",
                                    alice.username.upper(), other.username], t(0), t(24))
    assert found == {
        alice.username: {"busy": intervals((10, 11))},
        nobody: {"error": "not_found"},
        bob.username: {"busy": intervals((13, 14))},
        "not a name@x": {"error": "not_found"},
        alice.username.upper(): {"busy": intervals((10, 11))},  # usernames ignore case
        other.username: {"busy": []},
    }


def test_at_most_fifty_users_are_asked_about_at_once(
    http: httpx.Client, alice: Person, other: Person,
) -> None:
    fifty = [alice.username] + [f"someone_{n}" for n in range(49)]
    assert len(calendars(http, other, fifty, t(0), t(24))) == 50
    error = assert_error(ask(http, other, [*fifty, "one_more"], t(0), t(24)), 422,
                         "invalid_fields")
    assert list(error["fields"]) == ["users"]
    assert "50" in error["message"]


def test_a_window_of_at_most_93_days_is_answered_and_a_longer_one_is_a_422(
    http: httpx.Client, alice: Person, other: Person,
) -> None:
    create(http, alice, t(24 * 92), t(24 * 92 + 1))
    busy_becomes(http, other, alice.username, t(0), t(24 * 93),
                 intervals((24 * 92, 24 * 92 + 1)))
    error = assert_error(ask(http, other, [alice.username], t(0), t(24 * 94)), 422,
                         "invalid_fields")
    assert list(error["fields"]) == ["starts_before"]
    assert "93 days" in error["message"]


@pytest.mark.parametrize(("params", "fields"), [
    ({"starts_after": text(t(0)), "starts_before": text(t(1))}, ["users"]),
    ({"users": ",", "starts_after": text(t(0)), "starts_before": text(t(1))}, ["users"]),
    ({"users": "x"}, ["starts_after", "starts_before"]),
    ({"users": "x", "starts_after": text(t(0))}, ["starts_before"]),
    ({"users": "x", "starts_after": "tomorrow", "starts_before": text(t(1))}, ["starts_after"]),
    ({"users": "x", "starts_after": "2031-03-04T00:00:00", "starts_before": text(t(1))},
     ["starts_after"]),
    ({"users": "x", "starts_after": text(t(1)), "starts_before": text(t(1))},
     ["starts_before"]),
    ({"users": "x", "starts_after": text(t(2)), "starts_before": text(t(1))},
     ["starts_before"]),
])
def test_a_missing_or_bad_window_or_no_users_is_a_422_naming_the_field(
    http: httpx.Client, other: Person, params: dict[str, str], fields: list[str],
) -> None:
    error = assert_error(http.get(FREEBUSY, headers=other.headers, params=params), 422,
                         "invalid_fields")
    assert sorted(error["fields"]) == sorted(fields)


def test_free_busy_needs_a_token(http: httpx.Client, alice: Person) -> None:
    assert_error(http.get(FREEBUSY, params={
        "users": alice.username, "starts_after": text(t(0)), "starts_before": text(t(1))}), 401)


def respond(http: httpx.Client, who: Person, event_id: str, response: str) -> None:
    answer = http.post(f"/api/event/{event_id}/response", headers=who.headers,
                       json={"response": response})
    assert answer.status_code == 200, answer.text


def test_a_participant_is_busy_once_they_accept_and_free_if_they_decline_or_hesitate(
    http: httpx.Client, alice: Person, other: Person,
) -> None:
    accepting, declining, unsure, silent = (sign_up(http, "guest") for _ in range(4))
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) \
        + timedelta(days=5)
    event = create(http, alice, t(10, day), t(11, day), participants=[
        p.username for p in (accepting, declining, unsure, silent)])
    respond(http, accepting, event["id"], "accepted")
    respond(http, declining, event["id"], "declined")
    respond(http, unsure, event["id"], "tentative")
    hour = [{"start": text(t(10, day)), "end": text(t(11, day))}]
    busy_becomes(http, other, accepting.username, day, t(24, day), hour)
    found = calendars(http, other, [alice.username, accepting.username, declining.username,
                                    unsure.username, silent.username], day, t(24, day))
    assert found == {alice.username: {"busy": hour}, accepting.username: {"busy": hour},
                     declining.username: {"busy": []}, unsure.username: {"busy": []},
                     silent.username: {"busy": []}}
    # a new time voids the answers (SPEC §6.3): the owner stays busy, the guest is free again
    moved = http.patch(f"/api/event/{event['id']}", headers=alice.headers,
                       json={"starting_time": text(t(12, day)), "end_time": text(t(13, day))})
    assert moved.status_code == 200, moved.text
    busy_becomes(http, other, alice.username, day, t(24, day),
                 [{"start": text(t(12, day)), "end": text(t(13, day))}])
    assert calendars(http, other, [accepting.username], day, t(24, day)) == {
        accepting.username: {"busy": []}}


def occurrence_id(event: dict[str, Any], start: datetime) -> str:
    return f"{event['id']}_{start.strftime('%Y%m%dT%H%M%SZ')}"


def test_a_series_is_busy_at_each_occurrence_in_the_window_as_changed_or_cancelled(
    http: httpx.Client, alice: Person, other: Person,
) -> None:
    """Expanded by domain.recurrence from before the window (a daily 23:00-01:00 under way
    at the window's start counts); an occurrence moved or cancelled for itself counts as
    it is now."""
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) \
        + timedelta(days=10)
    late = create(http, alice, t(23, day - timedelta(days=3)), t(25, day - timedelta(days=3)),
                  recurrence=["RRULE:FREQ=DAILY;COUNT=5"])
    create(http, alice, t(10, day - timedelta(days=2)), t(11, day - timedelta(days=2)),
           recurrence=["RRULE:FREQ=DAILY"])
    window = (day, t(48, day))
    busy_becomes(http, other, alice.username, *window, [
        {"start": text(t(0, day)), "end": text(t(1, day))},
        {"start": text(t(10, day)), "end": text(t(11, day))},
        {"start": text(t(23, day)), "end": text(t(25, day))},
        {"start": text(t(34, day)), "end": text(t(35, day))},
        {"start": text(t(47, day)), "end": text(t(48, day))}])  # cut at the window's end
    moved = http.patch(f"/api/event/{occurrence_id(late, t(23, day))}", headers=alice.headers,
                       json={"starting_time": text(t(20, day)), "end_time": text(t(21, day))})
    assert moved.status_code == 200, moved.text
    cancelled = http.delete(f"/api/event/{occurrence_id(late, t(23, day - timedelta(days=1)))}",
                            headers=alice.headers)
    assert cancelled.status_code == 200, cancelled.text
    busy_becomes(http, other, alice.username, *window, [
        {"start": text(t(10, day)), "end": text(t(11, day))},
        {"start": text(t(20, day)), "end": text(t(21, day))},
        {"start": text(t(34, day)), "end": text(t(35, day))},
        {"start": text(t(47, day)), "end": text(t(48, day))}])


def test_a_participant_who_accepted_a_series_is_busy_at_its_occurrences(
    http: httpx.Client, alice: Person, other: Person,
) -> None:
    guest, absent = sign_up(http, "guest"), sign_up(http, "guest")
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) \
        + timedelta(days=20)
    weekly = create(http, alice, t(9, day - timedelta(days=7)), t(10, day - timedelta(days=7)),
                    recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"],
                    participants=[guest.username, absent.username])
    respond(http, guest, weekly["id"], "accepted")
    respond(http, absent, weekly["id"], "declined")
    busy_becomes(http, other, guest.username, day, t(24 * 14, day), [
        {"start": text(t(9, day)), "end": text(t(10, day))},
        {"start": text(t(24 * 7 + 9, day)), "end": text(t(24 * 7 + 10, day))}])
    assert calendars(http, other, [absent.username], day, t(24 * 14, day)) == {
        absent.username: {"busy": []}}
