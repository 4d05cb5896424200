"""Admin endpoints (admin token or an admin account): models, reload, experiments, stats."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from primetime.service import actions
from primetime.service.auth import require_admin
from primetime.service.routes.deps import Svc
from primetime.service.schemas import ExperimentIn, ExperimentReport, ModelVersionOut, Promote

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


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
def promote(name: str, body: Promote, svc: Svc) -> list[dict[str, Any]]:
    """Promote a version (served after the next reload)."""
    actions.promote_model(svc, name, body.version)
    return _versions(svc)


@router.post("/reload")
def reload(svc: Svc) -> dict[str, Any]:
    """Load the promoted versions and swap them in without dropping requests."""
    return actions.reload_models(svc)


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
