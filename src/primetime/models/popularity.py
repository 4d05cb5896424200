"""Popularity and Trending: the baselines every table shows beside a model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from primetime.artifacts import Bundle
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.models.base import FitOptions, FitReport, Recommender, mask_padding
from primetime.types import UserContext

DAY = 86_400


@dataclass(frozen=True)
class PopularityConfig:
    """Popularity has nothing to tune: each user's score is the item's train count."""


class PopularityRecommender(Recommender):
    """Scores every item by how many distinct users interacted with it in train."""

    name = "popularity"
    config_class = PopularityConfig

    def __init__(self, config: PopularityConfig | None = None) -> None:
        super().__init__(config)
        self.counts: np.ndarray | None = None

    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        m = train.matrix()  # (users.size, items.size), binary
        self.counts = np.asarray(m.sum(axis=0)).ravel().astype(np.float32)
        return FitReport()

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        assert self.counts is not None
        return mask_padding(np.tile(self.counts, (len(contexts), 1)))  # (B, V)

    def _state(self) -> dict[str, np.ndarray]:
        assert self.counts is not None
        return {"counts": self.counts}

    def _restore(self, bundle: Bundle) -> None:
        self.counts = bundle.arrays["counts"]


@dataclass(frozen=True)
class TrendingConfig:
    """Attributes:
    half_life_days: An event's weight halves every this many days before the
        newest event in train.
    """

    half_life_days: float = 30.0

    def __post_init__(self) -> None:
        if self.half_life_days <= 0:
            raise ValueError(f"half_life_days must be > 0, got {self.half_life_days}")


class TrendingRecommender(Recommender):
    """Time-decayed popularity: recent events count more (exponential decay)."""

    name = "trending"
    config_class = TrendingConfig
    tuning_grid: ClassVar[list[dict[str, Any]]] = [
        {"half_life_days": d} for d in (3, 7, 14, 30, 90, 365)
    ]

    def __init__(self, config: TrendingConfig | None = None) -> None:
        super().__init__(config)
        self.weights: np.ndarray | None = None

    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        ref = train.timestamp.max()
        age_days = (ref - train.timestamp) / DAY
        w = np.exp2(-age_days / self.config.half_life_days)
        self.weights = np.bincount(train.item_idx, weights=w, minlength=train.items.size).astype(
            np.float32
        )
        return FitReport(notes={"reference_time": int(ref)})

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        assert self.weights is not None
        return mask_padding(np.tile(self.weights, (len(contexts), 1)))  # (B, V)

    def _state(self) -> dict[str, np.ndarray]:
        assert self.weights is not None
        return {"weights": self.weights}

    def _restore(self, bundle: Bundle) -> None:
        self.weights = bundle.arrays["weights"]
