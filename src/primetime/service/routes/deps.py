"""Dependencies the routes share: the service state and the signed-in user's record.

They are ``async``: FastAPI runs a plain ``def`` dependency in the thread pool,
one hop each (about 0.5 ms on the 2-core reference machine), and these do no
blocking work except one primary-key read of the token's session (is it still
open?) per request, and every ``USER_TTL`` seconds per user one of the user's
record (tens of microseconds each), which run inline.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request

from primetime.service.auth import (
    SessionCheck,
    TokenData,
    current_token,
    current_user_id,
    signed_in_token,
)
from primetime.service.state import ServiceState
from primetime.service.store import UserRecord


async def service(request: Request) -> ServiceState:
    svc: ServiceState | None = getattr(request.app.state, "svc", None)
    if svc is None:
        raise HTTPException(503, "the service is starting: models are not loaded yet")
    return svc


Svc = Annotated[ServiceState, Depends(service)]


def store_session_check(app: FastAPI) -> SessionCheck:
    """`app.state.session_check` of the service: asks the event store whether a token's
    session is open (one prebuilt primary-key read), so a sign-out in any worker holds at
    once in every other."""

    def check(token: TokenData) -> bool:
        svc: ServiceState | None = getattr(app.state, "svc", None)
        if svc is None:
            raise HTTPException(503, "the service is starting: models are not loaded yet")
        return svc.store.session_active(token.session_id, token.user_id)

    return check


async def signed_in_user_id(request: Request) -> int:
    """The user id of the request's token or session cookie (401 otherwise, also when its
    session has ended)."""
    return current_user_id(request)  # HMAC check, then one primary-key read


async def current_user(svc: Svc, user_id: Annotated[int, Depends(signed_in_user_id)]) -> UserRecord:
    """The signed-in user's record (401 when the token names a deleted account)."""
    user = svc.user(user_id)
    if user is None:
        raise HTTPException(401, "the account of this session no longer exists: sign in again")
    return user


CurrentUser = Annotated[UserRecord, Depends(current_user)]


async def event_sender(request: Request, svc: Svc) -> TokenData:
    """The token of a caller posting events. With group commit its session is checked in
    the transaction that stores the events (one read for all the requests it holds, off the
    event loop: :meth:`EventStore.store_event_groups`); without, as `current_user` does."""
    if svc.group_commit is not None:
        return signed_in_token(request)  # 401 for a bad token; the session: see above
    data = current_token(request)  # signature, then one primary-key read
    await current_user(svc, data.user_id)  # 401 for a deleted account
    return data


EventSender = Annotated[TokenData, Depends(event_sender)]


def client_address(request: Request) -> str | None:
    """The client's address as the server (and its forwarded-headers handling) sees it:
    what sign-in throttling counts failures under."""
    return request.client.host if request.client else None
