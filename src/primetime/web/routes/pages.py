"""The signed-in user's pages: home and its rows, a title and its actions, search,
insights."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from primetime.data.events import EventType
from primetime.service import actions
from primetime.service.db import REQUEST_ID_MAX
from primetime.service.routes.deps import Svc
from primetime.service.schemas import EventIn
from primetime.service.state import ServiceState
from primetime.service.store import UserRecord
from primetime.web import views
from primetime.web.posters import display_title
from primetime.web.render import WebRoute, error_page, is_fragment, render, see_other, to_signin
from primetime.web.session import Viewer

router = APIRouter(include_in_schema=False, route_class=WebRoute)

#: What the title page says after each of its form actions (the buttons' values are
#: the event types themselves).
DONE: dict[EventType, str] = {
    EventType.PLAY: "Playing {t}",
    EventType.COMPLETE: "Marked {t} as watched",
    EventType.LIKE: "You liked {t}",
    EventType.DISLIKE: "You disliked {t}: you will see less like it",
    EventType.ADD_TO_LIST: "Added {t} to your list",
    EventType.REMOVE_FROM_LIST: "Removed {t} from your list",
    EventType.RATE: "You rated {t} {r} out of 5",
}
#: Form actions of the title page (a subset of the event types).
ACTIONS = frozenset(DONE)


# -------------------------------------------------------------------- home
@router.get("/", response_class=HTMLResponse)
def home(request: Request, svc: Svc, user: Viewer, background: BackgroundTasks) -> Response:
    if user is None:
        return to_signin(request)
    data = views.carousel_rows(svc, user)
    rid = None
    if data.experiment_id is not None or svc.settings.impressions == "all":
        background.add_task(views.log_impressions, svc, user.id, data)
        rid = data.request_id
    ctx = {"page": "home", "data": data, "rows": data.rows, "rid": rid}
    return render(request, "home.html", ctx, user=user)


@router.get("/rows", response_class=HTMLResponse)
def rows_fragment(request: Request, svc: Svc, user: Viewer) -> Response:
    """The home rows alone (swapped in when the page is shown again from the back button)."""
    if user is None:
        return to_signin(request)
    data = views.carousel_rows(svc, user)
    ctx = {"rows": data.rows, "rid": data.request_id if data.experiment_id else None}
    return render(request, "_rows.html", ctx, user=user)


# ------------------------------------------------------------------- titles
def _request_id(rid: str | None) -> str | None:
    """The request id a title link or form carries, or None when there is none or it is
    longer than the events accept (an id the service never issued: dropped, not cut)."""
    return rid if rid and len(rid) <= REQUEST_ID_MAX else None


def _title_context(
    svc: ServiceState, user: UserRecord, idx: int, rid: str | None
) -> dict[str, Any]:
    info = svc.title_json(idx)
    data = views.carousel_rows(svc, user)
    return {
        "item": info,
        "state": views.title_state(svc, user, info["item_id"]),
        "live_rows": views.live_rows(data),
        "rid": rid,
        "rows_rid": None,  # impressions are logged by the home page only
    }


@router.get("/title/{item_id}", response_class=HTMLResponse)
def title_page(
    request: Request, item_id: str, svc: Svc, user: Viewer, rid: str | None = None
) -> Response:
    if user is None:
        return to_signin(request)
    idx = svc.item_index(item_id)
    if idx is None:
        return error_page(request, 404, f"There is no title {item_id!r}.", user=user)
    rid = _request_id(rid)
    ctx = {
        "page": "title",
        "details": views.title_details(svc, idx),
        **_title_context(svc, user, idx, rid),
    }
    return render(request, "title.html", ctx, user=user)


@router.post("/title/{item_id}/events", response_class=HTMLResponse)
def title_event(
    request: Request,
    item_id: str,
    svc: Svc,
    user: Viewer,
    action: Annotated[str, Form()] = "",
    rating: Annotated[str, Form()] = "",
    rid: Annotated[str, Form()] = "",
) -> Response:
    """Record one action (as the events API would); answer the refreshed live panel."""
    if user is None:
        return to_signin(request)
    idx = svc.item_index(item_id)
    if idx is None:
        return error_page(request, 404, f"There is no title {item_id!r}.", user=user)
    kind = EventType.try_parse(action) if action else (EventType.RATE if rating else None)
    if kind is None or kind not in ACTIONS:
        return error_page(request, 422, f"Unknown action {action!r}.", user=user)
    request_id = _request_id(rid)
    try:
        stars = float(rating) if kind == EventType.RATE else None
        event = EventIn.model_validate(
            {
                "item_id": item_id,
                "event_type": kind,
                "rating": stars,
                "device": "web",
                "request_id": request_id,
            }
        )
    except (ValueError, ValidationError):
        return error_page(request, 422, "A rating must be a number from 1 to 5.", user=user)
    actions.record_events(svc, user.id, [event])
    if not is_fragment(request):
        return see_other(views.title_url(item_id, request_id))
    title = display_title(svc.titles[idx - 1])
    status = DONE[kind].format(t=title, r=f"{stars:g}" if stars else "")
    ctx = {**_title_context(svc, user, idx, request_id), "status": status}
    return render(request, "_title_live.html", ctx, user=user)


# ------------------------------------------------------------------- search
def _search(svc: ServiceState, q: str) -> list[dict[str, Any]]:
    q = q.strip()[:100]
    return [svc.title_json(i) for i in svc.search(q, 30)] if q else []


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, svc: Svc, user: Viewer, q: str = "") -> Response:
    if user is None:
        return to_signin(request)
    ctx = {"page": "search", "q": q, "results": _search(svc, q)}
    return render(request, "search.html", ctx, user=user)


@router.get("/search/results", response_class=HTMLResponse)
def search_results(request: Request, svc: Svc, user: Viewer, q: str = "") -> Response:
    """The results list alone, for instant search as the user types."""
    if user is None:
        return to_signin(request)
    return render(request, "_search_results.html", {"q": q, "results": _search(svc, q)}, user=user)


# ----------------------------------------------------------------- insights
@router.get("/insights", response_class=HTMLResponse)
def insights_page(request: Request, svc: Svc, user: Viewer) -> Response:
    if user is None:
        return to_signin(request)
    ctx = {"page": "insights", **views.insights_view(svc, user)}
    return render(request, "insights.html", ctx, user=user)


@router.get("/users/{user_id}/insights", response_class=HTMLResponse)
def insights_of(request: Request, user_id: int, svc: Svc, user: Viewer) -> Response:
    """Only one's own insights (403 for anybody else's, whether or not they exist)."""
    if user is None:
        return to_signin(request)
    if user_id != user.id:
        return error_page(request, 403, "You can only see your own insights.", user=user)
    return insights_page(request, svc, user)
