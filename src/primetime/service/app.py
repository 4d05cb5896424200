"""The FastAPI application: ``create_app(settings)`` and its lifespan.

The lifespan opens the event store (running migrations), mirrors the catalog
into it, connects the cache, builds the pipeline side data and loads the
promoted model versions from the registry.

``create_app`` is the one place that wires the app together: the API routers
(:mod:`primetime.service.routes`, under ``/api/v1`` except ops), their error
handlers, the web pages (:mod:`primetime.web.routes`) and ``/static``.
Cross-cutting concerns (request ids, timing, rate limits, body limits) are ASGI
middlewares.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from primetime import __version__
from primetime.data.dataset import Dataset
from primetime.registry import ModelRegistry
from primetime.service import actions
from primetime.service.cache import Cache, make_cache
from primetime.service.errors import responses
from primetime.service.fastlane import EventsFastLane
from primetime.service.ingest import GroupCommit
from primetime.service.metrics import ServiceMetrics
from primetime.service.middleware import add_service_middleware
from primetime.service.routes import account, admin, events, ops, recs, titles
from primetime.service.routes.deps import store_session_check
from primetime.service.routes.errors import install_error_handlers
from primetime.service.settings import Settings
from primetime.service.state import ServiceState
from primetime.service.store import EventStore
from primetime.web import STATIC_DIR
from primetime.web.posters import tmdb_from_env
from primetime.web.routes import router as web_router

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

DESCRIPTION = """
Real-time movie and TV recommendations.

Sign up (`POST /api/v1/auth/signup`) or sign in to get a token, send it as
`Authorization: Bearer <token>` (the web pages use the session cookie), post
what you do (`POST /api/v1/events`) and read recommendations that already
reflect it (`GET /api/v1/recommendations`). Admin endpoints take the
`X-Admin-Token` header.
"""


def _load_dataset(settings: Settings) -> Dataset:
    from primetime.data.open import open_dataset

    return open_dataset(settings.data).dataset


def build_state(
    settings: Settings,
    *,
    metrics: ServiceMetrics,
    dataset: Dataset | None = None,
    registry: ModelRegistry | None = None,
    store: EventStore | None = None,
    cache: Cache | None = None,
) -> ServiceState:
    """Open (or take) every part of the service and build its state."""
    import torch

    torch.set_num_threads(1)  # one request, one core: latency over throughput per request
    dataset = dataset if dataset is not None else _load_dataset(settings)
    store = (
        store
        if store is not None
        else EventStore.open(
            settings.database_url, statement_timeout=settings.db_statement_timeout_seconds
        )
    )
    frame = dataset.catalog.frame
    store.sync_titles(
        {
            "item_id": r["item_id"],
            "title": r["title"],
            "kind": r["kind"],
            "year": r["year"],
            "genres": list(r["genres"] or []),
        }
        for r in frame.select("item_id", "title", "kind", "year", "genres").iter_rows(named=True)
    )
    # The registry is the one store of model versions: nothing of it is copied to the
    # database (which keeps only the promotion history, see `service.promotion`).
    registry = registry if registry is not None else ModelRegistry(settings.registry_dir)
    cache = (
        cache
        if cache is not None
        else make_cache(
            settings.cache_url,
            ttl=settings.cache_ttl_seconds,
            **({"prefix": settings.redis_prefix} if settings.cache_backend == "redis" else {}),
        )
    )
    metrics.set_cache_stats_source(cache.stats)
    return ServiceState(
        settings, dataset=dataset, store=store, cache=cache, metrics=metrics, registry=registry
    )


def create_app(
    settings: Settings | None = None,
    *,
    dataset: Dataset | None = None,
    registry: ModelRegistry | None = None,
    store: EventStore | None = None,
    cache: Cache | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """The service as an ASGI app.

    Args:
        settings: Defaults to :class:`Settings` from the environment / ``.env``.
        dataset: Catalog and log to serve (default: ``settings.data``).
        registry: Model registry (default: ``settings.registry_dir``).
        store, cache: Ready-made parts (tests); opened from ``settings`` otherwise.
        freeze_heap: After start-up, ``gc.freeze()`` what is loaded (a server process of
            its own: `app_from_env`; not for an app among others in one process, whose
            garbage would then never be collected).
    """
    settings = settings if settings is not None else Settings()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = await run_in_threadpool(
            build_state,
            settings,
            metrics=metrics,
            dataset=dataset,
            registry=registry,
            store=store,
            cache=cache,
        )
        if settings.group_commit:
            svc.group_commit = GroupCommit(
                functools.partial(actions.store_groups, svc),
                after=functools.partial(actions.after_groups, svc),
                window_s=settings.group_commit_window_ms / 1000,
                max_events=settings.group_commit_max_events,
            )
        app.state.svc = svc
        watcher = None
        if settings.promotion_poll_seconds > 0 and svc.store.engine.url.database not in (
            None,
            "",
            ":memory:",
        ):  # an in-memory database is one process's: nothing else can promote into it
            from primetime.service.watch import PromotionWatcher

            watcher = PromotionWatcher(svc, settings.promotion_poll_seconds).start()
        app.state.promotion_watcher = watcher
        if freeze_heap:
            # Everything loaded so far lives as long as the process: move it out of the
            # collector's reach, so a full collection scans only what requests add (one
            # over the loaded catalog and models took 0.18 s on the reference machine).
            gc.collect()
            gc.freeze()
        log.info("serving %s (%d titles)", svc.slots.default.key, len(svc.item_ids))
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()
            app.state.svc = None
            if svc.group_commit is not None:
                await svc.group_commit.close()  # what is pending is written first
            svc.close()
            if store is None:
                svc.store.close()
            if cache is None:
                svc.cache.close()
            metrics.close()  # a worker among several leaves the merged metrics

    app = FastAPI(
        title="Primetime",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "account", "description": "Sign-up, sign-in, onboarding."},
            {"name": "events", "description": "What users do; durable on 201."},
            {"name": "recommendations", "description": "Personal lists, rows and insights."},
            {"name": "titles", "description": "The catalog: details, similar titles, search."},
            {"name": "admin", "description": "Models, reloads, A/B tests (admin token)."},
            {"name": "ops", "description": "Health, readiness, Prometheus metrics."},
        ],
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.svc = None
    app.state.session_check = store_session_check(app)  # tokens are honoured while open
    install_error_handlers(app)
    codes = {
        account: (400, 401, 409, 413, 429),
        events: (400, 401, 409, 413, 429),
        recs: (401, 403, 429),
        titles: (404, 429),
        admin: (400, 401, 403, 404, 409, 413, 429),
    }
    for module, errs in codes.items():
        app.include_router(module.router, prefix=API_PREFIX, responses=responses(*errs))
    app.include_router(ops.router)
    if settings.events_fast_lane:  # innermost: the service's middlewares apply to it
        app.add_middleware(EventsFastLane, path=f"{API_PREFIX}/events")
    add_service_middleware(app, settings=settings, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type", "X-Admin-Token", "X-Request-ID"],
        )
    # The site: pages at the root, their assets under /static, posters from TMDb when
    # PRIMETIME_TMDB_API_KEY is set (else generated SVG).
    app.include_router(web_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.tmdb = tmdb_from_env()
    if app.state.tmdb is not None:
        log.info("posters from TMDb, cached in %s", app.state.tmdb.cache_dir)
    return app


def app_from_env() -> FastAPI:
    """``create_app`` with settings from the environment (uvicorn's ``--factory`` entry)."""
    return create_app(Settings(), freeze_heap=True)
