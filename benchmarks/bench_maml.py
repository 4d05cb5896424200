"""Cold start by meta-learning: ``maml`` against no adaptation and plain fine-tuning.

Two tasks, each on users the models never saw in training:

* **new users, ml-100k**: users split at random (seed 42) into 70% train, 10%
  valid, 20% test; models are fit on the train users' whole histories. Each
  valid / test user is truncated to their first k events (k = 1, 3, 5, 10)
  and the next event (k + 1) is ranked among all titles, the k seen ones left
  out (full ranking, pessimistic ties).
* **a new platform, synthetic world**: every subscriber of the platform with
  the fewest subscribers is held out of training, so none of that network's
  shows is ever watched in training; the test users are its subscribers,
  truncated the same way.

Methods, one base net per training regime, the same inner steps:
``no adaptation`` (the base trained without inner steps, u = u_0),
``fine-tuning`` (that base, ``--steps`` SGD steps on the user's k events at a
rate chosen on valid), ``maml, 0 steps`` (the meta-learned initialisation
alone) and ``maml`` (meta-trained, the same number of steps with the learned
rates). Epochs are chosen on the valid users (mean NDCG@10 over the k values);
the test users are scored once. Paired Wilcoxon tests on per-user NDCG@10
compare ``maml`` with every other row. Adaptation time: single-user
``score`` calls, one thread, k = 1 … 10 events.

    python benchmarks/bench_maml.py --threads 1 --epochs 12 --readme README.md
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _latency import latencies  # noqa: E402
from _machine import header  # noqa: E402

from primetime.data.interactions import Interactions  # noqa: E402
from primetime.data.open import open_dataset  # noqa: E402
from primetime.data.side import SideData  # noqa: E402
from primetime.eval.metrics import hit_rate, ndcg  # noqa: E402
from primetime.eval.significance import paired_test  # noqa: E402
from primetime.eval.stamp import git_commit  # noqa: E402
from primetime.models.base import FitOptions, Recommender  # noqa: E402
from primetime.models.maml import MAMLConfig, MAMLRecommender  # noqa: E402
from primetime.models.popularity import PopularityRecommender  # noqa: E402
from primetime.ranking import pessimistic_ranks  # noqa: E402
from primetime.types import UserContext  # noqa: E402

BEGIN, END = "<!-- bench_maml:begin -->", "<!-- bench_maml:end -->"


@dataclasses.dataclass
class Task:
    """Train log, side data and the valid / test users' time-ordered histories."""

    name: str
    train: Interactions
    side: SideData
    valid: list[np.ndarray]
    test: list[np.ndarray]
    note: str = ""
    focus: np.ndarray | None = None  # titles of the held-out platform


def histories(inter: Interactions, users: np.ndarray) -> list[np.ndarray]:
    indptr, order = inter.user_histories()
    return [inter.item_idx[order[indptr[u] : indptr[u + 1]]].astype(np.int64) for u in users]


def held_out_users(
    inter: Interactions, pool: np.ndarray, test: np.ndarray | None, seed: int, min_events: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, valid, test) user_idx: ``test`` as given, else 20% of ``pool``;
    valid is 1/8 of the rest; only users with ``min_events`` events are evaluated."""
    counts = np.bincount(inter.user_idx, minlength=inter.users.size)
    rng = np.random.default_rng(seed)
    pool = rng.permutation(pool)
    if test is None:
        test, pool = pool[: len(pool) // 5], pool[len(pool) // 5 :]
    n_valid = len(pool) // 8
    valid, train = pool[:n_valid], pool[n_valid:]
    valid = valid[counts[valid] >= min_events]
    return train, valid, test[counts[test] >= min_events]


def ml100k_task(seed: int, k_max: int) -> Task:
    ds = open_dataset("ml-100k").dataset
    inter = ds.interactions
    users = np.flatnonzero(np.bincount(inter.user_idx) > 0)
    train_u, valid_u, test_u = held_out_users(inter, users, None, seed, k_max + 1)
    return Task(
        "ml-100k, new users",
        inter.take(np.isin(inter.user_idx, train_u)),
        SideData.of(ds),
        histories(inter, valid_u),
        histories(inter, test_u),
        note=f"{len(train_u)} train users, {len(valid_u)} valid, {len(test_u)} test",
    )


def platform_task(data: str, seed: int, k_max: int) -> Task:
    loaded = open_dataset(data)
    world, ds = loaded.world, loaded.dataset
    assert world is not None, f"{data} is not a synthetic world"
    lat = world.latents
    subs = lat.subscribed[:, 1:]  # (U + 1, networks)
    p = int(np.argmin(subs[1:].sum(0))) + 1  # the smallest platform
    held = np.flatnonzero(lat.subscribed[:, p])
    held = held[held > 0]
    focus = np.flatnonzero(lat.network == p)
    names = ds.catalog.frame["network"].to_list() if ds.catalog is not None else []
    net_name = next((names[i - 1] for i in focus if names[i - 1]), f"network {p}")
    return focus_task(
        f"{data}, new platform ({net_name})",
        ds,
        held,
        focus,
        seed,
        k_max,
        f"every subscriber of {net_name}; its {len(focus)} titles never in training",
    )


def focus_task(
    name: str, ds: Any, held: np.ndarray, focus: np.ndarray, seed: int, k_max: int, why: str
) -> Task:
    """The ``held`` users as test users, none of ``focus`` (titles) ever in training."""
    inter = ds.interactions
    users = np.flatnonzero(np.bincount(inter.user_idx) > 0)
    train_u, valid_u, test_u = held_out_users(
        inter, np.setdiff1d(users, held), held, seed, k_max + 1
    )
    train = inter.take(np.isin(inter.user_idx, train_u))
    assert not np.isin(train.item_idx, focus).any(), f"{name}: a held-out title was trained on"
    return Task(
        name,
        train,
        SideData.of(ds),
        histories(inter, valid_u),
        histories(inter, test_u),
        note=f"{len(train_u)} train users, {len(valid_u)} valid, {len(test_u)} test ({why})",
        focus=focus,
    )


def genre_task(data: str, seed: int, k_max: int, min_titles: int = 20) -> Task:
    """A genre none of whose titles was ever trained on: the genre (of at least
    ``min_titles`` titles) watched by the fewest users; every user who watched one of its
    titles is held out (test), so its genre vector is never trained either (titles of
    several genres keep their other genres)."""
    ds = open_dataset(data).dataset
    assert ds.catalog is not None, f"{data} has no catalog"
    inter = ds.interactions
    genres, names = ds.catalog.genre_matrix()  # (V, G)
    watchers = []
    for g in range(genres.shape[1]):
        titles = np.flatnonzero(genres[:, g])
        seen = np.unique(inter.user_idx[np.isin(inter.item_idx, titles)])
        watchers.append(len(seen) if len(titles) >= min_titles else np.iinfo(np.int64).max)
    g = int(np.argmin(watchers))
    focus = np.flatnonzero(genres[:, g])
    held = np.unique(inter.user_idx[np.isin(inter.item_idx, focus)])
    return focus_task(
        f"{data}, new genre ({names[g]})",
        ds,
        held,
        focus,
        seed,
        k_max,
        f"every user who watched a {names[g]} title; its {len(focus)} titles never in training",
    )


def truncated(hists: Sequence[np.ndarray], k: int) -> tuple[list[UserContext], np.ndarray]:
    """Contexts of each user's first ``k`` events and the event after them."""
    ctx = [UserContext.anonymous(h[:k]) for h in hists]
    return ctx, np.array([h[k] for h in hists], dtype=np.int64)


def per_user(model: Recommender, hists: Sequence[np.ndarray], k: int) -> dict[str, np.ndarray]:
    """Per-user NDCG@10 and HR@10 of the next event after the first ``k``."""
    ctx, target = truncated(hists, k)
    scores = model.score(ctx)
    for row, c in enumerate(ctx):
        scores[row, c.history] = -np.inf
    ranks = pessimistic_ranks(np.nan_to_num(scores, nan=-np.inf), target[:, None])[:, 0]
    return {"NDCG@10": ndcg(ranks, 10), "HR@10": hit_rate(ranks, 10)}


def valid_metric(hists: list[np.ndarray], ks: Sequence[int]) -> Callable[..., Any]:
    """A ``FitOptions.validation`` that ignores the (train, valid) pair it is given and
    scores the held-out valid users: mean NDCG@10 over ``ks``."""

    def build(_train: Interactions, _valid: Interactions) -> Callable[[Recommender], float]:
        def score(model: Recommender) -> float:
            return float(np.mean([per_user(model, hists, k)["NDCG@10"].mean() for k in ks]))

        return score

    return build


def variant(model: MAMLRecommender, **changes: Any) -> MAMLRecommender:
    """The same fitted net, scored with other adaptation settings."""
    out = copy.copy(model)
    out.config = dataclasses.replace(model.config, **changes)
    return out


def fit_pair(
    task: Task, cfg: MAMLConfig, ks: Sequence[int], threads: int
) -> tuple[MAMLRecommender, MAMLRecommender, dict[str, float]]:
    """The plain base and the meta-trained model, epochs chosen on the valid users."""
    validation = valid_metric(task.valid, ks)
    dummy = task.train.take(np.arange(1))  # the validation ignores it; fit needs a valid log
    options = FitOptions(threads=threads, validation=validation)
    seconds = {}
    models = []
    for meta in (False, True):
        m = MAMLRecommender(dataclasses.replace(cfg, meta=meta))
        t = time.perf_counter()
        m.fit(task.train, valid=dummy, side=task.side, options=options)
        seconds["maml" if meta else "base"] = time.perf_counter() - t
        models.append(m)
    return models[0], models[1], seconds


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--ks", default="1,3,5,10", help="history lengths of the new users")
    ap.add_argument("--steps", type=int, default=MAMLConfig.adapt_steps, help="inner steps")
    ap.add_argument("--epochs", type=int, default=MAMLConfig.epochs)
    ap.add_argument("--platform-data", default="synthetic-small")
    ap.add_argument("--genre-data", default="ml-100k", help="data of the new-genre task")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--calls", type=int, default=500, help="single-user calls timed")
    ap.add_argument("--finetune-lrs", default="0.1,0.3,1,3", help="rates tried on valid")
    ap.add_argument(
        "--tasks", default="users,platform", help="which tasks to run: users, platform, genre"
    )
    ap.add_argument("--out", default="benchmarks/results/maml.txt")
    ap.add_argument("--readme", default=None, help="rewrite this README's bench_maml block")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]
    lrs = [float(x) for x in args.finetune_lrs.split(",")]
    cfg = MAMLConfig(adapt_steps=args.steps, epochs=args.epochs, seed=args.seed, device="cpu")
    # the README block: machine and fit notes, the table, the timings
    pre, table, post = [header(), f"commit {git_commit()}"], [], []
    for line in pre:
        print(line, flush=True)

    def say(line: str = "", to: list[str] = pre) -> None:
        print(line, flush=True)
        to.append(line)

    rows: list[str] = []
    latency_models: list[tuple[str, MAMLRecommender]] = []
    tasks = args.tasks.split(",")
    builders = {
        "users": lambda: ml100k_task(args.seed, max(ks)),
        "platform": lambda: platform_task(args.platform_data, args.seed, max(ks)),
        "genre": lambda: genre_task(args.genre_data, args.seed, max(ks)),
    }
    for task in (builders[t]() for t in tasks):
        say(f"{task.name}: {task.note}")
        base, meta, seconds = fit_pair(task, cfg, ks, args.threads)
        latency_models.append((task.name.split(",")[0], meta))
        pop = PopularityRecommender()
        pop.fit(task.train, side=task.side)
        # the fine-tuning rate: chosen on the valid users, same steps as maml
        tried = {
            lr: valid_metric(task.valid, ks)(task.train, task.train)(
                variant(base, adapt_steps=args.steps, inner_lr=lr)
            )
            for lr in lrs
        }
        best_lr = max(tried, key=lambda lr: tried[lr])
        say(
            f"  fit s: base {seconds['base']:.0f}, maml {seconds['maml']:.0f}; "
            f"learned inner rate mean {float(meta.inner_lr().mean()):.3f}; fine-tuning rate "
            f"{best_lr:g} (valid NDCG@10 by rate: "
            + ", ".join(f"{lr:g}: {v:.4f}" for lr, v in tried.items())
            + ")"
        )
        methods: dict[str, Recommender] = {
            "popularity": pop,
            "no adaptation": variant(base, adapt_steps=0),
            f"fine-tuning ({args.steps} steps, rate {best_lr:g})": variant(
                base, adapt_steps=args.steps, inner_lr=best_lr
            ),
            "maml, 0 steps (meta-learned init)": variant(meta, adapt_steps=0),
            f"maml ({args.steps} steps)": meta,
        }
        for k in ks:
            results = {name: per_user(m, task.test, k) for name, m in methods.items()}
            ref = results[f"maml ({args.steps} steps)"]
            extra = ""
            if task.focus is not None:
                _, target = truncated(task.test, k)
                where = "in the genre" if "genre" in task.name else "on the platform"
                extra = f" ({np.isin(target, task.focus).mean():.0%} {where})"
            for name, r in results.items():
                cmp = ""
                if r is not ref:
                    t = paired_test(ref["NDCG@10"], r["NDCG@10"])
                    cmp = (
                        f"{t['mean_diff']:+.4f} [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}] "
                        f"| {t['p_value']:.2g}"
                    )
                else:
                    cmp = "— | —"
                rows.append(
                    f"| {task.name} | {k} | {len(task.test)}{extra} | {name} "
                    f"| {r['NDCG@10'].mean():.4f} | {r['HR@10'].mean():.4f} | {cmp} |"
                )
    print()
    say(
        "| data | k | test users | method | NDCG@10 | HR@10 "
        "| Δ NDCG@10 maml − this [95% CI] | p (Wilcoxon) |",
        table,
    )
    say("|---|---|---|---|---|---|---|---|", table)
    for r in rows:
        say(r, table)

    # adaptation time: whole single-user score calls with and without the inner steps
    print()
    say(
        f"single-user score calls (adaptation included), {args.threads} thread(s), "
        f"{args.calls} calls per row, histories of k random titles:",
        post,
    )
    say(f"{'model (data)':<34}{'k':>4}{'p50 ms':>9}{'p99 ms':>9}", post)
    rng = np.random.default_rng(args.seed)
    worst = 0.0
    for name, model in latency_models:
        n = model.items.size if model.items is not None else 2
        for k in ks:
            ctxs = [
                UserContext.anonymous(rng.choice(np.arange(1, n), k, replace=False))
                for _ in range(50)
            ]
            for label, m in (
                (f"maml {args.steps} steps", model),
                ("no steps", variant(model, adapt_steps=0)),
            ):
                p50, p99 = np.percentile(latencies(m, ctxs, args.calls), [50, 99])
                say(f"{label + ' (' + name + ')':<34}{k:>4}{p50:>9.2f}{p99:>9.2f}", post)
                if m is model:
                    worst = max(worst, p99)
    verdict = "met" if worst <= 20 else "NOT met"
    say(
        f"target p99 <= 20 ms for k <= 10 with adaptation: {verdict} (worst p99 {worst:.2f} ms)",
        post,
    )
    fence = "```"
    block = "\n".join([fence, *pre, fence, "", *table, "", fence, *post, fence])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(block + "\n")
    if args.readme:
        path = Path(args.readme)
        text = path.read_text()
        block = f"{BEGIN}\n{block}\n{END}"
        if BEGIN not in text:
            raise SystemExit(f"{path} has no {BEGIN} ... {END} block to rewrite")
        path.write_text(
            re.sub(f"{re.escape(BEGIN)}.*?{re.escape(END)}", lambda _: block, text, flags=re.S)
        )


if __name__ == "__main__":
    main()
