"""Validation metrics handed to models as ``FitOptions.validation``.

Models never import :mod:`primetime.eval` (nor does eval import models: a
model is anything with ``items`` and ``score``); whoever fits them (the life
cycle, a test) passes one of these factories, and a model calls it with the
(train, valid) pair it decides to select on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from primetime.data.interactions import Interactions


def ndcg_at_10(
    train: Interactions, valid: Interactions, *, candidates: np.ndarray | None = None
) -> Callable[[Any], float]:
    """Full-ranking NDCG@10 on ``valid`` with ``train`` as each user's history
    (the protocol of EVALUATION.md, as ``primetime benchmark`` reports it); with
    ``candidates`` (item indices), valid targets are ranked among those only (Task C:
    the life cycle binds a split's valid candidates with ``functools.partial``)."""
    from primetime.eval.protocol import EvalSet, evaluate

    evalset = EvalSet.from_parts(train, valid, "valid", candidates=candidates)

    def score(model: Any) -> float:
        return float(evaluate(model, evalset, ks=(10,)).summary()["NDCG@10"])

    return score
