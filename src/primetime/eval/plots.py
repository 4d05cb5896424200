"""PNG plots for reports, drawn with matplotlib's Agg canvas (no pyplot, no display).

Each figure carries a caption naming data set, task, protocol, seed and
commit (EVALUATION.md, "Reporting").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from primetime.data.interactions import Interactions

__all__ = ["breakdown_bars", "metric_bars", "rating_histogram"]

CI = tuple[float, float, float]


def _save(fig: Figure, path: Path, caption: str) -> Path:
    fig.text(0.01, 0.005, caption, fontsize=7, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))
    return path


def _nan0(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, 0.0)


def metric_bars(
    path: str | Path,
    cis: Mapping[str, Mapping[str, CI]],
    metrics: Sequence[str],
    *,
    title: str,
    caption: str,
) -> Path:
    """Grouped bars: one group per metric, one bar per model, CI error bars.

    Args:
        path: PNG file to write.
        cis: model label -> metric -> (mean, lo, hi).
        metrics: Metrics to draw (on a common 0-1 scale).
    """
    models = list(cis)
    fig = Figure(figsize=(max(6.0, 0.9 * len(metrics) * max(1, len(models)) ** 0.5 + 3), 4.5))
    ax = fig.add_subplot()
    x = np.arange(len(metrics))
    width = 0.8 / max(1, len(models))
    for j, m in enumerate(models):
        vals = np.array([cis[m].get(k, (np.nan,) * 3) for k in metrics], dtype=float)  # (n, 3)
        if vals.size == 0:
            vals = np.zeros((0, 3))
        mean = _nan0(vals[:, 0])
        # clipped at 0: a constant per-user value (every user the same list) has a
        # bootstrap bound a rounding error away from its mean, on either side
        err = np.maximum(
            np.stack([_nan0(vals[:, 0] - vals[:, 1]), _nan0(vals[:, 2] - vals[:, 0])]), 0.0
        )  # (2, n)
        ax.bar(x + (j - (len(models) - 1) / 2) * width, mean, width, yerr=err, capsize=2, label=m)
    ax.set_xticks(x, list(metrics), rotation=30, ha="right")
    ax.set_ylabel("value")
    ax.set_title(title)
    if models:
        ax.legend(fontsize=8)
    return _save(fig, Path(path), caption)


def breakdown_bars(
    path: str | Path,
    data: Mapping[str, Mapping[str, Mapping[str, float]]],
    metric: str,
    *,
    title: str,
    caption: str,
    horizontal: bool = False,
) -> Path:
    """Grouped bars of ``metric`` per group (segment, genre), one bar per model.

    Args:
        data: model label -> group -> {"users": n, metric: mean}.
        horizontal: Horizontal bars (many groups, long names).
    """
    models = list(data)
    groups = list(next(iter(data.values()))) if models else []
    n = len(groups)
    size = (
        (7.0, max(3.5, 0.35 * n * max(1, len(models)) ** 0.5 + 1.5))
        if horizontal
        else (
            max(6.0, 1.2 * n + 2),
            4.5,
        )
    )
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    pos = np.arange(n)
    width = 0.8 / max(1, len(models))
    labels = [f"{g} ({int(data[models[0]][g].get('users', 0))})" for g in groups] if models else []
    for j, m in enumerate(models):
        vals = _nan0(np.array([data[m][g].get(metric, np.nan) for g in groups], dtype=float))
        offset = pos + (j - (len(models) - 1) / 2) * width
        if horizontal:
            ax.barh(offset, vals, width, label=m)
        else:
            ax.bar(offset, vals, width, label=m)
    if horizontal:
        ax.set_yticks(pos, labels)
        ax.invert_yaxis()
        ax.set_xlabel(metric)
    else:
        ax.set_xticks(pos, labels)
        ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    if models:
        ax.legend(fontsize=8)
    return _save(fig, Path(path), caption)


def rating_histogram(path: str | Path, data: Interactions, *, caption: str) -> Path:
    """Distribution of explicit ratings in ``data`` (unrated rows skipped)."""
    r = data.rating[~np.isnan(data.rating)]
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    values, counts = np.unique(r, return_counts=True)
    if values.size <= 20:
        pos = np.arange(values.size)
        ax.bar(pos, counts)
        ax.set_xticks(pos, [f"{v:g}" for v in values])
        ax.set_xlabel("rating")
    else:
        ax.hist(r, bins=30)
        ax.set_xlabel("rating")
    ax.set_ylabel("interactions")
    ax.set_title(f"Rating distribution ({r.size:,} rated interactions)")
    return _save(fig, Path(path), caption)
