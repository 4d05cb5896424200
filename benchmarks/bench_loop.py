"""Benchmark: the learning loop on a drifting world with arriving titles (primetime.loopdemo).

Serves the models fit on the base log, posts a simulated week through the API, exports the
event store, retrains (gate on the newest slice, promote), lets the worker swap under load,
and scores the served top-10 of every live user against their next week, before and after
(NDCG@10, paired Wilcoxon test). Prints the machine, the command and a Markdown table.

    .venv/bin/python benchmarks/bench_loop.py
    .venv/bin/python benchmarks/bench_loop.py --live-users 100 --seed 1
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import header  # noqa: E402

from primetime.loopdemo import DriftConfig, report_dict, run_loop  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-users", type=int, default=200)
    ap.add_argument("--live-users", type=int, default=60)
    ap.add_argument("--base-events", type=int, default=DriftConfig.base_events)
    ap.add_argument("--week-events", type=int, default=DriftConfig.week_events)
    ap.add_argument("--first-viewers", type=float, default=DriftConfig.first_viewers)
    ap.add_argument("--slice-days", type=float, default=1.0, help="The gate's newest slice.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--margin", type=float, default=0.0)
    ap.add_argument("--json", type=Path, help="Also write the figures here.")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    import torch

    torch.set_num_threads(1)
    print(header())
    cfg = DriftConfig(
        n_base_users=args.base_users,
        n_live_users=args.live_users,
        base_events=args.base_events,
        week_events=args.week_events,
        first_viewers=args.first_viewers,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        r = run_loop(cfg, Path(tmp), margin=args.margin, slice_days=args.slice_days)
    wall = time.perf_counter() - t0
    t = r.test
    print(
        f"\nworld: {cfg.n_genres} genres x {cfg.items_per_genre} titles (+{cfg.new_per_genre} "
        f"new each), {cfg.n_base_users} base users x {cfg.base_events} events over "
        f"{cfg.base_weeks} weeks, {cfg.n_live_users} live users x {cfg.week_events} events/week, "
        f"{cfg.first_viewers:.0%} of them first viewers, seed {cfg.seed}; served models "
        f"{', '.join(cfg.models)}; gate slice {args.slice_days:g} days, margin {args.margin}\n"
    )
    print("| served top-10, next week | before the loop | after the loop |")
    print("|---|---|---|")
    print(f"| version | {r.before_version} | {r.after_version} |")
    print(f"| NDCG@10 (all live users) | {r.ndcg_before:.4f} | {r.ndcg_after:.4f} |")
    print(
        f"| top-10 holds a new title (users who had not met one) | {r.new_in_top10_before:.0%} "
        f"| {r.new_in_top10_after:.0%} |"
    )
    print(
        f"| top-10 hits a new title watched next week (same users) | {r.new_hit_before:.0%} "
        f"| {r.new_hit_after:.0%} |"
    )
    print(
        f"\npaired Wilcoxon on per-user NDCG@10 (after - before): diff {t['mean_diff']:+.4f} "
        f"[{t['ci_low']:+.4f}, {t['ci_high']:+.4f}], p = {t['p_value']:.2g}, {t['n_users']} users"
    )
    for name, g in r.gates.items():
        print(
            f"gate {name} {g['version']}: "
            f"{'promoted' if g['promote'] else 'kept out'}: {g['reason']}"
        )
    print(
        f"swap under load: {r.requests_during_swap} requests, {r.failed_during_swap} failed, "
        f"{len(r.versions_after_swap)} started after the swap was seen, served by "
        f"{sorted(set(r.versions_after_swap))}; exported events "
        f"{r.exported_events}"
    )
    print(
        "seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in r.seconds.items()) + f"; wall {wall:.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps(report_dict(r), indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
