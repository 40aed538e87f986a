"""Shared fixtures: a real server process over real HTTP on either backend (SQLite files, or a
fresh PostgreSQL database per test module), and helpers to sign people up."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

T = TypeVar("T")
Spawn = Callable[..., "subprocess.Popen[Any]"]
ROOT = Path(__file__).resolve().parents[1]
# The PostgreSQL server the "postgres" backend makes its databases on (trust auth locally).
POSTGRES = os.environ.get("ALPHABET_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
BACKENDS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Backend:
    """Where a server keeps its event store and state: SQLite files in its data dir, or the
    PostgreSQL database `url` names."""

    kind: str
    url: str | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"ALPHABET_EVENT_STORE": self.url} if self.url else {}

    def rows(self, data_dir: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A query of the state database, read-only; `?` placeholders on both backends."""
        if self.url is None:
            conn = sqlite3.connect(f"file:{data_dir / 'state.sqlite'}?mode=ro", uri=True,
                                   timeout=30)
            try:
                return conn.execute(sql, params).fetchall()
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql.replace("?", "%s"), params or None).fetchall()

    def tables_holding(self, needle: str) -> list[str]:
        """PostgreSQL: the tables with a row whose text holds `needle` in any case (a bytea
        column, the event store's state, as the hex of its bytes); [] on SQLite, whose files
        are scanned instead."""
        if self.url is None:
            return []
        import psycopg

        found = []
        hexes = [needle.encode().hex(), needle.lower().encode().hex()]
        with psycopg.connect(self.url, autocommit=True) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
            for table in tables:
                row = conn.execute(
                    f"SELECT count(*) FROM {table} t WHERE strpos(lower(t::text), %s) > 0 "
                    "OR strpos(t::text, %s) > 0 OR strpos(t::text, %s) > 0",
                    (needle.lower(), *hexes),
                ).fetchone()
                if row and row[0]:
                    found.append(f"table {table}")
        return found

    def data_files_holding(self, needle: str) -> list[str] | None:
        """PostgreSQL: the data files of this database (tables, indexes, TOAST) whose bytes
        hold `needle`, after a CHECKPOINT has written every page out; None when the server's
        data directory cannot be read from here (a remote server)."""
        if self.url is None:
            return []
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
            home = Path(str(conn.execute("SHOW data_directory").fetchone()[0]))  # type: ignore[index]
            paths = dict(conn.execute(
                "SELECT pg_relation_filepath(oid), relname FROM pg_class "
                "WHERE pg_relation_filepath(oid) IS NOT NULL").fetchall())
        if not os.access(home, os.R_OK):
            return None
        wanted = needle.lower().encode()
        return [f"{path} ({name})" for path, name in paths.items()
                if any(segment.is_file() and wanted in segment.read_bytes().lower()
                       for segment in [home / path, *(home / path).parent.glob(
                           Path(path).name + ".*")])]


def postgres_available() -> bool:
    try:
        import psycopg

        psycopg.connect(POSTGRES + "/postgres", connect_timeout=3).close()
    except Exception:  # no driver, no server: the postgres backend is skipped, saying why
        return False
    return True


@contextmanager
def fresh(kind: str) -> Iterator[Backend]:
    """A backend of this kind with nothing in it: for PostgreSQL a new database, dropped after
    (with whatever sessions are still connected to it)."""
    if kind == "sqlite":
        yield Backend("sqlite")
        return
    if not postgres_available():
        pytest.skip(f"no PostgreSQL server at {POSTGRES} (set ALPHABET_TEST_POSTGRES)")
    import psycopg

    name = f"alphabet_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES + "/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield Backend("postgres", f"{POSTGRES}/{name}")
    finally:
        with psycopg.connect(POSTGRES + "/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Every test module that serves runs once per backend, each with a store of its own."""
    with fresh(request.param) as made:
        yield made


def ephemeral_floor() -> int:
    """The lowest port the kernel hands outgoing connections (Linux's ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports for the servers tests start, each handed out once a session, all below the kernel's
# ephemeral range: a port bind(0) picked lies inside it, and on a busy machine an outgoing
# connection (a Kafka client's, a pool's) took one before the server bound it (busy tox: a
# worker's health endpoint, "address already in use").
EPHEMERAL_FLOOR = ephemeral_floor()
LISTEN_PORTS = range(max(1024, EPHEMERAL_FLOOR - 12_000), EPHEMERAL_FLOOR)
HANDED_OUT: set[int] = set()


def free_port() -> int:
    while True:
        port = random.choice(LISTEN_PORTS)
        if port in HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        HANDED_OUT.add(port)
        return port


@dataclass
class Server:
    """An `alphabet serve` process on a free loopback port with its own data dir, on the
    backend given (the code under test is this checkout's, whatever is installed)."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    backend: Backend = field(default_factory=lambda: Backend("sqlite"))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def command_env(self) -> dict[str, str]:
        """The environment of this server's process, for `alphabet` commands on its data."""
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, "PYTHONPATH": path, "ALPHABET_DATA_DIR": str(self.data_dir),
                **self.backend.env, **self.env}

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.backend.rows(self.data_dir, sql, params)

    def holding(self, needle: str) -> list[str]:
        """Where `needle` is stored, in any case: files of the data dir, and on PostgreSQL the
        database's tables and data files."""
        wanted = needle.lower().encode()
        files = [str(path.relative_to(self.data_dir)) for path in sorted(self.data_dir.rglob("*"))
                 if path.is_file() and wanted in path.read_bytes().lower()]
        return [*files, *self.backend.tables_holding(needle),
                *(f"data file {p}" for p in self.backend.data_files_holding(needle) or [])]

    def start(self) -> Server:
        """Start the server and wait for /readyz. There is no short start-up limit: on a busy
        machine (every core taken by other work) a start can take far longer than on a quiet
        one, so this waits as long as the process is alive and its log keeps growing, up to a
        generous ceiling (ALPHABET_TEST_START_SECONDS, default 300 s). A start that fails
        stops the server's whole process group, so no server is left behind."""
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "alphabet.cli", "serve", "--port", str(self.port),
             "--workers", str(self.workers)],
            env=self.command_env, cwd=ROOT, stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            wait_until_ready(self.url, self.process, self.log_path)
        except BaseException:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL to every process of this server at once (workers and managed processes
        too), as when its machine dies: nothing gets to clean up."""
        if self.process:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            # whatever the server left behind (its multiprocessing manager can outlive it)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


START_SECONDS = float(os.environ.get("ALPHABET_TEST_START_SECONDS", "300"))
# The longest a test waits for something to happen (a view to catch up, a mail, a message): a
# generous ceiling for a busy machine, never a pause; a wait ends as soon as its condition holds.
WAIT_SECONDS = float(os.environ.get("ALPHABET_TEST_WAIT_SECONDS", "120"))


def eventually(check: Callable[[], T | None], what: str | Callable[[], str], *,
               seconds: float = WAIT_SECONDS, interval: float = 0.05) -> T:
    """The first truthy result of `check`, polled until WAIT_SECONDS have passed; then fails
    saying `what` did not happen (a callable `what` can say what was seen instead)."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"after {seconds:.0f} s: {what() if callable(what) else what}")
        time.sleep(interval)


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until /readyz answers 200: fails at once if the process exits, and only after
    START_SECONDS if it hangs (its log is in the message either way)."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}):\n"
                               f"{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {START_SECONDS:.0f} s:\n"
                       f"{log_path.read_text(errors='replace')}")


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Starts a command as subprocess.Popen does, in a process group of its own; whatever of
    the group is still running when the test ends (passed or failed) is killed, so no test
    leaves a process behind on the machine."""
    started: list[subprocess.Popen[Any]] = []

    def start(command: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
        process = subprocess.Popen(command, start_new_session=True, **options)
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def serving(data_dir: Path, kind: str, **options: Any) -> Iterator[Server]:
    """A server of its own, on a fresh backend of this kind, stopped (and its database
    dropped) when the block ends."""
    with fresh(kind) as own:
        running = Server(data_dir, backend=own, **options).start()
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("server") / "data", backend=backend).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@dataclass
class Person:
    """A signed-up user and their tokens; `headers` authenticate as them."""

    id: str
    username: str
    email: str
    password: str
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


def sign_up(http: httpx.Client, prefix: str = "user") -> Person:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    email = f"{name}@example.com"
    password = "correct horse battery"
    answer = http.post("/api/auth/signup/", json={"username": name, "email": email,
                                                  "password": password})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Person(body["user"]["id"], name, email, password, body["access"], body["refresh"])


@pytest.fixture
def person(http: httpx.Client) -> Person:
    return sign_up(http)


def at(**delta: float) -> str:
    """An RFC 3339 time relative to now (e.g. at(hours=2))."""
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def event_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Standup",
        "starting_time": at(hours=2),
        "end_time": at(hours=3),
        "location": "Tel Aviv Port",
        "participants": [],
    }
    body.update(overrides)
    return body


@pytest.fixture(scope="module")
def owner(http: httpx.Client) -> Person:
    return sign_up(http, "owner")


@pytest.fixture(scope="module")
def other(http: httpx.Client) -> Person:
    return sign_up(http, "other")


def assert_error(
    answer: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """The contract's error envelope, exactly: {"error": {"code", "message", "fields"}}."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "fields"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["fields"], dict), error
    assert "Traceback" not in answer.text
    if code is not None:
        assert error["code"] == code, error
    return error  # type: ignore[no-any-return]


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    """A Redis key prefix no other test uses, its keys deleted afterwards."""
    import redis

    namespace = f"test-{uuid.uuid4().hex}"
    yield namespace
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(connection.scan_iter(f"{namespace}:*"))
        if keys:
            connection.delete(*keys)
    finally:
        connection.close()
