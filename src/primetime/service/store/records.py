"""What the store takes and gives: frozen dataclasses and named tuples, never ORM objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from primetime.data.events import EventType
from primetime.service.db import EVENT_ID_MAX, EVENT_TYPES, ITEM_ID_MAX, REQUEST_ID_MAX
from primetime.service.store.validate import _check_str, _check_ts


@dataclass(frozen=True, slots=True)
class UserRecord:
    """An account. `onboarding_titles` are item ids; `demographics` has optional `age` (int),
    `gender` and `occupation` (str); `created_at` is unix seconds."""

    id: int
    username: str
    password_hash: str = field(repr=False)
    is_admin: bool
    created_at: float
    onboarding_genres: tuple[str, ...]
    onboarding_titles: tuple[str, ...]
    demographics: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event as a client reports it; checked on construction.

    Attributes:
        item_id: external title id.
        event_type: one of `db.EVENT_TYPES` (the `EventType` values, as the API spells them).
        ts: when it happened, unix seconds (client clock); None = when the server stores it.
        rating: 1–5, required for `rate` and refused for every other type.
        device: free-form client device label (≤ 64 chars).
        position: 0-based rank of the item in the list the user acted on.
        context: JSON object of extra context (time of day, platform …).
        request_id: id of the recommendation response the item was shown in.
        event_id: the client's key of this event (≤ 64 chars), unique per user: sending an
            event again with the same key stores nothing and gives the first one's id.
    """

    item_id: str
    event_type: str
    ts: float | None = None
    rating: float | None = None
    device: str | None = None
    position: int | None = None
    context: Mapping[str, Any] | None = None
    request_id: str | None = None
    event_id: str | None = None

    def __post_init__(self) -> None:
        _check_str("item_id", self.item_id, ITEM_ID_MAX)
        if self.event_type not in EVENT_TYPES:
            raise ValueError(
                f"event_type: {self.event_type!r} is not one of {', '.join(EVENT_TYPES)}"
            )
        if self.ts is not None:
            _check_ts("ts", self.ts)
        if self.event_type == EventType.RATE:
            if self.rating is None:
                raise ValueError("rating: required for event_type 'rate'")
            if isinstance(self.rating, bool) or not isinstance(self.rating, int | float):
                raise ValueError(f"rating: expected a number, got {self.rating!r}")
            if not 1.0 <= self.rating <= 5.0:  # also refuses NaN
                raise ValueError(f"rating: {self.rating!r} is outside 1–5")
        elif self.rating is not None:
            raise ValueError(f"rating: only allowed for event_type 'rate', not {self.event_type!r}")
        if self.device is not None:
            _check_str("device", self.device, 64)
        if self.position is not None and (
            isinstance(self.position, bool)
            or not isinstance(self.position, int)
            or self.position < 0
        ):
            raise ValueError(f"position: expected an int >= 0, got {self.position!r}")
        if self.context is not None and not isinstance(self.context, Mapping):
            raise ValueError(f"context: expected a JSON object, got {type(self.context).__name__}")
        if self.request_id is not None:
            _check_str("request_id", self.request_id, REQUEST_ID_MAX)
        if self.event_id is not None:
            _check_str("event_id", self.event_id, EVENT_ID_MAX)


class Action(NamedTuple):
    """The columns of an event a recommendation needs (see `recent_actions`)."""

    item_id: str
    event_type: str
    ts: float
    rating: float | None
    id: int = 0


class StoredEvents(NamedTuple):
    """What `EventStore.store_events` did: the events' ids in the order given, and for each
    whether this call added it (False: its `event_id` was stored before)."""

    ids: list[int]
    new: list[bool]

    @property
    def added(self) -> int:
        """How many rows this call added."""
        return sum(self.new)


class EventGroup(NamedTuple):
    """One request's events for `EventStore.store_event_groups`: its user, its events and,
    to check in the same transaction, the session it came with (None: not checked)."""

    user_id: int
    events: Sequence[NewEvent]
    session_id: str | None = None


class NewActions(NamedTuple):
    """A user's events after a known id, and how many events the user has in all, read in
    one statement (one snapshot): see `EventStore.actions_after`."""

    actions: list[Action]
    total: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A stored event; `ts` and `received_at` are unix seconds."""

    id: int
    user_id: int
    item_id: str
    event_type: str
    rating: float | None
    ts: float
    received_at: float
    device: str | None
    position: int | None
    context: dict[str, Any]
    request_id: str | None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ImpressionRecord:
    """One item shown in one recommendation response; `position` is 0-based."""

    id: int
    user_id: int
    item_id: str
    request_id: str
    model_version: str
    experiment_id: str | None
    arm: str | None
    position: int
    ts: float


@dataclass(frozen=True, slots=True)
class PromotionRecord:
    """One promotion in the model registry's history: `version` of `name` became the promoted
    one at `promoted_at` (unix seconds), replacing `previous_version` (None: none was), done by
    `actor` (None: unknown) with an optional `note`."""

    id: int
    name: str
    version: str
    previous_version: str | None
    promoted_at: float
    actor: str | None
    note: str | None

    @property
    def key(self) -> str:
        """``"name:version"``, the key experiments and impressions use."""
        return f"{self.name}:{self.version}"


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm of an experiment: serve `model_version` to a `weight` share of users."""

    name: str
    model_version: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """An A/B experiment."""

    id: str
    name: str
    arms: tuple[Arm, ...]
    created_at: float
    active: bool


@dataclass(frozen=True, slots=True)
class ArmOutcome:
    """What one arm of an experiment produced (definitions: `EventStore.experiment_outcomes`)."""

    arm: str
    users: int
    impressions: int
    clicks: int
    completions: int

    @property
    def ctr(self) -> float:
        """Clicked impressions / impressions (0.0 without impressions)."""
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def completion_rate(self) -> float:
        """Completed impressions / impressions (0.0 without impressions)."""
        return self.completions / self.impressions if self.impressions else 0.0


@dataclass(frozen=True, slots=True)
class TitleSync:
    """Counts from `EventStore.sync_titles`."""

    inserted: int
    updated: int
    unchanged: int
