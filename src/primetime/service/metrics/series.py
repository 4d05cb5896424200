"""`ServiceMetrics`: the Prometheus series of one app on a registry of its own, what records
them, the scrape (`render`) and the admin page's live figures (`snapshot`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from primetime.service.metrics.figures import (
    CacheStatsSource,
    _cache_families,
    _read_counts,
    _RouteStats,
    hit_ratio,
)
from primetime.service.metrics.workers import _Merged, _SharedFiles, multiprocess_dir

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


class _CacheCollector(Collector):
    """Reads the cache's counters at scrape time."""

    def __init__(self, metrics: ServiceMetrics, namespace: str) -> None:
        self._metrics = metrics
        self._ns = namespace

    def describe(self) -> Iterable[Metric]:
        return _cache_families(self._ns, None)

    def collect(self) -> Iterable[Metric]:
        counts = self._metrics.cache_counts()
        return _cache_families(self._ns, counts) if counts is not None else ()


class _SharedCollector(Collector):
    """The scrape of a worker among several: every worker's files, merged."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics._merged().families


class ServiceMetrics:
    """Prometheus metrics of one app, on a registry of its own, plus a small in-process
    reservoir of recent latencies for p50/p95/p99 on the admin page.

    In a worker among several (prometheus_client in multiprocess mode, see the module
    docstring) the values live in the shared directory's files and `render()` and
    `snapshot()` merge those of every worker. Thread-safe: sync routes run in a thread pool.

    Args:
        namespace: prefix of every metric name.
        clock: monotonic seconds, for the events-per-second window (tests inject one).
        reservoir_size: latencies kept per (method, route) for `snapshot()` percentiles;
            the most recent ones, so the figures follow the live traffic.
        event_window_seconds: length of the events-per-second window.
        process_metrics: also export `process_*` metrics (CPU, memory) of this process, or
            of every live worker.
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
        self._process_metrics = process_metrics

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
            "Loaded models: for the version each name serves now, 1 (or the number of live "
            "workers serving it).",
            ["name", "version"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        shared_dir = multiprocess_dir()
        self._shared: _SharedFiles | None = None
        if shared_dir is None:
            # One process: the registry is the scrape; computed series are read at scrape time.
            events_per_second = Gauge(
                f"{ns}_events_per_second",
                f"Events accepted per second, averaged over the last {event_window_seconds} s.",
                registry=self.registry,
            )
            events_per_second.set_function(self.events_per_second)
            self.registry.register(_CacheCollector(self, ns))
            if process_metrics:
                ProcessCollector(registry=self.registry)
            self._scrape: CollectorRegistry = self.registry
        else:
            # One worker of several: the registry only holds this worker's metric objects
            # (their values are in files); a scrape merges every worker's files.
            self._shared = _SharedFiles(
                shared_dir, namespace=ns, window=event_window_seconds, registry=self.registry
            )
            self._scrape = CollectorRegistry(auto_describe=False)
            self._scrape.register(_SharedCollector(self))

        self._cache_source: CacheStatsSource | None = None
        self._models: dict[str, str] = {}
        self._event_totals: dict[str, int] = {}
        self._recommendation_total = 0
        # One slot per second of the window: (which second it holds, events in it).
        self._event_slots: list[tuple[int, int]] = [(-1, 0)] * event_window_seconds
        self._requests: dict[tuple[str, str], _RouteStats] = {}

    @property
    def multiprocess(self) -> bool:
        """Whether this is one worker of several, its figures merged with theirs."""
        return self._shared is not None

    # ------------------------------------------------------------------ recording

    def observe_request(self, *, route: str, method: str, status: int, seconds: float) -> None:
        """Record one finished request.

        Args:
            route: route template, e.g. `/api/v1/titles/{item_id}` (never the raw path).
            method: HTTP method; non-standard ones are recorded as "OTHER".
            status: response status code.
            seconds: latency in seconds.
        """
        if self._shared is not None:
            # The request's cache lookups, for the other workers' scrapes; before the request
            # itself is counted, so a scrape that counts the request counts its lookups.
            self._shared.publish_cache(self._read_cache_source(quiet=True))
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
            n = n + count if held == second else count
            self._event_slots[i] = (second, n)
            if self._shared is not None:
                self._shared.write_slot(i, second, n)

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
                if self._shared is None:
                    self.model_info.remove(name, previous)
                else:  # files keep every series: 0, left out of the scrape
                    self.model_info.labels(name, previous).set(0)
            self._models[name] = version
        self.model_info.labels(name, version).set(1)

    def set_cache_stats_source(self, source: CacheStatsSource | None) -> None:
        """Read cache counters from `source()` at each scrape (e.g. `cache.stats`); None
        removes the cache series (with several workers: stops updating this worker's)."""
        self._cache_source = source

    def close(self) -> None:
        """The app is stopping. A worker among several withdraws its live series
        (`model_info`) from the merged view; otherwise nothing."""
        if self._shared is not None:
            self._shared.close()

    # ------------------------------------------------------------------ reading

    def _read_cache_source(self, *, quiet: bool) -> tuple[int, int, int] | None:
        source = self._cache_source
        if source is None:
            return None
        try:
            return _read_counts(source())
        except Exception:  # a scrape must not fail because the cache is down
            if not quiet:
                log.warning("cache stats source failed", exc_info=True)
            return None

    def cache_counts(self) -> tuple[int, int, int] | None:
        """(hits, misses, errors) from this process's cache source; None without one or if it
        fails."""
        return self._read_cache_source(quiet=False)

    def events_per_second(self) -> float:
        """Events this process accepted in the last `event_window_seconds`, divided by that
        window (`snapshot()` and the scrape give the whole service's)."""
        now = int(self._clock())
        with self._lock:
            total = sum(n for second, n in self._event_slots if now - self._window < second <= now)
        return total / self._window

    def _merged(self) -> _Merged:
        """Every worker's figures, this one's cache counters copied to its files first."""
        assert self._shared is not None
        self._shared.publish_cache(self.cache_counts())
        return self._shared.read(int(self._clock()), process_metrics=self._process_metrics)

    def snapshot(self) -> dict[str, object]:
        """Live figures for the admin page (plain JSON types).

        Keys: `uptime_seconds`; `requests`: one entry per "METHOD route" with `route`,
        `method`, `count` (since start) and `p50_ms` / `p95_ms` / `p99_ms` over the most recent
        `reservoir_size` requests; `events` (totals by type); `events_per_second`;
        `recommendations`; `cache` (hits, misses, errors, hit_ratio) or None; `models`
        (name -> version); `workers` (live worker processes). With several workers, `events`,
        `events_per_second`, `recommendations` and `cache` are the whole service's, the
        rest this worker's.
        """
        merged = self._merged() if self._shared is not None else None
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
        if merged is None:
            counts, eps, workers = self.cache_counts(), self.events_per_second(), 1
        else:
            counts, eps, workers = merged.cache, merged.events_per_second, merged.workers
            events, recommendations = merged.events, merged.recommendations
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
            "workers": workers,
        }

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition for `GET /metrics`: (payload, content type); with several workers,
        all of theirs merged.

        `accept` is the request's Accept header; OpenMetrics is returned when it asks for it,
        else the Prometheus text format.
        """
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self._scrape), content_type
