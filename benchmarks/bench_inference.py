"""In-process inference latency of the sequential transformer.

Scores one user's 50-title history against a 27,000-title catalog (an
ml-20m-sized catalog; weights are random: latency does not depend on them),
through the public ``Recommender.score`` path (padding, forward, logits,
numpy), and reports p50/p99 over many single-user calls plus batch
throughput. Baseline in the same run: ALS fold-in (``implicit``'s least-squares
solve for the user, then a dot product with every item) on the same catalog.

    python benchmarks/bench_inference.py --items 27000 --calls 500
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
from primetime.models.sasrec import SASRecConfig, SASRecNet, SASRecRecommender  # noqa: E402
from primetime.types import UserContext  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, default=27_000)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--dim", type=int, default=64, help="default: the model's defaults")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=256)
    ap.add_argument("--no-side-features", action="store_true", help="ids only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(header())
    items = Vocabulary([str(i) for i in range(args.items)], name="item")
    rng = np.random.default_rng(0)
    contexts = [UserContext.anonymous(rng.integers(1, args.items + 1, 50)) for _ in range(200)]

    cfg = SASRecConfig(
        dim=args.dim,
        layers=args.layers,
        heads=args.heads,
        ffn=args.ffn,
        side_features=not args.no_side_features,
        device="cpu",
    )
    side = None
    if cfg.side_features:  # 20 genres (1-3 a title) and 5-year buckets, as the default model has
        genres = np.zeros((items.size, 20), dtype=np.float32)
        for k in range(1, items.size):
            genres[k, rng.choice(20, size=rng.integers(1, 4), replace=False)] = 1.0
        years = np.concatenate([[0], rng.integers(1, 20, items.size - 1)]).astype(np.int64)
        side = {"side_genres": torch.from_numpy(genres), "side_years": torch.from_numpy(years)}
    sas = SASRecRecommender(cfg)
    sas.items = items
    sas.net = SASRecNet(items.size, cfg, side).eval()

    als = ALSRecommender(ALSConfig(factors=64))
    als.items = items
    als._model = als._new_model()
    als._model.item_factors = rng.standard_normal((items.size, 64)).astype(np.float32)

    print(
        f"catalog {args.items:,} titles · history 50 · {args.calls} single-user calls · "
        f"torch threads {args.threads} · sasrec {args.dim}d x {args.layers} layers x "
        f"{args.heads} heads, side features {'on' if cfg.side_features else 'off'}"
    )
    print(f"{'model':<10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'batch users/s':>16}")
    for name, model in (("sasrec", sas), ("als", als)):
        row = latency_row(model, contexts, args.calls, args.batch, reps=5)
        print(f"{name:<10}{row}")


if __name__ == "__main__":
    main()
