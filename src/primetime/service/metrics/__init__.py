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

This package owns the service's metrics: `series` (`ServiceMetrics`, its registry and series,
the scrape), `workers` (multiprocess mode: the shared directory, the helper series a worker
writes, the merge of every worker's files) and `figures` (hit ratio, percentiles, cache
counters and the computed metric families both modes expose).
"""

from __future__ import annotations

from primetime.service.metrics.figures import (
    CacheCounters,
    CacheStatsSource,
    hit_ratio,
    percentile,
)
from primetime.service.metrics.series import (
    HTTP_METHODS,
    LATENCY_BUCKETS,
    UNMATCHED_ROUTE,
    ServiceMetrics,
)
from primetime.service.metrics.workers import (
    MULTIPROC_DIR_ENV,
    multiprocess_dir,
    prepare_multiprocess_dir,
)

__all__ = [
    "HTTP_METHODS",
    "LATENCY_BUCKETS",
    "MULTIPROC_DIR_ENV",
    "UNMATCHED_ROUTE",
    "CacheCounters",
    "CacheStatsSource",
    "ServiceMetrics",
    "hit_ratio",
    "multiprocess_dir",
    "percentile",
    "prepare_multiprocess_dir",
]
