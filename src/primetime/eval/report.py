"""Reports: Markdown, JSON and PNG plots of evaluation results, with their stamp.

Every report carries a *stamp* (EVALUATION.md, "Reporting"): data set, task,
protocol, split sizes, seed, the code's git commit (``-dirty`` when the work
tree has uncommitted changes), the time and the command line that produced
it. Full-ranking and sampled results are never put in the same table: a
report holds one section per (protocol, eval set).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from primetime.data.catalog import Catalog
from primetime.data.interactions import Interactions
from primetime.eval.ratings import RatingResult
from primetime.eval.significance import paired_test
from primetime.eval.stamp import git_commit, make_stamp
from primetime.eval.tables import (
    CI,
    HEADLINE_METRICS,
    KEY_METRIC,
    ORACLE,
    _check_group,
    _clean,
    _fmt,
    _fmt_ci,
    _md_table,
    _oracle_share,
    _shown_metrics,
    rich_table,
    to_contract_json,
)
from primetime.eval.topn import SEGMENTS, EvalResult, is_ranking, protocol_title

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
        self._popularity: dict[tuple[str, str], dict[str, Any] | None] = {}

    # ----------------------------------------------------------- computing
    def groups(self) -> list[_Group]:
        """Sections: results of one protocol on one eval set, full ranking first."""
        if self._groups is None:
            keys: list[tuple[str, str]] = []
            for r in self.results:
                if (r.protocol, r.evalset) not in keys:
                    keys.append((r.protocol, r.evalset))
            keys.sort(key=lambda k: (not is_ranking(k[0]), k[1] != "test"))
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

    def popularity(self, g: _Group) -> dict[str, Any] | None:
        """Metrics by the held-out item's training events (thirds of users,
        :meth:`~primetime.eval.topn.EvalResult.popularity_buckets`), and per bucket
        a paired test of each model against the section's first reference; None
        without ``train`` or when the held-out items' counts do not split."""
        key = (g.protocol, g.evalset)
        if key not in self._popularity:
            self._popularity[key] = self._compute_popularity(g)
        return self._popularity[key]

    def _compute_popularity(self, g: _Group) -> dict[str, Any] | None:
        if self.train is None or not g.results or KEY_METRIC not in g.results[0].per_user:
            return None
        rows = {r.label: r.by_popularity(self.train) for r in g.results}
        if not rows[g.results[0].label]:
            return None
        refs = self._references(g)
        tests: dict[str, dict[str, dict[str, Any]]] = {}
        ref = refs[0] if refs else None
        if ref is not None:
            _, buckets = ref.popularity_buckets(self.train)
            for r in g.results:
                if r is ref or not np.array_equal(r.user_idx, ref.user_idx):
                    continue
                tests[r.label] = {}
                for name, mask in buckets:
                    t = paired_test(
                        r.values(KEY_METRIC)[mask],
                        ref.values(KEY_METRIC)[mask],
                        users_a=r.user_idx[mask],
                        users_b=ref.user_idx[mask],
                        n_boot=self.n_boot,
                        seed=self.seed,
                        alpha=self.alpha,
                    )
                    tests[r.label][name] = {"reference": ref.label, **t}
        return {"rows": rows, "reference": ref.label if ref else None, "paired_tests": tests}

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
            pop = self.popularity(g)
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
                    "popularity": pop["rows"][r.label] if pop is not None else None,
                    "popularity_tests": pop["paired_tests"].get(r.label) if pop else None,
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
        primary = next((g for g in self.groups() if is_ranking(g.protocol)), None)
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
            kind = protocol_title(g.protocol)
            lines += [f"## Top-N: {kind} on {g.evalset} ({n_users} users)", ""]
            shown = _shown_metrics(g.results, self.metrics)
            note = (
                f"Mean over users with a {pct}% bootstrap CI ({self.n_boot} resamples of users). "
                "Ties count against the model."
            )
            if any(m.startswith("Coverage@") for m in shown):
                note += " Coverage is one number for all lists together (no CI)."
            if is_ranking(g.protocol) and g.protocol != "full":
                note += (
                    " Each held-out item is ranked among the candidate titles only (the "
                    "titles held out of train: EVALUATION.md Task C), every other title "
                    "left out; Coverage@K is the share of the candidates. Not comparable "
                    "with full ranking."
                )
            elif not is_ranking(g.protocol):
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
            pop = self.popularity(g)
            if pop is not None:
                lines += _popularity_lines(g, pop)
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
        g = next((x for x in groups if is_ranking(x.protocol)), groups[0] if groups else None)
        caption = self.caption()
        if g is not None and g.results:
            shown = [
                m for m in _shown_metrics(g.results, self.metrics) if not m.startswith("Novelty")
            ]
            subtitle = f"{protocol_title(g.protocol)} on {g.evalset}"
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


def _popularity_lines(g: _Group, pop: dict[str, Any]) -> list[str]:
    """The report's by-popularity table: each model's NDCG@10 per bucket and, per
    model tested, its difference from the reference there with the p-value."""
    rows, tests = pop["rows"], pop["paired_tests"]
    first = rows[g.results[0].label]
    tested = [r.label for r in g.results if r.label in tests]
    ref = pop["reference"]
    head = ["held-out item", "its train events", "users", *[r.label for r in g.results]]
    head += [f"{m} − {ref} (p)" for m in tested]
    table = []
    for name, row in first.items():
        line = [name, f"{row['events_lo']:g}–{row['events_hi']:g}", str(row["users"])]
        line += [_fmt(rows[r.label][name].get(KEY_METRIC)) for r in g.results]
        for m in tested:
            t = tests[m][name]
            line.append(f"{t['mean_diff']:+.4f} ({t['p_value']:.2g})")
        table.append(line)
    return [
        f"### By popularity of the held-out item ({KEY_METRIC})",
        "",
        "Users in thirds by how often their held-out item was watched in train; "
        "p: paired Wilcoxon on per-user NDCG@10 inside the third.",
        "",
        _md_table(head, table),
        "",
    ]
