"""The job system: Celery tasks and beat schedules beside the service (``primetime worker``).

With ``PRIMETIME_BROKER_URL`` set (Redis or RabbitMQ), ``primetime worker --beat`` runs:

- ``primetime.retrain`` (nightly at ``Settings.retrain_at``, UTC): export the events stored
  since the last export into ``Settings.export_folder()`` (what ``primetime data export``
  does), then the retrain job with its gate (what ``primetime retrain`` does), recording
  promotions in the service database, so every running service worker swaps them in
  (:mod:`primetime.service.watch`);
- ``primetime.precompute_carousels`` (every ``carousel_interval_seconds``): the home rows of
  the users with an event in the last ``active_user_hours``, computed by the served pipeline
  and stored in the service's cache under the very key and generation a page view reads
  (:meth:`ServiceState.carousel_rows`), so their next home page is a cache hit; an event
  after it moves the user's generation on, as for any cached entry;
- ``primetime.flush_impressions`` (every ``impression_flush_seconds``): drain the Redis
  impression queue the service writes to when a job system is configured
  (:class:`~primetime.service.impressions.RedisImpressionQueue`) into the database.

Without a broker (the embedded default of ``make demo``) nothing here runs: the service
keeps its in-process impression buffer, computes home rows on demand, and
``primetime retrain`` is run by cron.

The worker builds one :class:`~primetime.service.state.ServiceState` (the served pipeline)
on the first carousel job and keeps it, checking for promotions before each run. Titles
added through a service process after the worker started are not in the worker's catalog
(its cache keys then differ from that process's, so its precomputed rows are never
served there, not wrong ones); restart the worker after adding titles.

Layering: a job above the life cycle and the service, beside the CLI and ``retrain``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.schedules import crontab

from primetime.service.settings import Settings

if TYPE_CHECKING:
    from primetime.service.state import ServiceState
    from primetime.service.store import EventStore
    from primetime.service.watch import PromotionWatcher

__all__ = [
    "NO_BROKER",
    "active_users",
    "beat_schedule",
    "celery_app",
    "configure",
    "precompute_carousels",
    "run_flush_impressions",
    "run_retrain",
]

log = logging.getLogger(__name__)

NO_BROKER = (
    "no job broker: set PRIMETIME_BROKER_URL (redis://127.0.0.1:6379/0 or "
    "amqp://guest:guest@127.0.0.1:5672//) to run a worker. The embedded default needs no "
    "worker: the service writes impressions itself and computes home rows on demand; run "
    "the retrain from cron, e.g. `30 3 * * * primetime data export --database URL --out "
    "DIR && primetime retrain --events DIR`"
)

celery_app = Celery("primetime")
celery_app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    timezone="UTC",
    enable_utc=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # a retrain runs for minutes: one task at a time per process, acknowledged when done
    worker_prefetch_multiplier=1,
    task_acks_late=True,
)

_lock = threading.Lock()
_settings: Settings | None = None
_state: ServiceState | None = None
_watcher: PromotionWatcher | None = None
_drain: tuple[Settings, Any, EventStore] | None = None  # the flush's Redis client and store


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The beat entries: nightly retrain, carousels every few minutes, impressions every
    few seconds (each interval from ``settings``)."""
    hour, minute = (int(x) for x in settings.retrain_at.split(":"))
    return {
        "nightly-retrain": {
            "task": "primetime.retrain",
            "schedule": crontab(hour=hour, minute=minute),
        },
        "precompute-carousels": {
            "task": "primetime.precompute_carousels",
            "schedule": settings.carousel_interval_seconds,
            "options": {"expires": settings.carousel_interval_seconds},
        },
        "flush-impressions": {
            "task": "primetime.flush_impressions",
            "schedule": settings.impression_flush_seconds,
            "options": {"expires": max(settings.impression_flush_seconds, 1.0)},
        },
    }


def configure(settings: Settings | None = None) -> Celery:
    """Point :data:`celery_app` at ``settings``' broker and schedules; the tasks read
    ``settings`` from then on (default: from the environment).

    Raises:
        ValueError: no ``broker_url`` (:data:`NO_BROKER`).
    """
    global _settings
    settings = settings if settings is not None else Settings()
    if settings.broker_url is None:
        raise ValueError(NO_BROKER)
    close()
    with _lock:
        _settings = settings
    # Connections to a broker configured before must not be reused (tests configure twice):
    # drop the app's connection and producer pools, as Celery does after a fork.
    celery_app._after_fork()
    celery_app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend,
        task_default_queue=settings.job_queue,
        beat_schedule=beat_schedule(settings),
    )
    return celery_app


def _current() -> Settings:
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings()
        return _settings


def close() -> None:
    """Drop the worker's service state and the flush's connections (closing them)."""
    global _state, _watcher, _drain
    with _lock:
        svc, _state, _watcher = _state, None, None
        drain, _drain = _drain, None
    if drain is not None:
        drain[1].close()
        drain[2].close()
    if svc is not None:
        svc.close()
        svc.store.close()
        svc.cache.close()


# ------------------------------------------------------------------ retrain
def run_retrain(
    settings: Settings,
    *,
    models: list[str] | None = None,
    slice_days: float = 2.0,
    settle: float = 5.0,
) -> dict[str, Any]:
    """Export the new events, then retrain, gate and promote (recorded in the database).

    Args:
        settings: Database, registry, data set, export folder, margin.
        models: Names to retrain (default: ``settings.retrained_models``: the served
            ones).
        slice_days: The gate slice (``primetime retrain --slice-days``).
        settle: Seconds an event must have been stored to be exported (``--settle``).

    Returns:
        ``{"export": {...}, "results": [{"name", "version", "promoted", "reason"}]}``;
        ``results`` is empty when nothing has ever been exported (no events yet).
    """
    import torch

    from primetime.registry import ModelRegistry
    from primetime.retrain import retrain
    from primetime.service.export import export_events, open_export_engine
    from primetime.service.store import EventStore

    torch.set_num_threads(1)
    reg = ModelRegistry(settings.model_registry_dir())
    names = list(models) if models else settings.retrained_models(reg.names())
    folder = settings.export_folder()
    store = EventStore(open_export_engine(settings.database_url))
    try:
        rep = export_events(store.engine, folder, settle=settle)
        export = {
            "folder": str(folder),
            "new_events": rep.new_events,
            "total_events": rep.total_events,
            "watermark": rep.watermark,
        }
        if rep.total_events == 0:
            log.info("retrain: no events exported yet; nothing to retrain on")
            return {"export": export, "results": []}
        results = retrain(
            names,
            data=settings.data,
            events=folder,
            registry=reg,
            margin=settings.retrain_margin,
            slice_days=slice_days,
            store=store,
            actor="primetime worker",
            say=log.info,
        )
    finally:
        store.close()
    return {
        "export": export,
        "results": [
            {
                "name": r.name,
                "version": r.version.version,
                "promoted": r.promoted,
                "reason": r.gate.reason,
            }
            for r in results
        ],
    }


@celery_app.task(name="primetime.retrain")
def retrain_task(
    models: list[str] | None = None, slice_days: float = 2.0, settle: float = 5.0
) -> dict[str, Any]:
    """Export + retrain + gate (:func:`run_retrain` on the worker's settings)."""
    return run_retrain(_current(), models=models, slice_days=slice_days, settle=settle)


# ---------------------------------------------------------------- carousels
def active_users(svc: ServiceState, since: float) -> list[int]:
    """Ids of the users with an event received at or after ``since`` (unix seconds)."""
    from sqlalchemy import select

    from primetime.service.db import Event

    stmt = select(Event.user_id).where(Event.received_at >= since).distinct()
    with svc.store.engine.connect() as conn:
        return sorted(int(r[0]) for r in conn.execute(stmt))


def precompute_carousels(
    svc: ServiceState, *, hours: float, n: int | None = None, now: float | None = None
) -> dict[str, int]:
    """Compute and cache the home rows of every user active in the last ``hours``.

    Goes through :meth:`ServiceState.carousel_rows`, the function ``GET /api/v1/carousels``
    and the home page call, so the entry has their key, their format and the user's
    current generation; a user whose entry is still fresh is only read.

    Returns:
        ``{"users": active users, "computed": entries written}``.
    """
    from primetime.web.views import HOME_ROW_SIZE

    if not hours > 0:
        raise ValueError(f"hours: expected > 0, got {hours}")
    n = HOME_ROW_SIZE if n is None else n
    now = time.time() if now is None else now
    users = active_users(svc, now - hours * 3600)
    computed = 0
    for uid in users:
        user = svc.store.user(uid)
        if user is None:
            continue
        before = svc.cache.stats().hits
        svc.carousel_rows(user, svc.assignment(uid), n=n)
        computed += svc.cache.stats().hits == before
    log.info("carousels: %d active users, %d entries computed", len(users), computed)
    return {"users": len(users), "computed": computed}


def _service_state(settings: Settings) -> ServiceState:
    """The worker's service state, built on first use; promotions are checked each call."""
    global _state, _watcher
    from primetime.service.app import build_state
    from primetime.service.metrics import ServiceMetrics
    from primetime.service.watch import PromotionWatcher

    with _lock:
        if _state is None:
            _state = build_state(settings, metrics=ServiceMetrics())
            _watcher = PromotionWatcher(_state, interval=1.0)
        svc, watcher = _state, _watcher
    assert watcher is not None
    watcher.check()  # a retrain promoted a version: rows from it, as the service serves
    return svc


@celery_app.task(name="primetime.precompute_carousels")
def precompute_carousels_task(hours: float | None = None) -> dict[str, int]:
    """Precompute the home rows of active users (:func:`precompute_carousels`)."""
    settings = _current()
    return precompute_carousels(
        _service_state(settings),
        hours=settings.active_user_hours if hours is None else hours,
    )


# -------------------------------------------------------------- impressions
def run_flush_impressions(settings: Settings) -> int:
    """Drain the service's Redis impression queue into the database; returns rows written
    (0 when the settings give no queue: the service then writes them itself)."""
    import redis

    from primetime.service.impressions import QUEUE_KEY, drain_impressions
    from primetime.service.store import EventStore

    global _drain
    url = settings.impression_queue_url
    if url is None:
        return 0
    with _lock:  # kept between runs: the task runs every few seconds
        if _drain is None or _drain[0] is not settings:
            if _drain is not None:
                _drain[1].close()
                _drain[2].close()
            client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
            _drain = (settings, client, EventStore.open(settings.database_url, migrate=False))
        _, client, store = _drain
    return drain_impressions(client, settings.redis_prefix + QUEUE_KEY, store)


@celery_app.task(name="primetime.flush_impressions")
def flush_impressions_task() -> int:
    """Write the queued impressions to the database (:func:`run_flush_impressions`)."""
    return run_flush_impressions(_current())
