"""Demand over time: event counts per period for the catalog, genres and titles, split
into trend, seasonal and residual parts by STL (Cleveland et al. 1990, via statsmodels).

A log that spans two years or more is counted by week with a yearly period (52
weeks); a shorter one (ml-100k spans seven months) by day with a weekly period
(7 days), since STL needs two full cycles and a yearly cycle cannot be seen there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from primetime.data.interactions import Interactions

DAY = 86_400
WEEK = 7 * DAY
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Calendar:
    """How a log is cut into periods.

    Attributes:
        step: Seconds per period (a week or a day).
        period: Periods per seasonal cycle (52 weeks a year, or 7 days a week).
        start: Unix seconds of the first period's start (a Monday, 00:00 UTC).
        n: Number of periods.
    """

    step: int
    period: int
    start: int
    n: int

    @property
    def unit(self) -> str:
        return "week" if self.step == WEEK else "day"

    @property
    def cycle(self) -> str:
        return "year" if self.step == WEEK else "week"

    def index(self, ts: np.ndarray) -> np.ndarray:
        """Period of unix seconds ``ts`` (same shape, int64; may fall outside 0..n-1)."""
        return (np.asarray(ts, dtype=np.int64) - self.start) // self.step

    def starts(self) -> np.ndarray:
        """(n,) unix seconds at which each period starts."""
        return self.start + self.step * np.arange(self.n, dtype=np.int64)

    def phase_label(self, p: int) -> str:
        """Name of the ``p``-th period from the start, as a place in the cycle
        ("week 51 (Dec)" or "Sat")."""
        ts = self.start + self.step * int(p)
        if self.step == WEEK:
            day = np.datetime64(int(ts), "s").astype("datetime64[D]")
            month = int(day.astype("datetime64[M]").astype(np.int64) % 12)
            doy = int((day - day.astype("datetime64[Y]")).astype(np.int64))
            return f"week {doy // 7 + 1} ({MONTHS[month]})"
        return WEEKDAYS[int((ts // DAY + 3) % 7)]


def calendar_of(inter: Interactions, *, unit: str = "auto", cycles: int = 2) -> Calendar:
    """Weekly periods with a yearly cycle for a log of two years or more, else daily ones
    with a weekly cycle (``unit`` "week" or "day" forces one).

    Raises:
        ValueError: on an empty log, an unknown ``unit``, or a log shorter than ``cycles``
            cycles (STL needs two).
    """
    if unit not in ("auto", "week", "day"):
        raise ValueError(f"unit must be auto, week or day, got {unit!r}")
    if not len(inter):
        raise ValueError("the log is empty: no demand to decompose")
    lo, hi = int(inter.timestamp.min()), int(inter.timestamp.max())
    monday = (lo // DAY - (lo // DAY + 3) % 7) * DAY  # the Monday on or before the first event
    weeks = (hi - monday) // WEEK + 1
    if unit == "week" or (unit == "auto" and weeks >= 104):
        cal = Calendar(WEEK, 52, monday, int(weeks))
    else:
        cal = Calendar(DAY, 7, (lo // DAY) * DAY, int((hi - lo // DAY * DAY) // DAY + 1))
    if cal.n < cycles * cal.period:
        raise ValueError(
            f"the log spans {cal.n} {cal.unit}s; STL needs two full cycles "
            f"({cycles * cal.period} {cal.unit}s)"
        )
    return cal


def counts(inter: Interactions, cal: Calendar, items: np.ndarray | None = None) -> np.ndarray:
    """Events per period: (n,) for the whole log, or (len(items), n) for those item_idx."""
    p = cal.index(inter.timestamp)
    ok = (p >= 0) & (p < cal.n)
    if items is None:
        return np.bincount(p[ok], minlength=cal.n).astype(np.float64)
    items = np.asarray(items, dtype=np.int64)
    row = np.full(inter.items.size, -1, dtype=np.int64)
    row[items] = np.arange(items.size)
    r = row[inter.item_idx]
    keep = ok & (r >= 0)
    out = np.zeros((items.size, cal.n))
    np.add.at(out, (r[keep], p[keep]), 1.0)
    return out


@dataclass
class Decomposition:
    """STL parts of one series (each (n,)) and what they say.

    Attributes:
        name: What the series counts (a genre, a title, "all titles").
        observed, trend, seasonal, resid: The series and its parts.
        seasonal_strength: ``max(0, 1 - Var(resid) / Var(seasonal + resid))``
            (Wang, Smith & Hyndman 2006): 0 = no seasonality, 1 = all of it; NaN for a
            series of under two events a period on average (too sparse to say).
        trend_strength: The same with the trend in place of the seasonal part.
        peak: Position in the cycle (0..period-1, from the calendar's start) where the
            seasonal part is highest on average.
    """

    name: str
    observed: np.ndarray
    trend: np.ndarray
    seasonal: np.ndarray
    resid: np.ndarray
    seasonal_strength: float
    trend_strength: float
    peak: int

    @property
    def events(self) -> int:
        return int(self.observed.sum())


def _strength(part: np.ndarray, resid: np.ndarray) -> float:
    total = np.var(part + resid)
    return float(max(0.0, 1.0 - np.var(resid) / total)) if total > 0 else 0.0


def decompose(series: np.ndarray, cal: Calendar, name: str) -> Decomposition:
    """Robust STL of ``series`` (n,) with the calendar's period."""
    from statsmodels.tsa.seasonal import STL

    y = np.asarray(series, dtype=np.float64)
    if y.shape != (cal.n,):
        raise ValueError(f"{name}: series has shape {y.shape}, the calendar {cal.n} periods")
    fit = STL(y, period=cal.period, robust=True).fit()
    trend, seasonal, resid = (np.asarray(x) for x in (fit.trend, fit.seasonal, fit.resid))
    phase = np.arange(cal.n) % cal.period
    mean_by_phase = np.bincount(phase, seasonal, cal.period) / np.bincount(phase, None, cal.period)
    # under two events a period the parts are noise around zero: no strength is claimed
    sparse = y.sum() < 2 * cal.n
    return Decomposition(
        name=name,
        observed=y,
        trend=trend,
        seasonal=seasonal,
        resid=resid,
        seasonal_strength=float("nan") if sparse else _strength(seasonal, resid),
        trend_strength=float("nan") if sparse else _strength(trend, resid),
        peak=int(np.argmax(mean_by_phase)),
    )


def seasonal_index(d: Decomposition, cal: Calendar) -> np.ndarray:
    """(period,) multiplicative seasonal index by place in the cycle: the mean of
    ``(trend + seasonal) / trend`` over the periods at that place (1 = an average period)."""
    level = np.maximum(d.trend, 1e-9)
    ratio = np.clip((d.trend + d.seasonal) / level, 0.0, None)
    phase = np.arange(cal.n) % cal.period
    weights = (d.trend > 0).astype(np.float64)
    num = np.bincount(phase, ratio * weights, cal.period)
    den = np.bincount(phase, weights, cal.period)
    return np.where(den > 0, num / np.maximum(den, 1e-12), 1.0)


def plot(d: Decomposition, cal: Calendar, path: Path) -> Path:
    """Four stacked panels (observed, trend, seasonal, residual) as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = cal.starts().astype("datetime64[s]")
    fig, axes = plt.subplots(4, 1, figsize=(9, 7), sharex=True)
    for ax, part, label in zip(
        axes,
        (d.observed, d.trend, d.seasonal, d.resid),
        ("events", "trend", "seasonal", "residual"),
        strict=True,
    ):
        ax.plot(x, part, lw=1)
        ax.set_ylabel(label)
    axes[0].set_title(
        f"{d.name}: events per {cal.unit}, STL period {cal.period} "
        f"(seasonal strength {d.seasonal_strength:.2f}, trend {d.trend_strength:.2f})"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def slug(name: str) -> str:
    """A file-name-safe version of ``name``."""
    keep = "".join(c.lower() if c.isalnum() else "-" for c in name)
    return "-".join(p for p in keep.split("-") if p) or "series"
