"""MovieLens-25M scale, end to end: world/load, train, evaluate, serve; time and peak memory.

Runs on the ``ml-25m`` synthetic preset by default (25M events, 162k users, ~60k titles),
or on ``--data PATH`` (a GroupLens ml-25m folder, or anything ``--data`` accepts
elsewhere): every step opens the data through ``primetime.data.open.open_dataset``, the
one path the CLI and the service use. Each step runs in a fresh subprocess, so the peak
resident memory printed is that step's own:

  world   generate the synthetic world into ``$PRIMETIME_HOME/datasets`` (skipped with a
          note when it is cached, unless ``--regenerate``); with ``--data`` there is no
          world: ``load`` measures the cold path instead
  load    open the data: the cached world (preset); with ``--data``: cold (a fresh
          Parquet cache: parse + validate + vocabularies) then cached
  train   SASRec (sampled softmax: memory stays bounded at 60k titles) on the
          leave-one-out train part for ``--steps`` optimiser steps of ``--batch``
          sequences, 1 process, then ``torchrun --nproc_per_node 2`` (gloo, ``--batch``/2
          per process: the same steps on the same global batch); one torch thread per
          process. Time per full epoch is *extrapolated* from the measured steps unless
          ``--steps 0`` (one full epoch). The 1-process model is registered for the
          next steps.
  eval    full ranking of every test user (leave-one-out) against every title:
          NDCG@10 / HR@10 of that model and, as the baseline of the same run, of
          popularity
  serve   ``primetime.service.process.Server`` (uvicorn, one worker, SQLite, in-memory
          cache) serving that model over the whole data; ``--serve-users`` users are
          signed up through the API with their latest ``--history`` titles (only what the
          load test needs: not all 162k histories), then the loopback load test of
          ``bench_service.py``: cached and after-event recommendation latency (C=1) and
          sustained events/s

    python benchmarks/bench_scale.py                         # ml-25m preset, every step
    python benchmarks/bench_scale.py --data ~/data/ml-25m    # a GroupLens folder
    python benchmarks/bench_scale.py --steps train,eval --steps-train 300

Prints the machine, the command, the load average at each step and a table
``step | seconds | peak MiB | figures``; appends it with a UTC timestamp to
``benchmarks/results/scale_25m.md`` (``--out -``: nowhere).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _machine import header, peak_rss_mib  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "scale_25m.md"
STEPS = ("world", "load", "train", "eval", "serve")
LIMIT_MIB = 6 * 1024  # load + prepare must stay under 6 GiB


# ----------------------------------------------------------------------------- children
# Each function below runs in a fresh process (``--child NAME``) and returns a JSON-able
# dict with at least ``seconds`` and ``figures``; the parent adds the peak RSS.


def data_spec(args: argparse.Namespace) -> str:
    return args.data or f"synthetic-{args.preset}"


def child_world(args: argparse.Namespace) -> dict[str, Any]:
    """Generate the preset's world into the cache ``open_dataset`` reads."""
    from primetime import paths
    from primetime.data import synthetic

    name = f"synthetic-{args.preset}-seed0"
    d = paths.datasets_dir() / name
    cfg = synthetic.PRESETS[args.preset]
    cached = synthetic.saved_format(d) == synthetic.WORLD_FORMAT_VERSION
    if cached and not args.regenerate:
        return {"seconds": 0.0, "cached": True, "figures": f"{name} cached: not regenerated"}
    if d.exists():
        shutil.rmtree(d)
    t0 = time.perf_counter()
    world = synthetic.generate(cfg, out_dir=d, workers=args.workers)
    seconds = time.perf_counter() - t0
    it = world.dataset.interactions
    return {
        "seconds": seconds,
        "figures": (
            f"generated {len(it):,} events, {it.users.size - 1:,} users, "
            f"{it.items.size - 1:,} titles ({args.workers} workers), saved to the cache"
        ),
    }


def child_load(args: argparse.Namespace) -> dict[str, Any]:
    """Open the data (cached world, or the loaders' cold/cached path for ``--data``)."""
    from primetime.data.open import open_dataset

    t0 = time.perf_counter()
    ds = open_dataset(args.load_spec or data_spec(args)).dataset
    seconds = time.perf_counter() - t0
    it = ds.interactions
    return {
        "seconds": seconds,
        "figures": f"{len(it):,} events, {it.users.size - 1:,} users, {it.items.size - 1:,} titles",
    }


def child_train(args: argparse.Namespace) -> dict[str, Any]:
    """Bounded SASRec training; under torchrun every rank reports its own figures."""
    import torch

    from primetime.data.open import open_dataset
    from primetime.data.side import SideData
    from primetime.data.splits import leave_one_out
    from primetime.lifecycle import build_model
    from primetime.models.base import FitOptions
    from primetime.training.loop import distributed, init_distributed, shutdown_distributed

    torch.set_num_threads(1)
    joined = init_distributed()
    try:
        rank, world = distributed()
        t0 = time.perf_counter()
        ds = open_dataset(data_spec(args)).dataset
        split = leave_one_out(ds.interactions)
        t_data = time.perf_counter() - t0
        per_proc = max(args.batch // world, 1)
        model = build_model(
            "sasrec",
            {
                "loss": "sampled_softmax",
                "negatives": args.negatives,
                "epochs": 1,
                "max_steps": args.steps_train,
                "batch_size": per_proc,
                "warmup_epochs": 0.0,
                "device": "cpu",
            },
        )
        options = FitOptions(validation=None, select=False, device="cpu", threads=1)
        report = model.fit(split.train, side=SideData.of(ds), options=options)
        row = report.history[-1]
        windows = int(report.notes["windows"])
        full_steps = math.ceil(math.ceil(windows / world) / per_proc)
        steps = int(row.get("steps", full_steps))
        loop_s = float(row["seconds"])
        out: dict[str, Any] = {
            "seconds": loop_s,
            "rank": rank,
            "world": world,
            "data_s": t_data,
            "fit_s": report.seconds,
            "windows": windows,
            "steps": steps,
            "full_steps": full_steps,
            "per_proc_batch": per_proc,
            "loss": float(row["train_loss"]),
            "epoch_s": loop_s / max(steps, 1) * full_steps,
            "extrapolated": steps < full_steps,
            "train_events": len(split.train),
        }
        if rank == 0 and world == 1:
            from primetime.registry import ModelRegistry

            reg = ModelRegistry(Path(args.work) / "registry")
            mv = reg.register(
                model,
                dataset=ds,
                notes=f"bench_scale: {steps} steps of {per_proc}, sampled softmax",
                train_seconds=report.seconds,
                extra={"data": data_spec(args), "split": "loo", "fit_on": "train"},
            )
            reg.promote(mv.name, mv.version)
            out["version"] = mv.version
        return out
    finally:
        if joined:
            shutdown_distributed()


def child_eval(args: argparse.Namespace) -> dict[str, Any]:
    """Full ranking of every test user: the trained model and popularity."""
    from primetime.data.open import open_dataset
    from primetime.data.splits import leave_one_out
    from primetime.eval.protocol import EvalSet, evaluate
    from primetime.lifecycle import build_model
    from primetime.registry import ModelRegistry

    t0 = time.perf_counter()
    ds = open_dataset(data_spec(args)).dataset
    split = leave_one_out(ds.interactions)
    evalset = EvalSet.for_test(split)
    t_data = time.perf_counter() - t0
    model = ModelRegistry(Path(args.work) / "registry").load("sasrec")
    t1 = time.perf_counter()
    result = evaluate(model, evalset, ks=(10,))
    res = result.summary()
    t_model = time.perf_counter() - t1
    pop = build_model("popularity")
    pop.fit(split.train)
    t2 = time.perf_counter()
    base = evaluate(pop, evalset, ks=(10,)).summary()
    t_pop = time.perf_counter() - t2
    users = len(result.values("NDCG@10"))
    return {
        "seconds": t_model,
        "data_s": t_data,
        "pop_s": t_pop,
        "users": users,
        "titles": split.train.items.size - 1,
        "ndcg": float(res["NDCG@10"]),
        "hr": float(res["HR@10"]),
        "pop_ndcg": float(base["NDCG@10"]),
        "pop_hr": float(base["HR@10"]),
    }


def child_serve(args: argparse.Namespace) -> dict[str, Any]:
    """The service over the whole data, a sample of users, the loopback load test."""
    import bench_service as bs
    import httpx

    from primetime import paths
    from primetime.service.process import Server

    work = Path(args.work)
    registry = work / "registry"
    if not (registry / "sasrec").exists():
        raise SystemExit(f"no sasrec in {registry}: run the train step first")
    with tempfile.TemporaryDirectory(prefix="bench-scale-serve-", dir=work) as tmp:
        tmpd = Path(tmp)
        db_url = f"sqlite:///{tmpd / 'service.db'}"
        admin = secrets.token_urlsafe(16)
        env = {
            **os.environ,
            "PRIMETIME_HOME": str(paths.home().resolve()),
            "PRIMETIME_ENVIRONMENT": "test",
            "PRIMETIME_DATABASE_URL": db_url,
            "PRIMETIME_CACHE_URL": "memory",
            "PRIMETIME_REGISTRY_DIR": str(registry.resolve()),
            "PRIMETIME_DATA": data_spec(args),
            "PRIMETIME_MODELS": "sasrec",
            "PRIMETIME_ADMIN_TOKEN": admin,
            "PRIMETIME_RATE_LIMIT_PER_MINUTE": "0",
        }
        server = Server(env=env, cwd=tmpd, log=tmpd / "server.log")
        try:
            ready_s = server.start(timeout=900)
            ready = httpx.get(f"{server.url}/ready", timeout=30).json()
            t0 = time.perf_counter()
            hist, item_ids = bs.histories(data_spec(args), args.serve_users, args.history)
            hist_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            users = bs.make_users(server.url, hist, args.concurrency)
            signup_s = time.perf_counter() - t0
            n = args.requests
            health, cached, cold = bs.latency_phase(server.url, users, item_ids, n, 1)
            ev, acked, stored = bs.events_phase(
                server.url, db_url, users, item_ids, n, args.concurrency
            )
            server_peak = _vmhwm_mib(server.proc.pid if server.proc else None)
        except Exception:
            print(server.tail(), file=sys.stderr)
            raise
        finally:
            server.stop()
    return {
        "seconds": ready_s,
        "titles": int(ready.get("titles", 0)),
        "model": str(ready.get("model_version", "")),
        "users": len(users),
        "events_posted": sum(len(u.history) for u in users),
        "hist_s": hist_s,
        "signup_s": signup_s,
        "health_p99": health.pct(99),
        "cached_p50": cached.pct(50),
        "cached_p99": cached.pct(99),
        "event_p50": cold.pct(50),
        "event_p99": cold.pct(99),
        "errors": health.errors + cached.errors + cold.errors + ev.errors,
        "events_s": ev.rate,
        "acked": acked,
        "stored": stored,
        "server_peak_mib": server_peak,
        "requests": n,
    }


def _vmhwm_mib(pid: int | None) -> float:
    """Peak resident memory (VmHWM) of a running process, in MiB (nan if unknown)."""
    if pid is None:
        return float("nan")
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


CHILDREN: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "world": child_world,
    "load": child_load,
    "train": child_train,
    "eval": child_eval,
    "serve": child_serve,
}


def run_child(args: argparse.Namespace) -> None:
    out = CHILDREN[args.child](args)
    out["peak_mib"] = peak_rss_mib()
    rank = int(os.environ.get("RANK", "0"))
    path = Path(args.result)
    if rank:
        path = path.with_name(f"{path.stem}.rank{rank}{path.suffix}")
    path.write_text(json.dumps(out))


# ----------------------------------------------------------------------------- parent


@dataclasses.dataclass
class Row:
    step: str
    seconds: float
    peak_mib: float
    figures: str


def child_argv(args: argparse.Namespace, name: str, result: Path) -> list[str]:
    argv = [str(Path(__file__).resolve()), "--child", name, "--result", str(result)]
    for key in (
        "preset",
        "data",
        "work",
        "workers",
        "batch",
        "negatives",
        "serve_users",
        "history",
        "requests",
        "concurrency",
        "load_spec",
    ):
        value = getattr(args, key)
        if value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    argv += ["--steps-train", str(args.steps_train)]
    if args.regenerate:
        argv.append("--regenerate")
    return argv


def spawn(
    args: argparse.Namespace,
    name: str,
    *,
    procs: int = 1,
    env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run step ``name`` in a fresh process (``procs`` > 1: under torchrun); every
    rank's result dict, rank 0 first."""
    result = Path(args.work) / f"result-{name}-{procs}.json"
    for old in result.parent.glob(f"{result.stem}*"):
        old.unlink()
    cmd = [sys.executable, *child_argv(args, name, result)]
    if procs > 1:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(procs),
            *child_argv(args, name, result),
        ]
    proc = subprocess.run(cmd, env=env or os.environ.copy(), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise RuntimeError(f"step {name} ({procs} process(es)) failed: exit {proc.returncode}")
    files = sorted(result.parent.glob(f"{result.stem}*"), key=lambda p: len(p.name))
    return [json.loads(p.read_text()) for p in files]


def loadavg() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main(argv: list[str] | None = None) -> list[Row]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--preset", default="ml-25m", help="synthetic preset (without --data)")
    ap.add_argument("--data", default=None, help="a GroupLens ml-25m folder (or any data spec)")
    ap.add_argument(
        "--steps", default=",".join(STEPS), help=f"comma-separated, of {', '.join(STEPS)}"
    )
    ap.add_argument(
        "--work",
        default=None,
        help="folder for the registry and results between steps "
        "(default $PRIMETIME_HOME/bench-scale/<data>)",
    )
    ap.add_argument("--workers", type=int, default=2, help="world generation processes")
    ap.add_argument("--regenerate", action="store_true", help="generate even if cached")
    ap.add_argument(
        "--steps-train",
        type=int,
        default=300,
        help="optimiser steps per training run (0: one full epoch)",
    )
    ap.add_argument("--batch", type=int, default=128, help="global batch (split over ranks)")
    ap.add_argument("--negatives", type=int, default=256, help="sampled-softmax negatives")
    ap.add_argument("--procs", type=int, default=2, help="torchrun processes to compare with 1")
    ap.add_argument("--serve-users", type=int, default=200, help="users signed up for the test")
    ap.add_argument("--history", type=int, default=50, help="titles posted per signed-up user")
    ap.add_argument("--requests", type=int, default=1000, help="requests per measurement")
    ap.add_argument("--concurrency", type=int, default=4, help="clients for events/s")
    ap.add_argument("--out", default=str(RESULTS), help="results file ('-': none)")
    ap.add_argument(
        "--csv-rows",
        type=int,
        default=25_000_000,
        help="without --data: also time the loaders (load + prepare, cold and cached) on a "
        "GroupLens ratings.csv + movies.csv of this many rows, 162,541 users and 59,047 "
        "titles written by bench_load.py (0: skip)",
    )
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--load-spec", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        run_child(args)
        return []
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        ap.error(f"unknown steps {unknown}; choose from {', '.join(STEPS)}")
    if args.steps_train < 0 or args.batch < args.procs or args.procs < 1:
        ap.error("--steps-train >= 0, --procs >= 1 and --batch >= --procs")
    if args.data is not None and not Path(args.data).exists():
        ap.error(f"--data {args.data}: no such file or folder")
    from primetime import paths

    spec = data_spec(args)
    if args.work is None:
        tag = Path(args.data).name if args.data else spec
        args.work = str(paths.home() / "bench-scale" / tag)
    Path(args.work).mkdir(parents=True, exist_ok=True)

    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    say(header())
    say(f"data: {spec} · steps: {', '.join(steps)} · load average at start {loadavg()}")
    say("(2 shared cores: other jobs run beside this one; see the load average per step)")
    rows: list[Row] = []

    def add(step: str, r: dict[str, Any], figures: str) -> None:
        rows.append(Row(step, float(r["seconds"]), float(r["peak_mib"]), figures))
        say(f"  {step}: {r['seconds']:.1f}s, peak {r['peak_mib']:,.0f} MiB · {figures}")

    env = os.environ.copy()
    if args.data is not None:
        # the loaders' Parquet cache of --data lives in a home of the benchmark's own, so
        # that "cold" is cold
        env["PRIMETIME_HOME"] = str(Path(args.work) / "home")
    for step in steps:
        say(f"[{step}] load average {loadavg()}")
        try:
            run_step(step, args, env, say, add)
        except RuntimeError as e:  # a failed step is reported; the others still run
            say(f"  {step}: FAILED: {e}")
    say(f"load average at the end {loadavg()}")
    say("")
    say(table(rows))
    if args.out != "-":
        append_results(Path(args.out), spec, lines)
        print(f"appended to {args.out}")
    return rows


def run_step(
    step: str,
    args: argparse.Namespace,
    env: dict[str, str],
    say: Callable[[str], None],
    add: Callable[[str, dict[str, Any], str], None],
) -> None:
    """Run one step's subprocess(es) and report its rows."""
    if step == "world":
        if args.data is not None:
            say("  world: --data given, nothing to generate (load measures the cold path)")
            return
        (r,) = spawn(args, "world", env=env)
        if r.get("cached"):
            say(f"  world: {r['figures']} (--regenerate to time it)")
        else:
            add("world: generate", r, r["figures"])
    elif step == "load":
        if args.data is not None:
            shutil.rmtree(Path(env["PRIMETIME_HOME"]) / "datasets", ignore_errors=True)
            (r,) = spawn(args, "load", env=env)
            add("load + prepare, cold", r, _limit(r) + r["figures"])
        (r,) = spawn(args, "load", env=env)
        add("load, cached", r, _limit(r) + r["figures"])
        if args.data is None and args.csv_rows > 0:
            load_csv(args, env, say, add)
    elif step == "train":
        runs: dict[int, dict[str, Any]] = {}
        for procs in sorted({1, args.procs}):
            if procs > 1:
                say(f"[train x{procs}] load average {loadavg()}")
            ranks = spawn(args, "train", procs=procs, env=env)
            r0 = ranks[0]
            r0 = {**r0, "peak_mib": max(r["peak_mib"] for r in ranks)}
            runs[procs] = r0
            label = "extrapolated" if r0["extrapolated"] else "measured"
            figures = (
                f"{r0['steps']} steps x {r0['per_proc_batch']} seq/process "
                f"({procs} x 1 thread): {r0['seconds'] / r0['steps']:.3f} s/step, "
                f"{r0['steps'] * args.batch / r0['seconds']:,.0f} seq/s; "
                f"epoch = {r0['full_steps']:,} steps ({r0['windows']:,} windows): "
                f"{r0['epoch_s'] / 60:,.1f} min ({label}); loss {r0['loss']:.3f}; "
                f"data+split {r0['data_s']:.0f}s"
            )
            if procs > 1:
                figures += f"; peak is the larger rank's, x{procs} processes"
            add(f"train sasrec, {procs} process" + ("es" if procs > 1 else ""), r0, figures)
        if len(runs) == 2:
            one, many = runs[1], runs[args.procs]
            say(
                f"  torchrun {args.procs} processes vs 1 on the same {one['steps']} steps "
                f"of a {args.batch}-sequence global batch: "
                f"{one['seconds'] / many['seconds']:.2f}x the speed"
            )
    elif step == "eval":
        (r,) = spawn(args, "eval", env=env)
        figures = (
            f"{r['users']:,} users x {r['titles']:,} titles, full ranking: "
            f"{r['users'] / r['seconds']:,.0f} users/s; NDCG@10 {r['ndcg']:.4f}, "
            f"HR@10 {r['hr']:.4f} (popularity, same run: NDCG@10 {r['pop_ndcg']:.4f}, "
            f"HR@10 {r['pop_hr']:.4f}, {r['pop_s']:.0f}s); data+split {r['data_s']:.0f}s"
        )
        if args.data is None:
            figures += "; a synthetic world"
        add("eval, every user", r, figures)
    elif step == "serve":
        (r,) = spawn(args, "serve", env=env)
        figures = (
            f"{r['model']}, {r['titles']:,} titles, SQLite + memory cache, "
            f"1 worker: ready in {r['seconds']:.0f}s (server peak "
            f"{r['server_peak_mib']:,.0f} MiB); {r['users']} users signed up through "
            f"the API with {r['events_posted']:,} history events in {r['signup_s']:.0f}s "
            f"(a sample: not all users); C=1 p99 cached {r['cached_p99']:.1f} ms, "
            f"after event {r['event_p99']:.1f} ms (/health {r['health_p99']:.1f} ms); "
            f"{r['events_s']:,.0f} events/s at C={args.concurrency} "
            f"(acked {r['acked']}, stored {r['stored']}); errors {r['errors']}"
        )
        add("serve + load test", r, figures)


def load_csv(
    args: argparse.Namespace,
    env: dict[str, str],
    say: Callable[[str], None],
    add: Callable[[str, dict[str, Any], str], None],
) -> None:
    """The loaders at MovieLens-25M size on the preset: a GroupLens ratings.csv written
    by ``bench_load.write_log`` (kept in the work folder), prepared cold, then cached."""
    from bench_load import write_log

    folder = Path(args.work) / f"csv-{args.csv_rows}" / "ml-25m"
    if not (folder / "movies.csv").exists():
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        write_log(folder, args.csv_rows, 162_541, 59_047)
        say(
            f"  wrote {folder.name}/ratings.csv ({args.csv_rows:,} rows) in "
            f"{time.perf_counter() - t0:.0f}s (bench_load.write_log; not in the table)"
        )
    home = Path(args.work) / "csv-home"
    shutil.rmtree(home, ignore_errors=True)
    csv_args = argparse.Namespace(**{**vars(args), "load_spec": str(folder)})
    csv_env = {**env, "PRIMETIME_HOME": str(home)}
    what = f"{args.csv_rows / 1e6:g}M-row GroupLens ratings.csv (bench_load)"
    (r,) = spawn(csv_args, "load", env=csv_env)
    add(f"load + prepare {what}, cold", r, _limit(r) + r["figures"])
    (r,) = spawn(csv_args, "load", env=csv_env)
    add(f"load {what}, cached", r, _limit(r) + r["figures"])


def _limit(r: dict[str, Any]) -> str:
    ok = r["peak_mib"] < LIMIT_MIB
    return "" if ok else f"OVER the {LIMIT_MIB:,} MiB limit; "


def table(rows: list[Row]) -> str:
    """The summary table, Markdown."""
    out = ["| step | seconds | peak MiB | figures |", "|---|---:|---:|---|"]
    for r in rows:
        out.append(f"| {r.step} | {r.seconds:,.1f} | {r.peak_mib:,.0f} | {r.figures} |")
    return "\n".join(out)


def append_results(path: Path, spec: str, lines: list[str]) -> None:
    """Append this run (output as printed) under a UTC-timestamped heading."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        "# MovieLens-25M scale, end to end (`benchmarks/bench_scale.py`)\n\n"
        "One section per run, output as printed; newest last.\n"
    )
    old = path.read_text() if path.exists() else head
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(old.rstrip() + f"\n\n## {now} · {spec}\n\n```\n{text}\n```\n")


if __name__ == "__main__":
    main()
