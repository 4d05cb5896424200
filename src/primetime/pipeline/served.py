"""The served path: a user's events -> their state -> the list ``GET /recommendations`` returns.

Two pieces that the service and the evaluation both call, so that a figure measured on
the pipeline is a figure about what users get (DESIGN.md: served = evaluated):

* :class:`UserFold` folds a user's events (oldest first) into the model's history, the
  live genre preferences, the dislikes and the seen titles. The service keeps one per
  user and adds each new event (:mod:`primetime.service.userview`); the evaluation folds
  a test user's logged events the same way (:class:`ServedModel`).
* :func:`served_recommendations` turns such states into lists with
  :meth:`RecPipeline.recommend_batch`, with the arguments the route passes.

:class:`ServedModel` wraps both as a scorer the evaluator accepts: each history is
replayed as events up to the moment of the held-out interaction (a rating as a ``rate``
event, an unrated interaction as ``complete``), the served list of ``k`` titles is
asked for, and the list is written as descending scores, every other title ``-inf``:
so the evaluator's top-K list *is* the served list, and a target outside it is a miss.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from primetime.data.events import EventType
from primetime.data.vocab import Vocabulary
from primetime.pipeline.explain import ScoredItem
from primetime.pipeline.pipeline import RecPipeline
from primetime.pipeline.realtime import EVENT_WEIGHTS, GenrePreferences, ItemGenres, genres_of
from primetime.types import UserContext

__all__ = [
    "HISTORY_EVENTS",
    "LOW_RATING",
    "PREFERENCE_EVENTS",
    "ServedModel",
    "ServedUser",
    "UserFold",
    "served_recommendations",
]

#: Event types that put a title into the history a model reads.
HISTORY_EVENTS: frozenset[str] = frozenset(
    {
        EventType.CLICK,
        EventType.PLAY,
        EventType.COMPLETE,
        EventType.LIKE,
        EventType.ADD_TO_LIST,
        EventType.RATE,
    }
)
#: Ratings below this count as a dislike as well as history (the title was watched, and
#: the models' training logs hold such events in their sequences).
LOW_RATING = 3.0
#: Event types that move the live genre preferences.
PREFERENCE_EVENTS: frozenset[str] = frozenset({*EVENT_WEIGHTS, EventType.RATE})


class UserFold:
    """The running fold of one user's events, in (time, id) order.

    Attributes:
        hist: item_idx of history events (oldest first), the model's input.
        hist_ts: Their unix seconds.
        dislikes: Disliked (or rated below :data:`LOW_RATING`) titles.
        seen: Every title with an event.
        pref_events: ``(item_idx, event_type, ts, rating)`` of preference events.
        prefs: Live genre preferences (events up to the fold's ``now`` only).
        skipped: Messages of malformed events that were left out of ``prefs``.
    """

    __slots__ = ("dislikes", "hist", "hist_ts", "pref_events", "prefs", "seen", "skipped")

    def __init__(self) -> None:
        self.hist: list[int] = []
        self.hist_ts: list[int] = []
        self.dislikes: set[int] = set()
        self.seen: set[int] = set()
        self.pref_events: list[tuple[int, str, float, float | None]] = []
        self.prefs = GenrePreferences()
        self.skipped: list[str] = []

    def copy(self) -> UserFold:
        out = UserFold()
        out.hist, out.hist_ts = list(self.hist), list(self.hist_ts)
        out.dislikes, out.seen = set(self.dislikes), set(self.seen)
        out.pref_events, out.prefs = list(self.pref_events), self.prefs.snapshot()
        return out

    def add(
        self,
        idx: int | None,
        event_type: str,
        ts: float,
        rating: float | None,
        genres: ItemGenres,
        now: float,
    ) -> None:
        """Fold one event (``idx``: its title's item_idx, None when not in the catalog).

        Preferences take events up to ``now`` (a later one is dated in the future).
        """
        if idx is None:
            return
        self.seen.add(idx)
        if event_type in PREFERENCE_EVENTS:
            self.pref_events.append((idx, event_type, ts, rating))
            if ts <= now:
                try:
                    self.prefs.update(genres_of(genres, idx), event_type, ts, rating)
                except ValueError as err:  # one bad row must not break the user's page
                    self.skipped.append(str(err))
        low = event_type == EventType.RATE and (rating or 0.0) < LOW_RATING
        if event_type == EventType.DISLIKE:
            self.dislikes.add(idx)
            return
        if event_type in HISTORY_EVENTS:
            # a low rating is a dislike *and* a title watched: the models were trained
            # on logs whose sequences hold every rated title, low ones included
            if low:
                self.dislikes.add(idx)
            else:
                self.dislikes.discard(idx)
            self.hist.append(idx)
            self.hist_ts.append(int(ts))

    def context(self, now: float) -> UserContext:
        """The model's input at ``now`` (no user index: a user is their history)."""
        return UserContext(
            user_idx=None,
            history=np.asarray(self.hist, dtype=np.int64),
            timestamps=np.asarray(self.hist_ts, dtype=np.int64),
            now=int(now),
        )


@dataclass(frozen=True)
class ServedUser:
    """One user's request state, as the route hands it to the pipeline.

    Attributes:
        context: History (item_idx, oldest first) with ``now`` = the request time.
        prefs: Live genre preferences.
        dislikes: Disliked item_idx.
        exclude: item_idx to leave out besides the seen ones (onboarding picks).
        onboarding_genres: Genres picked at sign-up.
        demographics: ``{"age": ..., "gender": ...}`` or None.
    """

    context: UserContext
    prefs: GenrePreferences | None = None
    dislikes: Collection[int] = ()
    exclude: tuple[int, ...] = ()
    onboarding_genres: tuple[str, ...] = ()
    demographics: Mapping[str, Any] | None = field(default=None)


def served_recommendations(
    pipeline: RecPipeline,
    users: Sequence[ServedUser],
    k: int = 10,
    *,
    kind: str | None = None,
    genre: str | None = None,
    exclude_seen: bool = True,
) -> list[list[ScoredItem]]:
    """The lists ``GET /recommendations`` returns for these users (one model call per
    group of users sharing ``exclude``). The request time is each context's ``now``.

    Returns:
        One list of up to ``k`` :class:`ScoredItem` per user, best first.
    """
    out: list[list[ScoredItem]] = [[] for _ in users]
    groups: dict[tuple[int, ...], list[int]] = {}
    for b, u in enumerate(users):
        groups.setdefault(u.exclude if exclude_seen else (), []).append(b)
    for exclude, rows in groups.items():
        lists = pipeline.recommend_batch(
            [users[b].context for b in rows],
            k,
            prefs=[users[b].prefs for b in rows],
            now=None,
            kind=kind,
            genre=genre,
            exclude_seen=exclude_seen,
            exclude=exclude,
            dislikes=[users[b].dislikes for b in rows],
            onboarding_genres=[users[b].onboarding_genres for b in rows],
            demographics=[users[b].demographics for b in rows],
        )
        for b, items in zip(rows, lists, strict=True):
            out[b] = items
    return out


class ServedModel:
    """The served path as a scorer for the evaluator (see the module docstring).

    Args:
        pipeline: The pipeline, built like the service builds it
            (:meth:`RecPipeline.build` on the log, ``with_model``).
        k: Length of the served list (the API's default is 10).
        name: Label in tables (default ``served[<model>]``).
        demographics: Optional ``user_idx -> {"age", "gender"}`` for users that gave them.
        replayed: A dict to keep each context's replayed user in (:meth:`user`), shared
            by served models of one pipeline index and the same ``demographics`` that
            are asked the same users (a grid over the blend: the replay does not
            depend on the weights).
    """

    def __init__(
        self,
        pipeline: RecPipeline,
        *,
        k: int = 10,
        name: str | None = None,
        demographics: Mapping[int, Mapping[str, Any]] | None = None,
        replayed: dict[tuple[Any, ...], ServedUser] | None = None,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.pipeline, self.k = pipeline, k
        model = pipeline.model
        self.name = name or f"served[{model.name if model is not None else 'content'}]"
        self.demographics = demographics or {}
        self._genres = pipeline.index.item_genres
        self._replayed = replayed

    @property
    def items(self) -> Vocabulary:
        return self.pipeline.items

    def user(self, ctx: UserContext) -> ServedUser:
        """Replay ``ctx``'s history as events up to ``ctx.now`` (the request time)."""
        h = ctx.history
        ts = ctx.timestamps if ctx.timestamps is not None else np.zeros(h.size, np.int64)
        rt = ctx.ratings if ctx.ratings is not None else np.full(h.size, np.nan)
        now = float(ctx.now) if ctx.now is not None else float(ts.max(initial=0))
        if self._replayed is None:
            return self._replay(ctx, h, ts, rt, now)
        key = (
            ctx.user_idx,
            now,
            np.asarray(h, np.int64).tobytes(),
            np.asarray(ts, np.int64).tobytes(),
            np.asarray(rt, np.float64).tobytes(),
        )
        if key not in self._replayed:
            self._replayed[key] = self._replay(ctx, h, ts, rt, now)
        return self._replayed[key]

    def _replay(
        self, ctx: UserContext, h: np.ndarray, ts: np.ndarray, rt: np.ndarray, now: float
    ) -> ServedUser:
        fold = UserFold()
        for i, t, r in zip(h.tolist(), ts.tolist(), rt.tolist(), strict=True):
            if r is None or math.isnan(r):
                fold.add(i, EventType.COMPLETE, float(t), None, self._genres, now)
            else:
                fold.add(i, EventType.RATE, float(t), float(r), self._genres, now)
        demo = self.demographics.get(ctx.user_idx) if ctx.user_idx is not None else None
        return ServedUser(
            context=fold.context(now),
            prefs=fold.prefs,
            dislikes=frozenset(fold.dislikes),
            demographics=demo,
        )

    def lists(self, contexts: Sequence[UserContext]) -> list[list[ScoredItem]]:
        """The served lists of these users, asked for one user at a time as the route
        asks (a batch would take the blend's and the re-rank's batched arithmetic, equal
        up to float rounding, which can swap near-ties)."""
        return [served_recommendations(self.pipeline, [self.user(c)], self.k)[0] for c in contexts]

    def score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        """(B, V) float32: the served list as ``k, k - 1, …, 1``; everything else ``-inf``."""
        out = np.full((len(contexts), self.items.size), -np.inf, dtype=np.float32)
        for b, items in enumerate(self.lists(contexts)):
            for j, s in enumerate(items):
                out[b, s.item_idx] = np.float32(self.k - j)
        return out
