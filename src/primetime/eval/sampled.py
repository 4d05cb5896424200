"""Sampled evaluation (sampled-100), for comparison with papers only.

Each relevant item is ranked among the user's relevant items plus sampled
items the user has not interacted with; results are always labelled
``"sampled-<n>"`` and never mixed with full ranking.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from primetime.eval.evalset import EvalSet, _member, _sorted_unique
from primetime.eval.topn import (
    EvalResult,
    ScoringModel,
    _check_ks,
    _check_model,
    _check_vocab,
    _nanmean,
    _rank_metrics,
    _scores,
)
from primetime.ranking import pessimistic_ranks

log = logging.getLogger(__name__)

__all__ = ["evaluate_sampled", "sample_negatives", "sampled_label"]


def sampled_label(n_negatives: int) -> str:
    """Protocol label of a sampled evaluation, e.g. ``"sampled-100"``."""
    return f"sampled-{n_negatives}"


def _first_distinct(cand: np.ndarray) -> np.ndarray:
    """(n, m) bool: True where a row's value did not occur earlier in that row."""
    order = np.argsort(cand, axis=1, kind="stable")  # equal values keep draw order
    srt = np.take_along_axis(cand, order, axis=1)
    dup_sorted = np.zeros(cand.shape, dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    first = np.empty(cand.shape, dtype=bool)
    np.put_along_axis(first, order, ~dup_sorted, axis=1)
    return first


def sample_negatives(evalset: EvalSet, n_negatives: int, seed: int) -> np.ndarray:
    """Per user, ``n_negatives`` distinct items it has not interacted with.

    "Interacted" = the user's history or relevant items in ``evalset``.
    Sampling is uniform without replacement, drawn for all users at once from
    ``numpy.random.default_rng(seed)``, so it does not depend on batching.

    Returns:
        (U, n_negatives) int64 item_idx; a user with fewer available items
        gets all of them, padded with 0.
    """
    if n_negatives < 1:
        raise ValueError(f"n_negatives must be >= 1, got {n_negatives}")
    rng = np.random.default_rng(seed)
    n_users, n_items, n_cols = len(evalset), len(evalset.items), evalset.items.size
    hseg = np.repeat(np.arange(n_users), evalset.n_history)
    rseg = np.repeat(np.arange(n_users), evalset.n_relevant)
    seen = _sorted_unique(
        np.concatenate([hseg * n_cols + evalset.hist_items, rseg * n_cols + evalset.rel_items])
    )  # sorted keys user_pos * n_cols + item_idx
    n_seen = np.bincount(seen // n_cols, minlength=n_users)
    out = np.zeros((n_users, n_negatives), dtype=np.int64)
    pending = np.arange(n_users)
    for factor in (2, 8):  # vectorised rejection rounds; stragglers handled below
        if not pending.size:
            break
        m = factor * n_negatives
        cand = rng.integers(1, n_items + 1, size=(pending.size, m))  # (P, m)
        key = pending[:, None] * n_cols + cand
        ok = ~_member(seen, key) & _first_distinct(cand)
        enough = ok.sum(axis=1) >= n_negatives
        take = ok[enough] & (np.cumsum(ok[enough], axis=1) <= n_negatives)
        out[pending[enough]] = cand[enough][take].reshape(-1, n_negatives)
        pending = pending[~enough]
    for i in pending:  # users who have seen most of the catalog, or tiny catalogs
        mine = seen[(seen >= i * n_cols) & (seen < (i + 1) * n_cols)] - i * n_cols
        avail = np.setdiff1d(np.arange(1, n_items + 1), mine)
        pick = rng.choice(avail, size=min(n_negatives, avail.size), replace=False)
        out[i, : pick.size] = pick
    short = int((n_items - n_seen < n_negatives).sum())
    if short:
        log.warning(
            "%d user(s) have fewer than %d unseen items; they get fewer negatives",
            short,
            n_negatives,
        )
    return out


def evaluate_sampled(
    model: ScoringModel,
    evalset: EvalSet,
    *,
    n_negatives: int = 100,
    seed: int = 42,
    ks: Sequence[int] = (5, 10, 20),
    batch_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Sampled evaluation, for comparison with papers only (always labelled).

    Each relevant item is ranked among the user's relevant items plus
    ``n_negatives`` items the user has not interacted with (see
    :func:`sample_negatives`), with pessimistic ties. Only HR, NDCG and MRR
    are computed; the result's ``protocol`` is ``"sampled-<n>"`` (e.g.
    ``"sampled-100"``) and its ``label`` says so.
    """
    name = _check_model(model, "score")
    _check_vocab(model, name, evalset)
    ks = _check_ks(ks)
    if evalset.candidates is not None:
        raise ValueError(
            f"eval set {evalset.name} ranks among {evalset.candidates.size} candidates; "
            "the sampled variant is for full-ranking eval sets only"
        )
    negatives = sample_negatives(evalset, n_negatives, seed)  # (U, n)
    n_cols = evalset.items.size
    t0 = time.perf_counter()
    t_score = 0.0
    ranks = np.empty(evalset.rel_items.size, dtype=np.float64)
    for start, stop in evalset.batches(batch_size):
        contexts = evalset.contexts(start, stop)
        ts = time.perf_counter()
        scores = _scores(model, contexts, n_cols, name)
        t_score += time.perf_counter() - ts
        evalset.exclude(scores, start, stop)
        rel = evalset.relevant_padded(start, stop)  # (B, R)
        cand = np.concatenate([rel, negatives[start:stop]], axis=1)  # (B, R + n); 0 = padding
        sub = np.take_along_axis(scores, cand, axis=1)  # column 0 is -inf: padding never counts
        cols = np.broadcast_to(np.arange(rel.shape[1]), rel.shape)
        r = pessimistic_ranks(sub, cols, valid=rel > 0)
        ranks[evalset.rel_indptr[start] : evalset.rel_indptr[stop]] = r[rel > 0]
        if progress is not None:
            progress(stop, len(evalset))
    per_user = _rank_metrics(ranks, evalset.rel_indptr, ks)
    aggregates = {m: _nanmean(v) for m, v in per_user.items()}
    label = sampled_label(n_negatives)
    return EvalResult(
        model=name,
        evalset=evalset.name,
        protocol=label,
        ks=ks,
        user_idx=evalset.user_idx.copy(),
        n_history=evalset.n_history,
        rank_offsets=evalset.rel_indptr.copy(),
        ranks=ranks,
        relevant=evalset.rel_items.copy(),
        per_user=per_user,
        aggregates=aggregates,
        topk=None,
        users=evalset.users,
        items=evalset.items,
        seconds=time.perf_counter() - t0,
        scoring_seconds=t_score,
        notes={"n_negatives": n_negatives, "seed": seed, "tie_break": "pessimistic"},
    )
