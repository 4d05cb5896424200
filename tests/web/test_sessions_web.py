"""Issue h11 in the web pages: sign-out ends the session on the server, "sign out everywhere"
on the insights page, throttled sign-in, the password rules on the sign-up form, and
Cache-Control on every sign-in and sign-up answer."""

from __future__ import annotations

from fastapi.testclient import TestClient
from web_support import PASSWORD, audit

from primetime.service.auth import SESSION_COOKIE


def sign_up(c: TestClient, name: str) -> str:
    """Sign up through the form; returns the session cookie."""
    r = c.post("/signup", data={"username": name, "password": PASSWORD})
    assert r.status_code == 303, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.cookies[SESSION_COOKIE]


def test_sign_out_ends_the_session_even_for_a_kept_cookie(client: TestClient) -> None:
    cookie = sign_up(client, "web-out")
    assert client.get("/insights").status_code == 200
    assert client.post("/signout").status_code == 303
    client.cookies.set(SESSION_COOKIE, cookie)  # the cookie a thief copied earlier
    assert client.get("/insights").status_code == 303  # to the sign-in page
    assert client.get("/api/v1/me").status_code == 401


def test_sign_out_everywhere_from_the_insights_page(client: TestClient) -> None:
    here = sign_up(client, "web-every")
    api = client.post("/api/v1/auth/login", json={"username": "web-every", "password": PASSWORD})
    token = {"Authorization": f"Bearer {api.json()['token']}"}
    client.cookies.clear()  # the API sign-in set its own session cookie: keep the first one
    client.cookies.set(SESSION_COOKIE, here)
    page = client.get("/insights")
    assert 'action="/signout-everywhere"' in page.text and "Sign out everywhere" in page.text
    assert not audit(page.text)
    r = client.post("/signout-everywhere")
    assert r.status_code == 303 and r.headers["location"] == "/signin"
    assert client.get("/api/v1/me", headers=token).status_code == 401  # the API token too
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, here)
    assert client.get("/insights").status_code == 303
    client.cookies.clear()
    assert client.post("/signout-everywhere").status_code == 303  # signed out: to sign-in


def test_sign_in_is_throttled_with_a_clear_message(client: TestClient) -> None:
    sign_up(client, "web-slow")
    client.cookies.clear()
    codes = []
    for i in range(6):
        r = client.post("/signin", data={"username": "web-slow", "password": f"nope-{i}"})
        codes.append(r.status_code)
        assert r.headers["cache-control"] == "no-store"
    assert codes == [401] * 5 + [429]
    right = client.post("/signin", data={"username": "WEB-SLOW", "password": PASSWORD})
    assert right.status_code == 429 and right.headers["retry-after"] == "1"
    assert "Too many failed sign-ins: try again in 1 second." in right.text
    assert not audit(right.text)


def test_sign_up_form_names_the_password_rule(client: TestClient) -> None:
    page = client.get("/signup")
    assert 'minlength="10"' in page.text and "At least 10 characters" in page.text
    for password, why in (
        ("too-short", "Password must be at least 10 characters, got 9."),
        ("password123", "Password is one of the 30,000 most common passwords"),
        ("web-rules-and-more", "Password must not contain the username."),
    ):
        r = client.post("/signup", data={"username": "web-rules", "password": password})
        assert r.status_code == 422 and why in r.text, r.text
        assert r.headers["cache-control"] == "no-store"
    sign_up(client, "web-rules")
    client.cookies.clear()
    r = client.post("/signup", data={"username": "WEB-RULES", "password": PASSWORD})
    assert r.status_code == 422 and "is taken" in r.text
