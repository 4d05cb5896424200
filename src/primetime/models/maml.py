"""Meta-learned cold start: a user side that adapts in a few gradient steps (``maml``).

A new user has only a handful of events. The model reads at most the last
``max_support`` of them (the *support set*) and, per request, takes a few
gradient steps on that support set before it scores the catalog: first-order
MAML (Finn et al. 2017, arXiv:1703.03400) with learned per-dimension inner
learning rates (Meta-SGD, Li et al. 2017, arXiv:1707.09835).

The base is trained inside the model, not a registered member: models may
not import the registry (tests/test_layers.py), and the user side of a
transformer such as ``sasrec`` is its whole encoder, whose per-request
gradient steps would not fit a 20 ms budget on one core. The base here is a
factorized personalized Markov chain (Rendle et al. 2010) whose *user side*
(the fast weights phi = [u, a, c]) is one vector and two weights, so an
adaptation step costs a few (S, V) x (V, D) products:

    score(i | phi, prev) = (u + a · W_t t(prev)) · t(i) + c · b_i
    phi_0 = [W_u · mean(t(support)) + w, a_0, c_0]   the meta-learned initialisation
    phi_{s+1} = phi_s − α ⊙ ∇_phi CE(support | phi_s) the inner steps (α learned)

where ``t(i)`` is title ``i``'s vector (an id embedding plus, with
``side_features``, its genres and release year, as in ``sasrec``), ``prev`` the
title watched just before (a learned start vector for the first event), ``a``
how much this user follows the last title, ``c`` how much they follow the
crowd (the title biases ``b``), and ``CE(support | phi)`` the full-softmax
cross-entropy of every support event given the one before it. The gradient is
taken with ``torch.func.grad``, vectorised over the users of a batch with
``torch.func.vmap``; serving takes it in closed form (:func:`support_grad_closed`).

Meta-training (``meta=True``) samples episodes from every training user: a
window of n = 1 … ``max_support`` consecutive events (half of them the user's
first events, the cold-start case) is the support set, the next ``query``
events are the query set; the loss is the query cross-entropy *after*
``adapt_steps`` inner steps, and its gradient reaches the item table, the
initialisation ``W_u, w, a_0, c_0``, the transition and α (first order: the inner
gradients are treated as constants). ``meta=False`` trains the same net on
the same episodes without inner steps; scoring it with ``adapt_steps > 0`` is
plain fine-tuning at the fixed rate ``inner_lr`` — the baseline the benchmark
(``benchmarks/bench_maml.py``) compares against.

Titles without a training event (a platform launched after training) get a
zero id vector, so they are scored by their side features, and the median
learned bias; they are left out of the training softmax (as everyone's
negative they would be pushed down).

Three parts: :class:`MAMLConfig` (frozen), :class:`MAMLNet` (tensors in,
tensors out) and :class:`MAMLRecommender` (vocabularies, episodes, fit, score).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, vmap
from torch.utils.data import Dataset

from primetime.artifacts import Bundle
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.models.base import FitOptions, FitReport, Recommender, mask_padding
from primetime.models.sasrec import side_arrays, side_item_table
from primetime.training.loop import TrainConfig
from primetime.training.loop import train as run_training
from primetime.types import UserContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MAMLConfig:
    """Model, meta-training and adaptation settings.

    First choices, not tuned: ``benchmarks/bench_maml.py`` chooses epochs and the
    fine-tuning rate on its valid users; 3 inner steps and rates starting at 1.0
    were the only setting run there.

    Attributes:
        dim: Title and user vector size.
        max_support: Most recent events a request adapts on (and the longest
            support window of meta-training).
        query: Events after the support window learned from per episode.
        episodes_per_user: Episodes drawn per training user and epoch.
        first_share: Share of episodes whose support window is the user's first
            events (the rest start anywhere in the history).
        meta: Meta-train the initialisation through the inner steps (MAML);
            False trains the same net without them (the fine-tuning baseline).
        adapt_steps: Inner gradient steps per request (and per episode when meta).
        inner_lr: Inner learning rate: the initial value of the learned
            per-dimension rates with ``meta``, the fixed rate without.
        learn_inner_lr: Learn the per-dimension inner rates (Meta-SGD) with ``meta``.
        side_features: Add genre and release-year vectors to each title's id
            vector (when a catalog is given at fit time).
        epochs, batch_size, lr, weight_decay, warmup_epochs, patience, eval_every,
        grad_clip, seed: Training (see :class:`~primetime.training.TrainConfig`).
        device: "auto", "cpu" or "cuda" for training; scoring runs on the CPU.
    """

    dim: int = 64
    max_support: int = 10
    query: int = 3
    episodes_per_user: int = 8
    first_share: float = 0.5
    meta: bool = True
    adapt_steps: int = 3
    inner_lr: float = 1.0
    learn_inner_lr: bool = True
    side_features: bool = True
    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    warmup_epochs: float = 1.0
    patience: int = 4
    eval_every: int = 2
    grad_clip: float = 1.0
    seed: int = 42
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("dim", "max_support", "query", "episodes_per_user"):
            if getattr(self, name) < 1:
                raise ValueError(f"MAMLConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.adapt_steps < 0:
            raise ValueError(f"MAMLConfig.adapt_steps must be >= 0, got {self.adapt_steps}")
        if self.inner_lr <= 0:
            raise ValueError(f"MAMLConfig.inner_lr must be > 0, got {self.inner_lr}")
        if not 0.0 <= self.first_share <= 1.0:
            raise ValueError(f"MAMLConfig.first_share must be in [0, 1], got {self.first_share}")

    def train_config(self) -> TrainConfig:
        return TrainConfig.of(self)


# ------------------------------------------------------------------ episodes
class Episodes(Dataset[tuple[torch.Tensor, ...]]):
    """Support / query episodes drawn afresh at every access (seeded).

    Item ``i`` is an episode of user ``users[i % len(users)]``: support items
    (S,) and the item before each (S,), query items (Q,) and the item before
    each (Q,), all right-padded with 0; the item before the first support event
    is 0 (the start).
    """

    def __init__(
        self,
        histories: list[np.ndarray],
        *,
        per_user: int,
        max_support: int,
        query: int,
        first_share: float,
        seed: int,
    ) -> None:
        self.histories = [h for h in histories if len(h) >= 2]
        if not self.histories:
            raise ValueError("no user has two or more training events: nothing to learn from")
        self.per_user, self.max_support, self.query = per_user, max_support, query
        self.first_share = first_share
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.histories) * self.per_user

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        h = self.histories[i % len(self.histories)]
        rng = self.rng
        n = int(rng.integers(1, min(self.max_support, len(h) - 1) + 1))  # support size
        start = 0 if rng.random() < self.first_share else int(rng.integers(0, len(h) - n))
        sup = h[start : start + n]
        qry = h[start + n : start + n + self.query]
        S, Q = self.max_support, self.query
        out = np.zeros((4, max(S, Q)), dtype=np.int64)
        out[0, :n] = sup
        out[1, 1:n] = sup[:-1]
        out[2, : len(qry)] = qry
        out[3, : len(qry)] = np.concatenate([sup[-1:], qry[:-1]])
        t = torch.from_numpy(out)
        return t[0, :S], t[1, :S], t[2, :Q], t[3, :Q]


# ------------------------------------------------------------------ the net
def fast_logits(
    phi: torch.Tensor, ctx: torch.Tensor, table: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Scores (..., S, V) from the fast weights ``phi`` (..., D + 2) = [u, a, c]: the
    user vector u, the weight a of the transition ``ctx`` (..., S, D) and the weight c
    of the title biases (how much this user follows the crowd)."""
    u, a, c = phi[..., :-2], phi[..., -2:-1], phi[..., -1:]  # (..., D), (..., 1), (..., 1)
    h = u[..., None, :] + a[..., None] * ctx  # (..., S, D)
    return h @ table.T + c[..., None] * bias  # (..., S, V)


def _support_loss(
    phi: torch.Tensor,
    ctx: torch.Tensor,
    targets: torch.Tensor,
    keep: torch.Tensor,
    table: torch.Tensor,
    bias: torch.Tensor,
) -> torch.Tensor:
    """One user's mean cross-entropy of the support events given ``phi`` (D + 2,).

    ``ctx`` (S, D) are the transition vectors of the items before each target,
    ``targets`` (S,) item indices, ``keep`` (S,) 1.0 for real events, 0.0 for padding.
    """
    logits = fast_logits(phi, ctx, table, bias)  # (S, V)
    nll = F.cross_entropy(logits, targets, reduction="none")  # (S,)
    return (nll * keep).sum() / keep.sum().clamp(min=1.0)


#: ∇_phi of every user's support loss at once: phi (B, D + 2), ctx (B, S, D), targets
#: and keep (B, S); the item table and biases are shared. Used in meta-training.
_support_grad = vmap(grad(_support_loss), in_dims=(0, 0, 0, 0, None, None))


def support_grad_closed(
    phi: torch.Tensor,
    ctx: torch.Tensor,
    targets: torch.Tensor,
    keep: torch.Tensor,
    table: torch.Tensor,
    bias: torch.Tensor,
) -> torch.Tensor:
    """The same gradient as ``_support_grad``, (B, D + 2), in closed form: with
    G = the mean over real support events of (softmax − one-hot(target)), ∂u = G · table,
    ∂a = G · (ctx · tableᵀ), ∂c = G · bias.

    Serving uses this form: per request it costs the products and nothing else,
    where the ``vmap(grad(...))`` transforms add a fixed cost per call that was
    most of a 3-step adaptation (``benchmarks/bench_maml.py`` at commit e24b962, which
    served through ``torch.func``: 11 ms p50 on a busy machine, against about 1 ms
    since); ``tests/models/test_maml.py`` checks that the two agree.
    """
    u, a, c = phi[:, :-2], phi[:, -2:-1], phi[:, -1:]  # (B, D), (B, 1), (B, 1)
    ctx_logits = ctx @ table.T  # (B, S, V)
    logits = (u @ table.T)[:, None, :] + a[..., None] * ctx_logits + c[..., None] * bias
    p = torch.softmax(logits, dim=-1)  # (B, S, V)
    p = p.scatter_add(2, targets[..., None], -torch.ones_like(p[..., :1]))  # p - one-hot
    w = keep / keep.sum(1, keepdim=True).clamp(min=1.0)  # (B, S) mean over real events
    g = w[..., None] * p  # (B, S, V)
    gu = g.sum(1) @ table  # (B, V) @ (V, D) -> (B, D)
    ga = (g * ctx_logits).sum((1, 2))  # (B,)
    gc = g.sum(1) @ bias  # (B,)
    return torch.cat([gu, ga[:, None], gc[:, None]], dim=1)


class MAMLNet(nn.Module):
    """Title vectors, the user initialisation, the transition and the inner rates."""

    def __init__(
        self, n_items: int, cfg: MAMLConfig, side: dict[str, torch.Tensor] | None = None
    ) -> None:
        """Args:
        n_items: vocabulary size including padding (items.size).
        side: ``side_genres`` (V, G) and ``side_years`` (V,) from
            :func:`~primetime.models.sasrec.side_arrays`; None for ids only.
        """
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.item_emb = nn.Embedding(n_items, d, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=d**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.genre_proj: nn.Linear | None = None
        self.year_emb: nn.Embedding | None = None
        if side is not None:
            genres, years = side["side_genres"].float(), side["side_years"].long()
            if genres.shape[0] != n_items or years.shape != (n_items,):
                raise ValueError("side feature arrays do not match the item vocabulary")
            self.register_buffer("side_genres", genres)
            self.register_buffer("side_years", years)
            self.genre_proj = nn.Linear(genres.shape[1], d, bias=False)
            nn.init.normal_(self.genre_proj.weight, std=d**-0.5)
            self.year_emb = nn.Embedding(int(years.max()) + 1, d, padding_idx=0)
            nn.init.normal_(self.year_emb.weight, std=d**-0.5)
        self.user_init = nn.Linear(d, d)  # u_0 from the mean support vector
        self.transition = nn.Linear(d, d, bias=False)  # context from the previous title
        self.start = nn.Parameter(torch.zeros(d))  # context of a first event
        self.scales = nn.Parameter(torch.ones(2))  # a_0, c_0: transition and bias weights
        self.log_lr = nn.Parameter(
            torch.full((d + 2,), math.log(cfg.inner_lr)),
            requires_grad=cfg.meta and cfg.learn_inner_lr,
        )
        # titles with a training event; the others stay out of the training softmax
        self.register_buffer("trained", torch.ones(n_items, dtype=torch.bool))
        self._table: torch.Tensor | None = None
        self._table_key: tuple[tuple[int, int], ...] | None = None

    side_genres: torch.Tensor
    side_years: torch.Tensor
    trained: torch.Tensor

    def item_table(self) -> torch.Tensor:
        """(V, D) title vectors: id embedding (+ genre + year); cached at inference."""
        return side_item_table(self)

    def context(self, table: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """Transition vectors (..., D) of the previous titles ``prev`` (...); 0 = start."""
        ctx = self.transition(table[prev])  # (..., D)
        return torch.where((prev > 0)[..., None], ctx, self.start)

    def init_fast(self, table: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """phi_0 (B, D + 2): u_0 from the support titles (B, S), 0-padded (all padding:
        the bias of ``user_init``), and the meta-learned transition and bias weights."""
        keep = (support > 0).float()[..., None]  # (B, S, 1)
        mean = (table[support] * keep).sum(1) / keep.sum(1).clamp(min=1.0)  # (B, D)
        u = self.user_init(mean)  # (B, D)
        return torch.cat([u, self.scales.expand(len(u), 2)], dim=1)

    def adapt(
        self,
        table: torch.Tensor,
        support: torch.Tensor,
        prev: torch.Tensor,
        *,
        steps: int,
        lr: torch.Tensor,
        first_order: bool = True,
        closed_form: bool = False,
    ) -> torch.Tensor:
        """The fast weights (B, D + 2) after ``steps`` inner steps on the support sets.

        Args:
            table: (V, D) title vectors.
            support: (B, S) support titles, right-padded with 0.
            prev: (B, S) the title before each support title (0 = start).
            steps: Inner gradient steps (0: the initialisation).
            lr: (D + 2,) inner learning rates.
            first_order: Treat the inner gradients as constants (first-order MAML).
            closed_form: Take the gradient in closed form (serving, no autograd)
                instead of with ``torch.func`` (meta-training).
        """
        phi = self.init_fast(table, support)  # (B, D + 2)
        if steps == 0:
            return phi
        ctx = self.context(table, prev)  # (B, S, D)
        keep = (support > 0).float()  # (B, S)
        bias: torch.Tensor = self.item_bias
        if first_order:
            table, bias, ctx = table.detach(), bias.detach(), ctx.detach()
        inner = support_grad_closed if closed_form else _support_grad
        for _ in range(steps):
            g = inner(phi.detach() if first_order else phi, ctx, support, keep, table, bias)
            phi = phi - lr * g  # (B, D + 2)
        return phi

    def logits(self, table: torch.Tensor, phi: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """Scores (B, Q, V) of every title after titles ``prev`` (B, Q) for fast weights
        ``phi`` (B, D + 2)."""
        return fast_logits(phi, self.context(table, prev), table, self.item_bias)


# ------------------------------------------------------------- recommender
class MAMLRecommender(Recommender):
    """Cold-start recommendations that adapt to each user's few events per request."""

    name = "maml"
    config_class = MAMLConfig
    tuning_grid: ClassVar[list[dict[str, Any]]] = [
        {"adapt_steps": s, "inner_lr": lr} for s in (1, 3, 5) for lr in (0.3, 1.0)
    ]

    def __init__(self, config: MAMLConfig | None = None) -> None:
        super().__init__(config)
        self.net: MAMLNet | None = None
        self.side: dict[str, np.ndarray] | None = None

    def _new_net(self, n_items: int) -> MAMLNet:
        side = None
        if self.side is not None:
            side = {k: torch.from_numpy(v) for k, v in self.side.items()}
        return MAMLNet(n_items, self.config, side)

    def inner_lr(self) -> torch.Tensor:
        """(D + 2,) inner rates: learned when meta-trained, else ``config.inner_lr``."""
        assert self.net is not None
        if self.config.meta:
            return self.net.log_lr.detach().exp()
        return torch.full((self.config.dim + 2,), self.config.inner_lr)

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
        indptr, order = train.user_histories()
        items = train.item_idx[order].astype(np.int64)
        histories = [items[indptr[u] : indptr[u + 1]] for u in range(len(indptr) - 1)]
        episodes = Episodes(
            histories,
            per_user=cfg.episodes_per_user,
            max_support=cfg.max_support,
            query=cfg.query,
            first_share=cfg.first_share,
            seed=cfg.seed,
        )
        self.side = None
        if cfg.side_features:
            if side.catalog is None:
                log.info("maml: no catalog given, training on item ids only")
            else:
                self.side = side_arrays(side.catalog)
        torch.manual_seed(cfg.seed)
        net = self._new_net(train.items.size)
        seen = np.zeros(train.items.size, dtype=bool)
        seen[train.item_idx] = True
        net.trained.copy_(torch.from_numpy(seen))
        self.net = net
        score_valid = options.validator(train, valid)
        validate = None
        if score_valid is not None:

            def validate(_: nn.Module) -> float:
                return score_valid(self)

        def loss_fn(module: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return self._episode_loss(module, batch)

        result = run_training(
            net,
            dataset=episodes,
            loss_fn=loss_fn,
            validate=validate,
            config=cfg.train_config().on(options.device),
            run_dir=options.run_dir,
            resume=options.resume,
            model_config=cfg.__dict__,
            metric_name="valid NDCG@10",
        )
        net.to("cpu").eval()
        self._settle_untrained()
        return FitReport(
            epochs=result.epochs_run,
            best_epoch=result.best_epoch,
            history=result.history,
            notes={
                "episodes_per_epoch": len(episodes),
                "seconds_per_epoch": result.seconds / max(result.epochs_run, 1),
                "best_valid_ndcg10": result.best_metric,
                "inner_lr_mean": float(self.inner_lr().mean()),
            },
        )

    def _episode_loss(self, module: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Query cross-entropy after the inner steps (none without ``meta``)."""
        cfg = self.config
        net: Any = getattr(module, "module", module)  # under DDP
        sup, sup_prev, qry, qry_prev = batch  # (B, S), (B, S), (B, Q), (B, Q)
        table = net.item_table()  # (V, D)
        steps = cfg.adapt_steps if cfg.meta else 0
        phi = net.adapt(table, sup, sup_prev, steps=steps, lr=net.log_lr.exp())  # (B, D + 2)
        logits = net.logits(table, phi, qry_prev)  # (B, Q, V)
        v = logits.shape[-1]
        seen = torch.zeros(len(sup), v, dtype=torch.bool, device=sup.device)
        seen.scatter_(1, sup, True)  # (B, V) support titles (and padding)
        target = torch.arange(v, device=sup.device) == qry[..., None]  # (B, Q, V)
        drop = (seen[:, None, :] | ~net.trained) & ~target  # never mask the target
        logits = logits.masked_fill(drop, -torch.inf)
        keep = qry > 0
        return F.cross_entropy(logits[keep], qry[keep])

    def _settle_untrained(self) -> None:
        """Titles without a training event: a zero id vector and the median bias."""
        net = self.net
        assert net is not None
        cold = ~net.trained
        cold[0] = False
        if not cold.any() or not net.trained[1:].any():
            return
        with torch.no_grad():
            net.item_emb.weight[cold] = 0.0
            net.item_bias[cold] = net.item_bias[net.trained].median()
        net._table, net._table_key = None, None

    # ---------------------------------------------------------------- score
    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        assert self.net is not None
        net, cfg = self.net, self.config
        if net.training:
            net.eval()
        s = cfg.max_support
        sup = np.zeros((len(contexts), s), dtype=np.int64)
        prev = np.zeros((len(contexts), s), dtype=np.int64)
        last = np.zeros((len(contexts), 1), dtype=np.int64)
        for row, c in enumerate(contexts):
            h = c.history[-s:]
            sup[row, : len(h)] = h
            prev[row, 1 : len(h)] = h[:-1]
            last[row, 0] = h[-1] if len(h) else 0
        dev = net.item_emb.weight.device  # the GPU while validation runs inside a fit
        lr = self.inner_lr().to(dev)
        with torch.no_grad():
            table = net.item_table()  # (V, D), cached
            phi = net.adapt(
                table,
                torch.from_numpy(sup).to(dev),
                torch.from_numpy(prev).to(dev),
                steps=cfg.adapt_steps,
                lr=lr,
                closed_form=True,
            )  # (B, D + 2)
            out = net.logits(table, phi, torch.from_numpy(last).to(dev))[:, 0]  # (B, V)
        return mask_padding(out.float().cpu().numpy())

    # ---------------------------------------------------------- save / load
    def _state(self) -> dict[str, np.ndarray]:
        assert self.net is not None
        return {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}

    def _restore(self, bundle: Bundle) -> None:
        self.side = None
        if "side_genres" in bundle.arrays:
            self.side = {k: bundle.arrays[k] for k in ("side_genres", "side_years")}
        self.net = self._new_net(bundle.items.size)
        self.net.load_state_dict({k: torch.from_numpy(v) for k, v in bundle.arrays.items()})
        self.net.eval()
