"""/metrics over real HTTP from a real `alphabet serve --workers 2`, read by prometheus-client's
own parser of the text format, on both backends: every metric named, counts that move with
requests, writes, sockets and emails, the two workers' counts summed into one answer, the
emails that fail to go out counted, and who may scrape (loopback clients, or the token)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import Scraped
from tests.conftest import (
    Backend,
    Person,
    Server,
    assert_error,
    event_body,
    free_port,
    serving,
    sign_up,
)
from tests.e2e.test_websockets import ready, socket

EVENTUALLY = 30.0  # seconds: a ceiling on a busy machine for the mailer and the views
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

EVERY_METRIC = {
    "alphabet_http_requests_total", "alphabet_http_request_duration_seconds_bucket",
    "alphabet_http_request_duration_seconds_count", "alphabet_websockets_open",
    "alphabet_group_commit_batch_size_count", "alphabet_log_head", "alphabet_view_lag",
    "alphabet_consumer_lag", "alphabet_emails_sent_total", "alphabet_emails_failed_total",
    "alphabet_emails_dropped_total", "alphabet_emails_pending", "alphabet_store_up",
}


def scrape(http: httpx.Client, **headers: str) -> Samples:
    answer = http.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def eventually(what: str, check: Callable[[], float | bool]) -> None:
    deadline = time.monotonic() + EVENTUALLY
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {EVENTUALLY:.0f} s: {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("metrics") / "data", backend=backend,
                     workers=2).start()
    yield running
    running.stop()


def test_every_metric_is_named_and_the_views_and_consumers_each_have_a_lag(
    http: httpx.Client
) -> None:
    samples = scrape(http)
    assert {name for name, _ in samples} >= EVERY_METRIC
    assert {dict(labels)["view"] for name, labels in samples
            if name == "alphabet_view_lag"} == {"events"}
    assert {dict(labels)["consumer"] for name, labels in samples
            if name == "alphabet_consumer_lag"} == {"mail", "reminders"}


def test_with_kafka_the_consumers_lag_is_the_relays() -> None:
    """The agents keep no position in the state database: what the server can see behind the
    head is the relay that feeds them."""
    from alphabet.app import scraped
    from alphabet.settings import Settings

    assert scraped(Settings()) == Scraped(["events"], ["mail", "reminders"], None)
    assert scraped(Settings(kafka_url="kafka://127.0.0.1:9092", metrics_token="t")) == \
        Scraped(["events"], ["relay"], "t")


def test_the_counts_of_both_workers_are_summed_in_every_answer(
    http: httpx.Client, server: Server
) -> None:
    """Requests on connections of their own land on either worker; whichever worker answers
    a scrape, the count is all of them."""
    route = {"route": "health.healthz", "method": "GET", "status": "200"}
    before = value(scrape(http), "alphabet_http_requests_total", **route)

    def one(_: int) -> int:
        return httpx.get(server.url + "/healthz", timeout=30).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(one, range(200))) == {200}
    counted = [p for p in (server.data_dir / "metrics").glob("counter_*.db")]
    assert len(counted) >= 2, f"one worker took every request: {counted}"
    for _ in range(6):  # scrapes on fresh connections, so both workers answer some
        with httpx.Client(base_url=server.url, timeout=30) as fresh_client:
            samples = scrape(fresh_client)
        assert value(samples, "alphabet_http_requests_total", **route) == before + 200
        assert value(samples, "alphabet_http_request_duration_seconds_count",
                     route="health.healthz", method="GET") >= before + 200


def test_a_missing_route_is_counted_under_one_label_whatever_its_path(
    http: httpx.Client
) -> None:
    before = scrape(http)
    for _ in range(3):
        assert http.get(f"/no/such/{uuid.uuid4().hex}").status_code == 404
    after = scrape(http)
    unmatched = {"route": "(unmatched)", "method": "GET", "status": "404"}
    assert value(after, "alphabet_http_requests_total", **unmatched) == \
        value(before, "alphabet_http_requests_total", **unmatched) + 3
    assert not any("/no/such" in label for _, labels in after for _, label in labels)


def test_writes_move_the_log_head_the_group_commits_and_the_views_catch_up(
    http: httpx.Client, owner: Person
) -> None:
    before = scrape(http)
    for number in range(3):
        made = http.post("/api/events/", json=event_body(name=f"Metered {number}"),
                         headers=owner.headers)
        assert made.status_code == 201, made.text
    after = scrape(http)
    assert value(after, "alphabet_log_head") >= value(before, "alphabet_log_head") + 3
    assert value(after, "alphabet_group_commit_batch_size_count") >= \
        value(before, "alphabet_group_commit_batch_size_count") + 1
    assert value(after, "alphabet_http_requests_total", route="events.create_event",
                 method="POST", status="201") == value(
        before, "alphabet_http_requests_total", route="events.create_event", method="POST",
        status="201") + 3

    def caught_up() -> bool:
        samples = scrape(http)
        return all(value(samples, name, **{kind: view}) == 0
                   for name, kind, view in (("alphabet_view_lag", "view", "events"),
                                            ("alphabet_consumer_lag", "consumer", "mail"),
                                            ("alphabet_consumer_lag", "consumer", "reminders")))

    eventually("every view and consumer at the log's head", caught_up)


def test_emails_sent_are_counted_and_none_stay_pending(
    http: httpx.Client, owner: Person, server: Server
) -> None:
    guest = sign_up(http, "guest")
    before = value(scrape(http), "alphabet_emails_sent_total")
    made = http.post("/api/events/", json=event_body(participants=[guest.username,
                                                                    "outsider@example.com"]),
                     headers=owner.headers)
    assert made.status_code == 201, made.text
    eventually("two invitations sent",
               lambda: value(scrape(http), "alphabet_emails_sent_total") >= before + 2)
    eventually("nothing pending", lambda: value(scrape(http), "alphabet_emails_pending") == 0)
    event_id = made.json()["event"]["id"]
    written = [path for path in (server.data_dir / "outbox").rglob("*.eml")
               if event_id in path.name]
    assert len(written) == 2, written


def test_open_websockets_are_counted_across_workers(http: httpx.Client, owner: Person,
                                                    server: Server) -> None:
    async def with_sockets() -> None:
        async with socket(server, "/ws/events", token=owner.access) as first, \
                socket(server, "/ws/events", token=owner.access) as second:
            await ready(first)
            await ready(second)
            assert value(await asyncio.to_thread(scrape, http), "alphabet_websockets_open") == 2

    before = value(scrape(http), "alphabet_websockets_open")
    assert before == 0
    asyncio.run(with_sockets())
    eventually("the sockets no longer counted",
               lambda: value(scrape(http), "alphabet_websockets_open") == 0)


def test_a_request_a_proxy_relayed_is_refused_without_a_token(http: httpx.Client) -> None:
    """Loopback by default means the client itself: a reverse proxy on this machine relays
    other clients' requests from loopback, and says so in its headers."""
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        error = assert_error(http.get("/metrics", headers={header: "203.0.113.7"}), 403,
                             "forbidden")
        assert "ALPHABET_METRICS_TOKEN" in error["message"]


def test_when_the_stores_cannot_be_read_the_workers_metrics_still_answer(
    http: httpx.Client, server: Server
) -> None:
    """A table the scrape reads taken away (and only that one, with nothing being written, so
    the follower and the mailer merely retry): /metrics answers what the workers counted,
    and says the stores could not be read, instead of failing the scrape."""
    assert value(scrape(http), "alphabet_store_up") == 1
    rename(server, "mail_outbox", "mail_outbox_away")
    try:
        samples = scrape(http)
        assert value(samples, "alphabet_store_up") == 0
        names = {name for name, _ in samples}
        assert "alphabet_http_requests_total" in names
        assert "alphabet_emails_pending" not in names
    finally:
        rename(server, "mail_outbox_away", "mail_outbox")
    eventually("the stores read again", lambda: value(scrape(http), "alphabet_store_up") == 1)


def rename(server: Server, table: str, to: str) -> None:
    statement = f"ALTER TABLE {table} RENAME TO {to}"
    if server.backend.url is None:
        import sqlite3

        conn = sqlite3.connect(server.data_dir / "state.sqlite", timeout=30)
        try:
            conn.execute(statement)
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(server.backend.url, autocommit=True) as conn:
        conn.execute(statement.encode())


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[Server]:
    """A token for /metrics, and an SMTP server that is never there (nothing listens on
    its port), so every email fails."""
    with serving(tmp_path_factory.mktemp("guarded") / "data", backend.kind, workers=2,
                 env={"ALPHABET_METRICS_TOKEN": TOKEN,
                      "ALPHABET_SMTP_URL": f"smtp://127.0.0.1:{free_port()}"}) as running:
        yield running


TOKEN = "scrape-" + uuid.uuid4().hex


def test_with_a_token_set_only_the_token_is_let_in_even_from_loopback(guarded: Server) -> None:
    with httpx.Client(base_url=guarded.url, timeout=30) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                        {"Authorization": f"Basic {TOKEN}"},
                        {"Authorization": f"Bearer {TOKEN}x"}):
            answer = client.get("/metrics", headers=headers)
            assert_error(answer, 401, "unauthorized")
            assert answer.headers["www-authenticate"] == "Bearer"
        samples = scrape(client, Authorization=f"Bearer {TOKEN}")
        assert value(samples, "alphabet_http_requests_total", route="metrics.metrics",
                     method="GET", status="401") == 5
        # a proxy's headers do not matter once the token is what lets a scraper in
        scrape(client, Authorization=f"Bearer {TOKEN}", **{"X-Forwarded-For": "203.0.113.7"})


def test_emails_that_cannot_be_sent_are_counted_as_failed_and_pending(guarded: Server) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=guarded.url, timeout=30) as client:
        organiser = sign_up(client, "organiser")
        made = client.post("/api/events/", json=event_body(participants=["far@example.com"]),
                           headers=organiser.headers)
        assert made.status_code == 201, made.text
        eventually("a failed attempt", lambda: value(
            scrape(client, **auth), "alphabet_emails_failed_total") >= 1)
        samples = scrape(client, **auth)
        assert value(samples, "alphabet_emails_pending") == 1
        assert value(samples, "alphabet_emails_sent_total") == 0


def test_the_metrics_directory_starts_empty_on_each_start(tmp_path: Path) -> None:
    """Counts left by an earlier run are not summed into the next one's."""
    data = tmp_path / "data"
    stale = data / "metrics" / "counter_1.db"
    with serving(data, "sqlite") as first, httpx.Client(base_url=first.url) as client:
        for _ in range(5):
            client.get("/healthz")
    stale.write_bytes(b"left over")
    with serving(data, "sqlite") as second:
        assert not stale.exists()
        with httpx.Client(base_url=second.url, timeout=30) as client:
            assert value(scrape(client), "alphabet_http_requests_total",
                         route="health.healthz", method="GET", status="200") == 0
