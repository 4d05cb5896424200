"""The protocol on the tiny planted split (see conftest.py) with fake models."""

from __future__ import annotations

import dataclasses
import logging
import math
import time

import numpy as np
import polars as pl
import pytest

from primetime.data import Dataset
from primetime.data.interactions import Interactions
from primetime.data.splits import leave_one_out
from primetime.data.vocab import Vocabulary
from primetime.eval import (
    EvalSet,
    evaluate,
    evaluate_ratings,
    evaluate_sampled,
    sample_negatives,
)

V = 9  # items.size of the tiny catalog: 8 items + padding


# ------------------------------------------------------------------ EvalSet
def test_evalset_for_test(split) -> None:
    es = EvalSet.for_test(split)
    assert es.name == "test"
    assert es.user_idx.tolist() == [1, 2, 4]  # u3 has no target
    hist = [c.history.tolist() for c in es.contexts()]
    assert hist == [[1, 2, 3, 4], [2, 7], [8, 1, 2, 6, 4]]  # valid item included, time order
    assert [es.relevant(i).tolist() for i in range(3)] == [[5], [6], [3]]
    assert [c.now for c in es.contexts()] == [50, 9, 6]  # the target's timestamp
    assert es.contexts()[0].timestamps.tolist() == [10, 20, 30, 40]
    assert es.contexts()[0].ratings.tolist() == [4, 3, 5, 2]
    assert es.excluded(1).tolist() == [2, 7]
    assert es.n_history.tolist() == [4, 2, 5]


def test_evalset_for_valid_keeps_tie_break(split) -> None:
    es = EvalSet.for_valid(split)
    assert es.user_idx.tolist() == [1, 2, 4]
    assert [c.history.tolist() for c in es.contexts()] == [[1, 2, 3], [2], [8, 1, 2, 6]]
    # u2's m7 and m6 share t=9; m7 comes first in the file, so it is valid
    assert [es.relevant(i).tolist() for i in range(3)] == [[4], [7], [4]]
    assert es.contexts()[1].now == 9


def test_cold_user_is_evaluated(tiny, fakes) -> None:
    inter = tiny.interactions
    history = inter.take(inter.user_idx != 3)  # u3 has no history at all ...
    targets = inter.take(inter.user_idx == 3)  # ... but two targets
    es = EvalSet.from_parts(history, targets, name="cold")
    assert es.user_idx.tolist() == [3]
    assert es.contexts()[0].history.size == 0
    assert es.relevant(0).tolist() == [1, 3]  # m1, m3
    assert es.now.tolist() == [1]  # the first target
    model = fakes.TableModel("by-idx", V, lambda c: -np.arange(V, dtype=float))
    r = evaluate(model, es, ks=(1, 2))
    assert r.ranks.tolist() == [1, 3]  # item 1 first; item 3 behind item 2
    assert r.values("NDCG@2")[0] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert r.by_segment()["cold"]["users"] == 1


def test_target_also_in_history_is_a_miss(tiny, caplog) -> None:
    inter = tiny.interactions
    with caplog.at_level(logging.WARNING):
        es = EvalSet.from_parts(inter, inter.take(inter.user_idx == 3), name="seen")
    assert "count as misses" in caplog.text
    model = type("M", (), {"name": "m", "score": lambda self, c: np.ones((len(c), V))})()
    r = evaluate(model, es, ks=(5,))
    assert np.isinf(r.ranks).all()  # unrankable, not rank 1
    assert r.values("HR@5").tolist() == [0.0]


def test_evalset_requires_same_vocabularies(split) -> None:
    other = Interactions(
        user_idx=np.array([1]), item_idx=np.array([1]), rating=np.array([1.0]),
        timestamp=np.array([0]), event=np.array([3]),
        users=Vocabulary(["x"]), items=split.items,
    )  # fmt: skip
    with pytest.raises(ValueError, match="user vocabularies"):
        EvalSet.from_parts(split.train, other, name="bad")


# --------------------------------------------------------------- evaluate
def _planted_row(ctx) -> np.ndarray:
    """History items score highest (they must be excluded); targets at known ranks."""
    s = np.zeros(V)
    s[ctx.history] = 100.0
    if ctx.user_idx == 1:  # candidates 5..8, target 5 at rank 3
        s[[6, 7, 5, 8]] = [4, 3, 2, 1]
    elif ctx.user_idx == 2:  # candidates 1,3,4,5,6,8, target 6 at rank 4
        s[[1, 3, 4, 6, 5, 8]] = [6, 5, 4, 3, 2, 1]
    else:  # candidates 3,5,7, target 3 at rank 1
        s[[3, 5, 7]] = [10, 2, 1]
    return s


def test_target_at_known_rank(split, tiny, fakes) -> None:
    es = EvalSet.for_test(split)
    model = fakes.TableModel("planted", V, _planted_row)
    r = evaluate(model, es, ks=(1, 3, 5), catalog=tiny.catalog)
    assert r.ranks.tolist() == [3, 4, 1]
    assert r.values("HR@1").tolist() == [0, 0, 1]
    assert r.values("HR@3").tolist() == [1, 0, 1]  # rank exactly K counts, K + 1 does not
    assert r.values("HR@5").tolist() == [1, 1, 1]
    np.testing.assert_allclose(r.values("NDCG@3"), [0.5, 0, 1])
    np.testing.assert_allclose(r.values("NDCG@5"), [0.5, 1 / math.log2(5), 1])
    np.testing.assert_allclose(r.values("MRR@5"), [1 / 3, 1 / 4, 1])
    s = r.summary()
    assert s["HR@3"] == pytest.approx(2 / 3)
    assert s["NDCG@5"] == pytest.approx((0.5 + 1 / math.log2(5) + 1) / 3)
    # history items scored 100 but never appear; short lists are padded with 0
    assert r.topk.tolist() == [[6, 7, 5, 8, 0], [1, 3, 4, 6, 5], [3, 5, 7, 0, 0]]
    assert set(r.topk[:, 0].tolist()) == {6, 1, 3}
    assert s["Coverage@1"] == pytest.approx(3 / 8)


def test_coverage_diversity_novelty_from_lists(split, tiny, fakes) -> None:
    es = EvalSet.for_test(split)
    r = evaluate(fakes.TableModel("planted", V, _planted_row), es, ks=(1, 3), catalog=tiny.catalog)
    assert r.summary()["Coverage@1"] == pytest.approx(3 / 8)
    assert r.summary()["Coverage@3"] == pytest.approx(len({6, 7, 5, 1, 3, 4}) / 8)
    # u1's top-3 is m6 {Drama, Romance}, m7 {Comedy}, m5 {} -> only (m6, m7): 1.0
    # u4's top-3 is m3 {Action, Comedy}, m5 {}, m7 {Comedy} -> only (m3, m7): 1 - 1/2
    d = r.values("Diversity@3")
    assert d[0] == pytest.approx(1.0)
    assert d[2] == pytest.approx(0.5)
    # Novelty uses the eval set's history (train + valid) popularity, add-one smoothed
    counts = np.bincount(split.train_valid().item_idx, minlength=V)
    total = counts.sum() + 8
    want = np.mean([-math.log2((counts[i] + 1) / total) for i in (6, 7, 5)])
    assert r.values("Novelty@3")[0] == pytest.approx(want)


def test_constant_model_gets_no_credit_from_ties(split, fakes) -> None:
    r = evaluate(fakes.ConstantModel(V), EvalSet.for_test(split), ks=(1, 2))
    assert r.ranks.tolist() == [4, 6, 3]  # last among each user's rankable items
    assert r.summary()["HR@2"] == 0.0
    assert r.summary()["NDCG@2"] == 0.0


def test_valid_item_is_excluded_when_scoring_test(split, fakes) -> None:
    valid_item = {1: 4, 2: 7, 4: 4}

    def row(ctx):
        s = np.linspace(1, 2, V)
        s[valid_item[ctx.user_idx]] = 1000.0  # the model loves the valid item
        return s

    es = EvalSet.for_test(split)
    r = evaluate(fakes.TableModel("valid-lover", V, row), es, ks=(3,))
    for i, u in enumerate(es.user_idx):
        assert valid_item[int(u)] in es.excluded(i)
        assert valid_item[int(u)] not in r.topk[i]
        assert not set(r.topk[i]) & set(es.contexts()[i].history.tolist())


def test_batch_size_invariance(fakes) -> None:
    rng = np.random.default_rng(0)
    rows = [
        (f"u{u}", f"m{i}", float(rng.integers(1, 6)), int(t))
        for u in range(40)
        for t, i in enumerate(rng.choice(30, size=rng.integers(3, 12), replace=False))
    ]
    ds = Dataset.from_frames(
        "rand",
        interactions=pl.DataFrame(
            rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row"
        ),
    )
    es = EvalSet.for_test(leave_one_out(ds.interactions))
    model = fakes.HashModel(ds.items.size)  # ties everywhere, depend on the user only
    one = evaluate(model, es, ks=(1, 5, 10), batch_size=1)
    many = evaluate(model, es, ks=(1, 5, 10), batch_size=1024)
    odd = evaluate(model, es, ks=(1, 5, 10), batch_size=7)
    for other in (many, odd):
        np.testing.assert_array_equal(one.ranks, other.ranks)
        np.testing.assert_array_equal(one.topk, other.topk)
        for m in one.per_user:
            np.testing.assert_array_equal(one.values(m), other.values(m))
        assert one.summary() == pytest.approx(other.summary(), nan_ok=True)


def test_progress_and_batches(split, fakes) -> None:
    seen = []
    model = fakes.ConstantModel(V)
    evaluate(
        model, EvalSet.for_test(split), batch_size=2, progress=lambda d, n: seen.append((d, n))
    )
    assert seen == [(2, 3), (3, 3)]


def test_nan_scores_are_treated_as_minus_inf(split, fakes, caplog) -> None:
    def row(ctx):
        s = np.arange(V, dtype=float)
        s[5] = np.nan  # u1's target
        return s

    with caplog.at_level(logging.WARNING):
        r = evaluate(fakes.TableModel("nan", V, row), EvalSet.for_test(split), ks=(5,))
    assert "NaN" in caplog.text
    assert np.isinf(r.ranks[0])  # a NaN target is a miss, not rank 1


def test_bad_model_output_is_reported(split, fakes) -> None:
    bad = fakes.TableModel("short", V, lambda c: np.zeros(V - 1))
    with pytest.raises(ValueError, match=r"short.score returned shape"):
        evaluate(bad, EvalSet.for_test(split))
    with pytest.raises(TypeError, match="name"):
        evaluate(object(), EvalSet.for_test(split))  # type: ignore[arg-type]
    wrong = fakes.ConstantModel(V)
    wrong.items = Vocabulary(["a", "b"])
    with pytest.raises(ValueError, match="different catalogs"):
        evaluate(wrong, EvalSet.for_test(split))


# ------------------------------------------------------------- breakdowns
def test_by_segment_and_by_genre(split, tiny, fakes) -> None:
    r = evaluate(fakes.TableModel("planted", V, _planted_row), EvalSet.for_test(split), ks=(3, 10))
    seg = r.by_segment()
    assert [seg[s]["users"] for s in ("cold", "light", "regular", "power")] == [2, 1, 0, 0]
    assert seg["cold"]["HR@3"] == pytest.approx(0.5)  # u1 (rank 3) and u2 (rank 4)
    assert seg["light"]["HR@3"] == 1.0  # u4, history 5
    assert math.isnan(seg["power"]["NDCG@10"])
    seg_train = r.by_segment(split.train)  # train rows: 3, 1, 4 -> all cold
    assert seg_train["cold"]["users"] == 3

    g = r.by_genre(tiny.catalog)
    # targets: u1 m5 (no genre), u2 m6 (Drama, Romance), u4 m3 (Action, Comedy)
    assert {k: v["users"] for k, v in g.items()} == {
        "Action": 1, "Comedy": 1, "Drama": 1, "Romance": 1, "(no genre)": 1,
    }  # fmt: skip
    assert g["Action"]["NDCG@3"] == 1.0
    assert g["Drama"]["HR@3"] == 0.0
    assert g["(no genre)"]["NDCG@3"] == pytest.approx(0.5)


def test_by_popularity_of_the_held_out_item(split, fakes) -> None:
    r = evaluate(fakes.TableModel("planted", V, _planted_row), EvalSet.for_test(split), ks=(3, 10))
    # train events of the targets: u1's m5 0, u2's m6 1 (u4), u4's m3 2 (u1, u3)
    pop = r.by_popularity(split.train)
    assert list(pop) == ["rarest third", "middle third", "most watched third"]
    assert [(p["users"], p["events_lo"], p["events_hi"]) for p in pop.values()] == [
        (1, 0.0, 0.0), (1, 1.0, 1.0), (1, 2.0, 2.0),
    ]  # fmt: skip
    assert pop["rarest third"]["NDCG@3"] == pytest.approx(0.5)  # u1, rank 3
    assert pop["middle third"]["HR@3"] == 0.0  # u2, rank 4
    assert pop["most watched third"]["NDCG@3"] == 1.0  # u4, rank 1
    events, buckets = r.popularity_buckets(split.train)
    assert events.tolist() == [0.0, 1.0, 2.0]
    assert [m.tolist() for _, m in buckets] == [[True, False, False], [False, True, False],
                                                [False, False, True]]  # fmt: skip
    # fewer than three distinct counts (new titles: all never watched): no breakdown
    one = split.train.take(split.train.item_idx != 3)  # m3 unwatched, like m5
    assert r.by_popularity(one.take(one.item_idx != 6)) == {}
    with pytest.raises(ValueError, match="item vocabulary"):
        other = Vocabulary([f"x{k}" for k in range(1, V)])
        r.by_popularity(dataclasses.replace(split.train, items=other))


def test_export_topk(split, fakes, tmp_path) -> None:
    es = EvalSet.for_test(split)
    r = evaluate(fakes.TableModel("planted", V, _planted_row), es, ks=(5,))
    path = r.export_topk(tmp_path / "top.tsv", k=3)
    lines = path.read_text().splitlines()
    assert lines[0] == "user_id\titem_id\trank"
    df = pl.read_csv(
        path, separator="\t", schema_overrides={"user_id": pl.Utf8, "item_id": pl.Utf8}
    )
    assert df.filter(pl.col("user_id") == "u1")["item_id"].to_list() == ["m6", "m7", "m5"]
    assert df.filter(pl.col("user_id") == "u1")["rank"].to_list() == [1, 2, 3]
    assert df.height == 9
    for i, u in enumerate(es.user_idx):
        uid = split.users.id(int(u))
        hist_ids = set(split.items.ids(es.contexts()[i].history))
        assert not hist_ids & set(df.filter(pl.col("user_id") == uid)["item_id"].to_list())
    full = r.export_topk(tmp_path / "all.tsv")  # padding rows are not written
    assert pl.read_csv(full, separator="\t").height == 4 + 5 + 3
    with pytest.raises(ValueError, match="k must be"):
        r.export_topk(tmp_path / "x.tsv", k=6)


# ---------------------------------------------------------------- sampled
def test_sampled_is_labelled_and_samples_unseen_items(split, fakes) -> None:
    es = EvalSet.for_test(split)
    model = fakes.TableModel("planted", V, _planted_row)
    r = evaluate_sampled(model, es, n_negatives=2, seed=0, ks=(1, 3))
    assert r.protocol == "sampled-2"
    assert r.label == "planted [sampled-2]"
    assert r.topk is None
    neg = sample_negatives(es, 2, seed=0)
    for i in range(len(es)):
        interacted = set(es.contexts()[i].history.tolist()) | set(es.relevant(i).tolist())
        picked = [x for x in neg[i].tolist() if x]
        assert len(set(picked)) == len(picked) == 2
        assert not set(picked) & interacted
        scores = _planted_row(es.contexts()[i])
        t = scores[es.relevant(i)[0]]
        assert r.ranks[i] == 1 + sum(scores[x] >= t for x in picked)
    np.testing.assert_array_equal(neg, sample_negatives(es, 2, seed=0))
    default = evaluate_sampled(model, es)
    assert default.protocol == "sampled-100"
    assert "[sampled-100]" in default.label
    # the tiny catalog has fewer than 100 unseen items: every one is a negative
    assert (sample_negatives(es, 100, seed=0) > 0).sum(axis=1).tolist() == [3, 5, 2]


def test_sampled_negatives_large_catalog_are_uniform_and_unseen() -> None:
    n_items, n_users = 500, 50
    items = Vocabulary([f"i{k}" for k in range(n_items)])
    users = Vocabulary([f"u{k}" for k in range(n_users)])
    rng = np.random.default_rng(5)
    u = np.repeat(np.arange(1, n_users + 1), 60)
    i = np.concatenate([rng.choice(n_items, 60, replace=False) + 1 for _ in range(n_users)])
    inter = Interactions(
        user_idx=u, item_idx=i, rating=np.full(u.size, np.nan), timestamp=np.arange(u.size),
        event=np.zeros(u.size), users=users, items=items,
    )  # fmt: skip
    es = EvalSet.for_test(leave_one_out(inter))
    neg = sample_negatives(es, 100, seed=1)
    assert (neg > 0).all()
    for k in range(n_users):
        seen = set(es.contexts()[k].history.tolist()) | set(es.relevant(k).tolist())
        assert len(set(neg[k].tolist())) == 100
        assert not set(neg[k].tolist()) & seen


# ---------------------------------------------------------------- ratings
def test_evaluate_ratings(split) -> None:
    class Three:
        name = "three"

        def predict_ratings(self, user_idx, item_idx):
            return np.full(len(user_idx), 3.0)

    r = evaluate_ratings(Three(), split.test, batch_size=2)
    true = split.test.rating.astype(float)  # 4 (u1 m5), 4 (u2 m6), 1 (u4 m3)
    assert sorted(true.tolist()) == [1, 4, 4]
    assert r.summary()["MAE"] == pytest.approx(np.mean(np.abs(true - 3)))
    assert r.summary()["RMSE"] == pytest.approx(math.sqrt(np.mean((true - 3) ** 2)))
    mean, lo, hi = r.ci("RMSE", n_boot=200)
    assert lo <= mean <= hi
    assert r.abs_errors.shape == (3,)

    class Broken(Three):
        def predict_ratings(self, user_idx, item_idx):
            return np.full(len(user_idx), np.nan)

    with pytest.raises(ValueError, match="NaN"):
        evaluate_ratings(Broken(), split.test)


# ------------------------------------------------------------ performance
def test_ml100k_size_is_fast(fakes) -> None:
    """943 users x 1,682 items: the harness itself takes well under a second."""
    n_users, n_items, per = 943, 1682, 100
    rng = np.random.default_rng(0)
    u = np.repeat(np.arange(1, n_users + 1), per)
    i = rng.integers(1, n_items + 1, u.size)
    inter = Interactions(
        user_idx=u, item_idx=i, rating=rng.integers(1, 6, u.size).astype(float),
        timestamp=rng.integers(0, 10**6, u.size), event=np.full(u.size, 3),
        users=Vocabulary([f"u{k}" for k in range(n_users)]),
        items=Vocabulary([f"i{k}" for k in range(n_items)]),
    )  # fmt: skip
    es = EvalSet.for_test(leave_one_out(inter))
    base = rng.random(n_items + 1).astype(np.float32)

    class Fixed:
        name = "fixed"

        def score(self, contexts):
            return np.tile(base, (len(contexts), 1))

    evaluate(Fixed(), es)  # warm-up (imports)
    t0 = time.perf_counter()
    r = evaluate(Fixed(), es)
    elapsed = time.perf_counter() - t0
    assert r.seconds - r.scoring_seconds < 1.0
    assert elapsed < 2.0
