"""The web app: server-rendered pages and the small HTML fragments the pages swap in.

Pages (all but sign-in/up need a session; without one they redirect to
``/signin?next=…``):

======================================  ===============================================
``GET  /``                              home: hero, then the user's rows
``GET|POST /signin``, ``/signup``       forms; success sets the session cookie
``POST /signout``                       clears it
``GET|POST /onboarding``                pick genres and titles (titles count as likes)
``GET  /title/{item_id}``               details, seasons, similar titles, actions
``POST /title/{item_id}/events``        an action (play, complete, like, dislike, rate,
                                        add to / remove from list); with ``X-Fragment``
                                        it answers the refreshed actions and rows
``GET  /search``, ``/search/results``   search page; results fragment (instant search)
``GET  /insights``                      the signed-in user's charts
``GET  /users/{user_id}/insights``      403 unless it is the signed-in user
``GET  /admin`` (+ POSTs)               models, promote/reload, experiments, live stats;
                                        admin account, admin cookie or X-Admin-Token
``GET  /rows``                          home rows fragment (refresh after back-navigation)
``GET  /posters/{item_id}``             TMDb image (cached) or generated SVG
``/static/…``                           CSS, JS, icon
======================================  ===============================================

A request with the header ``X-Fragment: 1`` (sent by ``static/app.js``) gets the
piece of HTML it will swap in instead of a whole page or a redirect; without
JavaScript every form still works by posting and following the redirect.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import escape
from pydantic import ValidationError

from primetime.service import actions
from primetime.service.auth import (
    ADMIN_TOKEN_HEADER,
    clear_session_cookie,
    optional_user_id,
    set_session_cookie,
)
from primetime.service.errors import Conflict, DomainError, InvalidInput, Unauthorized
from primetime.service.repository import UserRecord
from primetime.service.routes.deps import Svc
from primetime.service.schemas import EventIn, ExperimentIn, Promote
from primetime.service.settings import Settings
from primetime.service.state import ServiceState
from primetime.web import views
from primetime.web.charts import ci_bar
from primetime.web.posters import (
    TitleInfo,
    TmdbPosters,
    display_title,
    genre_colour,
    svg_poster,
    tmdb_from_env,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

#: Cookie that opens the admin pages after the admin token was typed in once.
ADMIN_COOKIE = "primetime_admin"
ADMIN_COOKIE_SECONDS = 8 * 3600
FRAGMENT_HEADER = "x-fragment"

#: Sent with every page: only this origin's scripts, styles, images and forms.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
POSTER_CACHE = "public, max-age=86400"

#: Form actions of the title page -> event types of the API.
ACTIONS = {
    "play": "play",
    "complete": "complete",
    "like": "like",
    "dislike": "dislike",
    "add-to-list": "add-to-list",
    "remove-from-list": "remove-from-list",
    "rate": "rate",
}
DONE = {
    "play": "Playing {t}",
    "complete": "Marked {t} as watched",
    "like": "You liked {t}",
    "dislike": "You disliked {t}: you will see less like it",
    "add-to-list": "Added {t} to your list",
    "remove-from-list": "Removed {t} from your list",
    "rate": "You rated {t} {r} out of 5",
}

router = APIRouter(include_in_schema=False)


# ---------------------------------------------------------------- rendering
@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja environment (templates are package files; compiled once per process)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(title_text=display_title, reason_text=views.reason_text)
    env.globals.update(
        static_url=static_url,
        poster_url=views.poster_url,
        title_url=views.title_url,
        kind_label=views.kind_label,
        card_html=views.card_html,
        genre_colour=genre_colour,
        ci_bar=ci_bar,
    )
    return env


@lru_cache(maxsize=64)
def static_url(name: str) -> str:
    """``/static/<name>?v=<content hash>``: a new file gets a new URL (cache busting)."""
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]
    return f"/static/{name}?v={digest}"


def _render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    user: UserRecord | None = None,
) -> HTMLResponse:
    ctx = {
        "request": request,
        "user": user,
        "is_admin": _is_admin_viewer(request, user),
        **(context or {}),
    }
    html = environment().get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _is_fragment(request: Request) -> bool:
    return request.headers.get(FRAGMENT_HEADER) == "1"


def _error(
    request: Request, status: int, message: str, *, user: UserRecord | None = None
) -> HTMLResponse:
    if _is_fragment(request):
        return HTMLResponse(
            f'<p class="error" data-status="{_attr(message)}">{_attr(message)}</p>',
            status_code=status,
            headers=SECURITY_HEADERS,
        )
    return _render(
        request, "error.html", {"status": status, "message": message}, status=status, user=user
    )


def _sentence(text: str) -> str:
    """``text`` as a sentence: first letter upper case, a full stop at the end."""
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _domain_error(
    request: Request, err: DomainError, *, user: UserRecord | None = None, prefix: str = ""
) -> HTMLResponse:
    """An action's refusal as the error page, with the status the API would answer."""
    return _error(request, err.http_status, prefix + _sentence(err.message), user=user)


def _attr(text: str) -> str:
    return str(escape(text))


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _safe_next(target: str | None) -> str:
    """Only local paths: an open redirect would let another site use our sign-in page."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _to_signin(request: Request) -> Response:
    if _is_fragment(request):
        return _error(request, 401, "Your session has ended: sign in again.")
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _see_other(f"/signin?{urlencode({'next': here})}")


# -------------------------------------------------------------------- users
def viewer(request: Request, svc: Svc) -> UserRecord | None:
    """The signed-in user's record, or None (no, bad or expired session; deleted account)."""
    uid = optional_user_id(request)
    return svc.user(uid) if uid is not None else None


Viewer = Annotated[UserRecord | None, Depends(viewer)]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _admin_cookie_value(settings: Settings) -> str | None:
    """The admin cookie's value: an HMAC of the admin token under the secret key, so the
    token itself never sits in a browser, and rotating either signs admins out."""
    token = settings.admin_token.get_secret_value()
    if not token:
        return None
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"admin:{token}".encode(), hashlib.sha256).hexdigest()


def _is_admin_viewer(request: Request, user: UserRecord | None) -> bool:
    if user is not None and user.is_admin:
        return True
    expected = _admin_cookie_value(_settings(request))
    sent = request.cookies.get(ADMIN_COOKIE)
    return bool(expected and sent and hmac.compare_digest(sent, expected))


def _admin_refusal(request: Request, user: UserRecord | None) -> str | None:
    """None when the caller may use the admin pages, else why not.

    Accepted: ``X-Admin-Token`` (a wrong one is refused even with a good cookie), the
    admin cookie set by ``POST /admin/unlock``, or an admin account's session.
    """
    sent = request.headers.get(ADMIN_TOKEN_HEADER)
    if sent is not None:
        expected = _settings(request).admin_token.get_secret_value()
        if expected and hmac.compare_digest(sent.encode(), expected.encode()):
            return None
        return f"{ADMIN_TOKEN_HEADER} does not match the configured admin token."
    if _is_admin_viewer(request, user):
        return None
    return "Admin only: enter the admin token, or sign in with an admin account."


def _admin_gate(request: Request, user: UserRecord | None) -> Response | None:
    """None for an admin; the 403 page for anybody else (the admin actions' first line)."""
    refusal = _admin_refusal(request, user)
    return None if refusal is None else _error(request, 403, refusal, user=user)


# -------------------------------------------------------------------- auth
@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, user: Viewer, next: str = "/") -> Response:
    if user is not None:
        return _see_other(_safe_next(next))
    return _render(request, "signin.html", {"next": _safe_next(next), "page": "signin"})


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    svc: Svc,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    try:
        signed_in = actions.sign_in(svc, username, password)
    except Unauthorized:
        ctx = {
            "next": _safe_next(next),
            "username": username,
            "error": "Wrong username or password.",
            "page": "signin",
        }
        return _render(request, "signin.html", ctx, status=401)
    resp = _see_other(_safe_next(next))
    set_session_cookie(resp, signed_in.token, svc.settings)
    return resp


@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request, user: Viewer) -> Response:
    if user is not None:
        return _see_other("/")
    return _render(request, "signup.html", {"page": "signup"})


@router.post("/signup", response_class=HTMLResponse)
def signup(
    request: Request,
    svc: Svc,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    errors: dict[str, str] = {}
    try:
        signed_in = actions.sign_up(svc, username, password)
    except InvalidInput as err:
        for loc, msg in err.problems:
            errors.setdefault(str(loc[0]) if loc else "username", msg.capitalize() + ".")
    except Conflict:
        errors["username"] = f"The username {username!r} is taken."
    else:
        resp = _see_other("/onboarding")
        set_session_cookie(resp, signed_in.token, svc.settings)
        return resp
    ctx = {"username": username, "errors": errors, "page": "signup"}
    return _render(request, "signup.html", ctx, status=422)


@router.post("/signout")
def signout(request: Request) -> Response:
    resp = _see_other("/signin")
    clear_session_cookie(resp, _settings(request))
    resp.delete_cookie(ADMIN_COOKIE, path="/admin")
    return resp


@router.get("/onboarding", response_class=HTMLResponse)
def onboarding_page(request: Request, svc: Svc, user: Viewer) -> Response:
    if user is None:
        return _to_signin(request)
    ctx = {
        "page": "onboarding",
        "genres": svc.genres,
        "picked_genres": set(user.onboarding_genres),
        "titles": views.onboarding_choices(svc),
        "picked_titles": set(user.onboarding_titles),
    }
    return _render(request, "onboarding.html", ctx, user=user)


@router.post("/onboarding", response_class=HTMLResponse)
def onboarding(
    request: Request,
    svc: Svc,
    user: Viewer,
    genres: Annotated[list[str] | None, Form()] = None,
    titles: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Store the picks; each picked title is also recorded as a ``like`` so that the home
    page shows "Because you watched <it>" and the genre rows at once."""
    if user is None:
        return _to_signin(request)
    genres, titles = list(dict.fromkeys(genres or [])), list(dict.fromkeys(titles or []))
    try:
        actions.save_onboarding(svc, user, genres, titles)
    except DomainError as err:
        return _domain_error(request, err, user=user)
    fresh = [t for t in titles if t not in set(user.onboarding_titles)]
    actions.like_titles(svc, user.id, fresh, source="onboarding")
    return _see_other("/")


# -------------------------------------------------------------------- home
@router.get("/", response_class=HTMLResponse)
def home(request: Request, svc: Svc, user: Viewer, background: BackgroundTasks) -> Response:
    if user is None:
        return _to_signin(request)
    data = views.carousel_rows(svc, user)
    rid = None
    if data.experiment_id is not None or svc.settings.impressions == "all":
        background.add_task(views.log_impressions, svc, user.id, data)
        rid = data.request_id
    ctx = {"page": "home", "data": data, "rows": data.rows, "rid": rid}
    return _render(request, "home.html", ctx, user=user)


@router.get("/rows", response_class=HTMLResponse)
def rows_fragment(request: Request, svc: Svc, user: Viewer) -> Response:
    """The home rows alone (swapped in when the page is shown again from the back button)."""
    if user is None:
        return _to_signin(request)
    data = views.carousel_rows(svc, user)
    ctx = {"rows": data.rows, "rid": data.request_id if data.experiment_id else None}
    return _render(request, "_rows.html", ctx, user=user)


# ------------------------------------------------------------------- titles
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
        return _to_signin(request)
    idx = svc.item_index(item_id)
    if idx is None:
        return _error(request, 404, f"There is no title {item_id!r}.", user=user)
    rid = rid if rid and len(rid) <= 128 else None
    ctx = {
        "page": "title",
        "details": views.title_details(svc, idx),
        **_title_context(svc, user, idx, rid),
    }
    return _render(request, "title.html", ctx, user=user)


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
        return _to_signin(request)
    idx = svc.item_index(item_id)
    if idx is None:
        return _error(request, 404, f"There is no title {item_id!r}.", user=user)
    action = action or ("rate" if rating else "")
    if action not in ACTIONS:
        return _error(request, 422, f"Unknown action {action!r}.", user=user)
    try:
        stars = float(rating) if action == "rate" else None
        event = EventIn.model_validate(
            {
                "item_id": item_id,
                "event_type": ACTIONS[action],
                "rating": stars,
                "device": "web",
                "request_id": rid[:128] or None,
            }
        )
    except (ValueError, ValidationError):
        return _error(request, 422, "A rating must be a number from 1 to 5.", user=user)
    try:
        actions.record_events(svc, user.id, [event])
    except DomainError as err:
        return _domain_error(request, err, user=user)
    if not _is_fragment(request):
        return _see_other(views.title_url(item_id, rid or None))
    title = display_title(svc.titles[idx - 1])
    status = DONE[action].format(t=title, r=f"{stars:g}" if stars else "")
    ctx = {**_title_context(svc, user, idx, rid or None), "status": status}
    return _render(request, "_title_live.html", ctx, user=user)


# ------------------------------------------------------------------- search
def _search(svc: ServiceState, q: str) -> list[dict[str, Any]]:
    q = q.strip()[:100]
    return [svc.title_json(i) for i in svc.search(q, 30)] if q else []


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, svc: Svc, user: Viewer, q: str = "") -> Response:
    if user is None:
        return _to_signin(request)
    ctx = {"page": "search", "q": q, "results": _search(svc, q)}
    return _render(request, "search.html", ctx, user=user)


@router.get("/search/results", response_class=HTMLResponse)
def search_results(request: Request, svc: Svc, user: Viewer, q: str = "") -> Response:
    """The results list alone, for instant search as the user types."""
    if user is None:
        return _to_signin(request)
    return _render(request, "_search_results.html", {"q": q, "results": _search(svc, q)}, user=user)


# ----------------------------------------------------------------- insights
@router.get("/insights", response_class=HTMLResponse)
def insights_page(request: Request, svc: Svc, user: Viewer) -> Response:
    if user is None:
        return _to_signin(request)
    ctx = {"page": "insights", **views.insights_view(svc, user)}
    return _render(request, "insights.html", ctx, user=user)


@router.get("/users/{user_id}/insights", response_class=HTMLResponse)
def insights_of(request: Request, user_id: int, svc: Svc, user: Viewer) -> Response:
    """Only one's own insights (403 for anybody else's, whether or not they exist)."""
    if user is None:
        return _to_signin(request)
    if user_id != user.id:
        return _error(request, 403, "You can only see your own insights.", user=user)
    return insights_page(request, svc, user)


# -------------------------------------------------------------------- admin
def _admin_context(svc: ServiceState) -> dict[str, Any]:
    versions = views.model_versions(svc)
    metric_names = sorted({m for v in versions for m in v["metrics"]})
    return {
        "page": "admin",
        "versions": versions,
        "metric_names": metric_names,
        "experiments": views.experiments(svc),
        "stats": views.live_stats(svc),
    }


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, svc: Svc, user: Viewer, note: str = "") -> Response:
    refusal = _admin_refusal(request, user)
    if refusal is not None:
        return _render(
            request, "admin_locked.html", {"error": refusal, "page": "admin"}, status=403, user=user
        )
    ctx = {**_admin_context(svc), "note": note[:200]}
    return _render(request, "admin.html", ctx, user=user)


@router.post("/admin/unlock", response_class=HTMLResponse)
def admin_unlock(request: Request, user: Viewer, token: Annotated[str, Form()] = "") -> Response:
    settings = _settings(request)
    expected = settings.admin_token.get_secret_value()
    if not (expected and token and hmac.compare_digest(token.encode(), expected.encode())):
        ctx = {"error": "That is not the admin token.", "page": "admin"}
        return _render(request, "admin_locked.html", ctx, status=403, user=user)
    resp = _see_other("/admin")
    resp.set_cookie(
        ADMIN_COOKIE,
        _admin_cookie_value(settings) or "",
        max_age=ADMIN_COOKIE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        path="/admin",
    )
    return resp


@router.post("/admin/lock")
def admin_lock() -> Response:
    resp = _see_other("/admin")
    resp.delete_cookie(ADMIN_COOKIE, path="/admin")
    return resp


def _admin_done(request: Request, svc: ServiceState, note: str) -> Response:
    if _is_fragment(request):
        return _render(request, "_admin_models.html", {**_admin_context(svc), "note": note})
    return _see_other(f"/admin?{urlencode({'note': note})}")


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
        actions.promote_model(svc, name, Promote(version=version).version)
    except (DomainError, ValidationError) as err:
        detail = err.message if isinstance(err, DomainError) else "bad version"
        return _error(request, 404, f"Cannot promote {name}:{version}: {detail}.", user=user)
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
        return _error(request, 422, f"Experiment not started: {msg}.", user=user)
    except DomainError as err:
        return _domain_error(request, err, user=user, prefix="Experiment not started: ")
    return _see_other(f"/admin?{urlencode({'note': f'Started experiment {experiment_id}.'})}")


@router.post("/admin/experiments/{experiment_id}/stop", response_class=HTMLResponse)
def admin_stop_experiment(request: Request, experiment_id: str, svc: Svc, user: Viewer) -> Response:
    if (refused := _admin_gate(request, user)) is not None:
        return refused
    try:
        actions.stop_experiment(svc, experiment_id)
    except DomainError as err:
        return _domain_error(request, err, user=user)
    return _see_other(f"/admin?{urlencode({'note': f'Stopped experiment {experiment_id}.'})}")


@router.get("/admin/stats", response_class=HTMLResponse)
def admin_stats(request: Request, svc: Svc, user: Viewer) -> Response:
    """Live latency and cache figures (polled by the admin page every few seconds)."""
    if (refused := _admin_gate(request, user)) is not None:
        return refused
    return _render(request, "_admin_stats.html", {"stats": views.live_stats(svc)}, user=user)


# ------------------------------------------------------------------ posters
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


# -------------------------------------------------------------------- mount
def mount_web(app: FastAPI, *, tmdb: TmdbPosters | None = None) -> None:
    """Add the pages to ``app`` and serve ``/static``.

    Args:
        app: The service app (from ``create_app``).
        tmdb: Poster source; default: TMDb when ``PRIMETIME_TMDB_API_KEY`` is set, else
            none (generated SVG posters).
    """
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.tmdb = tmdb if tmdb is not None else tmdb_from_env()
    if app.state.tmdb is not None:
        log.info("posters from TMDb, cached in %s", app.state.tmdb.cache_dir)
    environment()
