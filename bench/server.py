"""Child processes of the benchmark (the product's server, the bare Sanic baseline, the socket
crowd): started in their own process group so that stopping one also ends everything it
spawned, registered so that an interrupted run never leaves one behind, and measured for memory
over their whole process tree."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, ClassVar

import httpx

STOP_SECONDS = 15
READY_SECONDS = 60
QUIET_SECONDS = 60
PROMPT_SECONDS = 0.25  # an idle server answers in milliseconds; a busy one in seconds
# Children import `bench` and the product from the repository's root, wherever we are run from.
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """One spawned command. Its own session makes its pid the group id, so `stop` can sweep
    Sanic's workers and managed processes even when the main process died first."""

    running: ClassVar[set[Child]] = set()

    def __init__(self, command: list[str], log_path: Path, env: dict[str, str] | None = None,
                 *, stdin: int | None = None, stdout: int | None = None) -> None:
        self.log_path = log_path
        self.log_file: IO[bytes] = log_path.open("wb")
        self.popen = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdin=stdin,
            stdout=stdout if stdout is not None else self.log_file, stderr=self.log_file,
            start_new_session=True, cwd=ROOT,
        )
        Child.running.add(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        """SIGTERM for a clean shutdown, then SIGKILL for whatever is left in the group."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        with contextlib.suppress(ProcessLookupError):  # the group is already empty
            os.killpg(self.pid, signal.SIGKILL)
        self.log_file.close()
        Child.running.discard(self)

    def rss_mib(self) -> float:
        """Resident memory of the process and all its descendants (workers, managed
        processes), from /proc: psutil is not a dependency."""
        total_kib = 0
        for pid in descendants(self.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        return total_kib / 1024


def processes() -> dict[int, tuple[int, str]]:
    """Every process now: pid → (parent pid, command line)."""
    found: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), command)
    return found


def descendants(root: int, running: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """`root` and every process below it. This kernel has no /proc/<pid>/task/*/children, so
    parents are read from /proc/*/stat."""
    running = processes() if running is None else running
    tree = [root]
    for pid in tree:
        tree.extend(child for child, (parent, _) in running.items() if parent == pid)
    return tree


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time every core has spent busy so far (the first line of /proc/stat, less idle and
    iowait)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def stop_all() -> None:
    for child in list(Child.running):
        child.stop()


atexit.register(stop_all)


class Server(Child):
    """An HTTP server on a free loopback port, ready once `ready_path` answers 200. `deferred`:
    it does work after its answers (views, mail) that /readyz and /metrics tell of."""

    def __init__(self, command: list[str], port: int, log_path: Path,
                 env: dict[str, str] | None = None, ready_path: str = "/healthz",
                 deferred: bool = False) -> None:
        super().__init__(command, log_path, env)
        self.deferred = deferred
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ready_path = ready_path
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                self.stop()
                raise RuntimeError(f"server exited early; its log: {log_path}\n"
                                   f"{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {READY_SECONDS} s; its log: {log_path}")


    def quiet(self, limit_seconds: float = QUIET_SECONDS) -> float:
        """Wait until the readiness check answers promptly again; returns the seconds waited.
        wrk stops waiting at the end of a run but the server does not stop working: requests
        still queued (64 argon2 sign-ins, say) must not be charged to the next measurement.
        The product's /readyz reads the store through the same thread pool as the requests,
        so a prompt answer means that pool is free."""
        started = time.monotonic()
        while time.monotonic() - started < limit_seconds:
            asked = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + self.ready_path, timeout=limit_seconds)
            if time.monotonic() - asked < PROMPT_SECONDS:
                break
        return time.monotonic() - started


def product(data_dir: Path, workers: int, log_dir: Path, event_store: str | None,
            secret: str | None = None) -> Server:
    """`alphabet serve` on the embedded default (SQLite, in-process fan-out, .eml outbox), or
    with its store and read models on the PostgreSQL database `event_store` names; instances
    sharing a database must share their signing key too (`secret`)."""
    port = free_port()
    env = {"ALPHABET_DATA_DIR": str(data_dir)}
    if secret:
        env["ALPHABET_SECRET_KEY"] = secret
    if event_store:
        env["ALPHABET_EVENT_STORE"] = event_store
    return Server(
        [sys.executable, "-m", "alphabet.cli", "serve", "--port", str(port),
         "--workers", str(workers)],
        port, log_dir / f"alphabet-w{workers}-{port}.log", env, ready_path="/readyz",
        deferred=True,
    )


def baseline(event_body: Path, list_body: Path, workers: int, log_dir: Path) -> Server:
    """The bare Sanic app of bench/baseline_app.py."""
    port = free_port()
    return Server(
        [sys.executable, "-m", "bench.baseline_app", "--port", str(port),
         "--workers", str(workers), "--event-body", str(event_body),
         "--list-body", str(list_body)],
        port, log_dir / f"baseline-w{workers}-{port}.log",
    )
