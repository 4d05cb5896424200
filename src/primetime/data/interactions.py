"""The interaction log: who did what to which title, when."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from primetime.data.events import EVENT_CODE as EVENT_CODE  # re-exported: name -> int8 code
from primetime.data.events import EVENT_NAMES, EventType
from primetime.data.vocab import Vocabulary
from primetime.types import UserContext

#: Event names, in code order (see :class:`~primetime.data.events.EventType`).
#: ``rate`` is the default for rating logs.
EVENT_TYPES: tuple[str, ...] = EVENT_NAMES


@dataclass(frozen=True, eq=False)
class Interactions:
    """Columnar interaction log in index space.

    Rows keep the order of the source file: that order is the tie-break for
    equal timestamps (EVALUATION.md, Task A step 2).

    Attributes:
        user_idx: (N,) int32, indices into ``users``.
        item_idx: (N,) int32, indices into ``items``.
        rating: (N,) float32, NaN where the event has no explicit rating.
        timestamp: (N,) int64, unix seconds.
        event: (N,) int8, codes into :data:`EVENT_TYPES`.
        users: user vocabulary (index 0 is padding).
        items: item vocabulary (index 0 is padding).
    """

    user_idx: np.ndarray
    item_idx: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    event: np.ndarray
    users: Vocabulary
    items: Vocabulary

    def __post_init__(self) -> None:
        n = len(self.user_idx)
        for name in ("item_idx", "rating", "timestamp", "event"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"Interactions.{name} has {len(getattr(self, name))} rows, expected {n}"
                )
        object.__setattr__(self, "user_idx", np.ascontiguousarray(self.user_idx, dtype=np.int32))
        object.__setattr__(self, "item_idx", np.ascontiguousarray(self.item_idx, dtype=np.int32))
        object.__setattr__(self, "rating", np.ascontiguousarray(self.rating, dtype=np.float32))
        object.__setattr__(self, "timestamp", np.ascontiguousarray(self.timestamp, dtype=np.int64))
        object.__setattr__(self, "event", np.ascontiguousarray(self.event, dtype=np.int8))
        if n:
            if self.user_idx.min() < 1 or self.user_idx.max() > len(self.users):
                raise ValueError("user_idx out of the user vocabulary's range")
            if self.item_idx.min() < 1 or self.item_idx.max() > len(self.items):
                raise ValueError("item_idx out of the item vocabulary's range")

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.user_idx)

    @property
    def n_users(self) -> int:
        """Number of users in the vocabulary (padding excluded)."""
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of items in the vocabulary (padding excluded)."""
        return len(self.items)

    @property
    def has_ratings(self) -> bool:
        return bool(len(self)) and not bool(np.isnan(self.rating).all())

    def take(self, rows: np.ndarray) -> Interactions:
        """A subset (boolean mask or row indices), same vocabularies, order kept."""
        return Interactions(
            user_idx=self.user_idx[rows],
            item_idx=self.item_idx[rows],
            rating=self.rating[rows],
            timestamp=self.timestamp[rows],
            event=self.event[rows],
            users=self.users,
            items=self.items,
        )

    @staticmethod
    def concat(parts: list[Interactions]) -> Interactions:
        """Rows of ``parts`` one after another; all must share vocabularies."""
        if not parts:
            raise ValueError("concat needs at least one Interactions")
        first = parts[0]
        for p in parts[1:]:
            if p.users is not first.users and p.users != first.users:
                raise ValueError("cannot concat Interactions with different user vocabularies")
            if p.items is not first.items and p.items != first.items:
                raise ValueError("cannot concat Interactions with different item vocabularies")
        return Interactions(
            user_idx=np.concatenate([p.user_idx for p in parts]),
            item_idx=np.concatenate([p.item_idx for p in parts]),
            rating=np.concatenate([p.rating for p in parts]),
            timestamp=np.concatenate([p.timestamp for p in parts]),
            event=np.concatenate([p.event for p in parts]),
            users=first.users,
            items=first.items,
        )

    # ------------------------------------------------------------ conversions
    def time_order(self) -> np.ndarray:
        """Row permutation sorting by (user, timestamp); equal keys keep file order."""
        return np.lexsort((self.timestamp, self.user_idx))  # lexsort is stable

    def user_histories(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR-style histories in time order.

        Returns:
            ``(indptr, rows)``: rows ``rows[indptr[u]:indptr[u+1]]`` are user ``u``'s
            events, oldest first; ``indptr`` has shape (n_users + 2,) so that it is
            indexed by user_idx directly (row 0, padding, is empty).
        """
        order = self.time_order()
        counts = np.bincount(self.user_idx, minlength=self.users.size)
        indptr = np.zeros(self.users.size + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return indptr, order

    def contexts(self, user_idx: np.ndarray | None = None) -> list[UserContext]:
        """One :class:`UserContext` per user (all users with events when None)."""
        indptr, order = self.user_histories()
        if user_idx is None:
            user_idx = np.flatnonzero(np.diff(indptr) > 0)
        out = []
        for u in np.asarray(user_idx, dtype=np.int64):
            rows = order[indptr[u] : indptr[u + 1]]
            out.append(
                UserContext(
                    user_idx=int(u),
                    history=self.item_idx[rows],
                    timestamps=self.timestamp[rows],
                    ratings=self.rating[rows],
                )
            )
        return out

    def matrix(self, *, values: str = "ones", dtype: type = np.float32) -> sp.csr_matrix:
        """User x item matrix, shape (users.size, items.size), indexed by idx.

        Args:
            values: ``"ones"`` (repeated events count once) or ``"rating"``
                (the last rating in time order wins).
        """
        shape = (self.users.size, self.items.size)
        if values == "ones":
            m = sp.csr_matrix(
                (np.ones(len(self), dtype=dtype), (self.user_idx, self.item_idx)), shape=shape
            )
            m.data[:] = 1  # duplicates were summed
            return m
        if values == "rating":
            order = self.time_order()
            key = self.user_idx[order].astype(np.int64) * shape[1] + self.item_idx[order]
            # keep the last event of each (user, item) pair in time order
            _, first_from_end = np.unique(key[::-1], return_index=True)
            last = order[len(key) - 1 - first_from_end]
            return sp.csr_matrix(
                (self.rating[last], (self.user_idx[last], self.item_idx[last])),
                shape=shape,
                dtype=dtype,
            )
        raise ValueError(f"values must be 'ones' or 'rating', got {values!r}")

    def to_polars(self, *, ids: bool = False) -> pl.DataFrame:
        """A DataFrame; with ``ids=True`` the original user_id/item_id strings too."""
        df = pl.DataFrame(
            {
                "user_idx": self.user_idx,
                "item_idx": self.item_idx,
                "rating": self.rating,
                "timestamp": self.timestamp,
                "event": self.event,
            }
        )
        if ids:
            uids = np.array([""] + self.users.ids(), dtype=object)
            iids = np.array([""] + self.items.ids(), dtype=object)
            df = df.with_columns(
                pl.Series("user_id", uids[self.user_idx], dtype=pl.Utf8),
                pl.Series("item_id", iids[self.item_idx], dtype=pl.Utf8),
            )
        return df

    @classmethod
    def from_polars(cls, df: pl.DataFrame, *, users: Vocabulary, items: Vocabulary) -> Interactions:
        """Inverse of :meth:`to_polars` (index columns)."""
        n = df.height
        rating = df["rating"].to_numpy() if "rating" in df.columns else np.full(n, np.nan)
        has_event = "event" in df.columns
        event = df["event"].to_numpy() if has_event else np.full(n, EventType.RATE.code)
        return cls(
            user_idx=df["user_idx"].to_numpy(),
            item_idx=df["item_idx"].to_numpy(),
            rating=rating.astype(np.float32),
            timestamp=df["timestamp"].to_numpy(),
            event=event,
            users=users,
            items=items,
        )
