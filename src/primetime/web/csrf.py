"""Cross-site request forgery: every state-changing web POST must come from our own pages.

Two checks, both on every POST to a page route (:class:`primetime.web.render.WebRoute`);
a request failing either gets 403 and the HTML error page:

1. **Origin.** The ``Origin`` header names this host (and port); without ``Origin``,
   the ``Referer`` must. Browsers send ``Origin`` with every POST, and our pages send
   a same-origin ``Referer`` (``Referrer-Policy: same-origin``). A request with neither,
   or ``Origin: null``, is refused. The host is the request's ``Host`` header, so a
   reverse proxy must pass it on; the scheme is not compared (a proxy ending TLS makes
   the app see ``http`` while the browser says ``https``).
2. **Token.** The form field ``csrf_token`` (or the ``X-CSRF-Token`` header, which the
   page script also sends) must be the HMAC, under ``settings.secret_key``, of what the
   browser holds: its session token when signed in, else a random pre-session value in
   the ``primetime_csrf`` cookie, set by the first page rendered without a session. So
   the sign-in and sign-up forms are covered too (login CSRF: signing a victim into the
   attacker's account), and another site, which can read neither cookie, cannot make a
   valid token. Either token is accepted while both cookies are valid (a sign-in form
   left open in a tab still works after signing in in another).

Templates put the token in a hidden field of every POST form (``csrf_token`` is in
every template's context, see :func:`primetime.web.render.render`) and in
``<meta name="csrf-token">`` for the script.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from primetime.service.auth import read_token, settings_of, token_from_request
from primetime.service.settings import Settings

CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_COOKIE: Final = "primetime_csrf"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

CROSS_SITE: Final = (
    "This form was not sent from a Primetime page (cross-site request refused). "
    "Reload the page and try again."
)
BAD_TOKEN: Final = (
    "This form has expired or was not sent from a Primetime page. Reload the page and try again."
)

_PRE_VALUE: Final = re.compile(r"[A-Za-z0-9_-]{32,64}")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def token_for(settings: Settings, binding: str) -> str:
    """The token of one binding (``"session:<token>"`` or ``"pre:<cookie value>"``)."""
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"primetime-csrf|{binding}".encode(), hashlib.sha256).hexdigest()


def _session_binding(request: Request) -> str | None:
    try:
        token = token_from_request(request)
    except HTTPException:  # a malformed Authorization header: no session
        return None
    if token and read_token(token, settings_of(request)) is not None:
        return f"session:{token}"
    return None


def _pre_session_value(request: Request) -> str | None:
    value = request.cookies.get(CSRF_COOKIE)
    return value if value and _PRE_VALUE.fullmatch(value) else None


def csrf_token(request: Request) -> str:
    """The token the page being rendered puts in its forms; without a session it mints
    the pre-session value (:func:`set_csrf_cookie` then sends it)."""
    binding = _session_binding(request)
    if binding is None:
        value = _pre_session_value(request) or getattr(request.state, "csrf_minted", None)
        if value is None:
            value = secrets.token_urlsafe(32)
            request.state.csrf_minted = value
        binding = f"pre:{value}"
    return token_for(settings_of(request), binding)


def set_csrf_cookie(request: Request, response: Response) -> None:
    """Send the pre-session cookie when this request minted its value."""
    value = getattr(request.state, "csrf_minted", None)
    if value is None:
        return
    response.set_cookie(
        CSRF_COOKIE,
        value,
        httponly=True,
        samesite="lax",
        secure=settings_of(request).cookie_secure,
        path="/",
    )


def _host(url: str) -> str | None:
    """``host[:port]`` of an http(s) URL or origin, the port only when not the default."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return parts.hostname
    return f"{parts.hostname}:{port}"


def _request_host(request: Request) -> str | None:
    host = request.headers.get("host")
    if not host:
        return None
    return _host(f"http://{host}") if not host.endswith(":443") else _host(f"https://{host}")


def same_origin(request: Request) -> bool:
    """The ``Origin`` (else the ``Referer``) names this host."""
    here = _request_host(request)
    origin = request.headers.get("origin")
    if origin is not None:
        return here is not None and origin != "null" and _host(origin) == here
    referer = request.headers.get("referer")
    return here is not None and referer is not None and _host(referer) == here


def refusal(request: Request, form: FormData | None) -> str | None:
    """None when a state-changing web request passes both checks, else why not."""
    if not same_origin(request):
        return CROSS_SITE
    sent = form.get(CSRF_FIELD) if form is not None else None
    if not isinstance(sent, str) or not sent:
        sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        return BAD_TOKEN
    settings = settings_of(request)
    candidates = [b for b in (_session_binding(request),) if b is not None]
    if (pre := _pre_session_value(request)) is not None:
        candidates.append(f"pre:{pre}")
    for binding in candidates:
        if hmac.compare_digest(sent.encode(), token_for(settings, binding).encode()):
            return None
    return BAD_TOKEN
