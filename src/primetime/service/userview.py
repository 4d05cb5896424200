"""A user's state for one request, folded from their events and kept up to date incrementally.

Every personal request needs the user's context (history for the model), live genre
preferences, dislikes and seen titles, all functions of the user's latest ``HISTORY_LIMIT``
events. Folding them from scratch costs a query returning every event plus a Python pass
over each; for a user with a long history that is most of a cold request.

:class:`UserViews` keeps, per worker process, the fold of each recent user and on the next
request reads only the events stored since (one indexed query that also counts the user's
events, in one snapshot). The event store stays the only truth: when the count does not add
up (an event committed late with a smaller id, a deleted account), when a new event is older
than the newest folded one (so it belongs in the middle of the history), when the history
reaches ``HISTORY_LIMIT`` or holds events dated after the request, the fold is rebuilt from
the store. Folding is one function, :meth:`_Fold.add`, for both paths, so an updated fold
equals a rebuilt one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from primetime.pipeline.realtime import GenrePreferences, ItemGenres
from primetime.pipeline.served import HISTORY_EVENTS, LOW_RATING, PREFERENCE_EVENTS, UserFold
from primetime.service.store import Action, EventStore, UserRecord
from primetime.types import UserContext

log = logging.getLogger(__name__)

#: Events read per request to rebuild a user's context (most recent kept).
HISTORY_LIMIT = 1000
# what an event does to the history, dislikes and preferences is the pipeline's fold
# (primetime.pipeline.served.UserFold), which the evaluation replays too
__all__ = [
    "HISTORY_EVENTS",
    "HISTORY_LIMIT",
    "LOW_RATING",
    "PREFERENCE_EVENTS",
    "UserView",
    "UserViews",
]


@dataclass(frozen=True)
class UserView:
    """A user's state for one request."""

    user: UserRecord
    events: list[Action]  # the latest HISTORY_LIMIT, oldest first
    context: UserContext
    prefs: GenrePreferences
    dislikes: frozenset[int]
    seen: frozenset[int]
    pref_events: list[tuple[int, str, float, float | None]]  # (item_idx, type, ts, rating)


class _Fold:
    """The running fold of a user's events in (ts, id) order: the pipeline's
    :class:`~primetime.pipeline.served.UserFold` plus the store's bookkeeping."""

    __slots__ = ("count", "events", "fold", "last_id", "max_ts", "_frozen")

    def __init__(self) -> None:
        self.events: list[Action] = []
        self.fold = UserFold()
        self.count = 0  # events folded (all of the user's when the fold is kept)
        self.last_id = 0  # largest event id folded
        self.max_ts = float("-inf")  # newest event time folded
        self._frozen: tuple[np.ndarray, np.ndarray, frozenset[int], frozenset[int]] | None = None

    def copy(self) -> _Fold:
        out = _Fold()
        out.events, out.fold = list(self.events), self.fold.copy()
        out.count, out.last_id, out.max_ts = self.count, self.last_id, self.max_ts
        return out

    def add(self, e: Action, idx: int | None, genres: ItemGenres, now: float) -> None:
        """Fold one event (``idx``: its title's item_idx, None when not in the catalog).

        Preferences take events up to ``now`` (a later one is dated in the future).
        """
        self._frozen = None
        self.events.append(e)
        self.count += 1
        self.last_id = max(self.last_id, e.id)
        self.max_ts = max(self.max_ts, e.ts)
        self.fold.add(idx, e.event_type, e.ts, e.rating, genres, now)

    def view(self, user: UserRecord, now: float) -> UserView:
        f = self.fold
        if f.skipped:
            log.warning(
                "skipped %d malformed event(s) of user %d, e.g. %s",
                len(f.skipped),
                user.id,
                f.skipped[0],
            )
            f.skipped = []
        if self._frozen is None:  # a kept fold never changes: its arrays are built once
            hist = np.asarray(f.hist, dtype=np.int64)
            hist_ts = np.asarray(f.hist_ts, dtype=np.int64)
            hist.flags.writeable = hist_ts.flags.writeable = False  # shared between requests
            self._frozen = (hist, hist_ts, frozenset(f.dislikes), frozenset(f.seen))
        hist, hist_ts, dislikes, seen = self._frozen
        ctx = UserContext(user_idx=None, history=hist, timestamps=hist_ts, now=int(now))
        return UserView(user, self.events, ctx, f.prefs.snapshot(), dislikes, seen, f.pref_events)


@dataclass
class ViewStats:
    """How requests got their user view: ``updated`` (the kept fold plus the new events) or
    ``rebuilt`` (every event read again)."""

    updated: int = 0
    rebuilt: int = 0


class UserViews:
    """Per-process folds of recent users' events, caught up with the store on every read.

    Args:
        store: The event store (the truth).
        item_index: item_idx of an external title id, or None.
        item_genres: Genres by item_idx.
        limit: Events a view holds (the newest).
        max_events: Events kept in all folds together (a few hundred bytes each); least
            recently used users go first.
    """

    def __init__(
        self,
        store: EventStore,
        item_index: Callable[[str], int | None],
        item_genres: ItemGenres,
        *,
        limit: int = HISTORY_LIMIT,
        max_events: int = 500_000,
    ) -> None:
        if limit < 1 or max_events < 0:
            raise ValueError("limit must be >= 1 and max_events >= 0")
        self.store, self.item_index, self.item_genres = store, item_index, item_genres
        self.limit, self.max_events = limit, max_events
        self._folds: OrderedDict[int, _Fold] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()
        self.stats = ViewStats()

    def get(self, user: UserRecord, *, now: float | None = None) -> UserView:
        """The user's view at ``now`` (default: the current time)."""
        now = time.time() if now is None else float(now)
        with self._lock:
            kept = self._folds.get(user.id)
        if kept is not None and kept.max_ts <= now:
            fold = self._catch_up(kept, user.id, now)
            if fold is not None:
                self.stats.updated += 1
                if fold is not kept:
                    self._keep(user.id, fold)
                return fold.view(user, now)
        self.stats.rebuilt += 1
        fold = _Fold()
        for e in self.store.recent_actions(user.id, limit=self.limit):
            fold.add(e, self.item_index(e.item_id), self.item_genres, now)
        if fold.count < self.limit and fold.max_ts <= now:  # every event, none in the future
            self._keep(user.id, fold)
        else:
            self.forget(user.id)
        return fold.view(user, now)

    def _catch_up(self, kept: _Fold, user_id: int, now: float) -> _Fold | None:
        """``kept`` with the events stored since, or None when it must be rebuilt."""
        new = self.store.actions_after(user_id, kept.last_id)
        if new.total != kept.count + len(new.actions) or new.total >= self.limit:
            return None
        if not new.actions:
            return kept
        last = kept.max_ts
        for e in new.actions:  # id order must also be time order to append them
            if e.ts < last or e.ts > now:
                return None
            last = e.ts
        fold = kept.copy()
        for e in new.actions:
            fold.add(e, self.item_index(e.item_id), self.item_genres, now)
        return fold

    def _keep(self, user_id: int, fold: _Fold) -> None:
        with self._lock:
            old = self._folds.pop(user_id, None)
            self._held -= old.count if old is not None else 0
            self._folds[user_id] = fold
            self._held += fold.count
            while self._held > self.max_events and self._folds:
                _, evicted = self._folds.popitem(last=False)
                self._held -= evicted.count

    def forget(self, user_id: int) -> None:
        """Drop a user's fold (the next read rebuilds it)."""
        with self._lock:
            old = self._folds.pop(user_id, None)
            self._held -= old.count if old is not None else 0

    def __len__(self) -> int:
        return len(self._folds)
