"""Studies on one split: ``benchmark``, ``ablate``, ``search`` and the ``demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from primetime.cli.common import (
    DataOpt,
    RegistryOpt,
    SetOpt,
    err,
    fail,
    guard,
    out,
    registry,
    split_models,
)

app = typer.Typer()


# ------------------------------------------------------------------ benchmark
@app.command("benchmark")
@guard
def benchmark(
    data: DataOpt = "ml-100k",
    models: Annotated[
        str, typer.Option(help="Comma-separated model names.")
    ] = "popularity,itemknn,als",
    task: Annotated[
        str, typer.Option(help="topn (next-item, full ranking) or rating (MAE/RMSE).")
    ] = "topn",
    split: Annotated[
        str,
        typer.Option(
            help="loo, ratio, temporal, cold-items (new titles: the newest 10% of titles "
            "held out of train, test ranked among them only) or last-5 (a comparison "
            "protocol: each user's last 5 events are test); default loo for topn, ratio "
            "for rating."
        ),
    ] = "",
    split_dir: Annotated[
        Path | None,
        typer.Option(
            help="Bring your own split: `DIR/train.tsv`, `valid.tsv` (optional), `test.tsv` "
            "with header `user_id item_id rating timestamp`; optional `items.tsv` "
            "(`item_id title genres year`, genres `|`-separated, more catalog columns used "
            "when present), `users.tsv` (`user_id` + metadata), `kg.tsv` "
            "(`head relation tail`) and `candidates.tsv` / `valid_candidates.tsv` "
            "(`item_id`: rank test / valid among these titles only, and export only them). "
            "Overrides `--data`/`--split`."
        ),
    ] = None,
    tune: Annotated[
        bool, typer.Option(help="Search each model's small grid on valid before the final fit.")
    ] = False,
    k: Annotated[int, typer.Option(help="Length of exported top-K lists.")] = 20,
    export_topk: Annotated[
        Path | None,
        typer.Option(help="Write `OUT/<model>.tsv`: `user_id item_id rank` (top-K per test user)."),
    ] = None,
    export_predictions: Annotated[
        Path | None,
        typer.Option(help="Rating task: write `OUT/<model>.tsv`: `user_id item_id prediction`."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the Markdown/JSON/PNG report "
            "(default `$PRIMETIME_HOME/reports/<data>-<task>`)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"models": {name: {metric: value}}} on stdout.')
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the ratio split.")] = 42,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
    sampled: Annotated[
        bool,
        typer.Option(
            help="Also report the sampled-100 variant (target ranked among 100 random unseen "
            "items) in its own, labelled section: only for comparing with papers that used it."
        ),
    ] = False,
    versus: Annotated[
        str,
        typer.Option(
            help="Comma-separated models every other model is paired-tested against "
            "(Wilcoxon on per-user NDCG@10); with --pipeline also a served row, "
            "`served-MODEL` (or `served-MODEL-grid`). Default: popularity."
        ),
    ] = "",
    register: Annotated[
        bool,
        typer.Option(
            help="Store every fitted model in the model registry as a new, unpromoted "
            "version with its test figures (`primetime models list`)."
        ),
    ] = False,
    registry_dir: RegistryOpt = None,
    options: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override one model's option, `MODEL.KEY=VALUE` (repeatable), e.g. "
            "`--set ensemble.members=itemknn,als`.",
        ),
    ] = None,
    pipeline: Annotated[
        bool,
        typer.Option(
            "--pipeline",
            help="Also score each model as served (`served-<model>`): the list "
            "GET /recommendations returns for the same history (candidate filters, blend, "
            "MMR re-rank, real-time preferences from the user's events up to the held-out "
            "one), by the service's own code; paired with --versus and exported with "
            "--export-topk like the bare models.",
        ),
    ] = False,
    blend_grid: Annotated[
        bool,
        typer.Option(
            "--blend-grid",
            help="With --pipeline: search the blend weights and MMR strength on valid "
            "(best NDCG@10 with Diversity@10 not below the bare model's), write "
            "blend-grid.md to the report and score the pick on test as "
            "`served-<model>-grid`.",
        ),
    ] = False,
) -> None:
    """Train several models on one split and compare them on test with 95% CIs,
    a paired Wilcoxon test against popularity, breakdowns and plots."""
    from primetime.experiment import BenchmarkSpec, parse_overrides, run_benchmark

    spec = BenchmarkSpec(
        data=data,
        names=split_models(models),
        task=task,
        split=split or ("ratio" if task == "rating" else "loo"),
        split_dir=split_dir,
        tune=tune,
        k=k,
        export_topk=export_topk,
        export_predictions=export_predictions,
        report_dir=report,
        seed=seed,
        n_boot=n_boot,
        sampled=sampled,
        versus=split_models(versus),
        register=registry(registry_dir) if register else None,
        overrides=parse_overrides(options or []),
        pipeline=pipeline,
        blend_grid=blend_grid,
    )
    summary = run_benchmark(spec, console=err, out=out, as_json=as_json)
    if as_json:
        print(json.dumps(summary, indent=2))


# ------------------------------------------------------------------ ablate
@app.command("ablate")
@guard
def ablate(
    data: DataOpt = "ml-100k",
    model: Annotated[str, typer.Option(help="Model whose parts are ablated.")] = "sasrec",
    variants: Annotated[
        str,
        typer.Option(
            help="Comma-separated variants. For sasrec with --base design: full, no positional "
            "encoding, 2 heads, 2 layers, 64 dims, no dropout, length 20; with --base tuned: "
            "full, no positional encoding, 1 head, 1 layer, 32 dims, no dropout, length 20, "
            "no side features, no weight decay. For gnn: full, no knowledge graph; "
            "multimodal: full, no text, no cross-attention, no knowledge graph; contrastive: "
            "full, no hard negatives. For sasrec, temporal and gru4rec also: contrastive "
            "item table (the item table started from the contrastive model's vectors)."
        ),
    ] = "",
    base: Annotated[
        str,
        typer.Option(
            help="Base configuration every variant starts from: `design` "
            "(the transformer's 128 dims, 4 layers, 8 heads, FFN 512) or `tuned` (the model "
            "defaults; the only base of the other models)."
        ),
    ] = "design",
    options: SetOpt = None,
    split: Annotated[
        str,
        typer.Option(
            help="loo (leave-one-out, the default) or cold-items (new titles: test ranked "
            "among the held-out titles only)."
        ),
    ] = "loo",
    report: Annotated[Path | None, typer.Option(help="Report folder.")] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
) -> None:
    """An ablation study: one change at a time against the full model, on leave-one-out
    (or new-title) test with 95% CIs and a paired Wilcoxon test against 'full' (the
    transformer by default; also gnn, multimodal and contrastive)."""
    from primetime.experiment import (
        ABLATION_SETS,
        MODEL_ABLATIONS,
        parse_overrides,
        run_ablation,
    )

    if base not in ("design", "tuned"):
        fail(f"--base must be 'design' or 'tuned', got {base!r}")
    if split not in ("loo", "cold-items"):
        fail(f"--split must be 'loo' or 'cold-items', got {split!r}")
    if model != "sasrec":
        base = "tuned"  # the design size is the transformer's
        if not variants and model not in MODEL_ABLATIONS:
            fail(f"no default ablations for {model!r}; name them with --variants")
    design = {"dim": 128, "layers": 4, "heads": 8, "ffn": 512, "dropout": 0.1, "max_len": 50}
    start = (design if base == "design" else {}) | parse_overrides(options or [])
    defaults = MODEL_ABLATIONS.get(model) or ABLATION_SETS[base]
    run_ablation(
        data=data,
        model=model,
        base=start,
        variants=[v.strip() for v in variants.split(",") if v.strip()] or list(defaults),
        report_dir=report,
        n_boot=n_boot,
        console=err,
        out=out,
        split=split,
    )


# ------------------------------------------------------------------ search
@app.command("search")
@guard
def search(
    data: DataOpt = "ml-100k",
    model: Annotated[
        str, typer.Option(help="Model to tune (one with a search space: sasrec).")
    ] = "sasrec",
    trials: Annotated[int, typer.Option(help="Most trials.")] = 20,
    timeout: Annotated[float, typer.Option(help="Budget in seconds (0 = no limit).")] = 1800,
    seed: Annotated[int, typer.Option(help="Seed of the TPE sampler.")] = 0,
    options: SetOpt = None,
    output: Annotated[Path | None, typer.Option(help="Write the study as JSON here.")] = None,
) -> None:
    """Hyper-parameter search with Optuna (TPE) on VALID only, within a budget;
    prints the best settings as --set options for `benchmark`/`train`."""
    from primetime.experiment import parse_overrides, run_search

    if trials < 1:
        fail(f"--trials must be >= 1, got {trials}")
    res = run_search(
        data=data,
        model=model,
        trials=trials,
        timeout=timeout or None,
        seed=seed,
        fixed=parse_overrides(options or []),
        console=err,
    )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(res, indent=2) + "\n")
    sets = " ".join(f"--set {k}={json.dumps(v)}" for k, v in res["best_params"].items())
    out.print(
        f"best valid NDCG@10 {res['best_valid_ndcg10']:.4f} after {len(res['trials'])} trials"
    )
    out.print(f"primetime benchmark --models {model} {sets}", soft_wrap=True)


# ------------------------------------------------------------------ demo
@app.command("demo")
@guard
def demo(
    models: Annotated[
        str, typer.Option(help="Models to compare.")
    ] = "popularity,trending,itemknn,als,bpr",
) -> None:
    """The main job on built-in data: fetch MovieLens-100k, train the baselines,
    print the results table (leave-one-out, full ranking, test, 95% CIs), then
    the rating model (ratio 90/10), and an example recommendation. Every model
    lands in the model registry, unpromoted (`primetime models list`)."""
    from primetime.cli.lifecycle import recommend
    from primetime.experiment import BenchmarkSpec, run_benchmark

    reg = registry(None)
    names = split_models(models)
    run_benchmark(BenchmarkSpec(names=names, register=reg), console=err, out=out, as_json=False)
    run_benchmark(
        BenchmarkSpec(names=("mf",), task="rating", split="ratio", register=reg),
        console=err,
        out=out,
        as_json=False,
    )
    if "itemknn" not in names:
        return
    out.print(
        "\nSomeone who just watched Star Wars (50), Return of the Jedi (181) and Alien (183):"
    )
    newest = reg.latest("itemknn").version
    recommend(model="itemknn", history="50,181,183", k=10, as_json=False, version=newest)
