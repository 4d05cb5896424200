"""Personal endpoints: recommendations, home-page carousels, insights, refresh.

Each reads the user's context from the event store, so the latest event is
always part of the answer; responses are cached under the model version and
the user's generation, which every event of theirs bumps.

``GET /recommendations`` and ``POST /refresh`` are ``async`` and do their work on
the event loop: a cache hit is a dictionary or Redis lookup, and a miss is a few
milliseconds of CPU (one indexed read, the model, the blend) that would hold the
GIL in a worker thread just the same. The thread-pool hop FastAPI makes for a
plain ``def`` route was measured at about 0.5 ms on the 2-core reference machine,
more than a cached response costs. Routes that wait on a commit (``POST /events``)
or compute for long (carousels, insights) stay in the thread pool. Parallelism
comes from ``primetime serve --workers N``.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from primetime.pipeline.realtime import insights as user_insights
from primetime.pipeline.served import ServedUser, served_recommendations
from primetime.service.auth import ensure_owner
from primetime.service.cache import CacheSlot
from primetime.service.edge import EdgeRoute
from primetime.service.errors import unprocessable
from primetime.service.responses import JSONBytes, item_ids, join_objects, json_bytes
from primetime.service.routes.deps import CurrentUser, Svc
from primetime.service.schemas import Carousels, Insights, Recommendations
from primetime.service.state import LoadedModel, ServiceState
from primetime.service.store import UserRecord

router = APIRouter(tags=["recommendations"], route_class=EdgeRoute)


def _onboarding(user: UserRecord) -> list[str]:
    return list(user.onboarding_genres)


def _compute(
    svc: ServiceState,
    user: UserRecord,
    model: LoadedModel,
    slot: CacheSlot,
    *,
    k: int,
    kind: str | None,
    genre: str | None,
    exclude_seen: bool,
) -> bytes:
    """A recommendations body (``cold_start`` and ``items``) as JSON, stored in the cache."""
    view = svc.user_view(user, now=time.time())
    titles = [i for t in user.onboarding_titles if (i := svc.item_index(t))]
    # the one served path, which `primetime benchmark --pipeline` scores as well
    (items,) = served_recommendations(
        model.pipeline,
        [
            ServedUser(
                context=view.context,
                prefs=view.prefs,
                dislikes=view.dislikes,
                exclude=tuple(titles),
                onboarding_genres=tuple(_onboarding(user)),
                demographics=user.demographics,
            )
        ],
        k,
        kind=kind,
        genre=genre,
        exclude_seen=exclude_seen,
    )
    body = json_bytes(
        {
            "cold_start": len(view.context.history) < svc.base.weights.cold_start_threshold,
            "items": [svc.item_json(s) for s in items],
        }
    )
    svc.cache.put(slot, body, svc.settings.cache_ttl_seconds)
    return body


@router.get("/recommendations", response_model=Recommendations)
async def recommendations(
    user: CurrentUser,
    svc: Svc,
    k: Annotated[int, Query(ge=1, le=100, description="How many titles.")] = 10,
    kind: Annotated[Literal["movie", "show"] | None, Query(description="Only this kind.")] = None,
    genre: Annotated[str | None, Query(max_length=64, description="Only this genre.")] = None,
    exclude_seen: Annotated[bool, Query(description="Leave out titles already seen.")] = True,
) -> Response:
    """The signed-in user's top titles, each with a reason ("Because you watched …")."""
    if genre is not None and genre not in svc.genres:
        raise unprocessable(("query", "genre"), f"unknown genre {genre!r}; known: {svc.genres}")
    a = svc.assignment(user.id)
    request_id = uuid.uuid4().hex
    params = {"k": k, "kind": kind, "genre": genre, "seen": exclude_seen}
    key = svc.cache_key("recs", a.model.key, user.id, params)
    body, slot = svc.cache.fetch(user.id, key)
    if body is None:
        body = _compute(
            svc, user, a.model, slot, k=k, kind=kind, genre=genre, exclude_seen=exclude_seen
        )
    svc.metrics.record_recommendations()
    if svc.logs_impressions(a):
        svc.impressions.add(
            user_id=user.id,
            request_id=request_id,
            items=item_ids(body),
            model_version=a.model.key,
            experiment_id=a.experiment_id,
            arm=a.arm,
        )
    head = {
        "user_id": user.id,
        "request_id": request_id,
        "model_version": a.model.key,
        "experiment_id": a.experiment_id,
        "arm": a.arm,
    }
    return JSONBytes(join_objects(json_bytes(head), body))


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
async def refresh(user: CurrentUser, svc: Svc) -> dict[str, Any]:
    """Drop the user's cached lists, so the next request recomputes them."""
    return {"user_id": user.id, "generation": svc.cache.bump_user(user.id)}
