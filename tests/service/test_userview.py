"""UserViews: a kept fold caught up with new events equals a fold rebuilt from the store."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from primetime.service.db import Event
from primetime.service.store import EventStore, NewEvent, UserRecord
from primetime.service.userview import UserView, UserViews

ITEMS = ["a", "b", "c", "d", "gone"]  # "gone" is not in the catalog
GENRES = [[], ["Drama"], ["Drama", "Comedy"], ["Horror"], ["Comedy"]]
NOW = 1_000_000.0
_names = itertools.count()


def index(item_id: str) -> int | None:
    return {"a": 1, "b": 2, "c": 3, "d": 4}.get(item_id)


def views(store: EventStore, **kw: int) -> UserViews:
    return UserViews(store, index, GENRES, **kw)


def new_user(store: EventStore) -> UserRecord:
    return store.create_user(f"viewer{next(_names)}", "hash")


def same(a: UserView, b: UserView) -> None:
    assert a.events == b.events
    np.testing.assert_array_equal(a.context.history, b.context.history)
    np.testing.assert_array_equal(a.context.timestamps, b.context.timestamps)
    assert a.context.now == b.context.now
    assert a.prefs.weights(NOW) == b.prefs.weights(NOW)
    assert (a.dislikes, a.seen, a.pref_events) == (b.dislikes, b.seen, b.pref_events)


event = st.builds(
    lambda item, kind, rating, dt: NewEvent(
        item_id=item,
        event_type=kind,
        rating=rating if kind == "rate" else None,
        ts=NOW + dt,
    ),
    st.sampled_from(ITEMS),
    st.sampled_from(
        ["view", "click", "play", "complete", "rate", "like", "dislike", "add-to-list"]
    ),
    st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0]),
    # mostly newer than what came before, sometimes older, sometimes in the future
    st.one_of(st.integers(-5_000, -1), st.integers(-400_000, -300_000), st.integers(1, 50)),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(st.lists(event, min_size=0, max_size=4), min_size=1, max_size=6))
def test_caught_up_view_equals_rebuilt_view(store: EventStore, batches) -> None:
    user = new_user(store)
    kept = views(store, limit=12)
    clock = NOW - 4_000
    for batch in batches:
        # events arrive in time order mostly: give each batch increasing times
        batch = [
            NewEvent(e.item_id, e.event_type, ts=clock + i + (e.ts - NOW) / 1000, rating=e.rating)
            if e.ts is not None and e.ts < NOW - 100_000
            else NewEvent(e.item_id, e.event_type, ts=clock + i, rating=e.rating)
            if e.ts is not None and e.ts < NOW
            else e
            for i, e in enumerate(batch)
        ]
        clock += len(batch) + 1
        store.add_events(user.id, batch)
        got = kept.get(user, now=NOW)
        same(got, views(store, limit=12).get(user, now=NOW))
    assert kept.stats.updated + kept.stats.rebuilt == len(batches)


def test_in_order_events_are_folded_not_reread(store: EventStore) -> None:
    user = new_user(store)
    v = views(store)
    store.add_events(user.id, [NewEvent("a", "play", ts=NOW - 10)])
    assert list(v.get(user, now=NOW).context.history) == [1]
    for i, item in enumerate(["b", "c", "d"]):
        store.add_events(user.id, [NewEvent(item, "like", ts=NOW - 5 + i)])
        view = v.get(user, now=NOW)
    assert list(view.context.history) == [1, 2, 3, 4]
    assert v.stats.rebuilt == 1 and v.stats.updated == 3
    assert view.prefs.top(NOW, 1)[0][0] in {"Drama", "Comedy", "Horror"}


def test_an_older_event_is_placed_by_a_rebuild(store: EventStore) -> None:
    user = new_user(store)
    v = views(store)
    store.add_events(user.id, [NewEvent("a", "play", ts=NOW - 10)])
    v.get(user, now=NOW)
    store.add_events(user.id, [NewEvent("b", "play", ts=NOW - 20)])  # before "a"
    assert list(v.get(user, now=NOW).context.history) == [2, 1]
    assert v.stats.rebuilt == 2


def test_an_event_committed_late_with_a_smaller_id_is_not_missed(store: EventStore) -> None:
    """PostgreSQL hands out ids at insert, not at commit: a reader can see id 1001 before
    id 900 exists. The count in the same snapshot shows the gap."""
    user = new_user(store)
    v = views(store)
    row = {"user_id": user.id, "event_type": "play", "received_at": NOW, "context": "{}"}
    with store.engine.begin() as conn:
        conn.execute(insert(Event), [{**row, "id": 1001, "item_id": "a", "ts": NOW - 10}])
    assert list(v.get(user, now=NOW).context.history) == [1]
    with store.engine.begin() as conn:  # the slower transaction commits now
        conn.execute(insert(Event), [{**row, "id": 900, "item_id": "b", "ts": NOW - 5}])
    assert list(v.get(user, now=NOW).context.history) == [1, 2]
    assert v.stats.rebuilt == 2


def test_future_events_count_once_their_time_comes(store: EventStore) -> None:
    user = new_user(store)
    v = views(store)
    store.add_events(
        user.id, [NewEvent("a", "like", ts=NOW - 10), NewEvent("c", "like", ts=NOW + 60)]
    )
    early = v.get(user, now=NOW)
    assert "Horror" not in early.prefs.weights(NOW)
    assert len(v) == 0, "a fold with a future event is not kept"
    later = v.get(user, now=NOW + 120)
    assert later.prefs.weights(NOW + 120)["Horror"] > 0


def test_long_histories_keep_the_newest_events(store: EventStore) -> None:
    user = new_user(store)
    v = views(store, limit=3)
    store.add_events(user.id, [NewEvent(i, "play", ts=NOW - 10 + n) for n, i in enumerate("abcd")])
    assert list(v.get(user, now=NOW).context.history) == [2, 3, 4]
    assert len(v) == 0, "at the limit older events may be missing: rebuilt every time"


def test_a_dislike_stays_out_of_the_history_a_low_rating_enters_it_and_a_play_lifts_both(
    store: EventStore,
) -> None:
    """A dislike (the button) is not a watch: no history. A rating below 3 is a dislike
    of a watched title: the models' training logs hold such titles in their sequences,
    so it enters the history too. A later play of the title takes the dislike back."""
    user = new_user(store)
    v = views(store)
    store.add_events(user.id, [NewEvent("a", "dislike", ts=NOW - 10)])
    view = v.get(user, now=NOW)
    assert view.dislikes == {1} and list(view.context.history) == []
    store.add_events(user.id, [NewEvent("a", "rate", rating=2.0, ts=NOW - 9)])
    view = v.get(user, now=NOW)
    assert view.dislikes == {1} and list(view.context.history) == [1]
    store.add_events(user.id, [NewEvent("a", "complete", ts=NOW - 8)])
    view = v.get(user, now=NOW)
    assert view.dislikes == set() and list(view.context.history) == [1, 1]
    assert v.stats.updated == 2


def test_folds_are_bounded_by_the_events_they_hold(store: EventStore) -> None:
    v = views(store, max_events=5)
    users = [new_user(store) for _ in range(3)]
    for u in users:
        store.add_events(u.id, [NewEvent("a", "play", ts=NOW - 3), NewEvent("b", "play", ts=NOW)])
        v.get(u, now=NOW)
    assert len(v) == 2, "the least recently used user's fold went first"
    v.forget(users[2].id)
    assert len(v) == 1


def test_bad_arguments_are_refused(store: EventStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        views(store, limit=0)


def test_views_follow_the_wall_clock_by_default(store: EventStore) -> None:
    user = new_user(store)
    store.add_events(user.id, [NewEvent("a", "play")])
    view = views(store).get(user)
    assert abs(view.context.now - time.time()) < 60
