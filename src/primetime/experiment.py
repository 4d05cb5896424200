"""Studies on one split: ``benchmark`` (several models, test with CIs, paired tests,
a report), ``ablate`` (one change at a time against the full model) and ``search``
(Optuna on valid). Every model is fit through :func:`primetime.lifecycle.fit_model`;
configs are typed objects, the CLI only parses arguments into them."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from primetime import paths
from primetime.data.open import Loaded, open_dataset
from primetime.lifecycle import (
    RECORDED,
    DataSpec,
    FitSpec,
    Prepared,
    TrainedRun,
    build_model,
    fit_model,
    prepare_data,
    register_run,
)
from primetime.models import MODELS, Recommender, get_model_class
from primetime.registry import ModelRegistry

log = logging.getLogger(__name__)

__all__ = [
    "ABLATIONS",
    "ABLATION_SETS",
    "MODEL_ABLATIONS",
    "BenchmarkSpec",
    "open_data",
    "parse_overrides",
    "progress_bar",
    "run_ablation",
    "run_benchmark",
    "run_search",
]


@contextlib.contextmanager
def progress_bar(
    description: str, console: Any | None = None
) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar on stderr, as a ``progress(done, total)`` callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def open_data(spec: str) -> Loaded:
    """:func:`primetime.data.open.open_dataset` with a progress bar while a synthetic
    world is generated."""
    with progress_bar(f"generating {spec} (users)") as progress:
        return open_dataset(spec, progress=progress)


def prepare(spec: DataSpec) -> Prepared:
    """:func:`primetime.lifecycle.prepare_data` with a progress bar."""
    with progress_bar(f"generating {spec.data} (users)") as progress:
        return prepare_data(spec, progress=progress)


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["factors=64", "alpha=2.5"]`` -> ``{"factors": 64, "alpha": 2.5}`` (JSON values)."""
    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise ValueError(f"option {p!r} is not KEY=VALUE")
        k, v = p.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


class OracleModel:
    """The synthetic world's true next-item log-probabilities, scored like a model."""

    name = "oracle"

    def __init__(self, world: Any) -> None:
        self.world = world
        self.items = world.dataset.items

    def score(self, contexts: Sequence[Any]) -> np.ndarray:
        return self.world.oracle_scores(contexts)


@dataclass
class ModelRun:
    """One model's journey through a benchmark."""

    name: str
    config: dict[str, Any]
    fit_seconds: float
    tuning: list[dict[str, Any]] = field(default_factory=list)
    result: Any = None  # EvalResult | RatingResult
    model: Recommender | None = None
    training: dict[str, Any] = field(default_factory=dict)  # epochs, s/epoch, sequences/s


@dataclass(frozen=True)
class BenchmarkSpec:
    """What ``primetime benchmark`` runs.

    Attributes:
        data: Data set spec for :func:`open_dataset` (ignored with ``split_dir``).
        names: Model names, in table order.
        task: "topn" (Task A) or "rating" (Task B).
        split: "loo", "ratio", "temporal" or "cold-items" (Task C: test ranked among
            the held-out new titles only).
        split_dir: Bring-your-own split folder (train/valid/test.tsv, optional
            candidates.tsv), or None.
        tune: Search each model's grid on valid before the final fit.
        k: Length of exported top-K lists.
        export_topk: Folder for ``<model>.tsv`` top-K lists (Task A), or None.
        export_predictions: Folder for ``<model>.tsv`` predictions (Task B), or None.
        report_dir: Report folder (default under ``paths.reports_dir()``).
        seed: Seed of the ratio split and of sampled negatives.
        n_boot: Bootstrap resamples for the CIs.
        sampled: Also report the labelled sampled-100 variant.
        versus: Models every other model is paired-tested against (default: popularity).
        register: Also store every fitted model as a new (unpromoted) version in
            this registry, with its test figures.
        overrides: ``{"MODEL.KEY": value}`` options of single models (``--set``).
        pipeline: Also score each model *served*: the list ``GET /recommendations``
            returns (the RecPipeline with its filters, blend, MMR re-rank and real-time
            preferences from the user's events), as ``served-<model>`` (Task A only).
        blend_grid: With ``pipeline``, also search the blend weights and MMR strength on
            valid (:func:`primetime.served_study.tune_blend`) and score the pick on test.
    """

    data: str = "ml-100k"
    names: tuple[str, ...] = ("popularity", "itemknn", "als")
    task: str = "topn"
    split: str = "loo"
    split_dir: Path | None = None
    tune: bool = False
    k: int = 20
    export_topk: Path | None = None
    export_predictions: Path | None = None
    report_dir: Path | None = None
    seed: int = 42
    n_boot: int = 1000
    sampled: bool = False
    versus: tuple[str, ...] = ()
    register: ModelRegistry | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    pipeline: bool = False
    blend_grid: bool = False

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("no models given")
        self.overrides_of("")  # names a key that is not MODEL.KEY of a benchmarked model
        # with --pipeline a served row (the API's list around a model, and with
        # --blend-grid the one with its valid-chosen blend) can be a reference too
        served = (
            {f"served-{n}" for n in self.names} | {f"served-{n}-grid" for n in self.names}
            if self.pipeline
            else set()
        )
        stray = [v for v in self.versus if v not in self.names and v not in served]
        if stray:
            raise ValueError(
                f"--versus names models not in --models: {stray}"
                + (" (nor their served-MODEL rows)" if self.pipeline else "")
            )
        if self.task not in ("topn", "rating"):
            raise ValueError(f"task must be 'topn' or 'rating', got {self.task!r}")
        if self.k < 1:
            raise ValueError(f"--k must be >= 1, got {self.k}")
        if (self.pipeline or self.blend_grid) and self.task != "topn":
            raise ValueError("--pipeline scores served top-N lists: it needs --task topn")
        if self.blend_grid and not self.pipeline:
            raise ValueError("--blend-grid searches the served pipeline: add --pipeline")
        for n in self.names:
            cls = get_model_class(n)  # names an unknown model and lists the known ones
            if self.task == "rating" and cls.task != "rating":
                raise ValueError(
                    f"model {n!r} does not predict ratings; rating models: "
                    f"{[m for m, c in MODELS.items() if c.task == 'rating']}"
                )

    def overrides_of(self, model: str) -> dict[str, Any]:
        """The ``--set`` options of ``model`` (keys without the ``MODEL.`` prefix)."""
        out = {}
        for key, value in self.overrides.items():
            name, dot, option = key.partition(".")
            if not dot or not option or name not in self.names:
                raise ValueError(
                    f"benchmark --set takes MODEL.KEY=VALUE for one of {list(self.names)}, "
                    f"got {key!r}"
                )
            if name == model:
                out[option] = value
        return out


def run_benchmark(spec: BenchmarkSpec, *, console: Any, out: Any, as_json: bool) -> dict[str, Any]:
    """Fit every model on one split, evaluate on test, print a table, write a report.

    Returns:
        ``{"models": {name: {metric: mean}}}`` (plus ``fit_seconds`` per model).
    """
    data, names, task, split, split_dir = (
        spec.data,
        spec.names,
        spec.task,
        spec.split,
        spec.split_dir,
    )
    tune, k, seed, n_boot, sampled = spec.tune, spec.k, spec.seed, spec.n_boot, spec.sampled
    export_topk, export_predictions, report_dir = (
        spec.export_topk,
        spec.export_predictions,
        spec.report_dir,
    )
    from primetime.eval.protocol import EvalSet, evaluate, evaluate_ratings, evaluate_sampled
    from primetime.eval.report import Report, make_stamp, to_contract_json

    prepared = prepare(DataSpec(data=data, split=split, split_dir=split_dir, seed=seed))
    sp, world, data_name = prepared.split, prepared.world, prepared.name
    catalog = prepared.side.catalog
    restricted = sp.describe_candidates()
    console.print(
        f"[bold]{data_name}[/] · task {task} · split {sp.protocol} · {sp.sizes()}"
        + (f" · {restricted}" if restricted else "")
    )
    test_candidates = sp.candidates_of("test") if task == "topn" else None
    if sampled and test_candidates is not None:
        raise ValueError(
            "--sampled ranks among random unseen titles; this split ranks test among its "
            f"{test_candidates.size} candidate titles: drop --sampled"
        )

    def on_trial(name: str, cfg: dict[str, Any], value: float) -> None:
        metric = "RMSE" if task == "rating" else "NDCG@10"
        console.print(f"  tune {name} {cfg} → valid {metric} {value:.4f}", soft_wrap=True)

    if spec.pipeline and test_candidates is not None:
        raise ValueError(
            "--pipeline scores the served lists over the whole catalog; this split ranks "
            "among candidate titles only: drop --pipeline"
        )
    runs: list[ModelRun] = []
    extra_results: list[Any] = []  # sampled-100, a separate section of the report
    grids: dict[str, Any] = {}
    served_base = None
    ks = tuple(sorted({5, 10, 20, k}))
    test_set = EvalSet.for_test(sp) if task == "topn" else None
    # the models fit so far: an ensemble binds those of its members fit with its own
    # settings (its fit seconds then leave them out; the table has them)
    fitted: dict[str, TrainedRun] = {}
    for n in names:
        with console.status(f"fitting {n}…"):
            trained = fit_model(
                FitSpec(
                    n,
                    data=prepared.spec,
                    overrides=spec.overrides_of(n),
                    tune=tune,
                    reuse=dict(fitted),
                ),
                data=prepared,
                on_trial=on_trial,
            )
        fitted[n] = trained
        run = ModelRun(
            name=n,
            config=trained.config,
            fit_seconds=trained.fit_seconds,
            tuning=trained.tuning,
            model=trained.model,
            training=trained.training(),
        )
        if task == "topn":
            assert test_set is not None
            with progress_bar(f"evaluating {n} (users)", console) as progress:
                run.result = evaluate(
                    trained.model,
                    test_set,
                    ks=ks,
                    catalog=catalog,
                    train=sp.train,
                    progress=progress,
                )
            if sampled:
                extra_results.append(evaluate_sampled(trained.model, test_set, ks=ks, seed=seed))
            key = f"NDCG@10 {run.result.summary()['NDCG@10']:.4f}"
        else:
            run.result = evaluate_ratings(trained.model, sp.test)
            key = f"MAE {run.result.summary()['MAE']:.4f}"
        console.print(f"  {n}: fit {run.fit_seconds:.1f}s · {key}")
        if spec.register is not None:
            figures = {k: float(v) for k, v in run.result.summary().items() if k in RECORDED}
            mv = register_run(trained, spec.register, test=figures, notes="primetime benchmark")
            console.print(f"  registered {mv.name} {mv.version} (not promoted)")
        runs.append(run)
        if spec.pipeline:
            from primetime.served_study import base_pipeline

            assert test_set is not None
            if served_base is None:
                served_base = base_pipeline(prepared)
            for extra, served in _served_runs(
                spec, trained.model, prepared, served_base, grids, console
            ):
                with progress_bar(f"evaluating {extra.name} (users)", console) as progress:
                    extra.result = evaluate(
                        served,
                        test_set,
                        ks=ks,
                        catalog=catalog,
                        train=sp.train,
                        progress=progress,
                    )
                if sampled:
                    extra_results.append(evaluate_sampled(served, test_set, ks=ks, seed=seed))
                console.print(
                    f"  {extra.name}: NDCG@10 {extra.result.summary()['NDCG@10']:.4f}",
                    soft_wrap=True,
                )
                runs.append(extra)

    if world is not None and task == "topn":
        assert test_set is not None
        oracle = OracleModel(world)
        res = evaluate(oracle, test_set, ks=ks, catalog=catalog, train=sp.train)
        runs.append(ModelRun(name="oracle", config={}, fit_seconds=0.0, result=res))

    if task == "rating":
        task_label = "B: rating prediction"
    elif test_candidates is not None:
        task_label = (
            f"C: new titles (cold-start items), ranked among {test_candidates.size} "
            "candidate titles only"
        )
    else:
        task_label = "A: next-item top-N, full ranking"
    candidates_facts = {
        part: int(c.size) for part in ("valid", "test") if (c := sp.candidates_of(part)) is not None
    }
    stamp = make_stamp(
        dataset=data_name,
        task=task_label,
        protocol=sp.protocol,
        split_sizes=sp.sizes(),
        seed=seed,
        extra={
            **({"candidates": candidates_facts} if candidates_facts else {}),
            "tuned_on_valid": tune,
            "fit_seconds": {r.name: round(r.fit_seconds, 2) for r in runs},
            "configs": {r.name: r.config for r in runs},
            "tuning_on_valid": {r.name: r.tuning for r in runs if r.tuning},
            "training": {r.name: r.training for r in runs if r.training},
            **({"blend_grid_on_valid": grids} if grids else {}),
        },
    )
    results = [r.result for r in runs]
    if task == "topn":
        reference: tuple[str, ...] | None = spec.versus or None
        if reference is None and test_candidates is not None:
            # on new titles the references are the content-free floor and genre bar
            reference = tuple(n for n in ("random", "genre-profile") if n in names) or None
        rep = Report(
            results=results + extra_results,
            stamp=stamp,
            catalog=catalog,
            data=sp.train,
            train=sp.train,
            n_boot=n_boot,
            reference=reference,
        )
        summary = to_contract_json(results)
    else:
        rep = Report(results=[], ratings=results, stamp=stamp, data=sp.train, n_boot=n_boot)
        summary = {"models": {r.name: dict(r.result.summary()) for r in runs}}
    for r in runs:
        summary["models"].setdefault(r.name, {})["fit_seconds"] = round(r.fit_seconds, 3)

    target = (
        report_dir
        or paths.reports_dir() / f"{data_name.replace('/', '_').replace(':', '_')}-{task}"
    )
    written = rep.write(target)
    if grids:
        from primetime.served_study import grid_markdown

        (Path(target) / "blend-grid.md").write_text(grid_markdown(grids, stamp), encoding="utf-8")
        summary["blend_grid"] = grids
    if export_topk is not None and task == "topn":
        export_topk.mkdir(parents=True, exist_ok=True)
        for r in runs:
            r.result.export_topk(export_topk / f"{r.name}.tsv", k)
    if export_predictions is not None and task == "rating":
        export_predictions.mkdir(parents=True, exist_ok=True)
        for r in runs:
            _write_predictions(r.model, sp.test, export_predictions / f"{r.name}.tsv")
    if not as_json:
        out.print(_topn_table(runs, n_boot) if task == "topn" else _rating_table(runs))
        out.print(f"report: {written['markdown']}")
    return summary


def _served_runs(
    spec: BenchmarkSpec,
    model: Recommender,
    prepared: Prepared,
    base: Any,
    grids: dict[str, Any],
    console: Any,
) -> list[tuple[ModelRun, Any]]:
    """The served pipeline around ``model`` with the default weights (what is served)
    and, with ``--blend-grid``, with the weights the grid picks on valid."""
    from primetime.pipeline.blend import BlendWeights
    from primetime.served_study import choose_served_blend, served_model, weights_dict

    kmax = max(5, 10, 20, spec.k)
    default = BlendWeights()
    first = served_model(model, base, k=kmax)
    out = [
        (
            ModelRun(
                name=first.name,
                config={"weights": weights_dict(default), "list_length": kmax},
                fit_seconds=0.0,
            ),
            first,
        )
    ]
    if spec.blend_grid:
        with console.status(f"blend grid on valid around {model.name}…"):
            picked = choose_served_blend(model, prepared, base=base)
        if picked is None:
            raise ValueError("--blend-grid: the split has no valid part to choose on")
        chosen = BlendWeights.from_dict(picked["weights"])
        grids[model.name] = {**picked, "chosen": picked["weights"]}
        console.print(f"  blend grid on valid picks {weights_dict(chosen)}", soft_wrap=True)
        if chosen != default:
            m = served_model(model, base, k=kmax, weights=chosen)
            m.name = f"{m.name}-grid"
            run = ModelRun(
                name=m.name,
                config={"weights": weights_dict(chosen), "list_length": kmax},
                fit_seconds=0.0,
            )
            out.append((run, m))
    return out


def _topn_table(runs: Sequence[ModelRun], n_boot: int) -> Any:
    """One row per model: key metrics as mean ± half-width of the 95% CI."""
    from rich.table import Table

    from primetime.eval.protocol import protocol_title

    first = runs[0].result
    t = Table(
        title=f"{first.evalset} · {protocol_title(first.protocol)} · {first.n_users} users · "
        "mean ± 95% CI (full table in the report)"
    )
    metrics = ("HR@10", "NDCG@10", "MRR@10")
    for col in ("model", *metrics, "Cov@10"):
        t.add_column(col, justify="left" if col == "model" else "right")
    oracle = next((r.result for r in runs if r.name == "oracle"), None)
    if oracle is not None:
        t.add_column("of oracle", justify="right")
    t.add_column("fit s", justify="right")
    for r in runs:
        cis = r.result.cis(n_boot=n_boot)
        row = [r.name]
        for m in metrics:
            mean, lo, hi = cis[m]
            row.append(f"{mean:.4f} ±{(hi - lo) / 2:.4f}")
        row.append(f"{r.result.summary()['Coverage@10']:.3f}")
        if oracle is not None:
            share = r.result.summary()["NDCG@10"] / oracle.summary()["NDCG@10"]
            row.append(f"{share:.2f}")
        row.append(f"{r.fit_seconds:.1f}")
        t.add_row(*row)
    return t


def _rating_table(runs: Sequence[ModelRun]) -> Any:
    from rich.table import Table

    t = Table(title="rating prediction · test · mean [95% CI]")
    for col in ("model", "MAE", "RMSE", "fit s"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for r in runs:
        row = [r.name]
        for metric in ("MAE", "RMSE"):
            mean, lo, hi = r.result.ci(metric)
            row.append(f"{mean:.4f} [{lo:.4f}, {hi:.4f}]")
        row.append(f"{r.fit_seconds:.1f}")
        t.add_row(*row)
    return t


def _write_predictions(model: Any, test: Any, path: Path) -> Path:
    """TSV ``user_id item_id prediction`` for every rated test row, original ids."""
    import polars as pl

    rated = test.take(~np.isnan(test.rating))
    pred = model.predict_ratings(rated.user_idx, rated.item_idx)
    df = (
        rated.to_polars(ids=True)
        .select("user_id", "item_id")
        .with_columns(pl.Series("prediction", np.round(pred.astype(np.float64), 5)))
    )
    df.write_csv(path, separator="\t")
    return path


#: The design's ablation study of the transformer (DESIGN seed "MovieShow"):
#: each variant changes one thing of the base configuration.
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "no positional encoding": {"positions": "none"},
    "2 heads": {"heads": 2},
    "2 layers": {"layers": 2},
    "64 dims": {"dim": 64},
    "no dropout": {"dropout": 0.0},
    "length 20": {"max_len": 20},
    # the same questions asked of the tuned model (64 dims, 2 layers, 2 heads)
    "1 head": {"heads": 1},
    "1 layer": {"layers": 1},
    "32 dims": {"dim": 32},
    "no side features": {"side_features": False},
    "no weight decay": {"weight_decay": 0.0},
    # the content models' studies (issue 11)
    "no knowledge graph": {"use_kg": False},  # gnn, multimodal
    "no text": {"use_text": False},  # multimodal
    "no cross-attention": {"cross_attention": False},  # multimodal: concatenation instead
    "no hard negatives": {"hard_negatives": False},  # contrastive
    # an addition, not a removal: the item table started from the contrastive model's
    # content space (sasrec, temporal, gru4rec; issue 11)
    "contrastive item table": {"item_init": "contrastive"},
}
#: The default study of each model other than the transformer (on its tuned defaults).
MODEL_ABLATIONS: dict[str, tuple[str, ...]] = {
    "gnn": ("full", "no knowledge graph"),
    "multimodal": ("full", "no text", "no cross-attention", "no knowledge graph"),
    "contrastive": ("full", "no hard negatives"),
}
#: The design's study (on ``--base design``) and its counterpart on the tuned model.
ABLATION_SETS: dict[str, tuple[str, ...]] = {
    "design": (
        "full",
        "no positional encoding",
        "2 heads",
        "2 layers",
        "64 dims",
        "no dropout",
        "length 20",
    ),
    "tuned": (
        "full",
        "no positional encoding",
        "1 head",
        "1 layer",
        "32 dims",
        "no dropout",
        "length 20",
        "no side features",
        "no weight decay",
    ),
}


class _Named:
    """A fitted model under another name, so variants of one model share a table."""

    def __init__(self, model: Recommender, name: str) -> None:
        self.model, self.name, self.items = model, name, model.items

    def score(self, contexts: Sequence[Any]) -> np.ndarray:
        return self.model.score(contexts)


def run_ablation(
    *,
    data: str,
    model: str,
    base: dict[str, Any],
    variants: Sequence[str],
    report_dir: Path | None,
    n_boot: int,
    console: Any,
    out: Any,
    split: str = "loo",
) -> dict[str, Any]:
    """Fit each variant of ``model`` on the leave-one-out split, or ``split="cold-items"``
    (new titles, ranked among the held-out titles), with early stopping on valid;
    evaluate on test, and report with paired tests against "full"."""
    from primetime.eval.protocol import EvalSet, evaluate
    from primetime.eval.report import Report, make_stamp, to_contract_json

    unknown = [v for v in variants if v not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation(s) {unknown}; known: {list(ABLATIONS)}")
    if split not in ("loo", "cold-items"):
        raise ValueError(f"split must be 'loo' or 'cold-items', got {split!r}")
    for v in variants:  # every variant's settings, before the first fit
        try:
            build_model(model, {**base, **ABLATIONS[v]})
        except ValueError as e:
            raise ValueError(f"ablation {v!r} does not apply to {model}: {e}") from e
    prepared = prepare(DataSpec(data=data, split=split))
    sp, catalog = prepared.split, prepared.side.catalog
    test = EvalSet.for_test(sp)
    runs: list[ModelRun] = []
    for v in variants:
        overrides = {**base, **ABLATIONS[v]}
        with console.status(f"fitting {model} [{v}]…"):
            trained = fit_model(
                FitSpec(model, data=prepared.spec, overrides=overrides), data=prepared
            )
        m, rep = trained.model, trained.report
        res = evaluate(_Named(m, v), test, ks=(5, 10, 20), catalog=catalog, train=sp.train)
        console.print(f"  {v}: {rep.seconds:.0f}s, NDCG@10 {res.summary()['NDCG@10']:.4f}")
        runs.append(
            ModelRun(
                name=v,
                config=dataclasses.asdict(m.config),
                fit_seconds=rep.seconds,
                result=res,
                model=m,
            )
        )
    stamp = make_stamp(
        dataset=prepared.name,
        task=(
            "A: next-item top-N, full ranking (ablation)"
            if split == "loo"
            else "C: new titles, ranked among the held-out titles (ablation)"
        ),
        protocol=sp.protocol,
        split_sizes=sp.sizes(),
        seed=42,
        extra={
            "model": model,
            "base": base,
            "variants": {v: ABLATIONS[v] for v in variants},
            "fit_seconds": {r.name: round(r.fit_seconds, 1) for r in runs},
        },
    )
    results = [r.result for r in runs]
    report = Report(
        results=results,
        stamp=stamp,
        catalog=catalog,
        train=sp.train,
        reference="full" if "full" in variants else None,
        n_boot=n_boot,
    )
    suffix = "" if split == "loo" else f"-{split}"
    target = report_dir or paths.reports_dir() / f"{prepared.name}-ablation-{model}{suffix}"
    written = report.write(target)
    out.print(_topn_table(runs, n_boot))
    out.print(f"report (with paired tests against 'full'): {written['markdown']}")
    return to_contract_json(results)


def run_search(
    *,
    data: str,
    model: str,
    trials: int,
    timeout: float | None,
    seed: int,
    fixed: dict[str, Any],
    console: Any,
) -> dict[str, Any]:
    """Optuna (TPE) search of ``model``'s ``search_space`` on the leave-one-out
    split, maximising **valid** NDCG@10; test is never touched.

    Returns:
        ``{"best_params", "best_valid_ndcg10", "trials": [...]}``.
    """
    import optuna

    cls = get_model_class(model)
    space = getattr(cls, "search_space", None)
    if space is None:
        raise ValueError(
            f"model {model!r} has no search space; models with one: "
            f"{[n for n, c in MODELS.items() if hasattr(c, 'search_space')]}"
        )
    prepared = prepare(DataSpec(data=data, split="loo"))

    def objective(trial: optuna.Trial) -> float:
        params = {**space(trial), **fixed}
        try:
            fit = FitSpec(model, data=prepared.spec, overrides=params)
            build_model(model, params)
        except ValueError as e:  # an invalid combination (e.g. dim % heads)
            raise optuna.TrialPruned(str(e)) from e
        value = fit_model(fit, data=prepared).valid["valid NDCG@10"]
        console.print(f"  trial {trial.number}: valid NDCG@10 {value:.4f} {params}", soft_wrap=True)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials, timeout=timeout)
    done = [t for t in study.trials if t.value is not None]
    if not done:
        raise RuntimeError("no trial finished; raise --timeout or --trials")
    return {
        "model": model,
        "data": prepared.name,
        "best_params": {**study.best_params, **fixed},
        "best_valid_ndcg10": study.best_value,
        "trials": [{"number": t.number, "valid_ndcg10": t.value, "params": t.params} for t in done],
    }
