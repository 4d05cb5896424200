"""Live genre preferences: event weights, lazy decay, rebuild, JSON, timeline, insights."""

from __future__ import annotations

import math

import pytest

from primetime.data.events import EventType
from primetime.pipeline.realtime import (
    DAY,
    EVENT_WEIGHTS,
    Event,
    GenrePreferences,
    event_weight,
    genre_diversity,
    insights,
    timeline,
)

GENRES = [(), ("Drama",), ("Comedy", "Family"), ("Drama", "Crime"), ("Horror",)]


def test_event_weights_order_and_ratings() -> None:
    w = EVENT_WEIGHTS
    assert w["complete"] > w["like"] > w["play"] > w["add-to-list"] > w["click"] > w["view"] > 0
    assert w["dislike"] < 0
    assert set(w) == set(EventType) - {EventType.RATE, EventType.REMOVE_FROM_LIST}
    assert event_weight("add-to-list") == w[EventType.ADD_TO_LIST] == 0.4
    # legacy spellings weigh the same as before the one vocabulary
    assert event_weight("add_to_list") == event_weight(" ADD-TO-LIST ") == 0.4
    assert event_weight("search_click") == event_weight("click") == 0.2
    assert event_weight(EventType.DISLIKE) == -1.0
    assert event_weight("rate", 5) == 1.0
    assert event_weight("rate", 1) == -1.0
    assert event_weight("rate", 3) == 0.0
    assert event_weight("rate", 4) == 0.5
    with pytest.raises(ValueError, match="needs a rating"):
        event_weight("rate")
    with pytest.raises(ValueError, match="unknown event_type 'purchase'; known: complete, like"):
        event_weight("purchase")
    with pytest.raises(ValueError, match="unknown event_type 'remove-from-list'"):
        event_weight("remove-from-list")  # moves no preference: skipped on replay


def test_half_life_decay_and_split_over_genres() -> None:
    p = GenrePreferences(half_life_days=14)
    p.update(["Drama"], "complete", 0)
    assert p.weights(0) == {"Drama": 1.0}
    assert p.weights(14 * DAY)["Drama"] == pytest.approx(0.5)
    assert p.weights(28 * DAY)["Drama"] == pytest.approx(0.25)
    p.update(["Comedy", "Family", "Comedy"], "like", 14 * DAY)  # repeats count once
    w = p.weights(14 * DAY)
    assert w["Comedy"] == pytest.approx(0.4) and w["Family"] == pytest.approx(0.4)
    p.update(["Drama"], "complete", 14 * DAY)  # lazily decayed, then added
    assert p.weights(14 * DAY)["Drama"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="half_life_days"):
        GenrePreferences(0)


def test_out_of_order_events_give_the_same_weights() -> None:
    evs = [(["Drama"], "complete", 0.0), (["Drama"], "like", 5 * DAY), (["Horror"], "view", DAY)]
    a, b = GenrePreferences(), GenrePreferences()
    for g, t, ts in evs:
        a.update(g, t, ts)
    for g, t, ts in sorted(evs, key=lambda e: -e[2]):
        b.update(g, t, ts)
    now = 10 * DAY
    for g, w in a.weights(now).items():
        assert b.weights(now)[g] == pytest.approx(w)


def test_dislike_and_top() -> None:
    p = GenrePreferences()
    p.update(["Horror"], "dislike", 0)
    p.update(["Drama"], "complete", 0)
    p.update(["Comedy"], "view", 0)
    assert p.weights(0)["Horror"] == -1.0
    assert p.top(0, 5) == [("Drama", 1.0), ("Comedy", 0.1)]  # negative genres are not favourites
    assert p.top(0, 1) == [("Drama", 1.0)]
    p.update([], "complete", 0)  # a title without genres changes nothing
    assert len(p) == 3
    snap = p.snapshot()
    p.update(["Comedy"], "complete", 0)
    assert snap.weights(0)["Comedy"] == pytest.approx(0.1)


def test_rebuild_from_events_and_json_round_trip() -> None:
    evs = [
        Event(1, "complete", 0.0),
        {"item_idx": 2, "event": "like", "timestamp": DAY},
        (3, "rate", 2 * DAY, 5.0),
        (4, "dislike", 3 * DAY),
        (1, "complete", 100 * DAY),  # after `now`: ignored
    ]
    p = GenrePreferences.from_events(evs, GENRES, now=10 * DAY)
    q = GenrePreferences()
    q.update(GENRES[1], "complete", 0.0)
    q.update(GENRES[2], "like", DAY)
    q.update(GENRES[3], "rate", 2 * DAY, 5.0)
    q.update(GENRES[4], "dislike", 3 * DAY)
    assert p.weights(10 * DAY) == pytest.approx(q.weights(10 * DAY))
    mapping = GenrePreferences.from_events(evs, dict(enumerate(GENRES)), now=10 * DAY)
    assert mapping.weights(10 * DAY) == pytest.approx(q.weights(10 * DAY))
    unknown = GenrePreferences.from_events([(99, "like", 0.0)], GENRES)
    assert len(unknown) == 0
    # a malformed stored event is skipped, not fatal (update itself still raises)
    bad = GenrePreferences.from_events(
        [(1, "rate", 0.0), (2, "zap", 0.0), (1, "like", 0.0)], GENRES
    )
    assert bad.weights(0.0) == {"Drama": 0.8}
    r = GenrePreferences.from_json(p.to_json())
    assert r.half_life_days == p.half_life_days
    assert r.weights(20 * DAY) == pytest.approx(p.weights(20 * DAY))
    with pytest.raises(ValueError, match="not a GenrePreferences"):
        GenrePreferences.from_json("{}")
    with pytest.raises(ValueError, match="cannot read an event"):
        Event.coerce({"item_idx": 1})


def test_timeline() -> None:
    evs = [(1, "complete", 0.0), (2, "complete", 10 * DAY), (2, "complete", 20 * DAY)]
    tl = timeline(evs, GENRES, buckets=3, half_life_days=10)
    assert [t for t, _ in tl] == [0.0, 10 * DAY, 20 * DAY]
    assert tl[0][1] == {"Drama": 1.0}
    assert tl[-1][1]["Drama"] == pytest.approx(0.25)
    assert tl[-1][1]["Comedy"] > tl[1][1]["Comedy"]
    final = GenrePreferences.from_events(evs, GENRES, half_life_days=10).weights(20 * DAY)
    assert tl[-1][1] == pytest.approx(final)
    assert timeline([], GENRES) == []
    assert len(timeline(evs[:1], GENRES, buckets=5)) == 1  # one instant


def test_insights_and_diversity() -> None:
    evs = [(1, "complete", 0.0), (1, "like", 1.0), (2, "play", 2.0), (4, "dislike", 3.0)]
    out = insights(evs, GENRES, now=3.0)
    assert out["events"] == 4 and out["distinct_titles"] == 3
    assert out["counts"] == {"complete": 1, "like": 1, "play": 1, "dislike": 1}
    legacy = [(1, "Add_To_List", 0.0), (2, "search_click", 1.0), (3, "DISLIKE", 2.0)]
    assert insights(legacy, GENRES, now=3.0)["counts"] == {
        "add-to-list": 1,
        "click": 1,
        "dislike": 1,
    }
    assert Event.coerce(legacy[0]) == Event(1, "add-to-list", 0.0)
    assert out["top_genres"][0] == "Drama"
    assert list(out["genre_weights"])[0] == "Drama"
    assert out["genre_weights"]["Horror"] < 0
    assert len(out["timeline"]) == 12 and set(out["timeline"][0]) == {"ts", "weights"}
    assert 0 < out["diversity"] < 1
    # entropy: one genre -> 0; every catalog genre equally -> 1
    assert genre_diversity([1], GENRES) == 0.0
    assert genre_diversity([1, 4], GENRES, n_genres=2) == pytest.approx(1.0)
    even = genre_diversity([1, 2, 4], GENRES)  # Drama 1, Comedy .5, Family .5, Horror 1 of 5
    p = [1 / 3, 1 / 6, 1 / 6, 1 / 3]
    assert even == pytest.approx(-sum(x * math.log(x) for x in p) / math.log(5))
    assert genre_diversity([], GENRES) == 0.0
