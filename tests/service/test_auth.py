"""Passwords, session tokens and the auth dependencies, driven through a tiny FastAPI app."""

from __future__ import annotations

import time

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from pydantic import BaseModel, SecretStr, ValidationError
from starlette.responses import Response

from primetime.service.auth import (
    ADMIN_ONLY,
    BAD_AUTHORIZATION,
    INVALID_TOKEN,
    NOT_SIGNED_IN,
    SESSION_COOKIE,
    SESSION_ENDED,
    SESSION_SALT,
    WRONG_ADMIN_TOKEN,
    AdminAccess,
    CurrentUserId,
    OptionalUserId,
    Password,
    Username,
    ensure_owner,
    hash_password,
    issue_token,
    password_needs_rehash,
    read_token,
    session_rate_limit_key,
    set_session_cookie,
    validate_password,
    validate_username,
    verify_password,
)
from primetime.service.settings import Settings

ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"


@pytest.fixture
def settings() -> Settings:
    return Settings(
        environment="test",
        secret_key="secret-for-tests-0123456789abcdefghij",
        admin_token=ADMIN_TOKEN,
        token_ttl_seconds=3600,
        _env_file=None,
    )


REVOKED = "revoked-session"


def make_app(settings: Settings) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings
    app.state.session_check = lambda token: token.session_id != REVOKED

    @app.get("/me")
    def me(user_id: CurrentUserId) -> dict[str, int]:
        return {"user_id": user_id}

    @app.get("/maybe")
    def maybe(user_id: OptionalUserId) -> dict[str, int | None]:
        return {"user_id": user_id}

    @app.get("/admin")
    def admin(admin_id: AdminAccess) -> dict[str, int | None]:
        return {"admin_id": admin_id}

    @app.get("/users/{user_id}/history")
    def history(user_id: int, me: CurrentUserId) -> dict[str, int]:
        ensure_owner(user_id, me, what="history")
        return {"user_id": user_id}

    return app


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(make_app(settings))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ----------------------------------------------------------------------------- passwords


def test_hash_and_verify_password() -> None:
    hashed = hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert hashed != hash_password("correct horse battery")  # salted
    assert verify_password("correct horse battery", hashed=hashed)
    assert not verify_password("wrong password", hashed=hashed)
    assert not password_needs_rehash(hashed)


def test_verify_password_never_raises() -> None:
    assert not verify_password("anything", hashed="not-a-hash")
    assert not verify_password("anything", hashed="")
    assert not verify_password("anything", hashed=None)  # unknown user


def test_password_needs_rehash_for_weaker_or_broken_hashes() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("password123")
    assert verify_password("password123", hashed=weak)
    assert password_needs_rehash(weak)
    assert password_needs_rehash("garbage")


@pytest.mark.parametrize("name", ["abc", "Alice_01", "a.b-c", "x" * 64])
def test_valid_usernames(name: str) -> None:
    assert validate_username(name) == name


@pytest.mark.parametrize("name", ["ab", "x" * 65, "with space", "émile", "abc\n", "a/b", ""])
def test_invalid_usernames(name: str) -> None:
    with pytest.raises(ValueError, match="username"):
        validate_username(name)


def test_password_policy() -> None:
    assert validate_password("ten chars!") == "ten chars!"
    assert validate_password("correct horse battery", username="ada") == "correct horse battery"
    assert validate_password("x7#Qm2!vR9" * 12) == "x7#Qm2!vR9" * 12  # 120 characters
    cases = [
        ("nine char", {}, "password must be at least 10 characters, got 9"),
        ("x" * 129, {}, "password must be at most 128 characters, got 129"),
        ("my-AdaLovelace-pw", {"username": "adalovelace"}, "must not contain the username"),
        ("password123", {}, "one of the 30,000 most common passwords"),
        ("QWERTYUIOP", {}, "one of the 30,000 most common passwords"),  # any case
        ("1q2w3e4r5t", {}, "one of the 30,000 most common passwords"),
        ("aaaaaaaaaaaa", {}, r"too easy to guess \(repeats like"),
        ("abcdefghijklmnop", {}, "too easy to guess"),
        ("zz" * 30, {}, "too easy to guess"),  # long: the cheap check
    ]
    for password, kwargs, why in cases:
        with pytest.raises(ValueError, match=why):
            validate_password(password, **kwargs)


def test_password_policy_costs_little_on_long_random_passwords() -> None:
    import random
    import string

    rng = random.Random(0)
    slowest = 0.0
    for n in (40, 48, 49, 128):
        password = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))
        start = time.perf_counter()
        validate_password(password)
        slowest = max(slowest, time.perf_counter() - start)
    assert slowest < 0.2


def test_schema_types_enforce_the_same_policy() -> None:
    class SignUp(BaseModel):
        username: Username
        password: Password

    assert SignUp(username="alice", password="long enough").username == "alice"
    for username, password in [
        ("al", "long enough"),
        ("alice\n", "long enough"),
        ("al ice", "long enough"),
        ("alice", "short"),
        ("alice", "x" * 129),
        ("alice", "password123"),
    ]:
        with pytest.raises(ValidationError):
            SignUp(username=username, password=password)
    with pytest.raises(ValidationError, match="password must be at least 10 characters"):
        SignUp(username="alice", password="9 letters")


# ----------------------------------------------------------------------------- tokens


def test_token_round_trip(settings: Settings) -> None:
    data = read_token(issue_token(7, is_admin=True, session_id="s1", settings=settings), settings)
    assert data is not None
    assert (data.user_id, data.is_admin, data.session_id) == (7, True, "s1")
    assert abs(data.issued_at.timestamp() - time.time()) < 5


def test_tampered_token_is_rejected(settings: Settings) -> None:
    token = issue_token(7, is_admin=False, session_id="s1", settings=settings)
    payload, rest = token.split(".", 1)
    forged = payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + rest
    assert read_token(forged, settings) is None
    assert read_token(token + "x", settings) is None
    assert read_token("", settings) is None
    assert read_token("not.a.token", settings) is None


def test_token_from_another_secret_is_rejected(settings: Settings) -> None:
    other = settings.model_copy(
        update={"secret_key": SecretStr("another-secret-0123456789abcdefghij")}
    )
    assert (
        read_token(issue_token(7, is_admin=False, session_id="s1", settings=other), settings)
        is None
    )


def test_token_expires_after_ttl(settings: Settings) -> None:
    ttl = settings.token_ttl_seconds
    old = issue_token(
        7, is_admin=False, session_id="s1", settings=settings, clock=lambda: time.time() - ttl - 5
    )
    fresh = issue_token(
        7, is_admin=False, session_id="s1", settings=settings, clock=lambda: time.time() - ttl + 60
    )
    assert read_token(old, settings) is None
    assert read_token(fresh, settings) is not None
    # The same token read later through the injected clock expires too.
    later = time.time() + ttl + 5
    assert read_token(fresh, settings, clock=lambda: later) is None


def test_token_signed_in_the_future_is_rejected(settings: Settings) -> None:
    future = issue_token(
        7, is_admin=False, session_id="s1", settings=settings, clock=lambda: time.time() + 600
    )
    assert read_token(future, settings) is None


def test_validly_signed_payload_of_wrong_shape_is_rejected(settings: Settings) -> None:
    signer = URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt=SESSION_SALT)
    for payload in (
        {"uid": "7", "adm": False, "sid": "s"},
        {"uid": 7, "sid": "s"},
        {"uid": True, "adm": False, "sid": "s"},
        [7],
        {"uid": 7, "adm": False},  # a token from before server-side sessions
        {"uid": 7, "adm": False, "sid": ""},
        {"uid": 7, "adm": False, "sid": "x" * 33},
        {"uid": 7, "adm": False, "sid": 5},
    ):
        assert read_token(str(signer.dumps(payload)), settings) is None
    good = {"uid": 7, "adm": False, "sid": "s"}
    assert read_token(str(signer.dumps(good)), settings) is not None


@pytest.mark.parametrize("bad", [-1, True, "7", 1.5])
def test_issue_token_checks_user_id(settings: Settings, bad: object) -> None:
    with pytest.raises(ValueError, match="user_id"):
        issue_token(bad, is_admin=False, session_id="s1", settings=settings)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="session_id"):
        issue_token(1, is_admin=False, session_id="", settings=settings)


# ----------------------------------------------------------------------------- dependencies


def test_401_without_token(client: TestClient) -> None:
    r = client.get("/me")
    assert r.status_code == 401
    assert r.json() == {"detail": NOT_SIGNED_IN}
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_bearer_and_cookie_sign_in(client: TestClient, settings: Settings) -> None:
    token = issue_token(5, is_admin=False, session_id="s1", settings=settings)
    assert client.get("/me", headers=bearer(token)).json() == {"user_id": 5}
    client.cookies.set(SESSION_COOKIE, token)
    assert client.get("/me").json() == {"user_id": 5}


def test_invalid_or_expired_token_is_401(client: TestClient, settings: Settings) -> None:
    expired = issue_token(
        5, is_admin=False, session_id="s1", settings=settings, clock=lambda: time.time() - 7200
    )
    for token in ("garbage", expired):
        r = client.get("/me", headers=bearer(token))
        assert r.status_code == 401
        assert r.json() == {"detail": INVALID_TOKEN}
        assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_a_token_of_an_ended_session_is_refused(client: TestClient, settings: Settings) -> None:
    """The signature alone is not enough: the session must still be open."""
    ended = issue_token(5, is_admin=True, session_id=REVOKED, settings=settings)
    r = client.get("/me", headers=bearer(ended))
    assert r.status_code == 401 and r.json() == {"detail": SESSION_ENDED}
    assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert client.get("/maybe", headers=bearer(ended)).json() == {"user_id": None}
    assert client.get("/admin", headers=bearer(ended)).status_code == 401
    client.cookies.set(SESSION_COOKIE, ended)
    assert client.get("/me").status_code == 401


def test_without_a_session_check_no_token_is_honoured(settings: Settings) -> None:
    app = make_app(settings)
    del app.state.session_check
    token = issue_token(5, is_admin=False, session_id="s1", settings=settings)
    with pytest.raises(RuntimeError, match=r"app\.state\.session_check"):
        TestClient(app).get("/me", headers=bearer(token))


def test_non_bearer_authorization_is_401(client: TestClient) -> None:
    r = client.get("/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401
    assert r.json() == {"detail": BAD_AUTHORIZATION}


def test_optional_user_id(client: TestClient, settings: Settings) -> None:
    assert client.get("/maybe").json() == {"user_id": None}
    assert client.get("/maybe", headers=bearer("garbage")).json() == {"user_id": None}
    assert client.get("/maybe", headers={"Authorization": "Basic x"}).json() == {"user_id": None}
    token = issue_token(9, is_admin=False, session_id="s1", settings=settings)
    assert client.get("/maybe", headers=bearer(token)).json() == {"user_id": 9}


def test_admin_route_refuses_non_admin_user(client: TestClient, settings: Settings) -> None:
    r = client.get(
        "/admin", headers=bearer(issue_token(5, is_admin=False, session_id="s1", settings=settings))
    )
    assert r.status_code == 403
    assert r.json() == {"detail": ADMIN_ONLY}


def test_admin_route_needs_credentials(client: TestClient) -> None:
    r = client.get("/admin")
    assert r.status_code == 401
    assert r.json() == {"detail": NOT_SIGNED_IN}


def test_admin_route_accepts_admin_user(client: TestClient, settings: Settings) -> None:
    r = client.get(
        "/admin", headers=bearer(issue_token(1, is_admin=True, session_id="s1", settings=settings))
    )
    assert r.status_code == 200
    assert r.json() == {"admin_id": 1}


def test_admin_route_accepts_admin_token_header(client: TestClient) -> None:
    r = client.get("/admin", headers={"X-Admin-Token": ADMIN_TOKEN})
    assert r.status_code == 200
    assert r.json() == {"admin_id": None}


def test_wrong_admin_token_is_403_even_with_admin_session(
    client: TestClient, settings: Settings
) -> None:
    admin = issue_token(1, is_admin=True, session_id="s1", settings=settings)
    for headers in (
        {"X-Admin-Token": ADMIN_TOKEN + "x"},
        {"X-Admin-Token": ""},
        {"X-Admin-Token": "wrong", **bearer(admin)},
    ):
        r = client.get("/admin", headers=headers)
        assert r.status_code == 403
        assert r.json() == {"detail": WRONG_ADMIN_TOKEN}


def test_ensure_owner(client: TestClient, settings: Settings) -> None:
    headers = bearer(issue_token(5, is_admin=False, session_id="s1", settings=settings))
    assert client.get("/users/5/history", headers=headers).status_code == 200
    r = client.get("/users/6/history", headers=headers)
    assert r.status_code == 403
    assert r.json()["detail"].startswith("you can only read your own history")


def test_missing_settings_is_a_clear_error() -> None:
    app = FastAPI()

    @app.get("/me")
    def me(user_id: CurrentUserId) -> dict[str, int]:
        return {"user_id": user_id}

    with pytest.raises(RuntimeError, match=r"app\.state\.settings"):
        TestClient(app).get("/me", headers=bearer("x"))


def test_session_cookie_attributes(settings: Settings) -> None:
    response = Response()
    set_session_cookie(response, "tok", settings)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=tok;")
    for part in ("HttpOnly", "Max-Age=3600", "Path=/", "SameSite=lax"):
        assert part in cookie
    assert "Secure" not in cookie
    secure = settings.model_copy(update={"cookie_secure": True})
    response = Response()
    set_session_cookie(response, "tok", secure)
    assert "Secure" in response.headers["set-cookie"]


def test_session_rate_limit_key(settings: Settings) -> None:
    app = make_app(settings)
    token = issue_token(5, is_admin=False, session_id="s1", settings=settings)

    def scope(headers: list[tuple[bytes, bytes]]) -> dict[str, object]:
        return {"type": "http", "app": app, "headers": headers}

    assert session_rate_limit_key(scope([(b"authorization", f"Bearer {token}".encode())])) == (
        "user:5"
    )
    assert session_rate_limit_key(scope([(b"authorization", b"Bearer forged")])) is None
    # No database read before the rate limit: an ended session still keys by its user.
    ended = issue_token(6, is_admin=False, session_id=REVOKED, settings=settings)
    auth = (b"authorization", f"Bearer {ended}".encode())
    assert session_rate_limit_key(scope([auth])) == "user:6"
    assert session_rate_limit_key(scope([])) is None
    assert session_rate_limit_key({"type": "http", "headers": []}) is None


def test_a_remembered_signature_holds_only_for_its_key(settings: Settings) -> None:
    token = issue_token(7, is_admin=False, session_id="s1", settings=settings)
    assert read_token(token, settings) is not None  # verified once, remembered
    other = settings.model_copy(update={"secret_key": SecretStr("another-key-" + "x" * 32)})
    assert read_token(token, other) is None
    assert read_token(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], settings) is None
