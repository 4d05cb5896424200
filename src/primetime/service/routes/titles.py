"""Public catalog endpoints: a title, similar titles, search, genres."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from primetime.service.edge import EdgeRoute
from primetime.service.routes.deps import Svc
from primetime.service.schemas import SearchResults, Similar, TitleOut

router = APIRouter(tags=["titles"], route_class=EdgeRoute)


def _index(svc: Svc, item_id: str) -> int:
    idx = svc.item_index(item_id)
    if idx is None:
        raise HTTPException(404, f"no title {item_id!r}")
    return idx


@router.get("/titles/{item_id}", response_model=TitleOut)
def title(item_id: str, svc: Svc) -> dict[str, Any]:
    """A title's details: kind, year, genres and, for shows, network and seasons."""
    return svc.title_json(_index(svc, item_id))


@router.get("/titles/{item_id}/similar", response_model=Similar)
def similar(
    item_id: str,
    svc: Svc,
    k: Annotated[int, Query(ge=1, le=50)] = 10,
    kind: Annotated[Literal["movie", "show"] | None, Query()] = None,
) -> dict[str, Any]:
    """Titles like this one, with reasons ("Watched together with …", "Also in …")."""
    idx = _index(svc, item_id)
    items = svc.slots.default.pipeline.similar(idx, k, kind=kind)
    return {"item_id": item_id, "items": [svc.item_json(s) for s in items]}


@router.get("/search", response_model=SearchResults)
def search(
    svc: Svc,
    q: Annotated[str, Query(min_length=1, max_length=100, description="Part of a title.")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    """Titles whose name contains ``q`` (case-insensitive; prefix matches first)."""
    return {"query": q, "items": [svc.title_json(i) for i in svc.search(q, limit)]}


@router.get("/genres", response_model=list[str])
def genres(svc: Svc) -> list[str]:
    """Every genre of the catalog (for onboarding)."""
    return svc.genres
