"""Prometheus metrics of the service, and live figures for the admin page.

`ServiceMetrics` owns its own `CollectorRegistry` instead of the process-wide default one, so
several apps built in one test process do not clash over metric names. `create_app` makes one,
`TimingMiddleware` feeds it request latencies, routes record events and recommendations, and
`GET /metrics` returns `render()`.

Exposed series (namespace `primetime`):

- `primetime_http_request_duration_seconds{route,method,status}` histogram, 0.5 ms - 2 s
  buckets. `route` is the route template (`/api/v1/titles/{item_id}`) or "unmatched", and
  `method` is one of the standard methods or "OTHER", so label values stay few.
- `primetime_events_total{type}` and `primetime_events_per_second` (last 60 s).
- `primetime_recommendations_total` (recommendation lists served).
- `primetime_cache_hits_total`, `_misses_total`, `_errors_total` and `primetime_cache_hit_ratio`,
  read from the cache at scrape time through `set_cache_stats_source`.
- `primetime_model_info{name,version} 1` for each loaded model (`set_model_version`).
- `process_*` (CPU, memory, open files) unless `process_metrics=False`.

Each worker process has its own figures; with `workers > 1` a scrape sees one worker.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
)
"""Histogram upper bounds in seconds: 0.5 ms (a cache hit) to 2 s (a cold model call)."""

HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods kept as label values; anything else is recorded as "OTHER"."""

UNMATCHED_ROUTE: Final = "unmatched"
"""Route label of requests no route matched (404s, requests refused by a middleware)."""


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


class _CacheCollector(Collector):
    """Reads the cache's counters at scrape time."""

    def __init__(self, metrics: ServiceMetrics, namespace: str) -> None:
        self._metrics = metrics
        self._ns = namespace

    def _families(
        self, counts: tuple[int, int, int] | None
    ) -> tuple[CounterMetricFamily, CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
        ns = self._ns
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

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        counts = self._metrics.cache_counts()
        return self._families(counts) if counts is not None else ()


class ServiceMetrics:
    """Prometheus metrics of one app, on a registry of its own, plus a small in-process
    reservoir of recent latencies for p50/p95/p99 on the admin page.

    Thread-safe: sync routes run in a thread pool.

    Args:
        namespace: prefix of every metric name.
        clock: monotonic seconds, for the events-per-second window (tests inject one).
        reservoir_size: latencies kept per (method, route) for `snapshot()` percentiles;
            the most recent ones, so the figures follow the live traffic.
        event_window_seconds: length of the events-per-second window.
        process_metrics: also export `process_*` metrics (CPU, memory) of this process.
    """

    def __init__(
        self,
        *,
        namespace: str = "primetime",
        clock: Callable[[], float] = time.monotonic,
        reservoir_size: int = 512,
        event_window_seconds: int = 60,
        process_metrics: bool = True,
    ) -> None:
        if reservoir_size < 1:
            raise ValueError(f"reservoir_size must be >= 1, got {reservoir_size}")
        if event_window_seconds < 1:
            raise ValueError(f"event_window_seconds must be >= 1, got {event_window_seconds}")
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._reservoir_size = reservoir_size
        self._window = event_window_seconds

        ns = namespace
        self.request_latency = Histogram(
            f"{ns}_http_request_duration_seconds",
            "Time from request start to the last response byte, by route template.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            f"{ns}_events", "User events accepted, by type.", ["type"], registry=self.registry
        )
        self.recommendations = Counter(
            f"{ns}_recommendations", "Recommendation lists served.", registry=self.registry
        )
        self.model_info = Gauge(
            f"{ns}_model_info",
            "Loaded models: 1 for the version each name serves now.",
            ["name", "version"],
            registry=self.registry,
        )
        self.events_per_second_gauge = Gauge(
            f"{ns}_events_per_second",
            f"Events accepted per second, averaged over the last {event_window_seconds} s.",
            registry=self.registry,
        )
        self.events_per_second_gauge.set_function(self.events_per_second)
        self.registry.register(_CacheCollector(self, ns))
        if process_metrics:
            ProcessCollector(registry=self.registry)

        self._cache_source: CacheStatsSource | None = None
        self._models: dict[str, str] = {}
        self._event_totals: dict[str, int] = {}
        self._recommendation_total = 0
        # One slot per second of the window: (which second it holds, events in it).
        self._event_slots: list[tuple[int, int]] = [(-1, 0)] * event_window_seconds
        self._requests: dict[tuple[str, str], _RouteStats] = {}

    # ------------------------------------------------------------------ recording

    def observe_request(self, *, route: str, method: str, status: int, seconds: float) -> None:
        """Record one finished request.

        Args:
            route: route template, e.g. `/api/v1/titles/{item_id}` (never the raw path).
            method: HTTP method; non-standard ones are recorded as "OTHER".
            status: response status code.
            seconds: latency in seconds.
        """
        method = method.upper()
        if method not in HTTP_METHODS:
            method = "OTHER"
        self.request_latency.labels(route, method, str(status)).observe(seconds)
        with self._lock:
            stats = self._requests.get((method, route))
            if stats is None:
                stats = self._requests[(method, route)] = _RouteStats(self._reservoir_size)
            stats.add(seconds)

    def record_event(self, event_type: str, count: int = 1) -> None:
        """Count `count` accepted events of `event_type` (view, play, rate, …)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self.events.labels(event_type).inc(count)
        second = int(self._clock())
        with self._lock:
            self._event_totals[event_type] = self._event_totals.get(event_type, 0) + count
            i = second % self._window
            held, n = self._event_slots[i]
            self._event_slots[i] = (second, n + count if held == second else count)

    def record_recommendations(self, count: int = 1) -> None:
        """Count `count` recommendation lists served."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self.recommendations.inc(count)
        with self._lock:
            self._recommendation_total += count

    def set_model_version(self, name: str, version: str) -> None:
        """Say that model `name` now serves `version` (replaces its previous version)."""
        with self._lock:
            previous = self._models.get(name)
            if previous is not None and previous != version:
                self.model_info.remove(name, previous)
            self._models[name] = version
        self.model_info.labels(name, version).set(1)

    def set_cache_stats_source(self, source: CacheStatsSource | None) -> None:
        """Read cache counters from `source()` at each scrape (e.g. `cache.stats`); None
        removes the cache series."""
        self._cache_source = source

    # ------------------------------------------------------------------ reading

    def cache_counts(self) -> tuple[int, int, int] | None:
        """(hits, misses, errors) from the cache source; None without one or if it fails."""
        source = self._cache_source
        if source is None:
            return None
        try:
            return _read_counts(source())
        except Exception:  # a scrape must not fail because the cache is down
            log.warning("cache stats source failed", exc_info=True)
            return None

    def events_per_second(self) -> float:
        """Events accepted in the last `event_window_seconds`, divided by that window."""
        now = int(self._clock())
        with self._lock:
            total = sum(n for second, n in self._event_slots if now - self._window < second <= now)
        return total / self._window

    def snapshot(self) -> dict[str, object]:
        """Live figures for the admin page (plain JSON types).

        Keys: `uptime_seconds`; `requests`: one entry per "METHOD route" with `route`,
        `method`, `count` (since start) and `p50_ms` / `p95_ms` / `p99_ms` over the most recent
        `reservoir_size` requests; `events` (totals by type); `events_per_second`;
        `recommendations`; `cache` (hits, misses, errors, hit_ratio) or None; `models`
        (name -> version).
        """
        counts = self.cache_counts()
        eps = self.events_per_second()
        with self._lock:
            requests: dict[str, dict[str, object]] = {}
            for (method, route), stats in sorted(self._requests.items(), key=lambda kv: kv[0][1]):
                requests[f"{method} {route}"] = {
                    "route": route,
                    "method": method,
                    **stats.summary(),
                }
            events = dict(self._event_totals)
            recommendations = self._recommendation_total
            models = dict(self._models)
        cache = None
        if counts is not None:
            hits, misses, errors = counts
            cache = {
                "hits": hits,
                "misses": misses,
                "errors": errors,
                "hit_ratio": hit_ratio(hits, misses),
            }
        return {
            "uptime_seconds": self._clock() - self._started,
            "requests": requests,
            "events": events,
            "events_per_second": eps,
            "recommendations": recommendations,
            "cache": cache,
            "models": models,
        }

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition for `GET /metrics`: (payload, content type).

        `accept` is the request's Accept header; OpenMetrics is returned when it asks for it,
        else the Prometheus text format.
        """
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


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
