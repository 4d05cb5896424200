"""The staged suite: the design's training stages, each model through the one life cycle.

``primetime train --suite full`` reads ``configs/training.yaml`` (the stages of
each suite, the data, refit, threads) and ``configs/models.yaml`` (each model's
options), overridden by ``--set MODEL.KEY=VALUE``. Stage by stage, every model
is fit by :func:`primetime.lifecycle.fit_model` (select on valid, test once,
refit on the whole log), registered and promoted.

A model is *current*, and skipped, when its promoted version was made by a
suite with the same fingerprint: model, options, data, split, refit and the
versions of every model of the earlier stages (a retrained member makes the
later stages stale). So a run that was interrupted continues with the first
model that is not current; a neural model's own checkpoint in its run folder
resumes the fit it was in.

At the end the suite times one user's recommendation through every model it
promoted (``score`` on a real history, in process) and writes a report.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from primetime.experiment import parse_overrides
from primetime.lifecycle import (
    DataSpec,
    FitSpec,
    Prepared,
    TrainedRun,
    build_model,
    default_split,
    evaluate_on_test,
    fit_model,
    prepare_data,
    register_run,
)
from primetime.machine import describe as describe_machine
from primetime.models import MODELS
from primetime.models.base import FitOptions
from primetime.models.ensemble import EnsembleConfig, member_model
from primetime.pipeline.blend import SERVED_BLEND
from primetime.registry import ModelRegistry, ModelVersion
from primetime.served_study import served_blend_meta
from primetime.types import UserContext

TRAINING_FILE = "training.yaml"
MODELS_FILE = "models.yaml"
WARM_UP = 10  # untimed calls per model before the latency is measured


@dataclass(frozen=True)
class Stage:
    """One stage: its number, what it is, its models in order."""

    number: int
    title: str
    models: tuple[str, ...]


@dataclass(frozen=True)
class Suite:
    """A suite read from the YAML configs, ``--set`` applied.

    Attributes:
        name: The suite's key in ``training.yaml``.
        stages: Its stages in order.
        data: Data set spec (``--data``).
        refit: Refit each model on the whole log after selection.
        threads: torch threads per fit, or None for all.
        options: Model name -> options over the model's defaults.
        source: The config folder it was read from.
        blend: The models whose version records the blend the service serves it with,
            chosen on valid (``blend:`` in ``training.yaml``;
            :func:`primetime.served_study.choose_served_blend`).
        jobs: Processes that fit a stage's models side by side (``jobs:`` in
            ``training.yaml``, ``--jobs``). With more than one, the models of a stage
            that no later stage binds in memory (an ensemble's members are fit in
            this process) are fit in ``jobs`` worker processes, each with
            ``threads`` torch threads (default: the cores shared out), when a stage
            has at least two of them; 1: one model after the other.
    """

    name: str
    stages: tuple[Stage, ...]
    data: str = "ml-100k"
    refit: bool = True
    threads: int | None = None
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: Path | None = None
    blend: tuple[str, ...] = ()
    jobs: int = 1

    @property
    def models(self) -> list[str]:
        return [m for s in self.stages for m in s.models]


def default_config_dir() -> Path:
    """``./configs`` when it exists, else the source checkout's ``configs``."""
    here = Path("configs")
    if (here / TRAINING_FILE).exists():
        return here
    return Path(__file__).resolve().parents[2] / "configs"


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise ValueError(f"{path}: no such file (pass --config-dir, a folder with {path.name})")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None


def load_suite(
    name: str,
    *,
    config_dir: Path | None = None,
    sets: Sequence[str] = (),
    data: str | None = None,
    threads: int | None = None,
    jobs: int | None = None,
) -> Suite:
    """Read suite ``name`` from ``config_dir`` and apply ``--set MODEL.KEY=VALUE``.

    Raises:
        ValueError: naming the file and what is wrong (unknown suite, unknown
            model, a malformed stage or ``--set``).
    """
    folder = config_dir if config_dir is not None else default_config_dir()
    training_path, models_path = folder / TRAINING_FILE, folder / MODELS_FILE
    training = _read_yaml(training_path) or {}
    model_opts = _read_yaml(models_path) or {}
    if not isinstance(training, dict) or not isinstance(training.get("suites"), dict):
        raise ValueError(f"{training_path}: needs a `suites:` map of suite name -> stages")
    if not isinstance(model_opts, dict):
        raise ValueError(f"{models_path}: needs a map of model name -> options")
    suites = training["suites"]
    if name not in suites:
        raise ValueError(f"{training_path}: no suite {name!r}; suites: {', '.join(suites)}")
    stages = []
    for i, raw in enumerate(suites[name] or [], start=1):
        if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
            raise ValueError(f"{training_path}: suite {name!r}, stage {i} needs a `models:` list")
        unknown = [m for m in raw["models"] if m not in MODELS]
        if unknown:
            raise ValueError(
                f"{training_path}: suite {name!r}, stage {i}: unknown model(s) "
                f"{', '.join(map(str, unknown))}; known: {', '.join(MODELS)}"
            )
        stages.append(
            Stage(int(raw.get("stage", i)), str(raw.get("title", "")), tuple(raw["models"]))
        )
    if not stages:
        raise ValueError(f"{training_path}: suite {name!r} has no stages")
    options: dict[str, dict[str, Any]] = {}
    for model, opts in model_opts.items():
        if opts is not None and not isinstance(opts, dict):
            raise ValueError(f"{models_path}: options of {model!r} must be a map, not {opts!r}")
        options[str(model)] = dict(opts or {})
    for key, value in parse_overrides(list(sets)).items():
        model, dot, opt = key.partition(".")
        if not dot or not opt:
            raise ValueError(f"--set {key}=…: in a suite, name the model: MODEL.KEY=VALUE")
        if model not in MODELS:
            raise ValueError(f"--set {key}=…: unknown model {model!r}; known: {', '.join(MODELS)}")
        options.setdefault(model, {})[opt] = value
    for model in {m for st in stages for m in st.models}:
        try:  # every option checked before the first fit, not when its stage comes
            build_model(model, options.get(model, {}))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{models_path} or --set, model {model!r}: {e}") from None
    blend = training.get("blend") or []
    if not isinstance(blend, list) or any(m not in MODELS for m in blend):
        raise ValueError(
            f"{training_path}: `blend:` must be a list of model names "
            f"({', '.join(MODELS)}), got {blend!r}"
        )
    jobs = jobs if jobs is not None else training.get("jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"{training_path}: `jobs:` must be a whole number >= 1, got {jobs!r}")
    return Suite(
        jobs=jobs,
        blend=tuple(str(m) for m in blend),
        name=name,
        stages=tuple(stages),
        data=data or str(training.get("data", "ml-100k")),
        refit=bool(training.get("refit", True)),
        threads=threads if threads is not None else training.get("threads"),
        options=options,
        source=folder,
    )


def fingerprint(suite: Suite, model: str, split: str, upstream: Mapping[str, str]) -> str:
    """What makes a version current: model, options, data, split, refit, upstream versions."""
    facts = {
        "model": model,
        "options": dict(suite.options.get(model, {})),
        "data": suite.data,
        "split": split,
        "refit": suite.refit,
        "upstream": dict(sorted(upstream.items())),
        # a version without its served blend is not current for a suite that asks for one
        **({"blend": True} if model in suite.blend else {}),
    }
    blob = json.dumps(facts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class StepResult:
    """One model's step of a suite run."""

    stage: int
    model: str
    status: str  # "trained" or "current"
    version: str
    seconds: float
    valid: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # the process's CPU time: other work on the machine left out


@dataclass
class SuiteResult:
    """What :func:`run_suite` did."""

    suite: Suite
    steps: list[StepResult]
    seconds: float
    latency_ms: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    load_average: tuple[float, float, float] = (float("nan"),) * 3  # at the run's end
    machine: str = ""  # CPU model, cores, RAM (:func:`primetime.machine.describe`)

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite.name,
            "data": self.suite.data,
            "refit": self.suite.refit,
            "jobs": self.suite.jobs,
            "seconds": round(self.seconds, 1),
            "cpu_seconds": round(self.cpu_seconds, 1),
            "load_average": list(self.load_average),
            "machine": self.machine,
            "steps": [s.__dict__ for s in self.steps],
            "latency_ms": self.latency_ms,
        }


def _current(reg: ModelRegistry, model: str, fp: str) -> ModelVersion | None:
    if model not in reg.names():
        return None
    mv = reg.promoted(model)
    if mv is None or (mv.meta.get("suite") or {}).get("fingerprint") != fp:
        return None
    return mv


def run_suite(
    suite: Suite,
    reg: ModelRegistry,
    *,
    run_root: Path,
    say: Callable[[str], None] = print,
    on_model_done: Callable[[Stage, StepResult], None] | None = None,
    on_stage_start: Callable[[Stage], None] | None = None,
    on_promoted: Callable[[ModelVersion, str | None], None] | None = None,
    force: bool = False,
) -> SuiteResult:
    """Run every stage of ``suite``, skipping the models that are current.

    Args:
        suite: From :func:`load_suite`.
        reg: The model registry to read and write.
        run_root: Each neural model checkpoints in ``run_root/MODEL`` and resumes there.
        say: One line of news per step.
        on_model_done: Called after each model (progress bars).
        on_stage_start: Called before each stage.
        on_promoted: Hears of each promotion (the service records its history).
        force: Retrain every model even when current.
    """
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    prepared: dict[str, Prepared] = {}
    upstream: dict[str, str] = {}
    # this run's fits, for the later stages: an ensemble binds the members fit here
    # (same data, same settings) instead of fitting them again
    runs: dict[str, TrainedRun] = {}
    steps: list[StepResult] = []
    for index, stage in enumerate(suite.stages):
        if on_stage_start is not None:
            on_stage_start(stage)
        made: dict[str, str] = {}
        done: dict[str, StepResult] = {}

        def finish(step: StepResult, stage: Stage = stage, made: dict[str, str] = made) -> None:
            made[step.model] = step.version
            if on_model_done is not None:
                on_model_done(stage, step)

        todo: list[tuple[str, str]] = []
        for model in stage.models:
            fp = fingerprint(suite, model, default_split(model), upstream)
            mv = None if force else _current(reg, model, fp)
            if mv is None:
                todo.append((model, fp))
                continue
            say(f"stage {stage.number}: {model} {mv.version} is current, skipped")
            done[model] = StepResult(
                stage.number,
                model,
                "current",
                mv.version,
                0.0,
                dict(mv.meta.get("valid_metrics") or {}),
                dict(mv.metrics),
            )
            finish(done[model])
        bound = _bound_later(suite, index)
        apart = [(m, fp) for m, fp in todo if m not in bound] if suite.jobs > 1 else []
        apart = apart if len(apart) > 1 else []
        for model, fp in [t for t in todo if t not in apart]:
            data = _opened(prepared, suite, model)
            say(f"stage {stage.number}: training {model} on {data.name} ({data.spec.split})")
            before = _promoted_version(reg, model)
            step, run, mv = _fit_and_register(
                suite,
                stage.number,
                model,
                fp,
                upstream,
                data=data,
                reg=reg,
                run_root=run_root,
                threads=suite.threads,
                reuse=runs,
                made=made,
                say=say,
            )
            runs[model] = run
            if on_promoted is not None:
                on_promoted(mv, before)
            done[model] = step
            finish(step)
        if apart:
            say(
                f"stage {stage.number}: training {', '.join(m for m, _ in apart)} on "
                f"{suite.data} in {min(suite.jobs, len(apart))} worker processes "
                f"({_worker_threads(suite)} torch thread(s) each)"
            )
            workers = _fit_in_workers(
                suite, stage, apart, upstream, reg=reg, run_root=run_root, prepared=prepared
            )
            for step, lines, before in workers:
                for line in lines:
                    say(line)
                if on_promoted is not None:
                    on_promoted(reg.get(step.model, step.version), before)
                done[step.model] = step
                finish(step)
        steps.extend(done[m] for m in stage.models)
        upstream.update(made)
    return SuiteResult(
        suite,
        steps,
        time.perf_counter() - started,
        cpu_seconds=_cpu_seconds() - cpu_started,
        load_average=_load_average(),
        machine=describe_machine(),
    )


def _opened(prepared: dict[str, Prepared], suite: Suite, model: str) -> Prepared:
    """The suite's data split the way ``model`` is fit, opened once per split."""
    split = default_split(model)
    if split not in prepared:
        prepared[split] = prepare_data(DataSpec(data=suite.data, split=split))
    return prepared[split]


def _cpu_seconds() -> float:
    """CPU time of this process and of the worker processes it has waited for."""
    import resource

    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def _worker_threads(suite: Suite) -> int:
    """torch threads of each worker: the suite's ``threads``, else the cores shared out."""
    return suite.threads or max(1, (os.cpu_count() or 1) // suite.jobs)


def _promoted_version(reg: ModelRegistry, model: str) -> str | None:
    mv = reg.promoted(model) if model in reg.names() else None
    return mv.version if mv is not None else None


def _bound_later(suite: Suite, index: int) -> set[str]:
    """Models that a stage after ``index`` binds in memory: an ensemble's members
    (fit in this process, so the ensemble reuses the fits instead of repeating them)."""
    bound: set[str] = set()
    for stage in suite.stages[index + 1 :]:
        for model in stage.models:
            if model == "ensemble":
                opts = suite.options.get(model, {})
                members = EnsembleConfig(members=opts.get("members", EnsembleConfig.members))
                bound.update(members.member_names())
    return bound


def _fit_and_register(
    suite: Suite,
    stage: int,
    model: str,
    fp: str,
    upstream: Mapping[str, str],
    *,
    data: Prepared,
    reg: ModelRegistry,
    run_root: Path,
    threads: int | None,
    reuse: Mapping[str, TrainedRun],
    made: Mapping[str, str],
    say: Callable[[str], None],
) -> tuple[StepResult, TrainedRun, ModelVersion]:
    """One model's step: fit (select, test, refit), choose its served blend, register
    and promote it."""
    t0, c0 = time.perf_counter(), time.process_time()
    spec = FitSpec(
        model,
        data=data.spec,
        overrides=_overrides(suite, model),
        refit=suite.refit,
        options=FitOptions(run_dir=run_root / model, resume=True, threads=threads),
        reuse=dict(reuse),
    )
    run = fit_model(spec, data=data)
    _name_bound_members(run, made_by={**upstream, **made}, runs={**reuse, model: run})
    test = evaluate_on_test(run)
    extra: dict[str, Any] = {
        "suite": {
            "name": suite.name,
            "stage": stage,
            "fingerprint": fp,
            "upstream": dict(upstream),
        }
    }
    if model in suite.blend:
        extra.update(served_blend_meta(run.selected, data))
        if SERVED_BLEND in extra:
            say(f"stage {stage}: {model} served blend {extra[SERVED_BLEND]['weights']}")
    mv = register_run(
        run,
        reg,
        test=test,
        promote=True,
        notes=f"primetime train --suite {suite.name}, stage {stage}",
        extra=extra,
    )
    step = StepResult(
        stage,
        model,
        "trained",
        mv.version,
        time.perf_counter() - t0,
        dict(run.valid),
        dict(test),
        cpu_seconds=time.process_time() - c0,
    )
    say(
        f"stage {stage}: {model} {mv.version} in {step.seconds:.0f}s "
        f"(CPU {step.cpu_seconds:.0f}s), "
        + ", ".join(f"{k} {v:.4f}" for k, v in {**run.valid, **test}.items())
    )
    return step, run, mv


def _fit_in_workers(
    suite: Suite,
    stage: Stage,
    todo: Sequence[tuple[str, str]],
    upstream: Mapping[str, str],
    *,
    reg: ModelRegistry,
    run_root: Path,
    prepared: dict[str, Prepared],
) -> Iterator[tuple[StepResult, list[str], str | None]]:
    """Fit ``todo`` (model, fingerprint) in ``suite.jobs`` fresh processes (spawned:
    no forked torch thread pools), each with its share of the cores; each worker
    opens the data from the cache, fits, registers and promotes its model. Texts are
    encoded here first, once, so no two workers encode them. Yields each model's step,
    its news and the version promoted before it, as the workers finish."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    from primetime.models import get_model_class

    threads = _worker_threads(suite)
    for model, _ in todo:
        if "text" in get_model_class(model).uses:
            data = _opened(prepared, suite, model)
            data.side = data.side.with_text_vectors()
    before = {model: _promoted_version(reg, model) for model, _ in todo}
    pool = ProcessPoolExecutor(
        max_workers=min(suite.jobs, len(todo)), mp_context=multiprocessing.get_context("spawn")
    )
    pending: dict[Future[tuple[StepResult, list[str]]], str] = {}
    try:
        for model, fp in todo:
            args = (suite, stage.number, model, fp, dict(upstream), reg.root, run_root, threads)
            pending[pool.submit(_worker_step, *args)] = model
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                model = pending.pop(future)
                step, lines = future.result()  # a worker's error is raised here
                yield step, lines, before[model]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _worker_step(
    suite: Suite,
    stage: int,
    model: str,
    fp: str,
    upstream: dict[str, str],
    reg_root: Path,
    run_root: Path,
    threads: int,
) -> tuple[StepResult, list[str]]:
    """:func:`_fit_and_register` in a worker process; its news comes back as lines."""
    lines: list[str] = []
    step, _, _ = _fit_and_register(
        suite,
        stage,
        model,
        fp,
        upstream,
        data=_opened({}, suite, model),
        reg=ModelRegistry(reg_root),
        run_root=run_root,
        threads=threads,
        reuse={},
        made={},
        say=lines.append,
    )
    return step, lines


def _overrides(suite: Suite, model: str) -> dict[str, Any]:
    """The model's options; an ensemble's members take their own options of the suite
    (``models.yaml``, ``--set``) unless ``member_settings`` is given, so the members it
    fuses are those the earlier stages fit (and it can bind them, not fit them again);
    another seed of a member (``temporal@2``) takes its model's options."""
    opts = dict(suite.options.get(model, {}))
    if model != "ensemble" or "member_settings" in opts:
        return opts
    members = EnsembleConfig(members=opts.get("members", EnsembleConfig.members))
    parts = [
        f"{m}.{k}={json.dumps(v)}"
        for m in members.member_names()
        for k, v in suite.options.get(member_model(m)[0], {}).items()
    ]
    for part in parts:
        if "," in part:
            raise ValueError(
                f"ensemble: the member option {part!r} holds a comma, which member_settings "
                "cannot carry; set ensemble.member_settings in models.yaml yourself"
            )
    settings = ",".join(parts)
    return {**opts, "member_settings": settings} if settings else opts


def _name_bound_members(
    run: TrainedRun, *, made_by: Mapping[str, str], runs: Mapping[str, TrainedRun]
) -> None:
    """An ensemble whose kept members are this suite's own registered versions names
    them by key, so registering it does not register copies of them."""
    model = run.model
    for role, member in model.member_models().items():
        other = runs.get(role)
        if other is not None and other.model is member and role in made_by:
            model.members[role] = f"{role}:{made_by[role]}"


def serving_latency(
    suite: Suite, reg: ModelRegistry, *, users: int = 200, seed: int = 0
) -> dict[str, float]:
    """p99 milliseconds of one user's ``score`` through each top-N model of the suite,
    and through all of them in turn (``"all members"``), on real histories of the
    leave-one-out split (train + valid events of sampled users), after ``WARM_UP``
    untimed calls per model (the first call builds a model's cached item table: a
    serving process pays it once, not per request)."""
    names = [m for m in suite.models if MODELS[m].task != "rating"]
    if not names:
        return {}
    data = prepare_data(DataSpec(data=suite.data, split="loo"))
    full = data.whole_log()
    rng = np.random.default_rng(seed)
    n_users = int(full.user_idx.max()) + 1
    picked = np.sort(rng.choice(n_users, size=min(users, n_users), replace=False))
    order = np.lexsort((full.timestamp, full.user_idx))
    u, it, ts = full.user_idx[order], full.item_idx[order], full.timestamp[order]
    starts = np.searchsorted(u, picked, side="left")
    ends = np.searchsorted(u, picked, side="right")
    contexts = [
        UserContext(None, it[s:e][-50:].astype(np.int64), timestamps=ts[s:e][-50:])
        for s, e in zip(starts, ends, strict=True)
        if e > s
    ]
    models = {m: reg.load(m) for m in names}
    for model in models.values():  # warm-up: cached item tables, first-call allocations
        for ctx in contexts[:WARM_UP]:
            model.score([ctx])
    per: dict[str, list[float]] = {m: [] for m in names}
    total: list[float] = []
    for ctx in contexts:
        t_all = 0.0
        for m, model in models.items():
            t0 = time.perf_counter()
            model.score([ctx])
            dt = (time.perf_counter() - t0) * 1000
            per[m].append(dt)
            t_all += dt
        total.append(t_all)
    out = {m: float(np.percentile(v, 99)) for m, v in per.items()}
    out["all members"] = float(np.percentile(total, 99))
    return out


def _load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:  # not on every platform
        return (float("nan"),) * 3


def write_report(result: SuiteResult, folder: Path) -> Path:
    """``suite.json`` and ``report.md`` in ``folder``; returns the markdown path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    lines = [
        f"# Suite `{result.suite.name}` on {result.suite.data}",
        "",
        f"Wall time {result.seconds / 60:.1f} min, CPU time of the process and its workers "
        f"{result.cpu_seconds / 60:.1f} min on {os.cpu_count()} cores "
        f"({result.machine or 'machine not recorded'}), "
        f"{result.suite.jobs} job(s) "
        f"(refit on the whole log: {'yes' if result.suite.refit else 'no'}; load average "
        f"at the end {' '.join(f'{x:.2f}' for x in result.load_average)}: wall time counts "
        "whatever else ran, CPU time does not).",
        "",
        "| stage | model | status | version | seconds | CPU s "
        "| valid NDCG@10 | test NDCG@10 | test HR@10 |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in result.steps:
        valid = s.valid.get("valid NDCG@10", float("nan"))
        lines.append(
            f"| {s.stage} | {s.model} | {s.status} | {s.version} | {s.seconds:.0f} | "
            f"{s.cpu_seconds:.0f} | "
            f"{valid:.4f} | {s.test.get('NDCG@10', float('nan')):.4f} | "
            f"{s.test.get('HR@10', float('nan')):.4f} |"
        )
    if result.latency_ms:
        lines += [
            "",
            "One user's `score` in process, p99 ms (histories of up to 50 events):",
            "",
            "| model | p99 ms |",
            "|---|---:|",
        ]
        lines += [f"| {m} | {v:.2f} |" for m, v in result.latency_ms.items()]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
