"""Types shared by models, evaluation and serving.

A user is their history: every model scores items from a :class:`UserContext`,
never only from a user index fixed at training time. Ids (``user_id``,
``item_id``) are external strings; indices (``user_idx``, ``item_idx``) are
positions in a :class:`~primetime.data.vocab.Vocabulary`, where 0 is padding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class UserContext:
    """What a model knows about one user at the moment it recommends.

    Attributes:
        user_idx: Index in the user vocabulary, or ``None`` for a user the
            model has never seen (a brand-new visitor).
        history: Item indices the user interacted with, oldest first, shape (L,).
        timestamps: Unix seconds of each history event, shape (L,), or ``None``.
        ratings: Explicit rating of each history event (NaN where absent), or ``None``.
        now: Unix seconds at which the recommendation is asked for, or ``None``.
        context: Free-form request context (device, time of day, platform).
    """

    user_idx: int | None
    history: np.ndarray
    timestamps: np.ndarray | None = None
    ratings: np.ndarray | None = None
    now: int | None = None
    context: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        hist = np.asarray(self.history, dtype=np.int64)
        if hist.ndim != 1:
            raise ValueError(f"history must be 1-D, got shape {hist.shape}")
        if hist.size and hist.min() < 1:
            raise ValueError("history holds item indices >= 1 (0 is padding)")
        object.__setattr__(self, "history", hist)
        if self.timestamps is not None:
            ts = np.asarray(self.timestamps, dtype=np.int64)
            if ts.shape != hist.shape:
                raise ValueError(
                    f"timestamps shape {ts.shape} does not match history shape {hist.shape}"
                )
            object.__setattr__(self, "timestamps", ts)
        if self.ratings is not None:
            r = np.asarray(self.ratings, dtype=np.float32)
            if r.shape != hist.shape:
                raise ValueError(f"ratings shape {r.shape} does not match history {hist.shape}")
            object.__setattr__(self, "ratings", r)

    @classmethod
    def anonymous(cls, history: list[int] | np.ndarray) -> UserContext:
        """A context for a user known only by what they just watched."""
        return cls(user_idx=None, history=np.asarray(history, dtype=np.int64))


@dataclass(frozen=True)
class Recommendation:
    """One recommended title: index, score and, where available, a reason."""

    item_idx: int
    score: float
    reason: str | None = None
