"""The API's answers to refused requests, in one place: validation errors and the
actions' domain errors become JSON bodies (see :mod:`primetime.service.errors`).

Installed on the app by ``create_app``. Web pages never get here: their routes turn
domain errors into HTML first (:class:`primetime.web.render.WebRoute`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from primetime.service.errors import DomainError, InvalidInput, TooManyRequests

NO_STORE = {"Cache-Control": "no-store"}
"""Refusals are never cached (one of a sign-in or sign-up, above all)."""


def _field(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc)


def _unprocessable(errors: Sequence[Any]) -> JSONResponse:
    """422 whose ``message`` names every bad field in one line, plus FastAPI's ``detail``."""
    message = "; ".join(f"{_field(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors)
    detail = [
        {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]
    return JSONResponse({"detail": detail, "message": message}, status_code=422, headers=NO_STORE)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """A request that does not match its schema (or a handler's :func:`unprocessable`)."""
    assert isinstance(exc, RequestValidationError)
    return _unprocessable(exc.errors())


async def domain_error(request: Request, exc: Exception) -> JSONResponse:
    """An action's refusal: ``{"detail": "<sentence>"}`` with the error's status; bad
    input is a 422 shaped like a validation error, its fields located in the body."""
    assert isinstance(exc, DomainError)
    if isinstance(exc, InvalidInput):
        return _unprocessable(
            [
                {"loc": ("body", *loc), "msg": msg, "type": "value_error"}
                for loc, msg in exc.problems
            ]
        )
    headers = dict(NO_STORE)
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse({"detail": exc.message}, status_code=exc.http_status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer validation and domain errors as the API's documented JSON bodies."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(DomainError, domain_error)
