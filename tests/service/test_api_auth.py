"""Issue h11 through the HTTP API, on SQLite and PostgreSQL: server-side sessions (sign-out,
sign-out everywhere, password change, across workers), sign-in throttling, the password
policy, case-insensitive usernames, Cache-Control on sign-in answers, idempotent events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient
from test_api import make_settings, registry, signup  # noqa: F401  (registry: a fixture)

from primetime.registry import ModelRegistry
from primetime.service.app import create_app
from primetime.service.auth import SESSION_COOKIE, SESSION_ENDED, hash_password
from primetime.service.state import ServiceState

PASSWORD = "pass-word-1"


@pytest.fixture
def workers(db_url: str, registry: ModelRegistry, planted) -> Iterator[list[TestClient]]:  # noqa: F811
    """Two apps on one database, as two worker processes would be (each its own caches)."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                TestClient(
                    create_app(make_settings(db_url, registry), dataset=planted, registry=registry)
                )
            )
            for _ in range(2)
        ]


@pytest.fixture
def client(workers: list[TestClient]) -> TestClient:
    return workers[0]


def svc_of(c: TestClient) -> ServiceState:
    return c.app.state.svc  # type: ignore[attr-defined,no-any-return]


def login(c: TestClient, name: str, password: str = PASSWORD) -> dict[str, str]:
    r = c.post("/api/v1/auth/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    c.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def status_of_me(c: TestClient, h: dict[str, str]) -> int:
    return c.get("/api/v1/me", headers=h).status_code


# ------------------------------------------------------------------------------ sessions


def test_logout_ends_the_token_at_once_in_every_worker(workers: list[TestClient]) -> None:
    a, b = workers
    h = signup(a, "ada")
    other = login(a, "ada")
    assert status_of_me(a, h) == 200 and status_of_me(b, h) == 200  # b caches the user
    r = a.post("/api/v1/auth/logout", headers=h)
    assert r.status_code == 204 and r.headers["cache-control"] == "no-store"
    for c in (a, b):
        refused = c.get("/api/v1/me", headers=h)
        assert refused.status_code == 401 and refused.json() == {"detail": SESSION_ENDED}
        assert c.get("/api/v1/recommendations", headers=h).status_code == 401
        assert (
            c.post(
                "/api/v1/events", headers=h, json={"item_id": "i1", "event_type": "play"}
            ).status_code
            == 401
        )
        assert status_of_me(c, other) == 200  # the other session of ada stays open
    assert a.post("/api/v1/auth/logout", headers=h).status_code == 204  # again: a no-op
    assert a.post("/api/v1/auth/logout").status_code == 204  # without a token too


def test_logout_ends_the_cookie_session(client: TestClient) -> None:
    r = client.post("/api/v1/auth/signup", json={"username": "cookie", "password": PASSWORD})
    cookie = r.cookies[SESSION_COOKIE]
    assert client.get("/api/v1/me").status_code == 200
    assert client.post("/api/v1/auth/logout").status_code == 204
    client.cookies.set(SESSION_COOKIE, cookie)  # a copy kept by someone
    assert client.get("/api/v1/me").status_code == 401


def test_sign_out_everywhere(workers: list[TestClient]) -> None:
    a, b = workers
    sessions = [signup(a, "bob"), login(a, "bob"), login(b, "bob")]
    carol = signup(b, "carol")
    assert all(status_of_me(b, h) == 200 for h in sessions)
    r = b.post("/api/v1/auth/logout-all", headers=sessions[0])
    assert r.status_code == 204 and r.headers["cache-control"] == "no-store"
    assert [status_of_me(c, h) for c in (a, b) for h in sessions] == [401] * 6
    assert status_of_me(a, carol) == 200  # other users keep theirs
    assert a.post("/api/v1/auth/logout-all", headers=sessions[1]).status_code == 401
    assert status_of_me(a, login(a, "bob")) == 200  # signing in again works


def test_change_password_ends_the_old_sessions(workers: list[TestClient]) -> None:
    a, b = workers
    h = signup(a, "dan")
    other = login(b, "dan")
    new = "a brand new passphrase"
    wrong = a.post(
        "/api/v1/auth/password",
        headers=h,
        json={"current_password": "not-my-password", "new_password": new},
    )
    assert wrong.status_code == 401 and wrong.json() == {"detail": "the current password is wrong"}
    weak = a.post(
        "/api/v1/auth/password",
        headers=h,
        json={"current_password": PASSWORD, "new_password": "password123"},
    )
    assert weak.status_code == 422 and "most common passwords" in weak.json()["message"]
    named = a.post(
        "/api/v1/auth/password",
        headers=h,
        json={"current_password": PASSWORD, "new_password": "dan-is-my-name-99"},
    )
    assert named.status_code == 422
    assert named.json()["message"] == "body.new_password: password must not contain the username"
    assert status_of_me(a, h) == 200  # refusals change nothing

    r = a.post(
        "/api/v1/auth/password", headers=h, json={"current_password": PASSWORD, "new_password": new}
    )
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    fresh = {"Authorization": f"Bearer {r.json()['token']}"}
    assert [status_of_me(c, t) for c in (a, b) for t in (h, other)] == [401] * 4
    assert status_of_me(b, fresh) == 200  # the caller stays signed in with the new token
    a.cookies.clear()
    old = a.post("/api/v1/auth/login", json={"username": "dan", "password": PASSWORD})
    assert old.status_code == 401
    assert status_of_me(b, login(b, "dan", new)) == 200


# ------------------------------------------------------------------------------ throttling


def test_thirty_wrong_passwords_then_the_right_one_is_throttled(
    workers: list[TestClient],
) -> None:
    a, b = workers
    signup(a, "eve")
    now = [1_000_000.0]
    for c in workers:
        svc_of(c).login_throttle.clock = lambda: now[0]
    codes, waits = [], []
    for i in range(30):
        c = workers[i % 2]  # the attempts alternate between the workers
        r = c.post("/api/v1/auth/login", json={"username": "eve", "password": f"guess-{i}"})
        codes.append(r.status_code)
        if r.status_code == 429:
            waits.append(int(r.headers["retry-after"]))
            assert r.json() == {"detail": f"too many failed sign-ins: try again in {waits[-1]} s"}
            assert r.headers["cache-control"] == "no-store"
    assert codes == [401] * 5 + [429] * 25  # after 5 failures the password is not even tried
    assert waits == [1] * 25  # the clock stood still: the first back-off, 1 s
    right = b.post("/api/v1/auth/login", json={"username": "EVE", "password": PASSWORD})
    assert right.status_code == 429 and right.headers["retry-after"] == "1"

    # Each failure after the wait doubles the next one: 2, 4, 8 … seconds.
    for expected in (2, 4, 8):
        now[0] += 1000
        r = a.post("/api/v1/auth/login", json={"username": "eve", "password": "still-wrong"})
        assert r.status_code == 401
        r = b.post("/api/v1/auth/login", json={"username": "eve", "password": PASSWORD})
        assert r.status_code == 429 and r.headers["retry-after"] == str(expected)
    now[0] += 9
    assert (
        b.post("/api/v1/auth/login", json={"username": "eve", "password": PASSWORD}).status_code
        == 200
    )
    # Success forgets the account's failures: a typo is a plain 401 again.
    assert (
        a.post("/api/v1/auth/login", json={"username": "eve", "password": "typo"}).status_code
        == 401
    )
    assert (
        a.post("/api/v1/auth/login", json={"username": "eve", "password": PASSWORD}).status_code
        == 200
    )


def test_back_off_is_capped(client: TestClient) -> None:
    svc = svc_of(client)
    now = [0.0]
    svc.login_throttle.clock = lambda: now[0]
    for _ in range(40):
        now[0] += 10_000
        client.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong-one"})
    r = client.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong-one"})
    assert r.status_code == 429 and r.headers["retry-after"] == "900"


def test_one_address_guessing_many_accounts_is_throttled(client: TestClient) -> None:
    signup(client, "fay")
    codes = [
        client.post(
            "/api/v1/auth/login", json={"username": f"user{i}", "password": "x"}
        ).status_code
        for i in range(21)
    ]
    assert codes == [401] * 20 + [429]  # 20 failures from one address, any accounts
    r = client.post("/api/v1/auth/login", json={"username": "fay", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_throttle_can_be_turned_off(db_url: str, registry: ModelRegistry, planted) -> None:  # noqa: F811
    settings = make_settings(db_url, registry, login_throttle=False)
    with TestClient(create_app(settings, dataset=planted, registry=registry)) as c:
        codes = {
            c.post("/api/v1/auth/login", json={"username": "x", "password": "y"}).status_code
            for _ in range(8)
        }
    assert codes == {401}


# ------------------------------------------------------------------------------ policy, names


def test_password_policy_at_sign_up(client: TestClient) -> None:
    cases = {
        "short-pw": "body.password: Value error, password must be at least 10 characters, got 8",
        "password123": "most common passwords",
        "gus-gus-password": "password must not contain the username",
        "aaaaaaaaaaaaaaa": "too easy to guess",
    }
    for password, why in cases.items():
        r = client.post("/api/v1/auth/signup", json={"username": "Gus", "password": password})
        assert r.status_code == 422 and why in r.json()["message"], (password, r.json())
        assert r.headers["cache-control"] == "no-store"
    assert (
        client.post(
            "/api/v1/auth/signup", json={"username": "gus", "password": PASSWORD}
        ).status_code
        == 201
    )


def test_existing_users_keep_their_old_passwords(client: TestClient) -> None:
    svc_of(client).store.create_user("old", hash_password("8-chars!"))
    assert status_of_me(client, login(client, "old", "8-chars!")) == 200


def test_usernames_are_unique_and_signed_in_regardless_of_case(client: TestClient) -> None:
    signup(client, "u_abc")
    r = client.post("/api/v1/auth/signup", json={"username": "U_ABC", "password": PASSWORD})
    assert r.status_code == 409 and r.json() == {"detail": "username 'U_ABC' is taken"}
    r = client.post("/api/v1/auth/login", json={"username": "U_Abc", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["username"] == "u_abc"


def test_sign_in_answers_are_not_cached(client: TestClient) -> None:
    ok = client.post("/api/v1/auth/signup", json={"username": "hal", "password": PASSWORD})
    answers = [
        ok,
        client.post("/api/v1/auth/login", json={"username": "hal", "password": PASSWORD}),
        client.post("/api/v1/auth/login", json={"username": "hal", "password": "wrong-one"}),
        client.post("/api/v1/auth/login", json={"username": "hal"}),
        client.post("/api/v1/auth/signup", json={"username": "hal", "password": PASSWORD}),
    ]
    assert [r.status_code for r in answers] == [201, 200, 401, 422, 409]
    assert all(r.headers["cache-control"] == "no-store" for r in answers)


# ------------------------------------------------------------------------------ events


def test_a_retried_batch_with_event_ids_is_stored_once(workers: list[TestClient]) -> None:
    a, b = workers
    h = signup(a, "ivy")
    batch = {
        "events": [
            {"item_id": "i1", "event_type": "play", "event_id": "3f1c-1"},
            {"item_id": "i2", "event_type": "rate", "rating": 4, "event_id": "3f1c-2"},
        ]
    }
    first = a.post("/api/v1/events", headers=h, json=batch)
    assert first.status_code == 201
    again = b.post("/api/v1/events", headers=h, json=batch)  # the retry reaches another worker
    assert again.status_code == 200 and again.json() == first.json()
    one = a.post("/api/v1/events", headers=h, json=batch["events"][0])
    assert one.status_code == 200 and one.json()["ids"] == first.json()["ids"][:1]
    assert a.get("/api/v1/me", headers=h).json()["events"] == 2
    clash = a.post(
        "/api/v1/events",
        headers=h,
        json={"item_id": "i9", "event_type": "play", "event_id": "3f1c-1"},
    )
    assert clash.status_code == 409 and "event_id" in clash.json()["detail"]
    bad = a.post(
        "/api/v1/events", headers=h, json={"item_id": "i9", "event_type": "play", "event_id": "a b"}
    )
    assert bad.status_code == 422
    # Without a key, sending twice is two events, as before.
    plain = {"item_id": "i3", "event_type": "play"}
    assert [a.post("/api/v1/events", headers=h, json=plain).status_code for _ in range(2)] == [
        201,
        201,
    ]
    assert a.get("/api/v1/me", headers=h).json()["events"] == 4


def test_a_retried_request_with_an_idempotency_key_is_stored_once(client: TestClient) -> None:
    h = signup(client, "joe")
    batch = {
        "events": [{"item_id": "i1", "event_type": "play"}, {"item_id": "i2", "event_type": "like"}]
    }
    key = {"Idempotency-Key": "b7e0c2a4-5d1f-4f3e-9a77-0c1d2e3f4a5b", **h}
    first = client.post("/api/v1/events", headers=key, json=batch)
    again = client.post("/api/v1/events", headers=key, json=batch)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json() == {"accepted": 2, "ids": first.json()["ids"]}
    assert client.get("/api/v1/me", headers=h).json()["events"] == 2
    other = {"events": [{"item_id": "i5", "event_type": "play"}]}
    clash = client.post("/api/v1/events", headers=key, json=other)
    assert clash.status_code == 409 and "Idempotency-Key" in clash.json()["detail"]
    fresh = client.post("/api/v1/events", headers={**h, "Idempotency-Key": "another"}, json=batch)
    assert fresh.status_code == 201 and set(fresh.json()["ids"]).isdisjoint(first.json()["ids"])
    # The same key of another user is another request.
    h2 = signup(client, "kim")
    assert (
        client.post(
            "/api/v1/events", headers={**h2, "Idempotency-Key": key["Idempotency-Key"]}, json=batch
        ).status_code
        == 201
    )
