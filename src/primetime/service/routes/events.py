"""Event tracking: every acknowledged event is committed before the response."""

from __future__ import annotations

from fastapi import APIRouter

from primetime.service.errors import unprocessable
from primetime.service.routes.deps import CurrentUser, Svc
from primetime.service.schemas import EventBatch, EventIn, EventsAccepted
from primetime.service.store import NewEvent

router = APIRouter(tags=["events"])


@router.post("/events", response_model=EventsAccepted, status_code=201)
def post_events(body: EventIn | EventBatch, user: CurrentUser, svc: Svc) -> EventsAccepted:
    """Record one event, or a batch (``{"events": [...]}``), for the signed-in user.

    The events are on disk when this returns 201; the user's cached
    recommendations are invalidated, so the next request reflects them.
    """
    events = body.events if isinstance(body, EventBatch) else [body]
    new = []
    for i, e in enumerate(events):
        where: tuple[str | int, ...] = (
            ("body", "events", i) if isinstance(body, EventBatch) else ("body",)
        )
        if svc.item_index(e.item_id) is None:
            raise unprocessable((*where, "item_id"), f"no title {e.item_id!r} in the catalog")
        if (e.event_type == "rate") != (e.rating is not None):
            raise unprocessable(
                (*where, "rating"), "required for 'rate' events and refused for other types"
            )
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
                )
            )
        except ValueError as err:
            raise unprocessable(where, str(err)) from None
    ids = svc.store.add_events(user.id, new)
    svc.cache.bump_user(user.id)
    for e in events:
        svc.metrics.record_event(e.event_type)
    return EventsAccepted(accepted=len(ids), ids=ids)
