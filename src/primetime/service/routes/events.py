"""Event tracking: every acknowledged event is committed before the response."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from primetime.service import actions
from primetime.service.auth import session_ended
from primetime.service.edge import EdgeRoute
from primetime.service.routes.deps import EventSender, Svc
from primetime.service.schemas import EventBatch, EventIn, EventsAccepted
from primetime.service.store import SessionEnded

router = APIRouter(tags=["events"], route_class=EdgeRoute)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Makes a retry of this request a no-op: events without an `event_id` "
        "get one from the key and their position in the batch.",
    ),
]


@router.post(
    "/events",
    response_model=EventsAccepted,
    status_code=201,
    responses={
        200: {"model": EventsAccepted, "description": "A retry: every event was stored before."}
    },
)
async def post_events(
    body: EventIn | EventBatch,
    sender: EventSender,
    svc: Svc,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> EventsAccepted:
    """Record one event, or a batch (``{"events": [...]}``), for the signed-in user.

    The events are on disk when this returns 201; the user's cached
    recommendations are invalidated, so the next request reflects them. Concurrent
    requests share one transaction (group commit, ``PRIMETIME_GROUP_COMMIT``): each is
    answered once that transaction has committed, and none if it failed.

    Retries are safe with an ``event_id`` in each event (or an ``Idempotency-Key``
    header for the request): an event stored before is not stored again and keeps its
    id, so a retry gets the same ids; 200 instead of 201 when nothing was new. An
    ``event_id`` sent before with a different event is a 409.
    """
    batch = isinstance(body, EventBatch)
    events = body.events if isinstance(body, EventBatch) else [body]
    try:
        stored = await actions.ingest_events(
            svc,
            sender.user_id,
            events,
            batch=batch,
            idempotency_key=idempotency_key,
            session_id=sender.session_id,
        )
    except SessionEnded:
        raise session_ended() from None
    if not stored.added:
        response.status_code = 200
    return EventsAccepted(accepted=len(stored.ids), ids=stored.ids)
