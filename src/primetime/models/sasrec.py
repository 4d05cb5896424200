"""SASRec-style sequential transformer (Kang & McAuley 2018, arXiv:1808.09781).

Reads a user's recent history and predicts the next title. Trained on every
position of every sequence at once (causal attention), with full-softmax
cross-entropy over the catalog by default (as in Klenitskiy & Vasilev 2023,
"Turning Dross Into Gold Loss: is BERT4Rec really better than SASRec?",
arXiv:2309.07602, which shows CE is what makes SASRec strong), or sampled
losses for large catalogs.

Three parts: :class:`SASRecConfig` (frozen), :class:`SASRecNet` (tensors in,
tensors out) and :class:`SASRecRecommender` (vocabularies, batching, fit).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from primetime.artifacts import Bundle
from primetime.data.catalog import Catalog
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.vocab import Vocabulary
from primetime.models.sequential import SequentialRecommender, unwrap
from primetime.training.loop import TrainConfig

log = logging.getLogger(__name__)

POSITIONS = ("sinusoidal", "learned", "none")
LOSSES = ("ce", "sampled_softmax", "bce")


@dataclass(frozen=True)
class SASRecConfig:
    """Model and training settings.

    The defaults were chosen on ml-100k **valid** (leave-one-out; README,
    "The transformer"): 64 dims, 2 layers, 2 heads, FFN 256, dropout 0.2,
    lr 2e-3, 40 epochs, AdamW weight decay 0.1 on every matrix including the
    embeddings, and genre + year side features. Not the design's 128 x 4
    layers x 8 heads x FFN 512: on 2 CPU cores that size costs 0.8 s a step
    (16 s an epoch), too slow to converge in minutes, and it scored lower on
    valid (``primetime ablate --base design``). Overlapping windows
    (``window_stride=25``) scored 0.003 higher on valid at twice the training
    time and are left as an option.

    Attributes:
        dim: Item embedding and hidden size.
        layers: Transformer blocks.
        heads: Attention heads per block.
        ffn: Feed-forward width.
        dropout: Dropout on embeddings, attention and feed-forward.
        max_len: Most recent history items the model reads.
        positions: "sinusoidal" (default), "learned" or "none".
        side_features: Add genre (multi-hot, projected) and release-year (5-year
            bucket) embeddings to every item's id embedding, input and output
            alike; used when the catalog is given at fit time (else skipped,
            with a log line); helps rare titles.
        loss: "ce" (full softmax), "sampled_softmax" or "bce" (one negative per positive).
        negatives: Sampled negatives per batch for "sampled_softmax".
        window_stride: Overlap of training windows (0: none; see ``training_windows``).
        item_init: Start the item table from the contrastive model's content space
            instead of a random draw: ``"contrastive"`` fits that model (its defaults,
            this width) on the same log first; a path is a saved contrastive version
            (rows by title id); "" (default) is random. Ignored on a warm start.
        epochs, max_steps, batch_size, lr, weight_decay, decay_embeddings, warmup_epochs,
        patience, eval_every, grad_clip, seed: Training (see
        :class:`~primetime.training.TrainConfig`).
        device: "auto", "cpu" or "cuda".
        amp: bfloat16 autocast on CUDA (float16 with loss scaling where bfloat16 is
            missing); ignored on the CPU.
        compile: ``torch.compile`` the network on CUDA; ignored on the CPU.
    """

    dim: int = 64
    layers: int = 2
    heads: int = 2
    ffn: int = 256
    dropout: float = 0.2
    max_len: int = 50
    positions: str = "sinusoidal"
    side_features: bool = True
    loss: str = "ce"
    negatives: int = 256
    epochs: int = 40
    max_steps: int = 0
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    decay_embeddings: bool = True
    window_stride: int = 0
    item_init: str = ""
    warmup_epochs: float = 2.0
    patience: int = 6
    eval_every: int = 2
    grad_clip: float = 1.0
    seed: int = 42
    device: str = "auto"
    amp: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.max_len < 2:
            raise ValueError(f"max_len must be >= 2, got {self.max_len}")

    def train_config(self) -> TrainConfig:
        return TrainConfig.of(self)


def side_arrays(catalog: Catalog, bucket_years: int = 5) -> dict[str, np.ndarray]:
    """Side features of every item: ``side_genres`` (V, G) float32 multi-hot and
    ``side_years`` (V,) int64 release-year bucket (``bucket_years`` wide; 0 for
    padding and unknown years)."""
    genres, _ = catalog.genre_matrix()  # (V, G)
    if genres.shape[1] == 0:
        genres = np.zeros((catalog.items.size, 1), dtype=np.float32)
    year = catalog.frame["year"].to_numpy()
    years = np.zeros(catalog.items.size, dtype=np.int64)
    known = ~np.isnan(year.astype(np.float64))
    if known.any():
        lo = int(np.nanmin(year[known].astype(np.float64)))
        years[1:][known] = (year[known].astype(np.int64) - lo) // bucket_years + 1
    return {"side_genres": genres.astype(np.float32), "side_years": years}


def sinusoidal_table(n: int, dim: int) -> torch.Tensor:
    """(n, dim) fixed positional encodings (Vaswani et al. 2017, section 3.5)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]  # (n, 1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n, dim)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return table


class SASRecNet(nn.Module):
    """Causal transformer over item sequences with tied input/output embeddings."""

    def __init__(
        self, n_items: int, cfg: SASRecConfig, side: dict[str, torch.Tensor] | None = None
    ) -> None:
        """Args:
        n_items: vocabulary size including padding (items.size).
        side: ``side_genres`` (V, G) float multi-hot and ``side_years`` (V,) int64 year
            bucket (0 = unknown), from :func:`side_arrays`; None for ids only.
        """
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(n_items, cfg.dim, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=cfg.dim**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.genre_proj: nn.Linear | None = None
        self.year_emb: nn.Embedding | None = None
        self._table: torch.Tensor | None = None  # inference cache of item_table()
        self._table_key: tuple[tuple[int, int], ...] | None = None
        if side is not None:
            genres, years = side["side_genres"].float(), side["side_years"].long()
            if genres.shape[0] != n_items or years.shape != (n_items,):
                raise ValueError("side feature arrays do not match the item vocabulary")
            self.register_buffer("side_genres", genres)
            self.register_buffer("side_years", years)
            self.genre_proj = nn.Linear(genres.shape[1], cfg.dim, bias=False)
            nn.init.normal_(self.genre_proj.weight, std=cfg.dim**-0.5)
            self.year_emb = nn.Embedding(int(years.max()) + 1, cfg.dim, padding_idx=0)
            nn.init.normal_(self.year_emb.weight, std=cfg.dim**-0.5)
        if cfg.positions == "learned":
            self.pos_emb: nn.Embedding | None = nn.Embedding(cfg.max_len, cfg.dim)
        else:
            self.pos_emb = None
        self.register_buffer("pos_table", sinusoidal_table(cfg.max_len, cfg.dim), persistent=False)
        self.emb_dropout = nn.Dropout(cfg.dropout)
        self.emb_norm = nn.LayerNorm(cfg.dim)
        layer = nn.TransformerEncoderLayer(
            cfg.dim,
            cfg.heads,
            cfg.ffn,
            cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(cfg.dim)

    pos_table: torch.Tensor
    side_genres: torch.Tensor
    side_years: torch.Tensor

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, D) for right-padded item sequences ``seq`` (B, T).

        Sequences start at position 0 and padding (0) comes after the last real
        item, so a plain causal mask is enough: a real position never attends
        to padding, outputs do not depend on how much padding follows, and
        attention runs on PyTorch's fused causal kernel (an explicit padding
        mask would force the slow path: measured 2x slower per step on CPU).
        """
        t = seq.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=seq.device)  # (T, T)
        return self.encode(self.embed(seq), causal, is_causal=True)

    def embed(self, seq: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Input vectors (B, T, D) of items ``seq`` (B, T): item table, positions and
        ``extra`` (B, T, D) when given (the ``temporal`` model's time features)."""
        t = seq.shape[1]
        x = F.embedding(seq, self.item_table()) * math.sqrt(self.cfg.dim)  # (B, T, D)
        if self.cfg.positions == "learned":
            assert self.pos_emb is not None
            x = x + self.pos_emb.weight[:t]  # (T, D) broadcast over B
        elif self.cfg.positions == "sinusoidal":
            x = x + self.pos_table[:t]
        if extra is not None:
            x = x + extra
        return self.emb_norm(self.emb_dropout(x))  # (B, T, D)

    def encode(self, x: torch.Tensor, mask: torch.Tensor, *, is_causal: bool) -> torch.Tensor:
        """Hidden states (B, T, D) of inputs ``x`` (B, T, D) under an attention ``mask``:
        (T, T) causal, or (B * heads, T, T) additive (a causal mask plus biases)."""
        h = self.encoder(x, mask=mask, is_causal=is_causal)  # (B, T, D)
        return self.final_norm(h)

    def item_table(self) -> torch.Tensor:
        """(V, D) item vectors, input and output: id embedding (+ genre + year).

        At inference (eval mode, no grad) the table is computed once and kept
        until a weight changes (tracked by the tensors' version counters), so
        scoring a request costs no side-feature projection over the catalog.
        """
        return side_item_table(self)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Scores of every item for hidden states ``h`` (..., D) -> (..., V)."""
        return h @ self.item_table().T


class SASRecRecommender(SequentialRecommender):
    """Next-title prediction from the last ``max_len`` titles of a history."""

    name = "sasrec"
    config_class = SASRecConfig
    supports_warm_start = True
    tuning_grid: ClassVar[list[dict[str, Any]]] = [
        {"dropout": d, "layers": n} for d in (0.1, 0.2, 0.3) for n in (2, 4)
    ]

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """Optuna search space for ``primetime search`` (valid NDCG@10 only)."""
        heads = trial.suggest_categorical("heads", [1, 2, 4])
        return {
            "dim": trial.suggest_categorical("dim", [32, 64, 128]),
            "heads": heads,
            "layers": trial.suggest_int("layers", 1, 4),
            "ffn": trial.suggest_categorical("ffn", [128, 256, 512]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "lr": trial.suggest_float("lr", 3e-4, 5e-3, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-6, 0.1, log=True),
            "max_len": trial.suggest_categorical("max_len", [20, 50, 100, 200]),
            "positions": trial.suggest_categorical("positions", list(POSITIONS)),
        }

    def _new_net(self, n_items: int) -> nn.Module:
        side = None
        if self.side is not None:
            side = {k: torch.from_numpy(v) for k, v in self.side.items()}
        return SASRecNet(n_items, self.config, side)

    def _prepare(self, train: Interactions, catalog: Catalog | None) -> None:
        self.side = None
        if self.config.side_features:
            if catalog is None:
                log.info("sasrec: no catalog given, training on item ids only (no side features)")
                return
            self.side = side_arrays(catalog)

    def _extend(self, items: Vocabulary, side: SideData, n_old: int) -> bool:
        """With side features only: a new title's vector is its genre projection plus its
        year-bucket embedding and a zero id embedding (a title never seen in training
        gets no id signal either way). Without side features there is nothing to score
        a new title by: False."""
        from primetime.models.multimodal import grow_embedding
        from primetime.models.reference import new_genre_rows

        net = self.net
        if self.side is None or net is None or net.genre_proj is None or side.catalog is None:
            return False
        hot = new_genre_rows(side.catalog, n_old)
        if hot is None or (hot.shape[1] or 1) != net.side_genres.shape[1]:
            return False
        hot = hot if hot.shape[1] else np.zeros((hot.shape[0], 1), np.float32)
        year = side.catalog.frame["year"].to_list()
        learned = [y for y in year[: n_old - 1] if y is not None]
        top = net.year_emb.num_embeddings - 1
        years = np.zeros(len(hot), dtype=np.int64)
        if learned:
            lo = min(learned)
            for k, y in enumerate(year[n_old - 1 :]):
                years[k] = 0 if y is None else min(max((int(y) - lo) // 5 + 1, 1), top)
        self.side = {
            "side_genres": np.concatenate([self.side["side_genres"], hot]).astype(np.float32),
            "side_years": np.concatenate([self.side["side_years"], years]),
        }
        net.side_genres = torch.from_numpy(self.side["side_genres"]).to(net.side_genres.device)
        net.side_years = torch.from_numpy(self.side["side_years"]).to(net.side_years.device)
        net.item_emb = grow_embedding(net.item_emb, items.size)
        net._table, net._table_key = None, None
        return True

    def _restore(self, bundle: Bundle) -> None:
        self.side = None
        if "side_genres" in bundle.arrays:
            self.side = {k: bundle.arrays[k] for k in ("side_genres", "side_years")}
        super()._restore(bundle)

    def _loss(self, net: nn.Module, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Full softmax (default), or sampled softmax / BCE for large catalogs."""
        cfg = self.config
        if cfg.loss == "ce":
            return super()._loss(net, h, y)
        emb: torch.Tensor = unwrap(net).item_table()  # (V, D)
        neg = torch.randint(1, emb.shape[0], (cfg.negatives,), generator=self.rng).to(y.device)
        pos_logit = (h * emb[y]).sum(-1, keepdim=True)  # (N, 1)
        neg_logit = h @ emb[neg].T  # (N, K)
        if cfg.loss == "sampled_softmax":
            neg_logit = neg_logit.masked_fill(neg[None, :] == y[:, None], -torch.inf)
            logits = torch.cat([pos_logit, neg_logit], dim=1)  # (N, 1 + K)
            return F.cross_entropy(logits, torch.zeros_like(y))
        # bce: one sampled negative per positive (the original SASRec loss)
        return F.binary_cross_entropy_with_logits(
            torch.cat([pos_logit[:, 0], neg_logit[:, 0]]),
            torch.cat([torch.ones_like(pos_logit[:, 0]), torch.zeros_like(neg_logit[:, 0])]),
        )


def weights_key(*weights: torch.Tensor) -> tuple[tuple[int, int], ...]:
    """What an inference cache of a table derived from ``weights`` is keyed on: each
    tensor's version counter (bumped by in-place changes) and storage (a replaced or
    grown tensor)."""
    return tuple((w._version, w.data_ptr()) for w in weights)


def side_item_table(net: Any) -> torch.Tensor:
    """(V, D) title vectors of a network with an id embedding ``item_emb`` and, optionally,
    side features (``genre_proj`` over ``side_genres``, ``year_emb`` over ``side_years``;
    row 0, the padding title, gets none). In eval mode without grad the table is kept in
    ``net._table`` until a weight changes (tracked by the tensors' version counters).
    Shared by sasrec and maml."""
    table = net.item_emb.weight
    if net.genre_proj is None or net.year_emb is None:
        return table
    cacheable = not net.training and not torch.is_grad_enabled()
    key = None  # no key while training: ``data_ptr`` would break a torch.compile graph
    if cacheable:
        key = weights_key(net.item_emb.weight, net.genre_proj.weight, net.year_emb.weight)
        if net._table_key == key and net._table is not None:
            return net._table
    genres = net.side_genres / net.side_genres.sum(1, keepdim=True).clamp(min=1.0)
    side = net.genre_proj(genres) + net.year_emb(net.side_years)  # (V, D)
    side = side * (torch.arange(len(table), device=table.device) > 0)[:, None]
    table = table + side
    if cacheable:
        net._table, net._table_key = table, key
    return table
