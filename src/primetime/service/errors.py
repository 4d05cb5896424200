"""Domain errors of the service's actions, and the error bodies of the API.

Actions (:mod:`primetime.service.actions`) refuse with a :class:`DomainError`
subclass: :class:`InvalidInput`, :class:`Unauthorized`, :class:`Forbidden`,
:class:`NotFound`, :class:`Conflict` or :class:`TooManyRequests`. They know
nothing of HTTP beyond the status each kind conventionally maps to (``http_status``); each front end
translates them in one place: the API's exception handler
(:mod:`primetime.service.routes.errors`) answers JSON, the web's route class
(:mod:`primetime.web.render`) the HTML error page.

Every error a handler raises has ``{"detail": "<one sentence>"}``; request
validation errors (422) have FastAPI's ``detail`` list plus a one-line
``message`` naming every bad field. Handlers that find a bad value after
parsing raise :func:`unprocessable` (or an action raises :class:`InvalidInput`),
so their 422s have the same shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

Loc = tuple[str | int, ...]
"""A field path inside an action's input, e.g. ``("genres",)`` or ``("events", 1, "item_id")``."""


class DomainError(Exception):
    """An action refused: ``str(err)`` says why in one sentence (lower case, no full stop)."""

    http_status: ClassVar[int] = 400

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(DomainError):
    """A value that parsed but is wrong (an unknown title, genre or model version).

    ``problems`` pairs each bad field's path (relative to the action's input; empty for
    the input as a whole) with what is wrong with it.
    """

    http_status = 422

    def __init__(self, msg: str, loc: Sequence[str | int] = ()) -> None:
        self.problems: list[tuple[Loc, str]] = [(tuple(loc), msg)]
        super().__init__(msg)

    @classmethod
    def of(cls, problems: Iterable[tuple[Sequence[str | int], str]]) -> InvalidInput:
        """One error for several bad fields (``problems`` must not be empty)."""
        listed = [(tuple(loc), msg) for loc, msg in problems]
        err = cls(listed[0][1], listed[0][0])
        err.problems = listed
        err.args = ("; ".join(msg for _, msg in listed),)
        return err


class Unauthorized(DomainError):
    """Wrong credentials."""

    http_status = 401


class Forbidden(DomainError):
    """Signed in, but not allowed."""

    http_status = 403


class NotFound(DomainError):
    """No such title, model version or experiment."""

    http_status = 404


class Conflict(DomainError):
    """It exists already (a username, an experiment id)."""

    http_status = 409


class TooManyRequests(DomainError):
    """Refused for now (sign-ins backed off after failures); ``retry_after`` says how many
    seconds to wait (sent as the ``Retry-After`` header)."""

    http_status = 429

    def __init__(self, msg: str, *, retry_after: int) -> None:
        super().__init__(msg)
        self.retry_after = retry_after


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
        429: "Too many requests (or failed sign-ins): see Retry-After.",
    }
    out: dict[int | str, dict[str, Any]] = {
        c: {"model": ErrorOut, "description": text[c]} for c in codes
    }
    out[422] = {"model": ValidationErrorOut, "description": "A field is missing or wrong."}
    return out
