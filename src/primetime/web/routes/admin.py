"""The admin pages: unlock/lock, model versions (promote, reload), experiments (start,
stop) and the live stats fragment. Open to an admin account, the admin cookie or
``X-Admin-Token``; everybody else gets 403."""

from __future__ import annotations

import hmac
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from primetime.service import actions
from primetime.service.actions import ADMIN_TOKEN_ACTOR
from primetime.service.errors import DomainError
from primetime.service.routes.deps import Svc
from primetime.service.schemas import ExperimentIn, Promote
from primetime.service.state import ServiceState
from primetime.service.store import UserRecord
from primetime.web import views
from primetime.web.render import (
    WebRoute,
    domain_error_page,
    error_page,
    is_fragment,
    render,
    see_other,
)
from primetime.web.session import (
    ADMIN_COOKIE,
    ADMIN_COOKIE_SECONDS,
    Viewer,
    admin_cookie_value,
    admin_refusal,
    settings_of,
)

router = APIRouter(include_in_schema=False, route_class=WebRoute)


def _admin_gate(request: Request, user: UserRecord | None) -> Response | None:
    """None for an admin; the 403 page for anybody else (the admin actions' first line)."""
    refusal = admin_refusal(request, user)
    return None if refusal is None else error_page(request, 403, refusal, user=user)


def _admin_context(svc: ServiceState) -> dict[str, Any]:
    versions = views.model_versions(svc)
    metric_names = sorted({m for v in versions for m in v["metrics"]})
    return {
        "page": "admin",
        "versions": versions,
        "metric_names": metric_names,
        "promotions": views.promotion_history(svc),
        "experiments": views.experiments(svc),
        "stats": views.live_stats(svc),
    }


def _to_admin(note: str) -> Response:
    return see_other(f"/admin?{urlencode({'note': note})}")


def _admin_done(request: Request, svc: ServiceState, note: str) -> Response:
    if is_fragment(request):
        return render(request, "_admin_models.html", {**_admin_context(svc), "note": note})
    return _to_admin(note)


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, svc: Svc, user: Viewer, note: str = "") -> Response:
    refusal = admin_refusal(request, user)
    if refusal is not None:
        return render(
            request, "admin_locked.html", {"error": refusal, "page": "admin"}, status=403, user=user
        )
    ctx = {**_admin_context(svc), "note": note[:200]}
    return render(request, "admin.html", ctx, user=user)


@router.post("/admin/unlock", response_class=HTMLResponse)
def admin_unlock(request: Request, user: Viewer, token: Annotated[str, Form()] = "") -> Response:
    settings = settings_of(request)
    expected = settings.admin_token.get_secret_value()
    if not (expected and token and hmac.compare_digest(token.encode(), expected.encode())):
        ctx = {"error": "That is not the admin token.", "page": "admin"}
        return render(request, "admin_locked.html", ctx, status=403, user=user)
    resp = see_other("/admin")
    resp.set_cookie(
        ADMIN_COOKIE,
        admin_cookie_value(settings) or "",
        max_age=ADMIN_COOKIE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        path="/admin",
    )
    return resp


@router.post("/admin/lock")
def admin_lock() -> Response:
    resp = see_other("/admin")
    resp.delete_cookie(ADMIN_COOKIE, path="/admin")
    return resp


@router.post("/admin/promote", response_class=HTMLResponse)
def admin_promote(
    request: Request,
    svc: Svc,
    user: Viewer,
    name: Annotated[str, Form()] = "",
    version: Annotated[str, Form()] = "",
) -> Response:
    if (refused := _admin_gate(request, user)) is not None:
        return refused
    try:
        actor = user.username if user is not None and user.is_admin else ADMIN_TOKEN_ACTOR
        actions.promote_model(svc, name, Promote(version=version).version, actor=actor)
    except (DomainError, ValidationError) as err:
        detail = err.message if isinstance(err, DomainError) else "bad version"
        return error_page(request, 404, f"Cannot promote {name}:{version}: {detail}.", user=user)
    return _admin_done(request, svc, f"Promoted {name}:{version}; reload to serve it.")


@router.post("/admin/reload", response_class=HTMLResponse)
def admin_reload(request: Request, svc: Svc, user: Viewer) -> Response:
    if (refused := _admin_gate(request, user)) is not None:
        return refused
    out = actions.reload_models(svc)
    return _admin_done(request, svc, f"Reloaded: now serving {out['default']}.")


@router.post("/admin/experiments", response_class=HTMLResponse)
def admin_create_experiment(
    request: Request,
    svc: Svc,
    user: Viewer,
    experiment_id: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    control: Annotated[str, Form()] = "",
    treatment: Annotated[str, Form()] = "",
) -> Response:
    if (refused := _admin_gate(request, user)) is not None:
        return refused
    not_started = "Experiment not started: "
    try:
        body = ExperimentIn.model_validate(
            {
                "id": experiment_id,
                "name": name or experiment_id,
                "arms": [
                    {"name": "control", "model_version": control},
                    {"name": "treatment", "model_version": treatment},
                ],
            }
        )
        actions.create_experiment(svc, body)
    except ValidationError as err:
        msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return error_page(request, 422, f"{not_started}{msg}.", user=user)
    except DomainError as err:
        return domain_error_page(request, err, user=user, prefix=not_started)
    return _to_admin(f"Started experiment {experiment_id}.")


@router.post("/admin/experiments/{experiment_id}/stop", response_class=HTMLResponse)
def admin_stop_experiment(request: Request, experiment_id: str, svc: Svc, user: Viewer) -> Response:
    if (refused := _admin_gate(request, user)) is not None:
        return refused
    actions.stop_experiment(svc, experiment_id)
    return _to_admin(f"Stopped experiment {experiment_id}.")


@router.get("/admin/stats", response_class=HTMLResponse)
def admin_stats(request: Request, svc: Svc, user: Viewer) -> Response:
    """Live latency and cache figures (polled by the admin page every few seconds)."""
    if (refused := _admin_gate(request, user)) is not None:
        return refused
    return render(request, "_admin_stats.html", {"stats": views.live_stats(svc)}, user=user)
