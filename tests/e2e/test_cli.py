"""The `alphabet` command as a person runs it: the real command in a subprocess (`python -m
alphabet`, as the console script runs the same main), on each backend where it reads data.
Bad arguments, bad settings and a busy port are one line and exit code 2; --version, defaults
in help, a closed pipe, the URL at start-up and a quiet stop; history by name."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, ROOT, Backend, Server, Spawn, fresh
from tests.integration.test_mail import System

SECONDS = 300  # a ceiling for a command on a busy machine, not an expectation


def command_env(data_dir: Path, backend: Backend | None = None,
                **variables: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "ALPHABET_DATA_DIR": str(data_dir),
            **(backend.env if backend else {}), **variables}


def alphabet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alphabet", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=SECONDS)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert "error:" in line
    for word in words:
        assert word in line, line


@pytest.fixture(params=BACKENDS)
def data(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[System, Backend]]:
    """Users and events made in-process (as alphabet.wiring builds it) for a command to read."""
    with fresh(request.param) as backend:
        system = System.build(tmp_path / "data", backend=backend)
        try:
            yield system, backend
        finally:
            system.close()


# ---------------------------------------------------------------------------------------------
# arguments, settings, help, version


@pytest.mark.parametrize(("args", "words"), [
    (["serve", "--port", "99999"], ["--port", "99999", "65535"]),
    (["serve", "--port", "0"], ["--port", "0"]),
    (["serve", "--port", "eighty"], ["--port", "eighty"]),
    (["serve", "--workers", "0"], ["--workers", "at least 1"]),
    (["frob"], ["frob", "serve"]),
    (["history", "not-an-id"], ["not-an-id", "UUID"]),
    (["replay", "nothing"], ["nothing", "events", "mail", "reminders"]),
])
def test_a_bad_argument_is_a_one_line_error_with_exit_code_2(
    tmp_path: Path, args: list[str], words: list[str]
) -> None:
    assert_one_line_error(alphabet(*args, env=command_env(tmp_path / "data")), *words)


def test_a_bad_setting_is_a_one_line_error_naming_the_variable(tmp_path: Path) -> None:
    done = alphabet("migrate", env=command_env(tmp_path / "data",
                                               ALPHABET_MAIL_DOMAIN="not_a_domain"))
    assert_one_line_error(done, "ALPHABET_MAIL_DOMAIN", "not_a_domain")


def test_a_port_in_use_is_a_one_line_error_naming_it_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = alphabet("serve", "--port", str(port), env=command_env(tmp_path / "data"))
    assert_one_line_error(done, f"127.0.0.1:{port}", "in use")
    assert not (tmp_path / "data").exists()  # refused before any start-up work


def test_version_is_the_installed_packages() -> None:
    done = alphabet("--version", env=command_env(Path("unused")))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"alphabet {version('alphabet-events')}\n"


def test_help_shows_every_default() -> None:
    done = alphabet("serve", "--help", env=command_env(Path("unused")))
    assert done.returncode == 0, done.stderr
    for default in ("(default: 127.0.0.1)", "(default: 8000)", "(default: 1)"):
        assert default in done.stdout


def test_help_imports_none_of_the_heavy_libraries() -> None:
    """What keeps `alphabet --help` fast (the figure is in the README): the command imports
    Sanic, eventsourcing, tqdm, faust and the wiring only when a command runs."""
    script = ("import runpy, sys\n"
              "sys.argv = ['alphabet', '--help']\n"
              "try:\n"
              "    runpy.run_module('alphabet', run_name='__main__')\n"
              "except SystemExit:\n"
              "    pass\n"
              "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=SECONDS, env=command_env(Path("unused")))
    assert "usage: alphabet" in done.stdout
    loaded = set(done.stderr.split())
    heavy = {"sanic", "sanic_ext", "eventsourcing", "tqdm", "faust", "pydantic", "icalendar",
             "redis", "alphabet.wiring", "alphabet.app", "domain.events"}
    assert loaded & heavy == set()


def test_python_dash_m_alphabet_is_the_command(tmp_path: Path) -> None:
    done = alphabet("migrate", env=command_env(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("schema up to date in")
    assert (tmp_path / "data" / "events.sqlite").exists()


# ---------------------------------------------------------------------------------------------
# history


def test_history_names_people_where_they_still_exist_and_says_who_was_deleted(
    data: tuple[System, Backend]
) -> None:
    system, backend = data
    owner, _ = system.add_user("alice")
    gone, _ = system.add_user("bob")
    invitee = f"carol_{uuid.uuid4().hex[:6]}@outside.example"
    event_id = system.create_event(owner, [system.username(gone), invitee])
    system.update_event(owner, event_id, location="Haifa Bay")
    system.people.erase(gone)

    done = alphabet("history", event_id, env=command_env(system.settings.data_dir, backend))

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith(f"Created  by {system.username(owner)}")
    assert f"    participants: (deleted user {gone}), {invitee}" in lines
    assert any(line.endswith(f"Updated  by {system.username(owner)}") for line in lines)
    assert owner not in done.stdout  # an id where a name exists would be a regression


def test_history_names_the_occurrence_an_answer_is_for(data: tuple[System, Backend]) -> None:
    system, backend = data
    owner, _ = system.add_user("dana")
    guest, _ = system.add_user("eli")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    series = system.app.create_event(
        owner_id=owner, name="Weekly", starting_time=start, end_time=start + timedelta(hours=1),
        location="Jaffa", participants=[guest], time_zone="UTC",
        recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"]).aggregate.id
    second = start + timedelta(weeks=1)
    system.app.respond(series, participant=guest, response="tentative", by=guest,
                       original_start=second)

    done = alphabet("history", str(series), env=command_env(system.settings.data_dir, backend))

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.endswith(
        f"Responded  by {system.username(guest)}"))
    assert lines[at + 1] == f"    occurrence: {series}_{second.strftime('%Y%m%dT%H%M%SZ')}"
    assert "    response: tentative" in lines[at + 2:]


def test_history_into_a_pipe_closed_early_leaves_no_traceback(
    data: tuple[System, Backend], spawn: Spawn
) -> None:
    system, backend = data
    owner, _ = system.add_user("alice")
    crowd = [f"guest{n}_{uuid.uuid4().hex[:12]}@outside.example" for n in range(1000)]
    event_id = system.create_event(owner, crowd, starts_in=timedelta(days=2))
    for n in range(20):  # ~40 KB a version: far more than a pipe holds, so writes must fail
        system.update_event(owner, event_id, participants=crowd[n % 2:])
    env = command_env(system.settings.data_dir, backend)

    # as a person types it
    piped = subprocess.run(
        ["/bin/sh", "-c", f"{sys.executable} -m alphabet history {event_id} | head -1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=SECONDS)
    assert piped.stdout.startswith("v1  ") and piped.stdout.count("\n") == 1, piped.stdout
    assert piped.stderr == ""
    # and with the reader gone before the first line is written
    reader_gone = spawn([sys.executable, "-m", "alphabet", "history", event_id],
                        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader_gone.stdout is not None and reader_gone.stderr is not None
    reader_gone.stdout.close()
    errors = reader_gone.stderr.read().decode()
    assert reader_gone.wait(SECONDS) == 1
    assert errors == ""


# ---------------------------------------------------------------------------------------------
# serve: the URL at start-up, a quiet stop


@pytest.mark.parametrize("kind", [param.values[0] for param in BACKENDS])
def test_serve_prints_the_url_it_serves_and_stops_quietly(tmp_path: Path, kind: str) -> None:
    with fresh(kind) as backend:
        server = Server(tmp_path / "data", backend=backend,
                        env={"ALPHABET_LOG_FORMAT": "text"}).start()
        try:
            assert httpx.get(server.url + "/docs", timeout=30).status_code == 200
            time.sleep(1)  # Sanic may hang on a SIGTERM just after start-up (README)
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            code = server.process.wait(SECONDS)
        finally:
            server.stop()
    log = server.log_path.read_text()
    assert f"Alphabet Events serving on {server.url} (docs at {server.url}/docs)" in log
    assert code == 0, log
    assert "Server Stopped" in log
    noisy = [line for line in log.splitlines()
             if " WARNING " in line or " ERROR " in line or "Traceback" in line]
    assert noisy == [], log
