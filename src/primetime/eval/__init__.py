"""Evaluation harness: metrics, the EVALUATION.md protocol, significance, reports.

Modules, by job:

- ``metrics``: per-user and catalog metrics (HR, NDCG, MRR, coverage, ...).
- ``ranking``: pessimistic ranks and top-K lists of score matrices.
- ``protocol``: the protocol's one import path, re-exporting
  ``evalset`` (:class:`EvalSet`), ``topn`` (full ranking, :func:`evaluate`,
  :class:`EvalResult`), ``sampled`` (:func:`evaluate_sampled`) and
  ``ratings`` (:func:`evaluate_ratings`, :class:`RatingResult`).
- ``significance``: bootstrap intervals and paired tests.
- ``report``: :class:`Report` (Markdown, JSON, plots); ``tables``: metric
  tables and JSON of results (:func:`rich_table`, :func:`to_contract_json`);
  ``stamp``: :func:`make_stamp`, the facts every report states; ``plots``: PNGs.
"""

from primetime.eval.protocol import (
    FULL,
    SEGMENTS,
    EvalResult,
    EvalSet,
    RatingModel,
    RatingResult,
    ScoringModel,
    evaluate,
    evaluate_ratings,
    evaluate_sampled,
    sample_negatives,
)
from primetime.eval.report import Report, make_stamp, rich_table, to_contract_json
from primetime.eval.significance import bootstrap_ci, bootstrap_ci_many, paired_test

__all__ = [
    "FULL",
    "SEGMENTS",
    "EvalResult",
    "EvalSet",
    "RatingModel",
    "RatingResult",
    "Report",
    "ScoringModel",
    "bootstrap_ci",
    "bootstrap_ci_many",
    "evaluate",
    "evaluate_ratings",
    "evaluate_sampled",
    "make_stamp",
    "paired_test",
    "rich_table",
    "sample_negatives",
    "to_contract_json",
]
