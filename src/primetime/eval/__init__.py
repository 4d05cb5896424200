"""Evaluation harness: metrics, the EVALUATION.md protocol, significance, reports."""

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
