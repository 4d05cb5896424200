"""In-process inference latency of the graph model (``gnn``).

Scores one user's 50-title history against a 27,000-title catalog (an
ml-20m-sized catalog; weights and the item table are random: latency does not
depend on them) through the public ``Recommender.score`` path: the history
query (one attention over the history's propagated item vectors) and one
(V, D) mat-vec against the item table precomputed after fit. No graph pass
happens at serving time. Reports p50/p90/p99 over single-user calls and batch
throughput; baseline in the same run: ALS fold-in on the same catalog.

    python benchmarks/bench_gnn.py --items 27000 --calls 500
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _latency import latency_row  # noqa: E402
from _machine import header  # noqa: E402

from primetime.data.vocab import Vocabulary  # noqa: E402
from primetime.models.factorization import ALSConfig, ALSRecommender  # noqa: E402
from primetime.models.gnn import (  # noqa: E402
    GNNConfig,
    GNNNet,  # noqa: E402
    GNNRecommender,
    edge_types,
)
from primetime.types import UserContext  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, default=27_000)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--dim", type=int, default=64, help="default: the model's default")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(header())
    items = Vocabulary([str(i) for i in range(args.items)], name="item")
    rng = np.random.default_rng(0)
    contexts = [UserContext.anonymous(rng.integers(1, args.items + 1, 50)) for _ in range(200)]

    cfg = GNNConfig(dim=args.dim, device="cpu")
    gnn = GNNRecommender(cfg)
    gnn.items = items
    gnn.net = GNNNet(items.size, 1, edge_types([], [], False), cfg).eval()
    gnn._table = torch.randn(items.size, args.dim) / args.dim**0.5  # as fit leaves it

    als = ALSRecommender(ALSConfig(factors=args.dim))
    als.items = items
    als._model = als._new_model()
    als._model.item_factors = rng.standard_normal((items.size, args.dim)).astype(np.float32)

    print(
        f"catalog {args.items:,} titles · history 50 · {args.calls} single-user calls · "
        f"torch threads {args.threads} · gnn {args.dim}d, item table precomputed"
    )
    print(f"{'model':<10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'batch users/s':>16}")
    for name, model in (("gnn", gnn), ("als", als)):
        row = latency_row(model, contexts, args.calls, args.batch, reps=5)
        print(f"{name:<10}{row}")


if __name__ == "__main__":
    main()
