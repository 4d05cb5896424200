"""Admin endpoints (admin token or an admin account): models and their promotion history,
reload, experiments, stats."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from primetime.service.auth import require_admin
from primetime.service.errors import unprocessable
from primetime.service.experiments import experiment_report
from primetime.service.promotion import promote as promote_model
from primetime.service.routes.deps import Svc
from primetime.service.schemas import (
    ExperimentIn,
    ExperimentReport,
    ModelVersionOut,
    Promote,
    PromotionOut,
)

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

AdminId = Annotated[int | None, Depends(require_admin)]
"""The admin account's user id, None for the admin token (FastAPI runs the check once)."""

ADMIN_TOKEN_ACTOR = "admin token"
"""`actor` of a promotion made with the admin token rather than an admin account."""


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
        }
        for v in svc.registry.versions()
    ]


@router.get("/models", response_model=list[ModelVersionOut])
def models(svc: Svc) -> list[dict[str, Any]]:
    """Every registered model version with its offline metrics."""
    return _versions(svc)


@router.post("/models/{name}/promote", response_model=list[ModelVersionOut])
def promote(name: str, body: Promote, svc: Svc, admin: AdminId) -> list[dict[str, Any]]:
    """Promote a version in the registry (served after the next reload) and add it to the
    promotion history."""
    try:
        promote_model(
            svc.registry,
            svc.store,
            name,
            body.version,
            actor=actor_of(svc, admin),
            note=body.note,
        )
    except (KeyError, ValueError) as err:
        raise HTTPException(404, str(err).strip("'\"")) from None
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
    slots = svc.reload()
    return {"default": slots.default.key, "loaded": sorted(slots.by_key)}


@router.post("/experiments", response_model=ExperimentReport, status_code=201)
def create_experiment(body: ExperimentIn, svc: Svc) -> dict[str, Any]:
    """Start an A/B test: users are split by a stable hash between the arms' versions."""
    for arm in body.arms:
        try:
            svc.model(arm.model_version)
        except (KeyError, ValueError):
            raise unprocessable(
                ("body", "arms"),
                f"no model version {arm.model_version!r} (see /api/v1/admin/models)",
            ) from None
    if svc.store.experiment(body.id) is not None:
        raise HTTPException(409, f"experiment {body.id!r} exists")
    svc.store.create_experiment(body.id, body.name, [a.model_dump() for a in body.arms])
    svc.experiments_changed()
    return experiment_report(svc.store, body.id)


@router.get("/experiments/{experiment_id}", response_model=ExperimentReport)
def get_experiment(experiment_id: str, svc: Svc) -> dict[str, Any]:
    """CTR and completion rate per arm with 95% Wilson intervals."""
    svc.impressions.flush()
    try:
        return experiment_report(svc.store, experiment_id)
    except KeyError:
        raise HTTPException(404, f"no experiment {experiment_id!r}") from None


@router.post("/experiments/{experiment_id}/stop", response_model=ExperimentReport)
def stop_experiment(experiment_id: str, svc: Svc) -> dict[str, Any]:
    if svc.store.experiment(experiment_id) is None:
        raise HTTPException(404, f"no experiment {experiment_id!r}")
    svc.store.set_experiment_active(experiment_id, False)
    svc.experiments_changed()
    return experiment_report(svc.store, experiment_id)


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
