"""A content head for titles without a training event (new titles, cold-start items).

A model whose item vectors come from who watched what (an id embedding, or a graph
node fed by its viewers) has nothing to put in the row of a title nobody has
watched: that row stays at its initial value, or at whatever the content path
gives when it was never trained to stand alone, and the title scores at random's
level among other new titles. The head learns that row from what the title *is*.

After the model is fitted, its user vectors are fixed: the query of every position
of every training history (exactly what it serves). A small encoder ``f`` maps a
title's content (genre, subgenre, cast and crew tokens, the exact release year, the
other temporal tokens, its knowledge-graph entities, its text vector, and an
optional vector the model already has for the title) to a vector in that user space,
trained so that each position's user vector finds the title that came next among
every title with a training event, all of them built by ``f`` from content alone:
the id is dropped for every title (DropoutNet, Volkovs et al. 2017, "DropoutNet:
Addressing Cold Start in Recommender Systems", NeurIPS, with a dropout rate of 1
on a frozen preference model). So ``f`` learns which content the model's users
want, including what predicts appeal (a year, a known director), and the rows it
gives land in the space the model's user vectors score in.

The exact year is a token of its own (the shared metadata tokens bucket years five
at a time: on ml-100k 1997, the year of most new-title targets, and 1998, a year
with 21 barely watched titles in train, share a bucket).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.models.metadata import item_tokens, text_matrix

#: Token fields of the head, in order.
BAGS = ("genres", "subgenres", "cast", "crew", "year", "temporal", "entities")
#: Every input of the head: :func:`content_features`'s token bags and text vector, and
#: ``encoder``, the model's own content vector of a title (the contrastive encoder's).
FEATURES = (*BAGS, "text", "encoder")
#: The models' default inputs of the head (``head_features``).
HEAD_FEATURES = "genres"


@dataclass(frozen=True)
class HeadConfig:
    """Settings of :func:`fit_head`.

    Attributes:
        hidden: Width of the token embeddings and of the MLP.
        epochs: Passes over the training positions.
        batch_size: Positions per step.
        lr, weight_decay: AdamW.
        dropout: Dropout on the pooled content before the MLP.
        seed: Seed of the initialisation and of the batch order.
    """

    hidden: int = 64
    epochs: int = 4
    batch_size: int = 1024
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dropout: float = 0.1
    seed: int = 42

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("hidden, epochs and batch_size must be >= 1")


def _pad(rows: list[list[int]], n: int) -> np.ndarray:
    width = max((len(r) for r in rows), default=0) or 1
    out = np.zeros((n, width), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def content_features(
    side: SideData,
    n_items: int,
    *,
    entity_item: np.ndarray | None = None,
    entity: np.ndarray | None = None,
    min_count: int = 2,
    max_people: int = 10,
    use_text: bool = True,
) -> dict[str, np.ndarray]:
    """Token tables (V, K) int64 per field of :data:`BAGS` (0 = padding) and ``text``
    (V, E) float32 when the side data has text vectors.

    Args:
        side: Catalog, graph (cast and crew when the catalog has none) and text.
        n_items: items.size (padding included).
        entity_item, entity: (E,) title-entity links (item_idx, entity index 1..) of
            the knowledge graph as the model uses it; None: no entity bag.
        min_count, max_people: Cast / crew tokens (:func:`item_tokens`).
        use_text: Read ``side.text_vectors``.
    """
    tokens = item_tokens(side, n_items, min_count=min_count, max_people=max_people)
    exact = item_tokens(side, n_items, min_count=min_count, max_people=1, year_bucket=1)
    out = {
        "genres": tokens.genres,
        "subgenres": tokens.subgenres[:, :4],
        "cast": tokens.cast,
        "crew": tokens.crew,
        "year": exact.temporal[:, :1],  # (V, 1) one id per year
        "temporal": tokens.temporal[:, 1:]
        + np.cumsum(
            np.concatenate([[0], tokens.temporal_sizes[1:-1]])
        ),  # (V, 4) the other temporal columns, in one id space
    }
    out["temporal"][tokens.temporal[:, 1:] == 0] = 0
    if entity_item is not None and entity is not None and len(entity_item):
        rows: list[list[int]] = [[] for _ in range(n_items)]
        for i, e in zip(entity_item.tolist(), entity.tolist(), strict=True):
            rows[i].append(e)
        out["entities"] = _pad(rows, n_items)
    text = text_matrix(side, n_items) if use_text else None
    if text is not None:
        out["text"] = text
    return out


class ContentHead(nn.Module):
    """Mean-pooled token bags + projected text (+ an extra vector) -> MLP -> (V, dim)."""

    def __init__(
        self,
        features: dict[str, np.ndarray],
        dim: int,
        cfg: HeadConfig,
        extra: np.ndarray | None = None,
    ) -> None:
        """Args:
        features: :func:`content_features`.
        dim: Size of the user space.
        extra: (V, X) float32 vectors the model already has for every title (a content
            encoder's), fed as one more input; None for none.
        """
        super().__init__()
        h = cfg.hidden
        self.fields = [f for f in BAGS if f in features]
        for f in self.fields:
            self.register_buffer(f"tok_{f}", torch.from_numpy(features[f]).long())
        self.bags = nn.ModuleDict(
            {f: nn.Embedding(int(features[f].max()) + 1, h, padding_idx=0) for f in self.fields}
        )
        dense = [a for a in (features.get("text"), extra) if a is not None]
        self.dense_dims = [a.shape[1] for a in dense]
        if dense:
            self.register_buffer("dense", torch.from_numpy(np.concatenate(dense, 1)).float())
            self.proj = nn.Linear(self.dense.shape[1], h)
        parts = len(self.fields) + bool(dense)
        self.drop = nn.Dropout(cfg.dropout)
        self.mlp = nn.Sequential(
            nn.Linear(parts * h, 2 * h), nn.GELU(), nn.LayerNorm(2 * h), nn.Linear(2 * h, dim)
        )

    dense: torch.Tensor

    def forward(self) -> torch.Tensor:
        """(V, dim) vectors of every title (row 0, padding, included)."""
        parts = []
        for f in self.fields:
            tok = getattr(self, f"tok_{f}")  # (V, K)
            w = (tok > 0).float()
            bag = (self.bags[f](tok) * w[:, :, None]).sum(1) / w.sum(1, keepdim=True).clamp(min=1)
            parts.append(bag)  # (V, h)
        if self.dense_dims:
            parts.append(self.proj(self.dense))
        return self.mlp(self.drop(torch.cat(parts, 1)))


def fit_head(
    features: dict[str, np.ndarray],
    users: torch.Tensor,
    targets: torch.Tensor,
    watched: torch.Tensor,
    cfg: HeadConfig,
    *,
    extra: np.ndarray | None = None,
    newest: torch.Tensor | None = None,
) -> torch.Tensor:
    """Train a :class:`ContentHead` against fixed user vectors; its (V, dim) vectors.

    Args:
        features: :func:`content_features` of every title.
        users: (N, dim) the model's user vector at each training position (no grad).
        targets: (N,) the title that came next (item_idx, all with a training event).
        watched: (V,) bool, titles with a training event: the candidates of every
            position (a title nobody watched is never a negative).
        cfg: Training settings.
        extra: See :class:`ContentHead`.
        newest: (V,) bool, the titles that were new late in the training log (the
            newest by first event, :func:`newest_titles`), or None. With it, a second
            term asks each position whose next title is one of them to find it among
            them only: the new-title protocol inside training. Titles that first
            appear late in a log differ from the catalog at large (there, the new
            releases and the obscure old titles that nobody had got to), so what
            predicts interest among all titles (an old year: the classics) can point
            the wrong way among new ones.

    Returns:
        (V, dim) float32 vectors of every title from its content alone, row 0 zero.
    """
    if len(users) != len(targets):
        raise ValueError(f"{len(users)} user vectors for {len(targets)} targets")
    if len(targets) and not bool(watched[targets].all()):
        raise ValueError("every target must be a watched title")
    torch.manual_seed(cfg.seed)
    head = ContentHead(features, users.shape[1], cfg, extra)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    cand = torch.nonzero(watched).squeeze(1)  # (C,) sorted
    local = torch.searchsorted(cand, targets)  # (N,)
    users = users.detach()
    if newest is not None:
        new_cand = torch.nonzero(newest & watched).squeeze(1)  # (M,) sorted
        is_new = newest[targets]  # (N,)
        new_local = torch.searchsorted(new_cand, targets).clamp(max=max(len(new_cand) - 1, 0))
    head.train()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(users), generator=gen).split(cfg.batch_size):
            vecs = head()  # (V, dim)
            loss = F.cross_entropy(users[idx] @ vecs[cand].T, local[idx])
            if newest is not None:
                sel = idx[is_new[idx]]
                if len(sel):
                    logits = users[sel] @ vecs[new_cand].T  # (n, M)
                    loss = loss + F.cross_entropy(logits, new_local[sel])
            opt.zero_grad()
            loss.backward()
            opt.step()
    head.eval()
    with torch.no_grad():
        out = head()
    out[0] = 0.0
    return out


def head_rows(
    side: SideData,
    links: tuple[np.ndarray, np.ndarray],
    users: torch.Tensor,
    targets: torch.Tensor,
    watched: torch.Tensor,
    train: Interactions,
    options: Any,
    *,
    extra: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """What a model's ``cold_head`` option runs: :func:`fit_head` on the inputs
    ``options.head_features`` (comma-separated names of :data:`FEATURES`; ``text`` only
    with ``options.use_text``) of :func:`content_features` of ``side`` (``links``:
    (item, entity) the graph's title-entity links as the model reads them), with the
    newest ``options.head_newest`` of ``train``'s titles as its ``newest`` (0: none).

    Args:
        options: The model's config: ``head_features``, ``head_newest``, ``head_epochs``,
            ``use_text``, ``dim``, ``seed``, ``min_people_titles``, ``max_people``.

    Returns:
        ``(rows, replace)``: (V, dim) the head's vectors and (V,) bool the titles whose
        row they replace: never watched, with at least one of the inputs (a title the
        head has nothing to read of keeps the model's own row).
    """
    keep = set(options.head_features.split(",")) - (set() if options.use_text else {"text"})
    newest_share = options.head_newest
    cfg = HeadConfig(epochs=options.head_epochs, hidden=options.dim, seed=options.seed)
    min_count, max_people = options.min_people_titles, options.max_people
    n = len(watched)
    features = content_features(
        side,
        n,
        entity_item=links[0],
        entity=links[1],
        min_count=min_count,
        max_people=max_people,
        use_text="text" in keep,
    )
    features = {k: v for k, v in features.items() if k in keep}
    newest = (
        newest_titles(train.item_idx, train.timestamp, n, newest_share) if newest_share else None
    )
    extra = extra if "encoder" in keep else None
    rows = fit_head(features, users, targets, watched, cfg, extra=extra, newest=newest)
    replace = ~watched & torch.from_numpy(has_content(features) | (extra is not None))
    replace[0] = False
    return rows, replace


def check_head_options(inputs: str, newest_share: float) -> None:
    """Raise ValueError for a ``head_features`` name not in :data:`FEATURES` or a
    ``head_newest`` outside [0, 1) (the models' config checks)."""
    if not 0 <= newest_share < 1:
        raise ValueError(f"head_newest must be in [0, 1), got {newest_share}")
    stray = set(inputs.split(",")) - set(FEATURES)
    if stray:
        raise ValueError(f"head_features: unknown {sorted(stray)}; known: {FEATURES}")


def has_content(features: dict[str, np.ndarray]) -> np.ndarray:
    """(V,) bool: titles with at least one token or a non-zero text vector in ``features``
    (a title without any has nothing for the head to read)."""
    n = len(next(iter(features.values()))) if features else 0
    out = np.zeros(n, dtype=bool)
    for name, a in features.items():
        out |= (a > 0).any(1) if name in BAGS else np.abs(a).sum(1) > 0
    return out


def newest_titles(
    item_idx: np.ndarray, timestamp: np.ndarray, n_items: int, share: float
) -> torch.Tensor:
    """(V,) bool: the newest ``share`` of the titles of a log by first event.

    Args:
        item_idx, timestamp: (N,) the log's events.
        n_items: items.size.
        share: Fraction of the titles with an event, in (0, 1).
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    first = np.full(n_items, np.inf)
    np.minimum.at(first, item_idx, timestamp.astype(np.float64))
    present = np.flatnonzero(np.isfinite(first))
    n = max(1, int(round(share * len(present))))
    out = np.zeros(n_items, dtype=bool)
    out[present[np.argsort(-first[present], kind="stable")[:n]]] = True
    return torch.from_numpy(out)


__all__ = [
    "BAGS",
    "FEATURES",
    "HEAD_FEATURES",
    "ContentHead",
    "HeadConfig",
    "content_features",
    "fit_head",
    "newest_titles",
]
