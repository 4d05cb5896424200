"""The learning loop, shown end to end on a small world whose tastes drift and whose
catalog gains titles (the test ``tests/test_learning_loop.py`` and ``benchmarks/bench_loop.py``).

The world (:class:`DriftConfig`): titles belong to one of ``n_genres`` genres, each with
Zipf popularity. A user has a home genre ``g``; in the base log (``base_weeks`` weeks) they
watch ``g`` and its *old partner* ``g + 1``; from the first live week on, tastes have drifted
to ``g`` and a *new partner* ``g + shift``, and ``new_per_genre`` titles per genre arrive
(added through the admin API at the start of week 1) and take ``new_title_share`` of the
events: in week 1 of the first ``first_viewers`` share of the live users, in week 2 of
everyone.
Every number below is measured by running the service:

1. the base log is written as Parquet, the served models (``models``) are fit on it through
   the life cycle and promoted; the service starts (in process, a file SQLite database,
   workers polling for promotions);
2. week 1: the new titles are added (``POST /api/v1/admin/titles``), live users sign up and
   post their week-1 events (``POST /api/v1/events``);
3. before the loop: each live user's served top-10 (``GET /api/v1/recommendations``) is
   scored against their week-2 titles (NDCG@10; week 2 is never posted);
4. the loop: ``export_events`` -> ``retrain`` (gate on the newest slice, promote) -> the
   workers notice and swap; the same requests are scored again (same users, same
   histories), and compared by a paired Wilcoxon test.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

__all__ = ["DriftConfig", "LoopReport", "make_world", "run_loop"]

DAY = 86_400.0


@dataclass(frozen=True)
class DriftConfig:
    """A drifting world with arriving titles (see the module docstring)."""

    n_genres: int = 6
    items_per_genre: int = 25
    new_per_genre: int = 2
    n_base_users: int = 200
    n_live_users: int = 60
    base_events: int = 12
    week_events: int = 14
    base_weeks: int = 8
    shift: int = 3
    new_title_share: float = 0.5
    first_viewers: float = 0.75
    zipf: float = 1.0
    seed: int = 0
    start: float = 1_700_000_000.0
    models: tuple[str, ...] = ("itemknn", "popularity")


@dataclass
class World:
    """Generated events: the base log, and each live user's weeks 1 and 2."""

    config: DriftConfig
    base: pl.DataFrame  # user_id, item_id, timestamp, event
    items: list[str]  # the base catalog's titles (in base-log order)
    genre_of: dict[str, int]
    new_titles: list[str]
    week1: dict[int, list[tuple[str, float]]]  # live user -> (item_id, ts), time order
    week2: dict[int, list[str]]


def make_world(cfg: DriftConfig) -> World:
    """Generate the base log and the live users' two weeks (seeded)."""
    rng = np.random.default_rng(cfg.seed)
    g_n, per = cfg.n_genres, cfg.items_per_genre
    by_genre = [[f"g{g}-i{k}" for k in range(per)] for g in range(g_n)]
    new_by_genre = [[f"g{g}-new{k}" for k in range(cfg.new_per_genre)] for g in range(g_n)]
    weights = 1.0 / np.arange(1, per + 1) ** cfg.zipf
    weights /= weights.sum()

    def draw(genres: tuple[int, int], n: int, new_share: float, seen: set[str]) -> list[str]:
        out: list[str] = []
        tries = 0
        while len(out) < n and tries < 50 * n:
            tries += 1
            g = genres[int(rng.integers(2))]
            if new_share and rng.random() < new_share:
                pick = new_by_genre[g][int(rng.integers(len(new_by_genre[g])))]
            else:
                pick = by_genre[g][int(rng.choice(per, p=weights))]
            if pick not in seen:
                seen.add(pick)
                out.append(pick)
        return out

    rows: list[tuple[str, str, int]] = []
    base_end = cfg.start + cfg.base_weeks * 7 * DAY
    for u in range(cfg.n_base_users):
        g = int(rng.integers(g_n))
        picks = draw((g, (g + 1) % g_n), cfg.base_events, 0.0, set())
        times = np.sort(rng.uniform(cfg.start, base_end, len(picks)))
        rows += [(f"u{u}", i, int(t)) for i, t in zip(picks, times, strict=True)]
    base = pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row")
    base = base.sort("timestamp", maintain_order=True).with_columns(pl.lit("play").alias("event"))
    items = base["item_id"].unique(maintain_order=True).to_list()
    known = set(items) | {t for ts in new_by_genre for t in ts}
    week1: dict[int, list[tuple[str, float]]] = {}
    week2: dict[int, list[str]] = {}
    for u in range(cfg.n_live_users):
        g = int(rng.integers(g_n))
        pair = (g, (g + cfg.shift) % g_n)
        seen: set[str] = set()
        # the first live users are the new titles' first viewers (week 1); the others meet
        # them in week 2, so a model can only rank them from the first viewers' events
        first = u < round(cfg.first_viewers * cfg.n_live_users)
        share1 = cfg.new_title_share if first else 0.0
        w1 = [i for i in draw(pair, cfg.week_events, share1, seen) if i in known]
        w2 = [i for i in draw(pair, cfg.week_events, cfg.new_title_share, seen) if i in known]
        times = np.sort(rng.uniform(base_end, base_end + 7 * DAY, len(w1)))
        week1[u] = [(i, float(t)) for i, t in zip(w1, times, strict=True)]
        week2[u] = w2
    genre_of = {i: int(i[1 : i.index("-")]) for i in known}
    new_titles = [t for ts in zip(*new_by_genre, strict=True) for t in ts]
    return World(cfg, base, items, genre_of, new_titles, week1, week2)


def write_week1_export(world: World, folder: Path) -> Path:
    """Week 1 of ``world`` as an export folder (``interactions.parquet``: live user ``u``
    is ``svc-u``; ``items.parquet``: the new titles), as ``primetime data export`` writes
    one, without running the service. Returns ``folder``."""
    rows = [
        (f"svc-{u}", i, None, int(ts), "play") for u, evs in world.week1.items() for i, ts in evs
    ]
    schema = {
        "user_id": pl.Utf8,
        "item_id": pl.Utf8,
        "rating": pl.Float32,
        "timestamp": pl.Int64,
        "event": pl.Utf8,
    }
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows, schema=schema, orient="row").write_parquet(folder / "interactions.parquet")
    pl.DataFrame({"item_id": world.new_titles, "title": world.new_titles}).write_parquet(
        folder / "items.parquet"
    )
    return folder


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    """Binary NDCG@10 of one list (relevant = the user's week-2 titles)."""
    gains = [1.0 / np.log2(r + 2) for r, i in enumerate(ranked[:10]) if i in relevant]
    ideal = sum(1.0 / np.log2(r + 2) for r in range(min(10, len(relevant))))
    return float(sum(gains) / ideal) if ideal else float("nan")


@dataclass
class LoopReport:
    """Figures of one loop run (all measured on the served path)."""

    config: DriftConfig
    before_version: str
    after_version: str
    ndcg_before: float
    ndcg_after: float
    test: dict[str, float | int]
    new_in_top10_before: float
    new_in_top10_after: float
    new_hit_before: float
    new_hit_after: float
    gates: dict[str, dict[str, Any]]
    exported_events: int
    requests_during_swap: int
    failed_during_swap: int
    versions_after_swap: list[str]  # of the requests started after the swap was seen
    seconds: dict[str, float] = field(default_factory=dict)


def run_loop(
    cfg: DriftConfig,
    work: Path,
    *,
    margin: float = 0.0,
    slice_days: float = 1.0,
    say: Callable[[str], None] = lambda _: None,
) -> LoopReport:
    """Run the loop of the module docstring in ``work`` (registry, database, export)."""
    import threading

    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from primetime.data.open import open_dataset
    from primetime.eval.significance import paired_test
    from primetime.lifecycle import train_for_serving
    from primetime.registry import ModelRegistry
    from primetime.retrain import retrain
    from primetime.service.app import create_app
    from primetime.service.export import export_events, open_export_engine
    from primetime.service.settings import Settings
    from primetime.service.store import EventStore

    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    world = make_world(cfg)
    work.mkdir(parents=True, exist_ok=True)
    base_path = work / "base.parquet"
    world.base.write_parquet(base_path)
    data = str(base_path)
    reg = ModelRegistry(work / "models")
    for name in cfg.models:
        train_for_serving(name, data=data, registry=reg, notes="loop demo: base log")
    secs["base fit"] = time.perf_counter() - t0
    db_url = f"sqlite:///{work / 'service.db'}"
    admin = {"X-Admin-Token": "loop-admin-token-0123456789"}
    settings = Settings(
        environment="test",
        database_url=db_url,
        registry_dir=reg.root,
        models=list(cfg.models),
        admin_token=SecretStr(admin["X-Admin-Token"]),
        rate_limit_per_minute=0,
        promotion_poll_seconds=0.2,
        cache_ttl_seconds=3600,
    )
    dataset = open_dataset(data).dataset
    app = create_app(settings, dataset=dataset, registry=reg)
    with TestClient(app) as c:
        t1 = time.perf_counter()
        for t in world.new_titles:
            body = {"item_id": t, "title": f"New {t}", "kind": "movie"}
            r = c.post("/api/v1/admin/titles", headers=admin, json=body)
            r.raise_for_status()
        tokens: dict[int, dict[str, str]] = {}
        for u, events in world.week1.items():
            r = c.post(
                "/api/v1/auth/signup", json={"username": f"live{u}", "password": "pass-word-1"}
            )
            r.raise_for_status()
            c.cookies.clear()
            h = {"Authorization": f"Bearer {r.json()['token']}"}
            tokens[u] = h
            batch = [{"item_id": i, "event_type": "play", "ts": ts} for i, ts in events]
            c.post("/api/v1/events", headers=h, json={"events": batch}).raise_for_status()
        secs["week 1 through the API"] = time.perf_counter() - t1

        def served(u: int) -> tuple[str, list[str]]:
            r = c.get("/api/v1/recommendations", headers=tokens[u], params={"k": 10})
            r.raise_for_status()
            body = r.json()
            return body["model_version"], [x["item_id"] for x in body["items"]]

        users = sorted(u for u in tokens if world.week2[u])
        new = set(world.new_titles)
        later = {u for u in users if not any(i in new for i, _ in world.week1[u])}

        def score() -> tuple[str, np.ndarray, float, float]:
            """Mean NDCG@10 per user, and among the users who had not met a new title in
            week 1: the share whose top-10 holds one, and whose top-10 hits one in week 2."""
            version, vals, with_new, hits = "", [], 0, 0
            for u in users:
                version, ranked = served(u)
                rel = set(world.week2[u])
                vals.append(ndcg_at_10(ranked, rel))
                if u in later:
                    with_new += any(i in new for i in ranked[:10])
                    hits += bool(set(ranked[:10]) & rel & new)
            n = max(1, len(later))
            return version, np.array(vals), with_new / n, hits / n

        v0, before, new0, hit0 = score()
        say(f"before the loop: {v0} NDCG@10 {np.nanmean(before):.4f}")
        t2 = time.perf_counter()
        engine = open_export_engine(db_url)
        try:
            exported = export_events(engine, work / "export", settle=0)
        finally:
            engine.dispose()
        secs["export"] = time.perf_counter() - t2
        # requests in flight while the job retrains, promotes and the worker swaps
        stop = threading.Event()
        seen: list[tuple[float, str]] = []  # (when the request started, version)
        failed = [0]

        def hammer() -> None:
            k = 0
            while not stop.is_set():
                started = time.monotonic()
                try:
                    seen.append((started, served(users[k % len(users)])[0]))
                except Exception:
                    failed[0] += 1
                k += 1

        threads = [threading.Thread(target=hammer) for _ in range(2)]
        for th in threads:
            th.start()
        t3 = time.perf_counter()
        store = EventStore(open_export_engine(db_url))
        try:
            results = retrain(
                list(cfg.models),
                data=data,
                events=work / "export",
                registry=reg,
                margin=margin,
                slice_days=slice_days,
                store=store,
                say=say,
            )
        finally:
            store.close()
        secs["retrain"] = time.perf_counter() - t3
        target = reg.promoted(cfg.models[0])
        assert target is not None
        want = f"{target.name}:{target.version}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not seen or seen[-1][1] != want):
            time.sleep(0.1)
        swapped = time.monotonic()
        time.sleep(0.5)  # more requests, all started after the swap was seen
        stop.set()
        for th in threads:
            th.join()
        tail = [v for at, v in seen if at > swapped]
        v1, after, new1, hit1 = score()
        say(f"after the loop: {v1} NDCG@10 {np.nanmean(after):.4f}")
    return LoopReport(
        config=cfg,
        before_version=v0,
        after_version=v1,
        ndcg_before=float(np.nanmean(before)),
        ndcg_after=float(np.nanmean(after)),
        test=paired_test(after, before),
        new_in_top10_before=new0,
        new_in_top10_after=new1,
        new_hit_before=hit0,
        new_hit_after=hit1,
        gates={r.name: {**r.gate.as_dict(), "version": r.version.version} for r in results},
        exported_events=exported.total_events,
        requests_during_swap=len(seen),
        failed_during_swap=failed[0],
        versions_after_swap=tail,
        seconds=secs,
    )


def report_dict(r: LoopReport) -> dict[str, Any]:
    """JSON-able figures of a run."""
    out = dataclasses.asdict(r)
    out["config"] = dataclasses.asdict(r.config)
    return out
