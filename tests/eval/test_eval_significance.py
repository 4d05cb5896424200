"""Bootstrap intervals and the paired Wilcoxon test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from primetime.eval import EvalSet, bootstrap_ci, bootstrap_ci_many, evaluate, paired_test


def test_bootstrap_contains_mean_and_is_reproducible() -> None:
    x = np.random.default_rng(0).random(200)
    mean, lo, hi = bootstrap_ci(x, n_boot=500, seed=3)
    assert mean == pytest.approx(x.mean())
    assert lo < mean < hi
    assert (mean, lo, hi) == bootstrap_ci(x, n_boot=500, seed=3)
    assert (lo, hi) != bootstrap_ci(x, n_boot=500, seed=4)[1:]


def test_bootstrap_narrows_with_more_users() -> None:
    rng = np.random.default_rng(1)
    small = (rng.random(100) < 0.3).astype(float)
    large = (rng.random(10_000) < 0.3).astype(float)
    _, lo_s, hi_s = bootstrap_ci(small)
    _, lo_l, hi_l = bootstrap_ci(large)
    assert hi_l - lo_l < (hi_s - lo_s) / 5  # ~ 1 / sqrt(100) of the width
    assert lo_l < large.mean() < hi_l


def test_bootstrap_edge_cases() -> None:
    assert bootstrap_ci(np.full(10, 0.25)) == (0.25, 0.25, 0.25)
    assert bootstrap_ci(np.array([0.7])) == pytest.approx((0.7, 0.7, 0.7))
    assert all(math.isnan(v) for v in bootstrap_ci(np.zeros(0)))
    assert all(math.isnan(v) for v in bootstrap_ci(np.full(4, np.nan)))
    m, lo, hi = bootstrap_ci(np.array([1.0, np.nan, 3.0]))  # NaN users are left out
    assert m == 2.0 and 1.0 <= lo <= hi <= 3.0
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(np.ones(3), n_boot=0)
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(np.ones(3), alpha=1.5)


def test_many_columns_share_resamples() -> None:
    rng = np.random.default_rng(2)
    x = rng.random((300, 3))
    mean, lo, hi = bootstrap_ci_many(x, n_boot=400, seed=9)
    for j in range(3):
        assert (mean[j], lo[j], hi[j]) == pytest.approx(bootstrap_ci(x[:, j], n_boot=400, seed=9))


def test_paired_identical_inputs_give_p_one() -> None:
    a = np.random.default_rng(0).random(50)
    t = paired_test(a, a.copy())
    assert t["p_value"] == 1.0
    assert t["statistic"] == 0.0
    assert t["mean_diff"] == 0.0
    assert t["n_nonzero"] == 0


def test_paired_clear_difference() -> None:
    rng = np.random.default_rng(4)
    b = rng.random(200)
    a = b + 0.1 + 0.01 * rng.standard_normal(200)
    t = paired_test(a, b)
    assert t["p_value"] < 1e-10
    assert t["ci_low"] > 0 and t["mean_diff"] == pytest.approx(np.mean(a - b))
    assert t["n_users"] == 200


def test_paired_checks_user_alignment(split, fakes) -> None:
    es = EvalSet.for_test(split)
    r1 = evaluate(fakes.ConstantModel(9), es, ks=(10,))
    r2 = evaluate(fakes.HashModel(9), es, ks=(10,))
    t = paired_test(r1, r2, metric="NDCG@10")
    assert t["n_users"] == len(es)
    r2.user_idx = r2.user_idx[::-1].copy()
    with pytest.raises(AssertionError, match="aligned"):
        paired_test(r1, r2)
    with pytest.raises(AssertionError, match="aligned"):
        paired_test(
            np.ones(3), np.ones(3), users_a=np.array([1, 2, 3]), users_b=np.array([1, 2, 4])
        )
    with pytest.raises(ValueError, match="same users"):
        paired_test(np.ones(3), np.ones(4))
