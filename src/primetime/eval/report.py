"""Reports: Markdown, JSON and PNG plots of evaluation results, with their stamp.

Every report carries a *stamp* (EVALUATION.md, "Reporting"): data set, task,
protocol, split sizes, seed, the code's git commit (``-dirty`` when the work
tree has uncommitted changes), the time and the command line that produced
it. Full-ranking and sampled results are never put in the same table: a
report holds one section per (protocol, eval set).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from primetime.data.catalog import Catalog
from primetime.data.interactions import Interactions
from primetime.eval.protocol import FULL, SEGMENTS, EvalResult, RatingResult
from primetime.eval.significance import paired_test

log = logging.getLogger(__name__)

__all__ = [
    "HEADLINE_METRICS",
    "ORACLE",
    "Report",
    "git_commit",
    "make_stamp",
    "rich_table",
    "to_contract_json",
]

#: Metrics shown in tables, in this order, when present (EVALUATION.md step 6).
HEADLINE_METRICS = (
    "HR@5",
    "HR@10",
    "HR@20",
    "NDCG@5",
    "NDCG@10",
    "NDCG@20",
    "MRR@10",
    "Coverage@10",
    "Diversity@10",
    "Novelty@10",
)
#: The result with this model name is the ceiling for "share of oracle".
ORACLE = "oracle"
#: Metric of the paired test, the breakdowns and the share of oracle.
KEY_METRIC = "NDCG@10"

CI = tuple[float, float, float]


# ------------------------------------------------------------------ stamp
def git_commit(cwd: str | Path | None = None) -> str:
    """Short commit of the code, ``+ "-dirty"`` with uncommitted changes, else ``"unknown"``.

    Args:
        cwd: A folder inside the repository (default: this package's folder).
    """
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return f"{head}-dirty" if status else head


def make_stamp(
    *,
    dataset: str,
    task: str,
    protocol: str,
    split_sizes: Mapping[str, int] | None = None,
    seed: int | None = None,
    command: str | Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The facts every figure and table must state.

    Args:
        dataset: Data set name ("ml-100k").
        task: "A: next-item top-N" / "B: rating prediction" or similar.
        protocol: Split protocol ("loo", "ratio-90/10-seed42", "files:...").
        split_sizes: Rows per part, e.g. ``Split.sizes()``.
        seed: Seed of the run.
        command: The command line (string or argv); default ``sys.argv``.
        extra: More key -> value pairs to record.

    Returns:
        A JSON-serialisable dict with ``commit`` and a UTC ``timestamp`` added.
    """
    if command is None:
        command = list(sys.argv)
    cmd = command if isinstance(command, str) else shlex.join(str(c) for c in command)
    stamp: dict[str, Any] = {
        "dataset": dataset,
        "task": task,
        "protocol": protocol,
        "split_sizes": dict(split_sizes) if split_sizes is not None else None,
        "seed": seed,
        "commit": git_commit(),
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": cmd,
    }
    if extra:
        stamp.update(dict(extra))
    return stamp


# ---------------------------------------------------------------- helpers
def _clean(x: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:.{digits}f}"


def _fmt_ci(c: CI) -> str:
    mean, lo, hi = c
    if not math.isfinite(mean):
        return "—"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return _fmt(mean)
    return f"{mean:.4f} [{lo:.4f}, {hi:.4f}]"


def _shown_metrics(results: Sequence[EvalResult], metrics: Sequence[str] | None) -> list[str]:
    if metrics is not None:
        return list(metrics)
    present = set().union(*(r.aggregates for r in results)) if results else set()
    return [m for m in HEADLINE_METRICS if m in present]


def _check_group(results: Sequence[EvalResult], what: str) -> None:
    protocols = {r.protocol for r in results}
    if len(protocols) > 1:
        raise ValueError(f"{what}: results mix protocols {sorted(protocols)}; keep them apart")
    labels = [r.label for r in results]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"{what}: several results are named {dup}")


def _oracle_share(results: Sequence[EvalResult]) -> dict[str, float] | None:
    oracle = next((r for r in results if r.model == ORACLE), None)
    if oracle is None or KEY_METRIC not in oracle.aggregates:
        return None
    ceiling = oracle.aggregates[KEY_METRIC]
    return {
        r.label: (
            r.aggregates.get(KEY_METRIC, float("nan")) / ceiling if ceiling > 0 else float("nan")
        )
        for r in results
    }


def to_contract_json(results: Sequence[EvalResult]) -> dict[str, Any]:
    """``{"models": {"<name>": {"NDCG@10": ..., "HR@10": ..., ...}}}`` of mean metrics.

    All results must share one protocol (full ranking and sampled-100 are
    never mixed) and have distinct names. NaN becomes ``null``.
    """
    _check_group(results, "to_contract_json")
    return {"models": {r.label: _clean(r.summary()) for r in results}}


def rich_table(
    results: Sequence[EvalResult],
    *,
    metrics: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    cis: bool = True,
    title: str | None = None,
) -> Table:
    """A :class:`rich.table.Table` of the results for the CLI to print.

    One row per metric and one column per model (models are few, metrics
    many, so this fits a terminal); each cell is ``mean [lo, hi]`` (95%
    bootstrap CI over users), or the mean alone with ``cis=False``. A "share
    of oracle" row is added when a result is named ``oracle``.

    Raises:
        ValueError: if the results mix protocols (full and sampled) or repeat a name.
    """
    _check_group(results, "rich_table")
    shown = _shown_metrics(results, metrics)
    share = _oracle_share(results)
    if title is None and results:
        kind = "full ranking" if results[0].protocol == FULL else results[0].protocol
        title = f"{kind} on {results[0].evalset} ({results[0].n_users} users)"
    table = Table(title=title)
    table.add_column("metric", style="bold")
    for r in results:
        table.add_column(r.label, justify="right")
    ci_of = {r.label: r.cis(n_boot=n_boot, seed=seed) for r in results} if cis else {}
    for m in shown:
        cells = []
        for r in results:
            if cis:
                c = ci_of[r.label]
                cells.append(_fmt_ci(c[m]) if m in c else "—")
            else:
                cells.append(_fmt(r.aggregates.get(m)))
        table.add_row(m, *cells)
    if share is not None:
        table.add_row(
            f"share of oracle ({KEY_METRIC})", *[_fmt(share[r.label], 3) for r in results]
        )
    return table


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    out = [line(header), "|" + "|".join("---" for _ in header) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


# ----------------------------------------------------------------- report
@dataclass
class _Group:
    protocol: str
    evalset: str
    results: list[EvalResult]
    cis: dict[str, dict[str, CI]] = field(default_factory=dict)


@dataclass
class Report:
    """Tables, breakdowns, paired tests and plots of several results.

    Intervals and tests are computed once, on first use; build a new report
    after changing its inputs.

    Args:
        results: Top-N results; grouped by (protocol, eval set) into sections.
        stamp: From :func:`make_stamp`.
        ratings: Rating-prediction results.
        catalog: Enables the by-genre breakdown (genre of the held-out item).
        data: Interactions whose rating distribution is plotted (optional).
        train: Activity source for segments (default: each user's history length).
        reference: Model(s) the others are tested against (default: "popularity"
            when present, else the first result of the section).
        n_boot: Bootstrap resamples; seed: bootstrap seed.
    """

    results: Sequence[EvalResult]
    stamp: Mapping[str, Any]
    ratings: Sequence[RatingResult] = ()
    catalog: Catalog | None = None
    data: Interactions | None = None
    train: Interactions | None = None
    reference: str | Sequence[str] | None = None
    metrics: Sequence[str] | None = None
    n_boot: int = 1000
    seed: int = 0
    alpha: float = 0.05

    def __post_init__(self) -> None:
        self._groups: list[_Group] | None = None
        self._rating_cis: dict[str, dict[str, CI]] | None = None
        self._paired: dict[tuple[str, str], list[dict[str, Any]]] = {}

    # ----------------------------------------------------------- computing
    def groups(self) -> list[_Group]:
        """Sections: results of one protocol on one eval set, full ranking first."""
        if self._groups is None:
            keys: list[tuple[str, str]] = []
            for r in self.results:
                if (r.protocol, r.evalset) not in keys:
                    keys.append((r.protocol, r.evalset))
            keys.sort(key=lambda k: (k[0] != FULL, k[1] != "test"))
            groups = []
            for protocol, evalset in keys:
                rs = [r for r in self.results if (r.protocol, r.evalset) == (protocol, evalset)]
                _check_group(rs, f"report section {protocol}/{evalset}")
                cis = {
                    r.label: r.cis(n_boot=self.n_boot, seed=self.seed, alpha=self.alpha) for r in rs
                }
                groups.append(_Group(protocol, evalset, rs, cis))
            self._groups = groups
        return self._groups

    def rating_cis(self) -> dict[str, dict[str, CI]]:
        if self._rating_cis is None:
            self._rating_cis = {
                r.label: r.cis(n_boot=self.n_boot, seed=self.seed, alpha=self.alpha)
                for r in self.ratings
            }
        return self._rating_cis

    def _references(self, g: _Group) -> list[EvalResult]:
        names = {r.model: r for r in g.results}
        if self.reference is not None:
            wanted = [self.reference] if isinstance(self.reference, str) else list(self.reference)
            missing = [w for w in wanted if w not in names]
            if missing:
                log.warning(
                    "reference model(s) %s not in section %s/%s; no paired tests against them",
                    ", ".join(missing),
                    g.protocol,
                    g.evalset,
                )
            return [names[w] for w in wanted if w in names]
        first = names.get("popularity", g.results[0] if g.results else None)
        return [first] if first is not None else []

    def paired(self, g: _Group) -> list[dict[str, Any]]:
        """Wilcoxon tests of each model against each reference on per-user NDCG@10."""
        key = (g.protocol, g.evalset)
        if key not in self._paired:
            self._paired[key] = self._compute_paired(g)
        return self._paired[key]

    def _compute_paired(self, g: _Group) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for ref in self._references(g):
            if KEY_METRIC not in ref.per_user:
                continue
            for r in g.results:
                if r is ref or KEY_METRIC not in r.per_user:
                    continue
                if not np.array_equal(r.user_idx, ref.user_idx):
                    log.warning(
                        "%s and %s were evaluated on different users; no paired test",
                        r.label,
                        ref.label,
                    )
                    continue
                t = paired_test(
                    r, ref, metric=KEY_METRIC, n_boot=self.n_boot, seed=self.seed, alpha=self.alpha
                )
                out.append({"model": r.label, "reference": ref.label, "metric": KEY_METRIC, **t})
        return out

    def segments(self, g: _Group) -> dict[str, dict[str, dict[str, float]]]:
        """model -> segment -> {"users", metrics...}."""
        return {r.label: r.by_segment(self.train) for r in g.results}

    def genres(self, g: _Group) -> dict[str, dict[str, dict[str, float]]] | None:
        """model -> genre -> {"users", metrics...}, or None without a catalog."""
        if self.catalog is None:
            return None
        return {r.label: r.by_genre(self.catalog) for r in g.results}

    # ------------------------------------------------------------- outputs
    def to_dict(self) -> dict[str, Any]:
        """Everything, machine-readable (NaN as null)."""
        sections = []
        for g in self.groups():
            share = _oracle_share(g.results) or {}
            genres = self.genres(g)
            segs = self.segments(g)
            res = {}
            for r in g.results:
                res[r.label] = {
                    "model": r.model,
                    "protocol": r.protocol,
                    "evalset": r.evalset,
                    "n_users": r.n_users,
                    "seconds": r.seconds,
                    "scoring_seconds": r.scoring_seconds,
                    "metrics": {
                        m: {"mean": c[0], "lo": c[1], "hi": c[2]} for m, c in g.cis[r.label].items()
                    },
                    "share_of_oracle": share.get(r.label),
                    "segments": segs[r.label],
                    "genres": genres[r.label] if genres is not None else None,
                    "notes": {k: v for k, v in r.notes.items() if isinstance(v, int | float | str)},
                }
            sections.append(
                {
                    "protocol": g.protocol,
                    "evalset": g.evalset,
                    "n_users": g.results[0].n_users if g.results else 0,
                    "results": res,
                    "paired_tests": self.paired(g),
                }
            )
        primary = next((g for g in self.groups() if g.protocol == FULL), None)
        out = {
            "stamp": dict(self.stamp),
            "confidence": {
                "level": 1 - self.alpha,
                "n_boot": self.n_boot,
                "seed": self.seed,
                "unit": "users (rating metrics: rows)",
                "method": "percentile bootstrap",
            },
            "tie_break": "pessimistic: equal scores count against the relevant item",
            "sections": sections,
            "ratings": {
                r.label: {
                    "n_rows": r.n_rows,
                    "metrics": {
                        m: {"mean": c[0], "lo": c[1], "hi": c[2]}
                        for m, c in self.rating_cis()[r.label].items()
                    },
                }
                for r in self.ratings
            },
            "models": to_contract_json(primary.results)["models"] if primary else {},
        }
        return _clean(out)

    def caption(self) -> str:
        """One line naming data set, task, protocol, seed and commit (for figures)."""
        s = self.stamp
        return (
            f"{s.get('dataset', '?')} · {s.get('task', '?')} · {s.get('protocol', '?')} · "
            f"seed {s.get('seed', '?')} · commit {s.get('commit', '?')}"
        )

    def to_markdown(self, plots: Mapping[str, str] | None = None) -> str:
        """The report as Markdown; ``plots`` maps a title to a relative image path."""
        s = self.stamp
        lines = [f"# Evaluation report: {s.get('dataset', '?')}", ""]
        stamp_rows = [
            [k, json.dumps(v) if isinstance(v, dict) else str(v)]
            for k, v in s.items()
            if k != "command"
        ]
        lines += [_md_table(["stamp", "value"], stamp_rows), ""]
        lines += ["Produced by:", "", "```", str(s.get("command", "unknown")), "```", ""]
        pct = round(100 * (1 - self.alpha))
        for g in self.groups():
            n_users = g.results[0].n_users if g.results else 0
            kind = "full ranking" if g.protocol == FULL else g.protocol
            lines += [f"## Top-N: {kind} on {g.evalset} ({n_users} users)", ""]
            shown = _shown_metrics(g.results, self.metrics)
            note = (
                f"Mean over users with a {pct}% bootstrap CI ({self.n_boot} resamples of users). "
                "Ties count against the model."
            )
            if any(m.startswith("Coverage@") for m in shown):
                note += " Coverage is one number for all lists together (no CI)."
            if g.protocol != FULL:
                note += (
                    f" {g.protocol}: each held-out item is ranked among sampled unseen items, "
                    "for comparison with papers only; not comparable with full ranking."
                )
            lines += [note, ""]
            share = _oracle_share(g.results)
            header = ["model", *shown] + ([f"share of oracle ({KEY_METRIC})"] if share else [])
            rows = []
            for r in g.results:
                c = g.cis[r.label]
                row = [r.label, *[_fmt_ci(c[m]) if m in c else "—" for m in shown]]
                if share:
                    row.append(_fmt(share[r.label], 3))
                rows.append(row)
            lines += [_md_table(header, rows), ""]

            tests = self.paired(g)
            if tests:
                refs = ", ".join(dict.fromkeys(t["reference"] for t in tests))
                lines += [
                    f"### Paired tests: Wilcoxon signed-rank on per-user {KEY_METRIC}, vs {refs}",
                    "",
                ]
                lines += [
                    _md_table(
                        [
                            "model",
                            "vs",
                            "mean difference",
                            f"{pct}% CI",
                            "statistic",
                            "p-value",
                            "users",
                        ],
                        [
                            [
                                t["model"],
                                t["reference"],
                                _fmt(t["mean_diff"]),
                                f"[{_fmt(t['ci_low'])}, {_fmt(t['ci_high'])}]",
                                _fmt(t["statistic"], 1),
                                f"{t['p_value']:.3g}",
                                str(t["n_users"]),
                            ]
                            for t in tests
                        ],
                    ),
                    "",
                ]

            segs = self.segments(g)
            if g.results and KEY_METRIC in g.results[0].per_user:
                first = segs[g.results[0].label]
                lines += [f"### By user activity segment ({KEY_METRIC})", ""]
                lines += [
                    "Segments by history length: cold < 5, light 5–19, regular 20–100, "
                    "power > 100.",
                    "",
                ]
                lines += [
                    _md_table(
                        ["segment", "users", *[r.label for r in g.results]],
                        [
                            [
                                name,
                                str(first[name]["users"]),
                                *[_fmt(segs[r.label][name].get(KEY_METRIC)) for r in g.results],
                            ]
                            for name, _, _ in SEGMENTS
                        ],
                    ),
                    "",
                ]
            genres = self.genres(g)
            if (
                genres is not None
                and g.results
                and KEY_METRIC in g.results[0].per_user
                and genres[g.results[0].label]
            ):
                first = genres[g.results[0].label]
                lines += [f"### By genre of the held-out item ({KEY_METRIC})", ""]
                lines += ["A held-out item with several genres counts in each.", ""]
                lines += [
                    _md_table(
                        ["genre", "users", *[r.label for r in g.results]],
                        [
                            [
                                name,
                                str(first[name]["users"]),
                                *[_fmt(genres[r.label][name].get(KEY_METRIC)) for r in g.results],
                            ]
                            for name in first
                        ],
                    ),
                    "",
                ]
        if self.ratings:
            lines += ["## Rating prediction", ""]
            lines += [f"{pct}% bootstrap CI over rating rows ({self.n_boot} resamples).", ""]
            rc = self.rating_cis()
            lines += [
                _md_table(
                    ["model", "rows", "MAE", "RMSE"],
                    [
                        [
                            r.label,
                            str(r.n_rows),
                            _fmt_ci(rc[r.label]["MAE"]),
                            _fmt_ci(rc[r.label]["RMSE"]),
                        ]
                        for r in self.ratings
                    ],
                ),
                "",
            ]
        if plots:
            lines += ["## Plots", ""]
            for title, rel in plots.items():
                lines += [f"![{title}]({rel})", ""]
            lines += [f"_{self.caption()}_", ""]
        return "\n".join(lines)

    def write_markdown(self, path: str | Path, plots: Mapping[str, str] | None = None) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_markdown(plots))
        return p

    def write_json(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return p

    def write_plots(self, directory: str | Path) -> dict[str, Path]:
        """PNG plots of the first full-ranking section (else the first section).

        Returns:
            title -> path of each plot written.
        """
        from primetime.eval import plots

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        out: dict[str, Path] = {}
        groups = self.groups()
        g = next((x for x in groups if x.protocol == FULL), groups[0] if groups else None)
        caption = self.caption()
        if g is not None and g.results:
            shown = [
                m for m in _shown_metrics(g.results, self.metrics) if not m.startswith("Novelty")
            ]
            subtitle = f"{g.protocol} ranking on {g.evalset}"
            out["metrics"] = plots.metric_bars(
                d / "metrics.png",
                g.cis,
                shown,
                title=f"Metrics, 95% CI ({subtitle})",
                caption=caption,
            )
            if KEY_METRIC in g.results[0].per_user:
                out["segments"] = plots.breakdown_bars(
                    d / "segments.png",
                    self.segments(g),
                    KEY_METRIC,
                    title=f"{KEY_METRIC} by user activity ({subtitle})",
                    caption=caption,
                )
                genres = self.genres(g)
                if genres is not None:
                    out["genres"] = plots.breakdown_bars(
                        d / "genres.png",
                        genres,
                        KEY_METRIC,
                        horizontal=True,
                        title=f"{KEY_METRIC} by genre of the held-out item ({subtitle})",
                        caption=caption,
                    )
        if self.data is not None and self.data.has_ratings:
            out["ratings"] = plots.rating_histogram(d / "ratings.png", self.data, caption=caption)
        return out

    def write(
        self, directory: str | Path, *, stem: str = "report", plots: bool = True
    ) -> dict[str, Path]:
        """Write ``<stem>.md``, ``<stem>.json`` and the PNG plots into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        pngs = self.write_plots(d) if plots else {}
        written.update({f"plot:{k}": v for k, v in pngs.items()})
        written["markdown"] = self.write_markdown(
            d / f"{stem}.md", {k: v.name for k, v in pngs.items()}
        )
        written["json"] = self.write_json(d / f"{stem}.json")
        log.info("wrote report to %s (%d files)", d, len(written))
        return written
