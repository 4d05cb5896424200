"""Uncertainty over users: bootstrap confidence intervals and a paired test.

The unit of resampling is the user (EVALUATION.md, step 7): per-user metric
values are resampled with replacement, 1,000 times by default, and the
percentile interval of the resampled means is reported. ``NaN`` values (a
user for whom a metric is undefined, e.g. Diversity of a one-item list) are
left out of every mean.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy import stats

log = logging.getLogger(__name__)

__all__ = ["PerUser", "bootstrap_ci", "bootstrap_ci_many", "paired_test"]

#: Resampled indices held at once (n_boot chunk x n users).
_CHUNK_CELLS = 1 << 24


@runtime_checkable
class PerUser(Protocol):
    """Anything holding per-user metric values keyed by user_idx (an ``EvalResult``)."""

    model: str
    user_idx: np.ndarray

    def values(self, metric: str) -> np.ndarray: ...


def _check_boot(n_boot: int, alpha: float) -> None:
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def bootstrap_ci_many(
    values: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile bootstrap CIs of the means of several per-user columns at once.

    All columns share the same resamples of users, so intervals of different
    metrics (or of two aligned models) come from the same draws. Resampling is
    vectorised: each resample is a vector of per-user counts and the resampled
    means are one matrix product.

    Args:
        values: (n_users, m) float values, NaN = undefined for that user.
        n_boot: Number of resamples.
        alpha: 1 - confidence level (0.05 for 95%).
        seed: Seed of ``numpy.random.default_rng``.

    Returns:
        ``(mean, lo, hi)``, each (m,) float64: the sample mean (NaN ignored) and
        the ``alpha/2`` and ``1 - alpha/2`` quantiles of the resampled means.
        All NaN for a column without any defined value.
    """
    _check_boot(n_boot, alpha)
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"values must be 2-D (users, metrics), got shape {x.shape}")
    n, m = x.shape
    defined = ~np.isnan(x)  # (n, m)
    filled = np.where(defined, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=0) / defined.sum(axis=0)
    if n == 0:
        nan = np.full(m, np.nan)
        return nan, nan.copy(), nan.copy()
    rng = np.random.default_rng(seed)
    boots = np.empty((n_boot, m))
    chunk = max(1, min(n_boot, _CHUNK_CELLS // n))
    defined_f = defined.astype(np.float64)
    for s in range(0, n_boot, chunk):
        c = min(chunk, n_boot - s)
        idx = rng.integers(0, n, size=(c, n))  # (c, n) resampled user positions
        flat = (idx + (np.arange(c) * n)[:, None]).ravel()
        w = np.bincount(flat, minlength=c * n).reshape(c, n).astype(np.float64)  # (c, n) counts
        with np.errstate(invalid="ignore", divide="ignore"):
            boots[s : s + c] = (w @ filled) / (w @ defined_f)  # (c, m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: NaN bounds
        lo, hi = np.nanquantile(boots, [alpha / 2, 1 - alpha / 2], axis=0)  # (m,) each
    lo = np.where(np.isnan(mean), np.nan, lo)
    hi = np.where(np.isnan(mean), np.nan, hi)
    return mean, lo, hi


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """Percentile bootstrap CI of the mean of per-user values.

    Args:
        values: (n_users,) per-user metric values; NaN values are left out.
        n_boot: Number of resamples of users (with replacement).
        alpha: 1 - confidence level (0.05 for a 95% interval).
        seed: Seed of ``numpy.random.default_rng``; same seed, same interval.

    Returns:
        ``(mean, lo, hi)``: the sample mean and the interval bounds; all NaN
        for no defined values; ``(v, v, v)`` for a single user.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values must be 1-D (users,), got shape {x.shape}")
    mean, lo, hi = bootstrap_ci_many(x[:, None], n_boot=n_boot, alpha=alpha, seed=seed)
    return float(mean[0]), float(lo[0]), float(hi[0])


def _per_user(
    x: Any, metric: str, users: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(x, PerUser):
        return np.asarray(x.values(metric), dtype=np.float64), np.asarray(x.user_idx)
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"per-user values must be 1-D, got shape {arr.shape}")
    return arr, None if users is None else np.asarray(users)


def paired_test(
    a: PerUser | np.ndarray,
    b: PerUser | np.ndarray,
    *,
    metric: str = "NDCG@10",
    users_a: np.ndarray | None = None,
    users_b: np.ndarray | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, float | int]:
    """Wilcoxon signed-rank test of per-user values of two models, a minus b.

    Args:
        a: An ``EvalResult`` (its ``metric`` values are used) or (n,) values.
        b: The same for the other model, on the same users.
        metric: Which metric to compare when ``a`` / ``b`` are results.
        users_a: (n,) user_idx of plain-array ``a`` (checked against ``b``'s).
        users_b: (n,) user_idx of plain-array ``b``.
        n_boot: Resamples for the CI of the mean difference.
        alpha: 1 - confidence level of that CI.
        seed: Bootstrap seed.

    Returns:
        ``statistic`` and ``p_value`` of ``scipy.stats.wilcoxon`` (zero
        differences dropped, two-sided); ``mean_diff`` (mean of a - b) with
        ``ci_low`` / ``ci_high`` (bootstrap over users); ``n_users`` (pairs
        with both values defined) and ``n_nonzero``. When every difference is
        zero (e.g. identical inputs) the test is undefined: ``statistic`` 0.0
        and ``p_value`` 1.0.

    Raises:
        AssertionError: if the two sides are not aligned by user_idx.
        ValueError: if the value arrays differ in length.
    """
    va, ua = _per_user(a, metric, users_a)
    vb, ub = _per_user(b, metric, users_b)
    if va.shape != vb.shape:
        raise ValueError(f"a has {va.size} users, b has {vb.size}; compare on the same users")
    if ua is not None and ub is not None:
        assert np.array_equal(ua, ub), "paired_test: a and b are not aligned by user_idx"
    keep = ~(np.isnan(va) | np.isnan(vb))
    d = va[keep] - vb[keep]
    n_nonzero = int(np.count_nonzero(d))
    mean_diff, lo, hi = bootstrap_ci(d, n_boot=n_boot, alpha=alpha, seed=seed)
    if n_nonzero == 0:
        stat, p = 0.0, 1.0
    else:
        res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        stat, p = float(res.statistic), float(res.pvalue)
    return {
        "statistic": stat,
        "p_value": p,
        "mean_diff": mean_diff,
        "ci_low": lo,
        "ci_high": hi,
        "n_users": int(d.size),
        "n_nonzero": n_nonzero,
    }
