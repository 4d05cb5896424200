"""The web pages through the ASGI app (no browser): status codes, redirects, what each
page shows, the fragments the JavaScript swaps in, and accessibility basics parsed
from the HTML (alt text, labels, names)."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from web_support import ADMIN_TOKEN, PASSWORD, audit

FRAGMENT = {"X-Fragment": "1"}
COMEDY = {f"i{i}" for i in range(20, 40)}
DRAMA = {f"i{i}" for i in range(20)}


def sign_up(c: TestClient, name: str, *, genres: list[str] = (), titles: list[str] = ()) -> int:  # type: ignore[assignment]
    """Sign up through the form and onboard; returns the user id."""
    r = c.post("/signup", data={"username": name, "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/onboarding", r.text
    r = c.post("/onboarding", data={"genres": list(genres), "titles": list(titles)})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    return int(c.get("/api/v1/me").json()["user_id"])


def row_titles(html: str) -> list[str]:
    return re.findall(r'<h2 id="row-[^"]+">([^<]+)</h2>', html)


def row_items(html: str, heading_prefix: str) -> list[str]:
    """Item ids of the cards in the first row whose heading starts with ``heading_prefix``."""
    for section in re.findall(r'<section class="row".*?</section>', html, flags=re.S):
        h = re.search(r"<h2[^>]*>([^<]+)</h2>", section)
        if h and h.group(1).startswith(heading_prefix):
            return re.findall(r'href="/title/([^"?]+)', section)
    return []


def test_pages_need_a_session_and_redirect_back(client: TestClient) -> None:
    for path in ("/", "/onboarding", "/title/i3", "/search?q=x", "/insights", "/rows"):
        r = client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/signin?next="), path
    assert client.get("/title/i3", headers=FRAGMENT).status_code == 401
    assert client.get("/signin").status_code == 200
    assert client.get("/signup").status_code == 200
    assert client.get("/users/1/insights").status_code == 303


def test_signup_onboarding_home_reflects_the_picks(client: TestClient) -> None:
    sign_up(client, "web-ada", genres=["Comedy"], titles=["i25"])
    home = client.get("/")
    assert home.status_code == 200
    rows = row_titles(home.text)
    assert "Because you watched Title 25" in rows
    genre_rows = [r for r in rows if r.startswith("Because you like")]
    assert genre_rows[0] == "Because you like Comedy", rows
    assert "Because you like Drama" not in rows
    top = row_items(home.text, "Top picks")
    assert top and set(top) <= COMEDY, top
    assert row_items(home.text, "Trending now") and row_items(home.text, "New releases")
    assert 'class="hero"' in home.text and "Top pick for you" in home.text
    assert "?rid=" not in home.text, "no experiment: no impressions, no request ids"
    assert not audit(home.text)
    rows = client.get("/rows", headers=FRAGMENT)
    assert rows.status_code == 200 and "<html" not in rows.text
    assert row_titles(rows.text) == row_titles(home.text), "the fragment the page refreshes"


def test_onboarding_page_and_bad_picks(client: TestClient) -> None:
    client.post("/signup", data={"username": "web-onb", "password": PASSWORD})
    page = client.get("/onboarding")
    assert page.status_code == 200
    assert 'name="genres" value="Drama"' in page.text and 'name="titles"' in page.text
    assert not audit(page.text)
    bad = client.post("/onboarding", data={"genres": ["Western"]})
    assert bad.status_code == 422 and "Unknown genre" in bad.text
    skip = client.post("/onboarding", data={})
    assert skip.status_code == 303
    assert client.get("/api/v1/me").json()["events"] == 0


def test_signup_and_signin_errors(client: TestClient) -> None:
    short = client.post("/signup", data={"username": "ab", "password": "short"})
    assert short.status_code == 422
    assert "username must be 3-64 characters" in short.text.lower()
    assert 'aria-invalid="true"' in short.text and "password-error" in short.text
    assert not audit(short.text)
    client.post("/signup", data={"username": "web-dup", "password": PASSWORD})
    client.cookies.clear()
    dup = client.post("/signup", data={"username": "web-dup", "password": PASSWORD})
    assert dup.status_code == 422 and "is taken" in dup.text
    wrong = client.post("/signin", data={"username": "web-dup", "password": "nope-nope"})
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    assert not audit(wrong.text)
    ok = client.post(
        "/signin", data={"username": "web-dup", "password": PASSWORD, "next": "/insights"}
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/insights"
    assert client.get("/signin").headers["location"] == "/", "signed in: no sign-in form"
    client.post("/signout")
    evil = client.post(
        "/signin", data={"username": "web-dup", "password": PASSWORD, "next": "//evil.example"}
    )
    assert evil.headers["location"] == "/", "no open redirect"
    out = client.post("/signout")
    assert out.status_code == 303
    assert client.get("/").status_code == 303, "signed out"


def test_title_page_shows_details_seasons_and_similar(client: TestClient) -> None:
    sign_up(client, "web-tim")
    page = client.get("/title/i17")
    assert page.status_code == 200
    text = page.text
    assert "Harbor Lights: Season 2" in text and "Northwind" in text
    assert "Actor 3" in text and "Director 2" in text and "10 episodes" in text
    assert text.count('class="season') >= 4 and 'aria-current="page"' in text
    assert "More like Harbor Lights: Season 2" in text
    similar = row_items(text, "More like")
    assert similar and "i17" not in similar
    assert re.search(r"Watched together with|Also in", text)
    assert not audit(text)
    missing = client.get("/title/nope")
    assert missing.status_code == 404 and "There is no title" in missing.text


def test_actions_post_events_and_answer_fresh_rows(client: TestClient) -> None:
    sign_up(client, "web-act", titles=["i25"])
    before = client.get("/title/i3")
    assert row_titles(before.text)[0] == "Because you watched Title 25"
    like = client.post("/title/i3/events", data={"action": "like"}, headers=FRAGMENT)
    assert like.status_code == 200
    assert 'data-oob="#title-actions"' in like.text and 'data-oob="#title-rows"' in like.text
    assert "You liked Title 3" in like.text
    assert re.search(r'value="like"[^>]*aria-pressed="true"', like.text)
    assert row_titles(like.text)[0] == "Because you watched Title 3"
    assert set(row_items(like.text, "Because you watched")) <= DRAMA
    rate = client.post("/title/i3/events", data={"rating": "4"}, headers=FRAGMENT)
    assert "You rated Title 3 4 out of 5" in rate.text and "Your rating: 4 out of 5" in rate.text
    listed = client.post("/title/i3/events", data={"action": "add-to-list"}, headers=FRAGMENT)
    assert 'value="remove-from-list"' in listed.text
    plain = client.post("/title/i3/events", data={"action": "play", "rid": "abc"})
    assert plain.status_code == 303 and plain.headers["location"] == "/title/i3?rid=abc"
    types = [e["event_type"] for e in _events(client)]
    assert types[-4:] == ["like", "rate", "add-to-list", "play"]
    assert client.post("/title/i3/events", data={"action": "eat"}).status_code == 422
    assert client.post("/title/i3/events", data={"rating": "9"}).status_code == 422
    assert client.post("/title/zz/events", data={"action": "like"}).status_code == 404
    home = client.get("/")
    assert "Because you watched Title 3" in row_titles(home.text), "home follows at once"


def _events(client: TestClient) -> list[dict]:
    """The signed-in user's events, via the event store of the running app."""
    svc = client.app.state.svc  # type: ignore[attr-defined]
    uid = client.get("/api/v1/me").json()["user_id"]
    return [{"event_type": e.event_type, "item_id": e.item_id} for e in svc.store.events(uid)]


def test_continue_watching_and_next_season(client: TestClient) -> None:
    sign_up(client, "web-cw")
    client.post("/title/i16/events", data={"action": "play"})
    assert row_items(client.get("/").text, "Continue watching")[0] == "i16"
    client.post("/title/i16/events", data={"action": "complete"})
    home = client.get("/").text
    assert "i17" in row_items(home, "Continue watching"), "the next season follows"
    assert "i16" not in row_items(home, "Continue watching")


def test_search_page_and_instant_results(client: TestClient) -> None:
    sign_up(client, "web-find")
    page = client.get("/search", params={"q": "arbor"})
    assert page.status_code == 200 and "Harbor Lights: Season 1" in page.text
    assert 'data-instant="/search/results"' in page.text
    assert not audit(page.text)
    frag = client.get("/search/results", params={"q": "title 3"}, headers=FRAGMENT)
    assert frag.status_code == 200 and "<html" not in frag.text
    found = re.findall(r'href="/title/([^"?]+)"', frag.text)
    assert found[0] == "i3" and set(found) == {"i3", *{f"i{i}" for i in range(30, 36)}}
    none = client.get("/search/results", params={"q": "zzzz"})
    assert "No titles match" in none.text
    empty = client.get("/search/results", params={"q": ""})
    assert "results appear as you type" in empty.text


def test_insights_are_private(client: TestClient) -> None:
    ada = sign_up(client, "web-ins-a", titles=["i3", "i4"])
    client.post("/title/i5/events", data={"action": "complete"})
    mine = client.get("/insights")
    assert mine.status_code == 200
    assert mine.text.count('role="img"') >= 4 and "Genre weights over time" in mine.text
    assert re.search(r"<dt>Events</dt><dd>3</dd>", mine.text)
    assert '<th scope="row">Drama</th>' in mine.text
    assert not audit(mine.text)
    assert client.get(f"/users/{ada}/insights").status_code == 200
    client.cookies.clear()
    sign_up(client, "web-ins-b")
    theirs = client.get(f"/users/{ada}/insights")
    assert theirs.status_code == 403 and "only see your own insights" in theirs.text
    assert client.get("/users/999999/insights").status_code == 403, "same answer, no probing"
    own = client.get("/insights")
    assert re.search(r"<dt>Events</dt><dd>0</dd>", own.text) and "Drama</th>" not in own.text


def test_admin_page_refuses_non_admins(client: TestClient) -> None:
    anon = client.get("/admin")
    assert anon.status_code == 403 and 'action="/admin/unlock"' in anon.text
    sign_up(client, "web-plain")
    refused = client.get("/admin")
    assert refused.status_code == 403 and "Admin only" in refused.text
    assert "Model versions" not in refused.text
    assert not audit(refused.text)
    assert client.get("/admin", headers={"X-Admin-Token": "wrong"}).status_code == 403
    assert client.get("/admin/stats").status_code == 403
    assert client.post("/admin/reload").status_code == 403
    wrong = client.post("/admin/unlock", data={"token": "wrong"})
    assert wrong.status_code == 403 and "not the admin token" in wrong.text
    assert client.get("/admin", headers={"X-Admin-Token": ADMIN_TOKEN}).status_code == 200
    ok = client.post("/admin/unlock", data={"token": ADMIN_TOKEN})
    assert ok.status_code == 303 and ok.cookies.get("primetime_admin")
    assert ADMIN_TOKEN not in ok.headers["set-cookie"], "the cookie holds an HMAC, not the token"
    page = client.get("/admin")
    assert page.status_code == 200 and "Model versions" in page.text
    client.post("/admin/lock")
    assert client.get("/admin").status_code == 403


def test_admin_models_promote_reload_experiments_and_stats(client: TestClient) -> None:
    svc = client.app.state.svc  # type: ignore[attr-defined]
    from primetime.service.auth import hash_password

    svc.store.create_user("web-root", hash_password(PASSWORD), is_admin=True)
    client.post("/signin", data={"username": "web-root", "password": PASSWORD})
    page = client.get("/admin")
    assert page.status_code == 200
    assert "NDCG@10" in page.text and "0.3100" in page.text and "0.1200" in page.text
    assert re.search(r"itemknn</th>.*?serving", page.text, flags=re.S)
    assert 'href="/admin"' in page.text, "admins see the nav link"
    assert not audit(page.text)
    promoted = client.post(
        "/admin/promote", data={"name": "popularity", "version": "v1"}, headers=FRAGMENT
    )
    assert promoted.status_code == 200 and "Promoted popularity:v1" in promoted.text
    assert "Promotion history" in promoted.text
    assert re.search(r"popularity</th><td>v1</td>\s*<td>—</td><td>web-root</td>", promoted.text)
    [row] = svc.store.promotions()
    assert (row.key, row.previous_version, row.actor) == ("popularity:v1", None, "web-root")
    bad = client.post("/admin/promote", data={"name": "popularity", "version": "v9"})
    assert bad.status_code == 404
    reloaded = client.post("/admin/reload", headers=FRAGMENT)
    assert "now serving itemknn:v1" in reloaded.text, "settings.models order decides the default"
    svc.registry.promote("itemknn", "v1")
    started = client.post(
        "/admin/experiments",
        data={
            "experiment_id": "web-ab",
            "name": "kNN vs popularity",
            "control": "itemknn:v1",
            "treatment": "popularity:v1",
        },
    )
    assert started.status_code == 303
    home = client.get("/").text  # in the experiment: the page logs its impressions
    assert "?rid=" in home, "card links carry the impression's request id"
    svc.impressions.flush()  # impressions are written in batches off the request path
    shown = sum(o.impressions for o in svc.store.experiment_outcomes("web-ab"))
    with_rid = set(re.findall(r'href="/title/([^"?]+)\?rid=', home))
    assert shown == len(with_rid) == 1 + len(row_items(home, "Top picks")), "hero + top picks"
    page = client.get("/admin").text
    assert "kNN vs popularity" in page and "running" in page
    assert re.search(r"<th scope=\"row\">(control|treatment)</th>", page)
    dup = client.post(
        "/admin/experiments",
        data={"experiment_id": "web-ab", "control": "itemknn:v1", "treatment": "popularity:v1"},
    )
    assert dup.status_code == 409
    ghost = client.post(
        "/admin/experiments",
        data={"experiment_id": "web-x", "control": "nope:v1", "treatment": "popularity:v1"},
    )
    assert ghost.status_code == 422 and "Experiment not started" in ghost.text, ghost.text
    assert "text/html" in ghost.headers["content-type"], "a page, not the API's JSON"
    stopped = client.post("/admin/experiments/web-ab/stop")
    assert stopped.status_code == 303 and "stopped" in client.get("/admin").text
    stats = client.get("/admin/stats", headers=FRAGMENT)
    assert (
        stats.status_code == 200 and "GET /admin" in stats.text and "Cache hit rate" in stats.text
    )


def test_posters_are_svg_deterministic_and_named(client: TestClient) -> None:
    r = client.get("/posters/i17")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert "max-age" in r.headers["cache-control"]
    root = ElementTree.fromstring(r.text)
    assert root.get("aria-label") == "Harbor Lights: Season 2 (2016)"
    assert client.get("/posters/i17").text == r.text
    assert client.get("/posters/i18").text != r.text
    assert client.get("/posters/nope").status_code == 404


def test_pages_send_security_headers_and_static_files(client: TestClient) -> None:
    page = client.get("/signin")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["cache-control"] == "no-store"
    css = re.search(r'href="(/static/app\.css\?v=[0-9a-f]+)"', page.text)
    js = re.search(r'src="(/static/app\.js\?v=[0-9a-f]+)"', page.text)
    assert css and js
    assert client.get(css.group(1)).status_code == 200
    assert "fetchFragment" in client.get(js.group(1)).text
    assert "/" not in client.get("/openapi.json").json()["paths"], "pages stay out of the API spec"


@pytest.mark.parametrize(
    "html, problem",
    [
        ('<img src="a.png">', "img without alt"),
        ('<input id="q" name="q">', "input without a label"),
        ("<button></button>", "button without a label"),
        ('<svg role="img"></svg>', "chart without a name"),
        ('<a href="/x"></a>', "link without a name"),
    ],
)
def test_the_audit_catches_what_it_checks(html: str, problem: str) -> None:
    head = '<!doctype html><html lang="en"><head><title>t</title></head>'
    page = f"{head}<body><h1>x</h1>{html}</body></html>"
    assert any(problem in p for p in audit(page)), audit(page)
    good = (
        '<!doctype html><html lang="en"><head><title>t</title></head><body><h1>x</h1>'
        '<img src="a" alt="A"><label for="q">Q</label><input id="q"><button>Go</button>'
        '<label>Wrapped <input name="w"></label><svg role="img" aria-label="c"></svg>'
        '<a href="/x" aria-label="X"></a></body></html>'
    )
    assert audit(good) == []


def test_request_ids_longer_than_the_events_take_are_dropped(client: TestClient) -> None:
    """One limit (64): a longer id on a title link or form is dropped, the action still
    recorded (it used to be cut to 128 and then refused by the store)."""
    sign_up(client, "web-rid")
    page = client.get("/title/i3", params={"rid": "r" * 65})
    assert page.status_code == 200 and 'name="rid"' not in page.text
    kept = client.get("/title/i3", params={"rid": "r" * 64})
    assert 'name="rid" value="' + "r" * 64 in kept.text
    r = client.post("/title/i3/events", data={"action": "play", "rid": "r" * 100})
    assert r.status_code == 303 and r.headers["location"] == "/title/i3"
    r = client.post("/title/i3/events", data={"action": "like", "rid": "r" * 64})
    assert r.status_code == 303 and r.headers["location"] == "/title/i3?rid=" + "r" * 64
    assert client.get("/api/v1/me").json()["events"] == 2


def test_admin_page_shows_the_retrain_gate(client: TestClient) -> None:
    """...and the blend each version is served with (its own, chosen on valid, or the
    default)."""
    svc = client.app.state.svc  # type: ignore[attr-defined]
    from primetime.service.auth import hash_password

    gate = {"promote": False, "reason": "NDCG@10 0.2000 vs 0.2500 of v1: below the margin 0.01"}
    blend = {"weights": {"popularity": 0.0, "trending": 0.0, "content": 0.3, "diversity": 0.05}}
    mv = svc.registry.register(
        svc.registry.load("popularity", "v1"), extra={"retrain": gate, "served_blend": blend}
    )
    try:
        svc.store.create_user("gate-root", hash_password(PASSWORD), is_admin=True)
        client.post("/signin", data={"username": "gate-root", "password": PASSWORD})
        page = client.get("/admin")
        assert page.status_code == 200 and "Retrain gate" in page.text
        row = re.search(rf"popularity</th><td>{mv.version}</td>.*?</tr>", page.text, flags=re.S)
        assert row is not None and "kept out: NDCG@10 0.2000 vs 0.2500" in row.group(0)
        assert "Served blend" in page.text and "valid: content 0.3, MMR 0.05" in row.group(0)
        first = re.search(r"popularity</th><td>v1</td>.*?</tr>", page.text, flags=re.S)
        assert first is not None and "default: popularity 0.1, trending 0.1, MMR 0.1" in (
            first.group(0)
        )
        assert not audit(page.text)
    finally:
        import shutil

        shutil.rmtree(mv.path)
