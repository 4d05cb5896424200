"""ONNX export of the sequence models (``sasrec``, ``gru4rec``), INT8 dynamic
quantisation, and scoring through onnxruntime.

The exported graph is the scorer: right-padded item sequences ``seq`` (B, T) int64
and each row's last real position ``last`` (B,) int64 in, scores of every item
``scores`` (B, V) float32 out (padding not yet masked); batch and sequence length
are dynamic axes. The item table (with SASRec's genre and year features folded in)
is a constant of the graph, so the file alone serves the model.

INT8: ``onnxruntime.quantization.quantize_dynamic`` stores the weights of every
MatMul / Gemm (the transformer's projections and the item table) as int8 and
quantises activations per batch at run time; how much ranking it costs and how
much time it saves is measured by ``benchmarks/bench_onnx.py``.

Serving: ``model.use_onnx(path)`` (a :class:`~primetime.models.sequential.
SequentialRecommender` method) makes ``score`` run the file through onnxruntime;
``primetime export-onnx`` writes the files, ``primetime recommend --onnx`` uses them.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

#: Opset of the export: 17 has LayerNormalization as one op.
OPSET = 17


class _Scorer(nn.Module):
    """``net`` as one function: (seq (B, T), last (B,)) -> scores (B, V)."""

    net: Any  # a sequence net: forward (B, T) -> (B, T, D) and logits (B, D) -> (B, V)

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, seq: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        h = self.net(seq)  # (B, T, D)
        idx = last[:, None, None].expand(-1, 1, h.shape[2])  # (B, 1, D)
        h = h.gather(1, idx)[:, 0]  # (B, D) after each row's last item
        return self.net.logits(h)  # (B, V)


class _SASRecScorer(nn.Module):
    """SASRec's forward written out for export: the same arithmetic as
    :meth:`SASRecNet.forward` in eval mode (dropout off), with attention as
    ``scaled_dot_product_attention`` on dynamic shapes.

    Why not trace ``nn.TransformerEncoder`` itself: the TorchScript exporter freezes
    the sequence length of ``nn.MultiheadAttention``'s internal reshapes at the
    example's (measured: a graph traced at T = 4 fails at T = 8).
    """

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.net = net

    def forward(self, seq: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        net = self.net
        cfg = net.cfg
        x = F.embedding(seq, net.item_table()) * math.sqrt(cfg.dim)  # (B, T, D)
        pos = None
        if cfg.positions == "learned":
            pos = net.pos_emb.weight
        elif cfg.positions == "sinusoidal":
            pos = net.pos_table
        if pos is not None:
            x = x + pos[: seq.shape[1]]  # (T, D) broadcast over B
        x = net.emb_norm(x)
        for layer in net.encoder.layers:  # norm_first blocks
            x = x + self._attend(layer.self_attn, layer.norm1(x))
            x = x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
        h = net.final_norm(x)  # (B, T, D)
        idx = last[:, None, None].expand(-1, 1, h.shape[2])  # (B, 1, D)
        return net.logits(h.gather(1, idx)[:, 0])  # (B, V)

    @staticmethod
    def _attend(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
        heads = attn.num_heads
        qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)  # (B, T, 3D)
        q, k, v = (
            t.unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, H, T, D/H)
            for t in qkv.chunk(3, dim=-1)
        )
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D/H)
        return attn.out_proj(out.transpose(1, 2).flatten(2))  # (B, T, D)


def export_onnx(model: Any, path: str | Path, *, int8: bool = False) -> Path:
    """Write a fitted sequence model's scorer as ONNX (and its INT8 version).

    Args:
        model: A fitted :class:`~primetime.models.sequential.SequentialRecommender`.
        path: The float32 ``.onnx`` file to write.
        int8: Also write ``<stem>.int8.onnx`` beside it (dynamic quantisation).

    Returns:
        The file to serve: the INT8 one when ``int8``, else ``path``.
    """
    net = getattr(model, "net", None)
    if net is None or not hasattr(net, "logits"):
        raise ValueError(f"{getattr(model, 'name', model)!r} has no fitted sequence net to export")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.to("cpu").eval()
    t = min(4, model.config.max_len)
    seq = torch.randint(1, net.item_emb.num_embeddings, (2, t))  # (2, T) example input
    last = torch.tensor([t - 1, t - 2])  # (2,)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # the fused inference kernel of nn.TransformerEncoderLayer has no ONNX form: trace
    # the plain ops instead (same arithmetic)
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            torch.onnx.export(
                _SASRecScorer(net) if hasattr(net, "encoder") else _Scorer(net),
                (seq, last),
                str(path),
                dynamo=False,  # the TorchScript exporter: no onnxscript dependency
                input_names=["seq", "last"],
                output_names=["scores"],
                dynamic_axes={
                    "seq": {0: "batch", 1: "time"},
                    "last": {0: "batch"},
                    "scores": {0: "batch"},
                },
                opset_version=OPSET,
                do_constant_folding=True,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    if not int8:
        return path
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path.with_name(path.stem + ".int8.onnx")
    quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
    return out


class OnnxScorer:
    """An onnxruntime session over an exported scorer.

    Args:
        path: A file written by :func:`export_onnx`.
        threads: Intra-op threads (None: onnxruntime's default, every core).
    """

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX file at {path}")
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.path = path
        self.session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.n_items = int(self.session.get_outputs()[0].shape[1])

    def scores(self, seq: np.ndarray, last: np.ndarray) -> np.ndarray:
        """(B, V) float32 scores for ``seq`` (B, T) and ``last`` (B,), int64."""
        feeds = {"seq": seq.astype(np.int64), "last": last.astype(np.int64)}
        return np.asarray(self.session.run(["scores"], feeds)[0], dtype=np.float32)
