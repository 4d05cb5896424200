"""Posters: a cached TMDb image when configured (``app.state.tmdb``), else generated SVG."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from primetime.service.routes.deps import Svc
from primetime.web.posters import TitleInfo, TmdbPosters, svg_poster
from primetime.web.render import WebRoute

POSTER_CACHE = "public, max-age=86400"

router = APIRouter(include_in_schema=False, route_class=WebRoute)


@router.get("/posters/{item_id}")
def poster(request: Request, item_id: str, svc: Svc) -> Response:
    """The poster of a title: a cached TMDb image when configured, else generated SVG."""
    idx = svc.item_index(item_id)
    if idx is None:
        return Response("no such title", status_code=404, media_type="text/plain")
    row = svc.catalog.row(idx)
    tmdb: TmdbPosters | None = getattr(request.app.state, "tmdb", None)
    if tmdb is not None:
        info = TitleInfo(item_id, str(row["title"]), row.get("year"), str(row["kind"]))  # type: ignore[arg-type]
        path = tmdb.poster(info)
        if path is not None:
            return FileResponse(
                path, media_type="image/jpeg", headers={"Cache-Control": POSTER_CACHE}
            )
    svg = svg_poster(
        item_id,
        str(row["title"]),
        year=row.get("year"),  # type: ignore[arg-type]
        kind=str(row["kind"]),
        genres=list(row.get("genres") or []),  # type: ignore[call-overload]
        season=row.get("season_number"),  # type: ignore[arg-type]
    )
    return Response(
        svg,
        media_type="image/svg+xml",
        headers={"Cache-Control": POSTER_CACHE, "X-Content-Type-Options": "nosniff"},
    )
