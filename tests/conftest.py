"""Shared fixtures: a real server process over real HTTP, and helpers to sign people up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """An `alphabet serve` process on a free loopback port with its own data dir."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        env = {**os.environ, "ALPHABET_DATA_DIR": str(self.data_dir), **self.env}
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "alphabet.cli", "serve", "--port", str(self.port),
             "--workers", str(self.workers)],
            env=env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become ready:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("server") / "data").start()
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
