"""Pure per-request functions of the pipeline stages, on arrays.

History weights, per-row z-scores (the blend's normalisation) and argument
checks used by :class:`~primetime.pipeline.pipeline.RecPipeline`.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np


def _history_weight(ratings: np.ndarray) -> np.ndarray:
    """Preference weight of logged history events, which carry no event type.

    Unrated: 1 (the log says the title was watched). Rated (1..5): a watch
    plus the rating's sign, ``0.5 + (r - 3) / 2`` clipped to [-1, 1]
    (5 and 4 -> 1, 3 -> 0.5, 2 -> 0, 1 -> -0.5).
    """
    r = np.asarray(ratings, dtype=np.float64)
    return np.where(np.isnan(r), 1.0, np.clip(0.5 + (r - 3.0) / 2.0, -1.0, 1.0))


def _zscore(raw: np.ndarray, mask: np.ndarray, n: np.ndarray | None = None) -> np.ndarray:
    """Per row, ``(raw - mean) / std`` over ``mask``; 0 outside it and on constant rows.

    Args:
        raw: (B, V) or (V,) scores (broadcast to ``mask``); may be -inf outside ``mask``.
        mask: (B, V) bool, the titles the statistics are taken over.
        n: ``max(mask.sum(axis=1), 1)`` when the caller has it (one mask, several scores).

    Returns:
        (B, V) float64.
    """
    if n is None:
        n = np.maximum(mask.sum(axis=1), 1)
    mean = np.where(mask, raw, 0.0).sum(axis=1, dtype=np.float64) / n  # (B,)
    dev = np.where(mask, raw.astype(np.float64) - mean[:, None], 0.0)  # (B, V)
    sd = np.sqrt(np.einsum("ij,ij->i", dev, dev) / n)  # (B,)
    scale = np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 1e-12)
    return dev * scale[:, None]


def _as_indices(values: Collection[int], v: int, what: str) -> np.ndarray:
    arr = np.fromiter((int(x) for x in values), dtype=np.int64)
    if arr.size and (arr.min() < 1 or arr.max() >= v):
        raise ValueError(
            f"{what} holds item_idx outside 1..{v - 1}: {arr[(arr < 1) | (arr >= v)][:3]}"
        )
    return arr


def _check_k(k: int, what: str = "k") -> None:
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{what} must be a positive int, got {k!r}")
