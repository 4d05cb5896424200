"""EASE^R: the closed form is the constrained ridge regression it stands for; on a
large catalog it is learned over the most-watched titles and pruned per title."""

from __future__ import annotations

import numpy as np
import pytest

from primetime.data.splits import leave_one_out
from primetime.lifecycle import build_model
from primetime.types import UserContext


def test_weights_solve_each_titles_ridge_regression_on_the_others(planted):
    """Column j of B is the ridge regression of title j's column of X on every other
    title's (the zero diagonal as a constraint), with the same penalty."""
    split = leave_one_out(planted.interactions)
    model = build_model("ease", {"l2": 30.0, "recency_decay": 1.0, "neighbours": 0})
    model.fit(split.train)
    x = split.train.matrix().toarray()[:, 1:].astype(np.float64)  # padding dropped
    w = model.weights.toarray()
    b = w[1:, 1:]
    for j in (0, 7, 31):
        others = np.delete(np.arange(x.shape[1]), j)
        a = x[:, others]
        ridge = np.linalg.solve(a.T @ a + 30.0 * np.eye(others.size), a.T @ x[:, j])
        np.testing.assert_allclose(b[others, j], ridge, rtol=1e-3, atol=1e-5)
        assert b[j, j] == 0.0
    assert not w[0].any() and not w[:, 0].any()


def test_scores_weigh_recent_titles_more(planted):
    split = leave_one_out(planted.interactions)
    flat = build_model("ease", {"recency_decay": 1.0})
    recent = build_model("ease", {"recency_decay": 0.5})
    flat.fit(split.train)
    recent.fit(split.train)
    hist = np.array([3, 20, 4])
    ctx = [UserContext.anonymous(hist)]
    w = flat.weights.toarray()
    np.testing.assert_allclose(flat.score(ctx)[0, 1:], w[hist].sum(axis=0)[1:], rtol=1e-5)
    expected = (w[3] * 0.25 + w[20] * 0.5 + w[4])[1:]
    np.testing.assert_allclose(recent.score(ctx)[0, 1:], expected, rtol=1e-5, atol=1e-7)
    assert recent.score(ctx)[0, 0] == -np.inf


def test_a_large_catalog_is_learned_over_its_most_watched_titles_and_pruned(planted):
    split = leave_one_out(planted.interactions)
    counts = np.asarray(split.train.matrix().sum(axis=0)).ravel()
    counts[0] = -1
    top = set(np.argsort(-counts, kind="stable")[:10].tolist())
    model = build_model("ease", {"max_items": 10, "neighbours": 3})
    report = model.fit(split.train)
    w = model.weights.toarray()
    assert report.notes["titles_learned"] == 10
    assert set(np.flatnonzero(w.any(axis=1))) <= top  # rows and columns of the 10 only
    assert set(np.flatnonzero(w.any(axis=0))) <= top
    assert (np.count_nonzero(w, axis=1) <= 3).all()
    dense = build_model("ease", {"max_items": 10, "neighbours": 0})
    dense.fit(split.train)
    kept = w != 0
    np.testing.assert_allclose(w[kept], dense.weights.toarray()[kept], rtol=1e-6)
    for option in ({"l2": 0}, {"neighbours": -1}, {"max_items": 0}):
        with pytest.raises(ValueError, match=f"{next(iter(option))} must be"):
            build_model("ease", option)
