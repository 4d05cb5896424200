"""Multimodal sequential recommender: item vectors fused from text and metadata.

Every title gets a *content* vector from what is known about it without any
interactions: the sentence embedding of its text (``side.text_vectors``,
all-MiniLM-L6-v2) and a metadata transformer over its tokens (genres,
subgenres, cast and crew pooled by attention, temporal tokens: year bucket,
first-air year, season number, network, kind; see
:mod:`primetime.models.metadata`). Text and metadata meet in a cross-attention
block (text tokens attend to metadata tokens and back). A title's item vector is
its id embedding plus its content vector; the id embedding of a title with no
training event is zero, so a title nobody has watched is scored by content
alone. The user side is SASRec's causal transformer over the history of those
item vectors, trained with full-softmax cross-entropy (:mod:`.sequential`).

Three parts: :class:`MultimodalConfig`, :class:`MultimodalNet` (with its
:class:`ItemEncoder`) and :class:`MultimodalRecommender`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from primetime.artifacts import Bundle
from primetime.data.catalog import Catalog
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.vocab import Vocabulary
from primetime.models.base import FitOptions, FitReport
from primetime.models.coldhead import Positions
from primetime.models.metadata import FIELDS, ItemTokens, extend_tokens, item_tokens, text_matrix
from primetime.models.sasrec import POSITIONS, sinusoidal_table
from primetime.models.sequential import (
    SequentialRecommender,
    training_windows,
    unwrap,
    window_times,
)
from primetime.models.titlecontext import (
    RequestTerms,
    TermsConfig,
    TitleFacts,
    fit_weights,
    release_days,
)
from primetime.training.loop import TrainConfig
from primetime.types import UserContext

#: Slot types of the metadata sequence (type embeddings).
SLOT_TYPES = ("meta_cls", "genre", "subgenre", "cast", "crew", "temporal", "text")


@dataclass(frozen=True)
class MultimodalConfig:
    """Model and training settings (defaults: SASRec's tuned ones, see ``sasrec.py``).

    Measured with these defaults (``primetime benchmark --data ml-100k --models
    itemknn,multimodal --versus itemknn``): test NDCG@10 0.0991 +- 0.0150 against
    itemknn 0.0844 (paired Wilcoxon p = 0.07), best valid 0.1107 at epoch 26 of 38,
    871 s on a 2-core CPU shared with other jobs (22.9 s an epoch).

    Attributes:
        dim, layers, heads, ffn, dropout, max_len, positions: The causal user encoder
            (as in :class:`~primetime.models.sasrec.SASRecConfig`).
        use_text: Fuse the text vector (ablation: False = metadata only).
        use_kg: Read the knowledge graph: cast and crew tokens taken from it where the
            catalog has none, and its facts in the title's text (ablation: False = the
            catalog alone, the text re-encoded without the facts).
        cross_attention: Fuse text and metadata by cross-attention (False: concatenate
            the pooled text and metadata vectors and project).
        meta_dim: Width of the item encoder's tokens (projected to ``dim`` at the end).
            32, not 64: the encoder runs over every title at every step (full-softmax
            CE needs the whole table), and at 64 it cost 3.0 s of a 4.3 s step on a
            shared 2-core CPU.
        text_tokens: Tokens the 384-d text vector is projected into.
        meta_layers: Self-attention layers over a title's metadata tokens.
        max_subgenres: Subgenre tokens kept per title (most frequent first).
        max_people: Cast (and crew) tokens kept per title.
        min_people_titles: Fewest titles a person must be on to be a token.
        id_embeddings: Add a per-title id embedding (zero for titles never seen in
            training) to the content vector.
        checkpointing: Recompute the item encoder in the backward pass
            (``torch.utils.checkpoint``) instead of keeping its activations: less memory
            on large catalogs, about a third more compute.
        request_terms: After training, fit the request-time terms
            (:mod:`primetime.models.titlecontext`) beside the model's scores: a title no
            training event reached (or one added later) also scores whether it is out at
            the request and how recently, and how many of the history's titles share
            each kind of knowledge-graph entity with it or link to it; one weight per
            term, learned on the training positions with the model frozen.
        epochs, batch_size, lr, weight_decay, decay_embeddings, warmup_epochs, patience,
        eval_every, grad_clip, seed, device: Training (see :class:`TrainConfig`).
    """

    dim: int = 64
    layers: int = 2
    heads: int = 2
    ffn: int = 256
    dropout: float = 0.2
    max_len: int = 50
    positions: str = "sinusoidal"
    use_text: bool = True
    use_kg: bool = True
    cross_attention: bool = True
    meta_dim: int = 32
    text_tokens: int = 2
    meta_layers: int = 1
    max_subgenres: int = 4
    max_people: int = 10
    min_people_titles: int = 2
    id_embeddings: bool = True
    checkpointing: bool = False
    request_terms: bool = True
    epochs: int = 40
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    decay_embeddings: bool = True
    warmup_epochs: float = 2.0
    patience: int = 6
    eval_every: int = 2
    grad_clip: float = 1.0
    seed: int = 42
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.max_len < 2:
            raise ValueError(f"max_len must be >= 2, got {self.max_len}")
        if self.text_tokens < 1 or self.meta_layers < 0:
            raise ValueError("text_tokens must be >= 1 and meta_layers >= 0")
        if self.meta_dim % self.heads:
            raise ValueError(f"meta_dim {self.meta_dim} must be divisible by heads {self.heads}")

    def train_config(self) -> TrainConfig:
        return TrainConfig.of(self)


class AttentionPool(nn.Module):
    """Pools a padded set of token vectors (N, K, D) into one (N, D) with a learned query."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(dim) * dim**-0.5)
        self.scale = dim**-0.5

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (N, K, D), ``mask`` (N, K) True = real token -> pooled (N, D), any (N,)."""
        w = (x @ self.query) * self.scale  # (N, K)
        w = w.masked_fill(~mask, -torch.inf)
        any_token = mask.any(1)  # (N,)
        # a title without tokens: softmax of all -inf is NaN; give it uniform zeros instead
        w = torch.where(any_token[:, None], w, torch.zeros_like(w)).softmax(1)  # (N, K)
        pooled = (w[:, :, None] * x).sum(1) * any_token[:, None]  # (N, D)
        return pooled, any_token


class CrossBlock(nn.Module):
    """Text tokens attend to metadata tokens and metadata tokens to text (pre-norm)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.t_norm, self.m_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.t2m = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.m2t = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.t_ffn = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)
        )
        self.m_ffn = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)
        )

    def forward(
        self, t: torch.Tensor, m: torch.Tensor, m_pad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``t`` (N, Lt, D) text, ``m`` (N, Lm, D) metadata, ``m_pad`` (N, Lm) True = padding."""
        tn, mn = self.t_norm(t), self.m_norm(m)
        t = t + self.t2m(tn, mn, mn, key_padding_mask=m_pad, need_weights=False)[0]  # (N, Lt, D)
        m = m + self.m2t(mn, tn, tn, need_weights=False)[0]  # (N, Lm, D)
        return t + self.t_ffn(t), m + self.m_ffn(m)


class ItemEncoder(nn.Module):
    """Content vector (V, dim) of every title from its metadata tokens and text vector
    (tokens of width d = ``meta_dim``)."""

    def __init__(self, cfg: MultimodalConfig, arrays: dict[str, np.ndarray]) -> None:
        """Args:
        arrays: ``tok_*`` token tables of :class:`ItemTokens` (``.arrays()``) and,
            when text is used, ``text`` (V, E) float32 unit vectors.
        """
        super().__init__()
        self.cfg = cfg
        tokens = ItemTokens.from_arrays(arrays)
        d = cfg.meta_dim
        for f in FIELDS:
            self.register_buffer(f"tok_{f}", torch.from_numpy(getattr(tokens, f)).long())
        self.register_buffer("tok_temporal_sizes", torch.from_numpy(tokens.temporal_sizes).long())
        sizes = tokens.sizes
        self.genre_emb = nn.Embedding(sizes["genres"], d, padding_idx=0)
        self.subgenre_emb = nn.Embedding(sizes["subgenres"], d, padding_idx=0)
        self.cast_emb = nn.Embedding(sizes["cast"], d, padding_idx=0)
        self.crew_emb = nn.Embedding(sizes["crew"], d, padding_idx=0)
        self.temporal_emb = nn.ModuleList(
            nn.Embedding(int(n), d, padding_idx=0) for n in tokens.temporal_sizes.tolist()
        )
        tables = [self.genre_emb, self.subgenre_emb, self.cast_emb, self.crew_emb]
        tables += [t for t in self.temporal_emb if isinstance(t, nn.Embedding)]
        for emb in tables:
            nn.init.normal_(emb.weight, std=d**-0.5)
            with torch.no_grad():
                emb.weight[0].zero_()  # padding / unknown
        self.cast_pool, self.crew_pool = AttentionPool(d), AttentionPool(d)
        self.type_emb = nn.Embedding(len(SLOT_TYPES), d)
        nn.init.normal_(self.type_emb.weight, std=d**-0.5)
        self.meta_cls = nn.Parameter(torch.zeros(d))
        layer = nn.TransformerEncoderLayer(
            d, cfg.heads, 2 * d, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.meta = (
            nn.TransformerEncoder(layer, cfg.meta_layers, enable_nested_tensor=False)
            if cfg.meta_layers
            else None
        )
        self.text_proj: nn.Linear | None = None
        self.cross: CrossBlock | None = None
        if "text" in arrays:
            self.register_buffer("text", torch.from_numpy(arrays["text"]).float())
            self.text_proj = nn.Linear(arrays["text"].shape[1], cfg.text_tokens * d)  # (E -> Lt*d)
            if cfg.cross_attention:
                self.cross = CrossBlock(d, cfg.heads, cfg.dropout)
        parts = 2 if self.text_proj is not None else 1
        self.out = nn.Sequential(nn.LayerNorm(parts * d), nn.Linear(parts * d, cfg.dim))

    tok_genres: torch.Tensor
    tok_subgenres: torch.Tensor
    tok_cast: torch.Tensor
    tok_crew: torch.Tensor
    tok_temporal: torch.Tensor
    tok_temporal_sizes: torch.Tensor
    text: torch.Tensor

    def metadata_tokens(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Metadata sequence (V, M, d) of every title and its padding mask (V, M)."""
        v, d = self.tok_genres.shape[0], self.cfg.meta_dim
        types = self.type_emb.weight  # (len(SLOT_TYPES), d)
        cls = (self.meta_cls + types[0]).expand(v, 1, d)  # (V, 1, d)
        genre = self.genre_emb(self.tok_genres) + types[1]  # (V, G, d)
        sub = self.subgenre_emb(self.tok_subgenres) + types[2]  # (V, S, d)
        cast, has_cast = self.cast_pool(self.cast_emb(self.tok_cast), self.tok_cast > 0)  # (V, d)
        crew, has_crew = self.crew_pool(self.crew_emb(self.tok_crew), self.tok_crew > 0)  # (V, d)
        temporal = torch.stack(
            [emb(self.tok_temporal[:, j]) for j, emb in enumerate(self.temporal_emb)], 1
        )  # (V, 5, d)
        seq = torch.cat(
            [
                cls,
                genre,
                sub,
                (cast + types[3])[:, None],
                (crew + types[4])[:, None],
                temporal + types[5],
            ],
            1,
        )  # (V, M, d), M = 1 + G + S + 2 + 5
        real = torch.cat(
            [
                torch.ones(v, 1, dtype=torch.bool, device=seq.device),
                self.tok_genres > 0,
                self.tok_subgenres > 0,
                has_cast[:, None],
                has_crew[:, None],
                self.tok_temporal > 0,
            ],
            1,
        )  # (V, M); the [META] slot is always real, so no row attends to nothing
        return seq, ~real

    def forward(self) -> torch.Tensor:
        """Content vectors (V, d); row 0 (padding) is zero."""
        if self.cfg.checkpointing and self.training and torch.is_grad_enabled():
            out = checkpoint(self._encode, use_reentrant=False)
            assert isinstance(out, torch.Tensor)
            return out
        return self._encode()

    def _encode(self) -> torch.Tensor:
        m, m_pad = self.metadata_tokens()  # (V, M, d), (V, M)
        if self.meta is not None:
            m = self.meta(m, src_key_padding_mask=m_pad)  # (V, M, d)
        if self.text_proj is None:
            fused = m[:, 0]  # (V, d): the [META] slot
        else:
            v, d = m.shape[0], self.cfg.meta_dim
            t = self.text_proj(self.text).view(v, self.cfg.text_tokens, d)  # (V, Lt, d)
            t = t + self.type_emb.weight[6]
            if self.cross is not None:
                t, m = self.cross(t, m, m_pad)  # (V, Lt, d), (V, M, d)
            fused = torch.cat([t.mean(1), m[:, 0]], 1)  # (V, 2d)
        content = self.out(fused)  # (V, D): projected from d to dim
        keep = torch.arange(content.shape[0], device=content.device) > 0  # (V,)
        return content * keep[:, None]


class MultimodalNet(nn.Module):
    """Causal transformer over histories of (id + content) item vectors, tied output."""

    def __init__(self, n_items: int, cfg: MultimodalConfig, arrays: dict[str, np.ndarray]) -> None:
        """Args:
        n_items: items.size (padding included).
        arrays: the :class:`ItemEncoder` arrays plus ``seen`` (V,) float32: 1 for titles
            with a training event (they get an id embedding), 0 otherwise.
        """
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(n_items, cfg.dim, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=cfg.dim**-0.5)
        self.register_buffer("seen", torch.from_numpy(arrays["seen"]).float())
        self.item_encoder = ItemEncoder(cfg, arrays)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.dim) if cfg.positions == "learned" else None
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
        #: The table of the last training forward, reused by the loss (one encoder pass
        #: a step instead of two).
        self.last_table: torch.Tensor | None = None
        self._table: torch.Tensor | None = None
        self._table_key: tuple[tuple[int, int], ...] | None = None

    seen: torch.Tensor
    pos_table: torch.Tensor

    def item_table(self) -> torch.Tensor:
        """(V, D) item vectors: id embedding (zero for unseen titles) + content.

        At inference (eval mode, no grad) the table is kept until a weight changes
        (tensor version counters), so a request costs no pass of the item encoder.
        """
        cacheable = not self.training and not torch.is_grad_enabled()
        key = None  # no key while training: ``data_ptr`` would break a torch.compile graph
        if cacheable:
            key = tuple((p._version, p.data_ptr()) for p in self.parameters())
            if self._table_key == key and self._table is not None:
                return self._table
        table = self.item_encoder()  # (V, D)
        if self.cfg.id_embeddings:
            table = table + self.item_emb.weight * self.seen[:, None]  # (V, D)
        if cacheable:
            self._table, self._table_key = table, key
        return table

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, D) of right-padded sequences ``seq`` (B, T) (see SASRecNet)."""
        t = seq.shape[1]
        table = self.item_table()  # (V, D)
        self.last_table = table if self.training else None
        x = F.embedding(seq, table) * math.sqrt(self.cfg.dim)  # (B, T, D)
        if self.pos_emb is not None:
            x = x + self.pos_emb.weight[:t]  # (T, D) broadcast over B
        elif self.cfg.positions == "sinusoidal":
            x = x + self.pos_table[:t]
        x = self.emb_norm(self.emb_dropout(x))  # (B, T, D)
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=seq.device)  # (T, T)
        h = self.encoder(x, mask=causal, is_causal=True)  # (B, T, D)
        return self.final_norm(h)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Scores of every item for hidden states ``h`` (..., D) -> (..., V)."""
        return h @ self.item_table().T


class MultimodalRecommender(SequentialRecommender):
    """Next-title prediction over item vectors fused from text and metadata."""

    name = "multimodal"
    config_class = MultimodalConfig
    uses = frozenset({"text"})
    tuning_grid: ClassVar[list[dict[str, Any]]] = [
        {"dropout": d, "cross_attention": c} for d in (0.1, 0.2, 0.3) for c in (True, False)
    ]

    def __init__(self, config: Any | None = None) -> None:
        super().__init__(config)
        self._side_data: SideData | None = None
        self._seen: np.ndarray | None = None
        self.terms: RequestTerms | None = None
        self.term_titles = np.zeros(0, dtype=np.int64)  # titles the terms score

    def _read_side(self, side: SideData, device: str = "cpu") -> SideData:
        """What the model reads of ``side``: without ``use_kg`` the catalog alone, its
        texts encoded without the graph's facts."""
        if self.config.use_kg:
            return side
        side = side.without_kg()
        return side.with_text_vectors(device=device) if self.config.use_text else side

    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        side = self._read_side(side, options.device or "cpu")
        self._side_data = side
        seen = np.zeros(train.items.size, dtype=np.float32)
        seen[np.unique(train.item_idx)] = 1.0
        seen[0] = 0.0
        self._seen = seen
        try:
            report = super()._fit(train, valid=valid, side=side, options=options)
        finally:
            self._side_data = None
        assert self.net is not None
        self.net.last_table = None
        self.terms, self.term_titles = None, np.zeros(0, dtype=np.int64)
        if self.config.request_terms and (seen[1:] == 0).any():
            self._fit_terms(train, side, seen > 0)
            assert self.terms is not None
            report.notes["request_terms"] = self.terms.named()
        report.notes["content_only_titles"] = int((seen[1:] == 0).sum())
        report.notes["text"] = self.net.item_encoder.text_proj is not None
        return report

    def _fit_terms(self, train: Interactions, side: SideData, watched: np.ndarray) -> None:
        """Fit the request-time terms (``request_terms``) on a sample of the training
        positions (those whose next title has a training event), each a user vector
        against every watched title's row, and let them score the titles no training
        event reached."""
        from primetime.models.gnn import title_links  # gnn imports this module

        cfg, net = self.config, self.net
        assert net is not None
        inputs, targets = training_windows(train, cfg.max_len)  # (W, T) each
        times = window_times(train, cfg.max_len)  # (W, T) when each target was watched
        keep = (targets > 0) & watched[targets]  # (W, T)
        row, col = np.nonzero(keep)
        tcfg = TermsConfig(seed=cfg.seed)
        pick = np.random.default_rng(cfg.seed).permutation(len(row))[: tcfg.positions]
        row, col = row[pick], col[pick]
        wins, inv = np.unique(row, return_inverse=True)  # the windows the sample needs
        net.eval()
        users = torch.empty(len(row), cfg.dim)
        with torch.no_grad():
            # content only, as a title no training event reached is scored (its id
            # embedding is zero): against the watched titles' full rows the weights
            # learn what the ids carry (on ml-100k's new titles 0.082 against 0.116
            # without the terms; content only, README "New titles at the moment asked")
            table = net.item_encoder()  # (V, D)
            for start in range(0, len(wins), 256):
                h = net(torch.from_numpy(inputs[wins[start : start + 256]]))  # (b, T, D)
                sel = (inv >= start) & (inv < start + 256)
                users[torch.from_numpy(sel)] = h[inv[sel] - start, col[sel]].float()
        cand = torch.from_numpy(np.flatnonzero(watched))
        rows_c = table[cand].float()  # (C, D)
        sample = Positions(  # the sampled positions, in the order of ``users``
            torch.from_numpy(inputs),
            torch.from_numpy(row),
            torch.from_numpy(col),
            torch.from_numpy(times[row, col]),
        )
        links = title_links(side.kg, train.items, cfg.min_people_titles)
        facts = TitleFacts.of(release_days(side, 0, train.items.size), links)
        weights, alpha = fit_weights(
            facts,
            lambda idx: users[idx] @ rows_c.T,
            sample.histories,
            torch.from_numpy(times[row, col]),
            torch.from_numpy(targets[row, col]),
            cand,
            torch.zeros(len(cand)),
            tcfg,
        )
        self.terms = RequestTerms(facts, weights, alpha, cfg.max_len)
        self.term_titles = np.flatnonzero(~watched)[1:]  # row 0 is padding

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        out = super()._score(contexts)
        if self.terms is not None and len(self.term_titles):
            out[:, self.term_titles] += self.terms.scores(contexts, self.term_titles)
        return out

    def _prepare(self, train: Interactions, catalog: Catalog | None) -> None:
        cfg = self.config
        side = self._side_data if self._side_data is not None else SideData(catalog=catalog)
        n = train.items.size
        tokens = item_tokens(side, n, min_count=cfg.min_people_titles, max_people=cfg.max_people)
        # at most max_subgenres per title: the first columns (most titles have few)
        tokens = ItemTokens(
            genres=tokens.genres,
            subgenres=tokens.subgenres[:, : cfg.max_subgenres],
            cast=tokens.cast,
            crew=tokens.crew,
            temporal=tokens.temporal,
            temporal_sizes=tokens.temporal_sizes,
        )
        arrays = tokens.arrays()
        text = text_matrix(side, n) if cfg.use_text else None
        if text is not None:
            arrays["text"] = text
        assert self._seen is not None
        arrays["seen"] = self._seen
        self.side = arrays

    def _new_net(self, n_items: int) -> nn.Module:
        assert self.side is not None
        return MultimodalNet(n_items, self.config, self.side)

    def _loss(self, net: nn.Module, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Full-softmax cross-entropy over the table the forward pass just built."""
        table = unwrap(net).last_table
        emb = table if table is not None else unwrap(net).item_table()  # (V, D)
        logits = h @ emb.T  # (N, V)
        logits[:, 0] = -torch.inf  # padding is never a target
        # Titles with no training event are never a target either: as negatives they
        # would teach the content encoder that whatever only they have (the newest
        # year bucket, a new network) means "unwanted" (ml-100k --split cold-items:
        # NDCG@10 0.0108 with them, below random's 0.0271).
        unseen = unwrap(net).seen == 0  # (V,)
        return F.cross_entropy(logits.masked_fill(unseen, -torch.inf), y)

    def _extend(self, items: Vocabulary, side: SideData, n_old: int) -> bool:
        """A new title's item vector is its content vector (tokens in the learned ids, its
        text vector) plus a zero id embedding, as for a title nobody watched in training."""
        cfg = self.config
        net: MultimodalNet = self.net
        n_new = items.size
        side = self._read_side(side)  # as at fit
        grown = grow_content(
            net.item_encoder,
            side,
            n_old,
            n_new,
            min_count=cfg.min_people_titles,
            max_people=cfg.max_people,
        )
        if grown is None:
            return False
        net.seen = torch.cat([net.seen, torch.zeros(n_new - n_old, device=net.seen.device)])
        if self.terms is not None:  # the request-time terms score them: release days,
            # links to the fit's entities (shared cast, director) and to other titles
            days = release_days(side, n_old, n_new)
            self.terms.facts.grow(days, kg=side.kg, items=items)
            self.term_titles = np.concatenate([self.term_titles, np.arange(n_old, n_new)])
        net.item_emb = grow_embedding(net.item_emb, n_new)
        net._table, net._table_key = None, None
        return True

    def _state(self) -> dict[str, np.ndarray]:
        state = super()._state()
        if self.terms is not None:
            state.update(self.terms.arrays("terms."))
            state["terms.titles"] = self.term_titles
        return state

    def _restore(self, bundle: Bundle) -> None:
        # a bundle saved before the terms has none
        self.terms = RequestTerms.from_arrays(bundle.arrays, "terms.")
        self.term_titles = bundle.arrays.get("terms.titles", np.zeros(0, np.int64))
        bundle = dataclasses.replace(
            bundle, arrays={k: v for k, v in bundle.arrays.items() if not k.startswith("terms.")}
        )
        arrays: dict[str, np.ndarray] = {"seen": bundle.arrays["seen"]}
        for key, value in bundle.arrays.items():
            if key.startswith("item_encoder."):
                name = key.removeprefix("item_encoder.")
                if name.startswith("tok_") or name == "text":
                    arrays[name] = value
        self.side = arrays
        super()._restore(bundle)


def grow_content(
    module: Any, side: SideData, n_old: int, n_new: int, *, min_count: int, max_people: int
) -> ItemTokens | None:
    """Grow a content encoder's ``tok_*`` buffers (and its ``text`` rows, when it reads
    text) to the ``n_new`` titles of ``side``, the new ones' tokens in the learned ids;
    None, with nothing changed, when the new titles cannot be tokenised or their text
    vectors are missing. Shared by the multimodal and contrastive encoders."""
    tokens = ItemTokens.from_arrays(
        {
            **{f"tok_{f}": getattr(module, f"tok_{f}").cpu().numpy() for f in FIELDS},
            "tok_temporal_sizes": module.tok_temporal_sizes.cpu().numpy(),
        }
    )
    grown = extend_tokens(tokens, side, n_old, min_count=min_count, max_people=max_people)
    if grown is None:
        return None
    if module.text_proj is not None:
        tv = side.text_vectors
        if tv is None or tv.shape[0] != n_new or tv.shape[1] != module.text.shape[1]:
            return None
        new_rows = torch.from_numpy(np.asarray(tv[n_old:], np.float32))  # (n_new - n_old, T)
        module.text = torch.cat([module.text, new_rows])
    grow_buffers(module, grown)
    return grown


def grow_buffers(module: nn.Module, tokens: ItemTokens) -> None:
    """Replace a module's ``tok_*`` buffers by the (grown) ``tokens``."""
    for f in FIELDS:
        old = getattr(module, f"tok_{f}")
        setattr(module, f"tok_{f}", torch.from_numpy(getattr(tokens, f)).long().to(old.device))


def grow_embedding(emb: nn.Embedding, n: int) -> nn.Embedding:
    """``emb`` with rows up to ``n``, the new rows zero (same padding index and device)."""
    w = emb.weight.detach()
    out = nn.Embedding(n, w.shape[1], padding_idx=emb.padding_idx).to(w.device)
    with torch.no_grad():
        out.weight.zero_()
        out.weight[: w.shape[0]] = w
    return out
