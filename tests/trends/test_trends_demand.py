"""Demand series and STL on planted series; the season split by hand."""

from __future__ import annotations

import numpy as np
import pytest

from primetime.data.interactions import Interactions
from primetime.data.vocab import Vocabulary
from primetime.trends.demand import DAY, WEEK, Calendar, calendar_of, counts, decompose
from primetime.trends.season import months_of, season_split


def _log(users: list[int], items: list[int], ts: list[int]) -> Interactions:
    n_users, n_items = max(users), max(items)
    return Interactions(
        user_idx=np.array(users, np.int32),
        item_idx=np.array(items, np.int32),
        rating=np.full(len(users), np.nan, np.float32),
        timestamp=np.array(ts, np.int64),
        event=np.zeros(len(users), np.int8),
        users=Vocabulary([f"u{i}" for i in range(1, n_users + 1)], name="user"),
        items=Vocabulary([f"i{i}" for i in range(1, n_items + 1)], name="item"),
    )


def test_stl_finds_a_planted_december_peak():
    cal = Calendar(WEEK, 52, 0, 52 * 4)
    rng = np.random.default_rng(0)
    week = np.arange(cal.n)
    december = (week % 52) >= 48
    y = 100 + 0.2 * week + 60 * december + rng.normal(0, 3, cal.n)
    d = decompose(y, cal, "planted")
    assert d.seasonal_strength > 0.8
    assert d.peak % 52 >= 47  # the seasonal part peaks in the planted weeks
    flat = decompose(100 + rng.normal(0, 3, cal.n), cal, "noise")
    assert flat.seasonal_strength < 0.5
    assert d.trend[-10:].mean() > d.trend[:10].mean() + 20  # the planted upward trend


def test_sparse_series_claims_no_strength():
    cal = Calendar(WEEK, 52, 0, 104)
    y = np.zeros(104)
    y[[3, 60]] = 1
    d = decompose(y, cal, "rare")
    assert np.isnan(d.seasonal_strength) and np.isnan(d.trend_strength)


def test_calendar_choice_and_errors():
    short = _log([1, 1], [1, 2], [0, 20 * DAY])  # 3 weeks: daily with a weekly cycle
    cal = calendar_of(short)
    assert (cal.step, cal.period, cal.n) == (DAY, 7, 21)
    long = _log([1, 1], [1, 2], [0, 800 * DAY])
    assert calendar_of(long).period == 52
    with pytest.raises(ValueError, match="STL needs two full cycles"):
        calendar_of(_log([1, 1], [1, 2], [0, 5 * DAY]))
    with pytest.raises(ValueError, match="unit must be"):
        calendar_of(long, unit="month")
    assert counts(long, calendar_of(long)).sum() == 2


def test_season_split_by_hand():
    jan, dec, dec2, mar = 1_672_531_200, 1_701_388_800, 1_701_475_200, 1_709_251_200
    assert months_of(np.array([jan, dec, mar])).tolist() == [1, 12, 3]
    # user 1: jan, jan, dec, dec2, mar -> test dec2 (last in December), valid dec, mar dropped
    # user 2: dec, jan: the December event has no two events before it -> all train
    inter = _log(
        [1, 1, 1, 1, 1, 2, 2],
        [1, 2, 3, 4, 5, 1, 2],
        [jan, jan + 60, dec, dec2, mar, dec, jan],
    )
    sp = season_split(inter, [12])
    assert sp.test.item_idx.tolist() == [4]
    assert sp.valid.item_idx.tolist() == [3]
    assert sorted(sp.train.item_idx.tolist()) == [1, 1, 2, 2]
    assert sp.protocol == "season-loo-12"
    with pytest.raises(ValueError, match="months must be in 1..12"):
        season_split(inter, [13])
    with pytest.raises(ValueError, match="no user has an event in months"):
        season_split(inter, [7])
