"""`alphabet export` and `alphabet import` as an operator runs them, between real servers: a
store made over HTTP on SQLite goes to PostgreSQL and back to SQLite through files, and after
each import the views rebuilt from the imported facts answer as the originals did, people sign
in with their passwords, and no email is sent again. A store that is not empty, and a file that
is damaged, truncated or not an export, are refused with nothing written."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, Backend, Person, Server, event_body, fresh, sign_up
from tests.e2e.test_cli import alphabet, assert_one_line_error, command_env
from tests.e2e.test_metrics import scrape, value

EVENTUALLY = 30.0
PASSWORD = "correct horse battery"


def wait_until(what: str, check: Any) -> None:
    deadline = time.monotonic() + EVENTUALLY
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {EVENTUALLY:.0f} s: {what}")
        time.sleep(0.1)


def settled(http: httpx.Client) -> None:
    """Every view at the log's head and every email sent."""
    def done() -> bool:
        samples = scrape(http)
        lags = [v for (name, _), v in samples.items() if name.endswith("_lag")]
        return len(lags) == 3 and not any(lags) and \
            value(samples, "alphabet_emails_pending") == 0
    wait_until("views caught up and mail sent", done)


def signed_in(http: httpx.Client, username: str) -> dict[str, str]:
    answer = http.post("/api/auth/signin", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access']}"}


def answers(http: httpx.Client, usernames: list[str]) -> dict[str, Any]:
    """What each person is shown: their list (every page), a search, a filter, and each
    listed event with its audit trail. Cursors are signed with each server's own key and
    left out."""
    shown: dict[str, Any] = {}
    for username in usernames:
        headers = signed_in(http, username)
        listed = pages(http, headers, "/api/events")
        shown[username] = {
            "list": listed,
            "search": pages(http, headers, "/api/search_event/harbour"),
            "named": pages(http, headers, "/api/events", q="review"),
            "with": pages(http, headers, "/api/events", participant=usernames[1]),
            "events": [http.get(f"/api/event/{e['id']}", headers=headers).json()
                       for e in listed],
            "history": [http.get(f"/api/event/{e['id']}/history", headers=headers).json()
                        for e in listed],
        }
    return shown


def pages(http: httpx.Client, headers: dict[str, str], path: str,
          **params: Any) -> list[dict[str, Any]]:
    """Every page of a list, two events a page, so the cursors are followed too."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        answer = http.get(path, params={**params, "limit": 2,
                                        **({"cursor": cursor} if cursor else {})},
                          headers=headers)
        assert answer.status_code == 200, answer.text
        found += answer.json()["events"]
        if not (cursor := answer.json()["next"]):
            return found


def emails(server: Server) -> list[Path]:
    return sorted((server.data_dir / "outbox").rglob("*.eml"))


def facts(path: Path) -> list[tuple[str, int, str, str]]:
    """The facts of an export as stored, without their positions (a store numbers its own)."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [(e["originator_id"], e["originator_version"], e["topic"], e["state"])
            for e in lines if e["kind"] == "fact"]


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[str],
                                                                         dict[str, Any], int]]:
    """A store made over HTTP: people, events with users and outside invitees, a change, a
    deletion, an erased account; every email sent. Yields the server (stopped), the usernames,
    what they were shown, and how many emails went out."""
    server = Server(tmp_path_factory.mktemp("original") / "data").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            people: list[Person] = [sign_up(http, "owner"), sign_up(http, "guest")]
            gone = sign_up(http, "gone")
            owner, guest = people
            made = []
            for number, place in enumerate(["Harbour hall", "Old harbour", "Library"]):
                answer = http.post("/api/events", json=event_body(
                    name=f"Design review {number}" if number else "Standup", location=place,
                    participants=[guest.username, gone.username, "outside@example.com"]),
                    headers=owner.headers)
                assert answer.status_code == 201, answer.text
                made.append(answer.json()["event"]["id"])
            assert http.put(f"/api/event/{made[0]}", json=event_body(
                name="Design review 0", location="Harbour hall",
                participants=[guest.username]), headers=owner.headers).status_code == 200
            assert http.delete(f"/api/event/{made[2]}",
                               headers=owner.headers).status_code == 200
            assert http.post("/api/events", json=event_body(name="Guest's own review"),
                             headers=guest.headers).status_code == 201
            assert http.delete("/api/user/me", headers=gone.headers).status_code == 200
            settled(http)
            usernames = [p.username for p in people]
            shown = answers(http, usernames)
        mine = shown[owner.username]
        assert sorted(e["name"] for e in mine["list"]) == [
            "Design review 0", "Design review 1", "Guest's own review"]
        assert len(mine["search"]) == 2 and len(mine["named"]) == 3
        assert sorted(len(h["history"]) for h in mine["history"]) == [1, 1, 2]
        sent = len(emails(server))
        assert sent > 0
    finally:
        server.stop()
    yield server, usernames, shown, sent


@pytest.mark.postgres  # the round trip goes through PostgreSQL
def test_a_store_goes_to_postgresql_and_back_and_the_views_rebuilt_from_it_answer_the_same(
    original: tuple[Server, list[str], dict[str, Any], int], tmp_path: Path
) -> None:
    first, usernames, shown, sent = original
    exported = tmp_path / "from-sqlite.jsonl"
    done = alphabet("export", str(exported), env=first.command_env)
    assert done.returncode == 0, done.stderr
    assert "export facts" in done.stderr  # the progress bars, on stderr
    assert exported.exists() and not list(tmp_path.glob("*.partial"))
    with fresh("postgres") as postgres:
        second = Server(tmp_path / "postgres", backend=postgres)
        loaded = alphabet("import", str(exported), env=second.command_env)
        assert loaded.returncode == 0, loaded.stderr
        assert "events: rebuilt" in loaded.stdout, loaded.stdout
        assert "import facts" in loaded.stderr and "verify" in loaded.stderr
        second.start()
        try:
            with httpx.Client(base_url=second.url, timeout=30) as http:
                settled(http)
                assert answers(http, usernames) == shown
            assert emails(second) == [], "emails sent before were sent again"
        finally:
            second.stop()
        again = tmp_path / "from-postgres.jsonl"
        done = alphabet("export", str(again), env=second.command_env)
        assert done.returncode == 0, done.stderr
    assert facts(again) == facts(exported)
    third = Server(tmp_path / "sqlite-again")
    loaded = alphabet("import", str(again), env=third.command_env)
    assert loaded.returncode == 0, loaded.stderr
    third.start()
    try:
        with httpx.Client(base_url=third.url, timeout=30) as http:
            settled(http)
            assert answers(http, usernames) == shown
        assert emails(third) == []
    finally:
        third.stop()
    assert sent > 0


def test_an_export_holds_no_erased_account_and_one_whose_erasure_had_not_finished(
    original: tuple[Server, list[str], dict[str, Any], int], tmp_path: Path
) -> None:
    """The account deleted before the export is in its facts as an id only. An account whose
    deletion fact was recorded but whose row was not yet erased (a crash between the two) is
    left out too."""
    server, _, _, _ = original
    exported = tmp_path / "export.jsonl"
    assert "gone_" not in _export(server, exported)
    # put an erased row back, as if the erasure had stopped before it ran
    deleted = _deleted_account(exported)
    _put_back_user(server, deleted, "halfgone_user")
    try:
        again = tmp_path / "again.jsonl"
        assert "halfgone_user" not in _export(server, again)
    finally:
        _erase_user(server, deleted)


def _export(server: Server, path: Path) -> str:
    done = alphabet("export", str(path), env=server.command_env)
    assert done.returncode == 0, done.stderr
    return path.read_text()


def _deleted_account(path: Path) -> str:
    (found,) = [e["originator_id"] for e in map(json.loads, path.read_text().splitlines())
                if e["kind"] == "fact" and e["topic"].endswith(":User.Deleted")]
    return str(found)


def _state(server: Server, sql: str, params: tuple[Any, ...]) -> None:
    import sqlite3

    conn = sqlite3.connect(server.data_dir / "state.sqlite")
    with conn:
        conn.execute(sql, params)
    conn.close()


def _put_back_user(server: Server, user_id: str, name: str) -> None:
    _state(server, "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
           (user_id, name, name, f"{name}@example.com", f"{name}@example.com", "x", "t", "t"))


def _erase_user(server: Server, user_id: str) -> None:
    _state(server, "DELETE FROM users WHERE id = ?", (user_id,))


@pytest.fixture(scope="module")
def export_file(original: tuple[Server, list[str], dict[str, Any], int],
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "store.jsonl"
    _export(original[0], path)
    return path


def stored_facts(data_dir: Path, backend: Backend) -> int:
    if backend.url is None and not (data_dir / "events.sqlite").exists():
        return 0
    if backend.url is None:
        import sqlite3

        conn = sqlite3.connect(data_dir / "events.sqlite")
        try:
            return int(conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0])
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(backend.url, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass('stored_events') IS NOT NULL").fetchone()
        if not found or not found[0]:
            return 0
        row = conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()
        return int(row[0]) if row else 0


@pytest.mark.parametrize("kind", BACKENDS)
def test_an_import_into_a_store_that_is_not_empty_is_refused_and_changes_nothing(
    export_file: Path, tmp_path: Path, kind: str
) -> None:
    with fresh(kind) as backend:
        env = command_env(tmp_path / "data", backend)
        assert alphabet("import", str(export_file), env=env).returncode == 0
        held = stored_facts(tmp_path / "data", backend)
        refused = alphabet("import", str(export_file), env=env)
        assert refused.returncode == 1, refused.stderr
        assert "Traceback" not in refused.stderr
        assert "alphabet import: error: the store is not empty" in refused.stderr
        assert stored_facts(tmp_path / "data", backend) == held


def test_an_import_refuses_accounts_alone_too(export_file: Path, tmp_path: Path) -> None:
    """A store with accounts but no facts yet is not empty either."""
    server = Server(tmp_path / "data").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            sign_up(http, "early")
    finally:
        server.stop()
    _erase_all_facts(server)
    refused = alphabet("import", str(export_file), env=server.command_env)
    assert refused.returncode == 1
    assert "rows of users" in refused.stderr


def _erase_all_facts(server: Server) -> None:
    import sqlite3

    conn = sqlite3.connect(server.data_dir / "events.sqlite")
    with conn:
        conn.execute("DELETE FROM stored_events")
    conn.close()


def damaged(source: Path, target: Path) -> Path:
    """One character of one fact's state changed: still JSON, still base64."""
    lines = source.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if '"kind":"fact"' in line)
    entry = json.loads(lines[index])
    state = entry["state"]
    entry["state"] = ("B" if state[0] != "B" else "C") + state[1:]
    lines[index] = json.dumps(entry, separators=(",", ":")) + "\n"
    target.write_text("".join(lines))
    return target


def truncated(source: Path, target: Path) -> Path:
    target.write_text("".join(source.read_text().splitlines(keepends=True)[:-3]))
    return target


def headless(source: Path, target: Path) -> Path:
    target.write_text("".join(source.read_text().splitlines(keepends=True)[1:]))
    return target


def binary(source: Path, target: Path) -> Path:
    target.write_bytes(b"\x00\x01 not json\n" * 3)
    return target


@pytest.mark.parametrize(("make", "words"), [
    (damaged, "fails its checksum"),
    (truncated, "not a whole export"),
    (headless, "no header line"),
    (binary, "not JSON"),
])
@pytest.mark.parametrize("kind", BACKENDS)
def test_a_damaged_truncated_or_foreign_file_is_refused_and_nothing_is_written(
    export_file: Path, tmp_path: Path, kind: str, make: Any, words: str
) -> None:
    bad = make(export_file, tmp_path / "bad.jsonl")
    with fresh(kind) as backend:
        env = command_env(tmp_path / "data", backend)
        refused = alphabet("import", str(bad), env=env)
        assert refused.returncode == 1, (refused.returncode, refused.stderr)
        assert "Traceback" not in refused.stderr
        errors = [line for line in refused.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and words in errors[0], refused.stderr
        assert stored_facts(tmp_path / "data", backend) == 0
        assert alphabet("import", str(export_file), env=env).returncode == 0


def test_bad_arguments_are_one_line_errors(export_file: Path, tmp_path: Path) -> None:
    env = command_env(tmp_path / "data")
    assert_one_line_error(alphabet("import", str(tmp_path / "missing.jsonl"), env=env),
                          "missing.jsonl", "not a file")
    assert_one_line_error(alphabet("export", str(export_file), env=env), "exists")
    assert_one_line_error(alphabet("export", str(tmp_path / "no" / "dir.jsonl"), env=env),
                          "not a directory")
    assert_one_line_error(alphabet("import", env=env), "file")
