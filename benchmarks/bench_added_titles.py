"""Benchmark: new titles added to a trained model (``extend_items``, the service's path)
against the same titles in the catalog at fit time (what the cold-items benchmark scores).

``primetime benchmark --split cold-items`` fits each model with the held-out (never
watched) titles already in its catalog, metadata and all: their rows are made at fit.
A running service learns of a title after training and grows the model with
``Recommender.extend_items`` (``POST /api/v1/admin/titles``,
:func:`primetime.service.newtitles.grow_model`). Per model, on the same cold-items split:

- **at fit**: the cold-items benchmark's fit (:func:`primetime.lifecycle.fit_model` on the
  split :func:`primetime.lifecycle.prepare_data` makes), test ranked among the test titles;
- **added after**: the same model and settings fit on the catalog, graph and texts
  *without* the test titles (train and valid are the same events; the valid titles stay
  in the catalog, so early stopping sees the same valid set), then grown by
  ``grow_model`` to the whole catalog, the test titles appended with their metadata,
  graph triples and text vectors, and scored on the same test users and targets.

Both are scored by the project's evaluator (pessimistic ties, ranked among the test
titles only), beside ``random`` and ``genre-profile`` fitted at fit time; paired Wilcoxon
tests over users: added after vs at fit, and each row vs genre-profile and random. A
model whose ``extend_items`` cannot grow it gets a row saying so. The two fits of a model
differ by their catalogs, so their random initialisations differ too: the B-A difference
holds fit-to-fit noise as well as the path's effect. The output is appended to
``--out`` (default ``benchmarks/results/added-titles.md``).

    python benchmarks/bench_added_titles.py --data ml-100k --models gnn,contrastive \
        --set contrastive.epochs=2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import header  # noqa: E402

from primetime.data.catalog import Catalog  # noqa: E402
from primetime.data.graph import KnowledgeGraph  # noqa: E402
from primetime.data.interactions import Interactions  # noqa: E402
from primetime.data.side import SideData  # noqa: E402
from primetime.data.splits import Split  # noqa: E402
from primetime.data.vocab import Vocabulary  # noqa: E402
from primetime.eval.evalset import EvalSet  # noqa: E402
from primetime.eval.significance import paired_test  # noqa: E402
from primetime.eval.topn import EvalResult, evaluate  # noqa: E402
from primetime.experiment import parse_overrides  # noqa: E402
from primetime.lifecycle import DataSpec, FitSpec, Prepared, fit_model, prepare_data  # noqa: E402
from primetime.models import get_model_class  # noqa: E402
from primetime.models.base import Recommender  # noqa: E402
from primetime.service.newtitles import grow_model, needs_text  # noqa: E402

REFERENCES = ("random", "genre-profile")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "added-titles.md"


@dataclass
class AddedAfter:
    """A cold-items split as a service sees it when the test titles arrive after training.

    Attributes:
        before: Train and valid in the vocabulary without the test titles (the old
            titles in their original order), the side data without them (catalog rows,
            graph triples naming them, their texts), an empty test part: what the
            model is fit on.
        grown: The whole catalog with the test titles appended after the old ones (the
            vocabulary ``extend_items`` takes) and the whole graph.
        split: The original split's train, valid and test in the grown vocabulary, test
            ranked among the test titles: what the grown model is scored on.
        position: (items.size,) int64 the grown item_idx of each original item_idx.
    """

    before: Prepared
    grown: SideData
    split: Split
    position: np.ndarray


def _remap(inter: Interactions, position: np.ndarray, items: Vocabulary) -> Interactions:
    """``inter`` in another item vocabulary (``position``: old item_idx -> new)."""
    return Interactions(
        user_idx=inter.user_idx,
        item_idx=position[inter.item_idx],
        rating=inter.rating,
        timestamp=inter.timestamp,
        event=inter.event,
        users=inter.users,
        items=items,
    )


def added_after(prepared: Prepared) -> AddedAfter:
    """The "added after" data of a prepared cold-items split (see :class:`AddedAfter`).

    Raises:
        ValueError: if the split has no test candidates (not a cold-items split), no
            catalog, or an event on a test title in train or valid.
    """
    sp, side = prepared.split, prepared.side
    test_items = sp.candidates_of("test")
    valid_items = sp.candidates_of("valid")
    if test_items is None or valid_items is None:
        raise ValueError("added_after needs a cold-items split (test and valid candidates)")
    if side.catalog is None:
        raise ValueError("added_after needs a catalog: the added titles' metadata")
    size = sp.items.size
    is_test = np.zeros(size, dtype=bool)
    is_test[test_items] = True
    for part, inter in (("train", sp.train), ("valid", sp.valid)):
        if is_test[inter.item_idx].any():
            raise ValueError(f"{part} holds events on test titles: not a cold-items split")
    kept = np.flatnonzero(~is_test[1:]) + 1  # original item_idx of the old titles, in order
    order = np.concatenate([kept, test_items])  # grown item_idx k + 1 <- original order[k]
    position = np.zeros(size, dtype=np.int64)
    position[order] = np.arange(1, size)
    grown_catalog = Catalog.from_frame(side.catalog.frame[order - 1])
    n_old = kept.size + 1
    old_catalog = Catalog.from_frame(grown_catalog.frame.head(n_old - 1))
    kg = side.kg
    old_kg = None
    if kg is not None:
        test_ids = pl.Series(sp.items.ids(test_items), dtype=pl.Utf8).implode()
        triples = kg.triples.filter(
            ~pl.col("head").is_in(test_ids) & ~pl.col("tail").is_in(test_ids)
        )
        old_kg = KnowledgeGraph.from_frame(triples)
    old_items, grown_items = old_catalog.items, grown_catalog.items
    train, valid = _remap(sp.train, position, old_items), _remap(sp.valid, position, old_items)
    before_split = Split(
        train=train,
        valid=valid,
        test=train.take(np.zeros(0, dtype=np.int64)),
        protocol=f"{sp.protocol}-before-added",
        candidates={"valid": position[valid_items]},
    )
    before = Prepared(
        spec=prepared.spec,
        split=before_split,
        side=SideData.build(catalog=old_catalog, kg=old_kg, users=side.users),
        name=f"{prepared.name} without its test titles",
    )
    grown_split = Split(
        train=_remap(sp.train, position, grown_items),
        valid=_remap(sp.valid, position, grown_items),
        test=_remap(sp.test, position, grown_items),
        protocol=f"{sp.protocol}-added-after",
        candidates={"valid": position[valid_items], "test": position[test_items]},
    )
    grown = SideData.build(catalog=grown_catalog, kg=kg, users=side.users)
    return AddedAfter(before=before, grown=grown, split=grown_split, position=position)


def grow_after_fit(model: Recommender, after: AddedAfter) -> Recommender | None:
    """``model`` (fit on ``after.before``) grown to the whole catalog the way the service
    grows it (:func:`grow_model`: a copy, ``extend_items``), text vectors encoded for the
    models that read them; None when it cannot score titles it was not trained on."""
    side = after.grown
    if needs_text(model):
        side = side.with_text_vectors(device="cpu")
    return grow_model(model, side)


@dataclass
class Row:
    """One line of the table: a model fit one way with one seed (None: its default)."""

    model: str
    path: str
    seed: int | None
    result: EvalResult | None
    fit_seconds: float
    at_fit: EvalResult | None = None  # the same model and seed at fit (added-after rows)
    note: str = ""

    def ndcg(self) -> float:
        return float("nan") if self.result is None else self.result.summary()["NDCG@10"]


def _fit(name: str, data: Prepared, overrides: dict[str, Any]) -> tuple[Recommender, float]:
    run = fit_model(FitSpec(name, data=data.spec, overrides=overrides), data=data)
    return run.selected, run.fit_seconds


def _score(model: Any, split: Split, catalog: Catalog | None) -> EvalResult:
    return evaluate(model, EvalSet.for_test(split), ks=(10,), catalog=catalog, train=split.train)


def _versus(a: EvalResult | None, b: EvalResult | None) -> str:
    if a is None or b is None or a is b:
        return "—"
    t = paired_test(a, b, metric="NDCG@10")
    return f"{t['mean_diff']:+.4f} ({t['p_value']:.2g})"


def table(rows: Sequence[Row], refs: dict[str, EvalResult], n_boot: int) -> list[str]:
    """Markdown lines: HR@10, NDCG@10 with its CI, paired tests, fit seconds."""
    out = [
        "| model | titles | seed | HR@10 | NDCG@10 [95% CI] | added − at fit (p) | "
        "vs genre-profile (p) | vs random (p) | fit s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        seed = "default" if r.seed is None else str(r.seed)
        if r.result is None:
            out.append(
                f"| {r.model} | {r.path} | {seed} | — | {r.note} | — | — | — | "
                f"{r.fit_seconds:.0f} |"
            )
            continue
        ndcg, lo, hi = r.result.ci("NDCG@10", n_boot=n_boot)
        hr = r.result.summary()["HR@10"]
        out.append(
            f"| {r.model} | {r.path} | {seed} | {hr:.4f} | {ndcg:.4f} [{lo:.4f}, {hi:.4f}] | "
            f"{_versus(r.result, r.at_fit)} | {_versus(r.result, refs.get('genre-profile'))} | "
            f"{_versus(r.result, refs.get('random'))} | {r.fit_seconds:.0f} |"
        )
    return out


def main(argv: Sequence[str] | None = None) -> list[Row]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="ml-100k", help="Data set (as primetime benchmark --data).")
    ap.add_argument(
        "--models",
        default="gnn,contrastive,multimodal",
        help="Models fit both ways, comma-separated (random and genre-profile are always "
        "scored at fit as references; naming genre-profile here also grows it).",
    )
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="MODEL.KEY=VALUE",
        help="A model option for both fits (repeatable), e.g. contrastive.epochs=2.",
    )
    ap.add_argument(
        "--seeds",
        default="",
        help="Model seeds, comma-separated: each model is fit both ways once per seed "
        "(default: once, with its own default seed). The two ways' catalogs differ, so "
        "their initialisations do too: seeds show how much of a gap is fit-to-fit.",
    )
    ap.add_argument("--n-boot", type=int, default=1000, help="Bootstrap resamples of the CIs.")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file appended to.")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    for n in names:
        get_model_class(n)  # an unknown name fails here, listing the known ones
    seeds: list[int | None] = [int(x) for x in args.seeds.split(",") if x.strip()] or [None]
    overrides: dict[str, dict[str, Any]] = {}
    for key, value in parse_overrides(args.overrides).items():
        model, dot, option = key.partition(".")
        if not dot or model not in names:
            ap.error(f"--set takes MODEL.KEY=VALUE for one of {names}, got {key!r}")
        overrides.setdefault(model, {})[option] = value

    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    for line in header().splitlines():
        say(line)
    say(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    t_start = time.perf_counter()
    prepared = prepare_data(DataSpec(data=args.data, split="cold-items"))
    sp = prepared.split
    after = added_after(prepared)
    n_test = after.split.candidates["test"].size
    say(
        f"{prepared.name} · split {sp.protocol} · {sp.sizes()} · test ranked among its "
        f"{n_test} test titles · added after: fit on {len(after.before.split.items)} titles, "
        f"{n_test} appended by extend_items"
    )
    rows: list[Row] = []
    refs: dict[str, EvalResult] = {}
    for name in REFERENCES:  # at fit, default settings: the columns' references
        model, seconds = _fit(name, prepared, {})
        refs[name] = _score(model, sp, prepared.side.catalog)
        rows.append(Row(name, "at fit", None, refs[name], seconds))
        say(f"  {name} at fit: NDCG@10 {rows[-1].ndcg():.4f}")
    for name in names:
        for seed in seeds:
            opts = {**overrides.get(name, {}), **({} if seed is None else {"seed": seed})}
            if name in refs and not opts:
                at_fit = refs[name]
            else:
                model, seconds = _fit(name, prepared, opts)
                at_fit = _score(model, sp, prepared.side.catalog)
                rows.append(Row(name, "at fit", seed, at_fit, seconds))
                say(
                    f"  {name} seed {seed} at fit: fit {seconds:.0f}s · "
                    f"NDCG@10 {rows[-1].ndcg():.4f}"
                )
            before, seconds = _fit(name, after.before, opts)
            assert before.items == after.before.split.items  # the test titles were not in the fit
            grown = grow_after_fit(before, after)
            if grown is None:
                rows.append(
                    Row(
                        name, "added after", seed, None, seconds, note="extend_items cannot grow it"
                    )
                )
                say(f"  {name} seed {seed} added after: fit {seconds:.0f}s · cannot grow")
                continue
            result = _score(grown, after.split, after.grown.catalog)
            rows.append(Row(name, "added after", seed, result, seconds, at_fit=at_fit))
            say(
                f"  {name} seed {seed} added after: fit {seconds:.0f}s · "
                f"NDCG@10 {rows[-1].ndcg():.4f}"
            )
    say()
    for line in table(rows, refs, args.n_boot):
        say(line)
    say()
    if len(seeds) > 1:
        for name in names:
            for path in ("at fit", "added after"):
                v = [
                    r.ndcg() for r in rows if (r.model, r.path) == (name, path) and r.seed in seeds
                ]
                v = [x for x in v if not np.isnan(x)]
                if v:
                    say(
                        f"{name} {path}: NDCG@10 over {len(v)} seeds mean {np.mean(v):.4f}, "
                        f"min {min(v):.4f}, max {max(v):.4f}"
                    )
        say()
    say(
        f"{refs['random'].n_users} test users; p: paired Wilcoxon signed-rank over users of "
        "NDCG@10 (row minus the named model; 'added − at fit': the same model and seed at "
        f"fit); total {time.perf_counter() - t_start:.0f}s"
    )
    say(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        new = not args.out.exists()
        with args.out.open("a", encoding="utf-8") as f:
            if new:
                f.write(
                    "# New titles added after training vs in the catalog at fit "
                    "(`benchmarks/bench_added_titles.py`)\n\nOutput exactly as printed, "
                    "one section per run.\n"
                )
            f.write(f"\n## {args.data} · {', '.join(names)}\n\n```\n")
            f.write("\n".join(lines) + "\n```\n")
    return rows


if __name__ == "__main__":
    main()
