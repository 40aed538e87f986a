"""If-None-Match on GET one (JSON and .ics): 304 with the ETag and no body while the client's
version is current, in the strong, weak, listed and * forms; the full answer once it moved."""

from __future__ import annotations

import httpx

from tests.conftest import Person, event_body


def test_a_matching_if_none_match_answers_304_in_every_form_until_the_event_moves(
    http: httpx.Client, owner: Person
) -> None:
    created = http.post("/api/events", json=event_body(), headers=owner.headers)
    assert created.status_code == 201, created.text
    url = f"/api/event/{created.json()['event']['id']}"
    for held in ('"1"', 'W/"1"', '"7", W/"1"', "*"):
        for path in (url, url + ".ics"):
            answer = http.get(path, headers={**owner.headers, "If-None-Match": held})
            assert answer.status_code == 304, (held, path, answer.text)
            assert answer.content == b""
            assert answer.headers["etag"] == '"1"'
    assert http.get(url, headers={**owner.headers, "If-None-Match": '"2"'}).status_code == 200
    moved = http.patch(url, json={"name": "Moved"}, headers=owner.headers)
    assert moved.status_code == 200, moved.text
    answer = http.get(url, headers={**owner.headers, "If-None-Match": '"1"'})
    assert answer.status_code == 200
    assert answer.headers["etag"] == '"2"' and answer.json()["event"]["name"] == "Moved"
    old = http.get(url, params={"as_of": 1}, headers={**owner.headers, "If-None-Match": '"1"'})
    assert old.status_code == 304
