"""A promotion reaches every worker of a running `--workers 2` server without a restart and
without a failed request: each worker polls the promotions history and swaps its models."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from primetime.lifecycle import train_for_serving
from primetime.registry import ModelRegistry
from primetime.service.db import migrate
from primetime.service.metrics import MULTIPROC_DIR_ENV
from primetime.service.process import Server
from primetime.service.promotion import promote
from primetime.service.store import EventStore

WORKERS = 2


def _model_info(url: str) -> dict[str, float]:
    """``primetime_model_info`` by version: how many workers serve each."""
    text = httpx.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "primetime_model_info" and s.value:
                v = s.labels["version"]
                out[v] = out.get(v, 0.0) + s.value
    return out


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Server, Path, str]]:
    home = tmp_path / "home"
    monkeypatch.setenv("PRIMETIME_HOME", str(home))
    data = "synthetic-tiny"
    registry = ModelRegistry(tmp_path / "registry")
    train_for_serving("popularity", data=data, registry=registry)  # v1, promoted
    train_for_serving("popularity", data=data, registry=registry, promote=False)  # v2
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
        "PRIMETIME_PROMOTION_POLL_SECONDS": "0.3",
        "PRIMETIME_ADMIN_TOKEN": "admin-token-for-tests",
    }
    srv = Server(env=env, cwd=tmp_path, log=tmp_path / "server.log", workers=WORKERS)
    yield srv, registry.root, db_url
    srv.stop()


@pytest.mark.slow
def test_a_promotion_reaches_both_workers_with_no_failed_request(
    server: tuple[Server, Path, str],
) -> None:
    srv, root, db_url = server
    srv.start(120)
    url = srv.url
    deadline = time.monotonic() + 60
    while _model_info(url).get("v1", 0) < WORKERS:  # both workers up, serving v1
        assert time.monotonic() < deadline, srv.tail()
        time.sleep(0.2)
    r = httpx.post(
        f"{url}/api/v1/auth/signup", json={"username": "swapper", "password": "pass-word-1"}
    )
    assert r.status_code == 201, r.text
    auth = {"Authorization": f"Bearer {r.json()['token']}", "Connection": "close"}
    answers: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                r = httpx.get(f"{url}/api/v1/recommendations", headers=auth, timeout=10)
                version = r.json().get("model_version", "") if r.status_code == 200 else ""
                answers.append((time.monotonic(), r.status_code, version))
            except httpx.HTTPError as e:  # a dropped connection is a failed request too
                answers.append((time.monotonic(), 0, type(e).__name__))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        with EventStore.open(db_url, migrate=False) as store:
            promote(ModelRegistry(root), store, "popularity", "v2", actor="test")
        promoted_at = time.monotonic()
        deadline = promoted_at + 30
        while _model_info(url).get("v2", 0) < WORKERS:  # every worker swapped
            assert time.monotonic() < deadline, srv.tail()
            time.sleep(0.1)
        swapped_at = time.monotonic()
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    failed = [a for a in answers if a[1] != 200]
    assert not failed, failed[:5]
    before = {v for at, _, v in answers if at < promoted_at}
    after = {v for at, _, v in answers if at > swapped_at + 0.2}
    assert before == {"popularity:v1"}
    assert after == {"popularity:v2"}, after
    assert sum(1 for at, _, _ in answers if at > swapped_at) >= 10
