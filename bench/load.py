"""Realistic data through the public API: users by sign-up, events by the batch endpoint, so the
store, the views and the mail outbox hold what real use would have left there."""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

PASSWORD = "bench password 1"
BATCH = 1000
SIGNUP_CONCURRENCY = 8  # argon2 takes ~40 ms a hash: more in flight only queues on 2 cores
MAX_PARTICIPANTS = 20
HORIZON_DAYS = 60
# Starts at least this far ahead: no reminder falls due and no event starts during a run, so
# every PUT is allowed.
EARLIEST_START = timedelta(hours=2)

LOCATIONS = [
    "Tel Aviv Port", "Zürich HB", "São Paulo", "Jerusalem Old City", "Haifa Bay",
    "Berlin Mitte", "München Marienplatz", "Köln Dom", "Wien Westbahnhof", "Genève Cornavin",
    "Paris Gare du Nord", "Lyon Part-Dieu", "Montréal Centre", "Québec Vieux-Port",
    "Bogotá Chapinero", "Medellín El Poblado", "Ciudad de México", "Málaga Centro",
    "Córdoba Mezquita", "Lisboa Baixa", "Porto Ribeira", "Kraków Rynek", "Gdańsk Stare Miasto",
    "Reykjavík Harpa", "Göteborg Central", "Malmö Hyllie", "København Nørreport",
    "Oslo Sentrum", "Helsinki Kamppi", "Tallinn Old Town", "Praha Hlavní", "Brno Centrum",
    "Budapest Keleti", "İstanbul Kadıköy", "Athens Syntagma", "Roma Termini",
    "Milano Centrale", "Napoli Chiaia", "Amsterdam Zuid", "Antwerpen Centraal",
    "London King's Cross", "Dublin Docklands", "Edinburgh Waverley", "New York Midtown",
    "San Francisco SoMa", "Toronto Union", "Buenos Aires Palermo", "Santiago Providencia",
    "Tokyo Shibuya", "Sydney Circular Quay",
]
NAMES = [
    "Standup", "Book club", "Team lunch", "Planning", "Retrospective", "Yoga class",
    "Board meeting", "Coffee chat", "Design review", "Hackathon", "Concert", "Workshop",
]


@dataclass
class User:
    id: str
    username: str
    access: str


@dataclass
class Dataset:
    """What the load left: the people, and which events the benchmark user may change."""

    users: list[User]
    owned_ids: list[str]  # the benchmark user's events: PUT targets (only the owner may PUT)
    other_ids: list[str]  # everyone else's: GET targets, never changed by the benchmark

    @property
    def owner(self) -> User:
        return self.users[0]

    @property
    def subscriber(self) -> User:
        """Whose calendar feed is polled: the last user, who owns no event (the batches are
        posted by the first ones) and takes part in about a hundred, a list page's worth."""
        return self.users[-1]


def when(rng: random.Random) -> tuple[str, str]:
    start = (datetime.now(UTC) + EARLIEST_START
             + timedelta(minutes=15 * rng.randrange(HORIZON_DAYS * 24 * 4)))
    end = start + timedelta(minutes=rng.choice((30, 45, 60, 90, 120, 180)))
    return start.isoformat(), end.isoformat()


def event_body(rng: random.Random, usernames: list[str]) -> dict[str, Any]:
    start, end = when(rng)
    return {
        "name": f"{rng.choice(NAMES)} {rng.randrange(1000)}",
        "starting_time": start,
        "end_time": end,
        "location": rng.choice(LOCATIONS),
        "participants": rng.sample(usernames, rng.randint(0, MAX_PARTICIPANTS)),
    }


def auth(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.access}"}


async def sign_up_all(url: str, count: int) -> list[User]:
    """Concurrent sign-ups; the first user is the benchmark's own."""
    gate = asyncio.Semaphore(SIGNUP_CONCURRENCY)

    async def one(client: httpx.AsyncClient, index: int) -> User:
        name = f"bench_user_{index:05d}"
        async with gate:
            answer = await client.post("/api/auth/signup/", json={
                "username": name, "email": f"{name}@example.com", "password": PASSWORD})
        answer.raise_for_status()
        body = answer.json()
        return User(body["user"]["id"], name, body["access"])

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return list(await asyncio.gather(*(one(client, i) for i in range(count))))


def sign_in(url: str, user: User) -> User:
    """A fresh access token (they last 15 minutes; a full run takes longer)."""
    answer = httpx.post(url + "/api/auth/signin/",
                        json={"username": user.username, "password": PASSWORD}, timeout=30)
    answer.raise_for_status()
    user.access = answer.json()["access"]
    return user


def load(url: str, users: int, events: int, seed: int = 1) -> Dataset:
    """Sign users up, then create events 1,000 per batch, each batch posted by another user
    (the first by the benchmark user)."""
    rng = random.Random(seed)
    people = asyncio.run(sign_up_all(url, users))
    usernames = [p.username for p in people]
    owned: list[str] = []
    others: list[str] = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for number, first in enumerate(range(0, events, BATCH)):
            owner = people[number % len(people)]
            items = [event_body(rng, usernames) for _ in range(min(BATCH, events - first))]
            answer = client.post("/api/batch_events/", json=items, headers=auth(owner))
            answer.raise_for_status()
            ids = [e["id"] for e in answer.json()["events"]]
            (owned if number == 0 else others).extend(ids)
    return Dataset(people, owned, others)


def calendar_feed(url: str, user: User) -> str:
    """A new calendar feed of `user`'s: its path (the URL without the server's address), which
    calendar apps poll with no header."""
    answer = httpx.post(url + "/api/user/me/calendar_feed", headers=auth(user), timeout=30)
    answer.raise_for_status()
    return str(urlsplit(answer.json()["url"]).path)


def views_lag(url: str) -> int:
    """Facts the server's views have yet to apply (from /readyz)."""
    views = httpx.get(url + "/readyz", timeout=10).json()["views"]
    return int(sum(v["lag"] for v in views.values()))


def mail_counts(data_dir: Path, event_store: str | None = None) -> tuple[int | None, int]:
    """Emails queued so far (rows of the mail view's outbox) and delivered so far (without
    SMTP the product writes each as an .eml file under <data dir>/outbox/). The mailer works
    through its backlog beside every measurement, so its size and pace belong in the report;
    no endpoint tells them. The queue is read from the state file (read-only), or from the
    PostgreSQL database `event_store`, and is None if the product's outbox table has changed
    shape."""
    delivered = sum(1 for _ in (data_dir / "outbox").glob("*/*/*.eml"))
    if event_store:
        from bench.postgres import outbox_size

        return outbox_size(event_store), delivered
    try:
        with closing(sqlite3.connect(f"file:{data_dir / 'state.sqlite'}?mode=ro", uri=True,
                                     timeout=10)) as conn:
            (queued,) = conn.execute("SELECT count(*) FROM mail_outbox").fetchone()
    except sqlite3.OperationalError:
        return None, delivered
    return int(queued), delivered


def emails(url: str) -> dict[str, int]:
    """The server's email counters from /metrics (which loopback may read): sent, pending."""
    text = httpx.get(url + "/metrics", timeout=30).text
    return {name: int(float(value)) for name, value in re.findall(
        r"^alphabet_emails_(sent|pending)(?:_total)?(?:\{[^}]*\})? (\S+)$", text, re.MULTILINE)}


def drain(url: str, limit_seconds: float) -> tuple[float, int, int]:
    """Wait until the server has done what earlier answers left it (facts its views have yet
    to apply, emails queued), so a measurement is not charged with the one before it: the
    seconds waited, the emails sent meanwhile, and what was still owed if the limit ran out."""
    started = time.monotonic()
    sent = emails(url).get("sent", 0)
    while True:
        counts = emails(url)
        left = views_lag(url) + counts.get("pending", 0)
        if not left or time.monotonic() - started >= limit_seconds:
            return time.monotonic() - started, counts.get("sent", 0) - sent, left
        time.sleep(0.5)


def settle(url: str, limit_seconds: float) -> tuple[float, int]:
    """Wait until the views have applied the load (lists and searches must see all of it);
    returns the seconds waited and the lag left if the limit ran out first."""
    started = time.monotonic()
    lag = views_lag(url)
    while lag and time.monotonic() - started < limit_seconds:
        time.sleep(0.2)
        lag = views_lag(url)
    return time.monotonic() - started, lag
