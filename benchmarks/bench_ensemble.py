"""In-process latency of the learned fusion: one user through every member and the ranker.

Fits ``ensemble`` (members ``sasrec,itemknn,als,popularity`` by default, SASRec for
one epoch: latency does not depend on the weights) on a generated log over a large
catalog (random genres and years), then scores one user's 50-title history at a
time through the public ``Recommender.score`` path: every member scores the whole
catalog, the union of their top titles gets its features, LightGBM ranks them.
Beside it, each member alone (the same fitted objects). The later target of
issue 12: p99 <= 10 ms for the whole fusion.

    python benchmarks/bench_ensemble.py --items 27000 --calls 300
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


def dataset(n_items: int, n_users: int, rng: np.random.Generator) -> Dataset:
    """Users who watch 20 titles each, mostly within two of the 20 genres' blocks."""
    items = [f"t{i}" for i in range(n_items)]
    catalog = pl.DataFrame(
        {
            "item_id": items,
            "title": [f"Title {i}" for i in range(n_items)],
            "year": rng.integers(1950, 2026, n_items).astype(np.int32),
            "genres": [[GENRES[i % 20], GENRES[(i // 20) % 20]] for i in range(n_items)],
        }
    )
    rows = []
    for u in range(n_users):
        block = rng.integers(0, n_items - 500)
        for k, i in enumerate(block + rng.integers(0, 500, 20)):
            rows.append((f"u{u}", items[int(i)], 1_000_000 + u * 1000 + k * 60))
    log = pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row")
    return Dataset.from_frames("bench", interactions=log, catalog=catalog)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, default=27_000)
    ap.add_argument("--users", type=int, default=2_000)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--members", default="sasrec,itemknn,als,popularity")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(header())
    rng = np.random.default_rng(0)
    ds = dataset(args.items, args.users, rng)
    side = SideData.build(catalog=ds.catalog)
    contexts = [UserContext.anonymous(rng.integers(1, args.items + 1, 50)) for _ in range(200)]
    quick = {"sasrec": "sasrec.epochs=1", "als": "als.iterations=2"}
    settings = ",".join(quick[m] for m in args.members.split(",") if m in quick)
    model = build_model("ensemble", {"members": args.members, "member_settings": settings})
    t = time.perf_counter()
    model.fit(ds.interactions, side=side)
    fit = time.perf_counter() - t
    print(
        f"catalog {args.items:,} titles · {len(ds.interactions):,} events · history 50 · "
        f"{args.calls} single-user calls · torch threads {args.threads} · LightGBM 1 thread · "
        f"ensemble fit {fit:.0f} s (members fit twice; {settings or 'member defaults'})"
    )
    print(f"{'model':<12}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'batch users/s':>16}")
    for name, member in model.member_models().items():
        print(f"{name:<12}{latency_row(member, contexts, args.calls, args.batch, reps=3)}")
    print(f"{'ensemble':<12}{latency_row(model, contexts, args.calls, args.batch, reps=3)}")


if __name__ == "__main__":
    main()
