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


def batch_rate(model: Any, batch: Sequence[Any], reps: int = 5) -> float:
    """Users scored per second when ``model.score`` takes ``batch`` at once."""
    t = time.perf_counter()
    for _ in range(reps):
        model.score(batch)
    return reps * len(batch) / (time.perf_counter() - t)


def latency_row(model: Any, contexts: Sequence[Any], calls: int, batch: int, reps: int = 5) -> str:
    """``p50 p90 p99`` of single-user calls and the batch rate, as the benchmarks print them."""
    p50, p90, p99 = np.percentile(latencies(model, contexts, calls), [50, 90, 99])
    rate = batch_rate(model, contexts[:batch], reps)
    return f"{p50:>9.2f}{p90:>9.2f}{p99:>9.2f}{rate:>16,.0f}"
