"""Several worker processes: prometheus_client's multiprocess mode for `ServiceMetrics`.

Setting up the shared directory (`prepare_multiprocess_dir`, `multiprocess_dir`), the helper
series a worker writes for the others, and the merge of every worker's files at scrape time
(`_SharedFiles.read`). See the package docstring for how each series is shared.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector, multiprocess, values
from prometheus_client.core import Metric

from primetime.service.metrics.figures import _cache_families, _events_per_second_family

log = logging.getLogger(__name__)

MULTIPROC_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's variable: set, the values of every metric live in files there."""

_MULTIPROC_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_(\d+)\.db$")
"""Names of prometheus_client's multiprocess files: `<type>[_<gauge mode>]_<pid>.db`."""


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
