"""Rating prediction (EVALUATION.md, Task B): MAE / RMSE per rated row.

:func:`evaluate_ratings` asks a :class:`RatingModel` for the rated rows of a
split and returns a :class:`RatingResult`, whose bootstrap intervals are over
rating rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from primetime.data.interactions import Interactions
from primetime.eval import metrics as M
from primetime.eval.significance import bootstrap_ci
from primetime.eval.topn import _check_model

log = logging.getLogger(__name__)

__all__ = ["RatingModel", "RatingResult", "evaluate_ratings"]


@runtime_checkable
class RatingModel(Protocol):
    """What :func:`evaluate_ratings` needs from a model."""

    @property
    def name(self) -> str: ...

    def predict_ratings(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """(N,) predicted ratings for (N,) user and item indices."""
        ...


@dataclass(eq=False)
class RatingResult:
    """Per-row outcome of rating prediction (EVALUATION.md, Task B).

    Attributes:
        model: Model name.
        evalset: Name of the rows evaluated ("test").
        user_idx: (N,) user of each rated row.
        item_idx: (N,) item of each rated row.
        pred: (N,) float64 predictions.
        true: (N,) float64 true ratings.
    """

    model: str
    evalset: str
    user_idx: np.ndarray
    item_idx: np.ndarray
    pred: np.ndarray
    true: np.ndarray
    protocol: str = "ratings"

    @property
    def label(self) -> str:
        return self.model

    @property
    def n_rows(self) -> int:
        return int(self.true.size)

    @property
    def abs_errors(self) -> np.ndarray:
        """(N,) absolute error per row."""
        return M.absolute_errors(self.pred, self.true)

    @property
    def sq_errors(self) -> np.ndarray:
        """(N,) squared error per row."""
        return M.squared_errors(self.pred, self.true)

    def summary(self) -> dict[str, float]:
        return {"MAE": M.mae(self.pred, self.true), "RMSE": M.rmse(self.pred, self.true)}

    def ci(
        self, metric: str, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
    ) -> tuple[float, float, float]:
        """``(value, lo, hi)`` bootstrap CI over rating rows.

        RMSE's interval is the square root of the interval of the mean squared
        error (the square root is monotone, so percentiles carry over).
        """
        if metric == "MAE":
            return bootstrap_ci(self.abs_errors, n_boot=n_boot, alpha=alpha, seed=seed)
        if metric == "RMSE":
            m, lo, hi = bootstrap_ci(self.sq_errors, n_boot=n_boot, alpha=alpha, seed=seed)
            return float(np.sqrt(m)), float(np.sqrt(lo)), float(np.sqrt(hi))
        raise KeyError(f"rating metric must be 'MAE' or 'RMSE', got {metric!r}")

    def cis(
        self, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
    ) -> dict[str, tuple[float, float, float]]:
        return {m: self.ci(m, n_boot=n_boot, seed=seed, alpha=alpha) for m in ("MAE", "RMSE")}


def evaluate_ratings(
    model: RatingModel, test: Interactions, *, name: str = "test", batch_size: int = 1 << 16
) -> RatingResult:
    """MAE / RMSE of ``model.predict_ratings`` on the rated rows of ``test``.

    Args:
        model: Anything with ``.name`` and ``.predict_ratings(user_idx, item_idx)``
            taking (N,) index arrays and returning (N,) floats.
        test: Rows to predict; rows without a rating (NaN) are skipped.
        name: Label of the rows ("test").
        batch_size: Rows per ``predict_ratings`` call.

    Raises:
        ValueError: if no row is rated, or the model returns a wrong shape or NaN.
    """
    mname = _check_model(model, "predict_ratings")
    rated = ~np.isnan(test.rating)
    if not rated.any():
        raise ValueError("evaluate_ratings needs rated rows; test has no ratings")
    if not rated.all():
        log.info("evaluate_ratings: skipping %d unrated row(s)", int((~rated).sum()))
    u = test.user_idx[rated].astype(np.int64)
    i = test.item_idx[rated].astype(np.int64)
    true = test.rating[rated].astype(np.float64)
    pred = np.empty(true.size, dtype=np.float64)
    for s in range(0, true.size, batch_size):
        ub, ib = u[s : s + batch_size], i[s : s + batch_size]
        p = np.asarray(model.predict_ratings(ub, ib), dtype=np.float64)
        if p.shape != ub.shape:
            raise ValueError(f"{mname}.predict_ratings returned shape {p.shape} for {ub.size} rows")
        pred[s : s + p.size] = p
    if np.isnan(pred).any():
        raise ValueError(
            f"{mname}.predict_ratings returned {int(np.isnan(pred).sum())} NaN prediction(s)"
        )
    return RatingResult(model=mname, evalset=name, user_idx=u, item_idx=i, pred=pred, true=true)
