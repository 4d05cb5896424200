"""External id <-> contiguous index, with index 0 reserved for padding."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl

PAD = 0


class Vocabulary:
    """Maps external ids (strings) to indices 1..n; index 0 is padding.

    Args:
        ids: Distinct external ids, in the order that defines their indices.
        name: What the ids are ("item", "user"), used in error messages.

    Raises:
        ValueError: if ``ids`` holds duplicates.
    """

    def __init__(self, ids: Iterable[str], *, name: str = "id") -> None:
        self.name = name
        self._ids: list[str] = [str(i) for i in ids]
        self._index: dict[str, int] = {x: k + 1 for k, x in enumerate(self._ids)}
        if len(self._index) != len(self._ids):
            seen: set[str] = set()
            dup = next(x for x in self._ids if x in seen or seen.add(x))  # type: ignore[func-returns-value]
            raise ValueError(f"{name} vocabulary has a duplicate id {dup!r}")

    def __len__(self) -> int:
        """Number of real ids (padding excluded)."""
        return len(self._ids)

    @property
    def size(self) -> int:
        """Width of an index-addressed array: ``len(self) + 1`` (padding included)."""
        return len(self._ids) + 1

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._ids == other._ids

    def __hash__(self) -> int:
        return hash(tuple(self._ids))

    def __repr__(self) -> str:
        return f"Vocabulary(name={self.name!r}, n={len(self)})"

    def index(self, item_id: str) -> int:
        """Index of one id; raises ``KeyError`` naming the vocabulary if unknown."""
        try:
            return self._index[str(item_id)]
        except KeyError:
            raise KeyError(f"unknown {self.name} id {item_id!r}") from None

    def get(self, item_id: str, default: int = PAD) -> int:
        return self._index.get(str(item_id), default)

    def indices(
        self, ids: Sequence[str] | np.ndarray | pl.Series, *, strict: bool = True
    ) -> np.ndarray:
        """Indices of many ids, shape (N,), int64.

        Args:
            ids: External ids.
            strict: If True, an unknown id raises ``KeyError``; otherwise it maps to 0.
        """
        series = ids if isinstance(ids, pl.Series) else pl.Series(values=[str(x) for x in ids])
        mapping = self.to_frame()
        out = (
            series.cast(pl.Utf8)
            .to_frame("id")
            .join(mapping, on="id", how="left", maintain_order="left")
            .get_column("idx")
        )
        if strict and out.null_count():
            bad = series.cast(pl.Utf8).filter(out.is_null()).head(3).to_list()
            raise KeyError(f"unknown {self.name} id(s) {bad}")
        return out.fill_null(PAD).to_numpy().astype(np.int64)

    def id(self, idx: int) -> str:
        """External id of one index (1..n)."""
        if not 1 <= idx <= len(self._ids):
            raise IndexError(f"{self.name} index {idx} out of range 1..{len(self._ids)}")
        return self._ids[idx - 1]

    def ids(self, indices: Iterable[int] | np.ndarray | None = None) -> list[str]:
        """External ids of many indices (all ids, in index order, when None)."""
        if indices is None:
            return list(self._ids)
        return [self.id(int(i)) for i in indices]

    def to_frame(self) -> pl.DataFrame:
        """Two columns: ``id`` (Utf8) and ``idx`` (Int64)."""
        return pl.DataFrame(
            {"id": self._ids, "idx": np.arange(1, len(self._ids) + 1, dtype=np.int64)}
        )
