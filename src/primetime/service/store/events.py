"""User events: batched writes, and the reads recommendations and pages make of them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError

from primetime.service.db import Event
from primetime.service.store.base import StoreBase
from primetime.service.store.errors import EventIdReused
from primetime.service.store.records import (
    Action,
    EventRecord,
    NewActions,
    NewEvent,
    StoredEvents,
)
from primetime.service.store.validate import _check_id, _check_limit, _check_ts, _json

# Hot-path reads, built once: building a select and its cache key costs more than
# running it on SQLite (measured 0.28 vs 0.08 ms for a user's 50 latest events).
_RECENT = (
    select(Event.item_id, Event.event_type, Event.ts, Event.rating, Event.id)
    .where(Event.user_id == bindparam("user_id"))
    .order_by(Event.ts.desc(), Event.id.desc())
    .limit(bindparam("limit"))
)
_COUNT = select(func.count().label("n")).where(Event.user_id == bindparam("user_id")).subquery()
_AFTER = (
    select(_COUNT.c.n, Event.item_id, Event.event_type, Event.ts, Event.rating, Event.id)
    .select_from(
        _COUNT.outerjoin(
            Event, (Event.user_id == bindparam("user_id")) & (Event.id > bindparam("after_id"))
        )
    )
    .order_by(Event.id)
)


def _what(e: NewEvent) -> tuple[str, str, float | None]:
    """What makes two events with one `event_id` the same event."""
    return (e.item_id, e.event_type, None if e.rating is None else float(e.rating))


def _event_record(row: Event) -> EventRecord:
    return EventRecord(
        id=row.id,
        user_id=row.user_id,
        item_id=row.item_id,
        event_type=row.event_type,
        rating=row.rating,
        ts=row.ts,
        received_at=row.received_at,
        device=row.device,
        position=row.position,
        context=dict(row.context),
        request_id=row.request_id,
        event_id=row.event_id,
    )


class EventsMixin(StoreBase):
    """User events (the `events` table)."""

    def add_events(self, user_id: int, events: Sequence[NewEvent]) -> list[int]:
        """`store_events`, returning only the ids."""
        return self.store_events(user_id, events).ids

    def store_events(self, user_id: int, events: Sequence[NewEvent]) -> StoredEvents:
        """Store a batch of events of one user in one transaction (all or none).

        An event whose `event_id` the user sent before is not stored again: its id is the
        stored one's (so a client may resend a batch it got no answer for). The database
        enforces it (a unique index on `(user_id, event_id)`), also between workers.

        Args:
            user_id: an existing user.
            events: checked `NewEvent`s; a missing `ts` becomes the server time.

        Returns:
            The events' ids, in the order of `events` (committed to disk), and how many rows
            were added.

        Raises:
            NotFound: no such user.
            TypeError: an element is not a `NewEvent`.
            EventIdReused: an `event_id` names a different event (another title, type or
                rating) than the one stored, or than another in the batch.
        """
        _check_id("user_id", user_id)
        if not events:
            return StoredEvents([], [])
        now = time.time()
        rows = []
        first: dict[str, int] = {}  # event_id -> index of its first event in the batch
        for i, e in enumerate(events):
            if not isinstance(e, NewEvent):
                raise TypeError(f"events[{i}]: expected NewEvent, got {type(e).__name__}")
            if e.event_id is not None:
                j = first.setdefault(e.event_id, i)
                if j != i and _what(events[j]) != _what(e):
                    raise EventIdReused(
                        f"events[{i}].event_id: {e.event_id!r} names another event in the batch"
                    )
            rows.append(
                {
                    "user_id": user_id,
                    "item_id": e.item_id,
                    "event_type": e.event_type,
                    "rating": None if e.rating is None else float(e.rating),
                    "ts": now if e.ts is None else float(e.ts),
                    "received_at": now,
                    "device": e.device,
                    "position": e.position,
                    "context": _json(f"events[{i}].context", dict(e.context or {})),
                    "request_id": e.request_id,
                    "event_id": e.event_id,
                }
            )
        for attempt in range(3):
            try:
                return self._insert_events(user_id, events, rows, first)
            except IntegrityError as err:
                # A concurrent request stored one of these event ids first: read it again.
                if first and attempt < 2 and self.user(user_id) is not None:
                    continue
                self._raise_if_no_user(user_id, err)
                raise
        raise AssertionError("unreachable")

    def _insert_events(
        self,
        user_id: int,
        events: Sequence[NewEvent],
        rows: list[dict[str, Any]],
        first: dict[str, int],
    ) -> StoredEvents:
        with self._sessions.begin() as s:
            stored: dict[str, int] = {}
            if first:
                found = s.execute(
                    select(
                        Event.event_id, Event.id, Event.item_id, Event.event_type, Event.rating
                    ).where(Event.user_id == user_id, Event.event_id.in_(list(first)))
                )
                for event_id, id_, item_id, event_type, rating in found:
                    assert event_id is not None  # selected by it
                    i = first[event_id]
                    if _what(events[i]) != (item_id, event_type, rating):
                        raise EventIdReused(
                            f"events[{i}].event_id: {event_id!r} was sent before with another "
                            f"event ({event_type} of title {item_id!r})"
                        )
                    stored[event_id] = id_
            todo = [
                i
                for i, e in enumerate(events)
                if e.event_id is None or (e.event_id not in stored and first[e.event_id] == i)
            ]
            new_ids: list[int] = []
            if todo:
                stmt = insert(Event).returning(Event.id, sort_by_parameter_order=True)
                new_ids = list(s.scalars(stmt, [rows[i] for i in todo]))
        by_index = dict(zip(todo, new_ids, strict=True))
        for event_id, i in first.items():
            if event_id not in stored:
                stored[event_id] = by_index[i]
        ids = [
            by_index[i] if e.event_id is None else stored[e.event_id] for i, e in enumerate(events)
        ]
        return StoredEvents(ids, [i in by_index for i in range(len(events))])

    def events(
        self, user_id: int, *, since: float | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        """A user's events, oldest first (ties by id).

        Args:
            user_id: the user.
            since: keep events with `ts >= since` (unix seconds).
            limit: keep only the latest `limit` events (still returned oldest first).
        """
        stmt = select(Event).where(Event.user_id == user_id)
        if since is not None:
            stmt = stmt.where(Event.ts >= _check_ts("since", since))
        if limit is None:
            stmt = stmt.order_by(Event.ts, Event.id)
        else:
            stmt = stmt.order_by(Event.ts.desc(), Event.id.desc()).limit(_check_limit(limit))
        with self._sessions() as s:
            out = [_event_record(r) for r in s.scalars(stmt)]
        return out if limit is None else out[::-1]

    def recent_actions(self, user_id: int, *, limit: int) -> list[Action]:
        """The latest ``limit`` events as :class:`Action` tuples, oldest first (ties by id).

        The hot path of every personal request: plain tuples, no ORM objects (measured
        2.3 ms for 1,000 events through :meth:`events`), and a statement built once.
        """
        with self._engine.connect() as conn:
            result = conn.execute(_RECENT, {"user_id": user_id, "limit": _check_limit(limit)})
            rows = [Action(r[0], r[1], float(r[2]), r[3], r[4]) for r in result]
        return rows[::-1]

    def actions_after(self, user_id: int, after_id: int) -> NewActions:
        """The user's events with ``id > after_id`` (in id order) and their total event count.

        One statement, so both come from one snapshot: a caller holding the events up to
        ``after_id`` (``n`` of them) has them all when ``total == n + len(actions)``; an
        event with a smaller id committed late (ids are not commit-ordered in PostgreSQL)
        shows as a count that does not add up.
        """
        _check_id("user_id", user_id)
        with self._engine.connect() as conn:
            rows = conn.execute(_AFTER, {"user_id": user_id, "after_id": int(after_id)}).all()
        actions = [Action(r[1], r[2], float(r[3]), r[4], r[5]) for r in rows if r[5] is not None]
        return NewActions(actions, int(rows[0][0]) if rows else 0)

    def event_count(self, user_id: int | None = None) -> int:
        """Number of events, of one user or of everyone."""
        stmt = select(func.count()).select_from(Event)
        if user_id is not None:
            stmt = stmt.where(Event.user_id == user_id)
        with self._sessions() as s:
            return s.scalar(stmt) or 0

    def counts_by_type(self, user_id: int) -> dict[str, int]:
        """`{event_type: count}` of one user's events (types never seen are absent)."""
        stmt = (
            select(Event.event_type, func.count())
            .where(Event.user_id == user_id)
            .group_by(Event.event_type)
        )
        with self._sessions() as s:
            return {t: n for t, n in s.execute(stmt)}

    def max_event_id(self) -> int:
        """The largest event id stored, 0 for none (a cursor for incremental readers)."""
        with self._sessions() as s:
            return s.scalar(select(func.max(Event.id))) or 0
