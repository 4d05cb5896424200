"""EvalSet: what a model is asked, built from a split (EVALUATION.md).

:class:`EvalSet` turns a split into what a model is asked: for every user
with at least one held-out (target) interaction, a :class:`UserContext`
holding the history it may use, the relevant item indices, and the items to
exclude from the ranking (the whole history). An eval set may also carry a
*candidate set* (EVALUATION.md Task C, new titles): then every other item is
left out of the ranking, as if the catalog held the candidates only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from primetime.data.interactions import Interactions
from primetime.data.splits import Split
from primetime.data.vocab import Vocabulary
from primetime.ranking import exclude_items
from primetime.types import UserContext

log = logging.getLogger(__name__)

__all__ = ["EvalSet"]


def _gather_csr(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Select CSR rows: returns new (len(rows) + 1,) indptr and flat positions."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    new = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=new[1:])
    pos = np.repeat(starts - new[:-1], lengths) + np.arange(new[-1], dtype=np.int64)
    return new, pos


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """Distinct values ascending (sort-based; np.unique's hash path is slower on big ints)."""
    srt = np.sort(x)
    keep = np.ones(srt.size, dtype=bool)
    keep[1:] = srt[1:] != srt[:-1]
    return srt[keep]


def _member(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(Q,) bool: which queries occur in ``sorted_keys`` (ascending); faster than np.isin."""
    if sorted_keys.size == 0:
        return np.zeros(queries.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, queries), sorted_keys.size - 1)
    return sorted_keys[pos] == queries


@dataclass(frozen=True, eq=False)
class EvalSet:
    """The users to evaluate, each with a history, targets and exclusions.

    All per-user arrays are aligned with ``user_idx`` (ascending). Histories
    and relevant items are stored CSR style: user ``i``'s history is
    ``hist_items[hist_indptr[i]:hist_indptr[i + 1]]`` (oldest first, equal
    timestamps in file order) and its relevant items are
    ``rel_items[rel_indptr[i]:rel_indptr[i + 1]]`` (distinct, ascending idx).
    The items excluded from a user's ranking are exactly its history items.

    Attributes:
        name: "valid", "test", or a caller's name.
        history: The interactions histories are taken from (also the default
            popularity source for Novelty).
        user_idx: (U,) int64 users with at least one target, ascending.
        hist_indptr: (U + 1,) int64.
        hist_items: (H,) int64 item_idx, time order per user.
        hist_timestamps: (H,) int64 unix seconds.
        hist_ratings: (H,) float32, NaN where no rating.
        rel_indptr: (U + 1,) int64.
        rel_items: (T,) int64 relevant item_idx.
        now: (U,) int64 timestamp of each user's first target: the moment
            the recommendation is asked for.
        candidates: (C,) int64 sorted item_idx the targets are ranked among
            (every other item is ``-inf``), or None: the whole catalog.
    """

    name: str
    history: Interactions
    user_idx: np.ndarray
    hist_indptr: np.ndarray
    hist_items: np.ndarray
    hist_timestamps: np.ndarray
    hist_ratings: np.ndarray
    rel_indptr: np.ndarray
    rel_items: np.ndarray
    now: np.ndarray
    candidates: np.ndarray | None = None

    # ------------------------------------------------------------ building
    @classmethod
    def for_valid(cls, split: Split) -> EvalSet:
        """Model selection: history = train, targets = valid rows (ranked among the
        split's valid candidates, when it has them)."""
        return cls.from_parts(
            split.train, split.valid, name="valid", candidates=split.candidates_of("valid")
        )

    @classmethod
    def for_test(cls, split: Split) -> EvalSet:
        """Reporting: history = train + valid, targets = test rows.

        The valid item is part of the history, hence excluded from the ranking.
        Targets are ranked among the split's test candidates, when it has them.
        """
        return cls.from_parts(
            split.train_valid(), split.test, name="test", candidates=split.candidates_of("test")
        )

    @classmethod
    def from_parts(
        cls,
        history: Interactions,
        targets: Interactions,
        name: str,
        *,
        candidates: np.ndarray | None = None,
    ) -> EvalSet:
        """Build from any history and targets sharing vocabularies.

        Every user with at least one target row is evaluated, including users
        without history (cold users: empty context, nothing excluded).
        Repeated targets of one item count once. A target that is also in the
        user's history is excluded from the ranking, so it is a miss; that is
        logged.

        With ``candidates`` (item indices), targets are ranked among those items
        only; a target outside them cannot be ranked (a miss), which is logged.
        """
        if history.users != targets.users:
            raise ValueError("history and targets have different user vocabularies")
        if history.items != targets.items:
            raise ValueError("history and targets have different item vocabularies")
        n_cols = history.items.size

        t_indptr, t_order = targets.user_histories()
        users = np.flatnonzero(np.diff(t_indptr) > 0).astype(np.int64)  # (U,)
        now = targets.timestamp[t_order[t_indptr[users]]]  # first target in time order
        r_indptr, r_pos = _gather_csr(t_indptr, users)
        seg = np.repeat(np.arange(users.size), np.diff(r_indptr))  # (rows,) position of user
        keys = _sorted_unique(seg * n_cols + targets.item_idx[t_order[r_pos]].astype(np.int64))
        rel_items = keys % n_cols
        rel_indptr = np.zeros(users.size + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys // n_cols, minlength=users.size), out=rel_indptr[1:])

        h_indptr, h_order = history.user_histories()
        hist_indptr, h_pos = _gather_csr(h_indptr, users)
        rows = h_order[h_pos]
        hist_items = history.item_idx[rows].astype(np.int64)

        hseg = np.repeat(np.arange(users.size), np.diff(hist_indptr))
        in_hist = _member(np.sort(hseg * n_cols + hist_items), keys)
        if in_hist.any():
            log.warning(
                "%s: %d relevant (user, item) pair(s) are also in the user's history; they are "
                "excluded from the ranking and count as misses",
                name,
                int(in_hist.sum()),
            )
        cand = None
        if candidates is not None:
            cand = _sorted_unique(np.asarray(candidates, dtype=np.int64))
            if cand.size == 0 or cand[0] < 1 or cand[-1] >= n_cols:
                raise ValueError(
                    f"{name}: candidates must be non-empty item indices in 1..{n_cols - 1}"
                )
            outside = ~_member(cand, rel_items)
            if outside.any():
                log.warning(
                    "%s: %d relevant item(s) are not candidates; they cannot be ranked and "
                    "count as misses",
                    name,
                    int(outside.sum()),
                )
        es = cls(
            name=name,
            history=history,
            user_idx=users,
            hist_indptr=hist_indptr,
            hist_items=hist_items,
            hist_timestamps=history.timestamp[rows],
            hist_ratings=history.rating[rows],
            rel_indptr=rel_indptr,
            rel_items=rel_items,
            now=now.astype(np.int64),
            candidates=cand,
        )
        log.info(
            "eval set %s: %d users (%d without history), %d relevant items, %s",
            name,
            len(es),
            int((es.n_history == 0).sum()),
            rel_items.size,
            "whole catalog" if cand is None else f"{cand.size} candidates",
        )
        return es

    # ------------------------------------------------------------- access
    def __len__(self) -> int:
        return int(self.user_idx.size)

    @property
    def users(self) -> Vocabulary:
        return self.history.users

    @property
    def items(self) -> Vocabulary:
        return self.history.items

    @property
    def n_history(self) -> np.ndarray:
        """(U,) history length of each user (events, repeats included)."""
        return np.diff(self.hist_indptr)

    @property
    def n_relevant(self) -> np.ndarray:
        """(U,) number of distinct relevant items of each user."""
        return np.diff(self.rel_indptr)

    def context(self, i: int) -> UserContext:
        """The context of the ``i``-th user (position, not user_idx)."""
        a, b = self.hist_indptr[i], self.hist_indptr[i + 1]
        return UserContext(
            user_idx=int(self.user_idx[i]),
            history=self.hist_items[a:b],
            timestamps=self.hist_timestamps[a:b],
            ratings=self.hist_ratings[a:b],
            now=int(self.now[i]),
        )

    def contexts(self, start: int = 0, stop: int | None = None) -> list[UserContext]:
        """Contexts of users at positions ``start:stop``."""
        stop = len(self) if stop is None else min(stop, len(self))
        return [self.context(i) for i in range(start, stop)]

    def relevant(self, i: int) -> np.ndarray:
        """Relevant item_idx of the ``i``-th user, (R_i,)."""
        return self.rel_items[self.rel_indptr[i] : self.rel_indptr[i + 1]]

    def excluded(self, i: int) -> np.ndarray:
        """Item_idx excluded from the ``i``-th user's ranking (its history), distinct."""
        return np.unique(self.hist_items[self.hist_indptr[i] : self.hist_indptr[i + 1]])

    def relevant_padded(self, start: int, stop: int) -> np.ndarray:
        """(b, R_max in the slice) relevant item_idx of positions ``start:stop``, 0-padded."""
        counts = np.diff(self.rel_indptr[start : stop + 1])
        width = int(counts.max()) if counts.size else 0
        out = np.zeros((counts.size, width), dtype=np.int64)
        col = np.arange(counts.sum()) - np.repeat(
            self.rel_indptr[start:stop] - self.rel_indptr[start], counts
        )
        row = np.repeat(np.arange(counts.size), counts)
        out[row, col] = self.rel_items[self.rel_indptr[start] : self.rel_indptr[stop]]
        return out

    def batches(self, batch_size: int) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` positions of consecutive batches."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for s in range(0, len(self), batch_size):
            yield s, min(s + batch_size, len(self))

    @property
    def n_candidates(self) -> int:
        """Items a target may be ranked among: the candidates, or the catalog (no padding)."""
        return len(self.items) if self.candidates is None else int(self.candidates.size)

    def exclude(self, scores: np.ndarray, start: int, stop: int) -> None:
        """Set the history items of positions ``start:stop`` and, with a candidate set,
        every non-candidate item to ``-inf`` in ``scores`` (B, V)."""
        ip = self.hist_indptr[start : stop + 1]
        exclude_items(scores, ip - ip[0], self.hist_items[ip[0] : ip[-1]])
        if self.candidates is not None:
            keep = scores[:, self.candidates]  # (B, C) copy
            scores[:] = -np.inf
            scores[:, self.candidates] = keep
