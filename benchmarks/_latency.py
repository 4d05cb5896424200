"""Single-user scoring latency, measured the same way by every inference benchmark."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np


def latencies(model: Any, contexts: Sequence[Any], calls: int) -> np.ndarray:
    """Milliseconds of ``calls`` single-user ``model.score`` calls, after 20 warm-up calls
    (the first builds any cached item table)."""
    for c in contexts[:20]:
        model.score([c])
    out = np.empty(calls)
    for i in range(calls):
        t = time.perf_counter()
        model.score([contexts[i % len(contexts)]])
        out[i] = (time.perf_counter() - t) * 1000
    return out
