"""Sign-up, sign-in, the signed-in user and their onboarding picks."""

from __future__ import annotations

from fastapi import APIRouter, Response

from primetime.service import actions
from primetime.service.auth import clear_session_cookie, set_session_cookie
from primetime.service.edge import EdgeRoute
from primetime.service.routes.deps import CurrentUser, Svc
from primetime.service.schemas import Login, Me, Onboarding, Session, SignUp

router = APIRouter(tags=["account"], route_class=EdgeRoute)


def _session(signed_in: actions.SignedIn, svc: Svc, response: Response) -> Session:
    """The session body; the token is also set as the session cookie."""
    user, token = signed_in.user, signed_in.token
    set_session_cookie(response, token, svc.settings)
    return Session(user_id=user.id, username=user.username, is_admin=user.is_admin, token=token)


@router.post("/auth/signup", response_model=Session, status_code=201)
def signup(body: SignUp, svc: Svc, response: Response) -> Session:
    """Create an account and sign in (the token is also set as a session cookie)."""
    demographics = body.demographics.model_dump(exclude_none=True) if body.demographics else None
    signed_in = actions.sign_up(
        svc,
        body.username,
        body.password,
        genres=body.genres,
        titles=body.titles,
        demographics=demographics,
    )
    return _session(signed_in, svc, response)


@router.post("/auth/login", response_model=Session)
def login(body: Login, svc: Svc, response: Response) -> Session:
    """Sign in with username and password."""
    return _session(actions.sign_in(svc, body.username, body.password), svc, response)


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
    return me(actions.save_onboarding(svc, user, body.genres, body.titles), svc)
