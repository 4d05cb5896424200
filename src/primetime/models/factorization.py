"""Implicit-feedback matrix factorisation via the ``implicit`` library: ALS and BPR.

New users are folded in from their history, so a user is their history:
ALS solves the user's least-squares step against the fixed item factors
(``recalculate_user``), exactly the half-step training ends with; BPR has no
closed form, so a user is folded in by BPR's own SGD updates on the user
vector alone (a ridge fold-in was measured and ranks far worse: valid
NDCG@10 0.038 on ml-100k).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from threadpoolctl import ThreadpoolController

from primetime.artifacts import Bundle
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.models.base import FitOptions, FitReport, Recommender, history_matrix, mask_padding
from primetime.types import UserContext

log = logging.getLogger(__name__)

_THREADPOOLS: ThreadpoolController | None = None


def _one_blas_thread() -> Any:
    """A context with BLAS limited to one thread. The controller is built once:
    ``threadpool_limits`` scans every loaded library on each call, which measured
    17.5 ms a call on a loaded 2-core machine (0.02 ms through a kept controller),
    more than the whole fold-in of a user."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class ALSConfig:
    """Attributes:
    factors: Latent dimensions.
    regularization: L2 weight (implicit's lambda).
    alpha: Confidence scale: c = 1 + alpha * r (Hu, Koren & Volinsky 2008).
    iterations: Alternating sweeps.
    seed: Initialisation seed.
    """

    factors: int = 32
    regularization: float = 0.05
    alpha: float = 1.0
    iterations: int = 15
    seed: int = 42

    def __post_init__(self) -> None:
        if self.factors < 1 or self.iterations < 1:
            raise ValueError("factors and iterations must be >= 1")


class ALSRecommender(Recommender):
    """Weighted ALS for implicit feedback; users folded in from their history."""

    name = "als"
    config_class = ALSConfig
    tuning_grid: ClassVar[list[dict[str, Any]]] = [
        {"factors": f, "regularization": r, "alpha": a}
        for f in (16, 32, 64)
        for r in (0.05, 0.5)
        for a in (1.0, 4.0)
    ]

    def __init__(self, config: ALSConfig | None = None) -> None:
        super().__init__(config)
        self._model: Any = None  # implicit's AlternatingLeastSquares, created in fit/load

    def _new_model(self) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        c = self.config
        return AlternatingLeastSquares(
            factors=c.factors,
            regularization=c.regularization,
            alpha=c.alpha,
            iterations=c.iterations,
            random_state=c.seed,
            calculate_training_loss=False,
        )

    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        with _one_blas_thread():  # implicit runs its own threads; BLAS threads fight them
            self._model = self._new_model()
            self._model.fit(train.matrix(), show_progress=False)
        return FitReport(epochs=self.config.iterations)

    def user_factors(self, contexts: Sequence[UserContext]) -> np.ndarray:
        """(B, factors) user vectors solved from each history."""
        items = self._require_fitted()
        h = history_matrix(contexts, items.size)  # (B, V)
        with _one_blas_thread():
            return self._model.recalculate_user(np.arange(len(contexts)), h)

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        u = self.user_factors(contexts)  # (B, F)
        return mask_padding(u @ self._model.item_factors.T)  # (B, V)

    def user_vectors(self, contexts: Sequence[UserContext]) -> np.ndarray:
        return np.asarray(self.user_factors(contexts), dtype=np.float32)

    def item_vectors(self) -> np.ndarray | None:
        return np.asarray(self._model.item_factors, dtype=np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        assert self._model is not None
        return {
            "item_factors": np.asarray(self._model.item_factors),
            "user_factors": np.asarray(self._model.user_factors),
        }

    def _restore(self, bundle: Bundle) -> None:
        with _one_blas_thread():
            self._model = self._new_model()
        self._model.item_factors = bundle.arrays["item_factors"]
        self._model.user_factors = bundle.arrays["user_factors"]


@dataclass(frozen=True)
class BPRConfig:
    """Attributes:
    factors: Latent dimensions (implicit adds one for the item bias).
    learning_rate: SGD step.
    regularization: L2 weight.
    iterations: Epochs.
    fold_in_steps: SGD steps when folding a user in from their history.
    fold_in_lr: Step size of those updates.
    seed: Sampling and initialisation seed.
    """

    factors: int = 64
    learning_rate: float = 0.01
    regularization: float = 0.01
    iterations: int = 300
    fold_in_steps: int = 600
    fold_in_lr: float = 0.05
    seed: int = 42


class BPRRecommender(Recommender):
    """Bayesian Personalised Ranking (Rendle et al. 2009) trained by ``implicit``.

    Every user, known or new, is folded in from their history by BPR's own SGD
    with the item factors held fixed: one rule for all, and it ranks better
    than the vectors learned in training (ml-100k valid NDCG@10 0.075 vs 0.055),
    since it also sees the events after training.
    """

    name = "bpr"
    config_class = BPRConfig
    tuning_grid: ClassVar[list[dict[str, Any]]] = [
        {"factors": f, "learning_rate": lr, "fold_in_lr": fl}
        for f in (32, 64)
        for lr in (0.01, 0.03)
        for fl in (0.02, 0.05)
    ]

    def __init__(self, config: BPRConfig | None = None) -> None:
        super().__init__(config)
        self.item_factors: np.ndarray | None = None
        self.user_factors_train: np.ndarray | None = None

    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        c = self.config
        model = BayesianPersonalizedRanking(
            factors=c.factors,
            learning_rate=c.learning_rate,
            regularization=c.regularization,
            iterations=c.iterations,
            random_state=c.seed,
            num_threads=1,  # 1 thread: reproducible
        )
        model.fit(train.matrix(), show_progress=False)
        self.item_factors = np.asarray(
            model.item_factors, dtype=np.float32
        )  # (V, F+1), last col = bias
        self.user_factors_train = np.asarray(model.user_factors, dtype=np.float32)
        return FitReport(epochs=c.iterations)

    def _fold_in(self, contexts: Sequence[UserContext]) -> np.ndarray:
        """(B, F+1) user vectors from each history (zeros for an empty history)."""
        u = np.zeros((len(contexts), self._item_factors().shape[1]), dtype=np.float32)
        u[:, -1] = 1.0  # implicit keeps the item bias in the last column
        rows = np.flatnonzero([len(ctx.history) > 0 for ctx in contexts])
        if rows.size:
            u[rows] = self._sgd_fold_in([contexts[int(i)].history for i in rows])
        return u

    def _item_factors(self) -> np.ndarray:
        self._require_fitted()
        assert self.item_factors is not None
        return self.item_factors

    def _sgd_fold_in(self, histories: list[np.ndarray]) -> np.ndarray:
        """BPR updates of (B, F+1) user vectors only, vectorised over the users.

        The samples come from a counter-based hash of (seed, history, step), not
        from a shared generator, so a user's vector does not depend on which
        other users share the batch (batch scores equal single scores).
        """
        assert self.item_factors is not None
        c = self.config
        q = self.item_factors  # (V, F+1)
        lengths = np.array([len(h) for h in histories], dtype=np.uint64)
        flat = np.concatenate(histories)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        keys = np.array([zlib.crc32(h.tobytes()) for h in histories], dtype=np.uint64)
        keys = _splitmix64(keys ^ np.uint64(c.seed))
        n_neg = np.uint64(q.shape[0] - 1)
        u = np.zeros((len(histories), q.shape[1]), dtype=np.float32)
        u[:, -1] = 1.0
        for step in range(c.fold_in_steps):
            with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
                r = _splitmix64(keys + np.uint64(step) * np.uint64(0x9E3779B97F4A7C15))
            pos = flat[offsets + (r % lengths).astype(np.int64)]  # (B,)
            neg = 1 + (_splitmix64(r) % n_neg).astype(np.int64)  # (B,)
            diff = q[pos] - q[neg]  # (B, F+1)
            x = (u * diff).sum(1)  # (B,)
            g = (1.0 / (1.0 + np.exp(x)))[:, None] * diff - c.regularization * u
            g[:, -1] = 0.0  # the bias slot stays 1
            u += c.fold_in_lr * g
        return u

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        assert self.item_factors is not None
        u = self._fold_in(contexts)  # (B, F+1)
        return mask_padding(u @ self.item_factors.T)  # (B, V)

    def user_vectors(self, contexts: Sequence[UserContext]) -> np.ndarray:
        return self._fold_in(contexts)  # (B, F+1); the last column meets the item bias

    def item_vectors(self) -> np.ndarray | None:
        return self._item_factors()

    def _state(self) -> dict[str, np.ndarray]:
        assert self.item_factors is not None and self.user_factors_train is not None
        return {"item_factors": self.item_factors, "user_factors": self.user_factors_train}

    def _restore(self, bundle: Bundle) -> None:
        self.item_factors = bundle.arrays["item_factors"]
        self.user_factors_train = bundle.arrays["user_factors"]


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014): a well-mixed uint64 hash, vectorised."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
