"""RecPipeline on planted data: filters, blend, reasons, real-time updates, evaluation."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl
import pytest

from primetime.data import Dataset
from primetime.data.splits import leave_one_out
from primetime.eval.protocol import EvalSet, evaluate
from primetime.models.itemknn import ItemKNNRecommender
from primetime.models.popularity import PopularityRecommender
from primetime.pipeline import (
    BlendWeights,
    GenrePreferences,
    PipelineConfig,
    RecPipeline,
)
from primetime.pipeline import explain as X
from primetime.types import UserContext

T0 = 1_000_000
DRAMA = list(range(1, 21))  # planted: i0..i19 (item_idx 1..20) are Drama
COMEDY = list(range(21, 41))  # i20..i39 are Comedy + Family
REASON_CODES = {
    X.BECAUSE_WATCHED,
    X.BECAUSE_LIKE_GENRE,
    X.TRENDING_GENRE,
    X.TRENDING,
    X.POPULAR_LIKE_YOU,
    X.POPULAR,
    X.FOR_YOU,
}


#: Every component on (the former hand-set default): the tests of the real-time,
#: content and diversity stages need them, which the served default (chosen on valid
#: around SASRec) leaves at 0 for warm users.
ALL_ON = BlendWeights(realtime=0.3, content=0.3, popularity=0.1, trending=0.1, diversity=0.1)


@pytest.fixture(scope="module")
def pipe(planted: Dataset) -> RecPipeline:
    return RecPipeline.build(None, planted.catalog, planted.interactions, weights=ALL_ON)


@pytest.fixture(scope="module")
def split(planted: Dataset):  # type: ignore[no-untyped-def]
    return leave_one_out(planted.interactions)


@pytest.fixture(scope="module")
def knn(split) -> ItemKNNRecommender:  # type: ignore[no-untyped-def]
    model = ItemKNNRecommender()
    model.fit(split.train)
    return model


def drama_ctx(n: int = 6) -> UserContext:
    hist = np.arange(3, 3 + n)
    return UserContext(user_idx=None, history=hist, timestamps=T0 + 60 * np.arange(n))


# ------------------------------------------------------------------ weights
def test_blend_weights_validate_and_name_the_field() -> None:
    with pytest.raises(ValueError, match="BlendWeights.trending"):
        BlendWeights(trending=-1.0)
    with pytest.raises(ValueError, match="BlendWeights.model"):
        BlendWeights(model=float("nan"))
    with pytest.raises(ValueError, match="diversity"):
        BlendWeights(diversity=1.0)
    with pytest.raises(ValueError, match="cold_start_threshold"):
        BlendWeights(cold_start_threshold=-1)
    with pytest.raises(ValueError, match="unknown component"):
        BlendWeights.only("nope")
    w = BlendWeights.only("content")
    assert w.content == 1.0 and w.model == w.popularity == w.diversity == 0.0
    with pytest.raises(ValueError, match="n_neighbors"):
        PipelineConfig(n_neighbors=0)


# ------------------------------------------------------------------- index
def test_index_neighbours_are_sparse_and_sensible(pipe: RecPipeline) -> None:
    ix = pipe.index
    v = pipe.items.size
    assert ix.neighbors.shape == (v, 50) and ix.neighbor_sim.dtype == np.float32
    assert not (ix.neighbors[1:] == np.arange(1, v)[:, None]).any()  # not its own neighbour
    assert (ix.neighbors[0] == 0).all()
    # planted chains: i -> i+1 is watched together and shares the genre
    assert ix.neighbors[5, 0] in (4, 6)
    assert ix.neighbor_cooc[5, 0] > 0
    # neighbours of a Drama title are Drama first
    first = ix.neighbors[5][ix.neighbor_sim[5] > 0.5]
    assert set(first.tolist()) <= set(DRAMA)
    assert (np.diff(ix.neighbor_sim, axis=1) <= 1e-6).all()  # best first


def test_build_refuses_other_catalogs(planted: Dataset) -> None:
    other = Dataset.from_frames(
        "other",
        interactions=pl.DataFrame({"user_id": ["a"], "item_id": ["x"], "timestamp": [1]}),
    )
    with pytest.raises(ValueError, match="train log"):
        RecPipeline.build(None, planted.catalog, other.interactions)
    model = PopularityRecommender()
    model.fit(other.interactions)
    with pytest.raises(ValueError, match="popularity"):
        RecPipeline.build(model, planted.catalog, planted.interactions)
    with pytest.raises(ValueError, match="available"):
        RecPipeline.build(None, planted.catalog, planted.interactions, available=np.ones(3))


# --------------------------------------------------------------- recommend
def test_recommend_basics(pipe: RecPipeline) -> None:
    ctx = drama_ctx()
    recs = pipe.recommend(ctx, 10)
    items = [r.item_idx for r in recs]
    assert len(items) == 10 == len(set(items))
    assert not set(items) & set(ctx.history.tolist())
    assert set(items[:5]) <= set(DRAMA)  # the user's half comes first
    assert all(r.reason.code in REASON_CODES and r.reason.text for r in recs)
    assert all(set(r.components) == {"realtime", "content", "popularity", "trending"} for r in recs)
    plain = pipe.with_weights(dataclasses.replace(ALL_ON, diversity=0.0)).recommend(ctx, 10)
    assert [r.score for r in plain] == sorted((r.score for r in plain), reverse=True)
    # the neighbour of the newest title is explained by it
    assert any(r.reason.code == X.BECAUSE_WATCHED for r in recs)
    for r in recs:
        if r.reason.code == X.BECAUSE_WATCHED:
            assert r.reason.source_item in ctx.history
            assert r.reason.text == f"Because you watched {pipe.index.titles[r.reason.source_item]}"


def test_recommend_filters(pipe: RecPipeline) -> None:
    ctx = drama_ctx()
    only_comedy = pipe.recommend(ctx, 30, genre="Comedy")
    assert {r.item_idx for r in only_comedy} == set(COMEDY)
    assert pipe.recommend(ctx, 5, kind="show") == []  # planted has movies only
    assert len(pipe.recommend(ctx, 5, kind="movie")) == 5
    best = pipe.recommend(ctx, 3)[0].item_idx
    after = [r.item_idx for r in pipe.recommend(ctx, 40, dislikes=[best], exclude=[1, 2])]
    assert best not in after and 1 not in after and 2 not in after
    assert len(after) == 40 - 6 - 3
    with_seen = [r.item_idx for r in pipe.recommend(ctx, 40, exclude_seen=False)]
    assert set(ctx.history.tolist()) <= set(with_seen)
    with pytest.raises(ValueError, match="unknown genre 'Western'"):
        pipe.recommend(ctx, genre="Western")
    with pytest.raises(ValueError, match="kind"):
        pipe.recommend(ctx, kind="podcast")
    with pytest.raises(ValueError, match="k must be"):
        pipe.recommend(ctx, 0)
    with pytest.raises(ValueError, match="dislikes"):
        pipe.recommend(ctx, dislikes=[999])


def test_unreleased_titles_wait_for_their_date() -> None:
    rows = [("u0", f"i{i}", T0 + i) for i in range(4)] + [("u1", "i1", T0)]
    day = dt.date(2020, 1, 1)
    cat = pl.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(5)],
            "genres": [["Drama"]] * 5,
            "release_date": [day, day, day, day, dt.date(2030, 1, 1)],
        }
    )
    ds = Dataset.from_frames(
        "dates",
        interactions=pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row"),
        catalog=cat,
    )
    p = RecPipeline.build(None, ds.catalog, ds.interactions)
    ctx = UserContext.anonymous([])
    now_2021 = dt.datetime(2021, 1, 1, tzinfo=dt.UTC).timestamp()
    now_2031 = dt.datetime(2031, 1, 1, tzinfo=dt.UTC).timestamp()
    assert 5 not in {r.item_idx for r in p.recommend(ctx, 5, now=now_2021)}
    assert 5 in {r.item_idx for r in p.recommend(ctx, 5, now=now_2031)}


def test_realtime_like_moves_genre_up_and_is_named(pipe: RecPipeline, planted: Dataset) -> None:
    """Acting on a title changes the very next list: its genre rises, and it is the reason."""
    genres = pipe.index.item_genres
    ctx = drama_ctx()
    prefs = GenrePreferences()
    for i, t in zip(ctx.history.tolist(), ctx.timestamps.tolist(), strict=True):  # type: ignore[union-attr]
        prefs.update(genres[i], "complete", t)
    now = float(T0 + 3600)
    before = pipe.recommend(ctx, 20, prefs=prefs.snapshot(), now=now)

    liked = 25  # a Comedy + Family title
    t_like = now + 60
    prefs.update(genres[liked], "like", t_like)
    ctx2 = UserContext(
        user_idx=None,
        history=np.append(ctx.history, liked),
        timestamps=np.append(ctx.timestamps, t_like),  # type: ignore[arg-type]
    )
    after = pipe.recommend(ctx2, 20, prefs=prefs, now=t_like + 1)

    def comedy_rank(recs: list) -> float:  # type: ignore[type-arg]
        ranks = [k for k, r in enumerate(recs) if r.item_idx in COMEDY]
        return min(ranks) if ranks else np.inf

    assert comedy_rank(after) < comedy_rank(before)
    assert sum(r.item_idx in COMEDY for r in after) > sum(r.item_idx in COMEDY for r in before)
    assert "Comedy" in [g for g, _ in prefs.top(t_like + 1, 3)]
    named = [
        r for r in after if r.reason.code == X.BECAUSE_WATCHED and r.reason.source_item == liked
    ]
    assert named, [r.reason for r in after]
    assert named[0].reason.text == "Because you watched Title 24"
    assert named[0].item_idx in (24, 26)  # the liked title's chain neighbours
    rows = pipe.carousels(ctx2, prefs=prefs, now=t_like + 1)
    assert any(c.key == f"because_watched:{liked}" for c in rows)


def test_cold_start_onboarding_and_popular(pipe: RecPipeline) -> None:
    empty = UserContext.anonymous([])
    recs = pipe.recommend(empty, 5)
    assert len(recs) == 5
    assert all(r.reason.code in (X.POPULAR, X.TRENDING_GENRE) for r in recs)
    picked = pipe.recommend(empty, 5, onboarding_genres=["Comedy"])
    assert {r.item_idx for r in picked} <= set(COMEDY)
    assert any(r.reason.text == "Because you like Comedy" for r in picked)
    pipe.recommend(empty, 5, onboarding_genres=["Not A Genre"])  # ignored, no error


def test_demographics_popular_with_people_like_you(planted: Dataset) -> None:
    ids = planted.users.frame["user_id"].to_list()
    users = pl.DataFrame(
        {
            "user_id": ids,
            "age": [22 if int(u[1:]) % 2 == 0 else 61 for u in ids],
            "gender": ["F" if int(u[1:]) % 2 == 0 else "M" for u in ids],
        }
    )
    p = RecPipeline.build(
        None,
        planted.catalog,
        planted.interactions,
        users=users,
        weights=BlendWeights(popularity=1.0, trending=0.0, diversity=0.0),
    )
    empty = UserContext.anonymous([])
    young = p.recommend(empty, 5, demographics={"age": 20, "gender": "f"})
    old = p.recommend(empty, 5, demographics={"age": 65})
    assert {r.item_idx for r in young} <= set(DRAMA)  # group 0 (even users) watch Drama
    assert {r.item_idx for r in old} <= set(COMEDY)
    assert all(r.reason.code == X.POPULAR_LIKE_YOU for r in young)
    unknown = p.recommend(empty, 5, demographics={"age": "n/a"})
    assert all(r.reason.code == X.POPULAR for r in unknown)


def test_batch_equals_single(pipe: RecPipeline, planted: Dataset) -> None:
    contexts = planted.interactions.contexts()[:7] + [UserContext.anonymous([])]
    batch = pipe.recommend_batch(contexts, 8)
    for ctx, got in zip(contexts, batch, strict=True):
        single = pipe.recommend(ctx, 8)
        assert [r.item_idx for r in got] == [r.item_idx for r in single]
        assert [r.reason for r in got] == [r.reason for r in single]
    s = pipe.score(contexts)
    assert s.shape == (8, pipe.items.size) and s.dtype == np.float32
    assert np.isneginf(s[:, 0]).all()
    np.testing.assert_array_equal(s[2:3], pipe.score(contexts[2:3]))
    with pytest.raises(ValueError, match="prefs has 1 entries for 8"):
        pipe.recommend_batch(contexts, prefs=[None])


def test_model_only_pipeline_evaluates_exactly_like_the_model(
    planted: Dataset, split, knn: ItemKNNRecommender
) -> None:  # type: ignore[no-untyped-def]
    p = RecPipeline.build(knn, planted.catalog, split.train, weights=BlendWeights.only("model"))
    evalset = EvalSet.for_test(split)
    a = evaluate(knn, evalset, ks=(5, 10))
    b = evaluate(p, evalset, ks=(5, 10))
    assert b.model == "pipeline[itemknn]"
    assert a.aggregates["NDCG@10"] == b.aggregates["NDCG@10"]
    np.testing.assert_array_equal(a.ranks, b.ranks)
    np.testing.assert_array_equal(a.topk, b.topk)
    # the default blend is a different (still sensible) ranking
    full = evaluate(p.with_weights(BlendWeights()), evalset, ks=(10,))
    assert full.aggregates["NDCG@10"] > 0


def test_model_blend_recommends_with_reasons(
    planted: Dataset, split, knn: ItemKNNRecommender
) -> None:  # type: ignore[no-untyped-def]
    p = RecPipeline.build(knn, planted.catalog, split.train)
    recs = p.recommend(drama_ctx(), 5)
    assert len(recs) == 5 and "model" in recs[0].components
    assert recs[0].reason.code == X.BECAUSE_WATCHED


def test_diversity_rerank_mixes_genres(pipe: RecPipeline) -> None:
    ctx = drama_ctx()
    plain = pipe.with_weights(dataclasses.replace(ALL_ON, diversity=0.0)).recommend(ctx, 10)
    mixed = pipe.with_weights(dataclasses.replace(ALL_ON, diversity=0.8)).recommend(ctx, 10)
    assert not any(r.item_idx in COMEDY for r in plain[:5])
    assert any(r.item_idx in COMEDY for r in mixed[:5])
    assert plain[0].item_idx == mixed[0].item_idx  # MMR starts with the best title
    # score() applies the same re-rank to the head of the list
    s = pipe.with_weights(dataclasses.replace(ALL_ON, diversity=0.8)).score([ctx])[0]
    s[ctx.history] = -np.inf
    assert set(np.argsort(-s)[:5].tolist()) & set(COMEDY)


# ----------------------------------------------------------- similar + rows
def test_similar(pipe: RecPipeline) -> None:
    sims = pipe.similar(5, 5)
    assert len(sims) == 5 and all(s.item_idx != 5 for s in sims)
    assert {s.item_idx for s in sims} <= set(DRAMA)
    assert all(s.reason.code in (X.WATCHED_TOGETHER, X.SIMILAR_CONTENT) for s in sims)
    assert all(s.reason.source_item == 5 for s in sims)
    assert any(s.reason.text.startswith("Also in Drama") for s in sims)
    assert pipe.similar(5, 5, kind="show") == []
    with pytest.raises(ValueError, match="item_idx"):
        pipe.similar(0)


@pytest.fixture(scope="module")
def tv() -> Dataset:
    """A show with three seasons, two movies, one unreleased movie."""
    d = dt.date
    cat = pl.DataFrame(
        {
            "item_id": ["s1", "s2", "s3", "m1", "m2", "m3"],
            "title": ["Show S1", "Show S2", "Show S3", "Movie 1", "Movie 2", "Movie 3"],
            "kind": ["show"] * 3 + ["movie"] * 3,
            "series_id": ["show"] * 3 + [None] * 3,
            "season_number": [1, 2, 3, None, None, None],
            "genres": [["Drama"]] * 3 + [["Comedy"], ["Drama"], ["Comedy"]],
            "release_date": [d(2018, 1, 1), d(2019, 1, 1), d(2020, 1, 1)]
            + [d(2017, 1, 1), d(2019, 6, 1), d(2030, 1, 1)],
        }
    )
    rows = [
        (f"u{u}", item, T0 + u * 100 + k)
        for u in range(12)
        for k, item in enumerate(["s1", "s2", "m1", "m2"] if u % 2 else ["m1", "m2", "s1"])
    ]
    return Dataset.from_frames(
        "tv",
        interactions=pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row"),
        catalog=cat,
    )


def test_a_later_season_waits_for_the_one_it_follows(tv: Dataset) -> None:
    """Of a show, only the season after the latest one watched (or season 1) is eligible,
    in every list: seen in the app, "Season 3" in Top picks right after Season 1."""
    p = RecPipeline.build(None, tv.catalog, tv.interactions)
    idx = {iid: tv.items.index(iid) for iid in tv.items.ids()}
    now = dt.datetime(2021, 1, 1, tzinfo=dt.UTC).timestamp()

    def picks(*watched: str) -> set[str]:
        h = np.array([idx[w] for w in watched], dtype=np.int64)
        ctx = UserContext(user_idx=None, history=h, timestamps=np.arange(h.size))
        return {tv.items.ids()[s.item_idx - 1] for s in p.recommend(ctx, 6, now=now)}

    shows = {"s1", "s2", "s3"}
    assert picks() & shows == {"s1"}
    assert picks("m1") & shows == {"s1"}
    assert picks("s1") & shows == {"s2"}
    assert picks("s1", "s2") & shows == {"s3"}
    assert picks("s2") & shows == {"s3"}  # the latest watched decides, not the first
    assert picks("s1", "s2", "s3") & shows == set()
    # "Continue watching" offers the same season as the other rows may
    ctx = UserContext(user_idx=None, history=np.array([idx["s1"]]), timestamps=np.array([1]))
    rows = {c.key: c for c in p.carousels(ctx, now=now, n=5)}
    assert [c.item_idx for c in rows["continue_watching"].items] == [idx["s2"]]
    for key, c in rows.items():
        assert idx["s3"] not in [s.item_idx for s in c.items], key
    # the evaluation path (score) filters the same way
    assert p.score([ctx])[0, idx["s3"]] == -np.inf
    assert np.isfinite(p.score([ctx])[0, idx["s2"]])


def test_carousels(tv: Dataset) -> None:
    p = RecPipeline.build(None, tv.catalog, tv.interactions)
    idx = {iid: tv.items.index(iid) for iid in tv.items.ids()}
    now = dt.datetime(2021, 1, 1, tzinfo=dt.UTC).timestamp()
    ctx = UserContext(
        user_idx=None, history=np.array([idx["s1"], idx["m2"]]), timestamps=np.array([1, 2])
    )
    events = [
        {"item_idx": idx["s1"], "event": "complete", "timestamp": 1},
        {"item_idx": idx["m2"], "event": "play", "timestamp": 2},
    ]
    rows = {c.key: c for c in p.carousels(ctx, now=now, events=events, n=5)}
    cw = rows["continue_watching"].items
    assert [c.item_idx for c in cw] == [idx["m2"], idx["s2"]]
    assert cw[0].reason.code == X.CONTINUE_WATCHING
    assert cw[1].reason == X.Reason(X.NEXT_SEASON, "Next season after Show S1", idx["s1"])
    assert "top_picks" in rows and "trending" in rows and "new_releases" in rows
    assert f"because_watched:{idx['m2']}" in rows
    assert any(k.startswith("genre:") for k in rows)
    seen = set(ctx.history.tolist())
    for key, c in rows.items():
        items = [s.item_idx for s in c.items]
        assert len(items) == len(set(items)), key
        assert idx["m3"] not in items, key  # unreleased at `now`
        if key != "continue_watching":
            assert not seen & set(items), key
    # S3 (2020) is the newest title, but not eligible before S2 is watched (the TV rule)
    assert [s.item_idx for s in rows["new_releases"].items][0] == idx["s2"]
    # only the requested rows, in the requested order; S3 is not "next" before S2 is seen
    only = p.carousels(ctx, now=now, rows=("trending", "continue_watching"), n=5)
    assert [c.key for c in only] == ["trending", "continue_watching"]
    assert idx["s3"] not in [s.item_idx for s in only[1].items]
    with pytest.raises(ValueError, match="unknown carousel"):
        p.carousels(ctx, rows=("bogus",))
    # a movie-only home page has no show rows
    movies = p.carousels(ctx, now=now, kind="movie", n=5)
    assert movies and all(p.index.kind[s.item_idx] == 0 for c in movies for s in c.items)


def test_content_neighbours_are_exact_without_the_full_matrix() -> None:
    """The signature-pruned search finds the same top-N as a dense V x V pass."""
    from primetime.pipeline.index import _content_features, _content_topn

    rng = np.random.default_rng(3)
    v, k = 400, 6
    genres = (rng.random((v, k)) < 0.3).astype(np.float32)
    genres[0] = 0
    genres[1:20] = 0  # titles without genres: compared with everyone
    count = genres.sum(axis=1, keepdims=True)
    unit = np.divide(genres, np.sqrt(count), out=np.zeros_like(genres), where=count > 0)
    year = rng.integers(1990, 2000, v).astype(np.int32)  # many titles share a year
    year[0] = 0
    year[5] = 0
    feats = _content_features(unit, year, 0.75, 4.0)
    tiebreak = rng.random(v) * 1e-6
    idx, sim = _content_topn(feats, unit, year, 10, tiebreak, 0.75, block=16)
    dense = feats @ feats.T + tiebreak[None, :]
    np.fill_diagonal(dense, -np.inf)
    dense[:, 0] = -np.inf
    want = -np.sort(-dense[1:], axis=1)[:, :10]  # the 10 best scores of each title
    got = np.take_along_axis(dense[1:], idx[1:].astype(np.int64), axis=1)
    np.testing.assert_allclose(got, want, atol=1e-7)  # same neighbours up to exact ties
    np.testing.assert_allclose(
        sim[1:], np.take_along_axis(feats[1:] @ feats.T, idx[1:], 1), atol=1e-6
    )
    assert (idx[1:] != np.arange(1, v)[:, None]).all()


def test_catalog_without_genres_recommends_and_fills_rows(planted: Dataset) -> None:
    """A CSV log brings no genres (K = 0): every stage, reasons and rows still work."""
    log = planted.interactions.to_polars(ids=True)
    bare = Dataset.from_frames(
        "bare", interactions=log.select("user_id", "item_id", "rating", "timestamp")
    )
    assert bare.catalog.genre_names() == []
    knn = ItemKNNRecommender()
    knn.fit(bare.interactions)
    pipe = RecPipeline.build(knn, bare.catalog, bare.interactions)
    ctx = drama_ctx()
    prefs = GenrePreferences.from_events([(3, "like", T0, None)], pipe.index.genres, T0)
    items = pipe.recommend(ctx, 5, prefs=prefs, now=T0 + 60, dislikes=frozenset({9}))
    assert len(items) == 5 and all(s.reason.text for s in items)
    assert not {3, 4, 5, 6, 7, 8, 9} & {s.item_idx for s in items}
    rows = pipe.carousels(ctx, prefs=prefs, now=T0 + 60, n=4)
    assert rows and all(r.items for r in rows)
    cold = pipe.recommend(UserContext(user_idx=None, history=np.zeros(0, np.int64)), 3)
    assert len(cold) == 3


def test_a_served_list_is_the_prefix_of_a_longer_one(planted: Dataset) -> None:
    """With MMR on, the 10 titles of k=10 are the first 10 of k=20 (the evaluator reads
    @5/@10/@20 from one list of 20); with a pool that grows with k (``mmr_pool=0``, the
    former rule) they are not, for these histories."""
    differ = []
    for pool in (PipelineConfig().mmr_pool, 0):
        p = RecPipeline.build(
            None, planted.catalog, planted.interactions, config=PipelineConfig(mmr_pool=pool)
        ).with_weights(BlendWeights(diversity=0.3))
        n = 0
        for h in ([5, 6, 7], [25, 26], [10], [1, 2, 21, 3]):
            ctx = UserContext(user_idx=None, history=np.array(h), timestamps=np.arange(len(h)))
            ten = [s.item_idx for s in p.recommend(ctx, 10)]
            twenty = [s.item_idx for s in p.recommend(ctx, 20)]
            assert len(ten) == 10 and len(twenty) == 20
            n += twenty[:10] != ten
            if pool:
                assert [s.item_idx for s in p.recommend(ctx, 5)] == ten[:5]
        differ.append(n)
    assert differ[0] == 0 and differ[1] > 0
