"""Dependencies the routes share: the service state and the signed-in user's record."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from primetime.service.auth import current_user_id
from primetime.service.repository import UserRecord
from primetime.service.state import ServiceState


def service(request: Request) -> ServiceState:
    svc: ServiceState | None = getattr(request.app.state, "svc", None)
    if svc is None:
        raise HTTPException(503, "the service is starting: models are not loaded yet")
    return svc


Svc = Annotated[ServiceState, Depends(service)]


def current_user(svc: Svc, user_id: Annotated[int, Depends(current_user_id)]) -> UserRecord:
    """The signed-in user's record (401 when the token names a deleted account)."""
    user = svc.user(user_id)
    if user is None:
        raise HTTPException(401, "the account of this session no longer exists: sign in again")
    return user


CurrentUser = Annotated[UserRecord, Depends(current_user)]
