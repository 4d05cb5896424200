"""Tables of evaluation results: the terminal table, Markdown tables, contract JSON.

The metrics shown and their order (:data:`HEADLINE_METRICS`), the "share of
oracle" row, the formatting of means and intervals, and the checks that a
table never mixes protocols (full ranking and sampled) or repeats a name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.table import Table

from primetime.eval.topn import EvalResult, protocol_title

__all__ = ["HEADLINE_METRICS", "KEY_METRIC", "ORACLE", "rich_table", "to_contract_json"]

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
        kind = protocol_title(results[0].protocol)
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
