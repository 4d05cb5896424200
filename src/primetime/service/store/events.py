"""User events: batched writes, and the reads recommendations and pages make of them."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError

from primetime.service.db import Event, UserSession
from primetime.service.store.base import StoreBase
from primetime.service.store.errors import EventIdReused, NotFound, SessionEnded
from primetime.service.store.records import (
    Action,
    EventGroup,
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

_Prepared = tuple[int, int, Sequence[NewEvent], list[dict[str, Any]], str | None]
"""A group of `store_event_groups` ready to insert: its index, user, events, rows, session."""


def _what(e: NewEvent) -> tuple[str, str, float | None]:
    """What makes two events with one `event_id` the same event."""
    return (e.item_id, e.event_type, None if e.rating is None else float(e.rating))


_PG_SESSIONS = (
    f"SELECT id, user_id, expires_at, revoked_at FROM {UserSession.__tablename__} "
    "WHERE id = ANY(%(ids)s::text[])"
)
_PG_KNOWN = (
    "SELECT e.user_id, e.event_id, e.id, e.item_id, e.event_type, e.rating "
    "FROM unnest(%(users)s::bigint[], %(event_ids)s::text[]) AS k(user_id, event_id) "
    f"JOIN {Event.__tablename__} AS e ON e.user_id = k.user_id AND e.event_id = k.event_id"
)
"""PostgreSQL reads of a group commit's transaction, one fixed text each: SQLAlchemy
renders an IN list per number of values (and psycopg parses each new text again), and
building an ORM select and its cache key cost more than the read itself (py-spy under
``benchmarks/bench_ingest.py``: the writer thread is the group commit's serial part).
Stored event ids are looked up by their (user, event id) pairs, one probe each of the
unique index: ``user_id = ANY(…) AND event_id = ANY(…)`` was planned as a scan of those
users' whole histories, growing with every event stored."""


_COLUMNS = (
    "user_id",
    "item_id",
    "event_type",
    "rating",
    "ts",
    "received_at",
    "device",
    "position",
    "context",
    "request_id",
    "event_id",
)
_PG_INSERT = (
    "INSERT INTO events ({cols}) SELECT {select} FROM unnest({arrays}) WITH ORDINALITY "
    "AS r({cols}, n) ORDER BY n RETURNING id"
).format(
    cols=", ".join(_COLUMNS),
    select=", ".join("CAST(context AS jsonb)" if c == "context" else c for c in _COLUMNS),
    arrays=", ".join(
        f"%({c})s::{t}[]"
        for c, t in zip(
            _COLUMNS,
            ("bigint", "text", "text", "float8", "float8", "float8", "text", "int")
            + ("text", "text", "text"),
            strict=True,
        )
    ),
)
"""PostgreSQL: the rows of a transaction as one array per column, one fixed statement.
Ids come from the sequence in the ``ORDER BY n`` order (the rows' order), so the sorted
returned ids are the rows' ids in order."""


def _insert_rows(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert `rows` (``_event_rows``'s dicts) in one statement; their new ids, in order.

    On PostgreSQL `_PG_INSERT`: SQLAlchemy's bulk ``INSERT ... RETURNING`` renders and
    psycopg parses a new statement text per number of rows, which was a third of the
    group-commit thread's time (``benchmarks/bench_ingest.py``, py-spy).
    """
    if conn.dialect.name != "postgresql":
        stmt = insert(Event).returning(Event.id, sort_by_parameter_order=True)
        return list(conn.scalars(stmt, rows))
    params: dict[str, list[Any]] = {c: [r[c] for r in rows] for c in _COLUMNS}
    params["context"] = [json.dumps(c, allow_nan=False) for c in params["context"]]
    found = conn.exec_driver_sql(_PG_INSERT, params).scalars().all()
    return sorted(found)


def _event_rows(
    user_id: int, events: Sequence[NewEvent], now: float
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The table rows of one user's batch, and `{event_id: index of its first event}`.

    Raises:
        TypeError: an element is not a `NewEvent`.
        EventIdReused: two events of the batch share an `event_id` but differ.
    """
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
    return rows, first


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
        rows, first = _event_rows(user_id, events, time.time())
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

    def store_event_groups(
        self, groups: Sequence[EventGroup | tuple[int, Sequence[NewEvent]]]
    ) -> list[StoredEvents | Exception]:
        """Store the batches of several requests (users) in ONE transaction: group commit.

        Each group gets the answer `store_events(user_id, events)` would have given had the
        groups been stored one after the other in this order: its ids (committed to disk
        when this returns), or the exception that refused it (`EventIdReused`, `NotFound`,
        `TypeError`, `ValueError`), which stores nothing of that group and nothing less of
        the others. An `event_id` of an earlier group of the same user (a retry racing its
        original) answers the earlier group's id, not new. A group with a `session_id` is
        stored only if that session of its user is open when the transaction reads it
        (else `SessionEnded`): the service checks a request's session here, once per
        transaction, rather than with a read of its own per request.

        Raises:
            sqlalchemy.exc.OperationalError and the other `db.UNAVAILABLE` errors: the
                database failed; nothing of any group was acknowledged.
        """
        now = time.time()
        out: list[StoredEvents | Exception | None] = [None] * len(groups)
        prepared: list[_Prepared] = []
        for g, group in enumerate(groups):
            user_id, events, session_id = EventGroup(*group)
            try:
                _check_id("user_id", user_id)
                if not events:
                    out[g] = StoredEvents([], [])
                    continue
                rows, _ = _event_rows(user_id, events, now)
            except (TypeError, ValueError) as err:  # EventIdReused is a ValueError
                out[g] = err
                continue
            prepared.append((g, user_id, events, rows, session_id))
        if prepared:
            for attempt in range(3):
                try:
                    for g, answer in self._insert_groups(prepared):
                        out[g] = answer
                    break
                except IntegrityError:
                    # Another worker stored one of these event ids between the read and the
                    # insert (read them again), or a user is gone: after two tries, store
                    # group by group, so one bad group refuses only itself.
                    if attempt < 2:
                        continue
                    for g, user_id, events, _, session_id in prepared:
                        try:
                            if session_id is not None and not self.session_active(
                                session_id, user_id
                            ):
                                raise SessionEnded(f"session of user {user_id} ended")
                            out[g] = self.store_events(user_id, events)
                        except (NotFound, ValueError, IntegrityError, SessionEnded) as err:
                            out[g] = err
        return [a if a is not None else AssertionError("unanswered") for a in out]

    def _insert_groups(
        self, prepared: Sequence[_Prepared]
    ) -> list[tuple[int, StoredEvents | Exception]]:
        """One transaction for `store_event_groups`: read the groups' sessions and the event
        ids stored before, plan each group in order, insert every new row at once, commit."""
        answers: list[tuple[int, StoredEvents | Exception]] = []
        # A Core connection, not an ORM session: nothing here loads objects, and the ORM's
        # statement layer was a large share of the writer thread's time.
        with self._engine.begin() as conn:
            pg = conn.dialect.name == "postgresql"
            sids = {p[4] for p in prepared if p[4] is not None}
            if sids:
                now = time.time()
                if pg:
                    found_sessions: Any = conn.exec_driver_sql(_PG_SESSIONS, {"ids": sorted(sids)})
                else:
                    found_sessions = conn.execute(
                        select(
                            UserSession.id,
                            UserSession.user_id,
                            UserSession.expires_at,
                            UserSession.revoked_at,
                        ).where(UserSession.id.in_(sids))
                    )
                open_ = {
                    (sid, uid)
                    for sid, uid, expires_at, revoked_at in found_sessions
                    if revoked_at is None and expires_at > now
                }
                kept = []
                for p in prepared:
                    if p[4] is None or (p[4], p[1]) in open_:
                        kept.append(p)
                    else:
                        answers.append((p[0], SessionEnded(f"session of user {p[1]} ended")))
                prepared = kept
            keys = {
                (u, e.event_id) for _, u, events, _, _ in prepared for e in events if e.event_id
            }
            # (user_id, event_id) -> (id or None for "a row of this batch", what it is)
            known: dict[tuple[int, str], tuple[int | None, tuple[str, str, float | None]]] = {}
            if keys:
                if pg:
                    pairs = sorted(keys)
                    found: Any = conn.exec_driver_sql(
                        _PG_KNOWN,
                        {"users": [u for u, _ in pairs], "event_ids": [e for _, e in pairs]},
                    )
                else:
                    found = conn.execute(
                        select(
                            Event.user_id,
                            Event.event_id,
                            Event.id,
                            Event.item_id,
                            Event.event_type,
                            Event.rating,
                        ).where(
                            Event.user_id.in_({u for u, _ in keys}),
                            Event.event_id.in_({e for _, e in keys}),
                        )
                    )
                for uid, eid, row_id, item_id, event_type, rating in found:
                    if (uid, eid) in keys:
                        known[(uid, str(eid))] = (row_id, (item_id, event_type, rating))
            # Per group: for each event, ("row", k) = the k-th inserted row, ("id", id) = a
            # stored row, ("key", key) = the row an earlier group of this batch inserts.
            plans: list[tuple[int, list[tuple[str, Any]]]] = []
            to_insert: list[dict[str, Any]] = []
            owner: dict[tuple[int, str], int] = {}  # key -> k of the row inserting it
            for g, user_id, events, rows, _ in prepared:
                plan: list[tuple[str, Any]] = []
                claims: dict[tuple[int, str], int] = {}  # key -> k of its row
                claimed_by: dict[tuple[int, str], NewEvent] = {}
                new_rows: list[dict[str, Any]] = []
                refused: Exception | None = None
                for i, e in enumerate(events):
                    if e.event_id is None:
                        plan.append(("row", len(to_insert) + len(new_rows)))
                        new_rows.append(rows[i])
                        continue
                    key = (user_id, e.event_id)
                    if key in claims:  # repeated inside the group (checked equal before)
                        plan.append(("row", claims[key]))
                    elif key in known:
                        known_id, what = known[key]
                        if _what(e) != what:
                            refused = EventIdReused(
                                f"events[{i}].event_id: {e.event_id!r} was sent before with "
                                f"another event ({what[1]} of title {what[0]!r})"
                            )
                            break
                        plan.append(("id", known_id) if known_id is not None else ("key", key))
                    else:
                        claims[key] = len(to_insert) + len(new_rows)
                        claimed_by[key] = e
                        plan.append(("row", claims[key]))
                        new_rows.append(rows[i])
                if refused is not None:
                    answers.append((g, refused))
                    continue
                for key, k in claims.items():
                    owner[key] = k
                    known[key] = (None, _what(claimed_by[key]))
                to_insert.extend(new_rows)
                plans.append((g, plan))
            new_ids: list[int] = []
            if to_insert:
                new_ids = _insert_rows(conn, to_insert)
        for g, plan in plans:
            ids, new = [], []
            for kind, ref in plan:
                if kind == "row":
                    ids.append(new_ids[ref])
                    new.append(True)
                elif kind == "id":
                    ids.append(ref)
                    new.append(False)
                else:
                    ids.append(new_ids[owner[ref]])
                    new.append(False)
            # A row repeated inside one group counts once as new, as in `store_events`.
            seen: set[int] = set()
            for j, id_ in enumerate(ids):
                if new[j] and id_ in seen:
                    new[j] = False
                seen.add(id_)
            answers.append((g, StoredEvents(ids, new)))
        return answers

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
