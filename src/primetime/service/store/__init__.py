"""Event store: every read and write the service makes to its database, SQLite or PostgreSQL.

This package owns the store's public face: `EventStore` (composed here from one mixin per
aggregate), the record types it speaks in and its errors. `EventStore` speaks in plain frozen
dataclasses (`UserRecord`, `EventRecord`, …); ORM objects never leave a session. Each method is
one short transaction, and a write has committed before the method returns: once an event id
is handed back, the event survives a crash of the process.

Errors: bad arguments raise `ValueError` naming the argument; unknown users or experiments
raise `NotFound` (a `KeyError`); a taken username raises `UsernameTaken`; an `event_id`
used before for a different event raises `EventIdReused`.

Experiment outcomes use request-id attribution (see `EventStore.experiment_outcomes`).

Layout: `base` (engine, sessions, open/close), `records` (record types), `validate` (argument
checks), `errors`, and one module per aggregate: `users`, `sessions` (sign-ins),
`throttles` (failed sign-ins), `titles`, `events`, `impressions`,
`promotions` (history only: the versions live in the model registry), `experiments`.
"""

from __future__ import annotations

from primetime.service.store.errors import (
    EventIdReused,
    NotFound,
    SessionEnded,
    UsernameTaken,
)
from primetime.service.store.events import EventsMixin
from primetime.service.store.experiments import (
    CLICK_TYPES,
    COMPLETE_TYPES,
    ExperimentsMixin,
)
from primetime.service.store.impressions import ImpressionsMixin
from primetime.service.store.promotions import PromotionsMixin
from primetime.service.store.records import (
    Action,
    Arm,
    ArmOutcome,
    EventGroup,
    EventRecord,
    ExperimentRecord,
    ImpressionRecord,
    NewActions,
    NewEvent,
    PromotionRecord,
    StoredEvents,
    TitleSync,
    UserRecord,
)
from primetime.service.store.sessions import SessionsMixin
from primetime.service.store.throttles import ThrottlesMixin
from primetime.service.store.titles import TitlesMixin
from primetime.service.store.users import UsersMixin
from primetime.service.store.validate import DEMOGRAPHIC_KEYS

__all__ = [
    "CLICK_TYPES",
    "COMPLETE_TYPES",
    "DEMOGRAPHIC_KEYS",
    "Action",
    "Arm",
    "ArmOutcome",
    "EventGroup",
    "EventIdReused",
    "EventRecord",
    "EventStore",
    "ExperimentRecord",
    "ImpressionRecord",
    "PromotionRecord",
    "StoredEvents",
    "NewActions",
    "NewEvent",
    "NotFound",
    "SessionEnded",
    "TitleSync",
    "UserRecord",
    "UsernameTaken",
]


class EventStore(
    UsersMixin,
    SessionsMixin,
    ThrottlesMixin,
    TitlesMixin,
    EventsMixin,
    ImpressionsMixin,
    PromotionsMixin,
    ExperimentsMixin,
):
    """Users, sessions, sign-in throttles, events, impressions, titles, promotion history and
    experiments in one database.

    Thread-safe: every method opens its own session on the shared engine's pool.

    Args:
        engine: from `db.make_engine`, already migrated (see `EventStore.open`).
    """
