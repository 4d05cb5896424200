"""Live genre preferences: what a user likes right now, updated on every event.

The service keeps one :class:`GenrePreferences` per user (in memory or in
Redis as JSON) and updates it the moment an event arrives; the pipeline reads
it to rank titles of the user's current favourite genres higher, and the
insights page shows how it moved over time.

Each event carries a weight (:data:`EVENT_WEIGHTS`; a rating ``r`` in 1..5
maps to ``(r - 3) / 2``), spread evenly over the genres of the title, and
every genre's weight halves after ``half_life_days`` without new events.
Decay is applied lazily: per genre we store ``(value, last_update_ts)`` and
decay on read or on the next update, so an update costs O(#genres of the
title) whatever the history length.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from primetime.data.events import EventType

log = logging.getLogger(__name__)

DAY = 86_400.0

#: Weight of one event by type (:class:`~primetime.data.events.EventType`;
#: a member is its API spelling, so ``EVENT_WEIGHTS["add-to-list"]`` works).
#: Order: complete > like > play > add-to-list > click > view; a dislike is
#: strongly negative. ``rate`` is not listed: its weight comes from the rating
#: (see :func:`event_weight`); ``remove-from-list`` moves no preference.
EVENT_WEIGHTS: dict[EventType, float] = {
    EventType.COMPLETE: 1.0,
    EventType.LIKE: 0.8,
    EventType.PLAY: 0.5,
    EventType.ADD_TO_LIST: 0.4,
    EventType.CLICK: 0.2,
    EventType.VIEW: 0.1,
    EventType.DISLIKE: -1.0,
}

__all__ = [
    "DAY",
    "EVENT_WEIGHTS",
    "Event",
    "GenrePreferences",
    "ItemGenres",
    "event_weight",
    "genres_of",
    "genre_diversity",
    "insights",
    "timeline",
]

#: Genres of each title, looked up by item_idx: a list indexed by item_idx
#: (entry 0 = padding, empty) or a mapping item_idx -> genres.
ItemGenres = Sequence[Sequence[str]] | Mapping[int, Sequence[str]]


def event_weight(event_type: str, rating: float | None = None) -> float:
    """Preference weight of one event.

    Args:
        event_type: An event name in any spelling :meth:`EventType.parse` reads
            (``"like"``, ``"add-to-list"``, ``"add_to_list"``, ``"rate"`` ...).
        rating: For ``rate`` events, the rating on a 1..5 scale; ignored otherwise.

    Returns:
        The weight in [-1, 1]: :data:`EVENT_WEIGHTS` of the type, or
        ``(rating - 3) / 2`` clipped to [-1, 1] for ``rate`` (5 -> +1, 1 -> -1).

    Raises:
        ValueError: for an unknown event type or one without a weight
            (``remove-from-list``), or a ``rate`` event without a rating.
    """
    t = EventType.try_parse(event_type)
    if t is EventType.RATE:
        if rating is None or (isinstance(rating, float) and math.isnan(rating)):
            raise ValueError("event_type 'rate' needs a rating (1..5)")
        return max(-1.0, min(1.0, (float(rating) - 3.0) / 2.0))
    w = None if t is None else EVENT_WEIGHTS.get(t)
    if w is None:
        known = ", ".join([*EVENT_WEIGHTS, EventType.RATE])
        raise ValueError(f"unknown event_type {event_type!r}; known: {known}")
    return w


@dataclass(frozen=True)
class Event:
    """One stored event, as the service's event store returns it.

    Attributes:
        item_idx: Title index (>= 1).
        event_type: Event name: an :class:`EventType` value (a known type in
            another spelling is stored canonical, an unknown one as given).
        ts: Unix seconds.
        rating: Rating (1..5) of a ``rate`` event, else ``None``.
    """

    item_idx: int
    event_type: str
    ts: float
    rating: float | None = None

    def __post_init__(self) -> None:
        kind = EventType.try_parse(self.event_type)
        if kind is not None and self.event_type != kind:
            object.__setattr__(self, "event_type", kind.value)

    @classmethod
    def coerce(cls, e: Any) -> Event:
        """An :class:`Event` from an Event, a mapping or a tuple.

        Mappings may use ``event``/``timestamp`` for ``event_type``/``ts``;
        tuples are ``(item_idx, event_type, ts[, rating])``; other objects are
        read by attribute with the same names.
        """
        if isinstance(e, Event):
            return e
        if isinstance(e, Mapping):
            get = e.get
        elif isinstance(e, tuple | list):
            vals = dict(zip(("item_idx", "event_type", "ts", "rating"), e, strict=False))
            get = vals.get
        else:

            def get(key: str, default: Any = None) -> Any:
                return getattr(e, key, default)

        etype = get("event_type") if get("event_type") is not None else get("event")
        ts = get("ts") if get("ts") is not None else get("timestamp")
        item = get("item_idx")
        if item is None or etype is None or ts is None:
            raise ValueError(f"cannot read an event (item_idx, event_type, ts) from {e!r}")
        rating = get("rating")
        if rating is not None and isinstance(rating, float) and math.isnan(rating):
            rating = None
        return cls(
            item_idx=int(item),
            event_type=str(etype),
            ts=float(ts),
            rating=None if rating is None else float(rating),
        )


def genres_of(item_genres: ItemGenres, item_idx: int) -> Sequence[str]:
    """Genres of one title; unknown titles have none."""
    try:
        return item_genres[item_idx]
    except (KeyError, IndexError):
        return ()


def _replay(prefs: GenrePreferences, events: Sequence[Event], item_genres: ItemGenres) -> None:
    """Apply stored events in order; a malformed one (unknown type, ``rate``
    without rating) is skipped with a warning, so that one bad row in the
    event store cannot break a user's page."""
    skipped: list[str] = []
    for e in events:
        try:
            prefs.update(genres_of(item_genres, e.item_idx), e.event_type, e.ts, e.rating)
        except ValueError as err:
            skipped.append(str(err))
    if skipped:
        log.warning("skipped %d malformed event(s), e.g. %s", len(skipped), skipped[0])


class GenrePreferences:
    """Exponentially time-decayed per-genre weights of one user.

    ``weight(g, t) = sum over events e with genre g of
    w(e) / n_genres(e) * 2 ** (-(t - ts(e)) / half_life)``, kept as
    ``(value, last_update_ts)`` per genre and decayed lazily.

    Args:
        half_life_days: A genre's weight halves after this many days without events.

    Raises:
        ValueError: if ``half_life_days`` is not positive.
    """

    def __init__(self, half_life_days: float = 14.0) -> None:
        if not half_life_days > 0:
            raise ValueError(f"half_life_days must be > 0, got {half_life_days}")
        self.half_life_days = float(half_life_days)
        self._state: dict[str, tuple[float, float]] = {}

    # ------------------------------------------------------------ updates
    def _decay(self, dt_seconds: float) -> float:
        return 2.0 ** (-max(dt_seconds, 0.0) / (self.half_life_days * DAY))

    def update(
        self, genres: Sequence[str], event_type: str, ts: float, rating: float | None = None
    ) -> None:
        """Add one event on a title with ``genres`` at unix time ``ts``.

        The event's weight (:func:`event_weight`) is split evenly over the
        title's distinct genres. Events may arrive out of order: an event older
        than a genre's last update is added already decayed to that time.
        Costs O(len(genres)).

        Raises:
            ValueError: for an unknown event type or a ``rate`` without rating.
        """
        w = event_weight(event_type, rating)
        distinct = list(dict.fromkeys(genres))
        if not distinct or w == 0.0:
            return
        share = w / len(distinct)
        ts = float(ts)
        for g in distinct:
            value, last = self._state.get(g, (0.0, ts))
            if ts >= last:
                self._state[g] = (value * self._decay(ts - last) + share, ts)
            else:  # late event: decay it forward to the stored time instead
                self._state[g] = (value + share * self._decay(last - ts), last)

    # -------------------------------------------------------------- reads
    def weights(self, now: float) -> dict[str, float]:
        """Every genre's weight decayed to ``now`` (unix seconds); may be negative."""
        return {g: v * self._decay(float(now) - t) for g, (v, t) in self._state.items()}

    def top(self, now: float, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` genres with the largest positive weight at ``now``, best first."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        pos = [(g, w) for g, w in self.weights(now).items() if w > 0]
        return sorted(pos, key=lambda gw: (-gw[1], gw[0]))[:n]

    @property
    def last_ts(self) -> float | None:
        """Time of the newest event seen, or ``None`` when empty."""
        return max((t for _, t in self._state.values()), default=None)

    def __len__(self) -> int:
        return len(self._state)

    def __repr__(self) -> str:
        return f"GenrePreferences(half_life_days={self.half_life_days}, genres={len(self)})"

    def snapshot(self) -> GenrePreferences:
        """An independent copy (for a before/after comparison or a reader thread)."""
        out = GenrePreferences(self.half_life_days)
        out._state = dict(self._state)
        return out

    # -------------------------------------------------------- rebuilding
    @classmethod
    def from_events(
        cls,
        events: Iterable[Any],
        item_genres: ItemGenres,
        now: float | None = None,
        *,
        half_life_days: float = 14.0,
    ) -> GenrePreferences:
        """Rebuild from a stored event list (after a restart or a cache miss).

        Events that cannot be weighted (unknown type, ``rate`` without rating)
        are skipped with a warning rather than failing the rebuild.

        Args:
            events: :class:`Event` objects, mappings or tuples (see :meth:`Event.coerce`),
                in any order.
            item_genres: Genres by item_idx (list indexed by item_idx, or mapping).
            now: Events after ``now`` (unix seconds) are ignored; ``None`` keeps all.
            half_life_days: Decay half-life of the rebuilt preferences.
        """
        prefs = cls(half_life_days)
        evs = sorted((Event.coerce(e) for e in events), key=lambda e: e.ts)
        if now is not None:
            evs = [e for e in evs if e.ts <= now]
        _replay(prefs, evs, item_genres)
        return prefs

    def to_json(self) -> str:
        """A JSON string (for Redis): half-life and ``{genre: [value, last_ts]}``."""
        return json.dumps(
            {
                "half_life_days": self.half_life_days,
                "genres": {g: [v, t] for g, (v, t) in sorted(self._state.items())},
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> GenrePreferences:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: if ``text`` is not a preferences document.
        """
        try:
            doc = json.loads(text)
            prefs = cls(float(doc["half_life_days"]))
            prefs._state = {str(g): (float(v), float(t)) for g, (v, t) in doc["genres"].items()}
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
            raise ValueError(f"not a GenrePreferences JSON document: {e}") from None
        return prefs


# ============================================================= insights
def timeline(
    events: Iterable[Any],
    item_genres: ItemGenres,
    *,
    buckets: int = 12,
    half_life_days: float = 14.0,
) -> list[tuple[float, dict[str, float]]]:
    """The user's genre weights over time, for an insights chart.

    Events are replayed in time order and the weights are read at ``buckets``
    evenly spaced times from the first to the last event (inclusive).

    Args:
        events: Events in any order (see :meth:`Event.coerce`).
        item_genres: Genres by item_idx.
        buckets: Number of sample times (>= 1).
        half_life_days: Decay half-life.

    Returns:
        ``[(ts, {genre: weight}), ...]`` oldest first; empty if there are no events.
    """
    if buckets < 1:
        raise ValueError(f"buckets must be >= 1, got {buckets}")
    evs = sorted((Event.coerce(e) for e in events), key=lambda e: e.ts)
    if not evs:
        return []
    t0, t1 = evs[0].ts, evs[-1].ts
    times = (
        [t1]
        if buckets == 1 or t0 == t1
        else [t0 + (t1 - t0) * i / (buckets - 1) for i in range(buckets)]
    )
    prefs = GenrePreferences(half_life_days)
    out: list[tuple[float, dict[str, float]]] = []
    j = 0
    for t in times:
        start = j
        while j < len(evs) and evs[j].ts <= t:
            j += 1
        _replay(prefs, evs[start:j], item_genres)
        out.append((t, prefs.weights(t)))
    return out


def _n_catalog_genres(item_genres: ItemGenres) -> int:
    values = item_genres.values() if isinstance(item_genres, Mapping) else item_genres
    return len({g for gs in values for g in gs})


def genre_diversity(
    titles: Iterable[int], item_genres: ItemGenres, *, n_genres: int | None = None
) -> float:
    """Normalised Shannon entropy of the genre distribution of ``titles``.

    Each distinct title spreads a mass of 1 evenly over its genres; ``p`` is
    the resulting genre distribution and the value is
    ``-sum(p log p) / log(n_genres)`` in [0, 1]: 0 = one genre only,
    1 = every catalog genre equally.

    Args:
        titles: Item indices (repeats count once).
        item_genres: Genres by item_idx.
        n_genres: Number of genres in the catalog; counted from ``item_genres`` if None.
    """
    mass: dict[str, float] = {}
    for i in set(titles):
        gs = list(dict.fromkeys(genres_of(item_genres, i)))
        for g in gs:
            mass[g] = mass.get(g, 0.0) + 1.0 / len(gs)
    k = _n_catalog_genres(item_genres) if n_genres is None else n_genres
    total = sum(mass.values())
    if k <= 1 or total <= 0:
        return 0.0
    h = -sum((m / total) * math.log(m / total) for m in mass.values() if m > 0)
    return float(min(1.0, h / math.log(k)))


def insights(
    events: Iterable[Any],
    item_genres: ItemGenres,
    now: float,
    *,
    half_life_days: float = 14.0,
    buckets: int = 12,
    n_genres: int | None = None,
) -> dict[str, Any]:
    """A JSON-ready summary of a user's activity for the insights page.

    Args:
        events: The user's events in any order (see :meth:`Event.coerce`).
        item_genres: Genres by item_idx.
        now: Unix seconds at which the genre weights are read.
        half_life_days: Decay half-life of the genre weights.
        buckets: Points of the timeline.
        n_genres: Catalog genre count for the diversity normalisation.

    Returns:
        ``{"events": int, "counts": {event_type: int}, "distinct_titles": int,
        "genre_weights": {genre: weight} (largest first), "top_genres": [genre],
        "timeline": [{"ts": float, "weights": {genre: weight}}],
        "diversity": float, "diversity_measure": str}``. Diversity is the
        normalised Shannon entropy of the genres of the titles the user did
        not dislike (see :func:`genre_diversity`).
    """
    evs = [Event.coerce(e) for e in events]
    prefs = GenrePreferences.from_events(evs, item_genres, now, half_life_days=half_life_days)
    weights = dict(sorted(prefs.weights(now).items(), key=lambda gw: (-gw[1], gw[0])))
    disliked = {e.item_idx for e in evs if e.event_type == EventType.DISLIKE}
    liked_titles = {e.item_idx for e in evs} - disliked
    return {
        "events": len(evs),
        "counts": dict(Counter(e.event_type for e in evs)),
        "distinct_titles": len({e.item_idx for e in evs}),
        "genre_weights": weights,
        "top_genres": [g for g, _ in prefs.top(now, 3)],
        "timeline": [
            {"ts": t, "weights": w}
            for t, w in timeline(evs, item_genres, buckets=buckets, half_life_days=half_life_days)
        ],
        "diversity": genre_diversity(liked_titles, item_genres, n_genres=n_genres),
        "diversity_measure": "normalised Shannon entropy of genres (0 = one genre, 1 = all)",
    }
