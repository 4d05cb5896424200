"""Dependencies the routes share: the service state and the signed-in user's record.

They are ``async``: FastAPI runs a plain ``def`` dependency in the thread pool,
one hop each (about 0.5 ms on the 2-core reference machine), and these do no
blocking work except, every ``USER_TTL`` seconds per user, one primary-key read
of the user's record (tens of microseconds), which runs inline.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from primetime.service.auth import current_user_id
from primetime.service.state import ServiceState
from primetime.service.store import UserRecord


async def service(request: Request) -> ServiceState:
    svc: ServiceState | None = getattr(request.app.state, "svc", None)
    if svc is None:
        raise HTTPException(503, "the service is starting: models are not loaded yet")
    return svc


Svc = Annotated[ServiceState, Depends(service)]


async def signed_in_user_id(request: Request) -> int:
    """The user id of the request's token or session cookie (401 otherwise)."""
    return current_user_id(request)  # HMAC check only: no I/O


async def current_user(svc: Svc, user_id: Annotated[int, Depends(signed_in_user_id)]) -> UserRecord:
    """The signed-in user's record (401 when the token names a deleted account)."""
    user = svc.user(user_id)
    if user is None:
        raise HTTPException(401, "the account of this session no longer exists: sign in again")
    return user


CurrentUser = Annotated[UserRecord, Depends(current_user)]
