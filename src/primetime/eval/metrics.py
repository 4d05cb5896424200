"""Recommendation metrics as pure, vectorised numpy functions.

Rank metrics take the **1-based rank** of every relevant item of every user,
as produced by :func:`primetime.ranking.pessimistic_ranks`. Three
layouts are accepted:

* a 1-D array ``(U,)`` and ``offsets=None``: exactly one relevant item per
  user (leave-one-out);
* a 2-D array ``(U, R)`` padded with ``NaN``: up to ``R`` relevant items per
  user, ``NaN`` marking "no item here";
* a flat 1-D array ``(T,)`` plus ``offsets`` ``(U + 1,)``: user ``u``'s ranks
  are ``ranks[offsets[u]:offsets[u + 1]]`` (CSR style, no padding cost).

A rank of ``+inf`` means the relevant item could not be ranked (its score was
``-inf``, e.g. it is in the user's history): it is a miss at every cut-off but
still counts as relevant (it enters the ideal DCG). A user with no relevant
item at all scores 0 on every rank metric; the evaluation protocol never
produces one.

List metrics (coverage, diversity, novelty) take top-K lists ``(U, K_max)``
of item indices, best first, where item index 0 is padding (a list shorter
than ``K_max`` because the user had fewer rankable items).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "absolute_errors",
    "coverage",
    "diversity",
    "hit_rate",
    "mae",
    "mrr",
    "ndcg",
    "novelty",
    "rmse",
    "segments",
    "self_information",
    "squared_errors",
]


# --------------------------------------------------------------- layouts
def segments(ranks: np.ndarray, offsets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normalise any accepted rank layout to flat ranks plus offsets.

    Args:
        ranks: (U,), (U, R) NaN-padded, or flat (T,) with ``offsets``.
        offsets: (U + 1,) non-decreasing, starting at 0 and ending at T, or None.

    Returns:
        ``(flat, offsets)``: flat (T,) float64 ranks without padding and
        (U + 1,) int64 offsets.

    Raises:
        ValueError: on a bad shape, bad offsets, or a rank below 1.
    """
    r = np.asarray(ranks, dtype=np.float64)
    if offsets is not None:
        if r.ndim != 1:
            raise ValueError(f"ranks must be 1-D when offsets are given, got shape {r.shape}")
        off = np.asarray(offsets, dtype=np.int64)
        if off.ndim != 1 or off.size < 1 or off[0] != 0 or off[-1] != r.size:
            raise ValueError(f"offsets must be 1-D, start at 0 and end at {r.size}")
        if np.any(np.diff(off) < 0):
            raise ValueError("offsets must be non-decreasing")
        flat = r
    elif r.ndim == 1:
        flat = r
        off = np.arange(r.size + 1, dtype=np.int64)
    elif r.ndim == 2:
        keep = ~np.isnan(r)  # (U, R)
        flat = r[keep]
        off = np.zeros(r.shape[0] + 1, dtype=np.int64)
        np.cumsum(keep.sum(axis=1), out=off[1:])
    else:
        raise ValueError(f"ranks must be 1-D or 2-D, got shape {r.shape}")
    if np.isnan(flat).any():
        raise ValueError("ranks hold NaN outside the padding of a 2-D array")
    if flat.size and flat.min() < 1:
        raise ValueError(f"ranks are 1-based; got a rank of {flat.min()}")
    return flat, off


def _segment_min(flat: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Minimum per segment, (U,); ``+inf`` for an empty segment."""
    counts = np.diff(off)
    out = np.full(counts.size, np.inf)
    nonempty = counts > 0
    if nonempty.any():
        # reduceat over the starts of non-empty segments only: empty segments
        # have zero length, so each reduction still stops at the next start.
        out[nonempty] = np.minimum.reduceat(flat, off[:-1][nonempty])
    return out


def _segment_sum(values: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Sum per segment, (U,); 0 for an empty segment."""
    counts = np.diff(off)
    seg = np.repeat(np.arange(counts.size), counts)  # (T,) user position of each value
    return np.bincount(seg, weights=values, minlength=counts.size).astype(np.float64)


def _check_k(k: int) -> int:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


# ---------------------------------------------------------- rank metrics
def hit_rate(ranks: np.ndarray, k: int, offsets: np.ndarray | None = None) -> np.ndarray:
    """HR@K per user: 1 if any relevant item has rank <= K, else 0.

    Args:
        ranks: Ranks of relevant items (see the module docstring for layouts).
        k: Cut-off, >= 1. A rank exactly K is a hit; K + 1 is not.
        offsets: (U + 1,) segment offsets for the flat layout, or None.

    Returns:
        (U,) float64 in {0, 1}.
    """
    k = _check_k(k)
    flat, off = segments(ranks, offsets)
    return (_segment_min(flat, off) <= k).astype(np.float64)


def mrr(ranks: np.ndarray, k: int, offsets: np.ndarray | None = None) -> np.ndarray:
    """MRR@K per user: 1 / rank of the first (best-ranked) relevant item, 0 beyond K.

    Returns:
        (U,) float64 in [0, 1].
    """
    k = _check_k(k)
    flat, off = segments(ranks, offsets)
    best = _segment_min(flat, off)  # (U,)
    return np.where(best <= k, 1.0 / best, 0.0)


def _ideal_dcg(n_relevant: np.ndarray, k: int) -> np.ndarray:
    """IDCG@K for each user's count of relevant items, (U,)."""
    gains = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])  # (k + 1,)
    return gains[np.minimum(n_relevant, k)]


def ndcg(ranks: np.ndarray, k: int, offsets: np.ndarray | None = None) -> np.ndarray:
    """NDCG@K per user with binary relevance and a log2 discount.

    ``DCG = sum over relevant items with rank r <= K of 1 / log2(r + 1)``;
    it is divided by the ideal DCG of ``min(n_relevant, K)`` items at ranks
    1, 2, .... With one relevant item this is ``1 / log2(r + 1)`` (1.0 at rank
    1). Unrankable (``+inf``) items count in ``n_relevant``.

    Returns:
        (U,) float64 in [0, 1]; 0 for a user without relevant items.
    """
    k = _check_k(k)
    flat, off = segments(ranks, offsets)
    with np.errstate(divide="ignore"):
        gain = np.where(flat <= k, 1.0 / np.log2(flat + 1.0), 0.0)  # (T,)
    dcg = _segment_sum(gain, off)
    idcg = _ideal_dcg(np.diff(off), k)
    out = np.zeros_like(dcg)
    np.divide(dcg, idcg, out=out, where=idcg > 0)
    return out


# ---------------------------------------------------------- list metrics
def _lists(topk: np.ndarray, k: int) -> np.ndarray:
    k = _check_k(k)
    lists = np.asarray(topk)
    if lists.ndim != 2:
        raise ValueError(f"topk must be 2-D (users, K), got shape {lists.shape}")
    if lists.shape[1] < k and lists.shape[0]:
        raise ValueError(f"topk holds {lists.shape[1]} items per user, fewer than k={k}")
    return lists[:, :k].astype(np.int64, copy=False)


def coverage(topk: np.ndarray, k: int, n_items: int) -> float:
    """Coverage@K: share of the catalog in at least one user's top-K.

    Args:
        topk: (U, K_max) item indices, best first, 0 = padding.
        k: Cut-off, <= K_max.
        n_items: Number of real items (the vocabulary length, padding excluded).

    Returns:
        A float in [0, 1]; 0.0 when there are no users.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    lists = _lists(topk, k)
    seen = np.zeros(n_items + 1, dtype=bool)
    seen[lists.ravel()] = True
    seen[0] = False  # padding is not an item
    return float(seen.sum() / n_items)


def diversity(topk: np.ndarray, k: int, genres: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """Diversity@K per user: mean pairwise ``1 - Jaccard`` of genre sets in the top-K.

    Items without any genre (and padding, item 0) carry no information about
    similarity, so every pair involving one is left out; "unknown" is not
    treated as "different". A user whose list holds fewer than two items with
    genres gets ``NaN`` (averaged with ``nanmean`` by the protocol).

    Args:
        topk: (U, K_max) item indices, best first, 0 = padding.
        k: Cut-off, <= K_max.
        genres: (items.size, G) multi-hot genre matrix indexed by item_idx
            (row 0, padding, all zero), e.g. ``Catalog.genre_matrix()[0]``.
        chunk: Users processed at once (bounds memory to chunk * K * K).

    Returns:
        (U,) float64 in [0, 1], or NaN.
    """
    lists = _lists(topk, k)
    g = np.asarray(genres) > 0  # (V, G)
    if g.ndim != 2:
        raise ValueError(f"genres must be 2-D (items.size, G), got shape {g.shape}")
    if lists.size and lists.max() >= g.shape[0]:
        raise ValueError(f"topk holds item_idx {lists.max()} beyond genres' {g.shape[0]} rows")
    gf = g.astype(np.float32)
    sizes_all = g.sum(axis=1).astype(np.float32)  # (V,)
    n_users, kk = lists.shape
    out = np.full(n_users, np.nan)
    upper = np.triu(np.ones((kk, kk), dtype=bool), k=1)  # (K, K) pairs i < j
    for s in range(0, n_users, chunk):
        lst = lists[s : s + chunk]  # (b, K)
        m = gf[lst]  # (b, K, G)
        inter = m @ m.transpose(0, 2, 1)  # (b, K, K)
        size = sizes_all[lst]  # (b, K)
        union = size[:, :, None] + size[:, None, :] - inter  # (b, K, K)
        valid = (size[:, :, None] > 0) & (size[:, None, :] > 0) & upper  # (b, K, K)
        dis = np.zeros_like(inter)
        np.divide(union - inter, union, out=dis, where=valid)
        n_pairs = valid.sum(axis=(1, 2))  # (b,)
        total = dis.sum(axis=(1, 2), where=valid)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s : s + chunk] = np.where(n_pairs > 0, total / n_pairs, np.nan)
    return out


def self_information(item_counts: np.ndarray) -> np.ndarray:
    """Self-information ``-log2 p(i)`` of every item from its training popularity.

    ``p(i)`` is the item's share of training interactions with add-one
    (Laplace) smoothing, ``(count_i + 1) / (N + n_items)``, so an item never
    seen in training gets a finite, maximal value ``log2(N + n_items)`` and
    the shares still sum to 1 over the catalog.

    Args:
        item_counts: (items.size,) interactions per item_idx in train; entry 0
            (padding) is ignored.

    Returns:
        (items.size,) float64 bits; entry 0 is NaN.
    """
    c = np.asarray(item_counts, dtype=np.float64)
    if c.ndim != 1 or c.size < 2:
        raise ValueError(f"item_counts must be 1-D with padding at 0, got shape {c.shape}")
    if (c[1:] < 0).any():
        raise ValueError("item_counts must be non-negative")
    n_items = c.size - 1
    p = (c + 1.0) / (c[1:].sum() + n_items)
    info = -np.log2(p)
    info[0] = np.nan
    return info


def novelty(topk: np.ndarray, k: int, item_counts: np.ndarray) -> np.ndarray:
    """Novelty@K per user: mean self-information of the items in the top-K.

    See :func:`self_information` for the smoothing. Padding entries (item 0)
    are skipped; an empty list gets NaN.

    Args:
        topk: (U, K_max) item indices, best first, 0 = padding.
        k: Cut-off.
        item_counts: (items.size,) training interactions per item_idx.

    Returns:
        (U,) float64 bits, or NaN.
    """
    lists = _lists(topk, k)
    info = self_information(item_counts)
    if lists.size and lists.max() >= info.size:
        raise ValueError(f"topk holds item_idx {lists.max()} beyond item_counts' {info.size}")
    vals = info[lists]  # (U, K), NaN at padding
    n = (lists > 0).sum(axis=1)
    total = np.where(lists > 0, vals, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan)


# -------------------------------------------------------- rating metrics
def _pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(f"pred {p.shape} and true {t.shape} must be 1-D of equal length")
    return p, t


def absolute_errors(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """``|pred - true|`` per row, (N,) float64."""
    p, t = _pair(pred, true)
    return np.abs(p - t)


def squared_errors(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """``(pred - true)^2`` per row, (N,) float64."""
    p, t = _pair(pred, true)
    return (p - t) ** 2


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute error over rows; NaN for no rows."""
    e = absolute_errors(pred, true)
    return float(e.mean()) if e.size else float("nan")


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error over rows; NaN for no rows."""
    e = squared_errors(pred, true)
    return float(np.sqrt(e.mean())) if e.size else float("nan")
