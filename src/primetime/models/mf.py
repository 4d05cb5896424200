"""Biased matrix factorisation for explicit ratings (SVD-style, Koren 2008).

    r_hat(u, i) = mu + b_u + b_i + p_u . q_i

Trained on the shared engine (:mod:`primetime.training.loop`) with mini-batch
Adam at a constant rate on squared error with per-example L2 (the
regularisation of Funk's SVD), early-stopped on valid RMSE or, without a
valid set, on a held-out share of the training ratings. A user the model has
not seen is folded in from the ratings in their history by a ridge solve
against the item factors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from primetime.artifacts import Bundle
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.models.base import FitOptions, FitReport, Recommender, mask_padding
from primetime.training.loop import TrainConfig
from primetime.training.loop import train as run_training
from primetime.training.rows import Rows, as_batch
from primetime.types import UserContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MFConfig:
    """Attributes:
    factors: Latent dimensions.
    reg: L2 weight on the factors and biases touched by each example.
    lr: Adam learning rate.
    epochs: Maximum epochs.
    batch_size: Ratings per step.
    patience: Epochs without validation improvement before stopping.
    valid_share: Share of the training ratings held out for early stopping
        when ``fit`` gets no ``valid``.
    seed: Initialisation and shuffling seed.
    """

    factors: int = 64
    reg: float = 0.1
    lr: float = 0.005
    epochs: int = 60
    batch_size: int = 512
    patience: int = 4
    valid_share: float = 0.05
    seed: int = 42


class MFNet(nn.Module):
    """Biases and factors; tensors in, predicted ratings out."""

    mu: torch.Tensor  # global mean rating, a buffer

    def __init__(self, n_users: int, n_items: int, factors: int, mu: float) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, factors)
        self.item = nn.Embedding(n_items, factors)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.register_buffer("mu", torch.tensor(float(mu)))
        for emb in (self.user, self.item):
            nn.init.normal_(emb.weight, std=0.05)
        for emb in (self.user_bias, self.item_bias):
            nn.init.zeros_(emb.weight)

    def forward(
        self, users: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions (N,) and the per-example L2 term (N,) for users, items (N,)."""
        p, q = self.user(users), self.item(items)  # (N, F)
        bu, bi = self.user_bias(users).squeeze(-1), self.item_bias(items).squeeze(-1)  # (N,)
        pred = self.mu + bu + bi + (p * q).sum(-1)
        l2 = (p * p).sum(-1) + (q * q).sum(-1) + bu * bu + bi * bi
        return pred, l2


class MFRecommender(Recommender):
    """Rating model; ``score`` ranks by predicted rating for the top-N task too."""

    name = "mf"
    task = "rating"
    config_class = MFConfig
    tuning_grid: ClassVar[list[dict[str, Any]]] = [
        {"reg": r, "factors": f} for r in (0.05, 0.1, 0.15) for f in (32, 64, 128)
    ]

    def __init__(self, config: MFConfig | None = None) -> None:
        super().__init__(config)
        self.net: MFNet | None = None
        self.rating_range = (1.0, 5.0)

    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        c = self.config
        rated = ~np.isnan(train.rating)
        if not rated.any():
            raise ValueError("mf needs explicit ratings; this training log has none")
        tr = train.take(rated)
        va: Interactions | None = None
        if valid is not None and len(valid) and not np.isnan(valid.rating).all():
            va = valid.take(~np.isnan(valid.rating))
        elif options.select:
            perm = np.random.default_rng(c.seed).permutation(len(tr))
            n_va = max(1, int(len(tr) * c.valid_share))
            va, tr = tr.take(np.sort(perm[:n_va])), tr.take(np.sort(perm[n_va:]))
        self.rating_range = (float(np.nanmin(train.rating)), float(np.nanmax(train.rating)))
        torch.manual_seed(c.seed)
        net = MFNet(train.users.size, train.items.size, c.factors, float(tr.rating.mean()))

        def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            u, i, r = batch  # (B,), (B,), (B,)
            pred, l2 = net(u, i)  # (B,), (B,)
            return ((pred - r) ** 2 + c.reg * l2).mean()

        validate = None
        if va is not None:
            vu = torch.from_numpy(va.user_idx.astype(np.int64))  # (N,)
            vi = torch.from_numpy(va.item_idx.astype(np.int64))  # (N,)
            vr = torch.from_numpy(va.rating)  # (N,)

            def validate(net: nn.Module) -> float:
                device = next(net.parameters()).device
                pred = net(vu.to(device), vi.to(device))[0].cpu()  # (N,)
                return -float(((pred.clamp(*self.rating_range) - vr) ** 2).mean().sqrt())

        # Plain Adam at a constant rate (no warm-up, no decay, no clipping), as the
        # model was tuned; the engine adds early stopping, the best weights, devices.
        tc = TrainConfig(
            epochs=c.epochs,
            batch_size=c.batch_size,
            lr=c.lr,
            warmup_epochs=0.0,
            min_lr_ratio=1.0,
            grad_clip=0.0,
            patience=c.patience if va is not None else 0,
            seed=c.seed,
            progress=False,
        ).on(options.device)
        result = run_training(
            net,
            dataset=Rows(
                torch.from_numpy(tr.user_idx.astype(np.int64)),
                torch.from_numpy(tr.item_idx.astype(np.int64)),
                torch.from_numpy(tr.rating),
            ),
            loss_fn=loss_fn,
            validate=validate,
            config=tc,
            collate_fn=as_batch,
            run_dir=options.run_dir,
            resume=options.resume,
            model_config=c.__dict__,
            metric_name="valid -RMSE",
        )
        self.net = net.to("cpu").eval()
        return FitReport(
            epochs=result.epochs_run,
            best_epoch=result.best_epoch,
            history=result.history,
            notes={"best_valid_rmse": -result.best_metric if va is not None else None},
        )

    # ------------------------------------------------------------ predict
    def _user_vectors(self, contexts: Sequence[UserContext]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F) factors and (B,) biases: learned for known users, folded in otherwise."""
        assert self.net is not None and self.users is not None
        net = self.net
        q, bi = net.item.weight.detach(), net.item_bias.weight.detach().squeeze(-1)  # (V, F), (V,)
        p = torch.zeros(len(contexts), q.shape[1])
        bu = torch.zeros(len(contexts))
        for row, c in enumerate(contexts):
            if c.user_idx is not None and 1 <= c.user_idx <= len(self.users):
                p[row] = net.user.weight[c.user_idx].detach()
                bu[row] = net.user_bias.weight[c.user_idx, 0].detach()
            elif c.ratings is not None and np.isfinite(c.ratings).any():
                ok = np.isfinite(c.ratings)
                items = torch.from_numpy(c.history[ok])
                resid = torch.from_numpy(c.ratings[ok]) - net.mu - bi[items]  # (L,)
                bu[row] = resid.mean() * len(resid) / (len(resid) + 5.0)  # shrunk bias
                qh = q[items]  # (L, F)
                gram = qh.T @ qh + self.config.reg * len(resid) * torch.eye(q.shape[1])
                p[row] = torch.linalg.solve(gram, qh.T @ (resid - bu[row]))
        return p, bu

    def predict_ratings(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Predicted ratings for (user_idx, item_idx) pairs of the training vocabularies, (N,)."""
        self._require_fitted()
        assert self.net is not None
        with torch.no_grad():
            pred, _ = self.net(
                torch.from_numpy(np.asarray(user_idx, dtype=np.int64)),
                torch.from_numpy(np.asarray(item_idx, dtype=np.int64)),
            )
        return pred.clamp(*self.rating_range).numpy()

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        assert self.net is not None
        with torch.no_grad():
            p, bu = self._user_vectors(contexts)
            net = self.net
            s = (
                net.mu
                + bu[:, None]
                + net.item_bias.weight.squeeze(-1)[None, :]
                + p @ net.item.weight.T
            )
        return mask_padding(s.numpy())  # (B, V)

    def user_vectors(self, contexts: Sequence[UserContext]) -> np.ndarray:
        """(B, F + 2): ``[p_u, 1, mu + b_u]``, so that against :meth:`item_vectors`
        ``[q_i, b_i, 1]`` the dot product is the predicted rating ``score`` gives."""
        assert self.net is not None
        with torch.no_grad():
            p, bu = self._user_vectors(contexts)  # (B, F), (B,)
            ones = torch.ones(len(contexts), 1)
            return torch.cat([p, ones, (self.net.mu + bu)[:, None]], 1).numpy()

    def item_vectors(self) -> np.ndarray | None:
        """(V, F + 2): ``[q_i, b_i, 1]`` (see :meth:`user_vectors`)."""
        assert self.net is not None
        with torch.no_grad():
            q, bi = self.net.item.weight, self.net.item_bias.weight  # (V, F), (V, 1)
            return torch.cat([q, bi, torch.ones_like(bi)], 1).numpy()

    def _state(self) -> dict[str, np.ndarray]:
        assert self.net is not None
        out = {k: v.numpy() for k, v in self.net.state_dict().items()}
        out["rating_range"] = np.asarray(self.rating_range, dtype=np.float32)
        return out

    def _restore(self, bundle: Bundle) -> None:
        a = bundle.arrays
        n_users, factors = a["user.weight"].shape
        self.net = MFNet(n_users, a["item.weight"].shape[0], factors, float(a["mu"]))
        self.net.load_state_dict(
            {k: torch.from_numpy(v) for k, v in a.items() if k != "rating_range"}
        )
        self.net.eval()
        self.rating_range = (float(a["rating_range"][0]), float(a["rating_range"][1]))
