"""Behaviour on planted data with a known right answer."""

from __future__ import annotations

import numpy as np
import pytest

from primetime.data.splits import leave_one_out, ratio_split
from primetime.eval.protocol import EvalSet, evaluate, evaluate_ratings
from primetime.lifecycle import build_model


def _ndcg(model, split):
    return evaluate(model, EvalSet.for_test(split), ks=(10,)).summary()["NDCG@10"]


@pytest.mark.parametrize("name", ["itemknn", "ease", "als", "bpr"])
def test_personalised_models_beat_popularity_on_planted_chains(planted, name):
    split = leave_one_out(planted.interactions)
    pop = build_model("popularity")
    pop.fit(split.train)
    model = build_model(name)
    model.fit(split.train)
    assert _ndcg(model, split) > _ndcg(pop, split) + 0.1


def test_itemknn_follows_the_chain(planted):
    """After i, i+1 (its chain successor) must be among the top-3."""
    split = leave_one_out(planted.interactions)
    m = build_model("itemknn")
    m.fit(split.train)
    from primetime.types import UserContext

    items = planted.items
    hist = np.array([items.index("i3"), items.index("i4"), items.index("i5")])
    s = m.score([UserContext.anonymous(hist)])[0]
    s[hist] = -np.inf
    assert items.index("i6") in np.argsort(-s)[:3]


def test_trending_prefers_recent_items():
    import polars as pl

    from primetime.data import Dataset

    day = 86_400
    df = pl.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(10)],
            "item_id": ["old"] * 6 + ["new"] * 4,
            "timestamp": [0] * 6 + [100 * day] * 4,
        }
    )
    ds = Dataset.from_frames("t", interactions=df)
    pop, trend = build_model("popularity"), build_model("trending", {"half_life_days": 7})
    for m in (pop, trend):
        m.fit(ds.interactions)
    from primetime.types import UserContext

    ctx = [UserContext.anonymous([])]
    old, new = ds.items.index("old"), ds.items.index("new")
    assert pop.score(ctx)[0, old] > pop.score(ctx)[0, new]
    assert trend.score(ctx)[0, new] > trend.score(ctx)[0, old]


def test_mf_learns_planted_ratings(planted):
    """Group 1 rates 3-5, group 0 rates 1-3: MF must beat the global mean."""
    split = ratio_split(planted.interactions, seed=42)
    m = build_model("mf", {"epochs": 40})
    m.fit(split.train)
    res = evaluate_ratings(m, split.test)
    mean_err = np.abs(split.test.rating - np.nanmean(split.train.rating)).mean()
    assert res.summary()["MAE"] < 0.8 * mean_err


def test_mf_folds_in_new_user_from_ratings(planted):
    from primetime.types import UserContext

    split = ratio_split(planted.interactions, seed=42)
    m = build_model("mf", {"epochs": 40})
    m.fit(split.train)
    lo_items = np.arange(1, 11)
    hi_items = np.arange(planted.items.size - 10, planted.items.size)
    lover = UserContext(None, hi_items, ratings=np.full(10, 5.0))
    s = m.score([lover])[0]
    assert s[hi_items].mean() > s[lo_items].mean()
