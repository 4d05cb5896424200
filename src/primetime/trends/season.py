"""The planted-season study: do time-aware models rank in-season titles better in season?

A leave-one-out split *at an in-season event* (:func:`season_split`): each user's
test event is their last event in one of the chosen months (December for the
holiday titles a synthetic world plants), valid the event before it, train
everything before that; the user's later events are left out. Models are fit by
the one life cycle (:func:`primetime.lifecycle.fit_model`: selection on valid,
test measured once), and the test users are grouped by what their held-out title
is: an in-season title (a holiday title in December), a title in its premiere
window, or any other, each with a paired Wilcoxon test between the models.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from primetime.data.interactions import Interactions
from primetime.data.splits import Split

log = logging.getLogger(__name__)

HOLIDAY_GENRE = "Holiday"


def months_of(ts: np.ndarray) -> np.ndarray:
    """Calendar month 1..12 (UTC) of unix seconds, same shape."""
    m = np.asarray(ts, dtype=np.int64).astype("datetime64[s]").astype("datetime64[M]")
    return m.astype(np.int64) % 12 + 1


def season_split(inter: Interactions, months: Sequence[int]) -> Split:
    """Leave-one-out at each user's last in-season event.

    Per user (events in time order, equal timestamps in file order): the test event
    is the last one whose month is in ``months`` and that has at least two events
    before it; valid is the event just before it; train the events before that.
    Events after the test event are dropped (they would tell the models the
    future). Users without such an event stay wholly in train.

    Raises:
        ValueError: on a month outside 1..12, or when no user has an in-season event.
    """
    chosen = sorted({int(m) for m in months})
    if not chosen or chosen[0] < 1 or chosen[-1] > 12:
        raise ValueError(f"months must be in 1..12, got {list(months)}")
    indptr, order = inter.user_histories()
    in_season = np.isin(months_of(inter.timestamp[order]), chosen)  # by sorted position
    role = np.zeros(len(inter), dtype=np.int8)  # 0 train, 1 valid, 2 test, 3 dropped
    n_test = 0
    for u in range(len(indptr) - 1):
        a, b = int(indptr[u]), int(indptr[u + 1])
        hits = np.flatnonzero(in_season[a:b])
        hits = hits[hits >= 2]
        if not hits.size:
            continue
        t = a + int(hits[-1])
        role[t], role[t - 1], role[t + 1 : b] = 2, 1, 3
        n_test += 1
    if not n_test:
        raise ValueError(f"no user has an event in months {chosen} after two earlier events")
    row_role = np.empty(len(inter), dtype=np.int8)
    row_role[order] = role
    return Split(
        train=inter.take(row_role == 0),
        valid=inter.take(row_role == 1),
        test=inter.take(row_role == 2),
        protocol="season-loo-" + "-".join(map(str, chosen)),
    )


def in_season_titles(catalog: Any, world: Any | None, months: Sequence[int]) -> np.ndarray:
    """(items.size,) bool: the titles planted to peak in ``months``: a world's holiday
    titles for December (its latents), else titles of the "Holiday" genre in December;
    no title for other months (nothing else is planted as a yearly peak)."""
    out = np.zeros(catalog.items.size, dtype=bool)
    if 12 not in set(months):
        return out
    if world is not None:
        return np.asarray(world.latents.holiday, dtype=bool).copy()
    genres, names = catalog.genre_matrix()
    if HOLIDAY_GENRE in names:
        out = genres[:, names.index(HOLIDAY_GENRE)] > 0
    return out


def premiere_mask(
    split: Split, world: Any | None, window_days: int | None = None
) -> np.ndarray | None:
    """(test rows,) bool: the held-out title premiered less than ``window_days`` (the
    world's premiere window) before the test event; None without a world."""
    if world is None:
        return None
    days = window_days if window_days is not None else world.config.premiere_days
    rel = world.latents.release_ts[split.test.item_idx]
    age = split.test.timestamp - rel
    return (age >= 0) & (age < days * 86_400)


@dataclass
class SeasonStudy:
    """What :func:`run_season_study` measured; ``rows`` are the report's table."""

    data: str
    months: list[int]
    models: list[str]
    protocol: str
    commit: str = "unknown"
    rows: list[dict[str, Any]] = field(default_factory=list)
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)
    fitted: dict[str, Any] = field(default_factory=dict, repr=False)  # name -> selection fit
    split: Split | None = field(default=None, repr=False)

    def markdown(self, command: str) -> str:
        a, b = self.models[0], self.models[-1]
        head = f"| test users | n | {' | '.join(f'{m} NDCG@10' for m in self.models)} |"
        head += f" Δ {a} − {b} [95% CI] | p |"
        lines = [
            f"# Planted seasons: {self.data}, months {self.months}",
            "",
            f"```bash\n{command}\n```",
            "",
            f"Split `{self.protocol}`: each user's last event in months {self.months} is "
            "test (full ranking, history = every earlier event), the one before it valid. "
            f"Paired Wilcoxon on per-user NDCG@10. Code at commit `{self.commit}`; fits on "
            "one torch thread, seconds from a shared 2-core machine.",
            "",
            head,
            "|" + "---|" * (4 + len(self.models)),
        ]
        for r in self.rows:
            cells = " | ".join(f"{r[m]:.4f}" for m in self.models)
            ci = f"{r['diff']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"
            lines.append(f"| {r['group']} | {r['n']} | {cells} | {ci} | {r['p']:.2g} |")
        lines += ["", "| model | fit s | epochs (best) | valid NDCG@10 |", "|---|---|---|---|"]
        for m, f in self.fits.items():
            lines.append(
                f"| {m} | {f['seconds']:.0f} | {f['epochs']} ({f['best_epoch']}) | "
                f"{f['valid']:.4f} |"
            )
        return "\n".join(lines) + "\n"


def run_season_study(
    data: str,
    models: Sequence[str],
    *,
    months: Sequence[int] = (12,),
    overrides: dict[str, dict[str, Any]] | None = None,
    threads: int | None = 1,
    loaded: Any | None = None,
) -> SeasonStudy:
    """Fit ``models`` on the season split of ``data`` and compare them on test by group.

    Args:
        data: A data set spec (``synthetic-seasons``, ``ml-100k`` …).
        models: Two or more model names; the first is tested against the last.
        months: The season (calendar months 1..12).
        overrides: Per model, config values over its defaults.
        threads: torch threads per fit.
        loaded: An already opened :class:`~primetime.data.open.Loaded` (tests).
    """
    from primetime.data.open import open_dataset
    from primetime.data.side import SideData
    from primetime.eval.protocol import EvalSet, evaluate
    from primetime.eval.significance import paired_test
    from primetime.eval.stamp import git_commit
    from primetime.lifecycle import DataSpec, FitSpec, Prepared, fit_model
    from primetime.models.base import FitOptions

    if len(models) < 2:
        raise ValueError(f"the season study compares two or more models, got {list(models)}")
    loaded = loaded if loaded is not None else open_dataset(data)
    ds = loaded.dataset
    split = season_split(ds.interactions, months)
    prepared = Prepared(
        DataSpec(data=data), split, SideData.of(ds), ds.name, dataset=ds, world=loaded.world
    )
    study = SeasonStudy(
        data=ds.name,
        months=sorted(set(months)),
        models=list(models),
        protocol=split.protocol,
        commit=git_commit(),
        split=split,
    )
    testset = EvalSet.for_test(split)
    results = {}
    for name in models:
        t0 = time.perf_counter()
        run = fit_model(
            FitSpec(
                name,
                data=prepared.spec,
                overrides=(overrides or {}).get(name, {}),
                options=FitOptions(threads=threads),
            ),
            data=prepared,
        )
        results[name] = evaluate(run.selected, testset, ks=(10,))
        study.fitted[name] = run.selected
        study.fits[name] = {
            "seconds": time.perf_counter() - t0,
            "epochs": run.report.epochs,
            "best_epoch": run.report.best_epoch,
            "valid": run.valid.get("valid NDCG@10", float("nan")),
        }
        log.info("season study: %s fit and scored in %.0f s", name, study.fits[name]["seconds"])
    # the test target of each evaluated user, aligned with the results' user order
    target = np.zeros(ds.interactions.users.size, dtype=np.int64)
    target[split.test.user_idx] = split.test.item_idx
    users = results[models[0]].user_idx
    item = target[users]
    seasonal = in_season_titles(ds.catalog, loaded.world, months)[item]
    groups: list[tuple[str, np.ndarray]] = [("all", np.ones(users.size, dtype=bool))]
    if seasonal.any():
        groups += [("in-season title (holiday)", seasonal), ("other titles", ~seasonal)]
    prem = premiere_mask(split, loaded.world)
    if prem is not None:
        by_user = np.zeros(ds.interactions.users.size, dtype=bool)
        by_user[split.test.user_idx] = prem
        if by_user[users].any():
            groups.append(("title in its premiere window", by_user[users]))
    a, b = models[0], models[-1]
    for group, mask in groups:
        vals = {m: results[m].values("NDCG@10")[mask] for m in models}
        test = paired_test(vals[a], vals[b])
        row: dict[str, Any] = {"group": group, "n": int(mask.sum())}
        row.update({m: float(np.mean(v)) for m, v in vals.items()})
        row.update(
            diff=float(test["mean_diff"]),
            ci_low=float(test["ci_low"]),
            ci_high=float(test["ci_high"]),
            p=float(test["p_value"]),
        )
        study.rows.append(row)
    return study


def write_report(study: SeasonStudy, directory: Path, command: str) -> Path:
    """``report.md`` and ``season.json`` under ``directory``; returns the Markdown path."""
    directory.mkdir(parents=True, exist_ok=True)
    md = directory / "report.md"
    md.write_text(study.markdown(command), encoding="utf-8")
    payload = {
        "data": study.data,
        "months": study.months,
        "protocol": study.protocol,
        "commit": study.commit,
        "rows": study.rows,
        "fits": study.fits,
        "command": command,
    }
    (directory / "season.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return md
