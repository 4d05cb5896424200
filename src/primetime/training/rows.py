"""Tabular training examples for the loop: aligned columns, a whole batch per fetch."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset


class Rows(Dataset[tuple[torch.Tensor, ...]]):
    """Aligned training columns, fetched a whole batch at a time (``__getitems__``).

    A DataLoader over ``Rows`` with ``collate_fn=as_batch`` gathers each batch with
    one indexing op per column instead of one per example.
    """

    def __init__(self, *columns: torch.Tensor) -> None:
        if len({len(c) for c in columns}) > 1:
            raise ValueError(f"Rows: columns differ in length {[len(c) for c in columns]}")
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return tuple(col[i] for col in self.columns)

    def __getitems__(self, rows: list[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(rows, dtype=torch.int64)
        return tuple(col[idx] for col in self.columns)


def as_batch(batch: Any) -> Any:
    """collate_fn for :class:`Rows`: the batch is already built."""
    return batch
