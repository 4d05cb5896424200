"""Turning a batch of score rows into ranks and top-K lists (numpy, vectorised).

Scores are float32 ``(B, V)`` rows indexed by item_idx, where ``V`` is
``items.size`` (padding column 0 included). ``-inf`` means "cannot be
recommended": padding, items excluded by the protocol (the user's history),
items the model forbids. Those never appear in a top-K list and never
outrank anything.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["exclude_items", "pessimistic_ranks", "topk_lists"]

#: Above this many relevant items per row, ranks come from a sort instead of
#: one comparison pass per relevant item (same result, O(V log V) per row).
_COMPARE_MAX_RELEVANT = 8


def exclude_items(scores: np.ndarray, indptr: np.ndarray, items: np.ndarray) -> None:
    """Set excluded items to ``-inf`` in place, CSR style.

    Args:
        scores: (B, V) float array, modified in place.
        indptr: (B + 1,) offsets into ``items``; row ``b`` excludes
            ``items[indptr[b]:indptr[b + 1]]``.
        items: (E,) item indices to exclude.
    """
    counts = np.diff(indptr)
    if counts.size != scores.shape[0]:
        raise ValueError(f"indptr describes {counts.size} rows, scores have {scores.shape[0]}")
    rows = np.repeat(np.arange(counts.size), counts)  # (E,)
    scores[rows, np.asarray(items, dtype=np.int64)] = -np.inf


def pessimistic_ranks(
    scores: np.ndarray, relevant: np.ndarray, valid: np.ndarray | None = None
) -> np.ndarray:
    """1-based rank of each relevant item, ties broken against it.

    ``rank = 1 + #(items scoring strictly higher) + #(other items scoring
    equally)``, i.e. the number of items scoring at least as high, itself
    included. A model that gives every item the same score therefore ranks
    every relevant item last and earns no credit from ties. Other relevant
    items count like any item (so two relevant items at the top get ranks 1
    and 2). A relevant item scoring ``-inf`` cannot be ranked: its rank is
    ``+inf`` (a miss at every cut-off).

    Args:
        scores: (B, V) float scores with excluded items already ``-inf``;
            must hold no NaN.
        relevant: (B, R) column indices into ``scores`` of the relevant items.
        valid: (B, R) bool, False where ``relevant`` is padding. Defaults to
            ``relevant > 0`` (item_idx 0 is padding).

    Returns:
        (B, R) float64 ranks; NaN at padding, ``+inf`` for unrankable items.
    """
    s = np.asarray(scores)
    rel = np.asarray(relevant, dtype=np.int64)
    if s.ndim != 2 or rel.ndim != 2 or rel.shape[0] != s.shape[0]:
        raise ValueError(f"scores (B, V) and relevant (B, R) disagree: {s.shape} vs {rel.shape}")
    ok = rel > 0 if valid is None else np.asarray(valid, dtype=bool)
    b, r = rel.shape
    t = np.take_along_axis(s, np.where(ok, rel, 0), axis=1)  # (B, R) relevant scores
    if r <= _COMPARE_MAX_RELEVANT:
        counts = np.empty((b, r), dtype=np.int64)
        for j in range(r):  # at most a few passes over (B, V)
            counts[:, j] = (s >= t[:, j : j + 1]).sum(axis=1)
    else:
        # batched searchsorted (numpy's is 1-D only)
        srt = torch.sort(torch.from_numpy(np.ascontiguousarray(s)), dim=1).values  # (B, V) asc
        # per row: number of scores >= t is V minus the number strictly below t
        below = torch.searchsorted(srt, torch.from_numpy(np.ascontiguousarray(t)), side="left")
        counts = s.shape[1] - below.numpy()  # (B, R)
    ranks = counts.astype(np.float64)
    ranks[np.isneginf(t)] = np.inf
    ranks[~ok] = np.nan
    return ranks


def topk_lists(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` items per row, best first, ties broken by lower item_idx.

    The tie-break makes lists independent of how users are batched. Items
    scoring ``-inf`` are never listed: a row with fewer than ``k`` finite
    items is padded with item 0 and value ``-inf``.

    Args:
        scores: (B, V) float scores, no NaN.
        k: List length, >= 1.

    Returns:
        ``(items, values)``: (B, k) int32 item indices and (B, k) float32 scores.
    """
    s = np.asarray(scores)
    b, v = s.shape
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    kk = min(k, v)
    # torch.topk is multi-threaded and several times faster than np.argpartition
    top = torch.topk(torch.from_numpy(np.ascontiguousarray(s)), kk, dim=1, sorted=False)
    part = top.indices.numpy().astype(np.int64)  # (B, kk) unordered top set
    vals = top.values.numpy()
    thr = vals.min(axis=1)  # (B,) score of the kk-th best
    # Rows where the kk-th score is tied with items left outside the top set:
    # topk picked an arbitrary subset of the tie; take the lowest idx instead.
    n_eq_in = (vals == thr[:, None]).sum(axis=1)
    n_eq_all = (s == thr[:, None]).sum(axis=1)
    fix = np.flatnonzero((n_eq_all > n_eq_in) & ~np.isneginf(thr))
    if fix.size:
        sf = s[fix]  # (F, V)
        above = sf > thr[fix, None]
        tied = sf == thr[fix, None]
        need = kk - above.sum(axis=1)  # (F,)
        take = above | (tied & (np.cumsum(tied, axis=1) <= need[:, None]))
        _, cols = np.nonzero(take)  # row-major: kk columns per row, ascending idx
        part[fix] = cols.reshape(fix.size, kk)
    part.sort(axis=1)  # ascending idx, so the stable sort below breaks ties by idx
    vals = np.take_along_axis(s, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    items = np.take_along_axis(part, order, axis=1).astype(np.int32)
    vals = np.take_along_axis(vals, order, axis=1).astype(np.float32)
    dead = np.isneginf(vals)
    items[dead] = 0
    if kk < k:  # fewer columns than k: pad
        items = np.pad(items, ((0, 0), (0, k - kk)))
        vals = np.pad(vals, ((0, 0), (0, k - kk)), constant_values=-np.inf)
    return items, vals
