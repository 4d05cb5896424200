"""The fusion's former request path, which ranks every title of every member.

Kept as the reference that :func:`primetime.models.ensemble.candidates_and_features`
is tested against (same candidates, same features, so the same ranker output) and
that ``benchmarks/bench_ensemble.py`` times in the same run. Each member's full
ranking is a stable argsort over the catalog (4.8 ms per member and user at 27,000
titles on one core); the non-candidates are ordered by the members' mean log rank.
Not used to serve.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from primetime.models.ensemble import (
    Candidates,
    EnsembleRecommender,
    TitleStats,
    _consensus_features,
    _context_features,
    _member_features,
    _unseen_scores,
    _z_moments,
    lowest_candidate,
    ranker_scores,
)
from primetime.types import UserContext


def full_ranks(s: np.ndarray) -> np.ndarray:
    """(B, V) 0-based rank of each title in its row, best first (ties by lower index)."""
    order = np.argsort(-s, axis=1, kind="stable")  # (B, V)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(s.shape[1])[None, :], axis=1)
    return ranks


def reference_candidates(
    member_scores: Sequence[np.ndarray],
    contexts: Sequence[UserContext],
    stats: TitleStats,
    top: int,
    consensus: bool = False,
) -> Candidates:
    """As :func:`~primetime.models.ensemble.candidates_and_features`, from full rankings;
    ``fallback`` is minus the members' mean log rank (B, V), higher is better."""
    B, V = member_scores[0].shape
    mask = np.zeros((B, V), dtype=bool)
    ranks = []
    for s in member_scores:
        r = full_ranks(s)  # (B, V)
        mask |= (r < top) & np.isfinite(s)
        ranks.append(r)
    rows, cols = np.nonzero(mask)  # (N,), (N,)
    per_member: list[np.ndarray] = []
    for s, r in zip(member_scores, ranks, strict=True):
        per_member += _member_features(s, _z_moments(s), r[rows, cols], rows, cols)
    if consensus:
        per_member += _consensus_features(per_member)
    features = np.column_stack(per_member + _context_features(contexts, stats, rows, cols))
    fallback = -np.mean([np.log1p(r) for r in ranks], axis=0)  # (B, V)
    return Candidates(rows=rows, cols=cols, features=features.astype(np.float32), fallback=fallback)


def reference_fused_scores(
    cands: Candidates, predicted: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """(B, V) float32: the ranker's scores on candidates, the others in
    ``(lowest candidate - 2, lowest candidate - 1]`` by mean log rank, padding -inf."""
    B, V = shape
    floor = lowest_candidate(cands, predicted, B)
    out = floor[:, None] - 1.0 + cands.fallback / max(np.log1p(V), 1.0)  # (B, V) float64
    out[cands.rows, cands.cols] = predicted
    out[:, 0] = -np.inf
    return out.astype(np.float32)


def reference_score(model: EnsembleRecommender, contexts: Sequence[UserContext]) -> np.ndarray:
    """(B, V) scores of a fitted, bound ensemble by the former full-ranking path."""
    if model.booster is None or model.stats is None or model.items is None:
        raise RuntimeError(f"{model.name} is not fitted; call fit() or load() first")
    scores = [_unseen_scores(m, contexts) for m in model.member_models().values()]
    cfg = model.config
    cands = reference_candidates(scores, contexts, model.stats, cfg.candidates, cfg.consensus)
    predicted = ranker_scores(model.booster, cands)  # (N,)
    return reference_fused_scores(cands, predicted, (len(contexts), model.items.size))
