"""Cross-site request forgery and unstorable input on the web pages (no browser).

Every state-changing form carries the page's token; a POST without it, with a wrong one
or another session's, or from another origin, gets 403 and the HTML error page, and
changes nothing. These tests use a plain ``TestClient`` (the fixture's ``WebClient``
adds what our pages send) and read the token from the pages like a browser would.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from web_support import ADMIN_TOKEN, PASSWORD

from primetime.web.csrf import CSRF_COOKIE

SAME = {"Origin": "http://testserver"}
FRAGMENT = {"X-Fragment": "1"}

#: Every state-changing page route, with a form a real page would send.
POSTS = [
    ("/signin", {"username": "csrf-victim", "password": PASSWORD}),
    ("/signup", {"username": "csrf-new", "password": PASSWORD}),
    ("/signout", {}),
    ("/onboarding", {"genres": ["Comedy"]}),
    ("/title/i3/events", {"action": "like"}),
    ("/admin/unlock", {"token": ADMIN_TOKEN}),
    ("/admin/lock", {}),
    ("/admin/promote", {"name": "popularity", "version": "v1"}),
    ("/admin/reload", {}),
    ("/admin/experiments", {"experiment_id": "x", "control": "a:v1", "treatment": "b:v1"}),
    ("/admin/experiments/x/stop", {}),
]


def raw(client: TestClient) -> TestClient:
    """A client on the same running app that sends only what the test gives it, with
    the fixture client's cookies."""
    c = TestClient(client.app, follow_redirects=False)
    c.cookies = client.cookies
    return c


def page_token(c: TestClient, path: str) -> str:
    html = c.get(path).text
    tokens = set(re.findall(r'name="csrf_token" value="([0-9a-f]{64})"', html))
    assert len(tokens) == 1, (path, tokens)
    return tokens.pop()


def forms_without_token(html: str) -> list[str]:
    forms = re.findall(r"<form\b[^>]*method=\"post\"[^>]*>.*?</form>", html, flags=re.S)
    return [f[:80] for f in forms if 'name="csrf_token"' not in f]


def signed_up(client: TestClient, name: str) -> TestClient:
    r = client.post("/signup", data={"username": name, "password": PASSWORD})
    assert r.status_code == 303, r.text
    return raw(client)


def events(c: TestClient) -> int:
    return int(c.get("/api/v1/me").json()["events"])


def test_every_post_form_carries_the_token(client: TestClient) -> None:
    anon = raw(client)
    for path in ("/signin", "/signup"):
        html = anon.get(path).text
        assert 'name="csrf_token"' in html and not forms_without_token(html), path
    c = signed_up(client, "csrf-forms")
    c.post(
        "/admin/unlock",
        data={"token": ADMIN_TOKEN, "csrf_token": page_token(c, "/admin")},
        headers=SAME,
    )
    for path in ("/", "/onboarding", "/title/i3", "/admin", "/insights", "/title/nope"):
        html = c.get(path).text
        assert 'name="csrf-token"' in html, path
        assert not forms_without_token(html), (path, forms_without_token(html))
    tokens = {page_token(c, p) for p in ("/onboarding", "/title/i3")}
    assert len(tokens) == 1, "one token per session"


@pytest.mark.parametrize(("path", "form"), POSTS, ids=[p for p, _ in POSTS])
def test_a_post_without_a_valid_token_is_403(
    client: TestClient, path: str, form: dict[str, object]
) -> None:
    c = signed_up(client, f"csrf-{abs(hash(path)) % 10**8}")
    c.cookies.set("primetime_admin", "x")  # even with an admin cookie
    real = page_token(c, "/title/i3")
    altered = real[:-1] + ("1" if real[-1] == "0" else "0")
    for token in (None, "", "0" * 64, altered):
        data = form if token is None else {**form, "csrf_token": token}
        r = c.post(path, data=data, headers=SAME)
        assert r.status_code == 403, (path, token, r.status_code)
        assert r.headers["content-type"].startswith("text/html")
        assert "not sent from a Primetime page" in r.text
    frag = c.post(path, data=form, headers={**SAME, **FRAGMENT})
    assert frag.status_code == 403 and frag.text.startswith('<p class="error"')


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://testserver.evil.example"},
        {"Origin": "http://testserver:8080"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/page"},
        {},
    ],
    ids=["other-site", "suffix", "other-port", "null", "referer-elsewhere", "neither"],
)
def test_a_post_from_another_origin_is_403_even_with_the_token(
    client: TestClient, headers: dict[str, str]
) -> None:
    c = signed_up(client, f"csrf-o{abs(hash(str(headers))) % 10**8}")
    token = page_token(c, "/title/i3")
    r = c.post("/title/i3/events", data={"action": "like", "csrf_token": token}, headers=headers)
    assert r.status_code == 403 and "cross-site request refused" in r.text
    assert events(c) == 0, "nothing recorded"


def test_the_real_forms_work_with_origin_or_referer(client: TestClient) -> None:
    c = signed_up(client, "csrf-ok")
    token = page_token(c, "/title/i3")
    ok = c.post("/title/i3/events", data={"action": "like", "csrf_token": token}, headers=SAME)
    assert ok.status_code == 303
    referer = {"Referer": "http://testserver/title/i3"}
    ok = c.post("/title/i3/events", data={"action": "play", "csrf_token": token}, headers=referer)
    assert ok.status_code == 303
    header = {**SAME, **FRAGMENT, "X-CSRF-Token": token}
    assert (
        c.post("/title/i3/events", data={"action": "complete"}, headers=header).status_code == 200
    )
    assert events(c) == 3
    out = c.post("/signout", data={"csrf_token": token}, headers=SAME)
    assert out.status_code == 303 and c.get("/").status_code == 303


def test_another_sessions_token_is_refused(client: TestClient) -> None:
    alice = signed_up(client, "csrf-alice")
    alice_token = page_token(alice, "/title/i3")
    client.cookies.clear()
    bob = signed_up(client, "csrf-bob")
    r = bob.post(
        "/title/i3/events", data={"action": "like", "csrf_token": alice_token}, headers=SAME
    )
    assert r.status_code == 403 and events(bob) == 0


def test_login_csrf_is_refused(client: TestClient) -> None:
    """Another site cannot sign a visitor into its own account: the sign-in form needs
    the token of the visitor's pre-session cookie, which that site cannot read."""
    client.post("/signup", data={"username": "csrf-attacker", "password": PASSWORD})
    client.cookies.clear()
    attacker = raw(client)
    attacker_token = page_token(attacker, "/signin")  # the attacker's own pre-session pair
    assert attacker.cookies.get(CSRF_COOKIE)
    victim = TestClient(client.app, follow_redirects=False)
    victim_token = page_token(victim, "/signin")
    assert victim_token != attacker_token
    login = {"username": "csrf-attacker", "password": PASSWORD, "csrf_token": attacker_token}
    forged = victim.post("/signin", data=login, headers=SAME)
    assert forged.status_code == 403 and "primetime_session" not in forged.headers.get(
        "set-cookie", ""
    )
    fresh = TestClient(client.app, follow_redirects=False)  # no pre-session cookie at all
    assert fresh.post("/signin", data=login, headers=SAME).status_code == 403
    own = victim.post("/signin", data={**login, "csrf_token": victim_token}, headers=SAME)
    assert own.status_code == 303 and own.cookies.get("primetime_session")


def test_the_pre_session_cookie(client: TestClient) -> None:
    anon = raw(client)
    first = anon.get("/signin")
    cookie = first.headers["set-cookie"]
    assert (
        cookie.startswith(f"{CSRF_COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    )
    assert "set-cookie" not in anon.get("/signup").headers, "minted once"
    assert page_token(anon, "/signin") == page_token(anon, "/signup")


@pytest.mark.parametrize(
    ("path", "form", "field"),
    [
        ("/signin", {"username": "a\x00b", "password": PASSWORD}, "username"),
        ("/signup", {"username": "csrf-nul", "password": "pass\x00word"}, "password"),
        ("/onboarding", {"genres": ["Drama\x00"]}, "genres"),
        ("/title/i3/events", {"action": "like", "rid": "r\x00"}, "rid"),
        ("/admin/unlock", {"token": "\x00"}, "token"),
        ("/admin/experiments", {"experiment_id": "a\x00", "control": "x"}, "experiment_id"),
    ],
)
def test_unstorable_form_fields_are_a_422_page(
    client: TestClient, path: str, form: dict[str, object], field: str
) -> None:
    client.post(
        "/signup", data={"username": f"csrf-n{abs(hash(path)) % 10**6}", "password": PASSWORD}
    )
    r = client.post(path, data=form)
    assert r.status_code == 422, (path, r.status_code, r.text[:200])
    assert r.headers["content-type"].startswith("text/html")
    assert f"{field}: contains a NUL character" in r.text
    nul_path = client.get("/title/i3%00")
    assert nul_path.status_code == 422 and "item_id: contains a NUL" in nul_path.text
