"""``temporal``: the SASRec transformer made time-aware.

Three additions to :mod:`primetime.models.sasrec`, whose encoder it reuses
(:class:`TemporalNet` is a :class:`~primetime.models.sasrec.SASRecNet`):

1. **Time intervals between events** (TiSASRec, Li, Wang & McAuley 2020,
   doi:10.1145/3336191.3371786): the gap between the events at positions q and
   k is put in a clipped log bucket (``floor(log2(1 + minutes))``, 0 = the same
   minute, 10 ≈ a day, 15 ≈ a month, 19 ≈ a year) and each head adds a learned
   bias of that bucket to its attention logit (as T5 adds relative-position
   biases), instead of TiSASRec's interval key/value embeddings: the same idea,
   and it leaves PyTorch's encoder layer untouched.
2. **Absolute time** of every event and of the request (``UserContext.now``):
   hour of day, day of week and week of year embeddings, added to each input
   event; the request's own time and the gap since the last event are added to
   the final hidden state that scores the catalog.
3. **A seasonal decomposition head**: a title's score is

       score_i(now) = h · e_i  +  trend_i(now)  +  season_i(week of year of now)

   ``season_i`` is a smooth yearly profile (``harmonics`` Fourier pairs of the
   fraction of the year) and ``trend_i`` a piecewise-linear curve over the
   training span (``trend_knots`` hat functions, flat beyond its ends); both
   are a per-title part plus a part shared through the title's genres (so a
   genre that peaks in December, e.g. holiday titles, teaches every title of
   it). :meth:`TemporalRecommender.decompose` returns the two parts.

Training is SASRec's: full-softmax cross-entropy at every position of every
window, where the target's own timestamp is the ``now`` of that position.
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
from torch.utils.data import Dataset

from primetime.artifacts import Bundle
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.vocab import Vocabulary
from primetime.models.base import mask_padding
from primetime.models.sasrec import SASRecConfig, SASRecNet, SASRecRecommender, weights_key
from primetime.models.sequential import unwrap, window_rows
from primetime.types import UserContext

log = logging.getLogger(__name__)

DAY = 86_400
YEAR = 365.2425 * DAY  # mean Gregorian year


@dataclass(frozen=True)
class TemporalConfig(SASRecConfig):
    """SASRec's settings (same defaults) plus the time parts.

    Attributes:
        interval_buckets: Log buckets of the gap between two events (the last one
            holds every longer gap); 0 switches the interval biases off.
        time_features: Hour, weekday and week-of-year embeddings of events and request.
        harmonics: Fourier pairs of the yearly seasonal profile (0: no seasonal part).
        trend_knots: Hat functions of the trend curve over the training span (0: none).
    """

    interval_buckets: int = 24
    time_features: bool = True
    harmonics: int = 4
    trend_knots: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss != "ce":
            raise ValueError(f"temporal trains with loss='ce' only, got {self.loss!r}")
        for name in ("interval_buckets", "harmonics", "trend_knots"):
            if getattr(self, name) < 0:
                raise ValueError(f"TemporalConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.trend_knots == 1:
            raise ValueError("TemporalConfig.trend_knots must be 0 or >= 2, got 1")


# ------------------------------------------------------------------ time features
def interval_bucket(gap: torch.Tensor, buckets: int) -> torch.Tensor:
    """Clipped log bucket ``floor(log2(1 + minutes))`` of gaps in seconds (any shape)."""
    minutes = gap.clamp(min=0).double() / 60.0
    return torch.log2(1.0 + minutes).floor().long().clamp(max=max(buckets - 1, 0))


def year_fraction(ts: torch.Tensor) -> torch.Tensor:
    """Fraction of the year in [0, 1) of unix seconds (any shape), float32: time since
    1970 modulo the mean Gregorian year, so it drifts from the calendar by under a day
    (January 1 may read as the year's last hours)."""
    return torch.remainder(ts.double() / YEAR, 1.0).float()


def calendar(ts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hour 0..23, weekday 0..6 (Monday 0) and week of year 0..52 (from
    :func:`year_fraction`) of unix seconds (UTC)."""
    ts = ts.long()
    hour = torch.div(ts, 3600, rounding_mode="floor") % 24
    weekday = (torch.div(ts, DAY, rounding_mode="floor") + 3) % 7  # 1970-01-01 was a Thursday
    week = (year_fraction(ts) * 52.1775).long().clamp(max=52)
    return hour, weekday, week


class TimeEmbedding(nn.Module):
    """Sum of hour, weekday and week-of-year embeddings of unix seconds: (...) -> (..., D)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.hour = nn.Embedding(24, dim)
        self.weekday = nn.Embedding(7, dim)
        self.week = nn.Embedding(53, dim)
        for emb in (self.hour, self.weekday, self.week):
            nn.init.normal_(emb.weight, std=0.02)

    def forward(self, ts: torch.Tensor) -> torch.Tensor:
        hour, weekday, week = calendar(ts)
        return self.hour(hour) + self.weekday(weekday) + self.week(week)


# ------------------------------------------------------------------ the net
def _attend(layer: nn.TransformerEncoderLayer, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The layer's self-attention block on ``h`` (B, T, D) under ``mask`` (B * H, T, T)."""
    out = layer.self_attn(h, h, h, attn_mask=mask, need_weights=False)[0]  # (B, T, D)
    return layer.dropout1(out)


def _feed_forward(layer: nn.TransformerEncoderLayer, h: torch.Tensor) -> torch.Tensor:
    """The layer's feed-forward block on ``h`` (B, T, D)."""
    return layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(h)))))


class TemporalNet(SASRecNet):
    """SASRec's encoder with interval biases, time embeddings and a seasonal head."""

    def __init__(
        self,
        n_items: int,
        cfg: TemporalConfig,
        side: dict[str, torch.Tensor] | None = None,
        span: tuple[int, int] = (0, 1),
    ) -> None:
        """Args:
        n_items, cfg, side: as :class:`~primetime.models.sasrec.SASRecNet`.
        span: First and last training timestamps (unix seconds): the trend's range.
        """
        super().__init__(n_items, cfg, side)
        self.tcfg = cfg
        self.register_buffer(
            "span", torch.tensor([int(span[0]), max(int(span[1]), int(span[0]) + 1)])
        )
        self.interval_bias: nn.Embedding | None = None
        if cfg.interval_buckets:
            self.interval_bias = nn.Embedding(cfg.interval_buckets, cfg.heads)
            nn.init.zeros_(self.interval_bias.weight)
        self.event_time: TimeEmbedding | None = None
        self.query_time: TimeEmbedding | None = None
        self.query_gap: nn.Embedding | None = None
        if cfg.time_features:
            self.event_time = TimeEmbedding(cfg.dim)
            self.query_time = TimeEmbedding(cfg.dim)
            self.query_gap = nn.Embedding(max(cfg.interval_buckets, 24), cfg.dim)
            nn.init.normal_(self.query_gap.weight, std=0.02)
        n_basis = 2 * cfg.harmonics + cfg.trend_knots
        # per-title coefficients of the seasonal + trend basis, zero at the start: the
        # model begins as SASRec and learns a time curve only where the data asks for one
        self.curve_item = nn.Embedding(n_items, n_basis) if n_basis else None
        self.curve_genre: nn.Linear | None = None
        self._joint: torch.Tensor | None = None  # inference cache of _joint_table()
        self._joint_key: tuple[tuple[int, int], ...] | None = None
        if self.curve_item is not None:
            nn.init.zeros_(self.curve_item.weight)
            if side is not None:
                self.curve_genre = nn.Linear(self.side_genres.shape[1], n_basis, bias=False)
                nn.init.zeros_(self.curve_genre.weight)

    span: torch.Tensor

    # ------------------------------------------------------------ encoder
    def forward(self, seq: torch.Tensor, ts: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states (B, T, D) of right-padded items ``seq`` (B, T) with event times
        ``ts`` (B, T) unix seconds (None: SASRec's encoder without time)."""
        if ts is None:
            return super().forward(seq)
        b, t = seq.shape
        extra = self.event_time(ts) if self.event_time is not None else None  # (B, T, D)
        x = self.embed(seq, extra)  # (B, T, D)
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=seq.device)  # (T, T)
        if self.interval_bias is None:
            return self.encode(x, causal, is_causal=True)
        gap = ts[:, :, None] - ts[:, None, :]  # (B, Tq, Tk) seconds, >= 0 below the diagonal
        bias = self.interval_bias(interval_bucket(gap, self.tcfg.interval_buckets))  # (B, T, T, H)
        bias = bias.permute(0, 3, 1, 2).reshape(b * self.tcfg.heads, t, t)  # (B*H, T, T)
        return self.encode_plain(x, bias + causal)

    def encode_plain(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, D) of inputs ``x`` (B, T, D) under an additive per-head
        ``mask`` (B * heads, T, T), through each encoder layer's plain computation.

        Why not :meth:`encode`: in eval mode PyTorch's fused encoder-layer path returns
        NaN for a per-head float mask (measured on torch 2.13), and the one switch that
        turns it off, ``torch.backends.mha.set_fastpath_enabled``, is process-wide:
        turned off and back on around a forward, it raced between threads scoring at
        once (one thread turning it back on while another was inside). These are the
        layer's own modules in the order of its plain path (the one training always
        takes; attention with a float mask never takes the fused kernel), so the
        results are those of that path, in training and in eval.
        """
        h = x  # (B, T, D)
        for layer in self.encoder.layers:
            assert isinstance(layer, nn.TransformerEncoderLayer)
            if layer.norm_first:
                h = h + _attend(layer, layer.norm1(h), mask)
                h = h + _feed_forward(layer, layer.norm2(h))
            else:
                h = layer.norm1(h + _attend(layer, h, mask))
                h = layer.norm2(h + _feed_forward(layer, h))
        if self.encoder.norm is not None:
            h = self.encoder.norm(h)
        return self.final_norm(h)

    def query(self, h: torch.Tensor, now: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """The vector (N, D) that scores the catalog: hidden state ``h`` (N, D) after the
        last event, plus the request time ``now`` (N,) and the gap since ``last`` (N,)."""
        if self.query_time is None or self.query_gap is None:
            return h
        gap = interval_bucket(now - last, self.query_gap.num_embeddings)  # (N,)
        return h + self.query_time(now) + self.query_gap(gap)

    # ------------------------------------------------------------ seasonal head
    def basis(self, now: torch.Tensor) -> torch.Tensor:
        """(N, 2 * harmonics + trend_knots) features of times ``now`` (N,): the yearly
        Fourier pairs, then the trend's hat functions over the training span."""
        parts = []
        cfg = self.tcfg
        if cfg.harmonics:
            k = torch.arange(1, cfg.harmonics + 1, device=now.device, dtype=torch.float32)
            angle = 2 * math.pi * year_fraction(now)[:, None] * k  # (N, H)
            parts += [torch.cos(angle), torch.sin(angle)]
        if cfg.trend_knots:
            lo, hi = self.span[0], self.span[1]
            u = ((now - lo).double() / (hi - lo).double()).clamp(0.0, 1.0).float()  # (N,)
            knots = torch.arange(cfg.trend_knots, device=now.device, dtype=torch.float32)
            parts.append((1.0 - (u[:, None] * (cfg.trend_knots - 1) - knots).abs()).clamp(min=0))
        return torch.cat(parts, dim=1)  # (N, F)

    def curves(self) -> torch.Tensor | None:
        """(V, F) per-title coefficients of :meth:`basis`: own part + genre part."""
        if self.curve_item is None:
            return None
        coef = self.curve_item.weight  # (V, F)
        if self.curve_genre is not None:
            genres = self.side_genres / self.side_genres.sum(1, keepdim=True).clamp(min=1.0)
            coef = coef + self.curve_genre(genres)  # (V, G) -> (V, F)
        return coef

    def time_logits(self, q: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        """Scores (N, V) of every title for query vectors ``q`` (N, D) at times ``now`` (N,).

        At inference (eval mode, no grad) one product ``[q, basis] @ [items, curves].T``
        over a table kept until a weight changes (as :meth:`item_table` keeps its own):
        a request then costs one pass over the catalog, not the curves' genre projection,
        a second product and a sum."""
        if self.curve_item is None:
            return self.logits(q)
        if not self.training and not torch.is_grad_enabled():
            joint = self._joint_table()  # (V, D + F)
            return torch.cat([q, self.basis(now)], dim=1) @ joint.T
        coef = self.curves()
        assert coef is not None
        return self.logits(q) + self.basis(now) @ coef.T  # (N, V) + (N, F) @ (F, V)

    def _joint_table(self) -> torch.Tensor:
        """(V, D + F): the item table beside the curves' coefficients, cached at inference
        on the weights' version counters and storage (a grown catalog replaces them)."""
        mods = (self.item_emb, self.genre_proj, self.year_emb, self.curve_item, self.curve_genre)
        key = weights_key(*(m.weight for m in mods if m is not None))
        if self._joint_key != key or self._joint is None:
            coef = self.curves()
            assert coef is not None
            self._joint = torch.cat([self.item_table(), coef], dim=1)
            self._joint_key = key
        return self._joint


# ------------------------------------------------------------------ training data
class TimedWindows(Dataset[tuple[torch.Tensor, ...]]):
    """Windows of input items, targets, input times and target times, each (T,)."""

    def __init__(self, train: Interactions, max_len: int, stride: int) -> None:
        rows_in, rows_out = window_rows(train, max_len, stride)  # (W, T), -1 = padding
        items = np.concatenate([train.item_idx.astype(np.int64), np.zeros(1, np.int64)])
        stamps = np.concatenate([train.timestamp.astype(np.int64), np.zeros(1, np.int64)])
        self.tensors = [
            torch.from_numpy(a[r]) for a, r in ((items, rows_in), (items, rows_out))
        ] + [torch.from_numpy(stamps[r]) for r in (rows_in, rows_out)]

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[i] for t in self.tensors)


def right_pad_times(
    contexts: Sequence[UserContext], max_len: int, fallback: int
) -> tuple[np.ndarray, np.ndarray]:
    """Event times (B, max_len) int64 of each context's last ``max_len`` events, right-padded
    like :func:`~primetime.models.sequential.right_pad`, and the request times (B,).

    A context without ``timestamps`` reads as if every event happened at the request;
    without ``now``, the request is its last event's time, else ``fallback``.
    """
    out = np.zeros((len(contexts), max_len), dtype=np.int64)
    now = np.empty(len(contexts), dtype=np.int64)
    for row, c in enumerate(contexts):
        ts = c.timestamps
        if c.now is not None:
            now[row] = int(c.now)
        elif ts is not None and ts.size:
            now[row] = int(ts[-1])
        else:
            now[row] = fallback
        n = min(len(c.history), max_len)
        out[row, :n] = now[row] if ts is None else ts[-max_len:][:n]
    return out, now


# ------------------------------------------------------------------ the recommender
class TemporalRecommender(SASRecRecommender):
    """Next title from the history, the gaps between its events and the request time."""

    name = "temporal"
    config_class = TemporalConfig
    tuning_grid: ClassVar[list[dict[str, Any]]] = [
        {"harmonics": h, "interval_buckets": b} for h in (0, 4) for b in (0, 24)
    ]

    def __init__(self, config: Any | None = None) -> None:
        super().__init__(config)
        self.span = (0, 1)

    def _windows(self, train: Interactions) -> Dataset[Any]:
        self.span = (int(train.timestamp.min()), int(train.timestamp.max()))
        return TimedWindows(train, self.config.max_len, self.config.window_stride)

    def _new_net(self, n_items: int) -> nn.Module:
        side = None
        if self.side is not None:
            side = {k: torch.from_numpy(v) for k, v in self.side.items()}
        return TemporalNet(n_items, self.config, side, span=self.span)

    def _batch_loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        x, y, x_ts, y_ts = batch  # each (B, T)
        h = net(x, x_ts)  # (B, T, D)
        keep = y > 0  # (B, T) real targets
        inner = unwrap(net)
        q = inner.query(h[keep], y_ts[keep], x_ts[keep])  # (N, D): now = the target's time
        logits = inner.time_logits(q, y_ts[keep])  # (N, V)
        logits[:, 0] = -torch.inf  # padding is never a target
        return F.cross_entropy(logits, y[keep])

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        from primetime.models.sequential import right_pad

        assert self.net is not None
        net = self.net
        if net.training:
            net.eval()
        device = net.item_emb.weight.device
        fallback = int(net.span[1])
        out = np.empty((len(contexts), net.item_emb.num_embeddings), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(contexts), 512):
                chunk = contexts[start : start + 512]
                seq, last = right_pad([c.history for c in chunk], self.config.max_len)
                ts, now = right_pad_times(chunk, self.config.max_len, fallback)
                width = int(last.max()) + 1  # right-padded + causal: trailing padding is inert
                seq_t = torch.from_numpy(seq[:, :width]).to(device)
                ts_t = torch.from_numpy(ts[:, :width]).to(device)
                h = net(seq_t, ts_t)  # (b, T, D)
                rows = torch.arange(len(chunk), device=device)
                last_t = torch.from_numpy(last).to(device)
                now_t = torch.from_numpy(now).to(device)
                q = net.query(h[rows, last_t], now_t, ts_t[rows, last_t])  # (b, D)
                scores = net.time_logits(q, now_t)  # (b, V)
                empty = torch.tensor([len(c.history) == 0 for c in chunk], device=device)
                if bool(empty.any()):  # no history: the time curves alone rank the catalog
                    curve = scores - net.logits(q)
                    scores = torch.where(empty[:, None], curve, scores)
                out[start : start + len(chunk)] = scores.float().cpu().numpy()
        return mask_padding(out)

    def decompose(self, times: np.ndarray) -> dict[str, np.ndarray]:
        """The seasonal head's two parts for every title at unix seconds ``times`` (N,).

        Returns:
            ``{"trend": (N, V), "season": (N, V)}`` float32 score offsets (column 0 is
            padding); zeros for a part the config switches off.
        """
        self._require_fitted()
        net = self.net
        v = net.item_emb.num_embeddings
        now = torch.as_tensor(np.asarray(times, dtype=np.int64))
        trend = np.zeros((len(now), v), np.float32)
        season = np.zeros((len(now), v), np.float32)
        with torch.inference_mode():
            coef = net.curves()
            if coef is None:
                return {"trend": trend, "season": season}
            basis = net.basis(now)  # (N, F)
            f = 2 * self.config.harmonics
            season = (basis[:, :f] @ coef[:, :f].T).numpy()  # (N, V)
            trend = (basis[:, f:] @ coef[:, f:].T).numpy()
        return {"trend": trend.astype(np.float32), "season": season.astype(np.float32)}

    def _extend(self, items: Vocabulary, side: SideData, n_old: int) -> bool:
        """SASRec's growth (genre + year vectors), and a new title's own time curve starts
        at zero: its curve is its genres' until it is trained."""
        from primetime.models.multimodal import grow_embedding

        if not super()._extend(items, side, n_old):
            return False
        net = self.net
        if net.curve_item is not None:
            net.curve_item = grow_embedding(net.curve_item, items.size)  # new rows zero
        return True

    def _restore(self, bundle: Bundle) -> None:
        span = bundle.arrays.get("span")
        self.span = (0, 1) if span is None else (int(span[0]), int(span[1]))
        super()._restore(bundle)
