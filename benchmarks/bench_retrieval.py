"""FAISS candidate retrieval vs exact full scoring on a catalog of 100k+ titles.

On the ``xl-catalog`` synthetic world (109,251 titles, 20,000 users), fits each
model on the leave-one-out train part, then for a sample of test users compares
the exact top-100 (every title scored, the user's history removed) with the
top-100 of the retrieval path (``Recommender.enable_retrieval``: a FAISS
inner-product index retrieves ``candidates`` + history-length titles, which are
scored exactly; every other title is -inf). Prints, per model and index kind:
index build time, recall@100 and recall@10 against exact scoring, HR@10 of the
held-out test title both ways, and single-user request latency (``score`` +
history removal + top-10), exact and retrieval calls interleaved user by user so
both see the same machine load; the ratio exact / retrieval is the figure.
"index only" is recall@100 without the ``RetrievalConfig.common`` items (the best items
for the model's mean user vector, added to every user's candidates): what the FAISS
index finds by itself.

HNSW searches ``max(ef_search, n)`` wide, n the largest candidates + history length of a
256-user batch (up to 200 + 622 on xl-catalog): in the recall columns ef_search below n
changes nothing; the single-user latency columns use each user's own n.

    python benchmarks/bench_retrieval.py --preset xl-catalog --models als,sasrec
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import header  # noqa: E402

from primetime.data.open import open_dataset  # noqa: E402
from primetime.data.side import SideData  # noqa: E402
from primetime.data.splits import leave_one_out  # noqa: E402
from primetime.lifecycle import build_model  # noqa: E402
from primetime.models import get_model_class  # noqa: E402
from primetime.models.base import Recommender  # noqa: E402
from primetime.models.retrieval import RetrievalConfig, recall_at  # noqa: E402
from primetime.ranking import topk_lists  # noqa: E402
from primetime.types import UserContext  # noqa: E402

#: Model settings for this benchmark: the defaults, except SASRec's loss (full
#: softmax over 109k titles is what sampled softmax exists for) and its epochs.
MODEL_SETTINGS = {
    "als": {"factors": 64},
    "bpr": {"factors": 64, "iterations": 30},
    "sasrec": {"loss": "sampled_softmax", "epochs": 1, "patience": 0, "device": "cpu"},
    "gru4rec": {"epochs": 2, "patience": 0, "device": "cpu"},
}


def top_ranked(model: Recommender, contexts: list[UserContext], k: int) -> np.ndarray:
    """(B, k) best items per user, history removed (the served ranking)."""
    out = []
    for start in range(0, len(contexts), 256):
        chunk = contexts[start : start + 256]
        s = model.score(chunk)  # (b, V)
        for row, c in enumerate(chunk):
            s[row, c.history] = -np.inf
        out.append(topk_lists(s, k)[0])
    return np.concatenate(out)


def request(model: Recommender, ctx: UserContext) -> np.ndarray:
    """One user's top-10, as a request computes it."""
    s = model.score([ctx])  # (1, V)
    s[0, ctx.history] = -np.inf
    return topk_lists(s, 10)[0]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--preset", default="xl-catalog")
    ap.add_argument("--models", default="als,sasrec")
    ap.add_argument("--kinds", default="hnsw,ivf")
    ap.add_argument("--common", type=int, default=200, help="RetrievalConfig.common")
    ap.add_argument("--ef-search", default="256,512", help="HNSW search widths to try")
    ap.add_argument("--nprobe", default="16,64", help="IVF cells probed, values to try")
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--users", type=int, default=1000, help="test users for recall and HR")
    ap.add_argument("--calls", type=int, default=300, help="single-user calls per path")
    ap.add_argument("--threads", type=int, default=1, help="torch, BLAS and FAISS threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="Keep fitted models here (<dir>/<preset>-<model>): a later run loads them "
        "instead of fitting again (the same split and settings; delete to refit)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(header())
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")

    t0 = time.perf_counter()
    data = open_dataset(f"synthetic-{args.preset}").dataset
    split = leave_one_out(data.interactions)
    print(
        f"data: synthetic-{args.preset} ({data.items.size - 1:,} titles, "
        f"{len(data.interactions):,} events), leave-one-out; test users' history = train + "
        f"valid; {time.perf_counter() - t0:.1f}s to load and split"
    )
    hist = split.train_valid()
    test_users = np.unique(split.test.user_idx)
    rng = np.random.default_rng(args.seed)
    users = np.sort(rng.choice(test_users, size=min(args.users, len(test_users)), replace=False))
    contexts = [c for c in hist.contexts(users) if len(c.history)]
    held = dict(zip(split.test.user_idx.tolist(), split.test.item_idx.tolist(), strict=True))
    target = np.array([held[c.user_idx] for c in contexts])
    print(
        f"{len(contexts)} test users · top-100 recall against exact scoring · candidates "
        f"{args.candidates} + history length · {args.calls} single-user requests per path "
        f"(score + history removal + top-10), interleaved · {args.threads} thread(s)\n"
    )
    print(
        f"{'model':<8}{'index':<16}{'build s':>8}{'recall@100':>11}{'index only':>11}"
        f"{'recall@10':>10}"
        f"{'HR@10 exact':>12}{'HR@10 idx':>10}{'exact p50 ms':>13}{'index p50 ms':>13}"
        f"{'ratio p50':>10}{'ratio mean':>11}"
    )
    for name in args.models.split(","):
        saved = args.model_dir / f"{args.preset}-{name}" if args.model_dir else None
        fit_s = float("nan")
        if saved is not None and (saved / "bundle.json").exists():
            model = get_model_class(name).load(saved)
            print(f"  ({name}: loaded from {saved}, fit earlier on the same train part)")
        else:
            model = build_model(name, MODEL_SETTINGS.get(name, {}))
            t = time.perf_counter()
            model.fit(split.train, side=SideData.build(catalog=data.catalog))
            fit_s = time.perf_counter() - t
            if saved is not None:
                model.save(saved)
        exact100 = top_ranked(model, contexts, 100)
        hr_exact = float(np.mean((exact100[:, :10] == target[:, None]).any(1)))
        for kind in args.kinds.split(","):
            cfg = RetrievalConfig(
                kind=kind, candidates=args.candidates, threads=args.threads, common=args.common
            )
            t = time.perf_counter()
            model.enable_retrieval(cfg)
            build_s = time.perf_counter() - t
            index = model.retrieval
            assert index is not None
            knob, values = ("ef", args.ef_search) if kind == "hnsw" else ("nprobe", args.nprobe)
            for value in [int(v) for v in values.split(",")] if kind != "flat" else [0]:
                if kind == "hnsw":
                    index.set_search(ef_search=value)
                elif kind == "ivf":
                    index.set_search(nprobe=value)
                label = f"{kind} {knob}={value}" if kind != "flat" else kind
                found100 = top_ranked(model, contexts, 100)
                hr_idx = float(np.mean((found100[:, :10] == target[:, None]).any(1)))
                r100 = recall_at(exact100, found100)
                common, index.common = index.common, np.zeros(0, dtype=np.int64)
                alone = recall_at(exact100, top_ranked(model, contexts, 100))  # no common items
                index.common = common
                r10 = recall_at(exact100[:, :10], found100[:, :10])
                for c in contexts[:20]:  # warm-up both paths
                    request(model, c)
                model.retrieval = None
                for c in contexts[:20]:
                    request(model, c)
                lat = np.empty((args.calls, 2))
                for i in range(args.calls):
                    ctx = contexts[i % len(contexts)]
                    for j, on in enumerate((None, index)):
                        model.retrieval = on
                        t = time.perf_counter()
                        request(model, ctx)
                        lat[i, j] = (time.perf_counter() - t) * 1000
                model.retrieval = index
                p50 = np.median(lat, axis=0)
                mean = lat.mean(axis=0)
                print(
                    f"{name:<8}{label:<16}{build_s:>8.1f}{r100:>11.3f}{alone:>11.3f}{r10:>10.3f}"
                    f"{hr_exact:>12.4f}{hr_idx:>10.4f}{p50[0]:>13.2f}{p50[1]:>13.2f}"
                    f"{p50[0] / p50[1]:>9.1f}x{mean[0] / mean[1]:>10.1f}x"
                )
        fit = f"fit {fit_s:.0f}s on train" if fit_s == fit_s else "loaded, not fit in this run"
        print(f"  ({name}: {fit}, settings {MODEL_SETTINGS.get(name, {})})")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
