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
- `primetime_model_info{name,version}` for each loaded model (`set_model_version`): 1, or with
  several workers the number of live workers serving that version.
- `process_*` (CPU, memory, open files) unless `process_metrics=False`.

Several worker processes (`primetime serve --workers N`, N > 1) use prometheus_client's
multiprocess mode. `serve` points `PROMETHEUS_MULTIPROC_DIR` at a fresh private directory (or
at the one the user set, emptied of old files: see `prepare_multiprocess_dir`); each worker
writes its values to memory-mapped files of its own there, and every scrape, whichever worker
answers it, merges the files of all workers (`MultiProcessCollector`). prometheus_client picks
the mode when it is imported, so the variable must be in the environment the workers start
with. Without it (one process, tests, `create_app` in-process) nothing of this happens. Series
computed from a worker's memory are shared as follows:

- Histogram, `events_total`, `recommendations_total`: summed over all workers, those that have
  exited included (a counter never goes back).
- Cache counters: each worker copies its cache's cumulative hits / misses / errors into its
  files at the end of every request (lookups only happen in requests) and at each scrape; a
  scrape sums them over all workers, exited ones included, and `cache_hit_ratio` is computed
  from those sums (not a mean of per-worker ratios).
- `events_per_second`: each worker writes its per-second event counts as it records them; a
  scrape adds up every worker's seconds still inside the window, so the figure is the
  service's rate (events a worker took before it exited still count until they age out).
  Workers compare `time.monotonic()` seconds, one clock for the whole host.
- `model_info`: `livesum`, the number of live workers serving each version; a version being
  rolled out shows beside the old one until every worker has reloaded. A worker's series go
  when it exits (`close()` calls `mark_process_dead`), or at the next scrape if it was killed.
- `process_*`: `ProcessCollector` only reads its own process, which would be a random worker
  here; a scrape instead reads `/proc/<pid>` of every live worker and adds a `pid` label
  (Linux only, as `ProcessCollector`; the supervisor process is not included).

The admin page's `snapshot()` uses the same sums for events, events/s, recommendations and
cache; its latency percentiles and uptime stay those of the worker that answers (recent
latencies are only kept in memory), and `workers` says how many workers are live. Worker
liveness is judged by pid, so all workers must share one host (as uvicorn's do).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    multiprocess,
    values,
)
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

MULTIPROC_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's variable: set, the values of every metric live in files there."""

_MULTIPROC_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_(\d+)\.db$")
"""Names of prometheus_client's multiprocess files: `<type>[_<gauge mode>]_<pid>.db`."""


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


# ----------------------------------------------------------------------------- worker processes


def prepare_multiprocess_dir(workers: int, env: MutableMapping[str, str]) -> Path | None:
    """Set up prometheus_client's multiprocess mode for a server of `workers` processes that
    will start with the environment `env`; call it before they start.

    - `env` already names a directory in `PROMETHEUS_MULTIPROC_DIR` (the user's choice): it is
      created if missing and its old multiprocess files (`counter_*.db`, `gauge_*_*.db`, ...)
      are deleted, as prometheus_client requires between runs; nothing else in it is touched.
    - Else, with `workers > 1`: a fresh private directory is made and set in `env`.
    - Else (one worker): nothing; the worker keeps its metrics in memory.

    Args:
        workers: worker processes the server will run, >= 1.
        env: environment of the workers (`os.environ` to start them from this process);
            updated in place.

    Returns:
        The directory made for this run, which the caller removes once the workers have
        stopped; None when none was made.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    chosen = env.get(MULTIPROC_DIR_ENV)
    if chosen:
        path = Path(chosen)
        path.mkdir(parents=True, exist_ok=True)
        stale = [p for p in path.iterdir() if _MULTIPROC_FILE.match(p.name) and p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        if stale:
            log.info("removed %d metrics files of a previous run from %s", len(stale), path)
        return None
    if workers == 1:
        return None
    made = Path(tempfile.mkdtemp(prefix="primetime-metrics-"))  # private (0700) and empty
    env[MULTIPROC_DIR_ENV] = str(made)
    return made


def multiprocess_dir() -> Path | None:
    """The directory this process writes its metric values to, or None when they stay in
    memory (prometheus_client imported without `PROMETHEUS_MULTIPROC_DIR`).

    Raises:
        RuntimeError: prometheus_client writes files but the variable is gone.
    """
    chosen = os.environ.get(MULTIPROC_DIR_ENV)
    in_files = bool(getattr(values.ValueClass, "_multiprocess", False))
    if in_files and not chosen:
        raise RuntimeError(
            f"prometheus_client is in multiprocess mode but {MULTIPROC_DIR_ENV} is unset"
        )
    if chosen and not in_files:
        log.warning(
            "%s was set after prometheus_client was imported: this process keeps its metrics "
            "in memory and a scrape sees only its own",
            MULTIPROC_DIR_ENV,
        )
        return None
    return Path(chosen) if chosen else None


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (on this host). Always True on Windows, where
    `os.kill(pid, 0)` would end the process."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


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


@dataclass(frozen=True)
class _Merged:
    """One reading of every worker's files."""

    families: list[Metric]
    """Exposed series: the merged metrics plus those computed from the helper series."""
    events: dict[str, int]
    recommendations: int
    events_per_second: float
    cache: tuple[int, int, int] | None
    workers: int
    """Live worker processes."""


class _SharedFiles:
    """prometheus_client's multiprocess mode for one `ServiceMetrics`: the helper series a
    worker writes for the others to read, and the merge of all workers' files at scrape time.

    Helper series (read here, never exposed as they are): the worker's cumulative cache
    counters (`sum` gauges: the values of exited workers stay in the sum), and its
    events-per-second window, a (second, count) pair per slot (`all` gauges: kept per pid).
    """

    def __init__(self, path: Path, *, namespace: str, window: int, registry: CollectorRegistry):
        self.path = path
        self._ns = namespace
        self._window = window
        self._collector = multiprocess.MultiProcessCollector(None, path=str(path))
        ns = namespace
        self._cache_names = tuple(f"{ns}_worker_cache_{n}" for n in ("hits", "misses", "errors"))
        self._cache = tuple(
            Gauge(
                name,
                "A worker's cumulative cache counter.",
                multiprocess_mode="sum",
                registry=registry,
            )
            for name in self._cache_names
        )
        self._slot_names = (f"{ns}_worker_events_slot_second", f"{ns}_worker_events_slot_count")
        self._slot_second, self._slot_count = (
            Gauge(name, help_text, ["slot"], multiprocess_mode="all", registry=registry)
            for name, help_text in zip(
                self._slot_names,
                (
                    "A worker's events window: the second (time.monotonic) a slot holds.",
                    "A worker's events window: events accepted in the second a slot holds.",
                ),
                strict=True,
            )
        )
        self._published: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writing

    def publish_cache(self, counts: tuple[int, int, int] | None) -> None:
        """Copy this worker's cumulative cache counters into its files (if they changed)."""
        if counts is None:
            return
        with self._lock:
            if counts == self._published:
                return
            self._published = counts
            for gauge, n in zip(self._cache, counts, strict=True):
                gauge.set(n)

    def write_slot(self, slot: int, second: int, count: int) -> None:
        """Slot `slot` of this worker's window now holds `count` events of `second`. The count
        is written first: a reader in between sees it with the slot's old second, which has
        left the window, so no event is counted twice."""
        self._slot_count.labels(str(slot)).set(count)
        self._slot_second.labels(str(slot)).set(second)

    def close(self) -> None:
        """This worker is leaving: its live gauges (model_info) leave the merged view."""
        multiprocess.mark_process_dead(os.getpid(), str(self.path))

    # ------------------------------------------------------------------ reading

    def _worker_pids(self) -> tuple[list[int], list[int]]:
        """(live workers, dead workers that left live gauges behind), by pid."""
        pids: set[int] = set()
        with_live_gauges: set[int] = set()
        for name in os.listdir(self.path):
            m = _MULTIPROC_FILE.match(name)
            if m:
                pids.add(int(m.group(2)))
                if m.group(1).startswith("gauge_live"):
                    with_live_gauges.add(int(m.group(2)))
        live = sorted(p for p in pids if _pid_alive(p))
        return live, sorted(with_live_gauges.difference(live))

    def read(self, now: int, *, process_metrics: bool) -> _Merged:
        """Merge every worker's files; `now` is the current second of the events window."""
        live, dead = self._worker_pids()
        for pid in dead:  # killed without `close()`: drop its live gauges now
            with contextlib.suppress(OSError):  # another worker's scrape did it first
                multiprocess.mark_process_dead(pid, str(self.path))
        ns = self._ns
        exposed: list[Metric] = []
        cache = [0, 0, 0]
        cached = False
        slots: dict[tuple[str, str], list[float]] = {}  # (pid, slot) -> [second, count]
        events: dict[str, int] = {}
        recommendations = 0
        for metric in self._collector.collect():
            name = metric.name
            if name in self._cache_names:  # `sum`: one sample, all workers
                cached = True
                cache[self._cache_names.index(name)] = int(sum(s.value for s in metric.samples))
            elif name in self._slot_names:  # `all`: one sample per (pid, slot)
                k = self._slot_names.index(name)
                for s in metric.samples:
                    pair = slots.setdefault((s.labels["pid"], s.labels["slot"]), [-1.0, 0.0])
                    pair[k] = s.value
            else:
                if name == f"{ns}_model_info":  # a replaced version is 0 in its worker's file
                    metric.samples = [s for s in metric.samples if s.value > 0]
                elif name == f"{ns}_events":
                    for s in metric.samples:
                        if s.name == f"{ns}_events_total":
                            kind = s.labels["type"]
                            events[kind] = events.get(kind, 0) + int(s.value)
                elif name == f"{ns}_recommendations":
                    recommendations = int(
                        sum(s.value for s in metric.samples if s.name.endswith("_total"))
                    )
                exposed.append(metric)
        in_window = sum(
            count for second, count in slots.values() if now - self._window < second <= now
        )
        eps = in_window / self._window
        exposed.append(_events_per_second_family(ns, self._window, eps))
        counts = (cache[0], cache[1], cache[2]) if cached else None
        if counts is not None:
            exposed.extend(_cache_families(ns, counts))
        if process_metrics:
            exposed.extend(_process_families(live))
        return _Merged(
            families=exposed,
            events=events,
            recommendations=recommendations,
            events_per_second=eps,
            cache=counts,
            workers=len(live),
        )


def _process_families(pids: Iterable[int]) -> list[Metric]:
    """`process_*` of each process in `pids`, read from /proc/<pid>, labelled `pid`."""
    families: dict[str, Metric] = {}
    for pid in pids:
        reader = ProcessCollector(pid=functools.partial(int, pid), registry=None)
        for metric in reader.collect():
            family = families.get(metric.name)
            if family is None:
                family = families[metric.name] = Metric(
                    metric.name, metric.documentation, metric.type, metric.unit
                )
            family.samples.extend(
                s._replace(labels={**s.labels, "pid": str(pid)}) for s in metric.samples
            )
    return list(families.values())


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
