"""Operations: liveness, readiness and Prometheus metrics (at the root, by convention)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from primetime.service.db import DB_RETRY_AFTER_S
from primetime.service.edge import EdgeRoute
from primetime.service.schemas import Health, Ready

router = APIRouter(tags=["ops"], route_class=EdgeRoute)


@router.get("/health", response_model=Health)
async def health() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready}})
def ready(request: Request) -> Response:
    """Models loaded and the database reachable (503 otherwise)."""
    svc = getattr(request.app.state, "svc", None)
    if svc is None:
        body = Ready(status="starting", database=False, cache="-", model_version="-", titles=0)
        return JSONResponse(body.model_dump(), status_code=503)
    db = svc.store.ping()
    body = Ready(
        status="ready" if db else "degraded",
        database=db,
        cache=svc.cache.stats().backend,
        model_version=svc.slots.default.key,
        titles=len(svc.item_ids),
    )
    headers = None if db else {"Retry-After": str(DB_RETRY_AFTER_S)}
    return JSONResponse(body.model_dump(), status_code=200 if db else 503, headers=headers)


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format: latency per route, cache hit ratio, events/s, model version."""
    payload, content_type = request.app.state.metrics.render(request.headers.get("accept"))
    return Response(payload, media_type=content_type)
