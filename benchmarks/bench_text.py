"""Encoding item texts: cold (nothing cached) and warm (every text cached).

Builds ml-100k's item texts (title, year, genres and the knowledge graph's
facts in words, see ``primetime.data.side.item_texts``) and encodes them with
``primetime.data.text.encode_texts`` (all-MiniLM-L6-v2 from its wheel, offline)
into a fresh cache folder: cold, then warm (best of ``--warm`` runs). The
encoder is loaded (and warmed up) first and timed on its own, so texts/s is
encoding only.
Baseline in the same run: ``SentenceTransformer.encode`` of the same texts
without the cache.

    PRIMETIME_HOME=... python benchmarks/bench_text.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import header, peak_rss_mib  # noqa: E402

from primetime.data import text  # noqa: E402
from primetime.data.open import open_dataset  # noqa: E402
from primetime.data.side import SideData  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="ml-100k", help="a data set name (open_dataset)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N titles (0: all)")
    ap.add_argument("--warm", type=int, default=3, help="warm runs (best is reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    print(header())

    t = time.perf_counter()
    ds = open_dataset(args.data).dataset
    t_open = time.perf_counter() - t
    t = time.perf_counter()
    side = SideData.of(ds)
    t_texts = time.perf_counter() - t
    texts = list(side.item_texts or ())
    if args.limit:
        texts = texts[: args.limit + 1]
    n = sum(1 for x in texts if x)
    chars = np.array([len(x) for x in texts if x])
    print(
        f"{args.data}: {n:,} item texts ({len(set(texts) - {''}):,} distinct), "
        f"{chars.mean():.0f} chars on average (max {chars.max()}); "
        f"data opened in {t_open:.2f}s, texts built in {t_texts * 1000:.0f} ms"
    )
    print(f"e.g. {texts[min(50, len(texts) - 1)]!r}")

    name = text.encoder_name()
    t = time.perf_counter()
    model = text._load(name, "cpu")
    t_load = time.perf_counter() - t
    model.encode(["warm-up"] * 8, show_progress_bar=False)  # first-call set-up is not encoding
    print(f"encoder {name}: loaded in {t_load:.2f}s")

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-text-") as tmp:
        cache = Path(tmp)
        t = time.perf_counter()
        cold = text.encode_texts(texts, cache_dir=cache)
        rows.append(("cold (encode + write cache)", time.perf_counter() - t))
        best = float("inf")
        for _ in range(max(args.warm, 1)):
            t = time.perf_counter()
            warm = text.encode_texts(texts, cache_dir=cache)
            best = min(best, time.perf_counter() - t)
        rows.append(("warm (all cached)", best))
        size = sum(f.stat().st_size for f in cache.iterdir())
    assert np.array_equal(cold, warm), "the cache returned other vectors"

    t = time.perf_counter()
    base = model.encode(
        [x for x in texts if x],
        batch_size=text.BATCH,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    rows.append(("baseline: encode, no cache", time.perf_counter() - t))
    diff = float(np.abs(base - cold[[i for i, x in enumerate(texts) if x]]).max())

    print(f"cache file {size / 2**20:.1f} MiB; max |cold - baseline| = {diff:.1e}")
    print(f"{'phase':<28} {'seconds':>8} {'texts/s':>10}")
    for label, sec in rows:
        print(f"{label:<28} {sec:>8.3f} {n / sec:>10,.0f}")
    print(
        f"warm / cold speed-up: {rows[0][1] / rows[1][1]:,.0f}x; "
        f"cold / baseline time: {rows[0][1] / rows[2][1]:.2f}; "
        f"peak RSS {peak_rss_mib():,.0f} MiB"
    )
    print(f"load average (1 min) at start {load0:.1f}, at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
