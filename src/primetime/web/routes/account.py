"""Sign-in, sign-up, sign-out (here or everywhere) and onboarding: the forms that make or
change a session. Every answer is sent with ``Cache-Control: no-store`` (`render`,
`see_other`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from primetime.service import actions
from primetime.service.auth import clear_session_cookie, set_session_cookie, signed_token
from primetime.service.errors import Conflict, InvalidInput, TooManyRequests, Unauthorized
from primetime.service.routes.deps import Svc, client_address
from primetime.web import views
from primetime.web.render import WebRoute, render, safe_next, see_other, to_signin
from primetime.web.session import ADMIN_COOKIE, Viewer, settings_of

router = APIRouter(include_in_schema=False, route_class=WebRoute)


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, user: Viewer, next: str = "/") -> Response:
    if user is not None:
        return see_other(safe_next(next))
    return render(request, "signin.html", {"next": safe_next(next), "page": "signin"})


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    svc: Svc,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    ctx = {"next": safe_next(next), "username": username, "page": "signin"}
    try:
        signed_in = actions.sign_in(
            svc,
            username,
            password,
            address=client_address(request),
            user_agent=request.headers.get("user-agent"),
        )
    except Unauthorized:
        return render(
            request, "signin.html", {**ctx, "error": "Wrong username or password."}, status=401
        )
    except TooManyRequests as err:
        wait = f"{err.retry_after} second{'s' if err.retry_after != 1 else ''}"
        page = render(
            request,
            "signin.html",
            {**ctx, "error": f"Too many failed sign-ins: try again in {wait}."},
            status=429,
        )
        page.headers["Retry-After"] = str(err.retry_after)
        return page
    resp = see_other(safe_next(next))
    set_session_cookie(resp, signed_in.token, svc.settings)
    return resp


@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request, user: Viewer) -> Response:
    if user is not None:
        return see_other("/")
    return render(request, "signup.html", {"page": "signup"})


@router.post("/signup", response_class=HTMLResponse)
def signup(
    request: Request,
    svc: Svc,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    """Create the account; a bad field or a taken name re-renders the form with its message."""
    errors: dict[str, str] = {}
    try:
        signed_in = actions.sign_up(
            svc, username, password, user_agent=request.headers.get("user-agent")
        )
    except InvalidInput as err:
        for loc, msg in err.problems:
            errors.setdefault(str(loc[0]) if loc else "username", msg.capitalize() + ".")
    except Conflict:
        errors["username"] = f"The username {username!r} is taken."
    else:
        resp = see_other("/onboarding")
        set_session_cookie(resp, signed_in.token, svc.settings)
        return resp
    ctx = {"username": username, "errors": errors, "page": "signup"}
    return render(request, "signup.html", ctx, status=422)


def _signed_out(request: Request) -> Response:
    resp = see_other("/signin")
    clear_session_cookie(resp, settings_of(request))
    resp.delete_cookie(ADMIN_COOKIE, path="/admin")
    return resp


@router.post("/signout")
def signout(request: Request, svc: Svc) -> Response:
    """End this browser's session (its cookie stops working even if kept)."""
    actions.sign_out(svc, signed_token(request))
    return _signed_out(request)


@router.post("/signout-everywhere")
def signout_everywhere(request: Request, svc: Svc, user: Viewer) -> Response:
    """End every session of the account: other browsers and API tokens too."""
    if user is None:
        return to_signin(request)
    actions.sign_out_everywhere(svc, user.id)
    return _signed_out(request)


@router.get("/onboarding", response_class=HTMLResponse)
def onboarding_page(request: Request, svc: Svc, user: Viewer) -> Response:
    if user is None:
        return to_signin(request)
    ctx = {
        "page": "onboarding",
        "genres": svc.genres,
        "picked_genres": set(user.onboarding_genres),
        "titles": views.onboarding_choices(svc),
        "picked_titles": set(user.onboarding_titles),
    }
    return render(request, "onboarding.html", ctx, user=user)


@router.post("/onboarding", response_class=HTMLResponse)
def onboarding(
    request: Request,
    svc: Svc,
    user: Viewer,
    genres: Annotated[list[str] | None, Form()] = None,
    titles: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Store the picks; each newly picked title is also recorded as a ``like`` so that the
    home page shows "Because you watched <it>" and the genre rows at once. Bad picks get
    the error page (422)."""
    if user is None:
        return to_signin(request)
    genres, titles = list(dict.fromkeys(genres or [])), list(dict.fromkeys(titles or []))
    actions.save_onboarding(svc, user, genres, titles)
    fresh = [t for t in titles if t not in set(user.onboarding_titles)]
    actions.like_titles(svc, user.id, fresh, source="onboarding")
    return see_other("/")
