"""Benchmark: how fast, and in how much memory, a synthetic world is generated.

Prints the machine, the command line, and for one preset: generation time,
interactions per second, peak resident memory, and the oracle's throughput
(exact next-item distributions per second).

    .venv/bin/python benchmarks/bench_synthetic.py --preset medium
    .venv/bin/python benchmarks/bench_synthetic.py --preset ml-25m --out-dir /tmp/ml25m-world
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from primetime.data.synthetic import PRESETS, World, generate
from primetime.types import UserContext


def machine() -> dict[str, str]:
    """Platform, CPU count and RAM of this machine."""
    from primetime.machine import cpu_model, ram_gib

    gib = ram_gib()
    ram = "?" if gib is None else f"{gib:.1f} GiB"
    cpu = cpu_model()
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
            ).stdout.strip()
            or "?"
        )
    except OSError:
        commit = "?"
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu": cpu,
        "cpu_count": str(os.cpu_count()),
        "ram": ram,
        "load_avg_1m_before": f"{os.getloadavg()[0]:.2f}",
        "commit": commit,
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def oracle_throughput(world: World, n: int, seed: int = 0) -> tuple[float, int]:
    """Seconds per exact next-item distribution, over ``n`` users' last events."""
    inter = world.dataset.interactions
    indptr, order = inter.user_histories()
    rng = np.random.default_rng(seed)
    users = np.flatnonzero(np.diff(indptr) >= 2)
    users = rng.choice(users, size=min(n, users.size), replace=False)
    contexts = []
    for u in users:
        rows = order[indptr[u] : indptr[u + 1]]
        contexts.append(
            UserContext(
                user_idx=int(u),
                history=inter.item_idx[rows[:-1]],
                now=int(inter.timestamp[rows[-1]]),
            )
        )
    t0 = time.perf_counter()
    for b in range(0, len(contexts), 64):
        world.next_item_probs(contexts[b : b + 64])
    return (time.perf_counter() - t0) / max(len(contexts), 1), len(contexts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="medium", choices=sorted(PRESETS))
    ap.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="write Parquet parts while generating and save the world here",
    )
    ap.add_argument(
        "--save",
        action="store_true",
        help="also time World.save into a temporary directory (without --out-dir)",
    )
    ap.add_argument("--workers", type=int, default=1, help="processes generating chunks")
    ap.add_argument(
        "--oracle-users",
        type=int,
        default=256,
        help="contexts for the oracle throughput figure (0 skips it)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    print("## machine")
    for k, v in machine().items():
        print(f"- {k}: {v}")
    print(f"- command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    cfg = PRESETS[args.preset]
    print(f"- config: {cfg}")
    print(f"- workers: {args.workers}")
    rss0 = peak_rss_mib()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    chunk_rss = [rss0]
    last_report = [0.0]

    def progress(done: int, total: int) -> None:
        chunk_rss.append(peak_rss_mib())
        if done == total or done / total >= last_report[0] + 0.1:
            last_report[0] = done / total
            logging.info(
                "%d / %d users after %.1f s, peak RSS %.0f MiB",
                done,
                total,
                time.perf_counter() - t0,
                chunk_rss[-1],
            )

    world = generate(cfg, out_dir=args.out_dir, progress=progress, workers=args.workers)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    rss1 = peak_rss_mib()
    n = len(world.dataset.interactions)
    print(f"\n## synthetic-{args.preset}")
    print("| figure | value |\n|---|---|")
    print(
        f"| users / titles (movies + seasons) | {len(world.dataset.users):,} / "
        f"{len(world.dataset.catalog):,} ({world.dataset.manifest['counts']['movies']:,} + "
        f"{world.dataset.manifest['counts']['shows']:,}) |"
    )
    print(f"| interactions | {n:,} |")
    print(f"| KG triples | {len(world.dataset.kg):,} |")
    print(f"| generation wall time{' (incl. save)' if args.out_dir else ''} | {wall:.1f} s |")
    print(f"| generation CPU time (process) | {cpu:.1f} s |")
    print(f"| interactions / s (wall) | {n / wall:,.0f} |")
    print(
        f"| peak RSS: before / after the event chunks / after the dataset build | "
        f"{rss0:,.0f} / {chunk_rss[-1]:,.0f} / {rss1:,.0f} MiB |"
    )
    if args.workers > 1:
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"| peak RSS of the largest worker process | {child:,.0f} MiB |")
    if args.save and args.out_dir is None:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            world.save(d)
            print(f"| World.save | {time.perf_counter() - t0:.1f} s |")
    if args.out_dir is not None:
        t0 = time.perf_counter()
        World.load(args.out_dir)
        print(f"| World.load from --out-dir | {time.perf_counter() - t0:.1f} s |")
    if args.oracle_users:
        per, m = oracle_throughput(world, args.oracle_users)
        print(f"| oracle next_item_probs ({m} users, batches of 64) | {per * 1e3:.2f} ms/user |")
    print(f"| load avg (1 min) after | {os.getloadavg()[0]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
