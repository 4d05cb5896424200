"""Plain figures of the metrics: cache counters and hit ratio, nearest-rank percentiles, the
recent latencies of one route, and the computed metric families both modes expose."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class CacheCounters(Protocol):
    """Anything with cumulative `hits`, `misses` and `errors` (e.g. `cache.CacheStats`)."""

    @property
    def hits(self) -> int: ...

    @property
    def misses(self) -> int: ...

    @property
    def errors(self) -> int: ...


CacheStatsSource = Callable[[], "CacheCounters | tuple[int, int, int]"]
"""Returns cumulative cache counters: an object with hits/misses/errors, or that tuple."""


def _read_counts(value: CacheCounters | tuple[int, int, int]) -> tuple[int, int, int]:
    if isinstance(value, tuple):
        hits, misses, errors = value
        return int(hits), int(misses), int(errors)
    return int(value.hits), int(value.misses), int(value.errors)


def hit_ratio(hits: int, misses: int) -> float:
    """hits / (hits + misses); 0.0 before any lookup (as `CacheStats.hit_rate`)."""
    total = hits + misses
    return hits / total if total else 0.0


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list, `q` in [0, 1]; NaN for an empty list."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _cache_families(
    ns: str, counts: tuple[int, int, int] | None
) -> tuple[CounterMetricFamily, CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
    fams = (
        CounterMetricFamily(f"{ns}_cache_hits", "Cache lookups answered from the cache."),
        CounterMetricFamily(f"{ns}_cache_misses", "Cache lookups that found nothing."),
        CounterMetricFamily(
            f"{ns}_cache_errors", "Cache backend failures (each also a miss or lost write)."
        ),
        GaugeMetricFamily(
            f"{ns}_cache_hit_ratio", "hits / (hits + misses) since the cache was made."
        ),
    )
    if counts is not None:
        hits, misses, errors = counts
        fams[0].add_metric([], hits)
        fams[1].add_metric([], misses)
        fams[2].add_metric([], errors)
        fams[3].add_metric([], hit_ratio(hits, misses))
    return fams


def _events_per_second_family(ns: str, window: int, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"{ns}_events_per_second",
        f"Events accepted per second, averaged over the last {window} s.",
        value=value,
    )


class _RouteStats:
    """Request count and the most recent latencies of one (method, route). Not locked: the
    owning `ServiceMetrics` holds its lock."""

    __slots__ = ("count", "recent")

    def __init__(self, size: int) -> None:
        self.count = 0
        self.recent: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self.count += 1
        self.recent.append(seconds)

    def summary(self) -> dict[str, object]:
        ordered = sorted(self.recent)
        return {
            "count": self.count,
            "p50_ms": percentile(ordered, 0.50) * 1000.0,
            "p95_ms": percentile(ordered, 0.95) * 1000.0,
            "p99_ms": percentile(ordered, 0.99) * 1000.0,
        }
