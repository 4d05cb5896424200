"""The recipe behind ``train``, ``evaluate`` and ``benchmark``: dataset -> split ->
(tune on valid) -> fit -> evaluate on test -> report. Configs are typed
objects; the CLI only parses arguments into them."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from primetime import paths
from primetime.data.dataset import Dataset
from primetime.data.splits import Split, leave_one_out, ratio_split, read_split_dir, temporal_split
from primetime.models import MODELS, Recommender, get_model_class
from primetime.models.base import config_from_dict

log = logging.getLogger(__name__)

SPLITS = ("loo", "ratio", "temporal")
_SYNTH = re.compile(r"^synthetic-(?P<preset>[a-z0-9-]+?)(?:-seed(?P<seed>\d+))?$")


@dataclass
class Loaded:
    """A dataset and, for a synthetic world, the world (for its oracle)."""

    dataset: Dataset
    world: Any | None = None


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


def open_dataset(spec: str) -> Loaded:
    """Open a dataset by name or path.

    Args:
        spec: ``ml-100k``; ``synthetic-<preset>`` or ``synthetic-<preset>-seed<N>``
            (generated once, then cached); a GroupLens folder, a RecBole atomic
            folder, or a CSV/TSV/Parquet log (see ``primetime data info --help``).
    """
    m = _SYNTH.match(spec)
    if m:
        from primetime.data import synthetic

        preset, seed = m["preset"], int(m["seed"] or 0)
        if preset not in synthetic.PRESETS:
            raise ValueError(
                f"unknown synthetic preset {preset!r}; known: {', '.join(synthetic.PRESETS)}"
            )
        name = f"synthetic-{preset}-seed{seed}"
        d = paths.datasets_dir() / name
        cfg = dataclasses.replace(synthetic.PRESETS[preset], seed=seed)
        world = synthetic.World.load(d) if (d / "world.json").exists() else None
        if world is not None and world.config != cfg:
            log.warning(
                "%s: cached world was made with another preset definition; regenerating", name
            )
            world = None
        if world is None:
            with progress_bar(f"generating {name} (users)") as progress:
                world = synthetic.generate(cfg, progress=progress)
            world.save(d)
        return Loaded(world.dataset, world)
    from primetime.data.loaders import prepare

    return Loaded(prepare(spec))


def make_split(dataset: Dataset, kind: str, *, seed: int = 42) -> Split:
    """The split named ``kind`` (EVALUATION.md): loo, ratio (90/10) or temporal."""
    if kind == "loo":
        return leave_one_out(dataset.interactions)
    if kind == "ratio":
        return ratio_split(dataset.interactions, seed=seed)
    if kind == "temporal":
        return temporal_split(dataset.interactions)
    raise ValueError(f"unknown split {kind!r}; choose one of {SPLITS}")


def build_model(name: str, overrides: dict[str, Any] | None = None) -> Recommender:
    """A model with its default (tuned) config, updated by ``overrides``."""
    cls = get_model_class(name)
    base = dataclasses.asdict(cls.config_class())
    base.update(overrides or {})
    return cls(config_from_dict(cls.config_class, base))


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


def model_dir(name: str) -> Path:
    return paths.models_dir() / name


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


def tune_and_fit(
    name: str,
    split: Split,
    *,
    tune: bool,
    overrides: dict[str, Any] | None = None,
    catalog: Any = None,
    on_trial: Callable[[str, dict[str, Any], float], None] | None = None,
) -> ModelRun:
    """Fit ``name`` on ``split.train``; with ``tune``, first pick the config from the
    model's grid with the best valid NDCG@10 (top-N) or valid RMSE (rating).

    Valid is used for selection only; test is never touched here.
    """
    from primetime.eval.protocol import EvalSet, evaluate, evaluate_ratings

    cls = get_model_class(name)
    trials: list[dict[str, Any]] = []
    chosen = dict(overrides or {})
    if tune and cls.tuning_grid and len(split.valid):
        rating = cls.task == "rating"
        valid_set = None if rating else EvalSet.for_valid(split)
        best_val = -np.inf
        for grid_point in cls.tuning_grid:
            cfg = {**grid_point, **(overrides or {})}
            model = build_model(name, cfg)
            model.fit(split.train, catalog=catalog)
            if rating:
                value = -evaluate_ratings(model, split.valid).summary()["RMSE"]
            else:
                assert valid_set is not None
                value = evaluate(model, valid_set, ks=(10,)).summary()["NDCG@10"]
            trials.append({"config": cfg, "valid": abs(value)})
            if on_trial:
                on_trial(name, cfg, abs(value))
            if value > best_val:
                best_val, chosen = value, cfg
    model = build_model(name, chosen)
    report = model.fit(
        split.train, valid=split.valid if len(split.valid) else None, catalog=catalog
    )
    training: dict[str, Any] = {}
    if report.epochs:
        training = {"epochs": report.epochs, "best_epoch": report.best_epoch}
        for key in (
            "seconds_per_epoch",
            "sequences_per_second",
            "examples_per_second",
            "data_wait_share",
        ):
            if isinstance(report.notes.get(key), int | float):
                training[key] = round(float(report.notes[key]), 4)
    return ModelRun(
        name=name,
        config=dataclasses.asdict(model.config),
        fit_seconds=report.seconds,
        tuning=trials,
        model=model,
        training=training,
    )


@dataclass(frozen=True)
class BenchmarkSpec:
    """What ``primetime benchmark`` runs.

    Attributes:
        data: Data set spec for :func:`open_dataset` (ignored with ``split_dir``).
        names: Model names, in table order.
        task: "topn" (Task A) or "rating" (Task B).
        split: "loo", "ratio" or "temporal".
        split_dir: Bring-your-own split folder (train/valid/test.tsv), or None.
        tune: Search each model's grid on valid before the final fit.
        k: Length of exported top-K lists.
        export_topk: Folder for ``<model>.tsv`` top-K lists (Task A), or None.
        export_predictions: Folder for ``<model>.tsv`` predictions (Task B), or None.
        report_dir: Report folder (default under ``paths.reports_dir()``).
        seed: Seed of the ratio split and of sampled negatives.
        n_boot: Bootstrap resamples for the CIs.
        sampled: Also report the labelled sampled-100 variant.
        versus: Models every other model is paired-tested against (default: popularity).
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

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("no models given")
        stray = [v for v in self.versus if v not in self.names]
        if stray:
            raise ValueError(f"--versus names models not in --models: {stray}")
        if self.task not in ("topn", "rating"):
            raise ValueError(f"task must be 'topn' or 'rating', got {self.task!r}")
        if self.k < 1:
            raise ValueError(f"--k must be >= 1, got {self.k}")
        for n in self.names:
            cls = get_model_class(n)  # names an unknown model and lists the known ones
            if self.task == "rating" and cls.task != "rating":
                raise ValueError(
                    f"model {n!r} does not predict ratings; rating models: "
                    f"{[m for m, c in MODELS.items() if c.task == 'rating']}"
                )


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

    world = None
    catalog = None
    if split_dir is not None:
        sp = read_split_dir(split_dir)
        data_name = f"files:{split_dir}"
    else:
        loaded = open_dataset(data)
        ds, world = loaded.dataset, loaded.world
        catalog = ds.catalog
        sp = make_split(ds, split, seed=seed)
        data_name = ds.name
    console.print(f"[bold]{data_name}[/] · task {task} · split {sp.protocol} · {sp.sizes()}")

    def on_trial(name: str, cfg: dict[str, Any], value: float) -> None:
        metric = "RMSE" if task == "rating" else "NDCG@10"
        console.print(f"  tune {name} {cfg} → valid {metric} {value:.4f}", soft_wrap=True)

    runs: list[ModelRun] = []
    extra_results: list[Any] = []  # sampled-100, a separate section of the report
    ks = tuple(sorted({5, 10, 20, k}))
    test_set = EvalSet.for_test(sp) if task == "topn" else None
    for n in names:
        with console.status(f"fitting {n}…"):
            run = tune_and_fit(n, sp, tune=tune, catalog=catalog, on_trial=on_trial)
        assert run.model is not None
        if task == "topn":
            assert test_set is not None
            with progress_bar(f"evaluating {n} (users)", console) as progress:
                run.result = evaluate(
                    run.model, test_set, ks=ks, catalog=catalog, train=sp.train, progress=progress
                )
            if sampled:
                extra_results.append(evaluate_sampled(run.model, test_set, ks=ks, seed=seed))
            key = f"NDCG@10 {run.result.summary()['NDCG@10']:.4f}"
        else:
            run.result = evaluate_ratings(run.model, sp.test)
            key = f"MAE {run.result.summary()['MAE']:.4f}"
        console.print(f"  {n}: fit {run.fit_seconds:.1f}s · {key}")
        if split_dir is None:
            run.model.save(
                model_dir(n),
                meta={
                    "dataset": data,
                    "split": split,
                    "fit_seconds": run.fit_seconds,
                    "config_source": "tuned on valid" if run.tuning else "defaults",
                },
            )
        runs.append(run)

    if world is not None and task == "topn":
        assert test_set is not None
        oracle = OracleModel(world)
        res = evaluate(oracle, test_set, ks=ks, catalog=catalog, train=sp.train)
        runs.append(ModelRun(name="oracle", config={}, fit_seconds=0.0, result=res))

    stamp = make_stamp(
        dataset=data_name,
        task="A: next-item top-N, full ranking" if task == "topn" else "B: rating prediction",
        protocol=sp.protocol,
        split_sizes=sp.sizes(),
        seed=seed,
        extra={
            "tuned_on_valid": tune,
            "fit_seconds": {r.name: round(r.fit_seconds, 2) for r in runs},
            "configs": {r.name: r.config for r in runs},
            "tuning_on_valid": {r.name: r.tuning for r in runs if r.tuning},
            "training": {r.name: r.training for r in runs if r.training},
        },
    )
    results = [r.result for r in runs]
    if task == "topn":
        rep = Report(
            results=results + extra_results,
            stamp=stamp,
            catalog=catalog,
            data=sp.train,
            train=sp.train,
            n_boot=n_boot,
            reference=spec.versus or None,
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


def _topn_table(runs: Sequence[ModelRun], n_boot: int) -> Any:
    """One row per model: key metrics as mean ± half-width of the 95% CI."""
    from rich.table import Table

    first = runs[0].result
    t = Table(
        title=f"{first.evalset} · full ranking · {first.n_users} users · mean ± 95% CI "
        "(full table in the report)"
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
) -> dict[str, Any]:
    """Fit each variant of ``model`` on the leave-one-out split (early stopping on
    valid), evaluate on test, and report with paired tests against "full"."""
    from primetime.eval.protocol import EvalSet, evaluate
    from primetime.eval.report import Report, make_stamp, to_contract_json

    unknown = [v for v in variants if v not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation(s) {unknown}; known: {list(ABLATIONS)}")
    ds = open_dataset(data).dataset
    sp = make_split(ds, "loo")
    test = EvalSet.for_test(sp)
    runs: list[ModelRun] = []
    for v in variants:
        overrides = {**base, **ABLATIONS[v]}
        m = build_model(model, overrides)
        with console.status(f"fitting {model} [{v}]…"):
            rep = m.fit(sp.train, valid=sp.valid, catalog=ds.catalog)
        res = evaluate(_Named(m, v), test, ks=(5, 10, 20), catalog=ds.catalog, train=sp.train)
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
        dataset=ds.name,
        task="A: next-item top-N, full ranking (ablation)",
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
        catalog=ds.catalog,
        train=sp.train,
        reference="full" if "full" in variants else None,
        n_boot=n_boot,
    )
    target = report_dir or paths.reports_dir() / f"{ds.name}-ablation-{model}"
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

    from primetime.eval.protocol import EvalSet, evaluate

    cls = get_model_class(model)
    space = getattr(cls, "search_space", None)
    if space is None:
        raise ValueError(
            f"model {model!r} has no search space; models with one: "
            f"{[n for n, c in MODELS.items() if hasattr(c, 'search_space')]}"
        )
    ds = open_dataset(data).dataset
    sp = make_split(ds, "loo")
    valid = EvalSet.for_valid(sp)

    def objective(trial: optuna.Trial) -> float:
        params = {**space(trial), **fixed}
        try:
            m = build_model(model, params)
        except ValueError as e:  # an invalid combination (e.g. dim % heads)
            raise optuna.TrialPruned(str(e)) from e
        m.fit(sp.train, valid=sp.valid, catalog=ds.catalog)
        value = evaluate(m, valid, ks=(10,)).summary()["NDCG@10"]
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
        "data": ds.name,
        "best_params": {**study.best_params, **fixed},
        "best_valid_ndcg10": study.best_value,
        "trials": [{"number": t.number, "valid_ndcg10": t.value, "params": t.params} for t in done],
    }
