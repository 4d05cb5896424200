"""Sign-up, sign-in, sign-out (here or everywhere), password change, the signed-in user and
their onboarding picks.

Answers that carry a session token, and sign-in attempts, are sent with
``Cache-Control: no-store``: no browser or proxy keeps a copy of a token or a password reply.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from primetime.service import actions
from primetime.service.auth import clear_session_cookie, set_session_cookie, signed_token
from primetime.service.edge import EdgeRoute
from primetime.service.routes.deps import CurrentUser, Svc, client_address
from primetime.service.schemas import ChangePassword, Login, Me, Onboarding, Session, SignUp

router = APIRouter(tags=["account"], route_class=EdgeRoute)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def no_store(response: Response) -> None:
    """Forbid caches to keep this answer (it holds a session token)."""
    response.headers.update(NO_STORE)


def _session(signed_in: actions.SignedIn, svc: Svc, response: Response) -> Session:
    """The session body; the token is also set as the session cookie."""
    user, token = signed_in.user, signed_in.token
    set_session_cookie(response, token, svc.settings)
    return Session(user_id=user.id, username=user.username, is_admin=user.is_admin, token=token)


@router.post("/auth/signup", response_model=Session, status_code=201)
def signup(body: SignUp, svc: Svc, request: Request, response: Response) -> Session:
    """Create an account and sign in (the token is also set as a session cookie).

    The password must have at least 10 characters, not contain the username, and not be
    a common or trivially guessable one; each refusal names its rule. Usernames are
    unique regardless of case."""
    no_store(response)
    demographics = body.demographics.model_dump(exclude_none=True) if body.demographics else None
    signed_in = actions.sign_up(
        svc,
        body.username,
        body.password,
        genres=body.genres,
        titles=body.titles,
        demographics=demographics,
        user_agent=request.headers.get("user-agent"),
    )
    return _session(signed_in, svc, response)


@router.post("/auth/login", response_model=Session)
def login(body: Login, svc: Svc, request: Request, response: Response) -> Session:
    """Sign in with username (any case) and password.

    After 5 failed sign-ins of one account (or 20 from one address) sign-ins wait: 429 with
    ``Retry-After``, 1 s at first and twice as long after each further failure (at most
    15 minutes)."""
    no_store(response)
    signed_in = actions.sign_in(
        svc,
        body.username,
        body.password,
        address=client_address(request),
        user_agent=request.headers.get("user-agent"),
    )
    return _session(signed_in, svc, response)


@router.post("/auth/logout", status_code=204)
def logout(svc: Svc, request: Request, response: Response) -> Response:
    """End this session: its token stops working at once (and the cookie is cleared)."""
    actions.sign_out(svc, signed_token(request))
    clear_session_cookie(response, svc.settings)
    no_store(response)
    response.status_code = 204
    return response


@router.post("/auth/logout-all", status_code=204)
def logout_all(user: CurrentUser, svc: Svc, response: Response) -> Response:
    """Sign out everywhere: every session of the account ends at once, this one included."""
    actions.sign_out_everywhere(svc, user.id)
    clear_session_cookie(response, svc.settings)
    no_store(response)
    response.status_code = 204
    return response


@router.post("/auth/password", response_model=Session)
def change_password(
    body: ChangePassword, user: CurrentUser, svc: Svc, request: Request, response: Response
) -> Session:
    """Change the password: every session of the account ends, and the answer holds a new
    token for this client. Throttled like sign-in; the new password follows the sign-up
    policy."""
    no_store(response)
    signed_in = actions.change_password(
        svc,
        user,
        body.current_password,
        body.new_password,
        address=client_address(request),
        user_agent=request.headers.get("user-agent"),
    )
    return _session(signed_in, svc, response)


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
