"""Admin endpoints (admin token or an admin account): models and their promotion history,
reload, experiments, stats, new titles."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from primetime.service import actions
from primetime.service.actions import ADMIN_TOKEN_ACTOR
from primetime.service.auth import require_admin
from primetime.service.edge import EdgeRoute
from primetime.service.newtitles import TitleIn
from primetime.service.routes.deps import Svc
from primetime.service.schemas import (
    ExperimentIn,
    ExperimentReport,
    ModelVersionOut,
    Promote,
    PromotionOut,
)

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    route_class=EdgeRoute,
)

AdminId = Annotated[int | None, Depends(require_admin)]
"""The admin account's user id, None for the admin token (FastAPI runs the check once)."""


def actor_of(svc: Svc, admin_id: int | None) -> str:
    """Who an admin is, for the promotion history: the account's username, else the token."""
    if admin_id is None:
        return ADMIN_TOKEN_ACTOR
    user = svc.store.user(admin_id)
    return user.username if user is not None else f"user {admin_id}"


def _versions(svc: Svc) -> list[dict[str, Any]]:
    loaded = svc.slots.by_key
    return [
        {
            "name": v.name,
            "version": v.version,
            "promoted": v.promoted,
            "created_at": v.created_at,
            "metrics": dict(v.metrics or {}),
            "loaded": f"{v.name}:{v.version}" in loaded,
            "blend": dataclasses.asdict(blend),
            "blend_source": source,
        }
        for v in svc.registry.versions()
        for blend, source in [svc.blend_of(v)]
    ]


@router.get("/models", response_model=list[ModelVersionOut])
def models(svc: Svc) -> list[dict[str, Any]]:
    """Every registered model version with its offline metrics."""
    return _versions(svc)


@router.post("/models/{name}/promote", response_model=list[ModelVersionOut])
def promote(name: str, body: Promote, svc: Svc, admin: AdminId) -> list[dict[str, Any]]:
    """Promote a version in the registry (served after the next reload) and add it to the
    promotion history."""
    actions.promote_model(svc, name, body.version, actor=actor_of(svc, admin), note=body.note)
    return _versions(svc)


@router.get("/promotions", response_model=list[PromotionOut])
def promotions(
    svc: Svc, name: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    """The promotion history (of one model name, or all), newest first."""
    return [
        {
            "name": p.name,
            "version": p.version,
            "previous_version": p.previous_version,
            "promoted_at": p.promoted_at,
            "actor": p.actor,
            "note": p.note,
        }
        for p in reversed(svc.store.promotions(name, limit=limit))
    ]


@router.post("/reload")
def reload(svc: Svc) -> dict[str, Any]:
    """Load the promoted versions and swap them in without dropping requests."""
    return actions.reload_models(svc)


@router.post("/titles", status_code=201)
def add_title(body: TitleIn, svc: Svc) -> dict[str, Any]:
    """Add a title to the running catalog: the content and graph models score it at once
    (no retraining), it appears in the "New on Primetime" row with a content reason.
    The answer says which loaded models scored it themselves (``models``); the others
    rank it by the content member (``content_model``). 409 when the item id exists."""
    return actions.add_title(svc, body)


@router.post("/experiments", response_model=ExperimentReport, status_code=201)
def create_experiment(body: ExperimentIn, svc: Svc) -> dict[str, Any]:
    """Start an A/B test: users are split by a stable hash between the arms' versions."""
    return actions.create_experiment(svc, body)


@router.get("/experiments/{experiment_id}", response_model=ExperimentReport)
def get_experiment(experiment_id: str, svc: Svc) -> dict[str, Any]:
    """CTR and completion rate per arm with 95% Wilson intervals."""
    return actions.experiment_status(svc, experiment_id)


@router.post("/experiments/{experiment_id}/stop", response_model=ExperimentReport)
def stop_experiment(experiment_id: str, svc: Svc) -> dict[str, Any]:
    return actions.stop_experiment(svc, experiment_id)


@router.get("/stats")
def stats(svc: Svc) -> dict[str, Any]:
    """Live latency percentiles per route, cache figures, events/s, model versions, and how
    this worker got its users' state (``user_views``: folds kept, caught up, rebuilt)."""
    views = svc.views
    return {
        **svc.metrics.snapshot(),
        "default_model": svc.slots.default.key,
        "user_views": {
            "kept": len(views),
            "updated": views.stats.updated,
            "rebuilt": views.stats.rebuilt,
        },
    }
