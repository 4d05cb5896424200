"""Contrastive item encoder (SimCLR-style) over title metadata and text.

An encoder maps a title's content (genres, subgenres, cast, crew, temporal
tokens from :mod:`primetime.models.metadata`, and the sentence embedding of its
text) to a unit vector. It is trained with NT-Xent (Chen et al. 2020, "A Simple
Framework for Contrastive Learning of Visual Representations",
arXiv:2002.05709): two augmented views of a title (tokens dropped, the text
vector masked or noised, the year jittered) must find each other among the
batch's other views. Negatives sharing genres with the anchor weigh more in the
denominator (``hard_negatives``, after Robinson et al. 2021, "Contrastive
Learning with Hard Negative Samples", arXiv:2010.04592), and an optional
co-watch term makes two titles watched one after the other a positive pair, so
the space reflects taste as well as content. An optional next-title term
(``next_title``, off by default) trains the encoder for the score it serves:
the user vector at every position of a training history (the recency-weighted
mean below) must find the title that comes next among titles with a training
event (a never-watched title is nobody's negative).

A user is the recency-weighted mean of their history's item vectors; every title scores
by cosine to it. A title without a training event scores by the row of a content head
(``cold_head``, :mod:`primetime.models.coldhead`) plus the head's profile of the user's
history against the title (``head_profile``): on ml-100k ``--split cold-items`` (``--set
contrastive.epochs=2``) NDCG@10 0.0725 against random's 0.0271 (paired Wilcoxon p =
3.6e-06) and the genre profile's 0.0486 (p = 0.017); the head without the profile 0.0520
(p = 0.94 against the genre profile), no head 0.0241. The head's rows take the watched
encoder rows' centre and spread (a common scale and shift, which keeps each user's order
among them), and the head is saved with that map: a title added after training
(``extend_items``) scores by its head row so placed, as a never-watched title scores at
fit.
:meth:`ContrastiveRecommender.item_vectors` gives
the vectors to other models (to initialise an item table) and to the service
(content-similar titles). No id embedding: every title, watched or not, has a
vector from its content alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from primetime.artifacts import Bundle
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.vocab import Vocabulary
from primetime.models.base import FitOptions, FitReport, Recommender, mask_padding
from primetime.models.coldhead import (
    HEAD_FEATURES,
    ColdHead,
    Positions,
    adjust_choices,
    break_ties,
    check_head_options,
    choose_adjustment,
    head_overrides,
    head_rows,
    scale_and_shift,
    validates_head,
)
from primetime.models.metadata import FIELDS, ItemTokens, item_tokens, text_matrix
from primetime.models.sequential import training_windows, window_times
from primetime.models.titlecontext import TitleFacts, release_days
from primetime.training.loop import TrainConfig
from primetime.training.loop import train as run_training
from primetime.types import UserContext

if TYPE_CHECKING:  # gnn imports this module
    from primetime.models.gnn import TitleLinks


@dataclass(frozen=True)
class ContrastiveConfig:
    """Encoder, augmentation, loss and training settings.

    8 epochs of 1024: an epoch is every title once plus ~97k co-watch pairs of
    ml-100k, 60 s at batch 512 on a shared 2-core CPU. Measured with these defaults
    (``primetime benchmark --data ml-100k --models itemknn,contrastive --versus
    itemknn``): test NDCG@10 0.0507 +- 0.0098 (itemknn 0.0844, p = 1.5e-6), 355 s; a
    content-only model, meant as an item space more than as a ranker.

    Attributes:
        dim: Output (item vector) size.
        hidden: Width of the token embeddings and the MLP.
        use_text: Feed the text vector to the encoder.
        temperature: NT-Xent temperature.
        hard_negatives: Weigh in-batch negatives by ``1 + hard_weight * J`` where J is
            the genre Jaccard similarity to the anchor.
        hard_weight: Strength of that weighting.
        cowatch: Weight of the co-watch InfoNCE term (0: content views only).
        next_title: Weight of the next-title term (0 turns it off): each step also
            draws ``history_batch`` training windows of ``history_len`` titles, builds
            the user vector at every position exactly as :meth:`score` does (the
            recency-weighted mean of the titles so far, normalised) and asks it to find
            the next title by cosine / ``temperature`` among the batch's targets and
            ``negatives`` random titles, all with a training event (a title nobody
            watched is never a negative, so whatever only new titles have is not
            learned as "unwanted"). This trains the encoder for the score it serves.
            Off by default: at 1.0 on ml-100k ``--split cold-items`` (a scratch run, not
            a repo command) valid NDCG@10 rose from 0.059 (epoch 2) to 0.137 (epoch 6)
            but test stayed at random's level, 0.0272 (random 0.0271, p = 0.87; genre
            profile 0.0486), in 1187 s on a loaded machine; warm figures not measured.
        drop_tokens: Probability of dropping each genre / cast / crew token in a view.
        text_mask: Probability of zeroing a view's text vector.
        text_noise: Std of Gaussian noise added to the (unit) text vector of a view.
        year_jitter: A view's year bucket moves by up to this many buckets.
        recency_halflife: A user's i-th most recent title weighs ``0.5 ** (i / h)``
            (0: plain mean).
        max_people, min_people_titles, max_subgenres: Tokens kept per title (see
            :func:`~primetime.models.metadata.item_tokens`).
        cold_head: Score titles without a training event by a content head
            (:mod:`primetime.models.coldhead`) trained after the encoder: from the title's
            tokens (with the exact year), knowledge-graph entities, text and its encoder
            vector to a vector that the user vectors of every training position (built
            as :meth:`score` builds them) rank against the watched titles' head vectors,
            the title that came next first. The encoder's vectors (``item_vectors``, the
            content-similar titles) are not changed; only the scores of never-watched
            titles are.
        head_epochs, head_features, head_newest, head_profile, head_user_dropout,
        head_logit_adjust, head_context, head_valid: The head's training passes, inputs
            (``encoder`` adds this model's own vector of a title), new-title term, user
            profile, its dropout of the user vector, logit adjustment, request-time terms
            and whether each validation fits it, as for
            :class:`~primetime.models.gnn.GNNConfig`.
        epochs, batch_size, lr, weight_decay, warmup_epochs, patience, eval_every,
        grad_clip, seed, device: Training (see :class:`TrainConfig`).
    """

    dim: int = 64
    hidden: int = 128
    use_text: bool = True
    temperature: float = 0.1
    hard_negatives: bool = True
    hard_weight: float = 1.0
    cowatch: float = 1.0
    next_title: float = 0.0
    history_batch: int = 64
    history_len: int = 50
    negatives: int = 512
    drop_tokens: float = 0.3
    text_mask: float = 0.2
    text_noise: float = 0.05
    year_jitter: int = 1
    recency_halflife: float = 10.0
    max_people: int = 10
    min_people_titles: int = 2
    max_subgenres: int = 4
    cold_head: bool = True
    head_epochs: int = 4
    head_newest: float = 0.0
    head_profile: bool = True
    head_user_dropout: float = 0.5
    head_context: bool = True
    head_logit_adjust: str = "auto"
    head_valid: str = "auto"
    head_features: str = HEAD_FEATURES
    epochs: int = 8
    batch_size: int = 1024
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    patience: int = 3
    eval_every: int = 2
    grad_clip: float = 1.0
    seed: int = 42
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        for name in ("drop_tokens", "text_mask"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if min(self.cowatch, self.next_title, self.hard_weight, self.recency_halflife) < 0:
            raise ValueError("cowatch, next_title, hard_weight and recency_halflife must be >= 0")
        if self.history_batch < 1 or self.history_len < 2 or self.negatives < 1:
            raise ValueError("history_batch and negatives must be >= 1, history_len >= 2")

        check_head_options(
            self.head_features,
            self.head_newest,
            self.head_user_dropout,
            self.head_logit_adjust,
            self.head_valid,
        )

    def train_config(self) -> TrainConfig:
        return TrainConfig.of(self)


class Pairs(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Training examples ``(a, b)``: every title once with ``b = 0`` (content views only),
    then, with co-watch, every pair of titles consecutive in a history."""

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        self.a, self.b = torch.from_numpy(a), torch.from_numpy(b)

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a[i], self.b[i]


def cowatch_pairs(train: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` (N,) int64 each: title ``a`` followed by a different title ``b`` in a history."""
    indptr, order = train.user_histories()
    items = train.item_idx[order].astype(np.int64)
    a, b = items[:-1], items[1:]
    same_user = np.ones(len(a), dtype=bool)
    ends = indptr[1:-1] - 1  # the last event of a user, paired with the next user's first
    same_user[ends[ends >= 0]] = False
    keep = same_user & (a != b)
    return a[keep], b[keep]


def recency_weights(length: int, halflife: float) -> torch.Tensor:
    """(T, T) weights of title i in the user vector after position t: ``0.5 ** ((t - i) / h)``
    for i <= t, else 0 (``h = 0``: 1), as :meth:`ContrastiveRecommender.score` weighs a
    history."""
    steps = torch.arange(length)[:, None] - torch.arange(length)[None, :]  # (T, T) t - i
    w = 0.5 ** (steps.clamp(min=0) / halflife) if halflife > 0 else torch.ones(length, length)
    return w * (steps >= 0)


class ContrastiveNet(nn.Module):
    """Content encoder: token bags + projected text vector -> MLP -> unit vector."""

    def __init__(self, cfg: ContrastiveConfig, arrays: dict[str, np.ndarray]) -> None:
        """Args:
        arrays: ``tok_*`` tables of :class:`ItemTokens` and optionally ``text`` (V, E).
        """
        super().__init__()
        self.cfg = cfg
        tokens = ItemTokens.from_arrays(arrays)
        h = cfg.hidden
        for f in FIELDS:
            self.register_buffer(f"tok_{f}", torch.from_numpy(getattr(tokens, f)).long())
        self.register_buffer("tok_temporal_sizes", torch.from_numpy(tokens.temporal_sizes).long())
        genres = np.zeros((tokens.genres.shape[0], tokens.sizes["genres"]), np.float32)
        np.put_along_axis(genres, tokens.genres, 1.0, axis=1)
        genres[:, 0] = 0.0  # (V, G): genre multi-hot, for the hard-negative weights
        self.register_buffer("genre_hot", torch.from_numpy(genres), persistent=False)
        self.bags = nn.ModuleDict(
            {
                f: nn.Embedding(n, h, padding_idx=0)
                for f, n in tokens.sizes.items()  # genres, subgenres, cast, crew
            }
        )
        self.temporal = nn.ModuleList(
            nn.Embedding(int(n), h, padding_idx=0) for n in tokens.temporal_sizes.tolist()
        )
        self.text_proj: nn.Linear | None = None
        if "text" in arrays:
            self.register_buffer("text", torch.from_numpy(arrays["text"]).float())
            self.text_proj = nn.Linear(arrays["text"].shape[1], h)
        parts = len(self.bags) + 1 + (self.text_proj is not None)
        self.mlp = nn.Sequential(
            nn.Linear(parts * h, 2 * h), nn.GELU(), nn.LayerNorm(2 * h), nn.Linear(2 * h, cfg.dim)
        )

    tok_temporal: torch.Tensor
    tok_temporal_sizes: torch.Tensor
    genre_hot: torch.Tensor
    text: torch.Tensor

    def forward(self, items: torch.Tensor, *, augment: bool = False) -> torch.Tensor:
        """Unit vectors (N, dim) of titles ``items`` (N,); ``augment`` draws a random view."""
        cfg = self.cfg
        parts = []
        for f, emb in self.bags.items():
            tok = getattr(self, f"tok_{f}")[items]  # (N, K)
            keep = tok > 0
            if augment and cfg.drop_tokens > 0:
                keep = keep & (torch.rand(tok.shape, device=tok.device) >= cfg.drop_tokens)
            w = keep.float()  # (N, K)
            bag = (emb(tok) * w[:, :, None]).sum(1) / w.sum(1, keepdim=True).clamp(min=1.0)
            parts.append(bag)  # (N, h): mean of the kept tokens
        temporal = self.tok_temporal[items]  # (N, 5)
        if augment and cfg.year_jitter > 0:
            year = temporal[:, 0]
            shift = torch.randint(-cfg.year_jitter, cfg.year_jitter + 1, year.shape)
            moved = (year + shift.to(year.device)).clamp(1, int(self.tok_temporal_sizes[0]) - 1)
            temporal = torch.cat([torch.where(year > 0, moved, year)[:, None], temporal[:, 1:]], 1)
        parts.append(sum(emb(temporal[:, j]) for j, emb in enumerate(self.temporal)))  # (N, h)
        if self.text_proj is not None:
            text = self.text[items]  # (N, E)
            if augment:
                text = F.normalize(text + cfg.text_noise * torch.randn_like(text), dim=-1)
                text = text * (torch.rand(len(items), 1, device=text.device) >= cfg.text_mask)
            parts.append(self.text_proj(text))  # (N, h)
        z = self.mlp(torch.cat(parts, 1))  # (N, dim)
        return F.normalize(z, dim=-1)

    def all_vectors(self) -> torch.Tensor:
        """(V, dim) unit vectors of every title; row 0 (padding) zero."""
        items = torch.arange(self.tok_temporal.shape[0], device=self.tok_temporal.device)
        z = self.forward(items)  # (V, dim)
        z[0] = 0.0
        return z


def nt_xent(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float,
    *,
    same: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """NT-Xent of two views ``z1``, ``z2`` (B, D) of B titles.

    Args:
        same: (B, B) True where two rows are the same title (never negatives).
        weight: (B, B) >= 1 importance of row j as a negative of row i (hard negatives).
    """
    b = z1.shape[0]
    z = torch.cat([z1, z2], 0)  # (2B, D)
    logits = z @ z.T / temperature  # (2B, 2B)
    same2 = same.repeat(2, 2)  # (2B, 2B)
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)  # (2B,)
    positive = F.one_hot(target, 2 * b).bool()  # (2B, 2B)
    if weight is not None:  # log-weights on negatives only; the positive keeps its logit
        logits = logits + weight.repeat(2, 2).log().masked_fill(same2, 0.0)
    logits = logits.masked_fill(same2 & ~positive, -torch.inf)  # self and duplicates out
    return F.cross_entropy(logits, target)


def info_nce(
    za: torch.Tensor, zb: torch.Tensor, temperature: float, *, same: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE of pairs (za_i, zb_i) (B, D); ``same`` (B, B): rows with the
    same partner title, which are not negatives of each other."""
    logits = za @ zb.T / temperature  # (B, B)
    eye = torch.eye(len(za), dtype=torch.bool, device=za.device)
    logits = logits.masked_fill(same & ~eye, -torch.inf)
    target = torch.arange(len(za), device=za.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class ContrastiveRecommender(Recommender):
    """Cosine between a user's (recency-weighted) mean title vector and every title."""

    name = "contrastive"
    config_class = ContrastiveConfig
    uses = frozenset({"text"})
    tuning_grid: ClassVar[list[dict[str, Any]]] = [
        {"temperature": t, "cowatch": c} for t in (0.05, 0.1, 0.2) for c in (0.0, 1.0)
    ]

    def __init__(self, config: Any | None = None) -> None:
        super().__init__(config)
        self.net: ContrastiveNet | None = None
        self.vectors: np.ndarray | None = None  # (V, dim) float32 unit rows, row 0 zero
        #: (V, dim) rows scored: ``vectors`` with never-watched titles from the cold head
        self.score_vectors: np.ndarray | None = None
        #: the content head with its calibration (``cold_head``): rows of titles added later
        self.cold: ColdHead | None = None
        #: the head's logit adjustment, as chosen (``head_logit_adjust``)
        self.head_adjust = 0.0

    # ------------------------------------------------------------------ fit
    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        cfg = self.config
        n = train.items.size
        tokens = item_tokens(side, n, min_count=cfg.min_people_titles, max_people=cfg.max_people)
        arrays = tokens.arrays()
        arrays["tok_subgenres"] = tokens.subgenres[:, : cfg.max_subgenres]
        text = text_matrix(side, n) if cfg.use_text else None
        if text is not None:
            arrays["text"] = text
        torch.manual_seed(cfg.seed)
        self.net = net = ContrastiveNet(cfg, arrays)
        a = np.arange(1, n, dtype=np.int64)
        b = np.zeros(n - 1, dtype=np.int64)
        if cfg.cowatch > 0:
            ca, cb = cowatch_pairs(train)
            a, b = np.concatenate([a, ca]), np.concatenate([b, cb])

        ins, outs = training_windows(train, cfg.history_len)
        win_x, win_y = torch.from_numpy(ins), torch.from_numpy(outs)  # (W, T) each
        watched = torch.from_numpy(np.bincount(train.item_idx, minlength=n) > 0)  # (V,)
        watched[0] = False
        watched_idx = torch.nonzero(watched).squeeze(1)  # (M,)
        decay = recency_weights(cfg.history_len, cfg.recency_halflife)  # (T, T)
        gen = torch.Generator().manual_seed(cfg.seed)

        def next_title_loss(model: nn.Module) -> torch.Tensor:
            """Cross-entropy of each window position's next title, scored as served."""
            pick = torch.randint(len(win_x), (cfg.history_batch,), generator=gen)
            x, y = win_x[pick], win_y[pick]  # (B, T) right-padded; y: the next title
            negs = watched_idx[torch.randint(len(watched_idx), (cfg.negatives,), generator=gen)]
            titles, inv = torch.unique(torch.cat([x.ravel(), y.ravel(), negs]), return_inverse=True)
            dev = next(model.parameters()).device
            z = model(titles.to(dev))  # (n, dim) unit rows, no augmentation
            z = z * (titles > 0).to(z)[:, None]  # padding: a zero vector
            rows_x = inv[: x.numel()].view(x.shape)  # (B, T) rows of z
            rows_y = inv[x.numel() : 2 * x.numel()].view(y.shape)  # (B, T)
            w = decay.to(z) * (x > 0).to(z)[:, None, :]  # (B, T, T): t attends to i <= t
            users = F.normalize(w @ z[rows_x], dim=-1)  # (B, T, T) @ (B, T, dim) -> (B, T, dim)
            keep = y > 0
            target = rows_y[keep]  # (N,) rows of z
            cand = torch.unique(torch.cat([target, inv[2 * x.numel() :]]))  # (C,) sorted
            logits = users[keep.to(dev)] @ z[cand.to(dev)].T / cfg.temperature  # (N, C)
            return F.cross_entropy(logits, torch.searchsorted(cand, target).to(dev))

        score_valid = options.validator(train, valid)
        self.score_vectors, self.cold = None, None  # the encoder's rows until a head
        links = facts = None
        if cfg.cold_head:
            from primetime.models.gnn import title_links  # gnn imports this module

            links = title_links(side.kg, train.items, cfg.min_people_titles)
            facts = TitleFacts.of(release_days(side, 0, n), links)

        def fit_head(
            tau: float, head_inputs: tuple[torch.Tensor, torch.Tensor, Positions]
        ) -> tuple[np.ndarray, ColdHead | None]:
            assert links is not None and facts is not None
            self.score_vectors = self._cold_rows(
                train, side, head_inputs, watched, links, facts, tau
            )
            return self.score_vectors, self.cold

        validate = None
        if score_valid is not None:
            # the rows served: with the head where valid's targets are mostly new titles
            head_valid = cfg.cold_head and validates_head(cfg.head_valid, train, valid)

            def validate(model: nn.Module) -> float:
                self.vectors = self._encode_all()
                if head_valid:
                    tau = adjust_choices(cfg.head_logit_adjust, False)[0]
                    fit_head(tau, self._head_inputs(train, ins, outs, watched))
                return score_valid(self)

        def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            xa, xb = batch  # (B,), (B,)
            z1 = model(xa, augment=True)  # (B, dim)
            z2 = model(xa, augment=True)  # (B, dim)
            same = xa[:, None] == xa[None, :]  # (B, B)
            weight = None
            if cfg.hard_negatives:
                g = net.genre_hot[xa]  # (B, G)
                inter = g @ g.T  # (B, B) shared genres
                union = g.sum(1)[:, None] + g.sum(1)[None, :] - inter  # (B, B)
                weight = 1.0 + cfg.hard_weight * inter / union.clamp(min=1.0)
            loss = nt_xent(z1, z2, cfg.temperature, same=same, weight=weight)
            pair = xb > 0  # (B,)
            if cfg.cowatch > 0 and int(pair.sum()) > 1:
                za, pb = z1[pair], xb[pair]  # (P, dim), (P,)
                zb = model(pb, augment=True)  # (P, dim)
                loss = loss + cfg.cowatch * info_nce(
                    za, zb, cfg.temperature, same=pb[:, None] == pb[None, :]
                )
            if cfg.next_title > 0 and len(win_x):
                loss = loss + cfg.next_title * next_title_loss(model)
            return loss

        result = run_training(
            net,
            dataset=Pairs(a, b),
            loss_fn=loss_fn,
            validate=validate,
            config=cfg.train_config().on(options.device),
            run_dir=options.run_dir,
            resume=options.resume,
            model_config=cfg.__dict__,
            metric_name="valid NDCG@10",
        )
        net.to("cpu").eval()
        self.vectors = self._encode_all()
        self.score_vectors = None
        self.cold = None
        if cfg.cold_head:
            head_inputs = self._head_inputs(train, ins, outs, watched)  # the final vectors'
            self.head_adjust, (self.score_vectors, self.cold) = choose_adjustment(
                cfg.head_logit_adjust,
                None if score_valid is None else lambda: score_valid(self),
                lambda tau: fit_head(tau, head_inputs),
            )
        return FitReport(
            epochs=result.epochs_run,
            best_epoch=result.best_epoch,
            history=result.history,
            notes={
                "examples": len(a),
                "cowatch_pairs": int((b > 0).sum()),
                "text": net.text_proj is not None,
                "best_valid_ndcg10": result.best_metric,
                "head_logit_adjust": self.head_adjust,
                "head_terms": None
                if self.cold is None or self.cold.terms is None
                else self.cold.terms.named(),
            },
        )

    def _head_inputs(
        self, train: Interactions, ins: np.ndarray, outs: np.ndarray, watched: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, Positions]:
        """What the content head trains on: the user vector at every position of the
        training windows ``ins``, ``outs`` (W, T) whose next title is watched (built as
        :meth:`_score` builds a user), those titles, and the positions' histories."""
        assert self.vectors is not None
        z = torch.from_numpy(self.vectors)  # (V, dim)
        outs_t = torch.from_numpy(outs)
        keep = (outs_t > 0) & watched[outs_t]  # (W, T)
        decay = recency_weights(ins.shape[1], self.config.recency_halflife)  # (T, T)
        users = []
        for start in range(0, len(ins), 512):
            x = torch.from_numpy(ins[start : start + 512])
            w = decay * (x > 0).float()[:, None, :]  # (b, T, T)
            u = F.normalize(w @ z[x], dim=-1)  # (b, T, dim)
            users.append(u[keep[start : start + 512]])
        times = window_times(train, ins.shape[1])  # when each of ``outs`` was watched
        return torch.cat(users), outs_t[keep], Positions.of(ins, keep, times)

    def _cold_rows(
        self,
        train: Interactions,
        side: SideData,
        head_inputs: tuple[torch.Tensor, torch.Tensor, Positions],
        watched: torch.Tensor,
        links: TitleLinks,
        facts: TitleFacts,
        logit_adjust: float = 0.0,
    ) -> np.ndarray:
        """The encoder's vectors with every never-watched title's row replaced by the
        content head's (see ``cold_head``; fit on ``head_inputs`` of :meth:`_head_inputs`
        with ``logit_adjust``, the graph's ``links`` and the request-time terms'
        ``facts``), ``watched`` (V,) bool."""
        cfg = self.config
        assert self.vectors is not None
        z = torch.from_numpy(self.vectors)  # (V, dim)
        users, targets, positions = head_inputs
        head, replace, self.cold = head_rows(
            side,
            (links.item, links.entity),
            users,
            targets,
            watched,
            train,
            cfg,
            base=z,
            extra=self.vectors,
            place=scale_and_shift,
            positions=positions,
            logit_adjust=logit_adjust,
            facts=facts,
        )
        out = self.vectors.copy()
        cold = replace.numpy()  # never watched, with content; else the encoder's vector
        # The head's rows on the encoder's (coldhead.scale_and_shift): each user's order
        # among never-watched titles stays the head's, the order the cold-items
        # benchmark measures, and they sit among watched titles as an average title of
        # their content. Titles added after training get the same map (saved with the
        # head), so the service scores them as this fit scored its never-watched titles.
        rows = head[torch.from_numpy(cold)] @ self.cold.weight + self.cold.bias
        # titles with the same head row (the same genres) in the order of their vectors
        out[cold] = break_ties(rows, z[torch.from_numpy(cold)]).numpy()
        self.cold.place_profile(np.flatnonzero(cold), float(self.cold.weight[0, 0]))
        out[0] = 0.0
        return out

    def _encode_all(self) -> np.ndarray:
        assert self.net is not None
        was_training = self.net.training
        self.net.eval()
        with torch.no_grad():
            z = self.net.all_vectors().float().cpu().numpy()  # (V, dim)
        self.net.train(was_training)
        return z

    def refit_overrides(self, report: FitReport) -> dict[str, Any]:
        """The best epoch, and the head's logit adjustment valid chose."""
        pinned = super().refit_overrides(report)
        return {**pinned, **head_overrides(self.config.head_logit_adjust, report.notes)}

    # ---------------------------------------------------------------- score
    def item_vectors(self) -> np.ndarray:
        """(items.size, dim) float32 unit vectors of every title (row 0, padding, zero):
        to initialise another model's item table or find content-similar titles."""
        if self.vectors is None:
            raise RuntimeError(f"{self.name} is not fitted; call fit() or load() first")
        return self.vectors.copy()

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        assert self.vectors is not None
        z = self.vectors  # (V, dim) users are built from the encoder's vectors
        rows = self.score_vectors if self.score_vectors is not None else z  # titles scored
        h = self.config.recency_halflife
        users = np.zeros((len(contexts), z.shape[1]), dtype=np.float32)  # (B, dim)
        for row, c in enumerate(contexts):
            if not len(c.history):
                continue
            age = np.arange(len(c.history))[::-1]  # 0 for the most recent title
            w = 0.5 ** (age / h) if h > 0 else np.ones(len(c.history))  # (L,)
            users[row] = (w[:, None] * z[c.history]).sum(0) / w.sum()  # (dim,)
        norm = np.linalg.norm(users, axis=1, keepdims=True)  # (B, 1)
        users = users / np.maximum(norm, 1e-12)
        out = users @ rows.T  # (B, V); an empty history scores 0
        if self.cold is not None:  # the head's profile term on its titles
            self.cold.add_terms(out, contexts)
        return mask_padding(out)

    # -------------------------------------------------------- new titles
    def _extend(self, items: Vocabulary, side: SideData, n_old: int) -> bool:
        """A new title's vector: the encoder on its content (tokens in the learned ids,
        its text vector), without augmentation. The old vectors are kept as they are.

        With the content head (``cold_head``; a bundle saved before heads were kept has
        none) the new title scores by the head's row under the fit's common scale and
        shift (the head's map; a bundle saved while the map was a least-squares fit
        keeps that map), as a never-watched title of the training catalog scores by the
        head; its encoder vector still builds the histories it enters and
        :meth:`item_vectors`. A head reading the graph's entities cannot place a new
        title (the entity ids are the fit's): the encoder vector is scored then."""
        from primetime.models.multimodal import grow_content

        cfg = self.config
        net, vectors = self.net, self.vectors
        assert net is not None and vectors is not None
        n_new = items.size
        grown = grow_content(
            net, side, n_old, n_new, min_count=cfg.min_people_titles, max_people=cfg.max_people
        )
        if grown is None:
            return False
        genres = np.zeros((n_new, net.genre_hot.shape[1]), np.float32)
        np.put_along_axis(genres, grown.genres, 1.0, axis=1)
        genres[:, 0] = 0.0
        net.genre_hot = torch.from_numpy(genres)
        net.eval()
        with torch.no_grad():
            z = net(torch.arange(n_old, n_new)).float().cpu().numpy()  # (n_new - n_old, dim)
        self.vectors = np.concatenate([vectors, z]).astype(np.float32)
        if self.score_vectors is not None:  # a new title scores by the head, else its vector
            rows = z.copy()
            if self.cold is not None:
                head = self.cold.new_rows(
                    side,
                    n_old,
                    n_new,
                    min_count=cfg.min_people_titles,
                    max_people=cfg.max_people,
                    extra=z,
                )
                if head is not None:
                    has = torch.from_numpy(head.has)
                    rows[head.has] = break_ties(head.rows[has], torch.from_numpy(z)[has]).numpy()
                    self.cold.append(
                        head,
                        scored=n_old + np.flatnonzero(head.has),
                        release_day=release_days(side, n_old, n_new),
                        kg=side.kg,
                        items=items,
                    )
            self.score_vectors = np.concatenate([self.score_vectors, rows]).astype(np.float32)
        return True

    # ---------------------------------------------------------- save / load
    def _state(self) -> dict[str, np.ndarray]:
        assert self.net is not None and self.vectors is not None
        state = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        state["vectors"] = self.vectors
        if self.score_vectors is not None:
            state["score_vectors"] = self.score_vectors
        if self.cold is not None:
            state.update(self.cold.arrays())
        return state

    def _restore(self, bundle: Bundle) -> None:
        net_state = {
            k.removeprefix("net."): v for k, v in bundle.arrays.items() if k.startswith("net.")
        }
        arrays = {k: v for k, v in net_state.items() if k.startswith("tok_") or k == "text"}
        self.net = ContrastiveNet(self.config, arrays)
        self.net.load_state_dict({k: torch.from_numpy(v) for k, v in net_state.items()})
        self.net.eval()
        self.vectors = bundle.arrays["vectors"]
        self.score_vectors = bundle.arrays.get("score_vectors")
        # None in a bundle saved before heads were kept: a new title scores by its vector
        self.cold = ColdHead.from_arrays(bundle.arrays)
