"""In-process latency of the learned fusion: one user through every member and the ranker.

Fits ``ensemble`` (its default members, ``EnsembleConfig.members``; the transformers
for one epoch: latency does not depend on the weights) on a generated log over a large
catalog (random genres and years), then scores one user's 50-title history at a
time through the public ``Recommender.score`` path: every member scores the whole
catalog, each member's top titles are found by partition and ranked by counting,
the union gets its features, LightGBM ranks it. In the same run, on the same
fitted objects and calls: the former path that ranks every title of every member
(``primetime.models.ensemble_reference``; its candidate scores are checked equal),
all members alone (the floor of any fusion) and each member alone; then where a
fast request's time goes (members, candidates + features, ranker, assembly). The
target of issue 12: p99 <= 10 ms for the whole fusion.

    python benchmarks/bench_ensemble.py --items 27000 --calls 300
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _latency import batch_rate  # noqa: E402
from _machine import header  # noqa: E402

from primetime.data.dataset import Dataset  # noqa: E402
from primetime.data.side import SideData  # noqa: E402
from primetime.lifecycle import build_model  # noqa: E402
from primetime.models.base import top_k  # noqa: E402
from primetime.models.ensemble import (  # noqa: E402
    EnsembleConfig,
    EnsembleRecommender,
    _unseen_scores,
    candidates_and_features,
    fused_scores,
    ranker_scores,
)
from primetime.models.ensemble_reference import reference_score  # noqa: E402
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
    ap.add_argument("--members", default=EnsembleConfig().members)
    ap.add_argument(
        "--trees",
        type=int,
        default=40,
        help="boosting rounds per bag: this fit has no valid set to stop them, and the "
        "trees are most of the ranker's time (ml-100k's valid stops each bag at 27-44)",
    )
    ap.add_argument(
        "--serve-candidates",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[],
        help="also time the fitted ensemble taking this many titles per member, e.g. 50,30",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(header())
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    rng = np.random.default_rng(0)
    ds = dataset(args.items, args.users, rng)
    side = SideData.build(catalog=ds.catalog)
    contexts = [UserContext.anonymous(rng.integers(1, args.items + 1, 50)) for _ in range(200)]
    quick = {
        "sasrec": "sasrec.epochs=1",
        "temporal": "temporal.epochs=1",
        "als": "als.iterations=2",
    }
    settings = ",".join(quick[m] for m in args.members.split(",") if m in quick)
    model = build_model(
        "ensemble", {"members": args.members, "member_settings": settings, "trees": args.trees}
    )
    t = time.perf_counter()
    model.fit(ds.interactions, side=side)
    fit = time.perf_counter() - t
    print(
        f"catalog {args.items:,} titles · {len(ds.interactions):,} events · history 50 · "
        f"{args.calls} single-user calls · torch threads {args.threads} · LightGBM 1 thread · "
        f"ensemble fit {fit:.0f} s (members fit twice; {settings or 'member defaults'}); "
        f"ranker {model.config.bags} bags, {model.booster.num_trees()} trees in all"
    )
    members = list(model.member_models().values())
    check = contexts[:20]
    assert model.stats is not None
    cands = candidates_and_features(
        [_unseen_scores(m, check) for m in members], check, model.stats, model.config.candidates
    )
    fast, old = model.score(check), reference_score(model, check)
    same = np.array_equal(fast[cands.rows, cands.cols], old[cands.rows, cands.cols])
    top10 = np.array_equal(top_k(fast, 10)[0], top_k(old, 10)[0])
    print(f"fast = former path, 20 users: every candidate's score {same}, top-10 lists {top10}")
    rows: dict[str, Any] = {"ensemble": model}
    for top in args.serve_candidates:
        if top != model.config.candidates:
            rows[f"ensemble top-{top}"] = with_candidates(model, top)
    rows |= {
        "former path": Scorer(lambda c: reference_score(model, c)),
        "all members": Scorer(lambda c: [m.score(c) for m in members]),
        **model.member_models(),
    }
    wall, cpu = interleaved(rows, contexts, args.calls)
    print(
        f"{args.calls} single-user calls, interleaved call by call; "
        "cpu = the process's CPU time of the call (preemption by other work left out)"
    )
    print(
        f"{'model':<18}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        f"{'cpu p50':>9}{'cpu p99':>9}{'batch users/s':>16}"
    )
    for name, scorer in rows.items():
        w50, w90, w99 = np.percentile(wall[name], [50, 90, 99])
        c50, c99 = np.percentile(cpu[name], [50, 99])
        rate = batch_rate(scorer, contexts[: args.batch], reps=3)
        print(f"{name:<18}{w50:>9.2f}{w90:>9.2f}{w99:>9.2f}{c50:>9.2f}{c99:>9.2f}{rate:>16,.0f}")
    print("where a fast single-user request's time goes (ms):")
    print(f"{'phase':<24}{'p50':>9}{'p99':>9}{'cpu p50':>9}{'cpu p99':>9}")
    for phase, (w, c) in phases(model, contexts, args.calls).items():
        w50, w99 = np.percentile(w, [50, 99])
        c50, c99 = np.percentile(c, [50, 99])
        print(f"{phase:<24}{w50:>9.2f}{w99:>9.2f}{c50:>9.2f}{c99:>9.2f}")
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


class Scorer:
    """An object with ``score`` for :func:`batch_rate`."""

    def __init__(self, fn: Callable[[list[UserContext]], object]) -> None:
        self.score = fn


def with_candidates(model: EnsembleRecommender, top: int) -> EnsembleRecommender:
    """The same fitted ranker and members, taking ``top`` titles from each member."""
    out = EnsembleRecommender(dataclasses.replace(model.config, candidates=top))
    out.items, out.booster, out.stats = model.items, model.booster, model.stats
    out.fitted = model.member_models()
    return out


def interleaved(
    scorers: dict[str, Any], contexts: list[UserContext], calls: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Wall and CPU milliseconds of ``calls`` single-user calls of every scorer, taking
    turns call by call (a load change hits all alike), after 20 warm-up calls each."""
    for s in scorers.values():
        for c in contexts[:20]:
            s.score([c])
    wall = {n: np.empty(calls) for n in scorers}
    cpu = {n: np.empty(calls) for n in scorers}
    for i in range(calls):
        ctx = [contexts[i % len(contexts)]]
        for name, s in scorers.items():
            t, c = time.perf_counter(), time.process_time()
            s.score(ctx)
            cpu[name][i] = (time.process_time() - c) * 1000
            wall[name][i] = (time.perf_counter() - t) * 1000
    return wall, cpu


def phases(
    model: EnsembleRecommender, contexts: list[UserContext], calls: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Wall and CPU milliseconds per phase of ``calls`` single-user fast-path requests."""
    assert model.stats is not None and model.booster is not None and model.items is not None
    names = ("members score", "candidates + features", "ranker (LightGBM)", "assemble (B, V)")
    wall = {n: np.empty(calls) for n in names}
    cpu = {n: np.empty(calls) for n in names}
    members = list(model.member_models().values())
    for i in range(calls):
        ctx = [contexts[i % len(contexts)]]
        marks = [(time.perf_counter(), time.process_time())]
        scores = [_unseen_scores(m, ctx) for m in members]
        marks.append((time.perf_counter(), time.process_time()))
        cands = candidates_and_features(scores, ctx, model.stats, model.config.candidates)
        marks.append((time.perf_counter(), time.process_time()))
        pred = ranker_scores(model.booster, cands)
        marks.append((time.perf_counter(), time.process_time()))
        fused_scores(cands, pred, (1, model.items.size))
        marks.append((time.perf_counter(), time.process_time()))
        for j, n in enumerate(names):
            wall[n][i] = (marks[j + 1][0] - marks[j][0]) * 1000
            cpu[n][i] = (marks[j + 1][1] - marks[j][1]) * 1000
    return {n: (wall[n], cpu[n]) for n in names}


if __name__ == "__main__":
    main()
