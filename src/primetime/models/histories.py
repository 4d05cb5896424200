"""Users' training histories as tensors: bags for history-conditioned models and a sorted
(user, item) key index to count how often a candidate is in a user's history."""

from __future__ import annotations

import numpy as np
import torch

from primetime.data.interactions import Interactions


class Histories:
    """Users' training histories (CSR by user_idx) with a sorted (user, item) key index.

    Attributes:
        indptr: (users.size + 1,) int64; user ``u``'s items are ``items[indptr[u]:indptr[u+1]]``.
        items: (H,) int64 item_idx.
        keys: (H,) int64 ``user_idx * n_items + item_idx``, ascending.
        n_items: Item vocabulary size (with padding).
    """

    def __init__(self, indptr: np.ndarray, items: np.ndarray, n_items: int) -> None:
        self.indptr = torch.as_tensor(indptr, dtype=torch.int64)
        self.items = torch.as_tensor(items, dtype=torch.int64)
        self.n_items = n_items
        users = torch.repeat_interleave(
            torch.arange(len(self.indptr) - 1), torch.diff(self.indptr)
        )  # (H,)
        self.keys = torch.sort(users * n_items + self.items).values

    @classmethod
    def of(cls, inter: Interactions) -> Histories:
        indptr, order = inter.user_histories()
        return cls(indptr, inter.item_idx[order].astype(np.int64), inter.items.size)

    def to(self, device: torch.device) -> Histories:
        self.indptr, self.items, self.keys = (
            t.to(device) for t in (self.indptr, self.items, self.keys)
        )
        return self

    def bags(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Concatenated histories (L,) of ``users`` (B,) and their lengths (B,)."""
        starts = self.indptr[users]  # (B,)
        lens = self.indptr[users + 1] - starts  # (B,)
        total = int(lens.sum())
        shift = torch.repeat_interleave(starts - (torch.cumsum(lens, 0) - lens), lens)  # (L,)
        return self.items[shift + torch.arange(total, device=users.device)], lens

    def multiplicity(self, users: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """(B, C) float: occurrences of each candidate (B, C) in its user's (B,) history."""
        q = users[:, None] * self.n_items + cand  # (B, C)
        hi = torch.searchsorted(self.keys, q, right=True)
        return (hi - torch.searchsorted(self.keys, q)).float()
