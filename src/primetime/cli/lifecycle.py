"""The model life cycle from the command line: ``train``, ``evaluate``, ``recommend``,
``export-onnx``.

All three work on the one model registry (``primetime.registry``): ``train``
adds a version, ``evaluate`` and ``recommend`` read one (the promoted version
unless ``--version``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from primetime.cli.common import (
    DataOpt,
    RegistryOpt,
    SetOpt,
    VersionOpt,
    err,
    fail,
    guard,
    out,
    registry,
    served_blend_facts,
)
from primetime.models import MODELS

app = typer.Typer()


@app.command("train")
@guard
def train(
    model: Annotated[
        str | None, typer.Argument(help=f"Model: {', '.join(MODELS)} (or `--suite`).")
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option(
            help="Train a staged suite from `configs/training.yaml` instead of one model "
            "(`full`: members, then temporal and maml, then the fusion). Each stage is "
            "skipped where its registry versions are current; `--set MODEL.KEY=VALUE` "
            "overrides `configs/models.yaml`."
        ),
    ] = None,
    config_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of training.yaml and models.yaml (default: ./configs)."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="With `--suite`: write report.md and suite.json here."),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="With `--suite`: retrain models that are current.")
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With `--suite`: fit up to this many of a stage's models side by side, "
            "each in its own process with its share of the cores (default: `jobs:` in "
            "training.yaml). An ensemble's members stay in this process.",
        ),
    ] = None,
    data: DataOpt = "ml-100k",
    split: Annotated[
        str,
        typer.Option(
            help="`loo` (leave-one-out by time), `ratio` (90/10), `temporal` or `cold-items`."
        ),
    ] = "",
    split_dir: Annotated[
        Path | None,
        typer.Option(help="Bring your own split folder (see `primetime benchmark --help`)."),
    ] = None,
    options: SetOpt = None,
    refit: Annotated[
        bool,
        typer.Option(
            help="After selecting epochs on valid, refit on the whole log (train + valid + "
            "test) with the selected settings: the version to serve. `--no-refit` keeps "
            "the fit on train, whose test figures `evaluate` can measure again."
        ),
    ] = True,
    promote: Annotated[
        bool, typer.Option(help="Promote the new version (what `recommend` and `serve` use).")
    ] = True,
    run_dir: Annotated[
        Path | None,
        typer.Option(help="Write checkpoints, the training log and curve here (neural models)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the checkpoint in `--run-dir`.")
    ] = False,
    device: Annotated[
        str | None, typer.Option(help="`cpu` or `cuda[:N]` (default: the model's setting).")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch threads for this fit (default: all).")
    ] = None,
    blend: Annotated[
        bool,
        typer.Option(
            help="Choose the blend the service serves this version with (blend weights "
            "and MMR strength, the best valid NDCG@10 whose diversity is at least the "
            "bare model's; `primetime.served_study.tune_blend`) and store it with the "
            "version (`served_blend`). `--no-blend`: the service's default blend."
        ),
    ] = True,
    registry_dir: RegistryOpt = None,
) -> None:
    """Train MODEL and store it in the model registry as a new version.

    The model is fit on the train part of the split, with early stopping and
    model selection on valid; its test figures are measured once; then (unless
    `--no-refit`) it is refit on the whole log with the selected settings, so the
    version that is served has seen every user's latest events. The version
    records both fits' facts (`primetime models list`).

    Under `torchrun --nproc-per-node N` the neural models train with
    DistributedDataParallel (gloo on CPU, NCCL on GPU): each process takes 1/N of
    every epoch, rank 0 validates, measures and registers."""
    if suite is not None:
        if model is not None:
            fail("give a MODEL or `--suite NAME`, not both")
        _train_suite(
            suite,
            config_dir=config_dir,
            sets=options or [],
            data=data if data != "ml-100k" else None,
            threads=threads,
            jobs=jobs,
            report=report,
            force=force,
            registry_dir=registry_dir,
        )
        return
    if model is None:
        fail("name a MODEL to train (see `primetime train --help`), or `--suite NAME`")
    import torch.distributed as dist

    from primetime.experiment import parse_overrides
    from primetime.lifecycle import (
        DataSpec,
        FitSpec,
        default_split,
        evaluate_on_test,
        fit_model,
        prepare_data,
        register_run,
    )
    from primetime.models.base import FitOptions
    from primetime.training.loop import distributed, init_distributed, shutdown_distributed

    spec = FitSpec(
        model,
        data=DataSpec(data=data, split=split or default_split(model), split_dir=split_dir),
        overrides=parse_overrides(options or []),
        refit=refit,
        options=FitOptions(run_dir=run_dir, resume=resume, device=device, threads=threads),
    )
    from primetime.lifecycle import build_model

    build_model(model, spec.overrides)  # a wrong --set fails before any data is read
    joined = init_distributed()
    try:
        rank, world = distributed()
        if rank != 0:
            dist.barrier()  # rank 0 fetches or converts the data first, once
        prepared = prepare_data(spec.data)
        if joined and rank == 0:
            dist.barrier()
        if rank == 0:
            on = f", {world} processes" if world > 1 else ""
            err.print(
                f"training {model} on {prepared.name} "
                f"({prepared.split.protocol}: {prepared.split.sizes()}{on})"
            )
        run = fit_model(spec, data=prepared)
        if rank != 0:
            return
        test = evaluate_on_test(run)
        extra: dict[str, object] = {"processes": world}
        if blend:
            extra.update(served_blend_facts(run.selected, prepared))
        reg = registry(registry_dir)
        before = reg.promoted(model) if model in reg.names() else None
        mv = register_run(
            run, reg, test=test, promote=promote, notes="primetime train", extra=extra
        )
        shown = ", ".join(f"{k} {v:.4f}" for k, v in {**run.valid, **test}.items())
        err.print(f"selection fit: {run.fit_seconds:.1f}s · {shown}")
        if run.refit_report is not None:
            err.print(
                f"refit on the whole log: {run.refit_report.seconds:.1f}s "
                f"({run.fit_on()['rows']:,} rows)"
            )
        if mv.promoted:
            from primetime.cli.service import record_promotion

            previous = before.version if before is not None else None
            record_promotion(mv, previous, actor="cli:train")
        state = "promoted" if mv.promoted else "not promoted"
        out.print(f"registered {mv.name} {mv.version} ({state}) at {mv.path}")
    finally:
        if joined:
            shutdown_distributed()


def _train_suite(
    name: str,
    *,
    config_dir: Path | None,
    sets: list[str],
    data: str | None,
    threads: int | None,
    jobs: int | None,
    report: Path | None,
    force: bool,
    registry_dir: Path | None,
) -> None:
    """`train --suite NAME`: the stages with a progress bar each, then a report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from primetime.cli.service import record_promotion
    from primetime.paths import home
    from primetime.suite import load_suite, run_suite, serving_latency, write_report

    s = load_suite(name, config_dir=config_dir, sets=sets, data=data, threads=threads, jobs=jobs)
    reg = registry(registry_dir)
    err.print(
        f"suite {s.name} on {s.data} ({s.source}): "
        + " → ".join(f"stage {st.number} [{', '.join(st.models)}]" for st in s.stages)
    )
    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err
    )
    tasks = {
        st.number: bars.add_task(f"stage {st.number}: {st.title}", total=len(st.models))
        for st in s.stages
    }
    with bars:
        result = run_suite(
            s,
            reg,
            run_root=home() / "runs" / f"suite-{s.name}",
            say=bars.console.print,
            on_model_done=lambda st, _step: bars.advance(tasks[st.number]),
            on_promoted=lambda mv, prev: record_promotion(mv, prev, actor="cli:train --suite"),
            force=force,
        )
    result.latency_ms = serving_latency(s, reg)
    folder = report or home() / "runs" / f"suite-{s.name}"
    path = write_report(result, folder)
    out.print(path.read_text())
    err.print(f"suite {s.name}: {result.seconds / 60:.1f} min; report at {path}")


@app.command("evaluate")
@guard
def evaluate_cmd(
    model: Annotated[str, typer.Argument(help="Registered model name (see `models list`).")],
    version: VersionOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print metrics as JSON on stdout.")
    ] = False,
    registry_dir: RegistryOpt = None,
) -> None:
    """Evaluate a registered version of MODEL on the test part of the split it was
    trained on (full ranking, EVALUATION.md), with 95% bootstrap CIs.

    A version refit on the whole log has seen test: its test figures were measured
    on the selection fit, before the refit, and are shown as recorded."""
    from primetime.eval.protocol import (
        EvalResult,
        EvalSet,
        RatingResult,
        evaluate,
        evaluate_ratings,
    )
    from primetime.eval.report import rich_table
    from primetime.lifecycle import prepare_data

    reg = registry(registry_dir)
    mv = reg.get(model, version) if version else (reg.promoted(model) or reg.latest(model))
    fit_on = mv.meta.get("fit_on") or {}
    if fit_on.get("part") == "whole log":
        if as_json:
            print(json.dumps({"models": {model: mv.metrics}, "recorded": True}, indent=2))
            return
        t = Table(title=f"{model} {mv.version}: recorded test figures of its selection fit")
        t.add_column("metric")
        t.add_column("value", justify="right")
        for metric, value in mv.metrics.items():
            t.add_row(metric, f"{value:.4f}")
        out.print(t)
        err.print(
            f"{model} {mv.version} was refit on the whole log, test included: these figures "
            "were measured before the refit. For a fresh measurement, train with "
            "`--no-refit` and evaluate that version."
        )
        return
    m = reg.load(model, mv.version)
    prepared = prepare_data(_data_spec(mv.meta))
    sp = prepared.split
    res: RatingResult | EvalResult
    if m.task == "rating" and not np.isnan(sp.test.rating).all():
        res = evaluate_ratings(m, sp.test)
    else:
        res = evaluate(m, EvalSet.for_test(sp), catalog=prepared.side.catalog)
    summary = res.summary()
    if as_json:
        print(json.dumps({"models": {model: summary}}, indent=2))
        return
    title = f"{model} {mv.version} on {prepared.name} · {sp.protocol} · test · mean [95% CI]"
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


def _data_spec(meta: dict[str, Any]) -> Any:
    """The DataSpec a version was trained on, from its meta.json."""
    from primetime.lifecycle import DataSpec

    if meta.get("split_dir"):
        return DataSpec(split_dir=Path(meta["split_dir"]))
    data = meta.get("data") or (meta.get("dataset") or {}).get("name")
    if not data:
        raise ValueError(f"{meta.get('name')} {meta.get('version')}: meta.json names no data set")
    return DataSpec(
        data=str(data), split=str(meta.get("split") or "loo"), seed=meta.get("seed", 42)
    )


@app.command("recommend")
@guard
def recommend(
    model: Annotated[str, typer.Option(help="Registered model name.")] = "itemknn",
    history: Annotated[
        str, typer.Option(help="Comma-separated item ids, oldest first, e.g. `50,172,181`.")
    ] = "",
    k: Annotated[int, typer.Option(help="How many titles.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    onnx: Annotated[
        Path | None,
        typer.Option(help="Score with onnxruntime from this file (`primetime export-onnx`)."),
    ] = None,
    retrieval: Annotated[
        str | None,
        typer.Option(
            help="Retrieve candidates with a FAISS index (`hnsw`, `ivf` or `flat`) over the "
            "model's item table, then score them exactly (dot-product models)."
        ),
    ] = None,
    candidates: Annotated[int, typer.Option(min=1, help="Titles `--retrieval` retrieves.")] = 200,
    version: VersionOpt = None,
    registry_dir: RegistryOpt = None,
) -> None:
    """Top-k titles for any history of item ids, from the promoted version of MODEL
    in the model registry (the one `serve` serves), or `--version`."""
    from primetime.models.base import top_k
    from primetime.models.retrieval import RetrievalConfig
    from primetime.types import UserContext

    if k < 1:
        fail(f"--k must be >= 1, got {k}")
    reg = registry(registry_dir)
    mv = reg.get(model, version) if version else (reg.promoted(model) or reg.latest(model))
    m = reg.load(model, mv.version)
    assert m.items is not None
    if onnx is not None:
        if not hasattr(m, "use_onnx"):
            fail(f"--onnx: {model} is not a sequence model (sasrec, gru4rec)")
        m.use_onnx(onnx)
    if retrieval is not None:
        try:
            cfg = RetrievalConfig(kind=retrieval, candidates=candidates)
        except ValueError as e:
            fail(f"--retrieval: {e}")
        if not m.enable_retrieval(cfg):
            fail(f"--retrieval: {model} has no item table to index")
    ids = [x.strip() for x in history.split(",") if x.strip()]
    unknown = [x for x in ids if x not in m.items]
    if unknown:
        fail(f"unknown item id(s) {unknown[:5]} (not in the catalog the model was trained on)")
    hist = np.array([m.items.index(x) for x in ids], dtype=np.int64)
    scores = m.score([UserContext(user_idx=None, history=hist)])
    items, vals = top_k(scores, k, exclude=[hist])
    catalog = _catalog(mv.meta, m.items)
    rows: list[dict[str, Any]] = []
    for idx, v in zip(items[0], vals[0], strict=True):
        if idx == 0:
            continue
        info = catalog.row(int(idx)) if catalog is not None else {}
        rows.append(
            {
                "item_id": m.items.id(int(idx)),
                "title": info.get("title"),
                "year": info.get("year"),
                "genres": info.get("genres") or [],
                "kind": info.get("kind"),
                "score": round(float(v), 6),
            }
        )
    if as_json:
        payload = {"model": model, "version": mv.version, "history": ids, "items": rows}
        print(json.dumps(payload, indent=2, default=str))
        return
    t = Table(title=f"{model} {mv.version}: top {k} after {len(ids)} title(s)")
    for col in ("#", "id", "title", "year", "genres", "score"):
        t.add_column(col, justify="right" if col in ("#", "score", "year") else "left")
    for r, row in enumerate(rows, 1):
        t.add_row(
            str(r),
            row["item_id"],
            str(row["title"] or ""),
            str(row["year"] or ""),
            ", ".join(row["genres"]),
            f"{row['score']:.4f}",
        )
    out.print(t)


@app.command("export-onnx")
@guard
def export_onnx_cmd(
    model: Annotated[str, typer.Option(help="Registered sequence model: sasrec, gru4rec.")] = (
        "sasrec"
    ),
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out", help="The .onnx file (default: $PRIMETIME_HOME/models/onnx/MODEL-vN.onnx)."
        ),
    ] = None,
    int8: Annotated[
        bool, typer.Option(help="Also write MODEL-vN.int8.onnx (INT8 dynamic quantisation).")
    ] = False,
    version: VersionOpt = None,
    registry_dir: RegistryOpt = None,
) -> None:
    """Export the promoted (or `--version`) MODEL to ONNX for onnxruntime: item
    sequences in, scores of every title out, any batch size and history length. Serve
    the file with `primetime recommend --onnx FILE` (or `model.use_onnx(FILE)`)."""
    from primetime import paths
    from primetime.models.onnx import export_onnx

    reg = registry(registry_dir)
    mv = reg.get(model, version) if version else (reg.promoted(model) or reg.latest(model))
    m = reg.load(model, mv.version)
    if not hasattr(m, "use_onnx"):
        fail(f"{model} is not a sequence model: only sasrec and gru4rec export to ONNX")
    path = out_file or paths.models_dir() / "onnx" / f"{model}-{mv.version}.onnx"
    served = export_onnx(m, path, int8=int8)
    for p in dict.fromkeys((path, served)):
        out.print(f"wrote {p} ({p.stat().st_size / 2**20:.1f} MiB)")


def _catalog(meta: dict[str, Any], items: Any) -> Any:
    """The catalog of the data a version was trained on, when it can be opened and
    matches the model's items; else None (ids are shown without titles)."""
    import logging

    from primetime.data.open import open_dataset
    from primetime.data.splitdir import open_split_dir

    spec = _data_spec(meta)
    try:  # the catalog only: no split to build for a title lookup
        if spec.split_dir is not None:
            catalog = open_split_dir(spec.split_dir)[1].catalog
        else:
            catalog = open_dataset(spec.data).dataset.catalog
    except (OSError, ValueError) as e:
        logging.getLogger(__name__).warning("titles unavailable: %s", e)
        return None
    if catalog is None or catalog.items != items:
        return None
    return catalog
