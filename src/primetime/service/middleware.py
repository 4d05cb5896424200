"""Pure ASGI middlewares of the service: request ids, timing, rate limiting, body size limit.

They are plain ASGI callables rather than `BaseHTTPMiddleware`, which runs the endpoint in a
separate task and buffers the response, breaking streaming and context variables.

Order, outermost first (what `add_service_middleware` installs):

1. `RequestIdMiddleware` - every response, even a 429, 413 or 500, carries `X-Request-ID`.
2. `TimingMiddleware` - refused requests are measured too (route "unmatched").
3. `RateLimitMiddleware` - cheapest refusal first, before any body is read.
4. `BodySizeLimitMiddleware` - then the app.

Refusals are JSON `{"detail": "..."}`, like FastAPI's own errors.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from primetime.service.auth import session_rate_limit_key
from primetime.service.metrics import UNMATCHED_ROUTE, ServiceMetrics
from primetime.service.settings import Settings

log = logging.getLogger(__name__)

REQUEST_ID_HEADER: Final = "X-Request-ID"
DEFAULT_EXEMPT_PATHS: Final = ("/health", "/ready", "/metrics")

KeyFunc = Callable[[Scope], "str | None"]
"""Rate-limit key of a request; None falls back to the client IP."""

_request_id: ContextVar[str | None] = ContextVar("primetime_request_id", default=None)
_VALID_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def get_request_id() -> str | None:
    """The id of the request being handled in this context (for log records), or None."""
    return _request_id.get()


async def send_json(
    send: Send, status: int, detail: str, headers: Iterable[tuple[str, str]] = ()
) -> None:
    """Send a complete `{"detail": detail}` JSON response."""
    body = json.dumps({"detail": detail}).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# ----------------------------------------------------------------------------- request id


class RequestIdMiddleware:
    """Give each request an id: the client's `X-Request-ID` when it is a sane token
    (1-128 characters of `[A-Za-z0-9._:-]`), else a new uuid4 hex.

    The id is echoed in the response header, stored as `scope["state"]["request_id"]` (so
    `request.state.request_id`) and readable through `get_request_id()` while the request is
    handled.
    """

    def __init__(self, app: ASGIApp, header_name: str = REQUEST_ID_HEADER) -> None:
        self.app = app
        self.header_name = header_name
        self._header_key = header_name.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent = Headers(scope=scope).get(self.header_name)
        request_id = sent if sent and _VALID_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = list(message.get("headers", ()))
                headers = MutableHeaders(scope=message)
                headers[self.header_name] = request_id
            await send(message)

        token = _request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # The server's error middleware (outside this one) would answer the 500 without
            # the id: answer it here, and re-raise so the server still logs the traceback.
            if scope["type"] == "http" and not started:
                log.error("unhandled error in request %s: %r", request_id, exc)
                await send_json(
                    send,
                    500,
                    f"internal server error (request id {request_id})",
                    headers=[(self.header_name, request_id)],
                )
            raise
        finally:
            _request_id.reset(token)


# ----------------------------------------------------------------------------- timing


def _mount_prefix(scope: Scope, entry_root_path: str) -> str:
    """What a `Mount` added to `root_path` since the middleware saw the request."""
    root_path = scope.get("root_path", "")
    if isinstance(root_path, str) and root_path.startswith(entry_root_path):
        return root_path[len(entry_root_path) :]
    return ""


def _template_of_endpoint(scope: Scope) -> str | None:
    """Template of the top-level plain Starlette route (e.g. FastAPI's `/docs`) whose endpoint
    served `scope`; FastAPI's router records `scope["route"]` only for its own `APIRoute`s."""
    endpoint = scope.get("endpoint")
    router = getattr(scope.get("app"), "router", None)
    if endpoint is None or router is None:
        return None
    for route in getattr(router, "routes", ()):
        if getattr(route, "endpoint", None) is endpoint and not isinstance(route, Mount):
            template = getattr(route, "path_format", None)
            return template if isinstance(template, str) else None
    return None


def route_template(scope: Scope, entry_root_path: str = "") -> str:
    """The route template that served `scope` (read after routing), or "unmatched".

    - FastAPI routes: `scope["route"]`. FastAPI >= 0.16x serves routes of nested
      `include_router` calls through an "effective route context" whose `path_format` has
      every prefix, while `scope["route"].path` lacks the outer ones; it is read when present.
    - Routes of a mounted sub-app get the mount prefix (the growth of `root_path` since
      `entry_root_path`); a mounted plain ASGI app (static files) is `<prefix>/{path}`.
    - Top-level plain Starlette routes (`/docs`, `/openapi.json`) are found by endpoint.
    """
    prefix = _mount_prefix(scope, entry_root_path)
    route = scope.get("route")
    if route is None:
        if prefix:
            return f"{prefix}/{{path}}"
        return _template_of_endpoint(scope) or UNMATCHED_ROUTE
    template: str | None = None
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        context = fastapi_scope.get("effective_route_context")
        template = getattr(context, "path_format", None)
    if not isinstance(template, str):
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return UNMATCHED_ROUTE
    if isinstance(route, Mount):  # Starlette's router: the path already has the mount
        return template
    return prefix + template


class TimingMiddleware:
    """Record each HTTP request's latency (to the last response byte) in `metrics`, labelled
    by route template, method and status. An exception escaping the app counts as 500."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServiceMetrics,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = self._clock()
        entry_root_path = scope.get("root_path", "")
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception:
            status = 500
            raise
        finally:
            self.metrics.observe_request(
                route=route_template(scope, entry_root_path),
                method=scope.get("method", "GET"),
                status=status,
                seconds=self._clock() - start,
            )


# ----------------------------------------------------------------------------- rate limit


def client_ip(scope: Scope) -> str:
    """The client address ASGI reports (`scope["client"]`), or "unknown".

    Behind a reverse proxy list it in `primetime serve --forwarded-allow-ips` (or
    `PRIMETIME_FORWARDED_ALLOW_IPS`) so that uvicorn puts the real client here; by default
    no forwarded header is trusted, and the `X-Forwarded-For` header itself is never read
    here.
    """
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimitMiddleware:
    """Token bucket per client: `burst` requests at once, refilled at `per_minute` / 60 per
    second. A refused request gets 429 `{"detail": ...}` with `Retry-After` (whole seconds
    until one token is back).

    Args:
        app: the wrapped ASGI app.
        per_minute: sustained rate; 0 turns limiting off.
        burst: bucket size (>= 1).
        key_func: the client's key, e.g. `auth.session_rate_limit_key` ("user:<id>");
            returning None, or no key_func, means the client IP ("ip:<addr>").
        exempt_paths: exact paths never limited (probes and the metrics scrape).
        clock: monotonic seconds (tests inject one).
        max_buckets: most clients tracked; beyond it the least recently seen are dropped.

    Memory stays bounded: a bucket idle long enough to be full again is identical to a new
    one and is dropped, and `max_buckets` caps the rest. Thread-safe (one lock; the work under
    it is a few float operations).
    """

    def __init__(
        self,
        app: ASGIApp,
        per_minute: int,
        burst: int,
        key_func: KeyFunc | None = None,
        exempt_paths: Iterable[str] = DEFAULT_EXEMPT_PATHS,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 100_000,
    ) -> None:
        if per_minute < 0:
            raise ValueError(f"per_minute must be >= 0 (0 = off), got {per_minute}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        if max_buckets < 1:
            raise ValueError(f"max_buckets must be >= 1, got {max_buckets}")
        self.app = app
        self.per_minute = per_minute
        self.burst = burst
        self.key_func = key_func
        self.exempt_paths = frozenset(exempt_paths)
        self.max_buckets = max_buckets
        self._clock = clock
        self._rate = per_minute / 60.0  # tokens per second
        self._refill_seconds = burst / self._rate if self._rate else math.inf
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # least recently seen first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Buckets held now."""
        return len(self._buckets)

    def key(self, scope: Scope) -> str:
        """The bucket key of a request: the key_func's answer, else "ip:<client ip>"."""
        if self.key_func is not None:
            try:
                key = self.key_func(scope)
            except Exception:  # a broken key function must not take the service down
                log.warning("rate limit key_func failed; using the client IP", exc_info=True)
                key = None
            if key is not None:
                return key
        return f"ip:{client_ip(scope)}"

    def acquire(self, key: str) -> float:
        """Take one token from `key`'s bucket: 0.0 when allowed, else seconds to wait."""
        if self._rate == 0.0:
            return 0.0
        now = self._clock()
        with self._lock:
            self._drop_idle(now)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(tokens=float(self.burst), updated=now)
                self._buckets[key] = bucket
                while len(self._buckets) > self.max_buckets:
                    self._buckets.popitem(last=False)
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self._rate)
                bucket.updated = now
                self._buckets.move_to_end(key)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self._rate

    def _drop_idle(self, now: float) -> None:
        # Oldest first, so stop at the first bucket that is still refilling.
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated < self._refill_seconds:
                break
            del self._buckets[key]

    def _exempt(self, scope: Scope) -> bool:
        # Match with and without the root path (an app served under a prefix may see either).
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if path in self.exempt_paths:
            return True
        return bool(root) and path.startswith(root) and path[len(root) :] in self.exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.per_minute == 0 or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        wait = self.acquire(self.key(scope))
        if wait <= 0.0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        await send_json(
            send,
            429,
            f"rate limit exceeded: at most {self.per_minute} requests per minute "
            f"(bursts of {self.burst}); retry after {retry_after} s",
            headers=[("Retry-After", str(retry_after))],
        )


# ----------------------------------------------------------------------------- body size


class RequestBodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit. A `starlette`
    `HTTPException`, so FastAPI's body parsing lets it through instead of turning it into
    400; `BodySizeLimitMiddleware` then answers 413 whatever the app did with it."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(status_code=413, detail=f"request body larger than {max_bytes} bytes")


class BodySizeLimitMiddleware:
    """413 `{"detail": "request body larger than N bytes"}` for a body over `max_bytes`:
    at once when `Content-Length` says so (the app never runs), and while streaming when a
    chunked body grows past the limit (the app's `receive` raises `RequestBodyTooLarge`, and
    whatever response the app then tries to send is replaced by the 413, unless it had
    already started one).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"request body larger than {self.max_bytes} bytes"
        length = Headers(scope=scope).get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await send_json(send, 400, "Content-Length is not an integer")
                return
            if declared > self.max_bytes:
                # The body is left unread: ask the server to close the connection.
                await send_json(send, 413, detail, headers=[("Connection", "close")])
                return

        received = 0
        exceeded = False
        response_started = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise RequestBodyTooLarge(self.max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise RequestBodyTooLarge(self.max_bytes)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started, refused
            if refused:
                return  # the 413 went out instead of the app's response
            if message["type"] == "http.response.start":
                if exceeded:
                    refused = True
                    await send_json(send, 413, detail, headers=[("Connection", "close")])
                    return
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except RequestBodyTooLarge:
            if response_started:
                raise  # too late to answer 413; the server drops the connection
            if not refused:
                await send_json(send, 413, detail, headers=[("Connection", "close")])


# ----------------------------------------------------------------------------- install


def add_service_middleware(
    app: Starlette,
    *,
    settings: Settings,
    metrics: ServiceMetrics,
    key_func: KeyFunc | None = session_rate_limit_key,
) -> None:
    """Install the four middlewares on a Starlette/FastAPI `app` in the documented order,
    configured from `settings` (`rate_limit_per_minute`, `rate_limit_burst`,
    `max_body_bytes`). By default signed-in callers are limited per user, others per IP.

    Starlette puts the last added middleware outermost, hence the reverse order here.
    """
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        RateLimitMiddleware,
        per_minute=settings.rate_limit_per_minute,
        burst=settings.rate_limit_burst,
        key_func=key_func,
    )
    app.add_middleware(TimingMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
