"""Group commit of events (`service.ingest.GroupCommit`, `EventStore.store_event_groups`),
on SQLite and PostgreSQL: every request answered only after its transaction committed, the
same answers as one transaction per request (ids, retries, conflicts), a failed transaction
acknowledging nothing, and the API on top (201/200/409, 503 with Retry-After)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from test_api import make_settings, registry, signup  # noqa: F401  (registry: a fixture)

from primetime.registry import ModelRegistry
from primetime.service.app import create_app
from primetime.service.ingest import GroupCommit
from primetime.service.store import (
    EventGroup,
    EventIdReused,
    EventStore,
    NewEvent,
    NotFound,
    SessionEnded,
    StoredEvents,
)

# ----------------------------------------------------------------------- the store


def test_groups_are_stored_in_order_with_their_own_ids(store: EventStore) -> None:
    ann, bob = store.create_user("ann", "h").id, store.create_user("bob", "h").id
    answers = store.store_event_groups(
        [
            (ann, [NewEvent("m1", "play"), NewEvent("m2", "like")]),
            (bob, [NewEvent("m3", "view")]),
            (ann, [NewEvent("m4", "complete", event_id="e4")]),
        ]
    )
    assert all(isinstance(a, StoredEvents) for a in answers)
    a0, a1, a2 = (a for a in answers if isinstance(a, StoredEvents))
    assert a0.new == [True, True] and a1.new == [True] and a2.new == [True]
    ids = [*a0.ids, *a1.ids, *a2.ids]
    assert ids == sorted(ids) and len(set(ids)) == 4  # inserted in the order of the groups
    assert [(e.id, e.item_id) for e in store.events(ann)] == [
        (a0.ids[0], "m1"),
        (a0.ids[1], "m2"),
        (a2.ids[0], "m4"),
    ]
    assert [e.item_id for e in store.events(bob)] == ["m3"]
    # One transaction: one server time for all of them.
    assert len({e.received_at for u in (ann, bob) for e in store.events(u)}) == 1


def test_duplicates_get_the_answers_of_one_request_after_the_other(store: EventStore) -> None:
    ann, bob = store.create_user("ann", "h").id, store.create_user("bob", "h").id
    before = store.store_events(ann, [NewEvent("m1", "play", event_id="old")])
    answers = store.store_event_groups(
        [
            (ann, [NewEvent("m2", "like", event_id="x")]),  # new
            (ann, [NewEvent("m2", "like", event_id="x")]),  # its retry, in the same batch
            (ann, [NewEvent("m9", "like", event_id="x")]),  # same key, another event
            (ann, [NewEvent("m1", "play", event_id="old"), NewEvent("m3", "view")]),
            (ann, [NewEvent("m3", "view"), NewEvent("m5", "play", event_id="old")]),  # refused
            (bob, [NewEvent("m2", "like", event_id="x")]),  # another user's key space
            (ann, [NewEvent("m6", "play", event_id="y"), NewEvent("m6", "play", event_id="y")]),
        ]
    )
    first, retry, other, again, bad, bobs, twice = answers
    assert isinstance(first, StoredEvents) and first.new == [True]
    assert retry == StoredEvents(first.ids, [False])
    assert isinstance(other, EventIdReused)
    assert isinstance(again, StoredEvents) and again.ids[0] == before.ids[0]
    assert again.new == [False, True]
    assert isinstance(bad, EventIdReused)
    assert isinstance(bobs, StoredEvents) and bobs.new == [True] and bobs.ids != first.ids
    assert isinstance(twice, StoredEvents) and twice.new == [True, False]
    assert twice.ids[0] == twice.ids[1]
    # Nothing of the refused groups was stored; everything else once.
    assert sorted(e.item_id for e in store.events(ann)) == ["m1", "m2", "m3", "m6"]
    # ... in one transaction (not group by group after a failed one): one server time.
    assert len({e.received_at for e in store.events(ann) if e.item_id != "m1"}) == 1
    # The same answers, group by group, as one transaction each gives now (all stored).
    assert store.store_events(ann, [NewEvent("m2", "like", event_id="x")]).ids == first.ids
    with pytest.raises(EventIdReused):
        store.store_events(ann, [NewEvent("m9", "like", event_id="x")])


def test_a_bad_group_refuses_only_itself(store: EventStore) -> None:
    ann = store.create_user("ann", "h").id
    answers = store.store_event_groups(
        [
            (ann, [NewEvent("m1", "play")]),
            (ann + 1000, [NewEvent("m2", "play")]),  # no such user (the foreign key)
            (ann, [NewEvent("m3", "play", event_id="k"), NewEvent("m4", "play", event_id="k")]),
            (ann, [NewEvent("m5", "play")]),
        ]
    )
    assert isinstance(answers[0], StoredEvents) and isinstance(answers[3], StoredEvents)
    assert isinstance(answers[1], NotFound)
    assert isinstance(answers[2], EventIdReused)
    assert [e.item_id for e in store.events(ann)] == ["m1", "m5"]


def test_a_group_is_stored_only_while_its_session_is_open(store: EventStore) -> None:
    ann = store.create_user("ann", "h").id
    bob = store.create_user("bob", "h").id
    open_, ended = store.create_session(ann, ttl=60), store.create_session(ann, ttl=60)
    store.revoke_session(ended)
    expired = store.create_session(bob, ttl=0.001)
    time.sleep(0.01)
    answers = store.store_event_groups(
        [
            EventGroup(ann, [NewEvent("m1", "play")], open_),
            EventGroup(ann, [NewEvent("m2", "play")], ended),
            EventGroup(bob, [NewEvent("m3", "play")], expired),
            EventGroup(bob, [NewEvent("m4", "play")], open_),  # ann's session, not bob's
            EventGroup(bob, [NewEvent("m5", "play")]),  # no session to check
        ]
    )
    assert isinstance(answers[0], StoredEvents) and isinstance(answers[4], StoredEvents)
    assert [type(a) for a in answers[1:4]] == [SessionEnded] * 3
    assert [e.item_id for e in store.events(ann)] == ["m1"]
    assert [e.item_id for e in store.events(bob)] == ["m5"]


# ------------------------------------------------------------------- the batcher


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_concurrent_requests_share_one_transaction_answered_after_it() -> None:
    release = threading.Event()
    calls: list[list[EventGroup]] = []

    def write(groups: list[EventGroup]) -> list[StoredEvents | Exception]:
        calls.append(groups)
        assert release.wait(10)
        return [StoredEvents([u * 10], [True]) for u, *_ in groups]

    async def main() -> None:
        gc = GroupCommit(write, window_s=0.05)
        tasks = [asyncio.create_task(gc.store(u, [NewEvent(f"m{u}", "play")])) for u in range(1, 6)]
        await asyncio.sleep(0.3)  # the window has passed: the transaction is being written
        assert len(calls) == 1 and [u for u, *_ in calls[0]] == [1, 2, 3, 4, 5]
        assert not any(t.done() for t in tasks), "answered before the commit"
        release.set()
        answers = await asyncio.gather(*tasks)
        assert [a.ids for a in answers] == [[10], [20], [30], [40], [50]]
        assert (gc.transactions, gc.events) == (1, 5)
        await gc.close()

    _run(main())


def test_a_failed_transaction_fails_every_waiter() -> None:
    err = OperationalError("INSERT", {}, Exception("server closed the connection"))
    attempts = []

    def write(groups: list[EventGroup]) -> list[StoredEvents | Exception]:
        attempts.append(len(groups))
        if len(attempts) == 1:
            raise err
        return [StoredEvents([1], [True]) for _ in groups]

    async def main() -> None:
        gc = GroupCommit(write, window_s=0.05)
        first = [asyncio.create_task(gc.store(u, [NewEvent("m1", "play")])) for u in (1, 2, 3)]
        results = await asyncio.gather(*first, return_exceptions=True)
        assert results == [err, err, err]
        # The batcher goes on: the next request is written in a new transaction.
        assert (await gc.store(4, [NewEvent("m1", "play")])).ids == [1]
        assert attempts == [3, 1] and gc.transactions == 1
        await gc.close()

    _run(main())


def test_refusals_and_limits_per_request() -> None:
    seen: list[int] = []

    def write(groups: list[EventGroup]) -> list[StoredEvents | Exception]:
        seen.append(sum(len(e) for _, e, _ in groups))
        return [
            EventIdReused("taken") if u == 2 else StoredEvents(list(range(len(e))), [True] * len(e))
            for u, e, _ in groups
        ]

    async def main() -> None:
        gc = GroupCommit(write, window_s=0.05, max_events=4)
        ev = [NewEvent("m1", "play")] * 3
        tasks = [asyncio.create_task(gc.store(u, ev)) for u in (1, 2, 3)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[1], EventIdReused)
        assert results[0] == results[2] == StoredEvents([0, 1, 2], [True] * 3)
        assert seen == [3, 3, 3]  # 4 events at most: a request's events are never split
        await gc.close()
        with pytest.raises(RuntimeError, match="closed"):
            await gc.store(1, ev)

    _run(main())


def test_after_overlaps_the_next_transaction_and_answers_wait_for_it() -> None:
    """`after` of a transaction runs while the writer writes the next one, and that
    transaction's requests are answered only once `after` is done (the `after` steps in
    commit order)."""
    release_after = threading.Event()
    written: list[list[int]] = []
    after_saw: list[tuple[list[int], list[StoredEvents | Exception]]] = []

    def write(groups: list[EventGroup]) -> list[StoredEvents | Exception]:
        written.append([u for u, *_ in groups])
        return [StoredEvents([u], [True]) for u, *_ in groups]

    def after(groups: list[EventGroup], answers: list[StoredEvents | Exception]) -> None:
        after_saw.append(([u for u, *_ in groups], answers))
        if len(after_saw) == 1:
            assert release_after.wait(10)

    async def main() -> None:
        gc = GroupCommit(write, after=after, window_s=0.01)
        first = asyncio.create_task(gc.store(1, [NewEvent("m1", "play")]))
        await asyncio.sleep(0.2)  # written; its `after` is blocked
        assert written == [[1]] and not first.done(), "answered before `after` ran"
        second = asyncio.create_task(gc.store(2, [NewEvent("m1", "play")]))
        await asyncio.sleep(0.2)
        assert written == [[1], [2]]  # the writer went on meanwhile
        assert not first.done() and not second.done()  # `after` steps follow each other
        release_after.set()
        assert (await first).ids == [1] and (await second).ids == [2]
        assert [u for u, _ in after_saw] == [[1], [2]]
        assert after_saw[0][1] == [StoredEvents([1], [True])]
        await gc.close()

    _run(main())


def test_a_failed_after_step_is_logged_and_the_commit_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def write(groups: list[EventGroup]) -> list[StoredEvents | Exception]:
        return [StoredEvents([7], [True]) for _ in groups]

    def after(groups: list[EventGroup], answers: list[StoredEvents | Exception]) -> None:
        raise ConnectionError("cache gone")

    async def main() -> None:
        gc = GroupCommit(write, after=after, window_s=0.01)
        assert (await gc.store(1, [NewEvent("m1", "play")])).ids == [7]
        await gc.close()

    with caplog.at_level("ERROR", logger="primetime.service.ingest"):
        _run(main())
    assert "after a commit failed" in caplog.text


def test_close_writes_what_is_pending() -> None:
    written: list[int] = []

    def write(groups: list[EventGroup]) -> list[StoredEvents | Exception]:
        written.extend(u for u, *_ in groups)
        return [StoredEvents([u], [True]) for u, *_ in groups]

    async def main() -> None:
        gc = GroupCommit(write, window_s=0.2)
        task = asyncio.create_task(gc.store(7, [NewEvent("m1", "play")]))
        await asyncio.sleep(0)
        await gc.close()
        assert (await task).ids == [7] and written == [7]

    _run(main())


def test_each_answer_comes_after_its_commit(db_url: str) -> None:
    """On the real store: when a request is answered, its event is visible from another
    connection (committed), for every request of a concurrent burst."""
    store = EventStore.open(db_url, migrate=False)
    reader = EventStore.open(db_url, migrate=False)
    try:
        users = [store.create_user(f"u{i}", "h").id for i in range(20)]
        not_visible: list[int] = []

        async def main() -> None:
            gc = GroupCommit(store.store_event_groups, window_s=0.01)

            async def one(u: int) -> None:
                s = await gc.store(u, [NewEvent("m1", "play", event_id=f"e{u}")])
                if [e.id for e in reader.events(u)] != s.ids:
                    not_visible.append(u)

            await asyncio.gather(*(one(u) for u in users))
            assert gc.transactions < len(users)  # they did share transactions
            await gc.close()

        _run(main())
        assert not_visible == []
    finally:
        store.close()
        reader.close()


# ------------------------------------------------------------------------ the API


@pytest.fixture
def client(db_url: str, registry: ModelRegistry, planted) -> Iterator[TestClient]:  # noqa: F811
    settings = make_settings(db_url, registry, group_commit_window_ms=20)
    with TestClient(create_app(settings, dataset=planted, registry=registry)) as c:
        yield c


def test_concurrent_posts_are_all_stored_once(client: TestClient) -> None:
    svc = client.app.state.svc  # type: ignore[attr-defined]
    users = [signup(client, f"ann{i}") for i in range(4)]

    def post(n: int) -> tuple[int, list[int]]:
        body = {"item_id": f"i{n % 5 + 1}", "event_type": "play", "event_id": f"e{n % 20}"}
        r = client.post("/api/v1/events", headers=users[n % 4], json=body)
        return r.status_code, r.json()["ids"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(40)))  # each event_id sent twice
    assert {s for s, _ in answers} <= {200, 201}
    assert sum(s == 201 for s, _ in answers) == 20
    by_key: dict[int, set[int]] = {}
    for n, (_, ids) in enumerate(answers):
        by_key.setdefault(n % 20, set()).update(ids)
    assert all(len(v) == 1 for v in by_key.values())  # a retry gets the first one's id
    me = [client.get("/api/v1/me", headers=h).json()["events"] for h in users]
    assert me == [5, 5, 5, 5]
    assert svc.group_commit is not None and svc.group_commit.events == 20 + 20


def test_a_conflict_in_a_shared_transaction_is_409_for_that_request_only(
    client: TestClient,
) -> None:
    h = signup(client, "bob")
    ok = client.post(
        "/api/v1/events", headers=h, json={"item_id": "i1", "event_type": "play", "event_id": "k"}
    )
    assert ok.status_code == 201
    r = client.post(
        "/api/v1/events", headers=h, json={"item_id": "i2", "event_type": "play", "event_id": "k"}
    )
    assert r.status_code == 409 and "event_id was used before" in r.json()["detail"]


def test_a_failed_group_commit_is_503_and_stores_nothing(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = client.app.state.svc  # type: ignore[attr-defined]
    h = signup(client, "cyd")

    def down(groups: object) -> list[StoredEvents | Exception]:
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(svc.store, "store_event_groups", down)
    with ThreadPoolExecutor(4) as pool:
        rs = list(
            pool.map(
                lambda n: client.post(
                    "/api/v1/events", headers=h, json={"item_id": "i1", "event_type": "play"}
                ),
                range(6),
            )
        )
    assert [r.status_code for r in rs] == [503] * 6
    assert all(r.headers["retry-after"] for r in rs)
    monkeypatch.undo()
    assert client.get("/api/v1/me", headers=h).json()["events"] == 0
    ok = client.post("/api/v1/events", headers=h, json={"item_id": "i1", "event_type": "play"})
    assert ok.status_code == 201


def test_group_commit_off_commits_each_request(
    db_url: str,
    registry: ModelRegistry,  # noqa: F811
    planted,
) -> None:
    settings = make_settings(db_url, registry, group_commit=False)
    with TestClient(create_app(settings, dataset=planted, registry=registry)) as c:
        assert c.app.state.svc.group_commit is None  # type: ignore[attr-defined]
        h = signup(c, "deedee")
        body = {"item_id": "i1", "event_type": "play", "event_id": "z"}
        first = c.post("/api/v1/events", headers=h, json=body)
        again = c.post("/api/v1/events", headers=h, json=body)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["ids"] == again.json()["ids"]
