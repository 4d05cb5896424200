"""GET /metrics with several worker processes: every scrape, whichever worker answers it,
reports the figures of all of them (prometheus_client's multiprocess mode).

In-process tests play two workers in one process, as prometheus_client's own tests do: each
"worker" writes its values with a `MultiProcessValue` of its own pid (this process's and its
parent's, both alive; a finished child's for a killed worker). The end-to-end test starts the
real server with two uvicorn workers on the tiny synthetic world and a popularity model,
sends requests on fresh connections until both workers have served some (read from each
worker's own files), then checks that every scrape reports the totals.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fakes import FakeClock
from prometheus_client import values
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from primetime.lifecycle import train_for_serving
from primetime.registry import ModelRegistry
from primetime.service.db import migrate
from primetime.service.metrics import (
    MULTIPROC_DIR_ENV,
    ServiceMetrics,
    prepare_multiprocess_dir,
)
from primetime.service.process import Server

TITLE_ROUTE = "/api/v1/titles/{item_id}"
ADMIN_TOKEN = "admin-token-for-tests"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A Prometheus text exposition as {(sample name, labels): value}."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, /, **labels: str
) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


def label_values(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, label: str
) -> set[str]:
    return {dict(ls)[label] for (n, ls), _ in found.items() if n == name and label in dict(ls)}


# ----------------------------------------------------------------------------- in one process


@pytest.fixture
def shared_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty PROMETHEUS_MULTIPROC_DIR; the metric files are closed afterwards."""
    path = tmp_path / "prometheus"
    path.mkdir()
    monkeypatch.setenv(MULTIPROC_DIR_ENV, str(path))
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)  # restored after the test
    yield path
    values.close_all_multiprocess_files()


def as_worker(pid: int) -> None:
    """Metric values created from now on are written to the files of worker `pid`."""
    values.ValueClass = values.MultiProcessValue(lambda: pid)


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def worker(
    pid: int,
    clock: FakeClock,
    *,
    requests: int,
    events: int,
    recommendations: int,
    cache: tuple[int, int, int],
    model: str,
    process_metrics: bool = False,
) -> ServiceMetrics:
    """The metrics of worker `pid` after it served `requests` title requests, accepted
    `events` plays, served `recommendations` lists, with `cache` counters (hits, misses,
    errors), serving popularity `model`."""
    as_worker(pid)
    m = ServiceMetrics(clock=clock, process_metrics=process_metrics)
    assert m.multiprocess
    m.set_cache_stats_source(lambda: cache)
    m.set_model_version("popularity", model)
    for _ in range(requests):
        m.observe_request(route=TITLE_ROUTE, method="GET", status=200, seconds=0.002)
    m.record_event("play", events)
    m.record_recommendations(recommendations)
    return m


def test_every_worker_scrape_reports_the_sums(shared_dir: Path) -> None:
    clock = FakeClock(1000.0)
    a = worker(
        os.getpid(), clock, requests=3, events=5, recommendations=2, cache=(9, 1, 0), model="v1"
    )
    clock.advance(30)
    b = worker(
        os.getppid(), clock, requests=4, events=4, recommendations=1, cache=(0, 2, 1), model="v1"
    )
    b.set_model_version("popularity", "v2")  # b reloaded, a not yet
    clock.advance(10)

    for m in (a, b):
        found = samples(m.render()[0].decode())
        count = "primetime_http_request_duration_seconds_count"
        assert total(found, count, route=TITLE_ROUTE) == 7
        assert total(found, "primetime_events_total", type="play") == 9
        assert total(found, "primetime_recommendations_total") == 3
        assert total(found, "primetime_cache_hits_total") == 9
        assert total(found, "primetime_cache_misses_total") == 3
        assert total(found, "primetime_cache_errors_total") == 1
        # From the sums (9 / 12), not the mean of the workers' ratios ((0.9 + 0) / 2).
        assert total(found, "primetime_cache_hit_ratio") == pytest.approx(0.75)
        assert total(found, "primetime_events_per_second") == pytest.approx(9 / 60)
        assert total(found, "primetime_model_info", version="v1") == 1
        assert total(found, "primetime_model_info", version="v2") == 1
        assert not any("worker_" in name for name, _ in found)  # helper series stay inside
        snap = m.snapshot()
        assert snap["events"] == {"play": 9}
        assert snap["recommendations"] == 3
        assert snap["cache"] == {"hits": 9, "misses": 3, "errors": 1, "hit_ratio": 0.75}
        assert snap["workers"] == 2
    # The latency reservoir is in memory: each worker's own.
    assert a.snapshot()["requests"][f"GET {TITLE_ROUTE}"]["count"] == 3  # type: ignore[index]

    clock.advance(21)  # a's 5 plays (second 1000) left the window, b's 4 (1030) are in
    assert b.snapshot()["events_per_second"] == pytest.approx(4 / 60)
    assert "primetime_events_per_second 0.0666" in a.render()[0].decode()


def test_cache_counts_of_a_worker_follow_its_requests(shared_dir: Path) -> None:
    """A worker that is not scraped still shows its latest cache counts: they are copied to
    its files at the end of each request."""
    clock = FakeClock()
    counts = [0, 0, 0]
    scraped = worker(
        os.getpid(), clock, requests=0, events=0, recommendations=0, cache=(1, 1, 0), model="v1"
    )
    as_worker(os.getppid())
    busy = ServiceMetrics(clock=clock, process_metrics=False)
    busy.set_cache_stats_source(lambda: (counts[0], counts[1], counts[2]))
    for _ in range(5):
        counts[0] += 1  # a hit during the request ...
        busy.observe_request(route=TITLE_ROUTE, method="GET", status=200, seconds=0.001)
    found = samples(scraped.render()[0].decode())
    assert total(found, "primetime_cache_hits_total") == 6
    assert total(found, "primetime_cache_misses_total") == 1


def test_exited_workers_keep_their_counts_and_lose_their_live_series(shared_dir: Path) -> None:
    clock = FakeClock()
    killed_pid = dead_pid()
    worker(killed_pid, clock, requests=2, events=1, recommendations=1, cache=(1, 0, 0), model="v1")
    # `close()` withdraws the series of this process's pid: `closing` is this process.
    closing = worker(
        os.getpid(), clock, requests=3, events=1, recommendations=1, cache=(0, 1, 0), model="v1"
    )
    live = worker(
        os.getppid(), clock, requests=1, events=1, recommendations=1, cache=(0, 0, 0), model="v1"
    )
    assert any(p.name == f"gauge_livesum_{killed_pid}.db" for p in shared_dir.iterdir())
    closing.close()  # what the lifespan does when a worker stops

    found = samples(live.render()[0].decode())
    # Counters never go back: the requests, events and cache lookups of both are kept.
    assert total(found, "primetime_http_request_duration_seconds_count", route=TITLE_ROUTE) == 6
    assert total(found, "primetime_events_total") == 3
    assert total(found, "primetime_cache_hits_total") == 1
    assert total(found, "primetime_cache_misses_total") == 1
    assert total(found, "primetime_events_per_second") == pytest.approx(3 / 60)
    # model_info counts running workers only: the killed one was found out by this scrape.
    assert total(found, "primetime_model_info", version="v1") == 1
    assert not any(p.name == f"gauge_livesum_{killed_pid}.db" for p in shared_dir.iterdir())
    assert live.snapshot()["workers"] == 2  # pids alive: this process (`closing`) and `live`


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process metrics need /proc")
def test_process_metrics_of_every_live_worker_labelled_by_pid(shared_dir: Path) -> None:
    clock = FakeClock()
    pids = (os.getpid(), os.getppid())
    workers = [
        worker(
            pid,
            clock,
            requests=1,
            events=0,
            recommendations=0,
            cache=(0, 0, 0),
            model="v1",
            process_metrics=True,
        )
        for pid in pids
    ]
    found = samples(workers[0].render()[0].decode())
    assert label_values(found, "process_resident_memory_bytes", "pid") == {str(p) for p in pids}
    assert ("process_resident_memory_bytes", frozenset()) not in found  # no unlabelled series


def test_single_process_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_DIR_ENV, raising=False)
    a, b = ServiceMetrics(process_metrics=False), ServiceMetrics(process_metrics=False)
    a.record_event("play", 2)
    assert not a.multiprocess
    assert a.snapshot()["workers"] == 1
    assert 'primetime_events_total{type="play"} 2.0' in a.render()[0].decode()
    assert 'type="play"' not in b.render()[0].decode()


def test_variable_set_too_late_keeps_metrics_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """prometheus_client chose in-memory values when it was imported: a warning, and the
    metrics of this process alone rather than a crash."""
    monkeypatch.setenv(MULTIPROC_DIR_ENV, str(tmp_path))
    m = ServiceMetrics(process_metrics=False)
    assert not m.multiprocess
    assert "set after prometheus_client was imported" in caplog.text


def test_prepare_multiprocess_dir(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    assert prepare_multiprocess_dir(1, env) is None and env == {}  # one worker: in memory

    made = prepare_multiprocess_dir(2, env)
    assert made is not None and env[MULTIPROC_DIR_ENV] == str(made)
    assert made.is_dir() and not any(made.iterdir())
    again = prepare_multiprocess_dir(2, {})
    assert again is not None and again != made  # a fresh one each run
    made.rmdir()
    again.rmdir()

    chosen = tmp_path / "mine"
    chosen.mkdir()
    for name in ("counter_12.db", "gauge_livesum_12.db", "histogram_7.db", "notes.txt"):
        (chosen / name).write_text("x")
    env = {MULTIPROC_DIR_ENV: str(chosen)}
    assert prepare_multiprocess_dir(1, env) is None  # the user's directory: theirs to remove
    assert env == {MULTIPROC_DIR_ENV: str(chosen)}
    assert sorted(p.name for p in chosen.iterdir()) == ["notes.txt"]  # old runs' files went

    with pytest.raises(ValueError, match="workers"):
        prepare_multiprocess_dir(0, {})


# ----------------------------------------------------------------------------- the real server

TWO_WORKERS = 2
START_TIMEOUT_S = 90.0


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A server (not started) with two workers on the tiny synthetic world (it has genres,
    which recommendation reasons need), a popularity model and a migrated SQLite file
    (migrated here, so that the workers do not race to do it)."""
    home = tmp_path / "home"
    monkeypatch.setenv("PRIMETIME_HOME", str(home))  # the world is generated once, under it
    data = "synthetic-tiny"
    registry = ModelRegistry(tmp_path / "registry")
    train_for_serving("popularity", data=data, registry=registry)
    db_url = f"sqlite:///{tmp_path / 'service.db'}"
    migrate(db_url)
    env = {k: v for k, v in os.environ.items() if k != MULTIPROC_DIR_ENV}
    env |= {
        "PRIMETIME_HOME": str(home),
        "PRIMETIME_ENVIRONMENT": "test",
        "PRIMETIME_DATABASE_URL": db_url,
        "PRIMETIME_REGISTRY_DIR": str(registry.root),
        "PRIMETIME_DATA": data,
        "PRIMETIME_MODELS": "popularity",
        "PRIMETIME_RATE_LIMIT_PER_MINUTE": "0",
        "PRIMETIME_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    srv = Server(env=env, cwd=tmp_path, log=tmp_path / "server.log", workers=TWO_WORKERS)
    yield srv
    srv.stop()


def _get(
    url: str, *, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """One request on a connection of its own, so that any worker may accept it."""
    headers = {"Connection": "close", **(headers or {})}
    return httpx.get(url, params=params, headers=headers, timeout=10)


def _scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = _get(f"{url}/metrics")
    assert r.status_code == 200, r.text
    return samples(r.text)


def _wait_for(check: Callable[[], bool], seconds: float, what: str, srv: Server) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen after {seconds:.0f}s:\n{srv.tail()}")
        time.sleep(0.1)


def _requests_per_worker(metrics_dir: Path, route: str) -> dict[str, float]:
    """Requests to `route` that each worker has counted, read from its own file (no scrape:
    a scrape would also make the worker that answers it copy its cache counters)."""
    out: dict[str, float] = {}
    for path in metrics_dir.glob("histogram_*.db"):
        pid = re.fullmatch(r"histogram_(\d+)\.db", path.name)
        assert pid is not None
        out[pid.group(1)] = sum(
            s.value
            for metric in MultiProcessCollector.merge([str(path)])
            for s in metric.samples
            if s.name.endswith("_count") and s.labels.get("route") == route
        )
    return out


@pytest.mark.slow
def test_every_scrape_counts_the_requests_of_all_workers(server: Server) -> None:
    server.start(START_TIMEOUT_S)
    url, metrics_dir = server.url, server.metrics_dir
    assert metrics_dir is not None
    _wait_for(  # both workers have loaded the model, so both take connections
        lambda: total(_scrape(url), "primetime_model_info", name="popularity") == TWO_WORKERS,
        30,
        "model_info of both workers",
        server,
    )
    r = httpx.post(f"{url}/api/v1/auth/signup", json={"username": "mp1", "password": "pass-word-1"})
    assert r.status_code == 201, r.text
    auth = {"Authorization": f"Bearer {r.json()['token']}", "Connection": "close"}
    items = [t["item_id"] for t in _get(f"{url}/api/v1/search", params={"q": "a"}).json()["items"]]
    assert len(items) >= 5

    sent = {"titles": 0, "events": 0, "recs": 0}

    def one(n: int) -> None:
        item = items[n % len(items)]
        assert _get(f"{url}/api/v1/titles/{item}").status_code == 200
        if n % 4 == 0:
            body = {"item_id": item, "event_type": "play"}
            r = httpx.post(f"{url}/api/v1/events", json=body, headers=auth, timeout=10)
            assert r.status_code == 201, r.text
            r = httpx.get(f"{url}/api/v1/recommendations", headers=auth, timeout=10)
            assert r.status_code == 200, server.tail()

    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(10):  # rounds of 40 until both workers answered some
            list(pool.map(one, range(40)))
            sent["titles"] += 40
            sent["events"] += 10
            sent["recs"] += 10
            per_worker = _requests_per_worker(metrics_dir, TITLE_ROUTE)
            if sum(1 for n in per_worker.values() if n > 0) == TWO_WORKERS:
                break
    assert sum(1 for n in per_worker.values() if n > 0) == TWO_WORKERS, per_worker

    def counted() -> bool:
        """Every request sent is in the files: a worker counts one just after its last byte."""
        return all(
            sum(_requests_per_worker(metrics_dir, route).values()) == n
            for route, n in (
                (TITLE_ROUTE, sent["titles"]),
                ("/api/v1/events", sent["events"]),
                ("/api/v1/recommendations", sent["recs"]),
            )
        )

    def right(found: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> bool:
        count = "primetime_http_request_duration_seconds_count"
        return (
            total(found, count, route=TITLE_ROUTE) == sent["titles"]
            and total(found, count, route="/api/v1/events") == sent["events"]
            and total(found, count, route="/api/v1/recommendations") == sent["recs"]
            and total(found, "primetime_events_total", type="play") == sent["events"]
            and total(found, "primetime_recommendations_total") == sent["recs"]
            # One cache lookup per recommendation list, in whichever worker served it.
            and total(found, "primetime_cache_hits_total")
            + total(found, "primetime_cache_misses_total")
            == sent["recs"]
            and total(found, "primetime_events_per_second") == pytest.approx(sent["events"] / 60)
            and total(found, "primetime_model_info", name="popularity") == TWO_WORKERS
        )

    _wait_for(counted, 5, "every request counted", server)
    for _ in range(12):  # each scrape is answered by either worker; all must see everything
        found = _scrape(url)
        assert right(found), {k: v for k, v in found.items() if k[0].startswith("primetime_")}
        assert len(label_values(found, "process_resident_memory_bytes", "pid")) == TWO_WORKERS
        stats = _get(f"{url}/api/v1/admin/stats", headers={"X-Admin-Token": ADMIN_TOKEN}).json()
        assert stats["events"] == {"play": sent["events"]}
        assert stats["recommendations"] == sent["recs"]
        assert stats["workers"] == TWO_WORKERS
