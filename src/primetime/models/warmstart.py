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

A sequence model can also start its item table from the contrastive model's content
space (``item_init``: :func:`content_rows`, :func:`seed_rows`): a title's first row is
then where its genres, cast, crew, year and text put it, not a random draw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from primetime.data.interactions import Interactions
from primetime.data.side import SideData
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


def content_rows(
    spec: str, train: Interactions, side: SideData, dim: int, device: str = "auto"
) -> np.ndarray:
    """(V, ``dim``) rows to start a model's item table from (its ``item_init``), in the
    index space of ``train.items``; zero rows where there is none.

    Args:
        spec: ``"contrastive"`` fits the contrastive content encoder
            (:class:`~primetime.models.contrastive.ContrastiveConfig` defaults, ``dim``
            wide, no content head: only its item space is used) on ``train`` and
            ``side``; anything else is the folder of a saved contrastive version, whose
            rows are matched by title id (titles it does not know get zero rows).
        train, side: The log and side data of the fit being started.
        dim: The width of the item table.
        device: Where the contrastive fit runs ("auto", "cpu", "cuda"); texts not yet
            encoded are encoded there ("auto": on the CPU).

    Raises:
        ValueError: a saved version of another width, or not a contrastive model.
    """
    from primetime.models.contrastive import ContrastiveConfig, ContrastiveRecommender

    if spec == "contrastive":
        encoder = ContrastiveRecommender(ContrastiveConfig(dim=dim, cold_head=False, device=device))
        text_device = "cpu" if device == "auto" else device
        encoder.fit(train, side=side.with_text_vectors(device=text_device))
        return encoder.item_vectors()
    try:
        saved = ContrastiveRecommender.load(Path(spec))
    except (OSError, ValueError) as e:
        raise ValueError(f"item_init {spec!r}: {e}") from e
    if saved.items is None or saved.vectors is None:
        raise ValueError(f"item_init {spec!r}: not a fitted contrastive model")
    vectors = saved.item_vectors()
    if vectors.shape[1] != dim:
        raise ValueError(
            f"item_init {spec!r}: its item vectors are {vectors.shape[1]} wide, the model {dim}"
        )
    old_rows, new_rows = row_map(saved.items, train.items)
    out = np.zeros((train.items.size, dim), dtype=np.float32)
    out[new_rows] = vectors[old_rows]
    return out


def seed_rows(weight: torch.Tensor, rows: np.ndarray) -> int:
    """Overwrite the rows of a fresh item table ``weight`` (V, D) with ``rows`` (V, D)
    scaled to the fresh rows' mean norm (the init's scale, another direction); the
    padding row and titles whose given row is zero keep their init. Returns how many
    rows were seeded."""
    if rows.shape != tuple(weight.shape):
        raise ValueError(f"item_init: {rows.shape} rows for an item table of {tuple(weight.shape)}")
    given = torch.from_numpy(np.asarray(rows, dtype=np.float32))  # (V, D)
    norm = given.norm(dim=1)  # (V,)
    seed = norm > 0
    seed[0] = False
    with torch.no_grad():
        scale = float(weight[1:].norm(dim=1).mean())
        unit = given[seed] / norm[seed, None]
        weight[seed.to(weight.device)] = (scale * unit).to(weight.device, weight.dtype)
    return int(seed.sum())
