"""Who is calling: password hashing, signed session tokens and the FastAPI dependencies that
guard routes.

- Passwords are hashed with argon2id (argon2-cffi defaults, RFC 9106 "low memory" profile).
- A session token is `{"uid": <user id>, "adm": <is admin>, "sid": <session id>}` signed with
  `settings.secret_key` by itsdangerous (HMAC-SHA1 over a timestamped payload, salt
  "primetime-session"). It is not encrypted: it only says who you are, and the signature stops
  anyone from changing that. It expires after `settings.token_ttl_seconds`; changing
  `secret_key` signs everybody out. The admin flag is frozen into the token when it is issued,
  so revoking an admin takes effect at the user's next sign-in (or at once, by rotating
  `secret_key`, or by ending the user's sessions).
- Sessions are also kept on the server (the `sessions` table): a token is honoured only while
  its session is open, so signing out, "sign out everywhere" and a password change end tokens
  at once, in every worker. Every authenticated request checks it through
  `app.state.session_check` (one primary-key read; `create_app` installs it); the signature
  is checked first, so forged tokens never reach the database.
- A client sends the token as `Authorization: Bearer <token>` (API clients) or in the
  `primetime_session` cookie (the web UI; HttpOnly, SameSite=Lax, so other sites cannot
  send it with a POST).

Dependencies (all read `request.app.state.settings`, which `create_app` sets):

=====================  ==================  =================================================
dependency             returns             refuses with
=====================  ==================  =================================================
`current_user_id`      user id             401 no / bad / expired token, or an ended session
`optional_user_id`     user id or None     never (a bad or expired token or an ended
                                           session counts as none)
`current_token`        `TokenData`         401 as `current_user_id`
`require_admin`        admin's user id,    401 no credentials at all; 403 wrong
                       None for the        X-Admin-Token; 403 a valid token of a
                       X-Admin-Token       non-admin user
=====================  ==================  =================================================

`CurrentUserId`, `OptionalUserId`, `CurrentToken` and `AdminAccess` are the same as
`Annotated[..., Depends(...)]` aliases for route signatures.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Annotated, Any, Final, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, status
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from pydantic import AfterValidator, StringConstraints
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import Scope

from primetime.service.settings import Settings

Clock = Callable[[], float]
"""Seconds since the epoch, like `time.time` (injected by tests)."""

SESSION_SALT: Final = "primetime-session"
SESSION_COOKIE: Final = "primetime_session"
ADMIN_TOKEN_HEADER: Final = "X-Admin-Token"

USERNAME_MIN_LENGTH: Final = 3
USERNAME_MAX_LENGTH: Final = 64
USERNAME_CHARS: Final = "A-Za-z0-9_.-"
USERNAME_PATTERN: Final = rf"^[{USERNAME_CHARS}]+$"
"""Letters, digits, `_`, `.`, `-` (pydantic's `pattern`: `$` is the end of the text)."""
PASSWORD_MIN_LENGTH: Final = 10
PASSWORD_MAX_LENGTH: Final = 128
"""The upper bound keeps one sign-in from costing unbounded hashing work."""
SESSION_ID_MAX: Final = 32
_GUESSABLE_CHECK_MAX: Final = 48
"""zxcvbn's cost grows fast with length (0.5 s for 128 random characters, 15 ms for 48):
longer passwords get only the common-list and character-variety checks."""

Username = Annotated[
    str,
    StringConstraints(
        min_length=USERNAME_MIN_LENGTH, max_length=USERNAME_MAX_LENGTH, pattern=USERNAME_PATTERN
    ),
]
"""A username field for request schemas: 3–64 characters of `[A-Za-z0-9_.-]`."""


def _password_field(value: str) -> str:
    return validate_password(value)


Password = Annotated[
    str, StringConstraints(max_length=PASSWORD_MAX_LENGTH), AfterValidator(_password_field)
]
"""A new password field for request schemas: the password policy (`validate_password`) but
for the username, which the action checks (it needs both fields)."""

NOT_SIGNED_IN: Final = "not signed in: send 'Authorization: Bearer <token>' or the session cookie"
INVALID_TOKEN: Final = "session token is invalid or expired: sign in again"
SESSION_ENDED: Final = (
    "this session has ended (signed out, signed out everywhere, or the password changed): "
    "sign in again"
)
BAD_AUTHORIZATION: Final = "Authorization header must be 'Bearer <token>'"
ADMIN_ONLY: Final = (
    f"admin only: send '{ADMIN_TOKEN_HEADER}: <admin token>' or sign in as an admin user"
)
WRONG_ADMIN_TOKEN: Final = f"{ADMIN_TOKEN_HEADER} does not match the configured admin token"

_USERNAME_RE: Final = re.compile(f"[{USERNAME_CHARS}]+")
_hasher: Final = PasswordHasher()


# ----------------------------------------------------------------------------- policy


def validate_username(value: str) -> str:
    """`value` unchanged if it is a valid username, else ValueError saying why.

    Usable as `AfterValidator(validate_username)` or inside a pydantic `field_validator`.
    """
    if not USERNAME_MIN_LENGTH <= len(value) <= USERNAME_MAX_LENGTH:
        raise ValueError(
            f"username must be {USERNAME_MIN_LENGTH}-{USERNAME_MAX_LENGTH} characters, "
            f"got {len(value)}"
        )
    if not _USERNAME_RE.fullmatch(value):
        raise ValueError("username may contain only letters, digits, '_', '.' and '-'")
    return value


@cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def common_password_count() -> int:
    """How many passwords the common-password list holds (zxcvbn's, 30,000)."""
    return len(_common_passwords())


def _too_guessable(value: str) -> str | None:
    """zxcvbn's warning when `value` scores 0 (under 1,000 guesses: a repeat, a sequence, a
    keyboard walk, a common word); None otherwise."""
    if len(value) > _GUESSABLE_CHECK_MAX:
        return "it repeats a few characters" if len(set(value)) < 5 else None
    from zxcvbn import zxcvbn

    result = zxcvbn(value, max_length=PASSWORD_MAX_LENGTH)
    if result["score"] > 0:
        return None
    warning = str(result.get("feedback", {}).get("warning") or "").rstrip(".")
    return warning[:1].lower() + warning[1:] if warning else "it follows a common pattern"


def validate_password(value: str, *, username: str | None = None) -> str:
    """`value` unchanged if it meets the password policy, else ValueError naming the rule.

    The policy: `PASSWORD_MIN_LENGTH` (10) to `PASSWORD_MAX_LENGTH` (128) characters; not
    containing the username (any case); not one of the 30,000 most common passwords (zxcvbn's
    list, any case); and not trivially guessable (zxcvbn score 0: a repeat, a sequence, a
    keyboard walk). Existing passwords are not checked again: the policy applies when a
    password is set.
    """
    if len(value) < PASSWORD_MIN_LENGTH:
        raise ValueError(
            f"password must be at least {PASSWORD_MIN_LENGTH} characters, got {len(value)}"
        )
    if len(value) > PASSWORD_MAX_LENGTH:
        raise ValueError(
            f"password must be at most {PASSWORD_MAX_LENGTH} characters, got {len(value)}"
        )
    if username and username.lower() in value.lower():
        raise ValueError("password must not contain the username")
    if value.lower() in _common_passwords():
        raise ValueError(
            f"password is one of the {common_password_count():,} most common passwords: "
            "choose another"
        )
    why = _too_guessable(value)
    if why is not None:
        raise ValueError(f"password is too easy to guess ({why}): choose another")
    return value


# ----------------------------------------------------------------------------- passwords


def hash_password(password: str) -> str:
    """An argon2id hash of `password` (salted; PHC string `$argon2id$v=19$...`)."""
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    return _hasher.hash("primetime-no-such-user")


def verify_password(password: str, *, hashed: str | None) -> bool:
    """True when `password` matches `hashed`; False on a wrong password or a malformed hash.

    Never raises for a wrong password. `hashed=None` (no such user) still spends one
    verification, so response time does not tell which usernames exist.
    """
    try:
        matched = _hasher.verify(hashed if hashed is not None else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and hashed is not None


def password_needs_rehash(hashed: str) -> bool:
    """True when `hashed` was made with weaker parameters than the current ones (hash the
    password again after a successful sign-in) or cannot be parsed."""
    try:
        return _hasher.check_needs_rehash(hashed)
    except (InvalidHashError, ValueError):
        return True


# ----------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class TokenData:
    """What a valid session token says. `user_id` is the external user id (database key)."""

    user_id: int
    is_admin: bool
    issued_at: datetime
    """When it was signed (UTC, whole seconds)."""
    session_id: str = ""
    """The server-side session it belongs to (`sessions.id`)."""


class _ClockSigner(TimestampSigner):
    """A `TimestampSigner` reading an injected clock, so tests can sign in the past."""

    def __init__(self, *args: Any, clock: Clock = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


def _serializer(settings: Settings, clock: Clock) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        settings.secret_key.get_secret_value(),
        salt=SESSION_SALT,
        signer=_ClockSigner,
        signer_kwargs={"clock": clock},
    )


def issue_token(
    user_id: int,
    *,
    is_admin: bool,
    session_id: str,
    settings: Settings,
    clock: Clock = time.time,
) -> str:
    """A signed session token for `user_id`, valid for `settings.token_ttl_seconds` while
    its session stays open.

    Args:
        user_id: external user id (>= 0).
        is_admin: whether the token opens admin routes.
        session_id: the session's id (`EventStore.create_session`).
        settings: supplies `secret_key`.
        clock: signing time source (tests pass a fixed past time).
    """
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 0:
        raise ValueError(f"user_id must be a non-negative int, got {user_id!r}")
    if not isinstance(session_id, str) or not 0 < len(session_id) <= SESSION_ID_MAX:
        raise ValueError(f"session_id must be 1-{SESSION_ID_MAX} characters, got {session_id!r}")
    payload = {"uid": user_id, "adm": bool(is_admin), "sid": session_id}
    token = _serializer(settings, clock).dumps(payload)
    return token if isinstance(token, str) else token.decode()


def read_token(token: str, settings: Settings, *, clock: Clock = time.time) -> TokenData | None:
    """The `TokenData` in `token`, or None when it is tampered with, signed with another key,
    malformed (a token from before server-side sessions has no session id), or older than
    `settings.token_ttl_seconds`. Whether its session is still open is not checked here.

    The signature check (an HMAC, and building itsdangerous' signer: a tenth of an event
    POST's time in the worker) is remembered per token and key (`_verified`); the age is
    checked on every call, against `clock`."""
    if not token or len(token) > 4096:
        return None
    verified = _verified(token, settings.secret_key.get_secret_value())
    if verified is None:
        return None
    uid, adm, sid, signed_at = verified
    age = int(clock()) - int(signed_at.timestamp())  # itsdangerous' rule, in whole seconds
    if age > settings.token_ttl_seconds or age < 0:
        return None
    return TokenData(user_id=uid, is_admin=adm, issued_at=signed_at, session_id=sid)


@lru_cache(maxsize=8192)
def _verified(token: str, secret: str) -> tuple[int, bool, str, datetime] | None:
    """``(uid, adm, sid, signed_at)`` of a token validly signed with `secret` and holding a
    well-formed payload, whatever its age; None otherwise. Pure, so cached: a client
    sends the same token with every request."""
    serializer = URLSafeTimedSerializer(secret, salt=SESSION_SALT)
    try:
        payload, signed_at = serializer.loads(token, max_age=None, return_timestamp=True)
    except BadSignature:  # includes BadPayload
        return None
    if not isinstance(payload, dict):
        return None
    uid, adm, sid = payload.get("uid"), payload.get("adm"), payload.get("sid")
    if isinstance(uid, bool) or not isinstance(uid, int) or uid < 0 or not isinstance(adm, bool):
        return None
    if not isinstance(sid, str) or not 0 < len(sid) <= SESSION_ID_MAX:
        return None
    return uid, adm, sid, signed_at


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    """Put `token` in the session cookie (HttpOnly, SameSite=Lax, Secure when
    `settings.cookie_secure`), expiring with the token."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.token_ttl_seconds,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    """Remove the session cookie (sign out in the browser)."""
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="lax", secure=settings.cookie_secure, path="/"
    )


# ----------------------------------------------------------------------------- dependencies


def settings_of(conn: HTTPConnection) -> Settings:
    """The `Settings` that `create_app` stored in `app.state.settings`."""
    settings = getattr(conn.app.state, "settings", None)
    if not isinstance(settings, Settings):
        raise RuntimeError("app.state.settings is not set: build the app with create_app(settings)")
    return settings


class SessionCheck(Protocol):
    """`app.state.session_check`: whether a validly signed token's session is still open."""

    def __call__(self, token: TokenData, /) -> bool: ...


def session_open(conn: HTTPConnection, data: TokenData) -> bool:
    """Whether the session of `data` is open, asked of `app.state.session_check`.

    Raises:
        RuntimeError: the app has no session check (fail closed: a token whose session
            cannot be checked is never honoured).
    """
    check = getattr(conn.app.state, "session_check", None)
    if check is None:
        raise RuntimeError("app.state.session_check is not set: build the app with create_app")
    return bool(check(data))


def _unauthorized(detail: str, *, invalid_token: bool = False) -> HTTPException:
    challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": challenge}
    )


def _forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail)


def token_from_request(request: HTTPConnection) -> str | None:
    """The raw session token: from `Authorization: Bearer …` if that header is present, else
    the session cookie, else None.

    Raises:
        HTTPException: 401 when an Authorization header is present but not `Bearer <token>`.
    """
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _unauthorized(BAD_AUTHORIZATION)
        return credentials.strip()
    return request.cookies.get(SESSION_COOKIE) or None


def current_token(request: HTTPConnection) -> TokenData:
    """The caller's valid session token. 401 (with `WWW-Authenticate: Bearer`) when there is
    none, or it is malformed, tampered with or expired, or its session has ended."""
    data = signed_in_token(request)
    if not session_open(request, data):
        raise session_ended()
    return data


def signed_in_token(request: HTTPConnection) -> TokenData:
    """`current_token` without the session read: 401 for no, a malformed, tampered or
    expired token. Only for a caller that checks the session itself before acting (the
    events route checks it in its group-commit transaction)."""
    token = token_from_request(request)
    if token is None:
        raise _unauthorized(NOT_SIGNED_IN)
    data = read_token(token, settings_of(request))
    if data is None:
        raise _unauthorized(INVALID_TOKEN, invalid_token=True)
    return data


def session_ended() -> HTTPException:
    """The 401 of a validly signed token whose session has ended."""
    return _unauthorized(SESSION_ENDED, invalid_token=True)


def signed_token(request: HTTPConnection) -> TokenData | None:
    """The request's validly signed, unexpired token, or None; its session is NOT checked
    (for sign-out, which ends it, and for rate-limit keys, which must cost no I/O)."""
    try:
        token = token_from_request(request)
    except HTTPException:
        return None
    return read_token(token, settings_of(request)) if token is not None else None


def current_user_id(request: HTTPConnection) -> int:
    """The signed-in user's id; 401 "not signed in: …" otherwise (see `current_token`)."""
    return current_token(request).user_id


def optional_user_id(request: HTTPConnection) -> int | None:
    """The signed-in user's id, or None for an anonymous caller.

    A malformed, tampered or expired token, or one of an ended session, also gives None
    rather than 401: a stale cookie must not break public pages. Routes that need a user use
    `current_user_id`.
    """
    data = signed_token(request)
    if data is None or not session_open(request, data):
        return None
    return data.user_id


def require_admin(request: HTTPConnection) -> int | None:
    """Let an admin through: `X-Admin-Token: <settings.admin_token>` (compared in constant
    time) or a session token of an admin user.

    Returns:
        The admin user's id, or None when the admin token header was used.

    Raises:
        HTTPException: 403 when `X-Admin-Token` is sent but wrong (even if a token is also
            sent: a wrong credential is never ignored); 401 with no credentials at all or an
            invalid session token; 403 "admin only: …" for a valid non-admin user.
    """
    sent = request.headers.get(ADMIN_TOKEN_HEADER)
    if sent is not None:
        expected = settings_of(request).admin_token.get_secret_value()
        # An empty configured token would otherwise accept an empty header.
        if expected and hmac.compare_digest(sent.encode(), expected.encode()):
            return None
        raise _forbidden(WRONG_ADMIN_TOKEN)
    data = current_token(request)
    if not data.is_admin:
        raise _forbidden(ADMIN_ONLY)
    return data.user_id


def ensure_owner(
    requested_user_id: int, current_user_id: int, *, what: str = "data", action: str = "read"
) -> None:
    """403 "you can only {action} your own {what}" unless the two ids are equal.

    403, not 404: call this before looking the requested user up, so the answer is the same
    whether or not that user exists and reveals nothing about other accounts, while telling
    the caller plainly that the id in the URL is not theirs.
    """
    if requested_user_id != current_user_id:
        raise _forbidden(
            f"you can only {action} your own {what} (signed in as user {current_user_id}, "
            f"asked for user {requested_user_id})"
        )


def session_rate_limit_key(scope: Scope) -> str | None:
    """Key function for `RateLimitMiddleware`: "user:<id>" for a caller with a valid session
    token, else None (the middleware then limits by client IP).

    The signature is verified, so made-up tokens cannot mint fresh buckets; whether the
    session is still open is not (no database read before the rate limit).
    """
    if scope.get("type") != "http" or "app" not in scope:
        return None
    conn = HTTPConnection(scope)
    try:
        data = signed_token(conn)
    except RuntimeError:  # no settings on this app
        return None
    return f"user:{data.user_id}" if data is not None else None


CurrentToken = Annotated[TokenData, Depends(current_token)]
CurrentUserId = Annotated[int, Depends(current_user_id)]
OptionalUserId = Annotated[int | None, Depends(optional_user_id)]
AdminAccess = Annotated[int | None, Depends(require_admin)]
