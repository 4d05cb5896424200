"""Synthetic worlds: reproducible, realistic, and exactly consistent with their oracle."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from primetime.data import Dataset
from primetime.data.interactions import EVENT_CODE
from primetime.data.synthetic import (
    HOLIDAY,
    PRESETS,
    World,
    WorldConfig,
    generate,
    leaf_genres,
)
from primetime.data.synthetic.truth import _alias_table
from primetime.types import UserContext

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def world() -> World:
    return generate(TINY)


def histories(world: World) -> tuple[np.ndarray, np.ndarray]:
    return world.dataset.interactions.user_histories()


def event_contexts(
    world: World, users: np.ndarray | None = None
) -> tuple[list[UserContext], np.ndarray]:
    """A context for every event (of ``users``): the history before it, and its item."""
    inter = world.dataset.interactions
    indptr, order = histories(world)
    if users is None:
        users = np.flatnonzero(np.diff(indptr) > 0)
    contexts, targets = [], []
    for u in users:
        rows = order[indptr[u] : indptr[u + 1]]
        items, ts = inter.item_idx[rows], inter.timestamp[rows]
        for j in range(rows.size):
            contexts.append(UserContext(user_idx=int(u), history=items[:j], now=int(ts[j])))
            targets.append(items[j])
    return contexts, np.asarray(targets, dtype=np.int64)


def batched_probs(world: World, contexts: list[UserContext], size: int = 512) -> np.ndarray:
    return np.concatenate(
        [world.next_item_probs(contexts[b : b + size]) for b in range(0, len(contexts), size)]
    )


# ---------------------------------------------------------------- generation
def test_tiny_has_the_documented_size() -> None:
    # its speed is measured by benchmarks/bench_synthetic.py, not asserted here
    w = generate(TINY)
    counts = w.dataset.manifest["counts"]
    assert counts["users"] == 200
    assert 250 <= counts["items"] <= 400
    assert 7_000 <= counts["interactions"] <= 13_000


def test_same_seed_same_world_other_seed_other_world(world: World) -> None:
    again = generate(TINY)
    a, b = world.dataset, again.dataset
    for name in ("user_idx", "item_idx", "timestamp", "event"):
        np.testing.assert_array_equal(getattr(a.interactions, name), getattr(b.interactions, name))
    np.testing.assert_array_equal(a.interactions.rating, b.interactions.rating)
    assert a.catalog.frame.equals(b.catalog.frame)
    assert a.users.frame.equals(b.users.frame)
    assert a.kg.triples.equals(b.kg.triples)
    for k, v in world.latents.arrays().items():
        np.testing.assert_array_equal(v, again.latents.arrays()[k], err_msg=k)

    other = generate(replace(TINY, seed=1)).dataset
    assert not np.array_equal(other.interactions.item_idx[:500], a.interactions.item_idx[:500])
    assert not other.catalog.frame["title"].equals(a.catalog.frame["title"])


def test_dataset_indices_match_latents(world: World) -> None:
    ds, lat = world.dataset, world.latents
    assert ds.name == "synthetic-tiny"
    assert ds.manifest["source"].startswith("primetime.data.synthetic:")
    for k in (1, 2, lat.n_items // 2, lat.n_items):
        assert ds.catalog.items.id(k) == lat.item_ids[k - 1]
    assert ds.items.ids() == lat.item_ids.tolist()
    assert ds.users.users.ids() == lat.user_ids.tolist()
    frame = ds.catalog.frame
    is_show = (frame["kind"] == "show").to_numpy()
    np.testing.assert_array_equal(lat.network[1:] > 0, is_show)
    # release dates in the catalog are the latent release times
    rel = frame["release_date"].cast(pl.Int64).to_numpy() * 86_400
    np.testing.assert_array_equal(rel, lat.release_ts[1:])
    holiday = frame["genres"].list.contains(HOLIDAY).to_numpy()
    np.testing.assert_array_equal(holiday, lat.holiday[1:])
    # season links: next season of the same series, numbered one up
    for k in np.flatnonzero(lat.next_season)[:50]:
        a, b = ds.catalog.row(int(k)), ds.catalog.row(int(lat.next_season[k]))
        assert a["series_id"] == b["series_id"] is not None
        assert b["season_number"] == a["season_number"] + 1
        assert b["first_air_date"] > a["first_air_date"]
        assert lat.prev_season[lat.next_season[k]] == k


def test_catalog_and_kg_are_realistic(world: World) -> None:
    ds = world.dataset
    frame = ds.catalog.frame
    shows = frame.filter(pl.col("kind") == "show")
    movies = frame.filter(pl.col("kind") == "movie")
    assert shows.height and movies.height
    assert shows["network"].null_count() == 0 and movies["network"].null_count() == movies.height
    assert shows["first_air_date"].null_count() == 0 and shows["episodes"].min() >= 1
    assert (shows["season_number"] <= shows["seasons"]).all()
    assert shows["title"].str.contains(" — Season ").all()
    parents = {p for _, p in leaf_genres()}
    for gs in frame["genres"].to_list():
        assert gs[0] in {leaf for leaf, _ in leaf_genres()} and gs[1] in parents
    # descriptions carry a keyword of the primary leaf genre
    from primetime.data.synthetic import GENRE_TREE

    kw = {leaf: words for p in GENRE_TREE.values() for leaf, words in p.items()}
    for gs, text in zip(frame["genres"].to_list(), frame["description"].to_list(), strict=True):
        assert gs[0].lower() in text and any(w in text for w in kw[gs[0]])
    # a show's seasons share most of their cast
    by_series = shows.group_by("series_id").agg(pl.col("cast"))
    overlaps = []
    for casts in by_series["cast"].to_list():
        for a, b in zip(casts, casts[1:], strict=False):
            overlaps.append(len(set(a) & set(b)) / max(len(set(a) | set(b)), 1))
    assert np.mean(overlaps) > 0.4
    rel = ds.kg.relation_counts()
    for r in (
        *("actor", "director", "writer", "creator", "genre", "subgenre", "subgenre_of"),
        *("network", "season_of", "next_season"),
    ):
        assert rel.get(r, 0) > 0, r
    nxt = ds.kg.triples.filter(pl.col("relation") == "next_season")
    lat = world.latents
    assert nxt.height == int((lat.next_season > 0).sum())
    heads = ds.items.indices(nxt["head"])
    np.testing.assert_array_equal(lat.next_season[heads], ds.items.indices(nxt["tail"]))
    users = ds.users.frame
    assert {"platforms", "top_genre", "activity"} <= set(users.columns)
    assert users["platforms"].list.len().min() >= 1


def test_kg_links_seasons_genres_people_and_networks(world: World) -> None:
    ds = world.dataset
    frame = ds.catalog.frame
    kg = ds.kg.triples
    triples = set(kg.iter_rows())
    shows = frame.filter(pl.col("kind") == "show")
    movies = frame.filter(pl.col("kind") == "movie")
    by_key = {
        (r["series_id"], r["season_number"]): r["item_id"] for r in shows.iter_rows(named=True)
    }
    # every season n > 1 has a next_season edge from season n - 1, and every season its series
    for (series, n), iid in by_key.items():
        assert (iid, "season_of", f"series:{series}") in triples
        if n > 1:
            assert (by_key[(series, n - 1)], "next_season", iid) in triples
    nxt = kg.filter(pl.col("relation") == "next_season")
    assert nxt.height == shows.height - shows["series_id"].n_unique()
    # counts per relation: one network / series / creator per season, one director per title
    rel = ds.kg.relation_counts()
    assert rel["network"] == rel["season_of"] == rel["creator"] == shows.height
    assert rel["director"] == frame.height
    assert movies.height <= rel["writer"] <= 2 * movies.height
    assert 3 * frame.height <= rel["actor"] <= 8 * frame.height
    # genres: one top genre or two (plus Holiday), one leaf or two; the tree over the leaves
    assert frame.height <= rel["subgenre"] <= 2 * frame.height
    assert frame.height <= rel["genre"] <= 3 * frame.height
    tree = dict(kg.filter(pl.col("relation") == "subgenre_of").select("head", "tail").iter_rows())
    assert tree == {f"genre:{leaf}": f"genre:{p}" for leaf, p in leaf_genres()[: TINY.n_genres]}
    sub = kg.filter(pl.col("relation") == "subgenre")
    assert set(sub["tail"]) <= set(tree)
    # the tails name people as the catalog does: a title's actors are its cast
    first = frame.row(0, named=True)
    actors = kg.filter((pl.col("head") == first["item_id"]) & (pl.col("relation") == "actor"))
    assert actors["tail"].to_list() == [f"person:{p}" for p in first["cast"]]
    # same seed, same graph
    assert generate(TINY).dataset.kg.triples.equals(kg)


# ------------------------------------------------------------ realism
def test_timestamps_monotone_in_range_and_after_release(world: World) -> None:
    inter, lat, cfg = world.dataset.interactions, world.latents, world.config
    indptr, order = histories(world)
    ts = inter.timestamp[order]
    same_user = inter.user_idx[order][1:] == inter.user_idx[order][:-1]
    assert (np.diff(ts)[same_user] > 0).all()
    assert ts.min() >= cfg.start_ts and ts.max() <= cfg.end_ts
    assert (inter.timestamp >= lat.release_ts[inter.item_idx]).all()
    # no title is watched twice by one user
    key = inter.user_idx.astype(np.int64) * (lat.n_items + 1) + inter.item_idx
    assert np.unique(key).size == key.size
    # a user only watches shows of networks they subscribe to
    assert lat.subscribed[inter.user_idx, lat.network[inter.item_idx]].all()


def test_weekly_and_daily_rhythm(world: World) -> None:
    ts = world.dataset.interactions.timestamp
    weekday = (ts // 86_400 + 3) % 7  # Monday = 0
    hour = ts % 86_400 // 3_600
    per_day = np.bincount(weekday, minlength=7)
    assert per_day[5:].mean() > 1.3 * per_day[:4].mean()
    assert (hour >= 18).mean() > 0.35 and (hour < 6).mean() < 0.2  # late sessions spill over


def test_activity_is_long_tailed(world: World) -> None:
    counts = np.bincount(world.dataset.interactions.user_idx)[1:]
    assert counts.max() > 4 * np.median(counts)  # tiny caps activity at half the catalog
    assert stats.skew(counts) > 1.0
    top = np.sort(counts)[::-1][: counts.size // 10]
    assert top.sum() > 0.25 * counts.sum()


def test_popularity_is_long_tailed(world: World) -> None:
    counts = np.sort(np.bincount(world.dataset.interactions.item_idx)[1:])[::-1]
    assert counts[: counts.size // 10].sum() > 0.25 * counts.sum()  # uniform would be 0.1


def test_holiday_titles_peak_in_december(world: World) -> None:
    inter, lat = world.dataset.interactions, world.latents
    month = inter.timestamp.astype("datetime64[s]").astype("datetime64[M]").astype(int) % 12 + 1
    hol = lat.holiday[inter.item_idx]
    dec = hol[month == 12].mean()
    rest = hol[month != 12].mean()
    assert dec > 2.0 * rest, (dec, rest)


def test_premieres_draw_a_crowd(world: World) -> None:
    def share_in_premiere_window(w: World) -> float:
        inter, lat = w.dataset.interactions, w.latents
        age = inter.timestamp - lat.release_ts[inter.item_idx]
        return float((age < w.config.premiere_days * 86_400).mean())

    flat = generate(replace(TINY, premiere_boost=1.0))
    assert share_in_premiere_window(world) > 1.5 * share_in_premiere_window(flat)


def test_taste_drifts_between_start_and_end(world: World) -> None:
    lat, m = world.latents, world.model
    u = np.arange(1, 11)
    np.testing.assert_allclose(m.theta(u, lat.t_first[u]), lat.theta_start[u])
    np.testing.assert_allclose(m.theta(u, lat.t_last[u]), lat.theta_end[u])
    moved = np.abs(lat.theta_end[1:] - lat.theta_start[1:]).sum(axis=1)
    assert 0.05 < moved.mean() < 2 * world.config.drift


def test_binge_next_season_is_most_likely(world: World) -> None:
    lat = world.latents
    contexts, _ = event_contexts(world)
    chosen = []
    for c in contexts:
        if c.history.size and lat.next_season[c.history[-1]]:
            ns = lat.next_season[c.history[-1]]
            if lat.release_ts[ns] <= c.now and ns not in c.history:
                chosen.append(c)
    assert len(chosen) >= 20
    p = batched_probs(world, chosen)
    ns = lat.next_season[[c.history[-1] for c in chosen]]
    assert (p.argmax(axis=1) == ns).all()
    assert (p[np.arange(len(chosen)), ns] >= world.config.binge_prob).all()


def test_ratings_and_events_follow_the_latent_model(world: World) -> None:
    inter = world.dataset.interactions
    rated = ~np.isnan(inter.rating)
    assert set(np.unique(inter.rating[rated])) <= {1, 2, 3, 4, 5}
    assert (inter.event[rated] == EVENT_CODE["rate"]).all()
    assert (inter.event[~rated] != EVENT_CODE["rate"]).all()
    share = np.bincount(inter.event, minlength=4)[1:4] / len(inter)
    assert share[0] + share[1] > 0.5 and 0.15 < share[2] < 0.45  # mostly play/complete
    assert 3.0 < inter.rating[rated].mean() < 4.0
    expected = world.expected_ratings(
        inter.user_idx[rated], inter.item_idx[rated], inter.timestamp[rated]
    )
    assert abs(float((inter.rating[rated] - expected).mean())) < 0.1
    assert np.corrcoef(inter.rating[rated], expected)[0, 1] > 0.4


# ------------------------------------------------------ the oracle is exact
def test_probs_are_distributions_with_zeros_where_impossible(world: World) -> None:
    lat = world.latents
    contexts, _ = event_contexts(world, np.arange(1, 40))
    p = batched_probs(world, contexts)
    assert p.shape == (len(contexts), lat.n_items + 1)
    assert (p >= 0).all() and (p[:, 0] == 0).all()
    live = p.sum(axis=1) > 0
    assert live.mean() > 0.99
    np.testing.assert_allclose(p[live].sum(axis=1), 1.0, atol=1e-9)
    for c, row in zip(contexts, p, strict=True):
        assert (row[c.history] == 0).all()
        assert (row[lat.release_ts > c.now] == 0).all()
        unsubscribed = ~lat.subscribed[c.user_idx][lat.network]
        assert (row[unsubscribed] == 0).all()
    scores = world.oracle_scores(contexts[:50])
    assert scores.dtype == np.float32
    assert np.isneginf(scores[p[:50] == 0]).all()
    np.testing.assert_allclose(np.exp(scores[p[:50] > 0]), p[:50][p[:50] > 0], rtol=1e-5)


def test_every_generated_event_had_positive_probability(world: World) -> None:
    contexts, targets = event_contexts(world, np.arange(1, 60))
    p = batched_probs(world, contexts)
    got = p[np.arange(len(targets)), targets]
    assert (got > 0).all()


def test_generated_events_are_calibrated_against_the_oracle(world: World) -> None:
    """Mean surprise of the actual events equals the mean entropy of the oracle."""
    contexts, targets = event_contexts(world)
    p = batched_probs(world, contexts)
    surprise = -np.log(p[np.arange(len(targets)), targets])
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    diff = surprise - entropy
    z = diff.mean() / (diff.std() / np.sqrt(diff.size))
    assert abs(z) < 4.0, z
    # and the oracle is far better than popularity (a sanity check of the signal)
    pop = np.bincount(targets, minlength=p.shape[1]) / targets.size
    assert surprise.mean() < -np.log(np.maximum(pop[targets], 1e-12)).mean() - 0.3


def _chi_square_against_probs(world: World, ctx: UserContext, n: int, seed: int) -> float:
    p = world.next_item_probs([ctx])[0]
    draws = world.sample_next([ctx] * n, np.random.default_rng(seed))
    assert (p[draws] > 0).all()
    observed = np.bincount(draws, minlength=p.size).astype(np.float64)
    expected = p * n
    big = expected >= 5  # pool the rare items into one bin
    obs = np.r_[observed[big], observed[~big].sum()]
    exp = np.r_[expected[big], expected[~big].sum()]
    keep = exp > 0
    return float(stats.chisquare(obs[keep], exp[keep]).pvalue)


def _sample_contexts(world: World) -> list[UserContext]:
    inter, lat, cfg = world.dataset.interactions, world.latents, world.config
    indptr, order = histories(world)
    out = []
    for u in (3, 17, 42, 101, 150):
        rows = order[indptr[u] : indptr[u + 1]]
        j = rows.size // 2
        out.append(
            UserContext(
                user_idx=u, history=inter.item_idx[rows[:j]], now=int(inter.timestamp[rows[j]])
            )
        )
    # December with an empty history: holiday titles and premieres in play
    dec = int(np.datetime64(f"{cfg.end[:4]}-12-05", "s").astype(np.int64))
    out.append(UserContext(user_idx=7, history=np.array([], np.int64), now=dec))
    # right after a season whose next season has aired: binge branch
    k = int(np.flatnonzero(lat.next_season)[0])
    out.append(
        UserContext(
            user_idx=int(np.flatnonzero(lat.subscribed[:, lat.network[k]])[1]),
            history=np.array([k]),
            now=cfg.end_ts - 86_400,
        )
    )
    return out


def test_sampler_reproduces_next_item_probs() -> None:
    world = generate(TINY)
    for i, ctx in enumerate(_sample_contexts(world)):
        pval = _chi_square_against_probs(world, ctx, n=20_000, seed=i)
        assert pval > 1e-3, (i, pval)


def test_exact_fallback_reproduces_next_item_probs(world: World) -> None:
    fallback = World(
        config=replace(world.config, rounds=0), dataset=world.dataset, latents=world.latents
    )
    for i, ctx in enumerate(_sample_contexts(world)[:3]):
        pval = _chi_square_against_probs(fallback, ctx, n=20_000, seed=100 + i)
        assert pval > 1e-3, (i, pval)


def test_alias_table_is_exact() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(500) ** 6
    p /= p.sum()
    prob, alias = _alias_table(p)
    implied = prob.copy()
    np.add.at(implied, alias, 1.0 - prob)
    np.testing.assert_allclose(implied / p.size, p, rtol=1e-9, atol=1e-15)


def test_contexts_are_checked(world: World) -> None:
    with pytest.raises(ValueError, match="now"):
        world.next_item_probs([UserContext(user_idx=1, history=np.array([1]))])
    with pytest.raises(ValueError, match="user_idx"):
        world.next_item_probs([UserContext.anonymous([1])])


# ---------------------------------------------------------------- persistence
def test_save_load_round_trip(world: World, tmp_path: Path) -> None:
    world.save(tmp_path)
    assert {"world.npz", "world.json", "manifest.json", "interactions.parquet"} <= {
        p.name for p in tmp_path.iterdir()
    }
    assert Dataset.load(tmp_path).manifest == world.dataset.manifest  # a normal dataset dir
    again = World.load(tmp_path)
    assert again.config == world.config
    contexts, _ = event_contexts(world, np.arange(1, 6))
    np.testing.assert_array_equal(again.next_item_probs(contexts), world.next_item_probs(contexts))
    np.testing.assert_array_equal(
        again.dataset.interactions.item_idx, world.dataset.interactions.item_idx
    )


def test_a_world_of_an_older_format_is_generated_again(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    from primetime.data.synthetic import WORLD_FORMAT_VERSION, load_or_generate, saved_format

    world.save(tmp_path)
    assert saved_format(tmp_path) == WORLD_FORMAT_VERSION
    meta = json.loads((tmp_path / "world.json").read_text())
    (tmp_path / "world.json").write_text(json.dumps({**meta, "format_version": 1}))
    with pytest.raises(ValueError, match="generate it again"):
        World.load(tmp_path)
    again = load_or_generate(TINY, tmp_path)
    assert "format 1" in caplog.text
    assert saved_format(tmp_path) == WORLD_FORMAT_VERSION
    assert again.dataset.kg.triples.equals(world.dataset.kg.triples)


def test_out_dir_writes_parts_and_gives_the_same_world(world: World, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    small_chunks = replace(TINY, chunk_users=64)
    on_disk = generate(small_chunks, out_dir=tmp_path, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (200, 200) and len(seen) == 4
    assert not (tmp_path / "parts").exists()
    in_memory = generate(small_chunks)
    for name in ("user_idx", "item_idx", "timestamp", "event"):
        np.testing.assert_array_equal(
            getattr(on_disk.dataset.interactions, name),
            getattr(in_memory.dataset.interactions, name),
        )
    assert World.load(tmp_path).config == small_chunks


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="n_users"):
        WorldConfig(n_users=0)
    with pytest.raises(ValueError, match="binge_prob"):
        WorldConfig(binge_prob=1.5)
    with pytest.raises(ValueError, match="n_genres"):
        WorldConfig(n_genres=99)
    with pytest.raises(ValueError, match="unknown WorldConfig"):
        WorldConfig.from_dict({"n_users": 5, "colour": "red"})


def test_workers_do_not_change_the_world() -> None:
    cfg = replace(TINY, chunk_users=64)
    one = generate(cfg).dataset.interactions
    two = generate(cfg, workers=2).dataset.interactions
    for name in ("user_idx", "item_idx", "timestamp", "event"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
