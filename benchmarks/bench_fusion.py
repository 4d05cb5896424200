"""Which members and how many candidates per member the learned fusion should use,
chosen on valid, each configuration then scored once on test.

Every configuration is fit by the real recipe (``fit_model`` of ``ensemble``: the
earlier cut, the ranker early-stopped on valid, the final members) and evaluated by
the project's own full-ranking harness. Only one thing is shared: a member fit on a
given cut is the same object in every configuration (fitting ``temporal`` twice per
configuration would cost an hour per row on a shared 2-core machine), so each member
is fit once on the earlier cut and once on train, and saved under ``--cache`` so an
interrupted run resumes. The final members are the single models of the comparison
(fit on train exactly as each is alone), so the paired tests pair the fusion with
the very members it reorders.

Selection: the configuration with the best valid NDCG@10 of its final ensemble
(histories = train, target = valid); the best single member is the one with the
best valid NDCG@10. Test is reported for every configuration tried (one evaluation
each) with a paired Wilcoxon test against that member (and ``--versus``).

    python benchmarks/bench_fusion.py --data ml-100k --member-sets \\
        "temporal,sasrec,itemknn,als,popularity;temporal,itemknn,als,popularity;\\
sasrec,itemknn,als,popularity" \\
        --candidates 20,30,50,100 --threads 2 --versus sasrec,itemknn,als,popularity:100 \\
        --report docs/results/ml-100k-fusion

``--rankers`` tries ensemble settings on top (the earlier cut's members are kept per
``cut_events``), e.g. the size of the ranker's training data and trees::

    python benchmarks/bench_fusion.py --data ml-100k \\
        --member-sets "temporal,itemknn,als,popularity" --candidates 20 \\
        --rankers "cut_events=1;cut_events=3;cut_events=3,leaves=15,min_child=200" \\
        --report docs/results/ml-100k-fusion-ranker
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _machine import header  # noqa: E402

from primetime.data.interactions import Interactions  # noqa: E402
from primetime.data.side import SideData  # noqa: E402
from primetime.eval.protocol import EvalSet, evaluate  # noqa: E402
from primetime.eval.report import Report, make_stamp  # noqa: E402
from primetime.eval.significance import paired_test  # noqa: E402
from primetime.experiment import parse_overrides  # noqa: E402
from primetime.lifecycle import DataSpec, FitSpec, fit_model, prepare_data  # noqa: E402
from primetime.models import get_model_class  # noqa: E402
from primetime.models.base import FitOptions, Recommender  # noqa: E402
from primetime.models.ensemble import EnsembleRecommender, member_model  # noqa: E402


def shared_members(cache: Path) -> dict[tuple[str, str], float]:
    """Make every ensemble fit each member once per cut (``tag`` "cut" or "final"),
    saved under ``cache/<tag>-<name>``; returns the fit seconds it fills in."""
    seconds: dict[tuple[str, str], float] = {}
    store = cache / "seconds.json"
    if store.exists():
        seconds = {tuple(k.split("/")): v for k, v in json.loads(store.read_text()).items()}  # type: ignore[misc]
    live: dict[tuple[str, str], Recommender] = {}

    def fit_members(
        self: EnsembleRecommender,
        train: Interactions,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
        tag: str,
    ) -> tuple[dict[str, Recommender], dict[str, float]]:
        if self.config.member_settings:
            raise ValueError("bench_fusion shares default members; drop member_settings")
        out, secs = {}, {}
        # the earlier cut's members depend on how many events it holds out
        cut = f"{tag}{self.config.cut_events}" if tag == "cut" else tag
        for name in self.config.member_names():
            key = (cut, name)
            folder = cache / f"{cut}-{name}"
            if key not in live:
                if key in seconds and folder.exists():
                    live[key] = get_model_class(member_model(name)[0]).load(folder)
                else:
                    model = self._build_member(name)
                    t0 = time.perf_counter()
                    model.fit(train, valid=valid, side=side, options=options)
                    seconds[key] = round(time.perf_counter() - t0, 1)
                    model.save(folder)
                    store.write_text(json.dumps({"/".join(k): v for k, v in seconds.items()}))
                    print(f"  fit {cut} {name}: {seconds[key]:.0f}s", flush=True)
                    live[key] = model
            out[name], secs[name] = live[key], seconds[key]
        return out, secs

    EnsembleRecommender._fit_members = fit_members  # type: ignore[method-assign]
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="ml-100k")
    ap.add_argument("--member-sets", default="temporal,sasrec,itemknn,als,popularity")
    ap.add_argument("--candidates", default="20,30,50,100")
    ap.add_argument(
        "--rankers",
        default="",
        help="Semicolon-separated ensemble settings tried with every member set and "
        "candidate count, e.g. 'leaves=15,min_child=50;cut_events=1' (empty: the defaults).",
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads of each fit")
    ap.add_argument("--cache", type=Path, default=Path("runs/bench_fusion"))
    ap.add_argument("--report", type=Path, default=None)
    ap.add_argument(
        "--versus",
        default="",
        help="One of the tried configurations, MEMBERS:CANDIDATES, that every other is also "
        "paired-tested against (e.g. the former default 'sasrec,itemknn,als,popularity:100').",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(header(), flush=True)

    sets = [s.strip() for s in args.member_sets.split(";") if s.strip()]
    cands = [int(c) for c in args.candidates.split(",")]
    rankers = [r.strip() for r in args.rankers.split(";")]  # "": the defaults
    ranker_sets = [parse_overrides([kv for kv in r.split(",") if kv]) for r in rankers]
    args.cache.mkdir(parents=True, exist_ok=True)
    seconds = shared_members(args.cache)
    prepared = prepare_data(DataSpec(data=args.data))
    sp, catalog = prepared.split, prepared.side.catalog
    valid_set, test_set = EvalSet.for_valid(sp), EvalSet.for_test(sp)
    options = FitOptions(threads=args.threads)
    ks = (5, 10, 20)

    rows: list[dict[str, Any]] = []
    tests = []
    ensembles: list[EnsembleRecommender] = []
    for members, c, (ranker, extra) in itertools.product(
        sets, cands, zip(rankers, ranker_sets, strict=True)
    ):
        label = f"ensemble[{members}|c{c}" + (f"|{ranker}]" if ranker else "]")
        t0 = time.perf_counter()
        run = fit_model(
            FitSpec(
                "ensemble",
                overrides={"members": members, "candidates": c, **extra},
                options=options,
            ),
            data=prepared,
        )
        fit_s = time.perf_counter() - t0
        assert isinstance(run.model, EnsembleRecommender)
        ensembles.append(run.model)
        valid = run.valid["valid NDCG@10"]
        res = evaluate(run.model, test_set, ks=ks, catalog=catalog, train=sp.train)
        res.model = label
        tests.append(res)
        s = res.summary()
        row = {
            "config": label,
            "valid NDCG@10": round(valid, 4),
            "test NDCG@10": round(s["NDCG@10"], 4),
            "test HR@10": round(s["HR@10"], 4),
            "trees": run.report.notes.get("trees"),
            "target_in_candidates": run.report.notes.get("target_in_candidates"),
            "seconds (ranker + eval, members shared)": round(fit_s, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    # the single members: the final fits (every ensemble above reorders them, unless
    # it serves its earlier cut's members: refit_members=false)
    singles: dict[str, Recommender] = {}
    for e in ensembles:
        final, _ = e._fit_members(sp.train, sp.valid, prepared.side, options, "final")
        singles.update(final)
    single_valid = {}
    for name, m in singles.items():
        single_valid[name] = float(evaluate(m, valid_set, ks=(10,)).summary()["NDCG@10"])
        res = evaluate(m, test_set, ks=ks, catalog=catalog, train=sp.train)
        res.model = name  # its role: "temporal@2" is a "temporal" model
        tests.append(res)
        s = res.summary()
        print(
            json.dumps(
                {
                    "config": name,
                    "valid NDCG@10": round(single_valid[name], 4),
                    "test NDCG@10": round(s["NDCG@10"], 4),
                    "test HR@10": round(s["HR@10"], 4),
                }
            ),
            flush=True,
        )
    best_member = max(single_valid, key=lambda n: single_valid[n])
    picked = max(rows, key=lambda r: r["valid NDCG@10"])
    by_name = {r.model: r for r in tests}
    versus = [best_member]
    if args.versus:
        members, _, c = args.versus.rpartition(":")
        versus.append(args.versus if args.versus in by_name else f"ensemble[{members}|c{c}]")
        if versus[-1] not in by_name:
            raise SystemExit(f"--versus {args.versus!r} is not among the tried configurations")
    for row in rows:
        for ref in versus:
            if ref == row["config"]:
                continue
            t = paired_test(by_name[row["config"]], by_name[ref])
            row[f"p vs {ref}"] = float(f"{t['p_value']:.3g}")
            row[f"diff vs {ref}"] = round(t["mean_diff"], 4)
    print(f"\nbest member on valid: {best_member} ({single_valid[best_member]:.4f})")
    print(f"picked on valid: {picked['config']}")
    print(f"configurations tried (each scored once on test): {len(rows)}")
    for row in rows:
        print(json.dumps(row))
    print(
        "member fit seconds: " + json.dumps({"/".join(k): v for k, v in seconds.items()}),
        flush=True,
    )
    if args.report is not None:
        stamp = make_stamp(
            dataset=args.data,
            task="A: next-item top-N, full ranking",
            protocol=sp.protocol,
            split_sizes=sp.sizes(),
            seed=42,
            command=sys.argv,
            extra={
                "configurations_tried": len(rows),
                "selected_on_valid": picked["config"],
                "best_member_on_valid": best_member,
                "valid_ndcg@10": {r["config"]: r["valid NDCG@10"] for r in rows}
                | {n: round(v, 4) for n, v in single_valid.items()},
                "member_fit_seconds": {"/".join(k): v for k, v in seconds.items()},
                "rows": rows,
            },
        )
        Report(
            results=tests,
            stamp=stamp,
            catalog=catalog,
            data=sp.train,
            train=sp.train,
            reference=tuple(versus),
        ).write(args.report)
        print(f"report: {args.report}")


if __name__ == "__main__":
    main()
