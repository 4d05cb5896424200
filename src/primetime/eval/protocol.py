"""The evaluation protocol of EVALUATION.md: full ranking, sampled-100, ratings.

:class:`EvalSet` turns a split into what a model is asked: for every user
with at least one held-out (target) interaction, a :class:`UserContext`
holding the history it may use, the relevant item indices, and the items to
exclude from the ranking (the whole history). :func:`evaluate` asks a model
for scores in batches, ranks **every** catalog item, and returns an
:class:`EvalResult` with per-user values, so that confidence intervals,
paired tests and breakdowns can be computed afterwards.

Any object with a ``name`` and ``score(contexts) -> (B, items.size) float32``
can be evaluated (a :class:`~primetime.models.base.Recommender`, the
synthetic world's oracle, a test double); ``-inf`` in a score row means
"must not recommend".

Ties are broken **pessimistically** for rank metrics: a relevant item's rank
counts every other item with an equal score as ranked above it, so a model
that scores everything the same gets no credit. Top-K lists (coverage,
diversity, novelty, export) break ties by lower item_idx instead, so a list
is well defined; both rules are independent of batching.

The protocol is split by job; this module re-exports it, so
``primetime.eval.protocol`` stays the one import path:

- :mod:`primetime.eval.evalset`: :class:`EvalSet`.
- :mod:`primetime.eval.topn`: full ranking, :func:`evaluate`, :class:`EvalResult`.
- :mod:`primetime.eval.sampled`: :func:`evaluate_sampled`, :func:`sample_negatives`.
- :mod:`primetime.eval.ratings`: :func:`evaluate_ratings`, :class:`RatingResult`.
"""

from primetime.eval.evalset import EvalSet
from primetime.eval.ratings import RatingModel, RatingResult, evaluate_ratings
from primetime.eval.sampled import evaluate_sampled, sample_negatives, sampled_label
from primetime.eval.topn import (
    FULL,
    SEGMENTS,
    EvalResult,
    ScoringModel,
    candidates_label,
    evaluate,
    is_ranking,
    protocol_title,
)

__all__ = [
    "FULL",
    "SEGMENTS",
    "EvalResult",
    "EvalSet",
    "RatingModel",
    "RatingResult",
    "ScoringModel",
    "candidates_label",
    "evaluate",
    "evaluate_ratings",
    "evaluate_sampled",
    "is_ranking",
    "protocol_title",
    "sample_negatives",
    "sampled_label",
]
