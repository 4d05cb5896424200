"""Warm start: begin a fit from another version's weights instead of a random init.

Used by the retrain job (:mod:`primetime.retrain`) through ``FitOptions.init_from``: a
model that supports it (``Recommender.supports_warm_start``) builds its fresh net for the
new vocabulary, then :func:`carry_weights` copies into it what the old version learned:

- per-title rows (``item_emb.weight``: the id embedding, tied input and output) are
  matched **by title id** across the two vocabularies: a title in both keeps its row
  (whatever index it has now), a title new to the catalog keeps the fresh net's random
  row, a title that left the catalog is dropped;
- every other parameter (attention, feed-forward, GRU, norms, side-feature projections)
  is copied when its name and shape match, and left at its fresh init otherwise (a
  changed ``dim`` or ``layers``): :class:`WarmStart` counts both;
- buffers (a catalog's genre and year arrays, position tables) are never copied: they
  describe the new catalog.

Optimizer state and the learning-rate schedule start afresh; the fit then trains as
configured (the retrain job may cap its epochs: ``primetime retrain --warm-epochs``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from primetime.data.vocab import Vocabulary

#: Parameters whose rows are indexed by item_idx (row 0 = padding).
ITEM_ROWS = ("item_emb.weight",)


@dataclass
class WarmStart:
    """What :func:`carry_weights` carried over (``FitReport.notes["warm_start"]``).

    Attributes:
        titles_carried: Titles in both vocabularies whose rows were copied by id.
        titles_new: Titles of the new vocabulary absent from the old one (fresh rows).
        titles_dropped: Titles of the old vocabulary absent from the new one.
        tensors_copied: Other parameters copied whole (name and shape matched).
        tensors_fresh: Parameters left at their fresh init (names listed).
    """

    titles_carried: int = 0
    titles_new: int = 0
    titles_dropped: int = 0
    tensors_copied: int = 0
    tensors_fresh: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def row_map(old: Vocabulary, new: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Where each title of ``old`` sits in ``new``.

    Returns:
        ``(old_rows, new_rows)``: (N,) int64 item indices of the N titles present in both
        vocabularies, in ``old`` and in ``new`` (padding excluded).
    """
    new_idx = new.indices(old.ids(), strict=False)  # (len(old),) 0 = not in new
    keep = np.flatnonzero(new_idx > 0)
    return (keep + 1).astype(np.int64), new_idx[keep].astype(np.int64)


def carry_weights(
    net: nn.Module,
    old_net: nn.Module,
    *,
    old_items: Vocabulary,
    new_items: Vocabulary,
    item_rows: tuple[str, ...] = ITEM_ROWS,
) -> WarmStart:
    """Copy ``old_net``'s parameters into the fresh ``net`` (in place), per-title rows by id.

    Args:
        net: The fresh net, built for ``new_items`` (its item tables have
            ``new_items.size`` rows).
        old_net: The old version's net, built for ``old_items``.
        old_items, new_items: The two item vocabularies.
        item_rows: Names of parameters indexed by item_idx.

    Raises:
        ValueError: an item table whose row count does not match its vocabulary.
    """
    old_params = dict(old_net.named_parameters())
    out = WarmStart()
    old_rows, new_rows = row_map(old_items, new_items)
    out.titles_carried = len(old_rows)
    out.titles_new = len(new_items) - len(old_rows)
    out.titles_dropped = len(old_items) - len(old_rows)
    with torch.no_grad():
        for name, p in net.named_parameters():
            src = old_params.get(name)
            if name in item_rows:
                if p.shape[0] != new_items.size or (src is not None and len(src) != old_items.size):
                    raise ValueError(
                        f"{name}: {p.shape[0]} rows for {new_items.size} items, or the old "
                        f"{None if src is None else len(src)} for {old_items.size}"
                    )
                if src is None or src.shape[1:] != p.shape[1:]:
                    out.tensors_fresh.append(name)
                    continue
                idx_new = torch.from_numpy(new_rows).to(p.device)
                idx_old = torch.from_numpy(old_rows).to(src.device)
                p[idx_new] = src[idx_old].to(p.device, p.dtype)
            elif src is not None and src.shape == p.shape:
                p.copy_(src.to(p.device, p.dtype))
                out.tensors_copied += 1
            else:
                out.tensors_fresh.append(name)
    return out
