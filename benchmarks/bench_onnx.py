"""SASRec served by onnxruntime (float32 and INT8 dynamic quantisation) vs torch.

Fits SASRec (the default config; ``--epochs`` of them, no early stopping) on the
ml-100k leave-one-out train part, exports it with ``primetime.models.onnx.
export_onnx`` (float32, then ``quantize_dynamic`` INT8), and in the same run
reports, for torch, ONNX float32 and ONNX INT8:

- test NDCG@10 and HR@10 (EVALUATION.md Task A: full ranking, history = train +
  valid), the change against torch, and the mean top-10 overlap with torch;
- single-user latency of ``score`` (a test user's history, at most 50 titles),
  the three runtimes interleaved call by call so that they see the same machine
  load; the ratio torch / ONNX is the figure.

    python benchmarks/bench_onnx.py --epochs 40
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import header  # noqa: E402

from primetime.data.open import open_dataset  # noqa: E402
from primetime.data.side import SideData  # noqa: E402
from primetime.data.splits import leave_one_out  # noqa: E402
from primetime.eval.protocol import EvalSet, evaluate  # noqa: E402
from primetime.lifecycle import build_model  # noqa: E402
from primetime.models.onnx import export_onnx  # noqa: E402
from primetime.ranking import topk_lists  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="ml-100k")
    ap.add_argument("--epochs", type=int, default=40, help="the default config's 40")
    ap.add_argument("--calls", type=int, default=500, help="single-user calls per runtime")
    ap.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(header())
    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__} · load {os.getloadavg()[0]:.2f}")
    data = open_dataset(args.data).dataset
    split = leave_one_out(data.interactions)
    model = build_model("sasrec", {"epochs": args.epochs, "device": "cpu"})
    t = time.perf_counter()
    model.fit(split.train, side=SideData.build(catalog=data.catalog))
    print(
        f"data {args.data}, leave-one-out, test users' history = train + valid · sasrec "
        f"default config, {args.epochs} epochs on train in {time.perf_counter() - t:.0f}s "
        f"(no early stopping) · {args.threads} thread(s)"
    )
    evalset = EvalSet.for_test(split)
    contexts = split.train_valid().contexts(evalset.user_idx)

    def top10() -> np.ndarray:
        s = model.score(contexts)
        for row, c in enumerate(contexts):
            s[row, c.history] = -np.inf
        return topk_lists(s, 10)[0]

    tmp = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    fp32 = tmp / "sasrec.onnx"
    t = time.perf_counter()
    int8 = export_onnx(model, fp32, int8=True)
    export_s = time.perf_counter() - t
    sizes = {p: p.stat().st_size / 2**20 for p in (fp32, int8)}
    runtimes = {"torch": None, "onnx fp32": fp32, "onnx int8": int8}
    results = {}
    for name, path in runtimes.items():
        model.use_onnx(path, threads=args.threads)
        res = evaluate(model, evalset, ks=(10,))
        results[name] = (res.values("NDCG@10"), res.summary()["HR@10"], top10())
    model.use_onnx(None)

    # latency: one user per call, the three runtimes interleaved
    scorers = {}
    for name, path in runtimes.items():
        m = build_model("sasrec", {"epochs": args.epochs, "device": "cpu"})
        m.items, m.users, m.net, m.side = model.items, model.users, model.net, model.side
        m.use_onnx(path, threads=args.threads)
        scorers[name] = m
    for m in scorers.values():
        for c in contexts[:20]:
            m.score([c])
    lat = np.empty((args.calls, len(scorers)))
    for i in range(args.calls):
        ctx = [contexts[i % len(contexts)]]
        for j, m in enumerate(scorers.values()):
            t = time.perf_counter()
            m.score(ctx)
            lat[i, j] = (time.perf_counter() - t) * 1000
    p50 = np.median(lat, axis=0)
    p99 = np.percentile(lat, 99, axis=0)

    base_ndcg, _, base_top = results["torch"]
    print(
        f"export {export_s:.1f}s · {len(contexts)} test users · {args.calls} single-user "
        "calls per runtime, interleaved\n"
    )
    print(
        f"{'runtime':<11}{'file MiB':>9}{'NDCG@10':>9}{'change':>9}{'HR@10':>8}"
        f"{'top-10 overlap':>15}{'p50 ms':>8}{'p99 ms':>8}{'torch/this p50':>15}"
    )
    for j, (name, (ndcg, hr, top)) in enumerate(results.items()):
        path = runtimes[name]
        size = f"{sizes[path]:.1f}" if path is not None else "-"
        overlap = np.mean(
            [len(np.intersect1d(a, b)) / 10 for a, b in zip(top, base_top, strict=True)]
        )
        print(
            f"{name:<11}{size:>9}{ndcg.mean():>9.4f}{ndcg.mean() - base_ndcg.mean():>+9.4f}"
            f"{hr:>8.4f}{overlap:>15.3f}{p50[j]:>8.2f}{p99[j]:>8.2f}{p50[0] / p50[j]:>14.2f}x"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
