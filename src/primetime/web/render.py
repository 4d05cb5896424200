"""Rendering for the pages: the Jinja environment, responses with the security headers,
redirects, and the HTML error page, which is also where the service's domain errors
become pages (:class:`WebRoute`).

A request with the header ``X-Fragment: 1`` (sent by ``static/app.js``) gets the piece
of HTML it will swap in instead of a whole page or a redirect.

Every page's context has ``csrf_token`` for its forms, and every POST to a page route
is checked for it and for its origin (:mod:`primetime.web.csrf`): 403 otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import escape
from starlette.datastructures import FormData

from primetime.service.db import DB_RETRY_AFTER_S, UNAVAILABLE
from primetime.service.edge import EdgeRoute
from primetime.service.errors import DomainError
from primetime.service.store import UserRecord
from primetime.web import STATIC_DIR, TEMPLATES_DIR, csrf, views
from primetime.web.charts import ci_bar
from primetime.web.posters import display_title, genre_colour
from primetime.web.session import is_admin_viewer, signed_in_user

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


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja environment (templates are package files; compiled once per process)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
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
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:10]
    return f"/static/{name}?v={digest}"


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    user: UserRecord | None = None,
) -> HTMLResponse:
    """A page (or fragment) from ``template`` with the signed-in ``user`` for the nav."""
    ctx = {
        "request": request,
        "user": user,
        "is_admin": is_admin_viewer(request, user),
        **(context or {}),
    }
    ctx.setdefault("csrf_token", csrf.csrf_token(request))
    html = environment().get_template(template).render(ctx)
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    csrf.set_csrf_cookie(request, response)
    return response


def is_fragment(request: Request) -> bool:
    return request.headers.get(FRAGMENT_HEADER) == "1"


def error_page(
    request: Request, status: int, message: str, *, user: UserRecord | None = None
) -> HTMLResponse:
    """The error page (a one-line fragment for ``X-Fragment`` requests)."""
    if is_fragment(request):
        text = str(escape(message))
        return HTMLResponse(
            f'<p class="error" data-status="{text}">{text}</p>',
            status_code=status,
            headers=SECURITY_HEADERS,
        )
    return render(
        request, "error.html", {"status": status, "message": message}, status=status, user=user
    )


def sentence(text: str) -> str:
    """``text`` as a sentence: first letter upper case, a full stop at the end."""
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def domain_error_page(
    request: Request, err: DomainError, *, user: UserRecord | None = None, prefix: str = ""
) -> HTMLResponse:
    """An action's refusal as the error page, with the status the API would answer."""
    return error_page(request, err.http_status, prefix + sentence(err.message), user=user)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def safe_next(target: str | None) -> str:
    """Only local paths: an open redirect would let another site use our sign-in page."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def to_signin(request: Request) -> Response:
    """Where a page without a session goes: the sign-in page, then back here."""
    if is_fragment(request):
        return error_page(request, 401, "Your session has ended: sign in again.")
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return see_other(f"/signin?{urlencode({'next': here})}")


def invalid_input_page(
    request: Request, err: RequestValidationError, *, user: UserRecord | None = None
) -> HTMLResponse:
    """A request the schema or the edge refused (e.g. a NUL character in a form field),
    as the 422 error page naming each bad field."""
    problems = []
    for e in err.errors():
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or "the request"
        problems.append(f"{field}: {e.get('msg', 'invalid')}")
    text = "; ".join(problems) or "invalid input"
    return error_page(request, 422, f"Cannot accept this form: {text}.", user=user)


async def _form_of(request: Request) -> FormData | None:
    """The request's form (parsed once: FastAPI reuses it), None for another body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return await request.form()
    return None


DB_UNAVAILABLE_PAGE = "The database is unavailable or too slow right now: try again in a moment."


class WebRoute(EdgeRoute):
    """A page route: a POST without our token or from another origin is refused with 403
    (:mod:`primetime.web.csrf`); what the edge refuses (:class:`EdgeRoute`), a form the schema
    refuses and a domain error its handler lets through become the error page (never
    the API's JSON), with the signed-in user in the nav; a database outage the 503 page
    with ``Retry-After``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                if request.method not in csrf.SAFE_METHODS:
                    refused = csrf.refusal(request, await _form_of(request))
                    if refused is not None:
                        user = signed_in_user(request, getattr(request.app.state, "svc", None))
                        return error_page(request, 403, refused, user=user)
                return await handle(request)
            except DomainError as err:
                user = signed_in_user(request, getattr(request.app.state, "svc", None))
                return domain_error_page(request, err, user=user)
            except RequestValidationError as err:
                user = signed_in_user(request, getattr(request.app.state, "svc", None))
                return invalid_input_page(request, err, user=user)
            except UNAVAILABLE:  # no user for the nav: reading it needs the database too
                page = error_page(request, 503, DB_UNAVAILABLE_PAGE)
                page.headers["Retry-After"] = str(DB_RETRY_AFTER_S)
                return page

        return route_handler
