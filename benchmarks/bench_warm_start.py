"""Benchmark: ``primetime retrain`` of sasrec warm-started from the promoted version vs
from scratch, in the same run, on the drifting world of ``primetime.loopdemo``.

sasrec v1 is fit on the base log (default settings) and promoted in two registries; each
then gets the same retrain (base log + week 1 exported, newest ``--slice-days`` = the gate
slice): one warm (``--warm-epochs`` at most, from v1's weights), one cold (the default
epochs, fresh init). Printed per seed: wall seconds of the retrain (fit, refit, gate) and
of the fits alone, the refit's epochs (the selection fit's best), the selection fit's
NDCG@10 on the gate slice (full ranking) and v1's on the same users, and the gate's
decision.

    python benchmarks/bench_warm_start.py --seeds 0,1 --warm-epochs 10
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import header  # noqa: E402

from primetime.lifecycle import DataSpec, build_model, prepare_data  # noqa: E402
from primetime.loopdemo import DriftConfig, make_world, write_week1_export  # noqa: E402
from primetime.registry import ModelRegistry  # noqa: E402
from primetime.retrain import retrain  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1", help="World seeds, comma-separated.")
    ap.add_argument("--warm-epochs", type=int, default=10)
    ap.add_argument("--slice-days", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(header())
    print(f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        "\n| seed | start | retrain s | fit s | refit epochs | NDCG@10 slice | v1 NDCG@10 | "
        "promoted |\n|---|---|---|---|---|---|---|---|"
    )
    for seed in [int(s) for s in args.seeds.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            world = make_world(DriftConfig(seed=seed))
            base = work / "base.parquet"
            world.base.write_parquet(base)
            export = write_week1_export(world, work / "export")
            spec = DataSpec(data=str(base), split="slice", slice_days=args.slice_days)
            prepared = prepare_data(spec)
            v1 = build_model("sasrec", {"device": "cpu", "seed": seed})
            t = time.perf_counter()
            v1.fit(prepared.whole_log(), side=prepared.side)
            v1_s = time.perf_counter() - t
            for warm in (True, False):
                reg = ModelRegistry(work / ("warm" if warm else "cold"))
                reg.promote("sasrec", reg.register(v1).version)
                t = time.perf_counter()
                (r,) = retrain(
                    ["sasrec"],
                    data=str(base),
                    events=export,
                    registry=reg,
                    slice_days=args.slice_days,
                    warm_start=warm,
                    warm_epochs=args.warm_epochs if warm else None,
                    say=lambda _: None,
                )
                wall = time.perf_counter() - t
                meta = r.version.meta
                start = meta["retrain"]["warm_start"]
                label = f"warm from {start['from']}" if start["from"] else "cold"
                epochs = (meta.get("fit_on") or {}).get("epochs", "?")
                print(
                    f"| {seed} | {label} | {wall:.1f} | {meta.get('train_seconds', 0):.1f} | "
                    f"{epochs} | {r.gate.candidate:.4f} | {r.gate.promoted:.4f} | "
                    f"{'yes' if r.promoted else 'no'} |"
                )
            print(f"| {seed} | (v1 fit on the base log) | | {v1_s:.1f} | | | | |")
    print(f"\nload after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
