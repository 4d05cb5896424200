"""The HTTP API end to end, on SQLite and PostgreSQL: every endpoint's success and
error paths, ownership, auth, real-time updates, A/B tests, hot reload, caching."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from primetime.data.events import EventType
from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.lifecycle import build_model
from primetime.registry import ModelRegistry
from primetime.service.app import create_app
from primetime.service.settings import Settings

ADMIN = "test-admin-token"
ADMIN_HEADERS = {"X-Admin-Token": ADMIN}
DRAMA = {f"i{i}" for i in range(20)}  # planted catalog: i0..i19 Drama, i20..i39 Comedy/Family
COMEDY = {f"i{i}" for i in range(20, 40)}


@pytest.fixture(scope="module")
def registry(planted, tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    reg = ModelRegistry(tmp_path_factory.mktemp("registry"))
    train = leave_one_out(planted.interactions).train
    for name in ("itemknn", "popularity"):
        m = build_model(name)
        m.fit(train, side=SideData.build(catalog=planted.catalog))
        reg.register(m, metrics={"NDCG@10": 0.1}, dataset=planted)
    reg.promote("itemknn", "v1")
    return reg


def make_settings(db_url: str, registry: ModelRegistry, **kw: object) -> Settings:
    base: dict[str, object] = {
        "environment": "test",
        "database_url": db_url,
        "registry_dir": registry.root,
        "models": ["itemknn", "popularity"],
        "admin_token": ADMIN,
        "rate_limit_per_minute": 0,
    }
    return Settings(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture
def client(db_url: str, registry: ModelRegistry, planted) -> Iterator[TestClient]:
    app = create_app(make_settings(db_url, registry), dataset=planted, registry=registry)
    with TestClient(app) as c:
        yield c


def signup(c: TestClient, name: str, **extra: object) -> dict[str, str]:
    r = c.post("/api/v1/auth/signup", json={"username": name, "password": "pass-word-1", **extra})
    assert r.status_code == 201, r.text
    c.cookies.clear()  # the tests speak with bearer tokens; the cookie path has its own test
    return {"Authorization": f"Bearer {r.json()['token']}"}


def recs(c: TestClient, h: dict[str, str], **params: object) -> dict:
    r = c.get("/api/v1/recommendations", headers=h, params=params)
    assert r.status_code == 200, r.text
    return r.json()


# ------------------------------------------------------------------ ops
def test_health_ready_metrics_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["model_version"] == "itemknn:v1"
    assert ready["titles"] == 40 and ready["database"] is True
    client.get("/api/v1/titles/i3")
    text = client.get("/metrics").text
    assert 'route="/api/v1/titles/{item_id}"' in text and "/api/v1/titles/i3" not in text
    assert "primetime_cache_hit_ratio" in text and 'name="itemknn"' in text
    spec = client.get("/openapi.json").json()
    assert "/api/v1/recommendations" in spec["paths"] and "/metrics" in spec["paths"]
    example = spec["components"]["schemas"]["EventIn"]["examples"][0]
    assert example["event_type"] == "like"


# -------------------------------------------------------------- account
def test_signup_login_me_and_their_errors(client: TestClient) -> None:
    h = signup(client, "ada", genres=["Drama"])
    me = client.get("/api/v1/me", headers=h).json()
    assert me["username"] == "ada" and me["onboarding_genres"] == ["Drama"] and me["events"] == 0
    dup = client.post("/api/v1/auth/signup", json={"username": "ada", "password": "pass-word-1"})
    assert dup.status_code == 409 and "taken" in dup.json()["detail"]
    bad = client.post("/api/v1/auth/signup", json={"username": "a", "password": "pass-word-1"})
    assert bad.status_code == 422 and "body.username" in bad.json()["message"]
    genre = client.post(
        "/api/v1/auth/signup", json={"username": "bob", "password": "pass-word-1", "genres": ["X"]}
    )
    assert genre.status_code == 422 and isinstance(genre.json()["detail"], list)
    assert "body.genres: unknown genre" in genre.json()["message"]
    wrong = client.post("/api/v1/auth/login", json={"username": "ada", "password": "nope-nope"})
    assert wrong.status_code == 401
    ok = client.post("/api/v1/auth/login", json={"username": "ada", "password": "pass-word-1"})
    assert ok.status_code == 200 and ok.cookies.get("primetime_session")
    assert client.get("/api/v1/me").status_code == 200, "the session cookie signs in too"
    client.cookies.clear()
    assert client.get("/api/v1/me").status_code == 401
    onboarding = client.put("/api/v1/me/onboarding", headers=h, json={"genres": ["Comedy"]})
    assert onboarding.json()["onboarding_genres"] == ["Comedy"]


# --------------------------------------------------------------- events
def test_events_single_batch_and_validation(client: TestClient) -> None:
    h = signup(client, "eve")
    one = client.post("/api/v1/events", headers=h, json={"item_id": "i3", "event_type": "play"})
    assert one.status_code == 201 and one.json()["accepted"] == 1
    batch = client.post(
        "/api/v1/events",
        headers=h,
        json={
            "events": [
                {"item_id": "i4", "event_type": "rate", "rating": 5, "device": "tv"},
                {"item_id": "i5", "event_type": "add-to-list", "position": 3},
            ]
        },
    )
    assert batch.status_code == 201 and len(batch.json()["ids"]) == 2
    assert client.get("/api/v1/me", headers=h).json()["events"] == 3
    unknown = client.post(
        "/api/v1/events",
        headers=h,
        json={
            "events": [
                {"item_id": "i4", "event_type": "play"},
                {"item_id": "zz", "event_type": "play"},
            ]
        },
    )
    assert unknown.status_code == 422 and "body.events.1.item_id" in unknown.json()["message"]
    norating = client.post(
        "/api/v1/events", headers=h, json={"item_id": "i4", "event_type": "rate"}
    )
    assert norating.status_code == 422 and "body.rating" in norating.json()["message"]
    badtype = client.post("/api/v1/events", headers=h, json={"item_id": "i4", "event_type": "eat"})
    assert badtype.status_code == 422 and "event_type" in badtype.json()["message"]
    anon = client.post("/api/v1/events", json={"item_id": "i4", "event_type": "play"})
    assert anon.status_code == 401
    assert client.get("/api/v1/me", headers=h).json()["events"] == 3, (
        "refused batches store nothing"
    )


# ------------------------------------------------------------ real time
def test_every_event_type_is_accepted_and_an_unknown_one_refused(client: TestClient) -> None:
    h = signup(client, "vocab")
    for i, t in enumerate(EventType):
        body = {"item_id": f"i{i}", "event_type": t.value, **({"rating": 4} if t == "rate" else {})}
        assert client.post("/api/v1/events", headers=h, json=body).status_code == 201, t
    for bad in ("binge", "add_to_list", "search_click"):  # the API takes only its own spelling
        refused = client.post(
            "/api/v1/events", headers=h, json={"item_id": "i1", "event_type": bad}
        )
        assert refused.status_code == 422, bad
        message = refused.json()["message"]
        assert "event_type: Input should be" in message and all(
            f"'{t}'" in message for t in EventType
        ), message
    spec = client.get("/openapi.json").json()["components"]["schemas"]["EventIn"]
    assert spec["properties"]["event_type"]["enum"] == [
        "view",
        "click",
        "play",
        "complete",
        "rate",
        "like",
        "dislike",
        "add-to-list",
        "remove-from-list",
    ]
    assert client.get("/api/v1/me", headers=h).json()["events"] == len(EventType)


def test_a_like_changes_the_next_recommendations(client: TestClient) -> None:
    """Planted: a Drama fan starts cold; after liking Comedy titles the next list
    (no cache in between) turns to Comedy and says why."""
    h = signup(client, "zoe", genres=["Drama"])
    cold = recs(client, h, k=5)
    assert cold["cold_start"] is True
    assert sum(it["item_id"] in DRAMA for it in cold["items"]) >= 4, cold["items"]
    for item in ("i24", "i25", "i26", "i27", "i28"):
        r = client.post("/api/v1/events", headers=h, json={"item_id": item, "event_type": "like"})
        assert r.status_code == 201
    views = client.get("/api/v1/admin/stats", headers=ADMIN_HEADERS).json()["user_views"]
    warm = recs(client, h, k=5)
    assert warm["cold_start"] is False
    after = client.get("/api/v1/admin/stats", headers=ADMIN_HEADERS).json()["user_views"]
    assert after["updated"] == views["updated"] + 1, "the likes were appended to the kept fold"
    assert after["rebuilt"] == views["rebuilt"] and after["kept"] >= 1
    ids = [it["item_id"] for it in warm["items"]]
    assert sum(i in COMEDY for i in ids) >= 4, warm["items"]
    assert not {"i24", "i25", "i26", "i27", "i28"} & set(ids), "seen titles are filtered"
    assert "i29" in ids, "the chain's next title (item-item neighbour of i28)"
    sources = {it["reason"]["source_item_id"] for it in warm["items"]}
    assert sources & {"i24", "i25", "i26", "i27", "i28"}, [it["reason"] for it in warm["items"]]
    assert all(it["reason"]["text"] for it in warm["items"])
    # dislike removes a title and its kind filter / genre filter work
    shows = recs(client, h, k=5, kind="show")
    assert shows["items"] == [], "the planted catalog has no shows"
    drama = recs(client, h, k=3, genre="Drama")
    assert all(it["item_id"] in DRAMA for it in drama["items"])
    assert (
        client.get("/api/v1/recommendations", headers=h, params={"genre": "Nope"}).status_code
        == 422
    )
    bad_k = client.get("/api/v1/recommendations", headers=h, params={"k": 0})
    assert bad_k.status_code == 422 and "query.k" in bad_k.json()["message"]


def test_carousels_insights_and_ownership(client: TestClient) -> None:
    a = signup(client, "amy", genres=["Comedy"])
    b = signup(client, "ben")
    for item, kind in (("i21", "complete"), ("i22", "like"), ("i3", "dislike")):
        client.post("/api/v1/events", headers=a, json={"item_id": item, "event_type": kind})
    rows = client.get("/api/v1/carousels", headers=a).json()["rows"]
    keys = [r["key"] for r in rows]
    assert "top_picks" in keys and any(k.startswith("because") for k in keys), keys
    for row in rows:
        ids = [it["item_id"] for it in row["items"]]
        assert len(ids) == len(set(ids)) and "i3" not in ids, row
    mine = client.get("/api/v1/insights", headers=a).json()
    assert mine["events"] == 3 and mine["counts"]["complete"] == 1
    assert next(iter(mine["genre_weights"])) in ("Comedy", "Family")
    assert mine["genre_weights"].get("Drama", 0) < 0, "a dislike weighs against its genre"
    uid_a = client.get("/api/v1/me", headers=a).json()["user_id"]
    assert client.get(f"/api/v1/users/{uid_a}/insights", headers=a).status_code == 200
    other = client.get(f"/api/v1/users/{uid_a}/insights", headers=b)
    assert other.status_code == 403 and "own" in other.json()["detail"]
    assert client.get(f"/api/v1/users/{uid_a}/insights").status_code == 401
    assert client.post("/api/v1/refresh", headers=a).status_code == 202


# --------------------------------------------------------------- titles
def test_titles_similar_search_genres(client: TestClient) -> None:
    t = client.get("/api/v1/titles/i3").json()
    assert t["title"] == "Title 3" and t["genres"] == ["Drama"] and t["kind"] == "movie"
    assert client.get("/api/v1/titles/nope").status_code == 404
    sim = client.get("/api/v1/titles/i3/similar", params={"k": 3}).json()["items"]
    assert len(sim) == 3 and all(s["item_id"] in DRAMA for s in sim)
    assert all(s["reason"]["source_item_id"] == "i3" for s in sim)
    found = client.get("/api/v1/search", params={"q": "title 1"}).json()["items"]
    assert found[0]["title"] == "Title 1" and all("Title 1" in f["title"] for f in found)
    assert client.get("/api/v1/search", params={"q": ""}).status_code == 422
    assert set(client.get("/api/v1/genres").json()) == {"Comedy", "Drama", "Family"}


# ---------------------------------------------------------------- admin
def test_admin_needs_the_token_or_an_admin(client: TestClient) -> None:
    h = signup(client, "mal")
    assert client.get("/api/v1/admin/models").status_code == 401
    assert client.get("/api/v1/admin/models", headers=h).status_code == 403
    wrong = client.get("/api/v1/admin/models", headers={"X-Admin-Token": "guess"})
    assert wrong.status_code == 403
    admin = {"X-Admin-Token": ADMIN}
    models = client.get("/api/v1/admin/models", headers=admin).json()
    assert {(m["name"], m["version"], m["promoted"]) for m in models} >= {("itemknn", "v1", True)}
    missing = client.post(
        "/api/v1/admin/models/itemknn/promote", headers=admin, json={"version": "v9"}
    )
    assert missing.status_code == 404
    stats = client.get("/api/v1/admin/stats", headers=admin).json()
    assert stats["default_model"] == "itemknn:v1" and "requests" in stats
    assert client.get("/api/v1/admin/promotions", headers=h).status_code == 403


def test_start_up_copies_no_model_versions(client: TestClient, db_url: str) -> None:
    """The registry is the one store of models: the database gets no copy of its versions
    and no history row at start-up (itemknn v1 is promoted in the registry)."""
    from sqlalchemy import inspect

    svc = client.app.state.svc  # type: ignore[attr-defined]
    assert svc.registry.promoted("itemknn") is not None
    assert "model_versions" not in inspect(svc.store.engine).get_table_names()
    assert svc.store.promotions() == []
    assert client.get("/api/v1/admin/promotions", headers=ADMIN_HEADERS).json() == []


def test_promote_records_the_history(client: TestClient, registry: ModelRegistry) -> None:
    """Promoting through the API writes the registry's PROMOTED file and one history row
    naming the admin (the token, or the admin account's username)."""
    (registry.root / "popularity" / "PROMOTED").unlink(missing_ok=True)  # module-wide registry
    try:
        r = client.post(
            "/api/v1/admin/models/popularity/promote",
            headers=ADMIN_HEADERS,
            json={"version": "v1", "note": "cold-start baseline"},
        )
        assert r.status_code == 200, r.text
        assert {(m["name"], m["promoted"]) for m in r.json()} >= {("popularity", True)}
        assert registry.promoted("popularity").version == "v1"  # type: ignore[union-attr]
        history = client.get("/api/v1/admin/promotions", headers=ADMIN_HEADERS).json()
        assert [
            (p["name"], p["version"], p["previous_version"], p["actor"], p["note"]) for p in history
        ] == [("popularity", "v1", None, "admin token", "cold-start baseline")]

        # An admin account: its username; promoting the promoted version adds no row.
        svc = client.app.state.svc  # type: ignore[attr-defined]
        from primetime.service.auth import hash_password

        svc.store.create_user("root", hash_password("pass-word-1"), is_admin=True)
        login = client.post(
            "/api/v1/auth/login", json={"username": "root", "password": "pass-word-1"}
        )
        client.cookies.clear()
        root = {"Authorization": f"Bearer {login.json()['token']}"}
        again = client.post(
            "/api/v1/admin/models/popularity/promote", headers=root, json={"version": "v1"}
        )
        assert again.status_code == 200
        (registry.root / "popularity" / "PROMOTED").unlink()
        client.post("/api/v1/admin/models/popularity/promote", headers=root, json={"version": "v1"})
        history = client.get(
            "/api/v1/admin/promotions", headers=root, params={"name": "popularity"}
        ).json()
        assert [p["actor"] for p in history] == ["root", "admin token"]  # newest first
        assert (
            client.get("/api/v1/admin/promotions", headers=root, params={"name": "itemknn"}).json()
            == []
        )
    finally:
        (registry.root / "popularity" / "PROMOTED").unlink(missing_ok=True)


def test_hot_reload_drops_no_request(client: TestClient, registry: ModelRegistry) -> None:
    h = signup(client, "rita")
    client.post("/api/v1/events", headers=h, json={"item_id": "i5", "event_type": "like"})
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            statuses.append(
                client.get("/api/v1/recommendations", headers=h, params={"k": 3}).status_code
            )
            client.post("/api/v1/refresh", headers=h)  # defeat the cache: really score

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    admin = {"X-Admin-Token": ADMIN}
    for version in ("v1", "v1", "v1"):
        r = client.post("/api/v1/admin/reload", headers=admin)
        assert r.status_code == 200 and r.json()["default"] == f"itemknn:{version}"
    stop.set()
    for t in threads:
        t.join()
    assert statuses and set(statuses) == {200}


def test_ab_experiment_assigns_logs_and_reports(client: TestClient) -> None:
    admin = {"X-Admin-Token": ADMIN}
    body = {
        "id": "knn-vs-pop",
        "name": "ItemKNN against popularity",
        "arms": [
            {"name": "control", "model_version": "popularity:v1"},
            {"name": "treatment", "model_version": "itemknn:v1"},
        ],
    }
    assert client.post("/api/v1/admin/experiments", headers=admin, json=body).status_code == 201
    assert client.post("/api/v1/admin/experiments", headers=admin, json=body).status_code == 409
    bad = {**body, "id": "x2", "arms": [{"name": "a", "model_version": "nope:v1"}] * 2}
    assert client.post("/api/v1/admin/experiments", headers=admin, json=bad).status_code == 422
    arms = {}
    for n in range(12):
        h = signup(client, f"user{n}")
        first = recs(client, h, k=4)
        again = recs(client, h, k=4)
        assert first["arm"] == again["arm"], "assignment is sticky"
        assert (
            first["model_version"]
            == {"control": "popularity:v1", "treatment": "itemknn:v1"}[first["arm"]]
        )
        arms[first["arm"]] = arms.get(first["arm"], 0) + 1
        it = first["items"][0]["item_id"]
        ev = {"item_id": it, "event_type": "click", "request_id": first["request_id"]}
        assert client.post("/api/v1/events", headers=h, json=ev).status_code == 201
    assert set(arms) == {"control", "treatment"}, arms
    report = client.get("/api/v1/admin/experiments/knn-vs-pop", headers=admin).json()
    by_arm = {a["arm"]: a for a in report["arms"]}
    for name, users in arms.items():
        a = by_arm[name]
        assert a["users"] == users and a["impressions"] == 8 * users and a["clicks"] == users
        lo, hi = a["ctr_ci"]
        assert a["ctr"] == pytest.approx(1 / 8) and lo < 1 / 8 < hi
    assert client.get("/api/v1/admin/experiments/none", headers=admin).status_code == 404
    stopped = client.post("/api/v1/admin/experiments/knn-vs-pop/stop", headers=admin).json()
    assert stopped["active"] is False
    h = signup(client, "after")
    assert recs(client, h)["experiment_id"] is None


# ---------------------------------------------------------------- cache
def test_cache_hits_and_events_invalidate(client: TestClient) -> None:
    h = signup(client, "cara")
    svc = client.app.state.svc  # type: ignore[attr-defined]
    before = svc.cache.stats()
    first = recs(client, h, k=5)
    second = recs(client, h, k=5)
    assert first["items"] == second["items"] and first["request_id"] != second["request_id"]
    after = svc.cache.stats()
    assert after.hits == before.hits + 1
    client.post(
        "/api/v1/events",
        headers=h,
        json={"item_id": first["items"][0]["item_id"], "event_type": "complete"},
    )
    third = recs(client, h, k=5)
    assert first["items"][0]["item_id"] not in [it["item_id"] for it in third["items"]]


def test_body_limit_and_rate_limit(db_url: str, registry: ModelRegistry, planted) -> None:
    settings = make_settings(
        db_url, registry, max_body_bytes=2000, rate_limit_per_minute=60, rate_limit_burst=3
    )
    with TestClient(create_app(settings, dataset=planted, registry=registry)) as c:
        big = c.post(
            "/api/v1/auth/login", content=b"x" * 5000, headers={"Content-Type": "application/json"}
        )
        assert big.status_code == 413
        codes = [c.get("/api/v1/titles/i1").status_code for _ in range(5)]
        assert codes[:2] == [200, 200] and codes[-1] == 429
        assert c.get("/health").status_code == 200, "health is never limited"


@pytest.mark.integration
def test_with_redis_and_with_redis_gone(
    db_url: str, registry: ModelRegistry, planted, redis_url: str, tmp_path: Path
) -> None:
    for url, backend_ok in ((redis_url, True), ("redis://127.0.0.1:1/0", False)):
        settings = make_settings(db_url, registry, cache_url=url)
        with TestClient(create_app(settings, dataset=planted, registry=registry)) as c:
            h = signup(c, f"redis{int(backend_ok)}")
            a = recs(c, h, k=4)
            b = recs(c, h, k=4)
            assert a["items"] == b["items"]
            stats = c.app.state.svc.cache.stats()  # type: ignore[attr-defined]
            assert stats.backend == "redis"
            if backend_ok:
                assert stats.hits >= 1 and stats.errors == 0
            else:
                assert stats.errors >= 1 and stats.hits == 0, "Redis gone: no cache, no error"
            c.post(
                "/api/v1/events",
                headers=h,
                json={"item_id": a["items"][0]["item_id"], "event_type": "complete"},
            )
            assert a["items"][0]["item_id"] not in [
                it["item_id"] for it in recs(c, h, k=4)["items"]
            ]


@pytest.mark.parametrize("mode", ["experiments", "all"])
def test_impressions_are_logged_per_the_setting(
    db_url: str, registry: ModelRegistry, planted, mode: str
) -> None:
    """By default only responses of users in an experiment log impressions (what the
    A/B reports read); `impressions="all"` logs every response."""
    settings = make_settings(db_url, registry, impressions=mode)
    with TestClient(create_app(settings, dataset=planted, registry=registry)) as c:
        h = signup(c, "shown")
        body = recs(c, h, k=3)
        svc = c.app.state.svc  # type: ignore[attr-defined]
        svc.impressions.flush()
        logged = svc.store.impressions(body["user_id"])
    if mode == "all":
        assert [i.item_id for i in logged] == [it["item_id"] for it in body["items"]]
        assert {i.request_id for i in logged} == {body["request_id"]}
    else:
        assert logged == []


def test_a_log_without_genres_is_served(
    db_url: str, planted, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A plain CSV log (no catalog, no genres): recommendations, rows, insights and the
    title pages answer 200, and reasons do not name a genre."""
    from primetime.data import Dataset

    log = planted.interactions.to_polars(ids=True)
    bare = Dataset.from_frames(
        "bare", interactions=log.select("user_id", "item_id", "rating", "timestamp")
    )
    reg = ModelRegistry(tmp_path_factory.mktemp("bare-registry"))
    m = build_model("itemknn")
    m.fit(leave_one_out(bare.interactions).train, side=SideData.build(catalog=bare.catalog))
    reg.register(m, metrics={"NDCG@10": 0.1}, dataset=bare)
    settings = make_settings(db_url, reg, models=["itemknn"])
    with TestClient(create_app(settings, dataset=bare, registry=reg)) as c:
        h = signup(c, "csv")
        cold = recs(c, h, k=4)
        assert cold["cold_start"] and len(cold["items"]) == 4
        for item in ("i3", "i4", "i5", "i6", "i7"):
            r = c.post("/api/v1/events", headers=h, json={"item_id": item, "event_type": "like"})
            assert r.status_code == 201, r.text
        warm = recs(c, h, k=4)
        assert not warm["cold_start"] and len(warm["items"]) == 4
        assert all(i["reason"] for i in warm["items"])
        for path in ("/api/v1/carousels", "/api/v1/insights", "/api/v1/titles/i3/similar"):
            assert c.get(path, headers=h).status_code == 200, path


def test_a_registered_temporal_serves_ahead_of_the_models_list(
    db_url: str, planted, registry: ModelRegistry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``Settings.prefer`` (default ensemble, then temporal): a registered version of a
    preferred model serves by default without being in ``models``; emptied, ``models``
    decides again."""
    reg = ModelRegistry(tmp_path_factory.mktemp("prefer-registry"))
    side = SideData.of(planted)
    train = leave_one_out(planted.interactions).train
    for name, cfg in (
        ("itemknn", {}),
        ("temporal", {"epochs": 1, "dim": 16, "heads": 2, "layers": 1, "ffn": 32}),
    ):
        m = build_model(name, cfg)
        m.fit(train, side=side)
        reg.register(m, metrics={"NDCG@10": 0.1}, dataset=planted)
    assert Settings(environment="test").prefer == ["ensemble", "temporal"]
    for kw, served in (({}, "temporal:v1"), ({"prefer": []}, "itemknn:v1")):
        settings = make_settings(db_url, reg, models=["itemknn"], **kw)
        with TestClient(create_app(settings, dataset=planted, registry=reg)) as c:
            h = signup(c, f"prefer{len(kw)}")
            for item in ("i3", "i4", "i5", "i6", "i7"):
                c.post("/api/v1/events", headers=h, json={"item_id": item, "event_type": "like"})
            assert recs(c, h, k=4)["model_version"] == served
