"""Neural Collaborative Filtering: NeuMF (He et al. 2017, arXiv:1708.05031).

A GMF branch (element-wise product of user and item vectors) and an MLP
branch (user and item vectors concatenated, through pre-activation residual
blocks with BatchNorm and dropout) are added on top of global, user and item
biases::

    f(u, i) = mu + b_u + b_i + sum_k (p_u + h_u)[k] q_i[k]  +  w . MLP([h'_u ; q'_i])

Two models share the network and almost all code; they differ in task, loss
and validation metric (this file stays whole, a little over 600 lines, so the
shared config, net and fit are read once beside both recommenders):

* ``ncf`` (``task = "rating"``): squared error on explicit ratings, early
  stopping on valid RMSE. When ``fit`` gets no rated ``valid`` it holds out
  ``valid_share`` of the training ratings (as :mod:`primetime.models.mf` does),
  and with ``refit`` then trains a fresh net on all training ratings for the
  best number of epochs, so the held-out share is used for selection only
  and not lost to training.
* ``ncf-implicit`` (``task = "topn"``): every interaction is a positive,
  ``negatives`` uniformly sampled negatives per positive (a sample the user
  has is dropped from the loss), BCE (the paper's loss) or BPR; early
  stopping on valid NDCG@10 of the evaluation protocol (full ranking).

**A user is their history.** ``h_u`` is the mean of *history* embeddings
``y_j`` over the user's history, as in SVD++ (Koren 2008) and FISM (Kabbur
et al. 2013)::

    h_u(i) = mean_{j in H(u), j != i} y_j

The item being scored is left out of the mean (FISM's rule): otherwise a
training positive would always find itself in the history, the network could
learn "score what is already there", and that never holds at test time, where
the target is not in the history. Because every training user is represented
this way, folding in a user the model has never seen is exact and cheap:
``p_u = 0`` (user index 0, the zero padding row), ``b_u = 0``, and the same
mean over the items of their context. The mean is over *which* titles, not
their ratings: weighting the history by rating residuals (Koren's integrated
model) was measured on ml-100k valid and did not help, neither known users
(RMSE 0.8888 vs 0.8874) nor folded-in ones (0.9336 vs 0.9273). The rating
model folds in an unseen user's bias from their ratings instead, as the
shrunk mean residual ``sum(r_j - mu - b_j) / (n + 5)`` (as mf.py does).

Two departures from the paper, both measured on ml-100k ratings (valid RMSE):

* The GMF product enters as a plain dot product, not through a learned weight
  vector: with a learned weight the per-example L2 on the embeddings is void
  (the scale moves into the weight) and the model overfits (0.907 vs 0.899).
* The MLP sees the user only through their history (``h'_u``, the MLP part of
  ``h_u``), not a free user embedding: with one it overfits as the learning
  rate decays however it is regularised (BatchNorm makes it blind to the
  embeddings' L2; 0.8984 vs 0.8903). Free per-user parameters live in the
  (L2-bounded) GMF dot product only.

Three parts: :class:`NCFConfig` (frozen, with the training settings),
:class:`NCFNet` (tensors in, tensors out) and the recommenders
:class:`NCFRecommender` / :class:`NCFImplicitRecommender` on a shared base
(vocabularies, histories, fit through :func:`primetime.training.loop.train`,
score, save / load).
"""

from __future__ import annotations

import dataclasses
import logging
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from primetime.artifacts import Bundle
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.models.base import FitOptions, FitReport, Recommender, mask_padding
from primetime.models.histories import Histories
from primetime.training.loop import TrainConfig, TrainResult, resolve_device
from primetime.training.loop import train as run_training
from primetime.training.rows import Rows, as_batch
from primetime.types import UserContext

log = logging.getLogger(__name__)

LOSSES = ("bce", "bpr")
#: Shrinkage (in pseudo-ratings) of a folded-in user's bias, as in mf.py.
BIAS_SHRINK = 5.0
#: Scored (user, item) pairs per forward pass when ranking the catalog.
SCORE_PAIRS = 1 << 16


@dataclass(frozen=True)
class NCFConfig:
    """Model and training settings; defaults are those tuned for ``ncf`` (ratings).

    Attributes:
        gmf_dim: Size of the GMF user and item vectors.
        mlp_dim: Size of the MLP branch's user and item vectors (each).
        hidden: Width of the MLP's residual blocks.
        blocks: Residual blocks (pre-activation: BatchNorm, ReLU, dropout, linear).
        dropout: Dropout in the MLP blocks and on the GMF product.
        reg: L2 weight on the embeddings and biases each example touches
            (Funk-SVD style, in the loss: the engine's AdamW decay skips embeddings).
        loss: "bce" or "bpr" (``ncf-implicit`` only).
        negatives: Sampled negatives per positive (``ncf-implicit`` only).
        valid_share: Share of the training ratings held out for early stopping
            when ``fit`` gets no rated ``valid`` (``ncf`` only).
        refit: After early stopping on that held-out share, train a fresh net on
            all training ratings for the best number of epochs (``ncf`` only).
        single_thread: Train with one torch thread on CPU (see ``_fit``).
        epochs, batch_size, lr, weight_decay, warmup_epochs, min_lr_ratio,
        patience, eval_every, grad_clip, seed, device: Training, see
            :class:`~primetime.training.loop.TrainConfig`.
    """

    gmf_dim: int = 64
    mlp_dim: int = 32
    hidden: int = 64
    blocks: int = 2
    dropout: float = 0.3
    reg: float = 0.1
    loss: str = "bce"
    negatives: int = 4
    valid_share: float = 0.1
    refit: bool = True
    single_thread: bool = True
    epochs: int = 15
    batch_size: int = 512
    lr: float = 5e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.0
    patience: int = 4
    eval_every: int = 1
    grad_clip: float = 1.0
    seed: int = 42
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("gmf_dim", "mlp_dim", "hidden", "negatives"):
            if getattr(self, name) < 1:
                raise ValueError(f"NCFConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.blocks < 0:
            raise ValueError(f"NCFConfig.blocks must be >= 0, got {self.blocks}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"NCFConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.reg < 0:
            raise ValueError(f"NCFConfig.reg must be >= 0, got {self.reg}")
        if self.loss not in LOSSES:
            raise ValueError(f"NCFConfig.loss must be one of {LOSSES}, got {self.loss!r}")
        if not 0 < self.valid_share < 1:
            raise ValueError(f"NCFConfig.valid_share must be in (0, 1), got {self.valid_share}")

    def train_config(self) -> TrainConfig:
        return TrainConfig.of(self)


@dataclass(frozen=True)
class NCFImplicitConfig(NCFConfig):
    """The same settings with the defaults tuned for ``ncf-implicit`` (top-N)."""

    reg: float = 0.01
    negatives: int = 8


# ====================================================================== net
class ResidualBlock(nn.Module):
    """``x + Linear(Dropout(ReLU(BatchNorm(x))))`` (pre-activation, He et al. 2016)."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(width)
        self.drop = nn.Dropout(dropout)
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(self.drop(F.relu(self.norm(x))))  # (N, W)


class NCFNet(nn.Module):
    """NeuMF over (user, candidate item) pairs; users are an embedding plus their history.

    Index 0 of both vocabularies is padding: user 0 stands for "a user the
    model has not seen" (zero embedding, zero bias), item 0 is never a history
    entry.
    """

    mu: torch.Tensor  # global mean rating (0 for implicit feedback), a buffer

    def __init__(self, n_users: int, n_items: int, cfg: NCFConfig, *, mu: float = 0.0) -> None:
        """Args:
        n_users, n_items: Vocabulary sizes including padding (``.size``).
        cfg: Sizes and dropout.
        mu: Global mean rating (0 for implicit feedback).
        """
        super().__init__()
        self.gmf_dim, self.mlp_dim = cfg.gmf_dim, cfg.mlp_dim
        dim = cfg.gmf_dim + cfg.mlp_dim  # GMF part first, MLP part second
        self.user_emb = nn.Embedding(n_users, cfg.gmf_dim, padding_idx=0)
        self.item_emb = nn.Embedding(n_items, dim, padding_idx=0)
        self.hist_emb = nn.Embedding(n_items, dim, padding_idx=0)
        self.user_bias = nn.Embedding(n_users, 1, padding_idx=0)
        self.item_bias = nn.Embedding(n_items, 1, padding_idx=0)
        self.register_buffer("mu", torch.tensor(float(mu)))
        tables = (self.user_emb, self.item_emb, self.hist_emb)
        for emb in tables:
            nn.init.normal_(emb.weight, std=0.05)
        for emb in (self.user_bias, self.item_bias):
            nn.init.zeros_(emb.weight)
        with torch.no_grad():
            for emb in tables:
                emb.weight[0].zero_()
        self.mlp_in = nn.Linear(2 * cfg.mlp_dim, cfg.hidden)
        self.blocks = nn.ModuleList(
            ResidualBlock(cfg.hidden, cfg.dropout) for _ in range(cfg.blocks)
        )
        self.mlp_norm = nn.BatchNorm1d(cfg.hidden)
        self.gmf_drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, 1)

    def forward(
        self,
        users: torch.Tensor,
        cand: torch.Tensor,
        bag_items: torch.Tensor,
        bag_lens: torch.Tensor,
        mult: torch.Tensor,
        bias_offset: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of candidate items for B users.

        Args:
            users: (B,) user_idx; 0 = unseen user (no embedding, no bias).
            cand: (B, C) candidate item_idx per user.
            bag_items: (L,) the users' history item_idx, concatenated user after user.
            bag_lens: (B,) history length of each user (sums to L).
            mult: (B, C) float, how often each candidate occurs in its user's
                history; those occurrences are left out of that pair's mean.
            bias_offset: (B,) added to each user's bias (a folded-in bias), or None.

        Returns:
            ``(scores, l2)``, each (B, C): predicted rating (or logit) and the
            squared norms of the embeddings and biases the pair touches.
        """
        b, c = cand.shape
        g = self.gmf_dim
        offsets = torch.cumsum(bag_lens, 0) - bag_lens  # (B,) start of each bag
        total = F.embedding_bag(bag_items, self.hist_emb.weight, offsets, mode="sum")  # (B, D)
        y = self.hist_emb(cand)  # (B, C, D)
        others = (bag_lens[:, None] - mult).clamp(min=1)  # (B, C) history size without the item
        hist = (total[:, None, :] - mult[..., None] * y) / others[..., None]  # (B, C, D) the mean
        p = self.user_emb(users)  # (B, G)
        q = self.item_emb(cand)  # (B, C, D)
        # GMF: id + history; a plain dot product (see the module docstring)
        gmf = self.gmf_drop((p[:, None, :] + hist[..., :g]) * q[..., :g]).sum(-1)  # (B, C)
        # MLP: the user is their history only
        x = torch.cat([hist[..., g:], q[..., g:]], dim=-1).reshape(b * c, 2 * self.mlp_dim)
        h = self.mlp_in(x)  # (BC, H)
        for block in self.blocks:
            h = block(h)
        h = F.relu(self.mlp_norm(h))  # (BC, H)
        out = gmf + self.head(h).view(b, c)  # (B, C)
        bu = self.user_bias(users).squeeze(-1)  # (B,)
        if bias_offset is not None:
            bu = bu + bias_offset
        bi = self.item_bias(cand).squeeze(-1)  # (B, C)
        scores = self.mu + bu[:, None] + bi + out
        l2 = (
            (p * p).sum(-1)[:, None]
            + (q * q).sum(-1)
            + (y * y).sum(-1)
            + (bu * bu)[:, None]
            + bi * bi
        )  # (B, C)
        return scores, l2


LossFn = Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor]


@dataclass
class _Plan:
    """One run of the training engine.

    Attributes:
        mu: Global mean rating the net adds (0 for implicit feedback).
        dataset: Training examples.
        loss_fn: ``loss_fn(net, batch)`` -> scalar.
        validate: ``validate(net)`` -> metric (higher is better), or None.
        metric: Label of the metric.
        refit: A run on all of train, for the best number of epochs of this one, or None.
    """

    mu: float
    dataset: Rows
    loss_fn: LossFn
    validate: Callable[[nn.Module], float] | None
    metric: str
    refit: _Plan | None = None


# ============================================================ recommenders
class _NCFBase(Recommender):
    """What ``ncf`` and ``ncf-implicit`` share: the net, histories, fit, score, save."""

    config_class: ClassVar[type] = NCFConfig

    def __init__(self, config: NCFConfig | None = None) -> None:
        super().__init__(config)
        self.net: NCFNet | None = None
        self.histories: Histories | None = None  # full training histories of known users

    # --------------------------------------------------------- subclass hooks
    @abstractmethod
    def _prepare(
        self, train: Interactions, valid: Interactions | None, options: FitOptions
    ) -> _Plan:
        """What to train on, how, and how to validate."""

    def _bias_offsets(self, contexts: Sequence[UserContext], known: np.ndarray) -> np.ndarray:
        """(B,) folded-in bias per context (zero unless a subclass folds one in)."""
        return np.zeros(len(contexts), dtype=np.float32)

    # ------------------------------------------------------------------- fit
    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        cfg = self.config
        threads = torch.get_num_threads()
        if cfg.single_thread and resolve_device(options.device or cfg.device).type == "cpu":
            # Every step is a handful of small ops on ~512 x 64 tensors, too small
            # to split across threads: the fork/join and spin-waiting of intra-op
            # threads cost more than they save, and badly so on a shared machine
            # (ml-100k ratings, 2 busy cores: 3.1 s/epoch with 1 thread, 26-40 s
            # with 2). The previous setting is restored afterwards.
            torch.set_num_threads(1)
        try:
            plan = self._prepare(train, valid, options)
            result = self._run(train, plan, cfg.train_config().on(options.device), options)
            refit = None
            if plan.refit is not None and result.best_epoch >= 1:
                log.info(
                    "%s: refit on all training rows for %d epochs", self.name, result.best_epoch
                )
                tc = dataclasses.replace(
                    cfg.train_config().on(options.device), epochs=result.best_epoch
                )
                refit = self._run(train, plan.refit, tc, FitOptions(device=options.device))
        finally:
            torch.set_num_threads(threads)
        assert self.net is not None
        self.net.to("cpu").eval()
        self.histories = Histories.of(train)
        notes: dict[str, Any] = {
            "examples_per_second": result.examples_per_second,
            "seconds_per_epoch": result.seconds / max(result.epochs_run, 1),
            f"best_{plan.metric.replace(' ', '_')}": result.best_metric,
        }
        if refit is not None:
            notes.update(refit_epochs=refit.epochs_run, refit_seconds=refit.seconds)
        return FitReport(
            epochs=result.epochs_run,
            best_epoch=result.best_epoch,
            history=result.history,
            notes=notes,
        )

    def _run(
        self, train: Interactions, plan: _Plan, tc: TrainConfig, options: FitOptions
    ) -> TrainResult:
        """A fresh net trained by the engine; it is ``self.net`` (so validation can score)."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        self.net = NCFNet(train.users.size, train.items.size, cfg, mu=plan.mu)
        return run_training(
            self.net,
            dataset=plan.dataset,
            loss_fn=plan.loss_fn,
            validate=plan.validate,
            config=tc,
            collate_fn=as_batch,
            run_dir=options.run_dir,
            resume=options.resume,
            model_config=cfg.__dict__,
            metric_name=plan.metric,
        )

    # ----------------------------------------------------------------- score
    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        assert self.net is not None and self.users is not None
        net = self.net
        net.eval()
        device = next(net.parameters()).device
        n_items = net.item_emb.num_embeddings
        known = np.array(
            [c.user_idx is not None and 1 <= c.user_idx <= len(self.users) for c in contexts],
            dtype=bool,
        )
        users = np.array([c.user_idx if k else 0 for c, k in zip(contexts, known, strict=True)])
        offsets = self._bias_offsets(contexts, known)
        out = np.empty((len(contexts), n_items), dtype=np.float32)
        step = max(1, SCORE_PAIRS // n_items)
        all_items = torch.arange(n_items, device=device)
        with torch.no_grad():
            for s in range(0, len(contexts), step):
                chunk = contexts[s : s + step]
                lens = np.array([len(c.history) for c in chunk], dtype=np.int64)
                bag = np.concatenate([c.history for c in chunk])  # (L,)
                mult = np.zeros((len(chunk), n_items), dtype=np.float32)  # (b, V)
                np.add.at(mult, (np.repeat(np.arange(len(chunk)), lens), bag), 1.0)
                scores, _ = net(
                    torch.as_tensor(users[s : s + step], dtype=torch.int64, device=device),
                    all_items.expand(len(chunk), n_items),  # (b, V) every item is a candidate
                    torch.as_tensor(bag, dtype=torch.int64, device=device),
                    torch.as_tensor(lens, device=device),
                    torch.as_tensor(mult, device=device),
                    torch.as_tensor(offsets[s : s + step], device=device),
                )  # (b, V)
                out[s : s + len(chunk)] = scores.float().cpu().numpy()
        return mask_padding(out)

    def _predict_pairs(
        self, net: NCFNet, histories: Histories, users: np.ndarray, items: np.ndarray
    ) -> torch.Tensor:
        """(N,) net outputs for known (user_idx, item_idx) pairs, histories from ``histories``."""
        device = next(net.parameters()).device
        histories.to(device)
        out = []
        for s in range(0, len(users), 1024):
            u = torch.as_tensor(users[s : s + 1024], dtype=torch.int64, device=device)
            i = torch.as_tensor(items[s : s + 1024], dtype=torch.int64, device=device)[:, None]
            out.append(net(u, i, *histories.bags(u), histories.multiplicity(u, i))[0][:, 0])
        return torch.cat(out) if out else torch.zeros(0, device=device)

    # ---------------------------------------------------------- save / load
    def _state(self) -> dict[str, np.ndarray]:
        assert self.net is not None and self.histories is not None
        out = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        out["hist_indptr"] = self.histories.indptr.cpu().numpy()
        out["hist_items"] = self.histories.items.cpu().numpy()
        return out

    def _restore(self, bundle: Bundle) -> None:
        a = bundle.arrays
        n_users, n_items = a["net.user_emb.weight"].shape[0], a["net.item_emb.weight"].shape[0]
        self.net = NCFNet(n_users, n_items, self.config, mu=float(a["net.mu"]))
        self.net.load_state_dict(
            {k[4:]: torch.from_numpy(v) for k, v in a.items() if k.startswith("net.")}
        )
        self.net.eval()
        self.histories = Histories(a["hist_indptr"], a["hist_items"], n_items)


def _rating_rows(inter: Interactions) -> Rows:
    """(user_idx, item_idx, rating) training rows."""
    return Rows(
        torch.from_numpy(inter.user_idx.astype(np.int64)),
        torch.from_numpy(inter.item_idx.astype(np.int64)),
        torch.from_numpy(inter.rating),
    )


def _rating_loss(hist: Histories, reg: float) -> LossFn:
    """Squared error plus ``reg`` x the L2 of what each example touches."""

    def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        u, i, r = batch  # (B,), (B,), (B,)
        if len(u) == 1:  # BatchNorm cannot train on one row; the engine keeps a last
            u, i, r = u.repeat(2), i.repeat(2), r.repeat(2)  # batch of 1 (drop_last=False)
        hist.to(u.device)
        cand = i[:, None]  # (B, 1)
        pred, l2 = net(u, cand, *hist.bags(u), hist.multiplicity(u, cand))  # (B, 1) each
        return ((pred[:, 0] - r) ** 2 + reg * l2[:, 0]).mean()

    return loss_fn


class NCFRecommender(_NCFBase):
    """NeuMF rating model: MSE on explicit ratings, early-stopped on valid RMSE."""

    name = "ncf"
    task = "rating"
    config_class = NCFConfig
    tuning_grid: ClassVar[list[dict[str, Any]]] = [
        {"reg": r, "dropout": d} for r in (0.05, 0.1) for d in (0.3, 0.5)
    ]

    def __init__(self, config: NCFConfig | None = None) -> None:
        super().__init__(config)
        self.rating_range = (1.0, 5.0)

    def _prepare(
        self, train: Interactions, valid: Interactions | None, options: FitOptions
    ) -> _Plan:
        cfg = self.config
        if not train.has_ratings:
            raise ValueError("ncf needs explicit ratings; this training log has none")
        self.rating_range = (float(np.nanmin(train.rating)), float(np.nanmax(train.rating)))
        lo, hi = self.rating_range
        rated_rows = np.flatnonzero(~np.isnan(train.rating))
        held_out = valid is None or not len(valid) or np.isnan(valid.rating).all()
        if held_out and not options.select:
            # settings already chosen: every rating is learned from, for cfg.epochs
            rated = train.take(rated_rows)
            loss_all = _rating_loss(Histories.of(train), cfg.reg)
            return _Plan(float(rated.rating.mean()), _rating_rows(rated), loss_all, None, "final")
        keep = np.ones(len(train), dtype=bool)  # rows in the training histories
        if held_out:
            perm = np.random.default_rng(cfg.seed).permutation(rated_rows.size)
            n_va = max(1, int(rated_rows.size * cfg.valid_share))
            keep[rated_rows[perm[:n_va]]] = False  # held-out ratings are not history either
            tr, va = train.take(keep & ~np.isnan(train.rating)), train.take(~keep)
        else:
            assert valid is not None
            tr, va = train.take(rated_rows), valid.take(~np.isnan(valid.rating))
        mu = float(tr.rating.mean())
        hist = Histories.of(train.take(keep))
        vu, vi = va.user_idx.astype(np.int64), va.item_idx.astype(np.int64)
        vr = torch.from_numpy(va.rating)

        def validate(net: nn.Module) -> float:
            assert isinstance(net, NCFNet)
            pred = self._predict_pairs(net, hist, vu, vi).clamp(lo, hi).cpu()
            return -float(((pred - vr) ** 2).mean().sqrt())  # higher is better: -RMSE

        plan = _Plan(mu, _rating_rows(tr), _rating_loss(hist, cfg.reg), validate, "valid -RMSE")
        if held_out and cfg.refit:
            # the held-out share has chosen the epochs; now learn from all ratings
            rated = train.take(rated_rows)
            loss_all = _rating_loss(Histories.of(train), cfg.reg)  # = self.histories after fit
            plan.refit = _Plan(
                float(rated.rating.mean()), _rating_rows(rated), loss_all, None, "refit"
            )
        return plan

    def _bias_offsets(self, contexts: Sequence[UserContext], known: np.ndarray) -> np.ndarray:
        """An unseen user's bias: the shrunk mean residual of their ratings over mu + b_j."""
        assert self.net is not None
        out = np.zeros(len(contexts), dtype=np.float32)
        mu = float(self.net.mu)
        b_item = self.net.item_bias.weight.detach().cpu().numpy()[:, 0]  # (V,)
        for row, c in enumerate(contexts):
            if known[row] or c.ratings is None:
                continue
            ok = np.isfinite(c.ratings)
            if ok.any():
                resid = c.ratings[ok] - mu - b_item[c.history[ok]]  # (L,)
                out[row] = resid.sum() / (ok.sum() + BIAS_SHRINK)
        return out

    def predict_ratings(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Predicted ratings (N,) for pairs of training-vocabulary indices, clamped to
        the training range; the users' histories are their training histories."""
        self._require_fitted()
        assert self.net is not None and self.histories is not None
        self.net.eval()
        with torch.no_grad():
            pred = self._predict_pairs(
                self.net,
                self.histories,
                np.asarray(user_idx, dtype=np.int64),
                np.asarray(item_idx, dtype=np.int64),
            )
        return pred.clamp(*self.rating_range).cpu().numpy()

    def _state(self) -> dict[str, np.ndarray]:
        out = super()._state()
        out["rating_range"] = np.asarray(self.rating_range, dtype=np.float32)
        return out

    def _restore(self, bundle: Bundle) -> None:
        super()._restore(bundle)
        lo, hi = bundle.arrays["rating_range"]
        self.rating_range = (float(lo), float(hi))


class NCFImplicitRecommender(_NCFBase):
    """NeuMF top-N model: sampled negatives, BCE or BPR, early-stopped on valid NDCG@10."""

    name = "ncf-implicit"
    task = "topn"
    config_class = NCFImplicitConfig
    tuning_grid: ClassVar[list[dict[str, Any]]] = [
        {"reg": r, "negatives": n} for r in (0.003, 0.01) for n in (4, 8)
    ]

    def _prepare(
        self, train: Interactions, valid: Interactions | None, options: FitOptions
    ) -> _Plan:
        cfg = self.config
        fit_on = train
        if (valid is None or not len(valid)) and options.select and options.validation:
            # No valid given (e.g. a tuning trial): hold out each user's last event.
            inner = leave_one_out(train)
            fit_on, valid = inner.train_valid(), inner.test
        score_valid = options.validator(fit_on, valid)
        validate = None
        if score_valid is not None:

            def validate(_: nn.Module) -> float:
                return score_valid(self)

        hist = Histories.of(fit_on)
        n_items = fit_on.items.size
        gen = torch.Generator().manual_seed(cfg.seed)

        def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            u, pos = batch  # (B,), (B,)
            hist.to(u.device)
            neg = torch.randint(1, n_items, (len(u), cfg.negatives), generator=gen)  # (B, K)
            cand = torch.cat([pos[:, None], neg.to(u.device)], dim=1)  # (B, 1 + K)
            mult = hist.multiplicity(u, cand)  # (B, 1 + K)
            s, l2 = net(u, cand, *hist.bags(u), mult)  # (B, 1 + K) each
            real_neg = (mult[:, 1:] == 0).float()  # a "negative" the user has is no negative
            if cfg.loss == "bce":
                pos_loss = F.softplus(-s[:, 0])  # -log sigmoid(s+)
                neg_loss = (F.softplus(s[:, 1:]) * real_neg).sum(1)  # -log(1 - sigmoid(s-))
                data = (pos_loss + neg_loss).mean()
            else:  # bpr: -log sigmoid(s+ - s-), averaged over real negatives
                pair = F.softplus(s[:, 1:] - s[:, :1]) * real_neg  # (B, K)
                data = pair.sum() / real_neg.sum().clamp(min=1.0)
            return data + cfg.reg * l2.mean()

        dataset = Rows(
            torch.from_numpy(fit_on.user_idx.astype(np.int64)),
            torch.from_numpy(fit_on.item_idx.astype(np.int64)),
        )
        return _Plan(0.0, dataset, loss_fn, validate, "valid NDCG@10")
