"""Personal endpoints: recommendations, home-page carousels, insights, refresh.

Each reads the user's context from the event store, so the latest event is
always part of the answer; responses are cached under the model version and
the user's generation, which every event of theirs bumps.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from primetime.pipeline.realtime import insights as user_insights
from primetime.service.auth import ensure_owner
from primetime.service.errors import unprocessable
from primetime.service.repository import UserRecord
from primetime.service.routes.deps import CurrentUser, Svc
from primetime.service.schemas import Carousels, Insights, Recommendations
from primetime.service.state import ServiceState

router = APIRouter(tags=["recommendations"])


def _onboarding(user: UserRecord) -> list[str]:
    return list(user.onboarding_genres)


@router.get("/recommendations", response_model=Recommendations)
def recommendations(
    user: CurrentUser,
    svc: Svc,
    k: Annotated[int, Query(ge=1, le=100, description="How many titles.")] = 10,
    kind: Annotated[Literal["movie", "show"] | None, Query(description="Only this kind.")] = None,
    genre: Annotated[str | None, Query(max_length=64, description="Only this genre.")] = None,
    exclude_seen: Annotated[bool, Query(description="Leave out titles already seen.")] = True,
) -> dict[str, Any]:
    """The signed-in user's top titles, each with a reason ("Because you watched …")."""
    if genre is not None and genre not in svc.genres:
        raise unprocessable(("query", "genre"), f"unknown genre {genre!r}; known: {svc.genres}")
    a = svc.assignment(user.id)
    request_id = uuid.uuid4().hex
    params = {"k": k, "kind": kind, "genre": genre, "seen": exclude_seen}
    key = svc.cache_key("recs", a.model.key, user.id, params)
    body = svc.cache_get(key)
    if body is None:
        view = svc.user_view(user)
        titles = [i for t in user.onboarding_titles if (i := svc.item_index(t))]
        items = a.model.pipeline.recommend(
            view.context,
            k,
            prefs=view.prefs,
            now=time.time(),
            kind=kind,
            genre=genre,
            exclude_seen=exclude_seen,
            exclude=titles if exclude_seen else (),
            dislikes=view.dislikes,
            onboarding_genres=_onboarding(user),
            demographics=user.demographics,
        )
        body = {
            "cold_start": len(view.context.history) < svc.base.weights.cold_start_threshold,
            "items": [svc.item_json(s) for s in items],
        }
        svc.cache_set(key, body)
    svc.metrics.record_recommendations()
    svc.impressions.add(
        user_id=user.id,
        request_id=request_id,
        items=[it["item_id"] for it in body["items"]],
        model_version=a.model.key,
        experiment_id=a.experiment_id,
        arm=a.arm,
    )
    return {
        "user_id": user.id,
        "request_id": request_id,
        "model_version": a.model.key,
        "experiment_id": a.experiment_id,
        "arm": a.arm,
        **body,
    }


@router.get("/carousels", response_model=Carousels)
def carousels(
    user: CurrentUser,
    svc: Svc,
    n: Annotated[int, Query(ge=1, le=50, description="Titles per row.")] = 12,
    kind: Annotated[Literal["movie", "show"] | None, Query()] = None,
) -> dict[str, Any]:
    """Home-page rows: continue watching, top picks, because you watched, favourite
    genres (ordered by the live genre weights), trending, new releases."""
    a = svc.assignment(user.id)
    rows = svc.carousel_rows(user, a, n=n, kind=kind)
    return {
        "user_id": user.id,
        "request_id": uuid.uuid4().hex,
        "model_version": a.model.key,
        "rows": rows,
    }


def _insights(svc: ServiceState, user: UserRecord) -> dict[str, Any]:
    view = svc.user_view(user)
    out = user_insights(view.pref_events, svc.item_genres, time.time(), n_genres=len(svc.genres))
    return {"user_id": user.id, **out}


@router.get("/insights", response_model=Insights)
def my_insights(user: CurrentUser, svc: Svc) -> dict[str, Any]:
    """The signed-in user's genre weights now and over time, counts and diversity."""
    return _insights(svc, user)


@router.get("/users/{user_id}/insights", response_model=Insights)
def insights_of(user_id: int, user: CurrentUser, svc: Svc) -> dict[str, Any]:
    """A user's insights: only their own (403 for anybody else's)."""
    ensure_owner(user_id, user.id, what="insights")
    return _insights(svc, user)


@router.post("/refresh", status_code=202)
def refresh(user: CurrentUser, svc: Svc) -> dict[str, Any]:
    """Drop the user's cached lists, so the next request recomputes them."""
    return {"user_id": user.id, "generation": svc.cache.bump_user(user.id)}
