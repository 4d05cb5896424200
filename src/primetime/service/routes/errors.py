"""The API's answers to refused requests, in one place: validation errors and the
actions' domain errors become JSON bodies (see :mod:`primetime.service.errors`), and a
database that is down or too slow a 503 with ``Retry-After``.

Installed on the app by ``create_app``. Web pages never get here: their routes turn
domain errors into HTML first (:class:`primetime.web.render.WebRoute`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from primetime.service.db import DB_RETRY_AFTER_S, UNAVAILABLE
from primetime.service.errors import DomainError, InvalidInput, TooManyRequests

NO_STORE = {"Cache-Control": "no-store"}
"""Refusals are never cached (one of a sign-in or sign-up, above all)."""

log = logging.getLogger(__name__)

DB_UNAVAILABLE = "the database is unavailable or too slow right now: retry in a few seconds"


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


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database refused or lost the connection, or a query ran past the statement
    timeout: 503 with ``Retry-After`` (the pool reconnects once it is back)."""
    log.warning("database unavailable (%s %s): %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": DB_UNAVAILABLE},
        status_code=503,
        headers={"Retry-After": str(DB_RETRY_AFTER_S)},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer validation and domain errors as the API's documented JSON bodies, and a
    database outage as 503 with ``Retry-After``."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(DomainError, domain_error)
    for error in UNAVAILABLE:
        app.add_exception_handler(error, database_unavailable)
