"""A title's weekly audience forecast from its profile, and the release week it suggests.

The forecast (:func:`forecast`) for a title released in week ``r``::

    audience(r + k) = base(k) · index(week of year of r + k) · volume(r + k),   k = 0..h-1

- ``base(k)``: the mean *launch curve* of the title's most similar titles (same kind,
  same holiday flag, highest genre Jaccard; :func:`neighbours`): their share of the
  platform's events in their k-th week out, divided by their seasonal index then;
- ``index``: the multiplicative seasonal index of those titles' demand outside their
  launch weeks, by STL (:func:`~primetime.trends.demand.seasonal_index`); 1 when the
  log spans less than two years;
- ``volume``: the platform's events that week (the log's own count inside the log;
  the same week a year earlier beyond it).

The title's own events are never used. :func:`plan` tries every release week of a
window and keeps the one with the largest forecast audience over ``h`` weeks. On a
synthetic world, :func:`true_demand` gives the planted expectation of the title's
weekly audience (the sum, over the events of each week, of the world's exact
next-item probability of the title) for the forecast to be scored against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from primetime.data.dataset import Dataset
from primetime.trends.demand import WEEK, Calendar, calendar_of, counts, decompose, seasonal_index
from primetime.types import UserContext

HOLIDAY_GENRE = "Holiday"


@dataclass
class DemandData:
    """Weekly counts of a data set, computed once for every forecast.

    Attributes:
        cal: Weekly calendar of the log.
        per_title: (items.size, n) events per title and week.
        volume: (n,) events per week.
        release: (items.size,) release week of each title (the catalog's release date,
            else its first event), may be < 0 (before the log); padding -1.
        genres: (items.size, G) multi-hot genres; ``names`` their names.
        kind: (items.size,) 0 movie, 1 show, -1 padding.
        holiday: (items.size,) bool, titles of the holiday genre.
    """

    dataset: Dataset
    cal: Calendar
    per_title: np.ndarray
    volume: np.ndarray
    release: np.ndarray
    genres: np.ndarray
    names: list[str]
    kind: np.ndarray
    holiday: np.ndarray
    _volume_index: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def of(cls, dataset: Dataset) -> DemandData:
        inter = dataset.interactions
        cal = calendar_of(inter, unit="week", cycles=0)
        items = np.arange(inter.items.size)
        per_title = counts(inter, cal, items)  # (V, n)
        catalog = dataset.catalog
        genres, names = catalog.genre_matrix()
        first = np.full(inter.items.size, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, inter.item_idx, inter.timestamp)
        release = np.where(first < np.iinfo(np.int64).max, cal.index(first), -(10**6))
        if "release_date" in catalog.frame.columns:
            dates = catalog.frame["release_date"].to_numpy()
            known = ~np.isnat(dates.astype("datetime64[D]"))
            day = dates[known].astype("datetime64[D]").astype(np.int64)
            release[1:][known] = cal.index(day * 86_400)
        release[0] = -1
        holiday = np.zeros(inter.items.size, dtype=bool)
        if HOLIDAY_GENRE in names:
            holiday = genres[:, names.index(HOLIDAY_GENRE)] > 0
        return cls(
            dataset=dataset,
            cal=cal,
            per_title=per_title,
            volume=per_title.sum(axis=0),
            release=release.astype(np.int64),
            genres=genres,
            names=names,
            kind=catalog.kind_codes(),
            holiday=holiday,
        )

    def item(self, item_id: str) -> int:
        """item_idx of ``item_id``; the error names the data set and shows real ids."""
        idx = self.dataset.catalog.items.get(item_id)
        if not idx:
            sample = ", ".join(self.dataset.catalog.items.ids()[:3])
            raise ValueError(
                f"unknown title {item_id!r} in {self.dataset.name}; ids look like {sample}"
            )
        return idx

    def expected_volume(self, weeks: np.ndarray) -> np.ndarray:
        """Platform events in ``weeks`` (any ints): the log's own count inside the log;
        outside it, the mean weekly count of the log's last 52 weeks times the platform's
        seasonal index that week (STL of the weekly counts; 1 under two years of log)."""
        w = np.asarray(weeks, dtype=np.int64)
        n = self.cal.n
        inside = (w >= 0) & (w < n)
        level = float(self.volume[-52:].mean())
        out = level * self.volume_index()[w % 52]
        return np.where(inside, self.volume[np.clip(w, 0, n - 1)], out)

    def volume_index(self) -> np.ndarray:
        """(52,) seasonal index of the platform's weekly events (ones under two years)."""
        if self._volume_index is None:
            self._volume_index = np.ones(52)
            if self.cal.n >= 104:
                idx = seasonal_index(decompose(self.volume, self.cal, "volume"), self.cal)
                self._volume_index = idx / max(float(idx.mean()), 1e-12)
        return self._volume_index


def neighbours(
    data: DemandData, item: int, horizon: int, k: int = 20, *, launched: bool = True
) -> np.ndarray:
    """Up to ``k`` item_idx most like ``item``: same kind and holiday flag (relaxed, in
    that order, when fewer than 3 qualify), highest genre Jaccard, then most events;
    with ``launched`` only titles whose first ``horizon`` weeks lie inside the log."""
    n = data.cal.n
    r = data.release
    observed = (r >= 0) & (r + horizon <= n) if launched else data.per_title.sum(1) > 0
    observed[0] = False
    observed[item] = False
    g = data.genres
    inter = (g @ g[item]).astype(np.float64)  # (V,)
    union = g.sum(1) + g[item].sum() - inter
    jac = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
    tiers = [
        observed & (data.kind == data.kind[item]) & (data.holiday == data.holiday[item]),
        observed & (data.kind == data.kind[item]),
        observed,
    ]
    for pool in tiers:
        if pool.sum() >= 3:
            cand = np.flatnonzero(pool)
            order = np.lexsort((-data.per_title[cand].sum(1), -jac[cand]))
            return cand[order[:k]]
    raise ValueError(
        f"fewer than 3 titles have their first {horizon} weeks inside the log: "
        "nothing to forecast from (try a shorter --horizon)"
    )


@dataclass
class Forecast:
    """A forecast for one title.

    Attributes:
        item: item_idx; ``neighbours`` the titles it was built from.
        base: (h,) de-seasonalised launch curve, share of the platform's weekly events.
        index: (52,) seasonal index by week of the cycle (ones without two years of log).
        seasonal: Whether ``index`` was estimated (the log spans two years or more).
    """

    item: int
    neighbours: np.ndarray
    base: np.ndarray
    index: np.ndarray
    seasonal: bool
    data: DemandData = field(repr=False)

    @property
    def horizon(self) -> int:
        return int(self.base.size)

    def audience(self, release_week: int) -> np.ndarray:
        """(h,) forecast events in weeks ``release_week .. + h - 1``."""
        weeks = release_week + np.arange(self.horizon)
        return self.base * self.index[weeks % 52] * self.data.expected_volume(weeks)


def forecast(
    data: DemandData, item: int, *, horizon: int = 8, k: int = 20, profile: bool = True
) -> Forecast:
    """Forecast ``item``'s weekly audience from its profile (see the module docstring).

    ``profile=False`` is the reference without a profile: every title of the same kind,
    no seasonal index (what an average new title of that kind does).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 week, got {horizon}")
    if profile:
        near = neighbours(data, item, horizon, k)
    else:
        n = data.cal.n
        near = np.flatnonzero(
            (data.release >= 0) & (data.release + horizon <= n) & (data.kind == data.kind[item])
        )
        near = near[near != item]
        if near.size < 3:
            raise ValueError("fewer than 3 titles of the same kind launched inside the log")
    cal = data.cal
    index = np.ones(52)
    seasonal = profile and cal.n >= 104
    if seasonal:
        alike = neighbours(data, item, horizon, 3 * k, launched=False)
        share = data.per_title[alike].copy()  # (k', n)
        for row, j in enumerate(alike):  # demand outside the launch weeks only
            lo = max(int(data.release[j]), 0)
            share[row, lo : max(int(data.release[j]) + horizon, 0)] = 0.0
        series = share.sum(0) / np.maximum(data.volume, 1.0)
        yearly = Calendar(WEEK, 52, cal.start, cal.n)
        index = seasonal_index(decompose(series, yearly, "neighbours"), yearly)
        # a circular 3-week mean, floored: a sparse series has weeks with no demand at all
        index = (np.roll(index, 1) + index + np.roll(index, -1)) / 3.0
        index = np.clip(index / max(float(index.mean()), 1e-12), 0.25, None)
    weeks = data.release[near][:, None] + np.arange(horizon)[None, :]  # (k, h)
    launch = np.take_along_axis(data.per_title[near], weeks, axis=1)
    launch = launch / np.maximum(data.volume[weeks], 1.0) / index[weeks % 52]
    return Forecast(item, near, launch.mean(0), index, seasonal, data)


@dataclass
class Plan:
    """Candidate release weeks and their forecast audience over the horizon."""

    weeks: np.ndarray
    audience: np.ndarray

    @property
    def best(self) -> int:
        return int(self.weeks[int(np.argmax(self.audience))])


def plan(fc: Forecast, start_week: int, n_weeks: int = 52) -> Plan:
    """Forecast audience over the horizon for a release in each of ``n_weeks`` weeks from
    ``start_week`` (weeks of the data's calendar; may lie beyond the log)."""
    weeks = start_week + np.arange(n_weeks)
    return Plan(weeks, np.array([fc.audience(int(w)).sum() for w in weeks]))


def true_demand(world: Any, data: DemandData, item: int, weeks: np.ndarray) -> np.ndarray:
    """The planted expected audience of ``item`` in each of ``weeks`` (inside the log):
    the sum over that week's events of the world's exact probability that the event is
    ``item`` (given the user's history and the time), shape (len(weeks),)."""
    inter = data.dataset.interactions
    indptr, order = inter.user_histories()
    period = data.cal.index(inter.timestamp[order])  # by sorted position
    want = np.isin(period, weeks)
    out = np.zeros(len(weeks))
    col = {int(w): c for c, w in enumerate(weeks)}
    users = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    items = inter.item_idx[order].astype(np.int64)
    stamps = inter.timestamp[order]
    pos = np.flatnonzero(want)
    for start in range(0, pos.size, 2048):
        block = pos[start : start + 2048]
        ctxs = [
            UserContext(
                user_idx=int(users[p]),
                history=items[indptr[users[p]] : p],
                now=int(stamps[p]),
            )
            for p in block
        ]
        probs = world.next_item_probs(ctxs)[:, item]  # (b,)
        np.add.at(out, [col[int(w)] for w in period[block]], probs)
    return out


def wape(pred: np.ndarray, truth: np.ndarray) -> float:
    """Weighted absolute percentage error ``Σ|pred − truth| / Σ truth`` (nan if no truth)."""
    total = float(np.sum(truth))
    return float(np.sum(np.abs(pred - truth)) / total) if total > 0 else float("nan")


def check_forecasts(
    world: Any, data: DemandData, n: int, *, horizon: int = 8, k: int = 20, seed: int = 0
) -> dict[str, float]:
    """Score the forecast against the planted truth for ``n`` titles launched inside the
    log (a seeded sample): mean WAPE of the forecast, of the reference without a profile,
    and of the observed counts themselves (the sampling noise of one log), and the mean
    relative error of the total audience over the horizon, by forecast."""
    if n < 1:
        raise ValueError(f"the check needs n >= 1 titles, got {n}")
    r = data.release
    pool = np.flatnonzero((r >= 0) & (r + horizon <= data.cal.n))
    pool = pool[pool > 0]
    if not pool.size:
        raise ValueError(f"no title has its first {horizon} weeks inside the log")
    pick = np.random.default_rng(seed).choice(pool, size=min(n, pool.size), replace=False)
    rows: dict[str, list[float]] = {
        k_: [] for k_ in ("wape", "wape_no_profile", "wape_observed", "total", "total_no_profile")
    }
    for item in pick.tolist():
        weeks = int(r[item]) + np.arange(horizon)
        truth = true_demand(world, data, item, weeks)
        fc = forecast(data, item, horizon=horizon, k=k).audience(int(r[item]))
        fb = forecast(data, item, horizon=horizon, k=k, profile=False).audience(int(r[item]))
        total = max(float(truth.sum()), 1e-12)
        rows["wape"].append(wape(fc, truth))
        rows["wape_no_profile"].append(wape(fb, truth))
        rows["wape_observed"].append(wape(data.per_title[item, weeks], truth))
        rows["total"].append(abs(float(fc.sum()) - total) / total)
        rows["total_no_profile"].append(abs(float(fb.sum()) - total) / total)
    out = {key: float(np.nanmean(v)) for key, v in rows.items()}
    out["titles"] = float(pick.size)
    return out
