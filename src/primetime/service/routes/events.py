"""Event tracking: every acknowledged event is committed before the response."""

from __future__ import annotations

from fastapi import APIRouter

from primetime.service import actions
from primetime.service.edge import EdgeRoute
from primetime.service.routes.deps import CurrentUser, Svc
from primetime.service.schemas import EventBatch, EventIn, EventsAccepted

router = APIRouter(tags=["events"], route_class=EdgeRoute)


@router.post("/events", response_model=EventsAccepted, status_code=201)
def post_events(body: EventIn | EventBatch, user: CurrentUser, svc: Svc) -> EventsAccepted:
    """Record one event, or a batch (``{"events": [...]}``), for the signed-in user.

    The events are on disk when this returns 201; the user's cached
    recommendations are invalidated, so the next request reflects them.
    """
    batch = isinstance(body, EventBatch)
    events = body.events if isinstance(body, EventBatch) else [body]
    ids = actions.record_events(svc, user.id, events, batch=batch)
    return EventsAccepted(accepted=len(ids), ids=ids)
