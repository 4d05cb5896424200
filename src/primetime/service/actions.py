"""What users and admins do, once for both front ends (the JSON API and the web pages).

Each action takes the :class:`ServiceState` and plain, already parsed arguments, does
the work (store, caches, metrics) and returns plain data, or refuses with a
:class:`~primetime.service.errors.DomainError`. No action knows about requests,
responses or cookies: ``primetime.service.routes`` turns the errors into JSON and
``primetime.web`` into pages and form messages.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from primetime.data.events import EventType
from primetime.service.auth import (
    TokenData,
    hash_password,
    issue_token,
    validate_password,
    validate_username,
    verify_password,
)
from primetime.service.errors import Conflict, InvalidInput, NotFound, Unauthorized
from primetime.service.experiments import experiment_report
from primetime.service.newtitles import TitleIn, check_names
from primetime.service.schemas import EventIn, ExperimentIn
from primetime.service.state import ServiceState
from primetime.service.store import (
    EventGroup,
    EventIdReused,
    NewEvent,
    StoredEvents,
    UsernameTaken,
    UserRecord,
)

#: Most onboarding picks (the API's schema has the same limits).
MAX_GENRES, MAX_TITLES = 20, 50


@dataclass(frozen=True)
class SignedIn:
    """A user and a fresh session token for them."""

    user: UserRecord
    token: str


def _signed_in(
    svc: ServiceState,
    user: UserRecord,
    *,
    user_agent: str | None = None,
    new_password_hash: str | None = None,
) -> SignedIn:
    """A new session (server-side row and signed token). With `new_password_hash`, the
    password is replaced and every other session of the user ends, in one transaction."""
    sid = svc.store.create_session(
        user.id,
        ttl=svc.settings.token_ttl_seconds,
        user_agent=user_agent,
        revoke_others=new_password_hash is not None,
        password_hash=new_password_hash,
    )
    token = issue_token(user.id, is_admin=user.is_admin, session_id=sid, settings=svc.settings)
    return SignedIn(user, token)


# ----------------------------------------------------------------- accounts
def check_picks(svc: ServiceState, genres: Sequence[str], titles: Sequence[str]) -> None:
    """InvalidInput unless every genre and title id is in the catalog (and not too many)."""
    unknown = [g for g in genres if g not in svc.genres]
    if unknown:
        raise InvalidInput(f"unknown genre(s) {unknown}; known: {svc.genres}", ("genres",))
    missing = [t for t in titles if svc.item_index(t) is None]
    if missing:
        raise InvalidInput(f"unknown item id(s) {missing[:5]}", ("titles",))
    if len(genres) > MAX_GENRES or len(titles) > MAX_TITLES:
        raise InvalidInput(f"pick at most {MAX_GENRES} genres and {MAX_TITLES} titles")


def sign_up(
    svc: ServiceState,
    username: str,
    password: str,
    *,
    genres: Sequence[str] = (),
    titles: Sequence[str] = (),
    demographics: dict[str, Any] | None = None,
    user_agent: str | None = None,
) -> SignedIn:
    """Create an account (with optional onboarding picks) and sign it in.

    Raises:
        InvalidInput: a bad username and/or password (one problem each: the password
            policy is `auth.validate_password`), unknown picks, or demographics the store
            refuses.
        Conflict: the username is taken (in any case: `Ann` when `ann` exists).
    """
    problems = []
    for field, check in (
        ("username", lambda: validate_username(username)),
        ("password", lambda: validate_password(password, username=username)),
    ):
        try:
            check()
        except ValueError as err:
            problems.append(((field,), str(err)))
    if problems:
        raise InvalidInput.of(problems)
    check_picks(svc, genres, titles)
    try:
        user = svc.store.create_user(
            username,
            hash_password(password),
            onboarding_genres=genres,
            onboarding_titles=titles,
            demographics=demographics,
        )
    except UsernameTaken:
        raise Conflict(f"username {username!r} is taken") from None
    except ValueError as err:  # the store's own checks (e.g. demographics)
        raise InvalidInput(str(err)) from None
    return _signed_in(svc, user, user_agent=user_agent)


def sign_in(
    svc: ServiceState,
    username: str,
    password: str,
    *,
    address: str | None = None,
    user_agent: str | None = None,
) -> SignedIn:
    """Check the password (in constant time whether or not the user exists) and start a
    session. The username matches in any case.

    Args:
        address: the client's address, throttled beside the account.
        user_agent: kept with the session.

    Raises:
        TooManyRequests: the account or the address failed too often lately (the password
            is not checked; see `service.throttle`).
        Unauthorized: no such user or a wrong password (the same answer for both).
    """
    svc.login_throttle.check(username, address)
    user = svc.store.user_by_name(username) if username else None
    if not verify_password(password, hashed=user.password_hash if user else None):
        svc.login_throttle.failed(username, address)
        raise Unauthorized("wrong username or password")
    assert user is not None
    svc.login_throttle.succeeded(username)
    return _signed_in(svc, user, user_agent=user_agent)


def sign_out(svc: ServiceState, token: TokenData | None) -> None:
    """End the token's session (nothing to do without a valid token)."""
    if token is not None:
        svc.store.revoke_session(token.session_id)


def sign_out_everywhere(svc: ServiceState, user_id: int) -> int:
    """End every session of the user, in every browser and client; how many were open."""
    return svc.store.revoke_sessions(user_id)


def change_password(
    svc: ServiceState,
    user: UserRecord,
    current_password: str,
    new_password: str,
    *,
    address: str | None = None,
    user_agent: str | None = None,
) -> SignedIn:
    """Replace the password: every session of the user ends, and a new one starts for the
    caller (so they stay signed in here and nowhere else).

    Raises:
        TooManyRequests: backed off after failures, as `sign_in` (a stolen session must not
            let anyone guess the password faster).
        Unauthorized: the current password is wrong.
        InvalidInput: the new password breaks the policy (the rule is named).
    """
    svc.login_throttle.check(user.username, address)
    user = svc.store.user(user.id) or user  # the hash as stored now, not a worker's copy
    if not verify_password(current_password, hashed=user.password_hash):
        svc.login_throttle.failed(user.username, address)
        raise Unauthorized("the current password is wrong")
    try:
        validate_password(new_password, username=user.username)
    except ValueError as err:
        raise InvalidInput(str(err), ("new_password",)) from None
    signed_in = _signed_in(
        svc, user, user_agent=user_agent, new_password_hash=hash_password(new_password)
    )
    svc.user_changed(user.id)
    return signed_in


def save_onboarding(
    svc: ServiceState, user: UserRecord, genres: Sequence[str], titles: Sequence[str]
) -> UserRecord:
    """Replace the user's onboarding picks; their recommendations follow at once.

    Raises:
        InvalidInput: an unknown genre or title, or too many picks.
    """
    check_picks(svc, genres, titles)
    svc.store.set_onboarding(user.id, genres, titles)
    svc.user_changed(user.id)
    svc.cache.bump_user(user.id)
    return svc.store.user(user.id) or user


# ------------------------------------------------------------------- events
def idempotency_event_id(key: str, index: int) -> str:
    """The `event_id` of the `index`-th event of a batch sent with ``Idempotency-Key: key``
    (and no `event_id` of its own): 46 characters at most, whatever the key's length."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"k:{digest}:{index}"


def check_events(
    svc: ServiceState,
    events: Sequence[EventIn],
    *,
    batch: bool = False,
    idempotency_key: str | None = None,
) -> list[NewEvent]:
    """The events as the store takes them, or the first problem (see `record_events`)."""
    new = []
    latest = time.time() + svc.settings.event_max_future_seconds
    for i, e in enumerate(events):
        where: tuple[str | int, ...] = ("events", i) if batch else ()
        if svc.item_index(e.item_id) is None:
            raise InvalidInput(f"no title {e.item_id!r} in the catalog", (*where, "item_id"))
        if e.ts is not None and e.ts > latest:
            raise InvalidInput(
                f"{e.ts:.0f} is more than {svc.settings.event_max_future_seconds:g} s in the "
                "future (unix seconds, by the server's clock)",
                (*where, "ts"),
            )
        if (e.event_type == EventType.RATE) != (e.rating is not None):
            raise InvalidInput(
                "required for 'rate' events and refused for other types", (*where, "rating")
            )
        event_id = e.event_id
        if event_id is None and idempotency_key is not None:
            event_id = idempotency_event_id(idempotency_key, i)
        try:
            new.append(
                NewEvent(
                    item_id=e.item_id,
                    event_type=e.event_type,
                    ts=e.ts,
                    rating=e.rating,
                    device=e.device,
                    position=e.position,
                    context=e.context,
                    request_id=e.request_id,
                    event_id=event_id,
                )
            )
        except ValueError as err:  # the store's checks say "<field>: <what is wrong>"
            field, _, msg = str(err).partition(": ")
            if field in EventIn.model_fields and msg:
                raise InvalidInput(msg, (*where, field)) from None
            raise InvalidInput(str(err), where) from None
    return new


def _conflict(err: EventIdReused, idempotency_key: str | None) -> Conflict:
    what = "Idempotency-Key" if idempotency_key is not None else "event_id"
    return Conflict(f"{what} was used before for different events: {err}")


def _stored(
    svc: ServiceState, user_id: int, events: Sequence[NewEvent], s: StoredEvents, *, bump: bool
) -> None:
    """After a commit: the user's cached lists go (unless the caller bumps them, `bump`),
    the new events are counted."""
    if s.added and bump:
        svc.cache.bump_user(user_id)
    for e, added in zip(events, s.new, strict=True):
        if added:
            svc.metrics.record_event(e.event_type)


def record_events(
    svc: ServiceState,
    user_id: int,
    events: Sequence[EventIn],
    *,
    batch: bool = False,
    idempotency_key: str | None = None,
) -> StoredEvents:
    """Store the events (all or none), invalidate the user's cached lists, count them.

    The events are committed when this returns. ``batch`` says whether the caller sent
    a list (problems are then located at ``("events", i, field)``, else at ``(field,)``).
    An event whose ``event_id`` the user sent before (or, with ``idempotency_key``, the
    same position in a batch sent before with that key) is not stored again: its id is the
    stored one's, so a retry is a no-op with the same answer.

    Returns:
        The events' ids in order, and how many were new.

    Raises:
        InvalidInput: an unknown title, a rating on a non-``rate`` event (or none on a
            ``rate`` one), a ``ts`` more than ``settings.event_max_future_seconds`` ahead
            of the server's clock, or a value the store refuses.
        Conflict: an ``event_id`` (or idempotency key) sent before with another event.
    """
    new = check_events(svc, events, batch=batch, idempotency_key=idempotency_key)
    try:
        stored = svc.store.store_events(user_id, new)
    except EventIdReused as err:
        raise _conflict(err, idempotency_key) from None
    _stored(svc, user_id, new, stored, bump=True)
    return stored


def store_groups(svc: ServiceState, groups: list[EventGroup]) -> list[StoredEvents | Exception]:
    """`record_events`' store step for several requests in one transaction (group commit,
    :class:`~primetime.service.ingest.GroupCommit`); metrics counted after it, the cache's
    step is `after_groups`."""
    answers = svc.store.store_event_groups(groups)
    for group, answer in zip(groups, answers, strict=True):
        if isinstance(answer, StoredEvents):
            _stored(svc, group.user_id, group.events, answer, bump=False)
    return answers


def after_groups(
    svc: ServiceState, groups: list[EventGroup], answers: list[StoredEvents | Exception]
) -> None:
    """After `store_groups` committed, before any of its requests is answered: the cached
    lists of the users who have new events go (one round trip for all)."""
    svc.cache.bump_users(
        group.user_id
        for group, answer in zip(groups, answers, strict=True)
        if isinstance(answer, StoredEvents) and answer.added
    )


async def ingest_events(
    svc: ServiceState,
    user_id: int,
    events: Sequence[EventIn],
    *,
    batch: bool = False,
    idempotency_key: str | None = None,
    session_id: str | None = None,
) -> StoredEvents:
    """`record_events` for the event loop: checked here, stored through the worker's group
    commit (``svc.group_commit``) when it has one, else by `record_events` on a thread.
    Committed when it returns; the same answers and refusals as `record_events`.

    Args:
        session_id: with group commit, the caller's session, checked in the transaction
            (`SessionEnded` when it is no longer open); without, the caller checked it.
    """
    writer = svc.group_commit
    if writer is None:
        return await anyio.to_thread.run_sync(
            functools.partial(
                record_events,
                svc,
                user_id,
                events,
                batch=batch,
                idempotency_key=idempotency_key,
            )
        )
    new = check_events(svc, events, batch=batch, idempotency_key=idempotency_key)
    try:
        return await writer.store(user_id, new, session_id=session_id)
    except EventIdReused as err:
        raise _conflict(err, idempotency_key) from None


def like_titles(svc: ServiceState, user_id: int, titles: Iterable[str], *, source: str) -> None:
    """Record a ``like`` from the web for each title (e.g. the titles picked at onboarding)."""
    likes = [
        EventIn.model_validate(
            {
                "item_id": t,
                "event_type": EventType.LIKE,
                "device": "web",
                "context": {"source": source},
            }
        )
        for t in titles
    ]
    if likes:
        record_events(svc, user_id, likes, batch=True)


# -------------------------------------------------------------------- admin
ADMIN_TOKEN_ACTOR = "admin token"
"""`actor` of a promotion made with the admin token rather than an admin account."""


def promote_model(
    svc: ServiceState,
    name: str,
    version: str,
    *,
    actor: str | None = None,
    note: str | None = None,
) -> None:
    """Promote a registered model version in the registry (served after the next reload)
    and append it to the database's promotion history
    (:func:`primetime.service.promotion.promote`).

    Raises:
        NotFound: no such model or version.
    """
    from primetime.service.promotion import promote

    try:
        promote(svc.registry, svc.store, name, version, actor=actor, note=note)
    except (KeyError, ValueError) as err:
        raise NotFound(str(err).strip("'\"")) from None


def reload_models(svc: ServiceState) -> dict[str, Any]:
    """Load the promoted versions and swap them in without dropping requests."""
    slots = svc.reload()
    return {"default": slots.default.key, "loaded": sorted(slots.by_key)}


def create_experiment(svc: ServiceState, body: ExperimentIn) -> dict[str, Any]:
    """Start an A/B test; users are split by a stable hash between the arms' versions.

    Returns:
        The new experiment's report.

    Raises:
        InvalidInput: an arm names a model version that cannot be loaded.
        Conflict: an experiment with this id exists.
    """
    for arm in body.arms:
        try:
            svc.model(arm.model_version)
        except (KeyError, ValueError):
            raise InvalidInput(
                f"no model version {arm.model_version!r} (see /api/v1/admin/models)", ("arms",)
            ) from None
    if svc.store.experiment(body.id) is not None:
        raise Conflict(f"experiment {body.id!r} exists")
    svc.store.create_experiment(body.id, body.name, [a.model_dump() for a in body.arms])
    svc.experiments_changed()
    return experiment_report(svc.store, body.id)


def experiment_status(svc: ServiceState, experiment_id: str) -> dict[str, Any]:
    """CTR and completion rate per arm, impressions flushed first.

    Raises:
        NotFound: no such experiment.
    """
    svc.impressions.flush()
    try:
        return experiment_report(svc.store, experiment_id)
    except KeyError:
        raise NotFound(f"no experiment {experiment_id!r}") from None


def stop_experiment(svc: ServiceState, experiment_id: str) -> dict[str, Any]:
    """Stop assigning users to the experiment; its report stays readable.

    Raises:
        NotFound: no such experiment.
    """
    if svc.store.experiment(experiment_id) is None:
        raise NotFound(f"no experiment {experiment_id!r}")
    svc.store.set_experiment_active(experiment_id, False)
    svc.experiments_changed()
    return experiment_report(svc.store, experiment_id)


def add_title(svc: ServiceState, body: TitleIn) -> dict[str, Any]:
    """Add a title to the running catalog: mirrored in the store's titles table, scored
    at once by every loaded model that can grow (``extend_items``), by the content
    member in the others, and shown in the "New on Primetime" row. No retraining.

    Returns:
        The title (with ``added_at``), its item_idx, which loaded models scored it
        themselves (``models``) and the content member's name.

    Raises:
        InvalidInput: a blank or too long name, or a genre the catalog does not have.
        Conflict: a title with this item id exists.
    """
    problems = check_names(body)
    if problems:
        raise InvalidInput.of(problems)
    unknown = [g for g in body.genres if g not in svc.genres]
    if unknown:
        raise InvalidInput(f"unknown genre(s) {unknown}; known: {svc.genres}", ("genres",))
    if svc.item_index(body.item_id) is not None:
        raise Conflict(f"title {body.item_id!r} exists")
    row = body.catalog_row()
    svc.store.sync_titles([{k: row[k] for k in ("item_id", "title", "kind", "year", "genres")}])
    added_at = time.time()
    try:
        out = svc.add_title(body, added_at=added_at)
    except KeyError:
        raise Conflict(f"title {body.item_id!r} exists") from None
    # kept with its body, so a restarted service (and every other worker) grows to it
    svc.store.record_added_title(body.item_id, body.model_dump(mode="json"), added_at)
    return {**out, "title": svc.title_json(out["item_idx"])}
