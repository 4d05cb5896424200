"""Evaluation throughput: the vectorised full-ranking harness against a naive
per-user loop (argsort per user, the way many scripts do it), same scores.

    python benchmarks/bench_eval.py --users 20000 --items 27000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from _machine import header, peak_rss_mib  # noqa: E402

from primetime.data import Dataset  # noqa: E402
from primetime.data.splits import leave_one_out  # noqa: E402
from primetime.eval.protocol import EvalSet, evaluate  # noqa: E402
from primetime.models.base import FitReport, Recommender  # noqa: E402


class RandomFactors(Recommender):
    """Scores = random user vector . item vector (cheap, so the harness dominates)."""

    name = "random-factors"

    class config_class:  # noqa: N801 - minimal config
        pass

    def __init__(self, popularity: np.ndarray, dim: int = 32) -> None:
        self.config = None
        rng = np.random.default_rng(0)
        self.q = 0.1 * rng.standard_normal((popularity.size, dim)).astype(np.float32)
        self.bias = np.log1p(popularity).astype(np.float32)  # some signal, no exact ties

    def _fit(self, train, *, valid, catalog):  # type: ignore[no-untyped-def]
        return FitReport()

    def _score(self, contexts):  # type: ignore[no-untyped-def]
        u = np.stack([self.q[c.history].mean(0) for c in contexts])  # (B, D)
        s = u @ self.q.T + self.bias
        s[:, 0] = -np.inf
        return s


def naive(model: Recommender, es: EvalSet, k: int = 10) -> tuple[float, float]:
    ndcg = []
    t0 = time.perf_counter()
    for i in range(len(es)):
        ctx = es.context(i)
        s = model.score([ctx])[0]
        s[es.excluded(i)] = -np.inf
        order = np.argsort(-s)
        rank = int(np.flatnonzero(order == es.relevant(i)[0])[0]) + 1
        ndcg.append(1 / np.log2(rank + 1) if rank <= k else 0.0)
    return float(np.mean(ndcg)), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--items", type=int, default=27000)
    ap.add_argument("--events-per-user", type=int, default=40)
    ap.add_argument("--naive-users", type=int, default=2000, help="users timed in the naive loop")
    args = ap.parse_args()
    print(header())
    rng = np.random.default_rng(0)
    n = args.users * args.events_per_user
    logp = -0.8 * np.log(np.arange(1, args.items + 1))
    items = np.empty((args.users, args.events_per_user), dtype=np.int64)
    for start in range(0, args.users, 500):  # distinct items per user: Gumbel top-k
        g = logp + rng.gumbel(size=(min(500, args.users - start), args.items))
        items[start : start + 500] = np.argpartition(-g, args.events_per_user, axis=1)[
            :, : args.events_per_user
        ]
    items = items.ravel()
    df = pl.DataFrame(
        {
            "user_id": np.repeat(np.arange(args.users), args.events_per_user),
            "item_id": items,
            "timestamp": np.tile(np.arange(args.events_per_user), args.users),
        }
    )
    ds = Dataset.from_frames("bench", interactions=df, drop_duplicates=False)
    split = leave_one_out(ds.interactions)
    counts = np.bincount(split.train.item_idx, minlength=ds.items.size)
    model = RandomFactors(counts)
    model.items, model.users = ds.items, ds.users
    es = EvalSet.for_test(split)

    t0 = time.perf_counter()
    res = evaluate(model, es, ks=(5, 10, 20))
    t_fast = time.perf_counter() - t0
    sub = EvalSet.for_test(split)  # same users; time the naive loop on a prefix
    keep = min(args.naive_users, len(sub))
    nd_naive, t_naive = naive(model, _prefix(sub, keep))
    fast_rate = len(es) / t_fast
    naive_rate = keep / t_naive
    print(f"users {len(es):,} · catalog {len(ds.items):,} items · {n:,} events")
    print(
        f"harness (all metrics, K=5/10/20, top-20 lists): {t_fast:.2f}s → {fast_rate:,.0f} users/s "
        f"(scoring {res.scoring_seconds:.2f}s of it)"
    )
    print(f"naive per-user argsort loop (NDCG@10 only, {keep:,} users): {naive_rate:,.0f} users/s")
    print(f"speed-up: {fast_rate / naive_rate:.1f}x · peak RSS {peak_rss_mib():,.0f} MiB")
    first = res.values("NDCG@10")[:keep].mean()
    print(f"check: NDCG@10 on the first {keep} users harness {first:.4f} vs naive {nd_naive:.4f}")


def _prefix(es: EvalSet, n: int) -> EvalSet:
    class _P:
        def __len__(self) -> int:
            return n

        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(es, name)

    return _P()  # type: ignore[return-value]


if __name__ == "__main__":
    main()
