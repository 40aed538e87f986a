"""Upgrading from the previous release (commit a69c009): data written by that release's own
code (its `alphabet serve`, run from a `git archive` of it in this venv) keeps working when
this checkout's server starts on it — which migrates on start, as `alphabet migrate` does: the
events view gains the columns added since (an old event is in UTC, nobody has answered, no
recurrence), the new tables and indexes are made after the columns they index, and a replay
of the old facts equals what the migration made."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    BACKENDS,
    ROOT,
    Server,
    event_body,
    eventually,
    fresh,
    sign_up,
    wait_until_ready,
)

PREVIOUS_RELEASE = "a69c009"

VIEW_ROWS = ("SELECT id, owner_id, name, location, starting_time, end_time, participants, "
             "version, position, created_at, updated_at, responses, time_zone, recurrence "
             "FROM events_view ORDER BY id")


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's code, as `git archive` gives it."""
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS_RELEASE],
                                 check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the previous release is not in this checkout's git history: {exc}")
    where = tmp_path_factory.mktemp("previous")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    return where


@dataclass
class OldServer(Server):
    """A server running the previous release's code (first on the path, run from its tree)."""

    code: Path = ROOT

    def start(self) -> OldServer:
        self.log_path = self.data_dir.parent / f"old-server-{self.port}.log"
        env = {**self.command_env, "PYTHONPATH": str(self.code)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "alphabet.cli", "serve", "--port", str(self.port),
             "--workers", "1"], env=env, cwd=self.code, stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_ready(self.url, self.process, self.log_path)
        except BaseException:
            self.kill()
            raise
        return self


def command(server: Server, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "alphabet.cli", *args], cwd=ROOT,
                          env=server.command_env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()


@pytest.mark.parametrize("kind", BACKENDS)
def test_data_of_the_previous_release_keeps_working_after_the_upgrade(
    kind: str, tmp_path: Path, previous_release: Path
) -> None:
    data_dir = tmp_path / "data"
    with fresh(kind) as backend:
        old = OldServer(data_dir, backend=backend, code=previous_release).start()
        try:
            with httpx.Client(base_url=old.url, timeout=30) as http:
                owner, guest = sign_up(http, "owner"), sign_up(http, "guest")
                made = http.post("/api/events/", headers=owner.headers,
                                 json=event_body(name="Before", participants=[guest.username]))
                assert made.status_code == 201, made.text
                event_id = made.json()["event"]["id"]
                changed = http.patch(f"/api/event/{event_id}", headers=owner.headers,
                                     json={"location": "Jaffa"})
                assert changed.status_code == 200, changed.text
        finally:
            old.stop()

        new = Server(data_dir, backend=backend).start()
        try:
            with httpx.Client(base_url=new.url, timeout=30) as http:
                page = http.get("/api/events/", headers=owner.headers)
                assert page.status_code == 200, page.text
                assert [e["id"] for e in page.json()["events"]] == [event_id]
                one = http.get(f"/api/event/{event_id}", headers=owner.headers)
                assert one.status_code == 200, one.text
                shown = one.json()["event"]
                assert (shown["location"], shown["time_zone"]) == ("Jaffa", "UTC")
                assert [a["response"] for a in shown["attendees"]] == ["needs_action"]
                assert "recurrence" not in shown or not shown["recurrence"]
                trail = http.get(f"/api/event/{event_id}/history", headers=owner.headers)
                assert trail.status_code == 200, trail.text
                assert [h["type"] for h in trail.json()["history"]] == ["Created", "Updated"]
                start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
                weekly = http.post("/api/events/", headers=owner.headers, json=event_body(
                    name="After", starting_time=start.isoformat(),
                    end_time=(start + timedelta(hours=1)).isoformat(),
                    recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"]))
                assert weekly.status_code == 201, weekly.text

                def names() -> list[str]:
                    expanded = http.get("/api/events/", headers=owner.headers,
                                        params={"single_events": "true"})
                    assert expanded.status_code == 200, expanded.text
                    return sorted(e["name"] for e in expanded.json()["events"])

                eventually(lambda: names() == ["After"] * 3 + ["Before"],
                           lambda: f"the series' occurrences beside the old event: {names()}")
            live = new.rows(VIEW_ROWS)
            assert len(live) == 2
        finally:
            new.stop()
        command(new, "migrate")  # again: nothing left to do
        command(new, "replay", "events")
        assert new.rows(VIEW_ROWS) == live
