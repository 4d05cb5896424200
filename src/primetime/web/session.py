"""Who is looking at a page: the signed-in user (session cookie) and whether they may
use the admin pages (admin account, admin cookie or ``X-Admin-Token``)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request

from primetime.service.auth import ADMIN_TOKEN_HEADER, optional_user_id
from primetime.service.routes.deps import Svc
from primetime.service.settings import Settings
from primetime.service.state import ServiceState
from primetime.service.store import UserRecord

#: Cookie that opens the admin pages after the admin token was typed in once.
ADMIN_COOKIE = "primetime_admin"
ADMIN_COOKIE_SECONDS = 8 * 3600


def signed_in_user(request: Request, svc: ServiceState | None) -> UserRecord | None:
    """The signed-in user's record, or None (no, bad or expired session; deleted account)."""
    uid = optional_user_id(request)
    return svc.user(uid) if uid is not None and svc is not None else None


def viewer(request: Request, svc: Svc) -> UserRecord | None:
    """Dependency: the signed-in user's record, or None."""
    return signed_in_user(request, svc)


Viewer = Annotated[UserRecord | None, Depends(viewer)]


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def admin_cookie_value(settings: Settings) -> str | None:
    """The admin cookie's value: an HMAC of the admin token under the secret key, so the
    token itself never sits in a browser, and rotating either signs admins out."""
    token = settings.admin_token.get_secret_value()
    if not token:
        return None
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"admin:{token}".encode(), hashlib.sha256).hexdigest()


def is_admin_viewer(request: Request, user: UserRecord | None) -> bool:
    """An admin account's session, or the admin cookie (shows the admin nav link)."""
    if user is not None and user.is_admin:
        return True
    expected = admin_cookie_value(settings_of(request))
    sent = request.cookies.get(ADMIN_COOKIE)
    return bool(expected and sent and hmac.compare_digest(sent, expected))


def admin_refusal(request: Request, user: UserRecord | None) -> str | None:
    """None when the caller may use the admin pages, else why not.

    Accepted: ``X-Admin-Token`` (a wrong one is refused even with a good cookie), the
    admin cookie set by ``POST /admin/unlock``, or an admin account's session.
    """
    sent = request.headers.get(ADMIN_TOKEN_HEADER)
    if sent is not None:
        expected = settings_of(request).admin_token.get_secret_value()
        if expected and hmac.compare_digest(sent.encode(), expected.encode()):
            return None
        return f"{ADMIN_TOKEN_HEADER} does not match the configured admin token."
    if is_admin_viewer(request, user):
        return None
    return "Admin only: enter the admin token, or sign in with an admin account."
