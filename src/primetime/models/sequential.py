"""What every next-item sequence model shares: training windows, padding, the
fit / score / save / load of a :class:`SequentialRecommender`.

A model supplies only its net (``_new_net``): an ``nn.Module`` mapping
right-padded item sequences (B, T) to hidden states (B, T, D), with an
``item_emb`` embedding (tied output) and ``logits(h)``. Training is
full-softmax cross-entropy at every position on the shared engine, with early
stopping on valid NDCG@10; a model may override ``_loss`` (SASRec adds
sampled losses).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from primetime.artifacts import Bundle
from primetime.data.catalog import Catalog
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.models.base import FitOptions, FitReport, Recommender, mask_padding
from primetime.training.loop import train as run_training
from primetime.types import UserContext

log = logging.getLogger(__name__)


class SequenceWindows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Training windows: input items (T,) and the next item at every position (T,)."""

    def __init__(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        self.inputs = torch.from_numpy(inputs)
        self.targets = torch.from_numpy(targets)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[i], self.targets[i]


def training_windows(
    train: Interactions, max_len: int, stride: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Cut each user's time-ordered history into windows of ``max_len`` next-item pairs.

    A history s_1..s_L gives pairs (s_j -> s_{j+1}); they are cut into chunks
    of ``max_len`` from the most recent end, each chunk right-padded with 0.
    Every position of every chunk is a training target. ``stride`` (0 = no
    overlap, i.e. ``max_len``) below ``max_len`` makes chunks overlap, so
    early positions of a chunk are also seen with a long context.

    Returns:
        ``(inputs, targets)``, each (W, max_len) int64.
    """
    rows_in, rows_out = window_rows(train, max_len, stride)  # (W, T) event rows, -1 = padding
    items = np.concatenate([train.item_idx.astype(np.int64), np.zeros(1, np.int64)])
    return items[rows_in], items[rows_out]  # row -1 reads the trailing 0


def window_times(train: Interactions, max_len: int, stride: int = 0) -> np.ndarray:
    """(W, max_len) int64 unix seconds of the target event at every place of the windows
    of :func:`training_windows` (same arguments), 0 where a window is padded: the moment
    each next title was asked for (the request-time terms, ``titlecontext``)."""
    _, rows_out = window_rows(train, max_len, stride)
    return np.where(rows_out >= 0, train.timestamp[np.maximum(rows_out, 0)], 0)


def window_rows(
    train: Interactions, max_len: int, stride: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The event rows behind :func:`training_windows`: (W, max_len) int64 row numbers of
    ``train`` for the inputs and for the targets, -1 where a window is padded. A model
    that reads more than item ids (timestamps: ``temporal``) gathers them through these."""
    step = stride if 0 < stride < max_len else max_len
    indptr, order = train.user_histories()
    ins, outs = [], []
    for u in range(len(indptr) - 1):
        s = order[indptr[u] : indptr[u + 1]].astype(np.int64)
        if len(s) < 2:
            continue
        x, y = s[:-1], s[1:]
        for end in range(len(x), 0, -step):
            start = max(0, end - max_len)
            row_x = np.full(max_len, -1, dtype=np.int64)
            row_y = np.full(max_len, -1, dtype=np.int64)
            row_x[: end - start] = x[start:end]
            row_y[: end - start] = y[start:end]
            ins.append(row_x)
            outs.append(row_y)
            if start == 0:
                break
    if not ins:
        raise ValueError("no user has two or more training events: nothing to learn from")
    return np.stack(ins), np.stack(outs)


def right_pad(histories: Sequence[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``max_len`` items of each history, right-padded with 0.

    Returns:
        ``(seq, last)``: (B, max_len) int64 items and (B,) index of each row's
        last real item (0 for an empty history).
    """
    out = np.zeros((len(histories), max_len), dtype=np.int64)
    last = np.zeros(len(histories), dtype=np.int64)
    for row, h in enumerate(histories):
        tail = h[-max_len:]
        out[row, : len(tail)] = tail
        last[row] = max(len(tail) - 1, 0)
    return out, last


def unwrap(net: nn.Module) -> Any:
    """The module inside DistributedDataParallel / torch.compile wrappers."""
    inner = getattr(net, "module", net)
    return getattr(inner, "_orig_mod", inner)


class SequentialRecommender(Recommender):
    """Next-title prediction from the last ``config.max_len`` titles of a history.

    The config must have ``max_len``, ``seed`` and ``train_config()``.
    """

    def __init__(self, config: Any | None = None) -> None:
        super().__init__(config)
        self.net: Any = None  # the model's nn.Module, built by _new_net
        self.side: dict[str, np.ndarray] | None = None  # per-item side features, if any
        self.onnx: Any = None  # an OnnxScorer serving ``score`` (use_onnx), else None

    def _prepare(self, train: Interactions, catalog: Catalog | None) -> None:  # noqa: B027
        """Hook run before the net is built in ``fit`` (e.g. side features)."""

    @abstractmethod
    def _new_net(self, n_items: int) -> nn.Module:
        """A fresh net for ``n_items`` (items.size, padding included)."""

    def _loss(self, net: nn.Module, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Full-softmax cross-entropy of hidden states ``h`` (N, D) for targets ``y`` (N,)."""
        inner = unwrap(net)
        emb = inner.item_table() if hasattr(inner, "item_table") else inner.item_emb.weight
        logits = h @ emb.T  # (N, V)
        logits[:, 0] = -torch.inf  # padding is never a target
        return F.cross_entropy(logits, y)

    def _windows(self, train: Interactions) -> Dataset[Any]:
        """The training examples: next-item windows (see :func:`training_windows`)."""
        stride = getattr(self.config, "window_stride", 0)
        inputs, targets = training_windows(train, self.config.max_len, stride)  # (W, T), (W, T)
        return SequenceWindows(inputs, targets)

    def _batch_loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        """The loss of one batch of :meth:`_windows`: every real target position."""
        x, y = batch  # (B, T), (B, T)
        h = net(x)  # (B, T, D)
        keep = y > 0  # (B, T) real targets
        return self._loss(net, h[keep], y[keep])  # (N, D), (N,)

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
        windows = self._windows(train)
        self._prepare(train, side.catalog)
        torch.manual_seed(cfg.seed)
        self.net = self._new_net(train.items.size)
        warm = self._warm_start(options.init_from, train) if options.init_from else None
        seeded = None
        if getattr(cfg, "item_init", "") and warm is None:
            seeded = self._seed_items(cfg.item_init, train, side, options.device or cfg.device)
        self.rng = torch.Generator().manual_seed(cfg.seed)  # for sampled losses
        score_valid = options.validator(train, valid)
        validate = None
        if score_valid is not None:

            def validate(_: nn.Module) -> float:
                return score_valid(self)

        result = run_training(
            self.net,
            dataset=windows,
            loss_fn=self._batch_loss,
            validate=validate,
            config=cfg.train_config().on(options.device),
            run_dir=options.run_dir,
            resume=options.resume,
            model_config=cfg.__dict__,
            metric_name="valid NDCG@10",
        )
        self.net.to("cpu").eval()
        return FitReport(
            epochs=result.epochs_run,
            best_epoch=result.best_epoch,
            history=result.history,
            notes={
                "windows": len(windows),  # type: ignore[arg-type]
                "sequences_per_second": result.examples_per_second,
                "data_wait_share": result.data_wait_share,
                "seconds_per_epoch": result.seconds / max(result.epochs_run, 1),
                "best_valid_ndcg10": result.best_metric,
                **({"warm_start": warm} if warm is not None else {}),
                **({"item_init": seeded} if seeded is not None else {}),
            },
        )

    def _seed_items(
        self, spec: str, train: Interactions, side: SideData, device: str
    ) -> dict[str, Any]:
        """Start the fresh net's item table from the contrastive model's content space
        (``item_init``; :func:`primetime.models.warmstart.content_rows`). The global
        random state is restored afterwards, so the fit differs from one without the
        option only in those rows.

        Returns:
            ``{"from": spec, "rows": titles seeded}`` (for ``FitReport.notes``).
        """
        from primetime.models.warmstart import content_rows, seed_rows

        weight = self.net.item_emb.weight
        with torch.random.fork_rng(devices=[]):  # the encoder's fit draws from it
            rows = content_rows(spec, train, side, weight.shape[1], device)
        seeded = seed_rows(weight, rows)
        log.info("%s: item table started from %s for %d titles", self.name, spec, seeded)
        return {"from": spec, "rows": seeded}

    def _warm_start(self, path: Path, train: Interactions) -> dict[str, Any]:
        """Copy the weights of the version saved at ``path`` into the fresh ``self.net``,
        title rows by id (:func:`primetime.models.warmstart.carry_weights`).

        Returns:
            What was carried over, with ``from`` = ``path`` (for ``FitReport.notes``).
        """
        from primetime.models.warmstart import carry_weights

        old = type(self).load(path)
        assert old.items is not None and old.net is not None
        carried = carry_weights(self.net, old.net, old_items=old.items, new_items=train.items)
        log.info(
            "%s: warm start from %s: %d titles carried, %d new, %d parameters fresh %s",
            self.name,
            path,
            carried.titles_carried,
            carried.titles_new,
            len(carried.tensors_fresh),
            carried.tensors_fresh,
        )
        return {"from": str(path), **carried.as_dict()}

    # ---------------------------------------------------------------- score
    def use_onnx(self, path: str | Path | None, *, threads: int | None = None) -> None:
        """Score through onnxruntime from a file written by
        :func:`primetime.models.onnx.export_onnx` (float32 or INT8), or with torch
        again when ``path`` is None. Candidate retrieval, when enabled, still computes
        its user vectors with torch."""
        if path is None:
            self.onnx = None
            return
        from primetime.models.onnx import OnnxScorer

        scorer = OnnxScorer(path, threads=threads)
        items = self._require_fitted()
        if scorer.n_items != items.size:
            raise ValueError(
                f"{path}: the ONNX scorer scores {scorer.n_items} items, the model {items.size}"
            )
        self.onnx = scorer

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        if self.onnx is not None:
            return self._score_onnx(contexts)
        assert self.net is not None
        net = self.net
        h = self.user_vectors(contexts)  # (B, D); zero rows for empty histories
        device = net.item_emb.weight.device
        out = np.empty((len(contexts), net.item_emb.num_embeddings), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(contexts), 512):
                hc = torch.from_numpy(h[start : start + 512]).to(device)  # (b, D)
                out[start : start + len(hc)] = net.logits(hc).float().cpu().numpy()  # (b, V)
        empty = np.array([len(c.history) == 0 for c in contexts], dtype=bool)
        if empty.any():  # no history: nothing to condition on, every item scores the same
            out[empty] = 0.0
        return mask_padding(out)

    def _score_onnx(self, contexts: Sequence[UserContext]) -> np.ndarray:
        out = np.empty((len(contexts), self.onnx.n_items), dtype=np.float32)
        for start in range(0, len(contexts), 512):
            chunk = contexts[start : start + 512]
            seq, last = right_pad([c.history for c in chunk], self.config.max_len)
            seq = seq[:, : int(last.max()) + 1]  # as in _score: trailing padding is inert
            out[start : start + len(chunk)] = self.onnx.scores(seq, last)  # (b, V)
        empty = np.array([len(c.history) == 0 for c in contexts], dtype=bool)
        if empty.any():
            out[empty] = 0.0
        return mask_padding(out)

    def user_vectors(self, contexts: Sequence[UserContext]) -> np.ndarray:
        """(B, D) hidden state after each history's last item; zeros for an empty history.
        ``score`` is these against :meth:`item_vectors` (the tied output table)."""
        assert self.net is not None
        net = self.net
        if net.training:  # eval() walks every submodule: not on each request
            net.eval()
        device = net.item_emb.weight.device
        out = np.zeros((len(contexts), net.item_emb.embedding_dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(contexts), 512):
                chunk = contexts[start : start + 512]
                seq, last = right_pad([c.history for c in chunk], self.config.max_len)
                # right-padded + causal: outputs do not depend on trailing padding, so
                # the batch runs only as long as its longest history
                seq = seq[:, : int(last.max()) + 1]
                h = net(torch.from_numpy(seq).to(device))  # (b, T, D)
                rows = torch.arange(len(chunk), device=device)
                h = h[rows, torch.from_numpy(last).to(device)]  # (b, D) after the last item
                out[start : start + len(chunk)] = h.float().cpu().numpy()
        empty = np.array([len(c.history) == 0 for c in contexts], dtype=bool)
        out[empty] = 0.0
        return out

    def item_vectors(self) -> np.ndarray | None:
        """(V, D) output item table (``item_table()`` when the net has side features)."""
        assert self.net is not None
        net = self.net
        if net.training:
            net.eval()
        with torch.inference_mode():
            table = net.item_table() if hasattr(net, "item_table") else net.item_emb.weight
            return table.float().cpu().numpy().copy()

    # ---------------------------------------------------------- save / load
    def _state(self) -> dict[str, np.ndarray]:
        assert self.net is not None
        return {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}

    def _restore(self, bundle: Bundle) -> None:
        self.net = self._new_net(bundle.items.size)
        self.net.load_state_dict({k: torch.from_numpy(v) for k, v in bundle.arrays.items()})
        self.net.eval()
