"""Input no database can store, refused at the edge with a 422 naming the field.

PostgreSQL refuses a NUL character (``\\u0000``) in text and JSONB, JSON has no NaN or
Infinity (and JSONB refuses them), and a lone surrogate (``"\\ud800"`` with no partner)
is not text at all: it cannot even be encoded as UTF-8. Python's ``json`` module and
pydantic accept all three, so without this check they reached the store and came back
as 500s (psycopg ``DataError``, ``ValueError``), on SQLite as stored garbage.

One mechanism for every route, API and web: :class:`EdgeRoute`, the route class of every
router, looks at the request after routing and before FastAPI parses it:

- every path and query parameter (names and values): no NUL, no lone surrogate;
- a JSON body (the content types FastAPI parses as JSON) is parsed strictly: NaN,
  Infinity and numbers that overflow a double (``1e400``) are refused, and so are NUL
  and lone surrogates in any string, keys included. The parsed body is handed on to
  FastAPI, so it is parsed once;
- a form body (the web's forms): no NUL or lone surrogate in any field.

A refusal is a :class:`~fastapi.exceptions.RequestValidationError` located at the bad
field (``("body", "context", "x")``, ``("query", "q")``, ``("path", "item_id")``): the
API answers it as its documented 422, the web as its HTML error page. A body that is
not JSON at all is left to FastAPI (its usual 422 or 400).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Coroutine, Iterable, Mapping
from email.message import Message
from typing import Any, Final

from fastapi import Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile
from starlette.responses import Response

Loc = tuple[str | int, ...]

NUL_MSG: Final = "contains a NUL character (\\u0000), which cannot be stored"
SURROGATE_MSG: Final = "contains a lone surrogate (\\ud800-\\udfff), which is not text"
NON_FINITE_MSG: Final = (
    "must be a finite number (NaN, Infinity and numbers beyond 1.8e308 cannot be stored)"
)


class _NonFinite:
    """What the strict parse puts where JSON had NaN, Infinity or an overflowing number."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _string_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    if "\x00" in text:
        return NUL_MSG
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE_MSG
    return None


def printable(text: str) -> str:
    """``text`` safe to echo in an error: NUL and lone surrogates as escapes."""
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def _error(loc: Loc, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def value_problems(value: Any, loc: Loc) -> list[dict[str, Any]]:
    """Every part of a parsed JSON value (or form field) that cannot be stored, as
    validation errors located under ``loc``."""
    errors: list[dict[str, Any]] = []
    stack: list[tuple[Any, Loc]] = [(value, loc)]
    while stack:  # no recursion: JSON may nest as deep as the parser allows
        node, where = stack.pop()
        if isinstance(node, str):
            if (msg := _string_problem(node)) is not None:
                errors.append(_error(where, msg, "string_not_storable"))
        elif isinstance(node, _NonFinite):
            errors.append(_error(where, NON_FINITE_MSG, "finite_number"))
        elif isinstance(node, float):
            if not math.isfinite(node):
                errors.append(_error(where, NON_FINITE_MSG, "finite_number"))
        elif isinstance(node, Mapping):
            for key, item in node.items():
                key_loc = (*where, printable(key) if isinstance(key, str) else key)
                if isinstance(key, str) and (msg := _string_problem(key)) is not None:
                    errors.append(_error(key_loc, f"key {msg}", "string_not_storable"))
                stack.append((item, key_loc))
        elif isinstance(node, list | tuple):
            stack.extend((item, (*where, i)) for i, item in enumerate(node))
    errors.reverse()  # the stack walked backwards
    return errors


def pairs_problems(pairs: Iterable[tuple[str, Any]], where: str) -> list[dict[str, Any]]:
    """Problems of query, path or form parameters (``where``: "query", "path", "body")."""
    errors: list[dict[str, Any]] = []
    for name, value in pairs:
        loc: Loc = (where, printable(name))
        if (msg := _string_problem(name)) is not None:
            errors.append(_error(loc, f"name {msg}", "string_not_storable"))
        if isinstance(value, str):
            errors.extend(value_problems(value, loc))
    return errors


def strict_json(body: bytes) -> tuple[Any, list[dict[str, Any]]] | None:
    """``(parsed, problems)`` of a JSON body; None when it is not JSON at all (FastAPI then
    answers as it always did). ``parsed`` is what ``json.loads`` gives when ``problems``
    is empty."""
    try:
        parsed = json.loads(body, parse_constant=_NonFinite, parse_float=_parse_float)
    except Exception:  # not JSON, not UTF-8, too deep, too many digits: FastAPI's answer
        return None
    return parsed, value_problems(parsed, ("body",))


@functools.lru_cache(maxsize=256)
def is_json(content_type: str | None) -> bool:
    """Whether FastAPI parses a body of this content type as JSON (none counts). Cached:
    clients send a handful of distinct values, and parsing one costs an email `Message`."""
    if not content_type:
        return True
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def check_request(request: Request, *, body: str | None) -> None:
    """Raise a 422 :class:`RequestValidationError` naming every parameter or body field
    that cannot be stored. ``body`` is the route's body kind: "json", "form" or None."""
    errors = pairs_problems(request.path_params.items(), "path")
    errors += pairs_problems(request.query_params.multi_items(), "query")
    if body == "json":
        raw = await request.body()
        if raw and is_json(request.headers.get("content-type")):
            parsed = strict_json(raw)
            if parsed is not None:
                value, problems = parsed
                errors += problems
                if not problems:
                    request._json = value  # FastAPI's `request.json()` reuses it
    elif body == "form":
        form = await request.form()
        fields = [(k, v) for k, v in form.multi_items() if not isinstance(v, UploadFile)]
        errors += pairs_problems(fields, "body")
    if errors:
        raise RequestValidationError(errors)


class EdgeRoute(APIRoute):
    """The route class of every router: :func:`check_request` before FastAPI parses."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        field = self.body_field
        body = None
        if field is not None:
            body = "form" if isinstance(field.field_info, params.Form) else "json"

        async def route_handler(request: Request) -> Response:
            await check_request(request, body=body)
            return await handle(request)

        return route_handler
