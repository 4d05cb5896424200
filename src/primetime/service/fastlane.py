"""The hot path of event ingestion: ``POST /api/v1/events`` with one well-formed event,
served without FastAPI's routing and dependency machinery.

Why by hand: profiled under ``benchmarks/bench_ingest.py`` (py-spy, samples of the
thread holding the GIL, one worker), the work of a single-event POST was about a fifth of
the worker's time; FastAPI's dependency solving, Starlette's router and exception
middleware and the per-route edge checks were more than twice that, on a request whose
answer needs none of them. No library offers a lighter lane for one route of a FastAPI
app, so this is one ASGI layer, inside the service's own middlewares (request id, timing,
rate limit, body size still apply).

It serves a request only when the full route would give the same answer by the same
steps, and hands everything else to the app unchanged (the body replayed), so the route
stays the one definition of the endpoint's behaviour (and of its OpenAPI schema):

- ``POST`` to exactly the events path, no query string, a JSON content type, a body that
  :func:`~primetime.service.edge.strict_json` accepts with no problem (no NUL, lone
  surrogate, NaN, Infinity or overflowing number: the same check as the route's), one
  event that :class:`~primetime.service.schemas.EventIn` validates, an absent or
  well-formed ``Idempotency-Key``, and a service with group commit (the default);
- the caller is then read by the route's own dependency (:func:`event_sender`) and the
  events stored by the route's own action (:func:`actions.ingest_events`); a refusal
  raised by either is answered by the app's own exception handler for it, so a 401,
  409, 422 or 503 is the route's, byte for byte; an exception without a handler
  propagates as it would from the route (500 from the server-error middleware).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from primetime.service import actions
from primetime.service.auth import session_ended
from primetime.service.edge import is_json, strict_json
from primetime.service.routes.deps import event_sender
from primetime.service.schemas import EventIn, EventsAccepted
from primetime.service.store import SessionEnded

_IDEMPOTENCY_KEY = re.compile(rb"[\x21-\x7e]{1,255}")
"""The route's ``Idempotency-Key`` rule (``IdempotencyKey`` in routes/events.py)."""


@dataclass(frozen=True, slots=True)
class _Route:
    """What :func:`~primetime.service.middleware.route_template` reads to label the
    request's metrics: the same template as the route's."""

    path_format: str


class EventsFastLane:
    """ASGI layer serving single well-formed event POSTs at `path` (see the module).

    Args:
        app: the rest of the app (the router with its exception middleware).
        path: the events route's full path, e.g. ``/api/v1/events``.
    """

    def __init__(self, app: ASGIApp, *, path: str) -> None:
        self.app = app
        self.path = path
        self.route = _Route(path)
        #: Requests served here and handed to the route (read by the tests).
        self.served = 0
        self.passed = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != self.path
            or scope["method"] != "POST"
            or scope.get("query_string")
        ):
            await self.app(scope, receive, send)
            return
        body, messages = await _read_body(receive)
        if body is None or not await self._serve(scope, body, send):
            self.passed += 1
            await self.app(scope, _replay(messages, receive), send)
            return
        self.served += 1

    async def _serve(self, scope: Scope, body: bytes, send: Send) -> bool:
        """Answer the request and return True, or return False (untouched) for the route."""
        svc = getattr(scope["app"].state, "svc", None)
        if svc is None or svc.group_commit is None:
            return False
        content_type, key = None, None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"idempotency-key":
                if key is not None or not _IDEMPOTENCY_KEY.fullmatch(value):
                    return False
                key = value.decode("ascii")
        if content_type is None or not is_json(content_type.decode("latin-1")):
            return False
        parsed = strict_json(body)
        if parsed is None or parsed[1] or not isinstance(parsed[0], dict):
            return False
        try:
            event = EventIn.model_validate(parsed[0])
        except ValidationError:
            return False
        scope["route"] = self.route
        request = Request(scope)
        try:
            sender = await event_sender(request, svc)
            try:
                stored = await actions.ingest_events(
                    svc,
                    sender.user_id,
                    [event],
                    batch=False,
                    idempotency_key=key,
                    session_id=sender.session_id,
                )
            except SessionEnded:
                raise session_ended() from None
        except Exception as err:
            handler = _handler(scope["app"], err)
            if handler is None:
                raise
            response: Response = await handler(request, err)
        else:
            answer = EventsAccepted(accepted=len(stored.ids), ids=stored.ids)
            response = JSONResponse(answer.model_dump(), status_code=201 if stored.added else 200)
        await response(scope, _no_body, send)
        return True


def _handler(app: Any, err: Exception) -> Any:
    """The app's exception handler for `err` (by its class's MRO, as Starlette's exception
    middleware looks it up), or None. ``Exception`` itself is left out: the server-error
    middleware, outside this layer, answers (and logs) what nothing else handles."""
    handlers = app.exception_handlers
    for cls in type(err).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


async def _read_body(receive: Receive) -> tuple[bytes | None, list[Message]]:
    """The whole request body and the messages it came in; None as the body when the
    client disconnected first (the route then sees the same messages)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives `messages` again, then what `receive` gives."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _no_body() -> Message:  # a response never reads the request
    return {"type": "http.disconnect"}
