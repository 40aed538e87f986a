"""Users: read profiles, change or delete your own account, and erasure of personal data for good,
over real HTTP against a real `alphabet serve` process (SPEC §4 Users)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from alphabet import wiring
from alphabet.settings import Settings
from domain.events import Event
from tests.conftest import (
    Backend,
    Person,
    Server,
    assert_error,
    event_body,
    eventually,
    serving,
    sign_up,
)

# ---------------------------------------------------------------------------------------------
# helpers




def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signin(http: httpx.Client, username: str, password: str) -> httpx.Response:
    return http.post("/api/auth/signin/", json={"username": username, "password": password})


def profile(http: httpx.Client, viewer: Person, user_id: str) -> dict[str, Any]:
    answer = http.get(f"/api/user/{user_id}", headers=viewer.headers)
    assert answer.status_code == 200, answer.text
    user: dict[str, Any] = answer.json()["user"]
    return user


def change(http: httpx.Client, who: Person, body: dict[str, Any],
           user_id: str | None = None) -> httpx.Response:
    return http.put(f"/api/user/{user_id or who.id}", json=body, headers=who.headers)


def wait_until_views_caught_up(http: httpx.Client) -> None:
    def caught_up() -> bool:
        views = http.get("/readyz").json().get("views")
        return bool(views) and all(v["lag"] == 0 for v in views.values())

    eventually(caught_up, lambda: f"views still lagging: {http.get('/readyz').json()}")


# ---------------------------------------------------------------------------------------------
# reading


@pytest.mark.parametrize("path", ["/api/user/me", "/api/user/me/"])
def test_me_shows_your_own_account_with_your_email(http: httpx.Client, person: Person,
                                                   path: str) -> None:
    answer = http.get(path, headers=person.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"user"}
    assert set(body["user"]) == {"id", "username", "email", "created_at", "updated_at"}
    assert body["user"]["id"] == person.id
    assert body["user"]["username"] == person.username
    assert body["user"]["email"] == person.email


def test_reading_your_own_id_is_the_same_as_me(http: httpx.Client, person: Person) -> None:
    me = http.get("/api/user/me", headers=person.headers).json()
    assert profile(http, person, person.id) == me["user"]
    assert http.get(f"/api/user/{person.id}/", headers=person.headers).json() == me


def test_another_users_profile_has_no_email_key_at_all(http: httpx.Client,
                                                       person: Person) -> None:
    other = sign_up(http, "other")
    shown = profile(http, person, other.id)
    assert "email" not in shown
    assert set(shown) == {"id", "username", "created_at", "updated_at"}
    assert shown["id"] == other.id and shown["username"] == other.username
    answer = http.get(f"/api/user/{other.id}", headers=person.headers)
    assert other.email.encode().lower() not in answer.content.lower()


@pytest.mark.parametrize("user_id", [str(uuid.uuid4()), "not-a-uuid", "12345",
                                     "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_or_malformed_user_id_is_a_404_envelope(http: httpx.Client, person: Person,
                                                          user_id: str) -> None:
    assert_error(http.get(f"/api/user/{user_id}", headers=person.headers), 404)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_user_routes_need_a_token(http: httpx.Client, person: Person, method: str) -> None:
    answer = http.request(method, f"/api/user/{person.id}", json={"username": "nobody_at_all"})
    assert_error(answer, 401)
    assert profile(http, person, person.id)["username"] == person.username


# ---------------------------------------------------------------------------------------------
# changing


@pytest.mark.parametrize("suffix", ["", "/"])
def test_changing_your_own_username_and_email_answers_200_and_the_new_name_signs_in(
        http: httpx.Client, person: Person, suffix: str) -> None:
    new_name = f"renamed_{uuid.uuid4().hex[:10]}"
    new_email = f"{new_name}@elsewhere.example.com"
    answer = http.put(f"/api/user/{person.id}{suffix}", headers=person.headers,
                      json={"username": new_name, "email": new_email})
    assert answer.status_code == 200, answer.text
    user = answer.json()["user"]
    assert user["id"] == person.id
    assert user["username"] == new_name and user["email"] == new_email
    assert user["updated_at"] >= user["created_at"]
    assert profile(http, person, person.id)["username"] == new_name
    assert signin(http, new_name, person.password).status_code == 200
    assert_error(signin(http, person.username, person.password), 401)


def test_the_old_username_is_free_for_someone_else_after_a_rename(http: httpx.Client,
                                                                  person: Person) -> None:
    assert change(http, person, {"username": f"moved_{uuid.uuid4().hex[:10]}"}).status_code == 200
    answer = http.post("/api/auth/signup/", json={
        "username": person.username, "email": f"{person.username}@new.example.com",
        "password": "another fine password"})
    assert answer.status_code == 201, answer.text


def test_changing_only_the_case_of_your_own_username_is_allowed(http: httpx.Client,
                                                               person: Person) -> None:
    answer = change(http, person, {"username": person.username.upper()})
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"]["username"] == person.username.upper()


def test_changing_someone_elses_account_is_403_and_changes_nothing(http: httpx.Client,
                                                                  person: Person) -> None:
    victim = sign_up(http, "victim")
    answer = change(http, person, {"username": f"hijacked_{uuid.uuid4().hex[:8]}",
                                   "email": "attacker@example.com"}, user_id=victim.id)
    assert_error(answer, 403)
    mine = http.get("/api/user/me", headers=victim.headers).json()["user"]
    assert mine["username"] == victim.username and mine["email"] == victim.email
    assert signin(http, victim.username, victim.password).status_code == 200


def test_changing_someone_elses_password_is_403(http: httpx.Client, person: Person) -> None:
    victim = sign_up(http, "victim")
    answer = change(http, person, {"password": "taken over!!", "current_password":
                                   person.password}, user_id=victim.id)
    assert_error(answer, 403)
    assert signin(http, victim.username, victim.password).status_code == 200
    assert_error(signin(http, victim.username, "taken over!!"), 401)


def test_changing_an_unknown_user_is_refused(http: httpx.Client, person: Person) -> None:
    answer = change(http, person, {"username": "ghostly_name"}, user_id=str(uuid.uuid4()))
    assert answer.status_code in (403, 404), answer.text
    assert_error(answer, answer.status_code)


@pytest.mark.parametrize("spelling", [str.lower, str.upper, str.swapcase])
def test_renaming_to_a_taken_username_in_any_case_is_409_naming_username(
        http: httpx.Client, person: Person, spelling: Any) -> None:
    holder = sign_up(http, "Holder")
    error = assert_error(change(http, person, {"username": spelling(holder.username)}), 409)
    assert "username" in error["fields"]
    assert profile(http, person, person.id)["username"] == person.username


def test_changing_to_a_taken_email_in_another_case_is_409_naming_email(
        http: httpx.Client, person: Person) -> None:
    holder = sign_up(http, "holder")
    error = assert_error(change(http, person, {"email": holder.email.upper()}), 409)
    assert "email" in error["fields"]
    assert http.get("/api/user/me", headers=person.headers).json()["user"]["email"] == person.email


@pytest.mark.parametrize("body,field", [
    ({"username": "has@sign"}, "username"),
    ({"username": "ab"}, "username"),
    ({"username": "bad name"}, "username"),
    ({"username": 42}, "username"),
    ({"email": "not-an-email"}, "email"),
    ({"password": "short", "current_password": "correct horse battery"}, "password"),
    ({"is_admin": True}, "is_admin"),
])
def test_changing_to_invalid_values_is_a_422_naming_the_field(http: httpx.Client,
                                                              person: Person,
                                                              body: dict[str, Any],
                                                              field: str) -> None:
    error = assert_error(change(http, person, body), 422)
    assert field in error["fields"]
    mine = http.get("/api/user/me", headers=person.headers).json()["user"]
    assert mine["username"] == person.username and mine["email"] == person.email


def test_a_malformed_json_change_is_a_400(http: httpx.Client, person: Person) -> None:
    answer = http.put(f"/api/user/{person.id}", content=b'{"username": ',
                      headers={**person.headers, "content-type": "application/json"})
    assert_error(answer, 400)


def test_a_password_change_without_the_current_password_is_a_422(http: httpx.Client,
                                                                 person: Person) -> None:
    error = assert_error(change(http, person, {"password": "a brand new secret"}), 422)
    assert "current_password" in error["fields"]
    assert signin(http, person.username, person.password).status_code == 200
    assert_error(signin(http, person.username, "a brand new secret"), 401)


def test_a_password_change_with_a_wrong_current_password_is_a_422(http: httpx.Client,
                                                                 person: Person) -> None:
    error = assert_error(change(http, person, {"password": "a brand new secret",
                                               "current_password": "not it at all"}), 422)
    assert "current_password" in error["fields"]
    assert signin(http, person.username, person.password).status_code == 200
    assert_error(signin(http, person.username, "a brand new secret"), 401)


def test_after_a_password_change_the_new_password_signs_in_and_the_old_does_not(
        http: httpx.Client, person: Person) -> None:
    answer = change(http, person, {"password": "a brand new secret",
                                   "current_password": person.password})
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["user"]) == {"id", "username", "email", "created_at", "updated_at"}
    assert "password" not in answer.text and "argon2" not in answer.text
    assert signin(http, person.username, "a brand new secret").status_code == 200
    assert_error(signin(http, person.username, person.password), 401)


@pytest.mark.parametrize("body", [{}, "same"])
def test_a_change_that_changes_nothing_answers_200_and_leaves_the_account_as_it_was(
        http: httpx.Client, person: Person, body: Any) -> None:
    before = http.get("/api/user/me", headers=person.headers).json()["user"]
    if body == "same":
        body = {"username": person.username, "email": person.email}
    answer = change(http, person, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"] == before
    assert http.get("/api/user/me", headers=person.headers).json()["user"] == before


# ---------------------------------------------------------------------------------------------
# deleting


def test_deleting_someone_else_is_403_and_they_remain(http: httpx.Client,
                                                      person: Person) -> None:
    victim = sign_up(http, "victim")
    assert_error(http.delete(f"/api/user/{victim.id}", headers=person.headers), 403)
    assert profile(http, person, victim.id)["username"] == victim.username
    assert http.get("/api/user/me", headers=victim.headers).status_code == 200
    assert signin(http, victim.username, victim.password).status_code == 200


def test_deleting_an_unknown_user_is_refused(http: httpx.Client, person: Person) -> None:
    answer = http.delete(f"/api/user/{uuid.uuid4()}", headers=person.headers)
    assert answer.status_code in (403, 404), answer.text
    assert_error(answer, answer.status_code)


@pytest.mark.parametrize("suffix", ["", "/"])
def test_deleting_yourself_answers_a_message_and_ends_every_way_back_in_at_once(
        http: httpx.Client, person: Person, suffix: str) -> None:
    observer = sign_up(http, "observer")
    answer = http.delete(f"/api/user/{person.id}{suffix}", headers=person.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"message"} and isinstance(body["message"], str) and body["message"]
    assert_error(http.get("/api/user/me", headers=person.headers), 401)
    assert_error(http.post("/api/auth/refresh/", json={"refresh": person.refresh}), 401)
    assert_error(signin(http, person.username, person.password), 401)
    assert_error(http.get(f"/api/user/{person.id}", headers=observer.headers), 404)
    # Deleting again with the dead token is refused too.
    assert_error(http.delete(f"/api/user/{person.id}", headers=person.headers), 401)


def test_a_deleted_users_token_reads_no_event_or_list_and_hears_401_before_any_other_error(
        http: httpx.Client, person: Person) -> None:
    """GET one event and the lists confirm the account with the names count their own query
    reads; a worker that had the account cached must still refuse it at once."""
    host = sign_up(http, "host")
    created = http.post("/api/events/", headers=host.headers, json=event_body())
    assert created.status_code == 201, created.text
    one = f"/api/event/{created.json()['event']['id']}"
    reads = [one, "/api/events/", "/api/search_event/Tel%20Aviv"]
    for path in reads:  # the account is now cached wherever these were answered
        assert http.get(path, headers=person.headers).status_code == 200
    assert http.delete(f"/api/user/{person.id}", headers=person.headers).status_code == 200
    for path in [*reads, f"/api/event/{uuid.uuid4()}", "/api/event/not-an-id",
                 "/api/events/?limit=0", "/api/events/?starts_after=yesterday",
                 f"{one}?as_of=0", f"{one}.ics"]:
        assert_error(http.get(path, headers=person.headers), 401)
        assert http.get(path, headers=host.headers).status_code != 401, path


def test_a_deleted_users_username_and_email_can_be_registered_again(http: httpx.Client,
                                                                    person: Person) -> None:
    assert http.delete(f"/api/user/{person.id}", headers=person.headers).status_code == 200
    answer = http.post("/api/auth/signup/", json={
        "username": person.username, "email": person.email, "password": "a new life begins"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["user"]["id"] != person.id
    assert signin(http, person.username, "a new life begins").status_code == 200
    assert_error(signin(http, person.username, person.password), 401)


# ---------------------------------------------------------------------------------------------
# erasure: no byte of a deleted user's personal data remains in any file of the data dir; on
# PostgreSQL, in no row of any table, nor in the database's data files once VACUUM has run


@pytest.fixture(scope="module")
def erasure_server(tmp_path_factory: pytest.TempPathFactory,
                   backend: Backend) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("erasure") / "data", backend.kind) as running:
        yield running


@pytest.fixture(scope="module")
def erasure_http(erasure_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=erasure_server.url, timeout=30) as client:
        yield client


def distinctive_person(http: httpx.Client) -> tuple[Person, dict[str, str]]:
    """A user whose username, email and password exist nowhere else; returns the strings to
    look for after erasure."""
    tag = uuid.uuid4().hex
    username = f"Erasable_{tag[:16]}"
    email = f"private.{tag[16:]}@mailbox{tag[:8]}.example.org"
    password = f"pw-{tag[8:24]}"
    answer = http.post("/api/auth/signup/",
                       json={"username": username, "email": email, "password": password})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    person = Person(body["user"]["id"], username, body["user"]["email"], password,
                    body["access"], body["refresh"])
    secrets = {"username": username, "email": email, "email local part": email.split("@")[0],
               "password": password}
    return person, secrets


def password_hash_of(server: Server, user_id: str) -> str:
    """Read the stored hash straight from the state database (read-only)."""
    rows = server.rows("SELECT password_hash FROM users WHERE id = ?", (user_id,))
    assert len(rows) == 1 and rows[0][0].startswith("$argon2id$"), rows
    return str(rows[0][0])


def create_event(http: httpx.Client, owner: Person, participants: list[str]) -> str:
    answer = http.post("/api/events/", headers=owner.headers,
                       json=event_body(name="Erasure check", participants=participants))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["event"]["id"])


def test_deleting_a_user_erases_their_username_email_and_password_hash_from_every_file(
        erasure_http: httpx.Client, erasure_server: Server) -> None:
    http = erasure_http
    doomed, secrets = distinctive_person(http)
    friend = sign_up(http, "friend")
    owned = create_event(http, doomed, [friend.username])
    invited_to = create_event(http, friend, [doomed.username])
    # More facts and sessions about them, so their data had every chance to spread.
    assert signin(http, doomed.username, doomed.password).status_code == 200
    assert_error(signin(http, doomed.username, "wrong password!"), 401)
    assert http.post("/api/auth/refresh/", json={"refresh": doomed.refresh}).status_code == 200
    secrets["password hash"] = password_hash_of(erasure_server, doomed.id)
    wait_until_views_caught_up(http)
    assert erasure_server.holding(doomed.username), "precondition: stored"

    answer = http.delete(f"/api/user/{doomed.id}", headers=doomed.headers)
    assert answer.status_code == 200, answer.text

    # Events they owned are deleted as DELETE would; events they were invited to lose them.
    assert_error(http.get(f"/api/event/{owned}", headers=friend.headers), 410)
    still = http.get(f"/api/event/{invited_to}", headers=friend.headers)
    assert still.status_code == 200, still.text
    assert doomed.username not in still.json()["event"]["participants"]
    listed = http.get("/api/events/", headers=friend.headers)
    assert listed.status_code == 200, listed.text
    assert doomed.username.lower() not in listed.text.lower()

    found = {what: erasure_server.holding(value) for what, value in secrets.items()}
    assert found == {what: [] for what in secrets}, f"personal data left on disk: {found}"


def test_erasure_also_covers_a_username_and_email_the_user_had_before_renaming(
        erasure_http: httpx.Client, erasure_server: Server) -> None:
    http = erasure_http
    doomed, secrets = distinctive_person(http)
    friend = sign_up(http, "friend")
    create_event(http, doomed, [friend.username])
    renamed = f"Renamed_{uuid.uuid4().hex[:16]}"
    new_email = f"later.{uuid.uuid4().hex[:16]}@example.org"
    answer = change(http, doomed, {"username": renamed, "email": new_email,
                                   "password": "a later password",
                                   "current_password": doomed.password})
    assert answer.status_code == 200, answer.text
    secrets.update({"new username": renamed, "new email": new_email})
    wait_until_views_caught_up(http)

    # The new password ended the old tokens; the answer carried fresh ones.
    fresh = {"Authorization": f"Bearer {answer.json()['access']}"}
    assert http.delete(f"/api/user/{doomed.id}", headers=fresh).status_code == 200
    found = {what: erasure_server.holding(value) for what, value in secrets.items()}
    assert found == {what: [] for what in secrets}, f"personal data left on disk: {found}"
    assert_error(signin(http, renamed, "a later password"), 401)


def test_erasure_waits_for_a_transaction_that_was_writing_when_the_user_was_deleted(
        erasure_http: httpx.Client, erasure_server: Server) -> None:
    """A writer between two statements holds a transaction id and no snapshot; VACUUM keeps
    every row deleted after that id began, so erasure must wait for it too."""
    database = erasure_server.backend.url
    if database is None:
        pytest.skip("SQLite has one writer at a time, and erasure is that writer")
    import psycopg

    http = erasure_http
    doomed, secrets = distinctive_person(http)
    wait_until_views_caught_up(http)
    with psycopg.connect(database) as writer:  # a transaction, left open between statements
        writer.execute("INSERT INTO signin_failures VALUES (%s, 1, 0)",
                       (f"held-{uuid.uuid4().hex}",))
        ending = threading.Timer(2.0, writer.rollback)
        ending.start()
        try:
            answer = http.delete(f"/api/user/{doomed.id}", headers=doomed.headers)
        finally:
            ending.join()
    assert answer.status_code == 200, answer.text
    found = {what: erasure_server.holding(value) for what, value in secrets.items()}
    assert found == {what: [] for what in secrets}, f"personal data left on disk: {found}"


def test_erasure_waits_for_a_transaction_older_than_the_deletion_in_another_database(
        erasure_http: httpx.Client, erasure_server: Server) -> None:
    """A transaction of another database on the same server (another application's, a
    CREATE DATABASE) is no session of ours, yet every snapshot taken here while it runs is
    as old as it: a statement that starts after erasure looked for old sessions, and before
    VACUUM FULL holds the tables' lock and reads its horizon, keeps the erased row alive.
    Here that statement is forced: a lock holds VACUUM back, and as soon as it waits a
    snapshot is taken here and the lock let go. Erasure must wait for the other database's
    transaction, so that VACUUM never starts while it runs."""
    database = erasure_server.backend.url
    if database is None:
        pytest.skip("SQLite has no other databases and one writer at a time")
    import psycopg

    http = erasure_http
    doomed, secrets = distinctive_person(http)
    wait_until_views_caught_up(http)
    vacuum_waiting = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND query LIKE 'VACUUM%' AND wait_event_type = 'Lock'")
    with psycopg.connect(database.rsplit("/", 1)[0] + "/postgres") as elsewhere, \
            psycopg.connect(database) as locker, psycopg.connect(database) as reader, \
            psycopg.connect(database, autocommit=True) as watch:
        elsewhere.execute("SELECT pg_current_xact_id()")  # an id, older than the deletion
        locker.execute("LOCK TABLE users IN ACCESS SHARE MODE")  # no id, no snapshot
        reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ

        def interleave() -> None:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                if watch.execute(vacuum_waiting).fetchone() != (0,):
                    reader.execute("SELECT 1")  # a snapshot as old as `elsewhere`
                    break
                time.sleep(0.02)
            elsewhere.rollback()
            locker.commit()

        interleaving = threading.Thread(target=interleave)
        interleaving.start()
        try:
            answer = http.delete(f"/api/user/{doomed.id}", headers=doomed.headers)
        finally:
            interleaving.join()
            reader.rollback()
    assert answer.status_code == 200, answer.text
    found = {what: erasure_server.holding(value) for what, value in secrets.items()}
    assert found == {what: [] for what in secrets}, f"personal data left on disk: {found}"


def test_events_show_a_rename_and_an_erasure_at_once_though_names_are_cached(
        http: httpx.Client) -> None:
    """Workers cache usernames; a rename or an erasure must still show in the very next read."""
    owner = sign_up(http, "host")
    guest = sign_up(http, "guest")
    word = f"cached{uuid.uuid4().hex[:8]}"
    created = http.post("/api/events/", headers=owner.headers,
                        json=event_body(name=word, participants=[guest.username]))
    assert created.status_code == 201, created.text
    event_id = created.json()["event"]["id"]
    one = f"/api/event/{event_id}"
    listed = {"q": word, "min_position": created.headers["x-position"]}

    def shown() -> tuple[list[str], list[list[str]]]:
        event = http.get(one, headers=owner.headers)
        page = http.get("/api/events/", params=listed, headers=owner.headers)
        assert event.status_code == 200 and page.status_code == 200, (event.text, page.text)
        return (event.json()["event"]["participants"],
                [e["participants"] for e in page.json()["events"] if e["id"] == event_id])

    assert shown() == ([guest.username], [[guest.username]])
    renamed = f"renamed-{uuid.uuid4().hex[:8]}"
    assert change(http, guest, {"username": renamed}).status_code == 200
    assert shown() == ([renamed], [[renamed]])
    assert http.delete(f"/api/user/{guest.id}", headers=guest.headers).status_code == 200
    assert shown() == ([], [[]])


def live_events_of(server: Server, owner_id: str) -> list[str]:
    """The owner's events that are not deleted, from the event store's log itself (no view
    that could lag or miss one)."""
    app = wiring.event_application(Settings.from_env(server.command_env))
    try:
        facts = [app.mapper.to_domain_event(n) for n in
                 app.recorder.select_notifications(start=1, limit=1_000_000)]
        created = [fact.originator_id for fact in facts
                   if isinstance(fact, Event.Created) and fact.owner_id == owner_id]
        return [str(event_id) for event_id in created
                if not app.repository.get(event_id).deleted]
    finally:
        app.close()


def test_no_event_created_while_its_owner_is_being_deleted_survives_the_deletion(
        http: httpx.Client, server: Server, person: Person) -> None:
    """Creators keep posting until the account is gone: whatever each creation met — the
    deletion listing the owner's events, saving, or erasing — its event is cancelled with
    the account or refused (401), never left live (domain.ownership)."""
    stop = threading.Event()
    statuses: list[int] = []

    def create() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                status = client.post("/api/events/", headers=person.headers,
                                     json=event_body()).status_code
                statuses.append(status)
                if status == 401:
                    return

    creators = [threading.Thread(target=create) for _ in range(4)]
    for creator in creators:
        creator.start()
    time.sleep(0.5)
    answer = http.delete(f"/api/user/{person.id}", headers=person.headers)
    stop.set()
    for creator in creators:
        creator.join()
    assert answer.status_code == 200, answer.text
    assert 201 in statuses and set(statuses) <= {201, 401}
    assert live_events_of(server, person.id) == []
