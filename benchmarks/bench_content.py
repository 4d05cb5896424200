"""In-process inference latency of the content models against a large catalog.

Fits ``gnn``, ``multimodal`` and ``contrastive`` for one short epoch on a
generated log over a 27,000-title catalog (an ml-20m-sized catalog: random
genres, years, a small knowledge graph of directors and actors, random unit
"text" vectors in place of the encoder's, since latency does not depend on the
weights), then scores one user's 50-title history at a time through the public
``Recommender.score`` path (item tables precomputed after fit, as served).
Baseline in the same run: ALS fold-in on the same catalog. Reports p50/p90/p99
over single-user calls and batch throughput. The issue's target: p99 <= 5 ms.

    python benchmarks/bench_content.py --items 27000 --calls 300
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _latency import latency_row  # noqa: E402
from _machine import header  # noqa: E402

from primetime.data.dataset import Dataset  # noqa: E402
from primetime.data.side import SideData  # noqa: E402
from primetime.lifecycle import build_model  # noqa: E402
from primetime.types import UserContext  # noqa: E402

GENRES = [f"Genre{g}" for g in range(20)]
ONE_EPOCH = {
    "gnn": {"epochs": 1},
    "multimodal": {"epochs": 1},
    "contrastive": {"epochs": 1},
    "als": {"iterations": 2},
}


def dataset(n_items: int, n_users: int, rng: np.random.Generator) -> Dataset:
    items = [f"t{i}" for i in range(n_items)]
    catalog = pl.DataFrame(
        {
            "item_id": items,
            "title": [f"Title {i}" for i in range(n_items)],
            "year": rng.integers(1950, 2026, n_items).astype(np.int32),
            "genres": [list(rng.choice(GENRES, size=2, replace=False)) for _ in items],
        }
    )
    rows = [
        (f"u{u}", items[i], 1_000_000 + u * 1000 + k)
        for u in range(n_users)
        for k, i in enumerate(rng.integers(0, n_items, 20))
    ]
    log = pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row")
    kg = pl.DataFrame(
        [(t, "directed_by", f"person:d{rng.integers(0, n_items // 5)}") for t in items]
        + [(t, "actor", f"person:a{rng.integers(0, n_items // 2)}") for t in items],
        schema=["head", "relation", "tail"],
        orient="row",
    )
    return Dataset.from_frames("bench", interactions=log, catalog=catalog, kg=kg)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, default=27_000)
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--models", default="als,gnn,multimodal,contrastive")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(header())
    rng = np.random.default_rng(0)
    ds = dataset(args.items, args.users, rng)
    text = rng.standard_normal((ds.items.size, 384)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    text[0] = 0.0
    side = SideData.build(catalog=ds.catalog, kg=ds.kg)
    side = SideData(side.catalog, side.kg, side.users, side.item_texts, text_vectors=text)
    contexts = [UserContext.anonymous(rng.integers(1, args.items + 1, 50)) for _ in range(200)]
    print(
        f"catalog {args.items:,} titles · history 50 · {args.calls} single-user calls · "
        f"torch threads {args.threads} · one training epoch each (latency does not depend "
        "on the weights)"
    )
    print(f"{'model':<12}{'fit s':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'batch users/s':>16}")
    for name in args.models.split(","):
        model = build_model(name, ONE_EPOCH.get(name))
        t = time.perf_counter()
        model.fit(ds.interactions, side=side)
        fit = time.perf_counter() - t
        row = latency_row(model, contexts, args.calls, args.batch, reps=3)
        print(f"{name:<12}{fit:>8.1f}{row}")


if __name__ == "__main__":
    main()
