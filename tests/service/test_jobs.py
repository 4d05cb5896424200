"""The job system with a real Celery worker on a real Redis broker: each task sent through the
broker and its effect checked where the service sees it (impression rows in the database,
home rows in the Redis cache served by the API, a retrained version promoted and recorded).

The worker runs in a thread of the test process (``celery.contrib.testing.worker``); without
Redis these tests skip, or fail under CI (``redis_url`` of ``conftest.py``)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from primetime import jobs
from primetime.cli import app as cli_app
from primetime.lifecycle import train_for_serving
from primetime.registry import ModelRegistry
from primetime.service.app import create_app
from primetime.service.db import migrate
from primetime.service.impressions import QUEUE_KEY, RedisImpressionQueue
from primetime.service.settings import Settings
from primetime.service.store import EventStore

DATA = "synthetic-tiny"
ADMIN = "admin-token-for-job-tests-0123456789"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    reg = ModelRegistry(tmp_path_factory.mktemp("jobs") / "registry")
    train_for_serving("popularity", data=DATA, registry=reg)  # v1, promoted
    return reg


@pytest.fixture
def settings(
    tmp_path: Path, registry: ModelRegistry, redis_url: str, redis_prefix: str
) -> Settings:
    db_url = f"sqlite:///{tmp_path / 'service.db'}"
    migrate(db_url)
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=db_url,
        registry_dir=registry.root,
        data=DATA,
        models=["popularity"],
        cache_url=redis_url,
        broker_url=redis_url,
        result_backend=redis_url,
        redis_prefix=redis_prefix,
        # a queue of this test's own: a worker of another session on the same Redis takes none
        job_queue=redis_prefix + "jobs",
        export_dir=tmp_path / "export",
        retrain_margin=1.0,  # the gate promotes (NDCG@10 differs by less than 1)
        impressions="all",
        rate_limit_per_minute=0,
        promotion_poll_seconds=0,
        admin_token=SecretStr(ADMIN),
    )


@pytest.fixture(autouse=True)
def _keep_log_levels() -> Iterator[None]:
    """Celery's test worker sets log levels on the loggers it finds (``primetime`` to
    ERROR): put them back, so later tests still see warnings."""
    loggers = [logging.root, *map(logging.getLogger, list(logging.root.manager.loggerDict))]
    levels = [(lg, lg.level) for lg in loggers]
    yield
    for lg, level in levels:
        lg.setLevel(level)


@pytest.fixture
def worker(settings: Settings) -> Iterator[None]:
    """A real worker on the settings' broker, in a thread of this process."""
    app = jobs.configure(settings)
    with start_worker(app, pool="solo", perform_ping_check=False, queues=[settings.job_queue]):
        yield
    jobs.close()
    _forget_queue(settings)


def _forget_queue(settings: Settings) -> None:
    """Delete the bindings kombu keeps in Redis for the test's queue (outside its prefix)."""
    assert settings.broker_url is not None
    client = redis.Redis.from_url(settings.broker_url)
    try:
        q = settings.job_queue
        client.delete(f"_kombu.binding.{q}", f"_kombu.binding_permanent.{q}")
    finally:
        client.close()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _signup(c: TestClient, name: str) -> dict[str, str]:
    r = c.post("/api/v1/auth/signup", json={"username": name, "password": "pass-word-1"})
    assert r.status_code == 201, r.text
    c.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _post_events(c: TestClient, h: dict[str, str], items: list[str]) -> None:
    body = {"events": [{"item_id": i, "event_type": "play"} for i in items]}
    r = c.post("/api/v1/events", headers=h, json=body)
    assert r.status_code in (200, 201, 202), r.text


def _items(c: TestClient, n: int) -> list[str]:
    ids: list[str] = c.app.state.svc.item_ids  # type: ignore[attr-defined]
    return ids[:n]


def test_impressions_go_through_the_redis_queue_and_the_task_writes_them(
    settings: Settings, worker: None, client: TestClient, redis_url: str
) -> None:
    svc = client.app.state.svc  # type: ignore[attr-defined]
    assert isinstance(svc.impressions, RedisImpressionQueue)
    h = _signup(client, "viewer")
    uid = client.get("/api/v1/me", headers=h).json()["user_id"]
    for _ in range(3):
        r = client.get("/api/v1/recommendations", headers=h, params={"k": 5})
        assert r.status_code == 200, r.text
    rdb = redis.Redis.from_url(redis_url)
    key = settings.redis_prefix + QUEUE_KEY
    assert rdb.llen(key) == 3  # queued in Redis, not written by the request
    store = EventStore.open(settings.database_url, migrate=False)
    try:
        assert store.impressions(uid) == []
        written = jobs.flush_impressions_task.delay().get(timeout=30)
        assert written == 15
        assert len(store.impressions(uid)) == 15
        assert rdb.llen(key) == 0
    finally:
        store.close()
        rdb.close()


def test_precomputed_carousels_are_what_the_api_serves_until_the_next_event(
    settings: Settings, worker: None, client: TestClient
) -> None:
    svc = client.app.state.svc  # type: ignore[attr-defined]
    h = _signup(client, "active")
    items = _items(client, 4)
    _post_events(client, h, items[:3])
    idle = _signup(client, "idle")  # no event: not active, nothing precomputed for them
    got = jobs.precompute_carousels_task.delay().get(timeout=60)
    assert got == {"users": 1, "computed": 1}
    hits = svc.cache.stats().hits
    r = client.get("/api/v1/carousels", headers=h)
    assert r.status_code == 200, r.text
    assert svc.cache.stats().hits == hits + 1  # the precomputed entry
    # ... and it is exactly what the worker stored
    user = svc.store.user(r.json()["user_id"])
    key = svc.cache_key("rows", svc.assignment(user.id).model.key, user.id, {"n": 12, "kind": None})
    cached, _ = svc.cache.fetch(user.id, key)
    assert cached is not None and json.loads(cached) == r.json()["rows"]
    hits, misses = svc.cache.stats().hits, svc.cache.stats().misses
    r = client.get("/api/v1/carousels", headers=idle)  # not active: computed on request
    assert r.status_code == 200 and svc.cache.stats().hits == hits
    assert svc.cache.stats().misses == misses + 1
    misses = svc.cache.stats().misses
    _post_events(client, h, items[3:4])  # an event after the precompute invalidates it
    hits = svc.cache.stats().hits
    r = client.get("/api/v1/carousels", headers=h)
    assert r.status_code == 200 and svc.cache.stats().hits == hits
    assert svc.cache.stats().misses > misses


def test_retrain_task_exports_registers_and_records_the_promotion(
    settings: Settings, worker: None, client: TestClient, registry: ModelRegistry
) -> None:
    items = _items(client, 12)
    now = time.time()
    for u in range(6):
        h = _signup(client, f"user{u}")
        body = {
            "events": [
                {"item_id": i, "event_type": "play", "ts": now - 3 * 86400 + k * 3600 * 6 + u}
                for k, i in enumerate(items[u : u + 6])
            ]
        }
        assert client.post("/api/v1/events", headers=h, json=body).status_code < 300
    store = EventStore.open(settings.database_url, migrate=False)
    try:
        before = len(store.promotions())
        # settle=0: export the events stored just now
        out = jobs.retrain_task.delay(slice_days=1.0, settle=0.0).get(timeout=120)
        assert out["export"]["new_events"] == 36
        (res,) = out["results"]
        assert res["name"] == "popularity" and res["promoted"], res
        version = res["version"]
        gate = registry.get("popularity", version).meta["retrain"]
        assert gate["promote"] is True and gate["margin"] == 1.0 and gate["n_users"] > 0
        assert registry.promoted("popularity").version == version  # type: ignore[union-attr]
        # recorded in the history every service worker watches
        (row,) = store.promotions()[before:]
        assert (row.version, row.actor) == (version, "primetime worker")
        # a second run with no new events exports nothing and still gates on the folder
        again = jobs.retrain_task.delay(slice_days=1.0, settle=0.0).get(timeout=120)
        assert again["export"]["new_events"] == 0 and again["export"]["total_events"] == 36
    finally:
        store.close()


def test_worker_without_a_broker_exits_2_and_says_how_to_run_without_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PRIMETIME_BROKER_URL", raising=False)
    r = CliRunner().invoke(cli_app, ["worker"])
    assert r.exit_code == 2, r.output
    assert "PRIMETIME_BROKER_URL" in r.output and "primetime retrain" in r.output


def test_primetime_worker_runs_the_tasks_it_is_sent(
    settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    """The command itself (a process of its own, as deployed): it takes a flush from the
    broker and writes the queued impressions."""
    store = EventStore.open(settings.database_url, migrate=False)
    uid = store.create_user("queued", "x" * 60).id
    queue = RedisImpressionQueue(redis_url, store, prefix=settings.redis_prefix)
    queue.add(user_id=uid, request_id="r1", items=["a", "b"], model_version="popularity:v1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMETIME_")}
    env |= {
        "PRIMETIME_HOME": str(tmp_path / "home"),
        "PRIMETIME_DATABASE_URL": settings.database_url,
        "PRIMETIME_BROKER_URL": redis_url,
        "PRIMETIME_RESULT_BACKEND": redis_url,
        "PRIMETIME_REDIS_PREFIX": settings.redis_prefix,
        "PRIMETIME_JOB_QUEUE": settings.job_queue,
    }
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "primetime.cli", "worker", "--concurrency", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        jobs.configure(settings)
        assert jobs.flush_impressions_task.delay().get(timeout=45) == 2
        assert [i.item_id for i in store.impressions(uid)] == ["a", "b"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        queue.close()
        store.close()
        _forget_queue(settings)


def test_a_rabbitmq_broker_runs_the_tasks_and_impressions_queue_on_the_redis_cache(
    settings: Settings, rabbitmq_url: str, redis_url: str
) -> None:
    amqp = settings.model_copy(update={"broker_url": rabbitmq_url})
    assert amqp.impression_queue_url == redis_url  # the broker is not Redis: the cache is
    store = EventStore.open(amqp.database_url, migrate=False)
    uid = store.create_user("rabbit", "x" * 60).id
    queue = RedisImpressionQueue(redis_url, store, prefix=amqp.redis_prefix)
    queue.add(user_id=uid, request_id="r1", items=["a"], model_version="popularity:v1")
    app = jobs.configure(amqp)
    try:
        with start_worker(
            app, pool="solo", perform_ping_check=False, queues=[amqp.job_queue], shutdown_timeout=30
        ):
            assert jobs.flush_impressions_task.delay().get(timeout=30) == 1
        assert [i.item_id for i in store.impressions(uid)] == ["a"]
    finally:
        with app.connection_for_write() as conn:  # RabbitMQ keeps a queue until deleted
            conn.default_channel.queue_delete(amqp.job_queue)
        jobs.close()
        queue.close()
        store.close()


def test_the_beat_schedule_follows_the_settings() -> None:
    s = Settings(
        _env_file=None,  # type: ignore[call-arg]
        broker_url="redis://h:1/0",
        retrain_at="04:15",
        carousel_interval_seconds=120,
        impression_flush_seconds=2,
    )
    sched = jobs.beat_schedule(s)
    nightly = sched["nightly-retrain"]["schedule"]
    assert sched["nightly-retrain"]["task"] == jobs.retrain_task.name
    assert nightly.hour == {4} and nightly.minute == {15}
    assert sched["precompute-carousels"]["schedule"] == 120
    assert sched["flush-impressions"]["schedule"] == 2
    with pytest.raises(ValueError, match="retrain_at"):
        Settings(_env_file=None, retrain_at="25:00")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="PRIMETIME_BROKER_URL"):
        jobs.configure(Settings(_env_file=None))  # type: ignore[call-arg]
