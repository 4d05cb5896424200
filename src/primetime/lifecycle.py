"""One model life cycle: a spec in, a trained run out, a registry version after.

Every command that fits a model goes through :func:`fit_model`: ``train``,
``benchmark``, ``ablate``, ``search``, ``models register`` and the service's
bootstrap. The recipe (EVALUATION.md):

1. open the data (a named data set and a split kind, or a bring-your-own split
   folder) with its side data (catalog, knowledge graph, users, item texts);
2. optionally pick settings from the model's grid on **valid**;
3. fit on train, early-stopping on valid: the *selection* fit, the one that
   test figures describe;
4. optionally refit on the whole log (train + valid + test) with the selected
   settings and the selected number of epochs: the version users are served,
   which has seen each user's latest events.

:func:`register_run` stores the result in the one model registry with what it
was fit on, its validation figures and (when measured) the test figures of the
selection fit.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from primetime.data.dataset import Dataset
from primetime.data.interactions import Interactions
from primetime.data.open import Loaded, Progress, open_dataset
from primetime.data.side import SideData
from primetime.data.splitdir import open_split_dir
from primetime.data.splits import (
    Split,
    cold_items_split,
    last_n_out,
    leave_one_out,
    ratio_split,
    temporal_split,
    time_slice_split,
)
from primetime.models import MODELS, Recommender, get_model_class
from primetime.models.base import FitOptions, FitReport, PriorFit, config_from_dict
from primetime.registry import ModelRegistry, ModelVersion

log = logging.getLogger(__name__)

SPLITS = ("loo", "ratio", "temporal", "cold-items", "slice", "last-5")
#: Length of the newest time slice of the ``slice`` split, and of its valid part.
SLICE_DAYS = 2.0
#: Metrics recorded with a version: the top-N headline and the rating pair.
RECORDED = ("HR@10", "NDCG@10", "MRR@10", "MAE", "RMSE")


def make_split(
    dataset: Dataset, kind: str, *, seed: int = 42, slice_days: float = SLICE_DAYS
) -> Split:
    """The split named ``kind`` (EVALUATION.md): loo, ratio (90/10), temporal,
    cold-items (Task C: the newest 10% of titles held out, ranked among themselves) or
    slice (the newest ``slice_days`` days test, the ``slice_days`` before them valid)."""
    if kind == "loo":
        return leave_one_out(dataset.interactions)
    if kind == "ratio":
        return ratio_split(dataset.interactions, seed=seed)
    if kind == "temporal":
        return temporal_split(dataset.interactions)
    if kind == "cold-items":
        return cold_items_split(dataset.interactions)
    if kind == "slice":
        return time_slice_split(dataset.interactions, test_seconds=slice_days * 86400.0)
    if kind == "last-5":  # a comparison protocol (figures quoted "last 5 held out")
        return last_n_out(dataset.interactions, 5)
    raise ValueError(f"unknown split {kind!r}; choose one of {SPLITS}")


def build_model(name: str, overrides: Mapping[str, Any] | None = None) -> Recommender:
    """A model with its default (tuned) config, updated by ``overrides``."""
    cls = get_model_class(name)
    base = dataclasses.asdict(cls.config_class())
    base.update(overrides or {})
    return cls(config_from_dict(cls.config_class, base))


def default_split(model: str) -> str:
    """``ratio`` for rating models, ``loo`` for top-N ones."""
    return "ratio" if get_model_class(model).task == "rating" else "loo"


# ------------------------------------------------------------------ data
@dataclass(frozen=True)
class DataSpec:
    """Which data and split a model is fit on.

    Attributes:
        data: Data set spec for :func:`primetime.data.open.open_dataset`.
        split: "loo", "ratio", "temporal", "cold-items" or "slice" (ignored with
            ``split_dir``).
        split_dir: A bring-your-own split folder (``primetime.data.splitdir``).
        seed: Seed of the ratio split.
        events: An export folder of the service's events (``primetime data export``),
            appended to ``data`` before the split (:func:`primetime.data.exported.with_export`).
        slice_days: Length of the ``slice`` split's test (and valid) part.
    """

    data: str = "ml-100k"
    split: str = "loo"
    split_dir: Path | None = None
    seed: int = 42
    events: Path | None = None
    slice_days: float = SLICE_DAYS

    def __post_init__(self) -> None:
        if self.split_dir is None and self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; choose one of {SPLITS}")

    def describe(self) -> dict[str, Any]:
        """JSON facts for a registry version: enough to open the same data again."""
        if self.split_dir is not None:
            return {"data": f"files:{self.split_dir}", "split_dir": str(self.split_dir)}
        out: dict[str, Any] = {"data": self.data, "split": self.split, "seed": self.seed}
        if self.events is not None:
            out["events"] = str(self.events)
        if self.split == "slice":
            out["slice_days"] = self.slice_days
        return out


@dataclass
class Prepared:
    """Opened data: the split, the side data and, for a named data set, the dataset."""

    spec: DataSpec
    split: Split
    side: SideData
    name: str
    dataset: Dataset | None = None
    world: Any | None = None

    def whole_log(self) -> Interactions:
        """Every interaction of the split: train, valid and test."""
        sp = self.split
        return Interactions.concat([sp.train, sp.valid, sp.test])


def prepare_data(spec: DataSpec, *, progress: Progress | None = None) -> Prepared:
    """Open the data of ``spec`` and split it."""
    if spec.split_dir is not None:
        split, side = open_split_dir(spec.split_dir)
        return Prepared(spec, split, side, name=f"files:{spec.split_dir}")
    loaded: Loaded = open_dataset(spec.data, progress=progress)
    ds = loaded.dataset
    if spec.events is not None:
        from primetime.data.exported import with_export

        ds = with_export(ds, spec.events)
    return Prepared(
        spec,
        make_split(ds, spec.split, seed=spec.seed, slice_days=spec.slice_days),
        SideData.of(ds),
        name=ds.name,
        dataset=ds,
        world=loaded.world,
    )


# ------------------------------------------------------------------ fitting
@dataclass(frozen=True)
class FitSpec:
    """What :func:`fit_model` fits.

    Attributes:
        model: Model name (a key of :data:`primetime.models.MODELS`).
        data: Data and split.
        overrides: Config values over the model's defaults.
        tune: First choose settings from the model's grid on valid.
        refit: Then refit on the whole log with the selected settings (the version
            to serve); False keeps the selection fit.
        options: Run directory, resume, device, threads (the validation metric is
            supplied here).
        reuse: Runs of other models on the same opened data (the staged suite's
            earlier stages), by model name: handed to the selection fit as
            ``FitOptions.prior`` (their selection fits) and to the refit (their
            refits), so an ensemble binds them instead of fitting its members again.
            Runs on other data, or without a refit when this one refits, are ignored.
    """

    model: str
    data: DataSpec = field(default_factory=DataSpec)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    tune: bool = False
    refit: bool = False
    options: FitOptions = field(default_factory=FitOptions)
    reuse: Mapping[str, TrainedRun] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_model_class(self.model)  # names an unknown model and lists the known ones


@dataclass
class TrainedRun:
    """What :func:`fit_model` returns.

    Attributes:
        spec: The spec.
        data: The opened data.
        selected: The selection fit (on train, early-stopped on valid): test
            figures describe this one.
        model: The model to keep: the refit on the whole log, or ``selected``.
        config: The selected config (a dict).
        report: The selection fit's report.
        refit_report: The refit's report, or None.
        tuning: Grid points tried on valid and their figures.
        valid: Validation figures of the selection fit (``{"valid NDCG@10": …}``).
    """

    spec: FitSpec
    data: Prepared
    selected: Recommender
    model: Recommender
    config: dict[str, Any]
    report: FitReport
    refit_report: FitReport | None = None
    tuning: list[dict[str, Any]] = field(default_factory=list)
    valid: dict[str, float] = field(default_factory=dict)

    @property
    def fit_seconds(self) -> float:
        """Wall seconds of the selection fit (tuning and refit excluded)."""
        return self.report.seconds

    @property
    def refit(self) -> bool:
        return self.refit_report is not None

    def fit_on(self) -> dict[str, Any]:
        """What the kept model learned from, for its bundle."""
        sp = self.data.split
        if self.refit_report is not None:
            return {
                "part": "whole log",
                "rows": len(sp.train) + len(sp.valid) + len(sp.test),
                "epochs": self.refit_report.epochs,
                "selected_on": "valid",
            }
        return {"part": "train", "rows": len(sp.train), "epochs": self.report.epochs}

    def training(self) -> dict[str, Any]:
        """Epochs and throughput of the selection fit, for reports; a content model's head
        adjustment and request-time term weights."""
        rep = self.report
        if not rep.epochs:
            return {}
        out: dict[str, Any] = {"epochs": rep.epochs, "best_epoch": rep.best_epoch}
        for key in ("seconds_per_epoch", "sequences_per_second", "examples_per_second"):
            if isinstance(rep.notes.get(key), int | float):
                out[key] = round(float(rep.notes[key]), 4)
        if isinstance(rep.notes.get("data_wait_share"), int | float):
            out["data_wait_share"] = round(float(rep.notes["data_wait_share"]), 4)
        # what a content model chose and learned for new titles (coldhead, titlecontext)
        for key in ("head_logit_adjust", "head_terms", "request_terms"):
            if rep.notes.get(key) is not None:
                out[key] = rep.notes[key]
        return out


def validation_for(model: str) -> Callable[[Recommender, Prepared], float]:
    """How a grid point is judged on valid: NDCG@10 (top-N) or -RMSE (rating)."""
    from primetime.eval.protocol import EvalSet, evaluate, evaluate_ratings

    def topn(m: Recommender, data: Prepared) -> float:
        return float(evaluate(m, EvalSet.for_valid(data.split), ks=(10,)).summary()["NDCG@10"])

    def rating(m: Recommender, data: Prepared) -> float:
        return -float(evaluate_ratings(m, data.split.valid).summary()["RMSE"])

    return rating if get_model_class(model).task == "rating" else topn


def fit_model(
    spec: FitSpec,
    *,
    data: Prepared | None = None,
    on_trial: Callable[[str, dict[str, Any], float], None] | None = None,
    progress: Progress | None = None,
) -> TrainedRun:
    """Fit ``spec.model`` by the recipe of this module (select on valid, then
    refit on the whole log when ``spec.refit``).

    Args:
        spec: What to fit.
        data: Data already opened (a benchmark fits several models on one split).
        on_trial: Called with (model, config, valid figure) for each tuning trial.
        progress: Progress of generating a synthetic world.

    Valid is used for selection only; test is never touched here.
    """
    from primetime.eval.validation import ndcg_at_10

    data = data if data is not None else prepare_data(spec.data, progress=progress)
    cls = get_model_class(spec.model)
    if "text" in cls.uses:  # encoded once per opened data set, cached on disk by text
        data.side = data.side.with_text_vectors(device=spec.options.device or "cpu")
    sp, side = data.split, data.side
    valid = sp.valid if len(sp.valid) else None
    valid_candidates = sp.candidates_of("valid")
    validation = (
        functools.partial(ndcg_at_10, candidates=valid_candidates)
        if valid is not None and valid_candidates is not None
        else ndcg_at_10
    )
    reuse = {n: r for n, r in spec.reuse.items() if r.data is data and n != spec.model}
    options = dataclasses.replace(
        spec.options,
        validation=validation,
        prior={n: PriorFit(r.selected, r.report) for n, r in reuse.items()},
    )
    chosen = dict(spec.overrides)
    trials: list[dict[str, Any]] = []
    if spec.tune and cls.tuning_grid and valid is not None:
        judge = validation_for(spec.model)
        best = -np.inf
        for point in cls.tuning_grid:
            cfg = {**point, **spec.overrides}
            trial = build_model(spec.model, cfg)
            trial.fit(sp.train, side=side, options=dataclasses.replace(options, run_dir=None))
            value = judge(trial, data)
            trials.append({"config": cfg, "valid": abs(value)})
            if on_trial:
                on_trial(spec.model, cfg, abs(value))
            if value > best:
                best, chosen = value, cfg
    selected = build_model(spec.model, chosen)
    report = selected.fit(sp.train, valid=valid, side=side, options=options)
    valid_figures: dict[str, float] = {}
    if valid is not None:
        judge = validation_for(spec.model)
        value = judge(selected, data)
        valid_figures = {"valid RMSE": -value} if cls.task == "rating" else {"valid NDCG@10": value}
    run = TrainedRun(
        spec=spec,
        data=data,
        selected=selected,
        model=selected,
        config=dataclasses.asdict(selected.config),
        report=report,
        tuning=trials,
        valid=valid_figures,
    )
    if spec.refit:
        prior = {
            n: PriorFit(r.model, r.refit_report)
            for n, r in reuse.items()
            if r.refit_report is not None
        }
        options = dataclasses.replace(options, prior=prior, previous=selected)
        run.model, run.refit_report = _refit(spec, run, options)
    return run


def _refit(spec: FitSpec, run: TrainedRun, options: FitOptions) -> tuple[Recommender, FitReport]:
    """The selected settings, fit on the whole log for the selected number of epochs."""
    best = run.report.best_epoch
    # what valid chose (epochs, an ensemble's trees), pinned: nothing left to stop on
    cfg = {**run.config, **run.selected.refit_overrides(run.report)}
    final = build_model(spec.model, cfg)
    whole = run.data.whole_log()
    log.info("%s: refit on the whole log (%d rows, %s epochs)", spec.model, len(whole), best)
    # its own run folder: an interrupted refit must not be resumed as the selection fit
    run_dir = options.run_dir / "refit" if options.run_dir is not None else None
    final_options = dataclasses.replace(
        options, validation=None, select=False, resume=False, run_dir=run_dir
    )
    return final, final.fit(whole, side=run.data.side, options=final_options)


# ------------------------------------------------------------------ testing
def evaluate_on_test(run: TrainedRun, *, ks: tuple[int, ...] = (10,)) -> dict[str, float]:
    """Figures of the selection fit on the split's test part (the one use of test)."""
    from primetime.eval.protocol import EvalSet, evaluate, evaluate_ratings

    sp = run.data.split
    if not len(sp.test):
        return {}
    if run.selected.task == "rating" and not np.isnan(sp.test.rating).all():
        summary = evaluate_ratings(run.selected, sp.test).summary()
    else:
        summary = evaluate(run.selected, EvalSet.for_test(sp), ks=ks).summary()
    return {k: float(v) for k, v in summary.items() if k in RECORDED}


# ------------------------------------------------------------------ registry
def register_run(
    run: TrainedRun,
    registry: ModelRegistry,
    *,
    test: Mapping[str, float] | None = None,
    promote: bool = False,
    notes: str = "",
    name: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ModelVersion:
    """Store ``run.model`` as the next version in ``registry``.

    The version records what it was fit on (``fit_on``), the data and split
    (so ``evaluate`` and ``recommend`` can open them again), the selected
    config, the validation figures and, when given, the test figures of the
    selection fit (``metrics``; for a refit version they were measured before
    the refit, which has seen test).
    """
    data = run.data
    facts: dict[str, Any] = {
        **run.spec.data.describe(),
        "fit_on": run.fit_on(),
        "valid_metrics": run.valid,
        "tuning_on_valid": run.tuning,
        "side_data": data.side.describe(),
        **dict(extra or {}),
    }
    if test:
        facts["test_metrics_of"] = "the selection fit (train split), before any refit"
    seconds = run.fit_seconds + (run.refit_report.seconds if run.refit_report else 0.0)
    mv = registry.register(
        run.model,
        metrics=dict(test or {}),
        dataset=data.dataset if data.dataset is not None else {"name": data.name},
        notes=notes,
        name=name,
        train_seconds=seconds,
        extra=facts,
    )
    if promote:
        mv = registry.promote(mv.name, mv.version)
    return mv


#: More facts for a version's ``meta.json``, from its run (the caller's: the served
#: blend is chosen above this layer).
Facts = Callable[["TrainedRun"], Mapping[str, Any]]


def train_and_register(
    spec: FitSpec,
    registry: ModelRegistry,
    *,
    promote: bool,
    notes: str = "",
    measure_test: bool = True,
    facts: Facts | None = None,
) -> tuple[TrainedRun, ModelVersion]:
    """:func:`fit_model`, the test figures of the selection fit, :func:`register_run`
    (with ``facts(run)`` in the version's meta: the served blend a caller chose)."""
    run = fit_model(spec)
    test = evaluate_on_test(run) if measure_test else {}
    extra = facts(run) if facts is not None else None
    return run, register_run(run, registry, test=test, promote=promote, notes=notes, extra=extra)


def train_for_serving(
    name: str,
    *,
    data: str,
    registry: ModelRegistry,
    overrides: Mapping[str, Any] | None = None,
    refit: bool = True,
    promote: bool = True,
    notes: str = "",
    facts: Facts | None = None,
) -> ModelVersion:
    """What ``serve`` does for a model it lacks: select on the default split's valid
    part, measure test once, refit on the whole log, register and promote (``facts``:
    see :func:`train_and_register`)."""
    spec = FitSpec(
        name,
        data=DataSpec(data=data, split=default_split(name)),
        overrides=dict(overrides or {}),
        refit=refit,
    )
    notes = notes or f"{data}, " + ("refit on the whole log" if refit else "fit on train")
    return train_and_register(spec, registry, promote=promote, notes=notes, facts=facts)[1]


def ensure_models(
    names: list[str] | tuple[str, ...],
    *,
    data: str,
    registry: ModelRegistry,
    say: Callable[[str], None] = print,
    on_promoted: Callable[[ModelVersion, str | None], None] | None = None,
    facts: Facts | None = None,
) -> list[ModelVersion]:
    """Train, register and promote every model of ``names`` that has no promoted
    version yet (what ``primetime serve`` runs before it starts): selected on the
    leave-one-out valid part, then refit on the whole log. ``on_promoted(version,
    previous)`` hears of each promotion (the service records its history)."""
    made = []
    for name in names:
        if name in registry.names() and registry.promoted(name) is not None:
            continue
        if name not in MODELS:
            raise ValueError(f"cannot train {name!r}: not a model ({', '.join(MODELS)})")
        say(f"no promoted {name!r} in {registry.root}: training it on {data} (once)…")
        mv = train_for_serving(
            name,
            data=data,
            registry=registry,
            notes=f"primetime serve: {data}, refit",
            facts=facts,
        )
        if on_promoted is not None:
            on_promoted(mv, None)
        say(
            f"  {name} {mv.version}: test NDCG@10 {mv.metrics.get('NDCG@10', float('nan')):.4f} "
            "(selection fit), then refit on the whole log"
        )
        made.append(mv)
    return made
