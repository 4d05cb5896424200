"""Load + prepare a MovieLens-25M-sized log (ratings.csv + movies.csv layout).

Writes a synthetic log of --rows rows (162k users, 60k titles, long-tailed
popularity) to a temp folder, then times, each in a fresh process so peak
memory is per phase:
  baseline  polars.read_csv of ratings.csv (pure parsing, nothing else)
  cold      primetime prepare(): parse + validate + vocabularies + Parquet cache
  warm      prepare() again: cache hit (sha256 of inputs + Parquet read)

    python benchmarks/bench_load.py --rows 25000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from _machine import header, peak_rss_mib  # noqa: E402

PHASE = r"""
import json, sys, time, resource
t0 = time.perf_counter()
mode, folder = sys.argv[1], sys.argv[2]
if mode == "baseline":
    import polars as pl
    n = pl.read_csv(folder + "/ratings.csv").height
else:
    from primetime.data.loaders import prepare
    n = len(prepare(folder).interactions)
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": n,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_log(folder: Path, rows: int, users: int, items: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    chunk = 5_000_000
    logp = 1.0 / np.arange(1, items + 1) ** 0.9
    p = logp / logp.sum()
    with open(folder / "ratings.csv", "w") as f:
        f.write("userId,movieId,rating,timestamp\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            df = pl.DataFrame(
                {
                    "userId": np.sort(rng.integers(1, users + 1, n)),
                    "movieId": rng.choice(items, size=n, p=p) + 1,
                    "rating": rng.integers(1, 11, n) / 2,
                    "timestamp": rng.integers(789_652_009, 1_574_327_703, n),
                }
            )
            f.write(df.write_csv(include_header=False))
    genres = np.array(["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller"])
    pl.DataFrame(
        {
            "movieId": np.arange(1, items + 1),
            "title": [f"Title {i} ({1950 + i % 70})" for i in range(1, items + 1)],
            "genres": ["|".join(genres[[i % 7, (i * 3) % 7]]) for i in range(items)],
        }
    ).write_csv(folder / "movies.csv")


def run_phase(mode: str, folder: Path, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", PHASE, mode, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=25_000_000)
    ap.add_argument("--users", type=int, default=162_541)
    ap.add_argument("--items", type=int, default=59_047)
    args = ap.parse_args()
    print(header())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ml-25m"
        folder.mkdir()
        t0 = time.perf_counter()
        write_log(folder, args.rows, args.users, args.items)
        size = (folder / "ratings.csv").stat().st_size / 2**20
        print(f"wrote {args.rows:,} rows ({size:,.0f} MiB CSV) in {time.perf_counter() - t0:.1f}s")
        env = {**os.environ, "PRIMETIME_HOME": str(Path(tmp) / "home")}
        base = run_phase("baseline", folder, env)
        cold = run_phase("cold", folder, env)
        warm = run_phase("warm", folder, env)
    print(f"{'phase':<10}{'seconds':>10}{'rows/s':>14}{'peak MiB':>10}{'vs baseline':>13}")
    for name, r in (("baseline", base), ("cold", cold), ("warm", warm)):
        print(
            f"{name:<10}{r['seconds']:>10.1f}{r['rows'] / r['seconds']:>14,.0f}"
            f"{r['peak_mib']:>10,.0f}"
            f"{r['seconds'] / base['seconds']:>12.2f}x"
        )
    print(f"(this process peak {peak_rss_mib():,.0f} MiB while writing the log)")


if __name__ == "__main__":
    main()
