"""Sign-up, sign-in, the signed-in user and their onboarding picks."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from primetime.service.auth import (
    clear_session_cookie,
    hash_password,
    issue_token,
    set_session_cookie,
    verify_password,
)
from primetime.service.errors import unprocessable
from primetime.service.routes.deps import CurrentUser, Svc
from primetime.service.schemas import Login, Me, Onboarding, Session, SignUp
from primetime.service.store import UsernameTaken

router = APIRouter(tags=["account"])


def _check_picks(svc: Svc, genres: list[str], titles: list[str]) -> None:
    unknown = [g for g in genres if g not in svc.genres]
    if unknown:
        raise unprocessable(("body", "genres"), f"unknown genre(s) {unknown}; known: {svc.genres}")
    missing = [t for t in titles if svc.item_index(t) is None]
    if missing:
        raise unprocessable(("body", "titles"), f"unknown item id(s) {missing[:5]}")


@router.post("/auth/signup", response_model=Session, status_code=201)
def signup(body: SignUp, svc: Svc, response: Response) -> Session:
    """Create an account and sign in (the token is also set as a session cookie)."""
    _check_picks(svc, body.genres, body.titles)
    try:
        user = svc.store.create_user(
            body.username,
            hash_password(body.password),
            onboarding_genres=body.genres,
            onboarding_titles=body.titles,
            demographics=body.demographics.model_dump(exclude_none=True)
            if body.demographics
            else None,
        )
    except UsernameTaken:
        raise HTTPException(409, f"username {body.username!r} is taken") from None
    except ValueError as err:  # the store's own checks (e.g. demographics)
        raise unprocessable(("body",), str(err)) from None
    token = issue_token(user.id, is_admin=user.is_admin, settings=svc.settings)
    set_session_cookie(response, token, svc.settings)
    return Session(user_id=user.id, username=user.username, is_admin=user.is_admin, token=token)


@router.post("/auth/login", response_model=Session)
def login(body: Login, svc: Svc, response: Response) -> Session:
    """Sign in with username and password."""
    user = svc.store.user_by_name(body.username)
    if not verify_password(body.password, hashed=user.password_hash if user else None):
        raise HTTPException(401, "wrong username or password")
    assert user is not None
    token = issue_token(user.id, is_admin=user.is_admin, settings=svc.settings)
    set_session_cookie(response, token, svc.settings)
    return Session(user_id=user.id, username=user.username, is_admin=user.is_admin, token=token)


@router.post("/auth/logout", status_code=204)
def logout(svc: Svc, response: Response) -> Response:
    """Clear the session cookie (bearer tokens simply stop being sent)."""
    clear_session_cookie(response, svc.settings)
    response.status_code = 204
    return response


@router.get("/me", response_model=Me)
def me(user: CurrentUser, svc: Svc) -> Me:
    return Me(
        user_id=user.id,
        username=user.username,
        is_admin=user.is_admin,
        onboarding_genres=list(user.onboarding_genres),
        onboarding_titles=list(user.onboarding_titles),
        events=svc.store.event_count(user.id),
    )


@router.put("/me/onboarding", response_model=Me)
def onboarding(body: Onboarding, user: CurrentUser, svc: Svc) -> Me:
    """Set the genres and titles picked during onboarding; recommendations follow at once."""
    _check_picks(svc, body.genres, body.titles)
    svc.store.set_onboarding(user.id, body.genres, body.titles)
    svc.user_changed(user.id)
    svc.cache.bump_user(user.id)
    return me(svc.store.user(user.id) or user, svc)
