"""Sign-up, sign-in, refresh rotation, sign-out and token checking, over real HTTP against a real
`alphabet serve` process (SPEC §4 Auth)."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from alphabet import wiring
from alphabet.settings import Settings
from tests.conftest import Backend, Person, Server, assert_error, serving, sign_up

PASSWORD = "correct horse battery"


# ---------------------------------------------------------------------------------------------
# helpers




def unique(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def signup_body(**overrides: Any) -> dict[str, Any]:
    name = unique("new")
    body: dict[str, Any] = {"username": name, "email": f"{name}@example.com",
                            "password": PASSWORD}
    body.update(overrides)
    return body


def signing_key(server: Server) -> str:
    """The key the server signs with: ALPHABET_SECRET_KEY, else the file in its data dir."""
    configured = server.env.get("ALPHABET_SECRET_KEY") or os.environ.get("ALPHABET_SECRET_KEY")
    if configured and configured.strip():
        return configured.strip()
    return (server.data_dir / "secret_key").read_text().strip()


def claims_for(who: Person | str, kind: str = "access", **overrides: Any) -> dict[str, Any]:
    """A token's claims for a person (with the credential stamp the server gave them) or for
    a bare user id (with a made-up stamp)."""
    moment = int(time.time())
    user_id, stamp = (who, "made-up") if isinstance(who, str) else (
        who.id, unverified(who.access)[1]["pwd"])
    claims: dict[str, Any] = {"sub": user_id, "type": kind, "jti": str(uuid.uuid4()),
                              "iat": moment, "exp": moment + 600, "pwd": stamp}
    claims.update(overrides)
    return claims


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    return header, claims


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signin(http: httpx.Client, username: str, password: str) -> httpx.Response:
    return http.post("/api/auth/signin/", json={"username": username, "password": password})


# ---------------------------------------------------------------------------------------------
# sign-up


@pytest.mark.parametrize("path", ["/api/auth/signup/", "/api/auth/signup"])
def test_signup_answers_201_with_a_token_pair_and_the_new_user(http: httpx.Client,
                                                                path: str) -> None:
    body = signup_body()
    answer = http.post(path, json=body)
    assert answer.status_code == 201, answer.text
    data = answer.json()
    assert set(data) == {"access", "refresh", "user"}
    assert isinstance(data["access"], str) and isinstance(data["refresh"], str)
    user = data["user"]
    assert set(user) == {"id", "username", "email", "created_at", "updated_at"}
    assert str(uuid.UUID(user["id"])) == user["id"]
    assert user["username"] == body["username"]
    assert user["email"] == body["email"]
    for stamp in (user["created_at"], user["updated_at"]):
        assert datetime.fromisoformat(stamp).utcoffset() is not None, stamp
    me = http.get("/api/user/me", headers=bearer(data["access"]))
    assert me.status_code == 200, me.text
    assert me.json()["user"]["id"] == user["id"]


def test_signup_tokens_are_hs256_with_the_contract_claims_and_lifetimes(
        http: httpx.Client) -> None:
    data = http.post("/api/auth/signup/", json=signup_body()).json()
    user_id = data["user"]["id"]
    header, access = unverified(data["access"])
    assert header["alg"] == "HS256"
    assert {"exp", "iat", "jti", "sub", "type"} <= set(access)
    assert access["sub"] == user_id and access["type"] == "access"
    assert access["exp"] - access["iat"] == 15 * 60
    header, refresh = unverified(data["refresh"])
    assert header["alg"] == "HS256"
    assert refresh["sub"] == user_id and refresh["type"] == "refresh"
    assert refresh["exp"] - refresh["iat"] == 7 * 86400
    assert refresh["jti"] != access["jti"]


def test_signup_accepts_a_password_of_exactly_eight_characters_and_every_allowed_username_char(
        http: httpx.Client) -> None:
    name = f"a_b.c-d+{uuid.uuid4().hex[:6]}"
    answer = http.post("/api/auth/signup/", json=signup_body(username=name,
                                                             password="12345678"))
    assert answer.status_code == 201, answer.text
    assert signin(http, name, "12345678").status_code == 200


def test_signup_with_a_taken_username_in_another_case_is_a_409_naming_the_username(
        http: httpx.Client) -> None:
    name = unique("Alice")
    first = http.post("/api/auth/signup/", json=signup_body(username=name.lower(),
                                                             email=f"{name}@one.example.com"))
    assert first.status_code == 201, first.text
    again = http.post("/api/auth/signup/", json=signup_body(username=name.upper(),
                                                            email=f"{name}@two.example.com"))
    error = assert_error(again, 409)
    assert "username" in error["fields"]
    assert "email" not in error["fields"]
    # The refusal changed nothing: the first account still signs in, the second name does not.
    assert signin(http, name.lower(), PASSWORD).status_code == 200


def test_signup_with_a_taken_email_in_another_case_is_a_409_naming_the_email(
        http: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:10]
    first = http.post("/api/auth/signup/", json=signup_body(email=f"Email{tag}@X{tag}.com"))
    assert first.status_code == 201, first.text
    again = http.post("/api/auth/signup/", json=signup_body(email=f"email{tag}@x{tag}.com"))
    error = assert_error(again, 409)
    assert "email" in error["fields"]
    assert "username" not in error["fields"]


def test_signup_with_both_username_and_email_taken_names_both_fields(http: httpx.Client) -> None:
    body = signup_body()
    assert http.post("/api/auth/signup/", json=body).status_code == 201
    error = assert_error(http.post("/api/auth/signup/", json=body), 409)
    assert {"username", "email"} <= set(error["fields"])


def test_concurrent_signups_for_one_username_give_exactly_one_account(server: Server) -> None:
    name = unique("racer")

    def attempt(index: int) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return client.post("/api/auth/signup/", json=signup_body(
                username=name if index % 2 else name.upper(),
                email=f"racer{index}_{name}@example.com")).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(attempt, range(6)))
    assert statuses == [201, 409, 409, 409, 409, 409]


@pytest.mark.parametrize("password", ["", "short", "seven77"])
def test_signup_with_a_password_shorter_than_eight_characters_is_a_422_naming_password(
        http: httpx.Client, password: str) -> None:
    body = signup_body(password=password)
    error = assert_error(http.post("/api/auth/signup/", json=body), 422)
    assert set(error["fields"]) == {"password"}
    # Nothing was recorded: the name is still free.
    assert signin(http, body["username"], password).status_code == 401


@pytest.mark.parametrize("username", [
    "alice@home", "ab", "", "bad name", "bad/name", "semi;colon", "quote'", "x" * 151,
])
def test_signup_with_an_invalid_username_is_a_422_naming_username(http: httpx.Client,
                                                                 username: str) -> None:
    error = assert_error(http.post("/api/auth/signup/", json=signup_body(username=username)), 422)
    assert set(error["fields"]) == {"username"}


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com",
                                   "two@@example.com", ""])
def test_signup_with_an_invalid_email_is_a_422_naming_email(http: httpx.Client,
                                                           email: str) -> None:
    error = assert_error(http.post("/api/auth/signup/", json=signup_body(email=email)), 422)
    assert set(error["fields"]) == {"email"}


def test_signup_with_missing_fields_is_a_422_naming_each_missing_field(
        http: httpx.Client) -> None:
    error = assert_error(http.post("/api/auth/signup/", json={}), 422)
    assert {"username", "email", "password"} <= set(error["fields"])
    error = assert_error(http.post("/api/auth/signup/", json={"username": unique()}), 422)
    assert set(error["fields"]) == {"email", "password"}


def test_signup_with_wrong_types_is_a_422_naming_each_field(http: httpx.Client) -> None:
    answer = http.post("/api/auth/signup/",
                       json={"username": 12345, "email": ["a@example.com"], "password": True})
    error = assert_error(answer, 422)
    assert {"username", "email", "password"} <= set(error["fields"])


def test_signup_with_an_unknown_field_is_a_422_naming_that_field(http: httpx.Client) -> None:
    body = signup_body(is_admin=True)
    error = assert_error(http.post("/api/auth/signup/", json=body), 422)
    assert set(error["fields"]) == {"is_admin"}
    assert signin(http, body["username"], PASSWORD).status_code == 401


@pytest.mark.parametrize("body", [[], "a string", 42, None])
def test_signup_with_a_json_body_that_is_not_an_object_is_a_422(http: httpx.Client,
                                                               body: Any) -> None:
    assert_error(http.post("/api/auth/signup/", content=json.dumps(body),
                           headers={"content-type": "application/json"}), 422)


@pytest.mark.parametrize("path", ["/api/auth/signup/", "/api/auth/signin/",
                                  "/api/auth/refresh/", "/api/auth/signout/"])
@pytest.mark.parametrize("raw", [b'{"username": "x", ', b"not json at all", b"\xff\xfe\x00"])
def test_malformed_json_is_a_400_with_the_error_envelope(http: httpx.Client, path: str,
                                                        raw: bytes) -> None:
    assert_error(http.post(path, content=raw, headers={"content-type": "application/json"}), 400)


def test_a_wrong_method_on_an_auth_route_still_answers_the_error_envelope(
        http: httpx.Client) -> None:
    answer = http.get("/api/auth/signup/")
    assert answer.status_code in (404, 405)
    assert_error(answer, answer.status_code)


# ---------------------------------------------------------------------------------------------
# sign-in


@pytest.mark.parametrize("path", ["/api/auth/signin/", "/api/auth/signin"])
def test_signin_with_the_right_password_answers_a_fresh_token_pair(http: httpx.Client,
                                                                  person: Person,
                                                                  path: str) -> None:
    answer = http.post(path, json={"username": person.username, "password": person.password})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert {"access", "refresh"} <= set(data)
    assert data["access"] != person.access and data["refresh"] != person.refresh
    assert unverified(data["access"])[1]["sub"] == person.id
    me = http.get("/api/user/me", headers=bearer(data["access"]))
    assert me.status_code == 200 and me.json()["user"]["id"] == person.id
    refreshed = http.post("/api/auth/refresh/", json={"refresh": data["refresh"]})
    assert refreshed.status_code == 200, refreshed.text


def test_signin_with_wrong_password_or_unknown_user_is_refused_with_one_generic_message(
        http: httpx.Client, person: Person) -> None:
    wrong_password = assert_error(signin(http, person.username, "not the password"), 401)
    unknown_user = assert_error(signin(http, unique("ghost"), person.password), 401)
    assert wrong_password == unknown_user
    assert person.username not in wrong_password["message"]


def test_signin_with_missing_or_mistyped_fields_is_a_422(http: httpx.Client) -> None:
    error = assert_error(http.post("/api/auth/signin/", json={"username": "someone"}), 422)
    assert "password" in error["fields"]
    error = assert_error(http.post("/api/auth/signin/",
                                   json={"username": 5, "password": PASSWORD}), 422)
    assert "username" in error["fields"]


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory,
                   backend: Backend) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("limited") / "data", backend.kind,
                 env={"ALPHABET_SIGNIN_FAILURES_PER_ACCOUNT_AND_ADDRESS": "3"}) as running:
        yield running


@pytest.fixture(scope="module")
def limited(limited_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=limited_server.url, timeout=30) as client:
        yield client


def test_after_three_failures_an_account_is_rate_limited_even_with_the_right_password(
        limited: httpx.Client) -> None:
    victim = sign_up(limited, "victim")
    for _ in range(3):
        assert_error(signin(limited, victim.username, "wrong password!"), 401)
    blocked = signin(limited, victim.username, victim.password)
    assert_error(blocked, 429)
    retry_after = blocked.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit(), blocked.headers
    assert 1 <= int(retry_after) <= 900
    # Another spelling of the same name is the same account.
    assert_error(signin(limited, victim.username.upper(), victim.password), 429)


def test_a_rate_limited_account_does_not_block_another_account_from_the_same_address(
        limited: httpx.Client) -> None:
    victim, bystander = sign_up(limited, "victim"), sign_up(limited, "bystander")
    for _ in range(3):
        signin(limited, victim.username, "wrong password!")
    assert_error(signin(limited, victim.username, victim.password), 429)
    answer = signin(limited, bystander.username, bystander.password)
    assert answer.status_code == 200, answer.text


def test_a_successful_signin_resets_the_account_failure_count(limited: httpx.Client) -> None:
    user = sign_up(limited, "forgetful")
    for _ in range(2):
        assert_error(signin(limited, user.username, "wrong password!"), 401)
    assert signin(limited, user.username, user.password).status_code == 200
    for _ in range(2):
        assert_error(signin(limited, user.username, "wrong password!"), 401)
    assert signin(limited, user.username, user.password).status_code == 200


def test_an_unknown_username_is_rate_limited_exactly_like_a_real_one(
        limited: httpx.Client) -> None:
    real, ghost = sign_up(limited, "real"), unique("ghost")
    answers = {}
    for name in (real.username, ghost):
        for _ in range(3):
            assert_error(signin(limited, name, "wrong password!"), 401)
        answers[name] = assert_error(signin(limited, name, "wrong password!"), 429)["code"]
    assert answers[real.username] == answers[ghost]


def test_failure_counters_never_store_a_raw_username(limited: httpx.Client,
                                                     limited_server: Server) -> None:
    ghost = f"ghost_{uuid.uuid4().hex}"
    for _ in range(2):
        assert_error(signin(limited, ghost, "whatever password"), 401)
    assert limited_server.holding(ghost) == []


def test_too_many_failures_from_one_address_block_every_account_from_it(
        tmp_path: Path, backend: Backend) -> None:
    env = {"ALPHABET_SIGNIN_FAILURES_PER_ACCOUNT": "100",
           "ALPHABET_SIGNIN_FAILURES_PER_ADDRESS": "3"}
    with serving(tmp_path / "data", backend.kind, env=env) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        innocent = sign_up(client, "innocent")
        for hop in range(3):
            # A forged forwarded header from an untrusted peer must not reset the count.
            answer = client.post("/api/auth/signin/",
                                 json={"username": unique("nobody"),
                                       "password": "guessing password"},
                                 headers={"X-Forwarded-For": f"203.0.113.{hop + 1}"})
            assert_error(answer, 401)
        blocked = client.post("/api/auth/signin/",
                              json={"username": innocent.username,
                                    "password": innocent.password},
                              headers={"X-Forwarded-For": "198.51.100.7"})
        assert_error(blocked, 429)
        assert blocked.headers.get("retry-after", "").isdigit(), blocked.headers


# ---------------------------------------------------------------------------------------------
# refresh rotation and sign-out


@pytest.mark.parametrize("path", ["/api/auth/refresh/", "/api/auth/refresh",
                                  "/api/token/refresh/", "/api/token/refresh"])
def test_refresh_answers_a_new_pair_that_works(http: httpx.Client, person: Person,
                                              path: str) -> None:
    answer = http.post(path, json={"refresh": person.refresh})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert {"access", "refresh"} <= set(data)
    assert data["refresh"] != person.refresh
    assert unverified(data["access"])[1]["sub"] == person.id
    assert http.get("/api/user/me", headers=bearer(data["access"])).status_code == 200
    again = http.post(path, json={"refresh": data["refresh"]})
    assert again.status_code == 200, again.text


def test_presenting_a_rotated_refresh_token_is_refused_and_revokes_its_whole_family(
        http: httpx.Client, person: Person) -> None:
    rotated = http.post("/api/auth/refresh/", json={"refresh": person.refresh})
    assert rotated.status_code == 200, rotated.text
    newest = rotated.json()["refresh"]
    assert_error(http.post("/api/auth/refresh/", json={"refresh": person.refresh}), 401)
    # The legitimate holder's newer token belongs to the same family: revoked too.
    assert_error(http.post("/api/auth/refresh/", json={"refresh": newest}), 401)
    # Other sessions of the same user (another family) are untouched.
    other = signin(http, person.username, person.password)
    assert other.status_code == 200
    assert http.post("/api/auth/refresh/", json={"refresh": other.json()["refresh"]}
                     ).status_code == 200


def test_two_concurrent_refreshes_with_one_token_give_at_most_one_new_pair(
        server: Server, person: Person) -> None:
    def attempt(_: int) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return client.post("/api/auth/refresh/", json={"refresh": person.refresh}).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(attempt, range(4)))
    assert statuses.count(200) <= 1 and set(statuses) <= {200, 401}, statuses


def test_replay_through_the_alias_path_also_revokes_the_family(http: httpx.Client,
                                                               person: Person) -> None:
    newest = http.post("/api/token/refresh/", json={"refresh": person.refresh}).json()["refresh"]
    assert_error(http.post("/api/token/refresh", json={"refresh": person.refresh}), 401)
    assert_error(http.post("/api/token/refresh/", json={"refresh": newest}), 401)


@pytest.mark.parametrize("path", ["/api/auth/signout/", "/api/auth/signout"])
def test_signout_answers_204_and_that_refresh_token_stops_working(http: httpx.Client,
                                                                 person: Person,
                                                                 path: str) -> None:
    answer = http.post(path, json={"refresh": person.refresh})
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    assert_error(http.post("/api/auth/refresh/", json={"refresh": person.refresh}), 401)


def test_signout_revokes_only_that_session(http: httpx.Client, person: Person) -> None:
    other = signin(http, person.username, person.password).json()
    assert http.post("/api/auth/signout/", json={"refresh": person.refresh}).status_code == 204
    assert http.post("/api/auth/refresh/", json={"refresh": other["refresh"]}).status_code == 200


def test_refresh_and_signout_refuse_garbage_and_missing_tokens(http: httpx.Client) -> None:
    for path in ("/api/auth/refresh/", "/api/auth/signout/"):
        assert_error(http.post(path, json={"refresh": "not.a.token"}), 401)
        error = assert_error(http.post(path, json={}), 422)
        assert "refresh" in error["fields"]


def test_an_access_token_is_not_accepted_as_a_refresh_token(http: httpx.Client,
                                                           person: Person) -> None:
    assert_error(http.post("/api/auth/refresh/", json={"refresh": person.access}), 401)
    assert_error(http.post("/api/token/refresh/", json={"refresh": person.access}), 401)
    assert_error(http.post("/api/auth/signout/", json={"refresh": person.access}), 401)


# ---------------------------------------------------------------------------------------------
# forged and wrong tokens on a protected route


def test_a_token_crafted_with_the_server_key_is_accepted_so_the_forgery_tests_are_meaningful(
        http: httpx.Client, server: Server, person: Person) -> None:
    token = jwt.encode(claims_for(person), signing_key(server), algorithm="HS256")
    answer = http.get("/api/user/me", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"]["id"] == person.id


@pytest.mark.parametrize("path", ["/api/user/me", "/api/user/me/"])
def test_a_protected_route_without_authorization_header_is_a_401(http: httpx.Client,
                                                                path: str) -> None:
    assert_error(http.get(path), 401)


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNzd29yZA==", "Bearer",
                                   "Bearer not-a-jwt", "Token {access}", "{access}"])
def test_a_protected_route_refuses_other_schemes_and_malformed_bearer_values(
        http: httpx.Client, person: Person, value: str) -> None:
    answer = http.get("/api/user/me", headers={"Authorization": value.format(access=person.access)})
    assert_error(answer, 401)


def test_an_alg_none_token_is_refused(http: httpx.Client, person: Person) -> None:
    for alg in ("none", "None", "NONE"):
        header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        payload = b64url(json.dumps(claims_for(person)).encode())
        for token in (f"{header}.{payload}.", f"{header}.{payload}"):
            assert_error(http.get("/api/user/me", headers=bearer(token)), 401)


def test_a_token_with_a_tampered_signature_is_refused(http: httpx.Client,
                                                      person: Person) -> None:
    head, payload, signature = person.access.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    forged = f"{head}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1:]}"
    assert_error(http.get("/api/user/me", headers=bearer(forged)), 401)


def test_a_token_whose_payload_was_changed_to_another_user_is_refused(
        http: httpx.Client, person: Person) -> None:
    other = sign_up(http, "other")
    head, _, signature = person.access.split(".")
    payload = b64url(json.dumps(claims_for(other)).encode())
    assert_error(http.get("/api/user/me", headers=bearer(f"{head}.{payload}.{signature}")), 401)


def test_a_token_signed_with_another_key_is_refused(http: httpx.Client, person: Person) -> None:
    token = jwt.encode(claims_for(person), "some other key " * 4, algorithm="HS256")
    assert_error(http.get("/api/user/me", headers=bearer(token)), 401)


def test_an_expired_token_signed_with_the_server_key_is_refused(http: httpx.Client,
                                                               server: Server,
                                                               person: Person) -> None:
    past = int(time.time()) - 3600
    token = jwt.encode(claims_for(person, iat=past - 900, exp=past), signing_key(server),
                       algorithm="HS256")
    assert_error(http.get("/api/user/me", headers=bearer(token)), 401)


def test_a_token_with_alg_hs512_signed_with_the_server_key_is_refused(
        http: httpx.Client, server: Server, person: Person) -> None:
    token = jwt.encode(claims_for(person), signing_key(server), algorithm="HS512")
    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    assert_error(http.get("/api/user/me", headers=bearer(token)), 401)


@pytest.mark.parametrize("missing", ["exp", "iat", "jti", "sub", "type", "pwd"])
def test_a_token_missing_a_required_claim_is_refused(http: httpx.Client, server: Server,
                                                    person: Person, missing: str) -> None:
    claims = claims_for(person)
    del claims[missing]
    token = jwt.encode(claims, signing_key(server), algorithm="HS256")
    assert_error(http.get("/api/user/me", headers=bearer(token)), 401)


def test_a_validly_signed_token_for_an_unknown_user_is_refused(http: httpx.Client,
                                                              server: Server) -> None:
    token = jwt.encode(claims_for(str(uuid.uuid4())), signing_key(server), algorithm="HS256")
    assert_error(http.get("/api/user/me", headers=bearer(token)), 401)


def test_a_refresh_token_is_not_accepted_as_an_access_token(http: httpx.Client,
                                                           person: Person) -> None:
    assert_error(http.get("/api/user/me", headers=bearer(person.refresh)), 401)
    assert_error(http.get(f"/api/user/{person.id}", headers=bearer(person.refresh)), 401)


def user_facts(server: Server) -> Counter[str]:
    """How many of each User fact the event store holds."""
    app = wiring.event_application(Settings.from_env(server.command_env))
    try:
        return Counter(n.topic.rpartition(".")[2] for n in
                       app.recorder.select_notifications(start=1, limit=1_000_000)
                       if ":User." in n.topic)
    finally:
        app.close()


def test_signups_that_lose_the_race_for_a_name_record_no_fact(server: Server) -> None:
    """The name and address are reserved before the Registered fact: the losers are refused
    with nothing in the log (no account registered and at once deleted)."""
    name = unique("reserved")
    before = user_facts(server)

    def attempt(index: int) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return client.post("/api/auth/signup/", json=signup_body(
                username=name, email=f"r{index}_{name}@example.com")).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(attempt, range(6)))
    assert statuses == [201, 409, 409, 409, 409, 409]
    assert user_facts(server) - before == Counter({"Registered": 1})
