"""The content heads' request-time terms on ml-100k: what the staged suite pays at every
head fit (``fit_weights``) and a request pays per call (``TitleFacts.features``).

The facts are the graph model's links of ml-100k's training titles; the positions are
10,000 training prefixes drawn with seed 0 (histories of up to 50 titles), asked against
every watched title, as ``_fit_terms`` asks them. Printed: one batch's terms (500
positions), one request's terms over every title, and a ``fit_weights`` of 200 steps
with each batch rebuilt at every visit (``CACHE_BYTES = 0``, the baseline) against the
batches kept packed (the default), with the weights compared bit for bit.

    python benchmarks/bench_terms.py

Run from a checkout of an earlier commit (copy this file there) it measures that
commit's code; the packed rows are left out where ``TitleFacts.codes`` does not exist.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import header  # noqa: E402

from primetime.lifecycle import DataSpec, prepare_data  # noqa: E402
from primetime.models import titlecontext  # noqa: E402
from primetime.models.gnn import title_links  # noqa: E402
from primetime.models.titlecontext import TermsConfig, TitleFacts, fit_weights  # noqa: E402


def timed(f, n: int) -> float:
    """Mean milliseconds of ``n`` calls of ``f`` after one untimed call."""
    f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1000


def main() -> None:
    print(header())
    p = prepare_data(DataSpec(data="ml-100k"))
    train, side = p.split.train, p.side
    n = train.items.size
    facts = TitleFacts.of(
        titlecontext.release_days(side, 0, n), title_links(side.kg, train.items, 2)
    )
    watched = np.zeros(n, bool)
    watched[train.item_idx] = True
    cand = np.flatnonzero(watched)
    by_user: dict[int, list[int]] = {}
    for u, i in zip(train.user_idx.tolist(), train.item_idx.tolist(), strict=True):
        by_user.setdefault(u, []).append(i)
    rng = np.random.default_rng(0)
    users = [u for u, h in by_user.items() if len(h) >= 2]
    hists, targets = [], []
    for _ in range(10_000):
        h = by_user[users[rng.integers(len(users))]]
        k = int(rng.integers(1, min(len(h), 51)))
        hists.append(np.array(h[max(0, k - 50) : k], np.int64))
        targets.append(h[k])
    now = np.full(500, 8.8e8)
    print(
        f"facts: {len(facts.relations)} relations, {len(facts.pair_relations)} title-title, "
        f"{len(facts.names())} terms; {len(cand):,} candidate titles"
    )
    ms = timed(lambda: facts.features(hists[:500], now, cand), 5)
    print(f"features, 500 positions x {len(cand):,} titles: {ms:.0f} ms")
    if hasattr(facts, "codes"):
        codes = facts.codes(hists[:500], now, cand)
        assert codes is not None
        print(f"  packed (codes): {timed(lambda: facts.codes(hists[:500], now, cand), 5):.0f} ms")
        print(f"  unpacked: {timed(lambda: titlecontext.unpack(codes), 5):.0f} ms")
    every = np.arange(1, n)
    ms = timed(lambda: [facts.features([h], now[:1], every) for h in hists[:200]], 1) / 200
    print(f"one request over every title: {ms:.2f} ms")

    torch.manual_seed(0)
    u, v = torch.randn(10_000, 16), torch.randn(len(cand), 16)
    args = (
        facts,
        lambda idx: u[idx] @ v.T,
        lambda idx: [hists[i] for i in idx.tolist()],
        torch.full((10_000,), 880_000_000, dtype=torch.int64),
        torch.tensor(targets),
        torch.from_numpy(cand),
        torch.zeros(len(cand)),
        TermsConfig(steps=200),
    )
    fits = {}
    rooms = {"rebuilt at each visit": 0}
    if hasattr(titlecontext, "CACHE_BYTES"):
        rooms["kept packed"] = titlecontext.CACHE_BYTES
    for name, room in rooms.items():
        titlecontext.CACHE_BYTES = room
        t = time.perf_counter()
        fits[name] = fit_weights(*args)
        print(f"fit_weights, 200 steps of 500, {name}: {time.perf_counter() - t:.1f} s")
    if len(fits) == 2:
        (w0, a0), (w1, a1) = fits.values()
        print(f"  the same weights bit for bit: {bool(np.array_equal(w0, w1) and a0 == a1)}")


if __name__ == "__main__":
    main()
