"""Seconds an epoch of each neural model on each device: the GPU timing of issue 11
(and the CUDA path of the training engine: bfloat16 autocast, optional
``torch.compile``), with the CPU as the baseline in the same run.

Each model is fit on ml-100k's leave-one-out train part for ``--epochs`` epochs
(no validation, so every epoch runs; the model's own settings otherwise), once per
device; the first epoch (CUDA start-up, compilation, caches) is reported apart
from the median of the others. Test NDCG@10 after those epochs is printed beside
each fit as a check that the device's weights score like the CPU's (a few
epochs: not the model's figure).

    python benchmarks/bench_epoch.py --models sasrec,gnn,multimodal,contrastive --devices cpu,cuda
    python benchmarks/bench_epoch.py --models sasrec --devices cuda --set compile=true
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import header  # noqa: E402

from primetime.eval.protocol import EvalSet, evaluate  # noqa: E402
from primetime.experiment import parse_overrides  # noqa: E402
from primetime.lifecycle import DataSpec, build_model, prepare_data  # noqa: E402
from primetime.models import get_model_class  # noqa: E402
from primetime.models.base import FitOptions  # noqa: E402


def main(argv: list[str] | None = None) -> dict[tuple[str, str], float]:
    """Run the benchmark; returns the median epoch seconds by (model, device)."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="ml-100k")
    ap.add_argument("--models", default="sasrec,gnn,multimodal,contrastive")
    ap.add_argument("--devices", default="cpu,cuda", help="comma-separated; cpu is the baseline")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per fit (at least 2)")
    ap.add_argument(
        "--set", dest="sets", action="append", default=[], help="config KEY=VALUE, every model"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all)")
    args = ap.parse_args(argv)
    if args.epochs < 2:
        ap.error("--epochs must be at least 2 (the first epoch is reported apart)")
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    if any(d.startswith("cuda") for d in devices) and not torch.cuda.is_available():
        ap.error("a cuda device was asked for but torch sees no GPU")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(header())
    if torch.cuda.is_available():
        print(f"gpu: {torch.cuda.get_device_name()}, bf16 {torch.cuda.is_bf16_supported()}")
    data = prepare_data(DataSpec(data=args.data, split="loo"))
    sp = data.split
    print(f"data: {data.name}, train {len(sp.train):,} events, test {len(sp.test):,} users")
    extra = parse_overrides(args.sets)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if any("text" in get_model_class(n).uses for n in names):
        data.side = data.side.with_text_vectors()  # cached on disk: encoded once, on the CPU
    print(
        f"\n{'model':<12} {'device':<7} {'1st epoch s':>11} {'epoch s':>8} "
        f"{'ex/s':>9} {'fit s':>7} {'NDCG@10':>8}"
    )
    rows: dict[tuple[str, str], float] = {}
    for name in names:
        for dev in devices:
            model = build_model(name, {**extra, "epochs": args.epochs, "device": dev})
            on_gpu = dev.startswith("cuda")
            held = 0
            if on_gpu:
                torch.cuda.reset_peak_memory_stats()
                held = torch.cuda.memory_allocated()
            t0 = time.perf_counter()
            report = model.fit(
                sp.train, side=data.side, options=FitOptions(device=dev, select=False)
            )
            if on_gpu:
                torch.cuda.synchronize()
            fit_s = time.perf_counter() - t0
            if on_gpu and torch.cuda.max_memory_allocated() <= held:
                # the model keeps to the CPU whatever it is asked (gnn: the graph lives
                # in host memory); say so rather than print a CPU time as a GPU one
                print(f"{name:<12} {dev:<7} trained on the CPU (the model ignores the device)")
                continue
            secs = [row["seconds"] for row in report.history if "seconds" in row]
            if len(secs) < 2:
                print(f"{name:<12} {dev:<7} the fit logged {len(secs)} epoch(s); skipped")
                continue
            rest = statistics.median(secs[1:])
            rows[name, dev] = rest
            notes = report.notes
            eps = notes.get("examples_per_second", notes.get("sequences_per_second", 0.0))
            ndcg = evaluate(model, EvalSet.for_test(sp), ks=(10,)).summary()["NDCG@10"]
            print(
                f"{name:<12} {dev:<7} {secs[0]:>11.2f} {rest:>8.2f} {eps or float('nan'):>9,.0f} "
                f"{fit_s:>7.1f} {ndcg:>8.4f}",
                flush=True,
            )
    base = "cpu" if "cpu" in devices else devices[0]
    if len(devices) > 1:
        print(f"\nepoch speed-up against {base} (median epoch after the first):")
        for (name, dev), s in rows.items():
            if dev != base and (name, base) in rows:
                print(f"  {name:<12} {dev:<7} {rows[name, base] / s:6.1f}x")
    return rows


if __name__ == "__main__":
    main()
