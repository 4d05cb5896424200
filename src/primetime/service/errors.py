"""Error bodies of the API, declared in the OpenAPI document.

Every error a handler raises has ``{"detail": "<one sentence>"}``; request
validation errors (422) have FastAPI's ``detail`` list plus a one-line
``message`` naming every bad field. Handlers that find a bad value after
parsing raise :func:`unprocessable`, so their 422s have the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel


class ErrorOut(BaseModel):
    """A refused request: what went wrong, in one sentence."""

    detail: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """422: every bad field (``detail``) and the same in one line (``message``)."""

    detail: list[FieldError]
    message: str


def unprocessable(loc: Sequence[str | int], msg: str) -> RequestValidationError:
    """A 422 for a value that parsed but is wrong (an unknown title, genre, model)."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": "value_error"}])


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error codes a group of routes can return."""
    text = {
        400: "The body is not valid JSON (or not UTF-8).",
        401: "Not signed in, or the token is invalid or expired.",
        403: "Signed in, but not allowed (someone else's data, or not an admin).",
        404: "No such title, model version or experiment.",
        409: "Already exists (username, experiment id).",
        413: "The request body is larger than the limit.",
        429: "Too many requests: see Retry-After.",
    }
    out: dict[int | str, dict[str, Any]] = {
        c: {"model": ErrorOut, "description": text[c]} for c in codes
    }
    out[422] = {"model": ValidationErrorOut, "description": "A field is missing or wrong."}
    return out
