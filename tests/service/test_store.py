"""EventStore and schema on SQLite and PostgreSQL: migrations (0001 -> 0002 with data included),
users, events (durability across SIGKILL included), impressions, promotion history, experiments
and their outcomes, titles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from primetime.data.events import EVENT_NAMES, EventType
from primetime.service.db import (
    EVENT_TYPES,
    Base,
    alembic_config,
    make_engine,
    migrate,
    normalize_url,
    schema_version,
)
from primetime.service.store import (
    Arm,
    ArmOutcome,
    EventStore,
    NewEvent,
    NotFound,
    UsernameTaken,
)

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def run_in_threads(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run fn(0..n-1) in n threads released together; re-raise the first error."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]
    return results


# ---------------------------------------------------------------------------- schema


def test_migrate_is_idempotent_and_matches_models(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        assert schema_version(engine) is None
        migrate(engine)
        migrate(engine)
        assert HEAD is not None and schema_version(engine) == HEAD
        with engine.connect() as conn:
            # The hand-written revision and the models describe the same schema.
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
    finally:
        engine.dispose()


def test_concurrent_migrations_agree(empty_db_url: str) -> None:
    # Several app processes starting at once: each has its own engine.
    run_in_threads(4, lambda _: migrate(empty_db_url))
    engine = make_engine(empty_db_url)
    try:
        assert schema_version(engine) == HEAD
    finally:
        engine.dispose()


def test_sqlite_engine_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'x.db'}"
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
        assert (tmp_path / "a" / "b").is_dir()
    finally:
        engine.dispose()


def test_in_memory_sqlite_is_one_shared_database() -> None:
    with EventStore.open("sqlite://") as store:
        user = store.create_user("ann", "h")
        results = run_in_threads(3, lambda _: store.user(user.id))
        assert all(r == user for r in results)


def test_normalize_url() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(ValueError, match="url: unsupported database 'mysql'"):
        normalize_url("mysql://u:secret@h/db")


def test_ping(store: EventStore, tmp_path: Path) -> None:
    assert store.ping()
    broken = EventStore(make_engine("postgresql://nobody@127.0.0.1:1/none"))
    assert not broken.ping()


# ---------------------------------------------------------------------------- users


def test_users(store: EventStore) -> None:
    ann = store.create_user(
        "ann",
        "argon2$hash",
        onboarding_genres=["Drama", "Comedy"],
        onboarding_titles=["m1"],
        demographics={"age": 31, "occupation": "writer"},
    )
    bob = store.create_user("bob", "h2", is_admin=True)
    assert ann.id != bob.id
    assert ann.onboarding_genres == ("Drama", "Comedy")
    assert ann.demographics == {"age": 31, "occupation": "writer"}
    assert bob.is_admin and not ann.is_admin and bob.demographics is None
    assert store.user_by_name("ann") == ann
    assert store.user(bob.id) == bob
    assert store.user_by_name("nobody") is None and store.user(999_999) is None
    assert "argon2$hash" not in repr(ann)
    assert abs(ann.created_at - time.time()) < 60

    with pytest.raises(UsernameTaken, match="username: 'ann' is taken"):
        store.create_user("ann", "other")
    assert isinstance(UsernameTaken("x"), ValueError)

    updated = store.set_onboarding(ann.id, ["Horror"], ["m2", "m3"])
    assert updated.onboarding_genres == ("Horror",)
    assert store.user(ann.id) == updated
    with pytest.raises(NotFound, match="user_id: no user 999999"):
        store.set_onboarding(999_999, [], [])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"username": ""}, "username"),
        ({"username": "x" * 65}, "username"),
        ({"onboarding_genres": "Drama"}, "onboarding_genres"),
        ({"demographics": {"age": 31, "zip": "123"}}, "demographics"),
        ({"demographics": {"age": -3}}, "demographics"),
    ],
)
def test_create_user_names_the_bad_argument(
    store: EventStore, kwargs: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {"username": "ann", "password_hash": "h", **kwargs}
    with pytest.raises(ValueError, match=field):
        store.create_user(**args)
    assert store.user_by_name("ann") is None


# ---------------------------------------------------------------------------- events


def test_events_round_trip_order_and_counts(store: EventStore) -> None:
    ann = store.create_user("ann", "h")
    bob = store.create_user("bob", "h")
    before = time.time()
    ids = store.add_events(
        ann.id,
        [
            NewEvent("m1", "view", ts=100.0, device="tv", position=3, request_id="r1"),
            NewEvent("m2", "rate", ts=50.0, rating=4.5, context={"hour": 21, "tags": ["a"]}),
            NewEvent("m3", "click", ts=100.0),  # same ts as m1: the id breaks the tie
            NewEvent("m4", "add-to-list"),  # ts = server time
        ],
    )
    after = time.time()
    assert len(ids) == 4 and ids == sorted(ids)
    store.add_events(bob.id, [NewEvent("m1", "play", ts=10.0)])

    events = store.events(ann.id)
    assert [e.item_id for e in events] == ["m2", "m1", "m3", "m4"]
    assert [e.id for e in events] == [ids[1], ids[0], ids[2], ids[3]]
    m1, m2, m4 = events[1], events[0], events[3]
    assert (m1.device, m1.position, m1.request_id, m1.rating) == ("tv", 3, "r1", None)
    assert m2.rating == 4.5 and m2.context == {"hour": 21, "tags": ["a"]}
    assert before <= m4.ts <= after and m4.ts == m4.received_at
    assert all(e.user_id == ann.id for e in events)

    assert [e.item_id for e in store.events(ann.id, since=100.0)] == ["m1", "m3", "m4"]
    latest = store.events(ann.id, limit=2)
    assert [e.item_id for e in latest] == ["m3", "m4"]  # the latest two, oldest first
    assert store.events(ann.id, limit=0) == []

    assert store.event_count(ann.id) == 4 and store.event_count() == 5
    assert store.counts_by_type(ann.id) == {"view": 1, "rate": 1, "click": 1, "add-to-list": 1}
    assert store.max_event_id() == max(ids) + 1
    assert store.add_events(ann.id, []) == []


def test_empty_store_counts(store: EventStore) -> None:
    assert store.max_event_id() == 0
    assert store.event_count() == 0
    assert store.title_count() == 0


def test_event_types_are_the_enum_values_stored_as_spelled(store: EventStore) -> None:
    """db.EVENT_TYPES is EventType: no migration, the stored strings are the API spelling."""
    assert set(EVENT_TYPES) == set(EventType) and all(type(t) is str for t in EVENT_TYPES)
    ann = store.create_user("ann", "h")
    store.add_events(
        ann.id,
        [
            NewEvent(f"m{i}", t, ts=float(i), rating=4.0 if t == EventType.RATE else None)
            for i, t in enumerate(EventType)
        ],
    )
    stored = [e.event_type for e in store.events(ann.id)]
    assert stored == list(EVENT_NAMES) and all(type(t) is str for t in stored)
    with pytest.raises(ValueError, match="^event_type: 'add_to_list' is not one of view, "):
        NewEvent("m1", "add_to_list")  # legacy spellings are for data files, not the store


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"event_type": "purchase"}, "event_type"),
        ({"event_type": "rate", "rating": 6.0}, "rating"),
        ({"event_type": "rate", "rating": 0.5}, "rating"),
        ({"event_type": "rate", "rating": float("nan")}, "rating"),
        ({"event_type": "rate"}, "rating"),
        ({"event_type": "view", "rating": 3.0}, "rating"),
        ({"event_type": "view", "item_id": ""}, "item_id"),
        ({"event_type": "view", "ts": float("inf")}, "ts"),
        ({"event_type": "view", "position": -1}, "position"),
        ({"event_type": "view", "context": ["not", "a", "dict"]}, "context"),
    ],
)
def test_new_event_names_the_bad_field(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"item_id": "m1", **kwargs}
    with pytest.raises(ValueError, match=rf"^{field}: "):
        NewEvent(**args)


def test_add_events_is_all_or_nothing(store: EventStore) -> None:
    ann = store.create_user("ann", "h")
    with pytest.raises(TypeError, match=r"events\[1\]"):
        store.add_events(ann.id, [NewEvent("m1", "view"), {"item_id": "m2"}])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"events\[0\].context"):
        store.add_events(ann.id, [NewEvent("m1", "view", context={"x": float("nan")})])
    with pytest.raises(NotFound, match="user_id: no user 424242"):
        store.add_events(424_242, [NewEvent("m1", "view")])
    assert store.event_count() == 0


_WRITER = textwrap.dedent(
    """
    import sys
    from primetime.service.store import EventStore, NewEvent

    store = EventStore.open(sys.argv[1], migrate=False)
    user_id = int(sys.argv[2])
    i = 0
    while True:
        ids = store.add_events(user_id, [NewEvent(f"m{i}", "view"), NewEvent(f"m{i}", "play")])
        print(i, *ids, flush=True)  # acknowledged
        i += 1
    """
)


def test_acknowledged_events_survive_sigkill(db_url: str, tmp_path: Path) -> None:
    with EventStore.open(db_url, migrate=False) as store:
        user = store.create_user("ann", "h")
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), db_url, str(user.id)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged: dict[int, str] = {}
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while len(acknowledged) < 100 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            i, *ids = line.split()
            acknowledged.update({int(ids[0]): f"m{i}", int(ids[1]): f"m{i}"})
        # Killed mid-stream: the writer is inside its next transaction or about to start it.
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 100, f"writer acknowledged too little; stderr:\n{err}"

    with EventStore.open(db_url, migrate=False) as reopened:
        stored = {e.id: e.item_id for e in reopened.events(user.id)}
        if reopened.engine.dialect.name == "sqlite":
            with reopened.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost"
    assert all(stored[i] == item for i, item in acknowledged.items())
    # A whole batch or nothing: no half-written batch after the kill.
    assert len(stored) % 2 == 0


# ---------------------------------------------------------------------------- impressions


def test_log_impressions(store: EventStore) -> None:
    ann = store.create_user("ann", "h")
    store.create_experiment("exp1", "Exp", [Arm("a", "m@1")])
    ids = store.log_impressions(
        ann.id, "req-1", ["m3", "m1", "m2"], model_version="m@1", experiment_id="exp1", arm="a"
    )
    store.log_impressions(ann.id, "req-2", ["m9"], model_version="m@1", ts=5.0)
    assert len(ids) == 3 and ids == sorted(ids)
    shown = store.impressions(ann.id, request_id="req-1")
    assert [(i.item_id, i.position) for i in shown] == [("m3", 0), ("m1", 1), ("m2", 2)]
    assert {(i.experiment_id, i.arm, i.model_version) for i in shown} == {("exp1", "a", "m@1")}
    assert [i.request_id for i in store.impressions(ann.id)] == ["req-1"] * 3 + ["req-2"]
    assert [i.item_id for i in store.impressions(ann.id, limit=1)] == ["m9"]
    with pytest.raises(ValueError, match="experiment_id, arm"):
        store.log_impressions(ann.id, "req-3", ["m1"], model_version="m@1", arm="a")
    with pytest.raises(NotFound, match="experiment_id"):
        store.log_impressions(
            ann.id, "req-3", ["m1"], model_version="m@1", experiment_id="nope", arm="a"
        )
    with pytest.raises(NotFound, match="user_id"):
        store.log_impressions(987, "req-3", ["m1"], model_version="m@1")


# ---------------------------------------------------------------------------- promotions


def test_promotion_history(store: EventStore) -> None:
    assert store.promotions() == []
    first = store.record_promotion("sasrec", "v1", actor="ann", promoted_at=100.0)
    assert (first.name, first.version, first.previous_version) == ("sasrec", "v1", None)
    assert (first.promoted_at, first.actor, first.note, first.key) == (
        100.0,
        "ann",
        None,
        "sasrec:v1",
    )
    store.record_promotion("als", "v1", promoted_at=150.0)
    second = store.record_promotion(
        "sasrec", "v2", previous_version="v1", note="better NDCG@10", promoted_at=200.0
    )
    assert second.actor is None and second.note == "better NDCG@10"
    assert store.promotions("sasrec") == [first, second]  # oldest first
    assert [p.key for p in store.promotions()] == ["sasrec:v1", "als:v1", "sasrec:v2"]
    assert store.promotions(limit=2) == store.promotions()[1:]  # the latest, oldest first
    assert store.promotions("nope") == []
    now = store.record_promotion("als", "v2", previous_version="v1")
    assert abs(now.promoted_at - time.time()) < 60


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"version": "x" * 129}, "version"),
        ({"previous_version": ""}, "previous_version"),
        ({"actor": 3}, "actor"),
        ({"note": "x" * 2001}, "note"),
        ({"promoted_at": float("nan")}, "promoted_at"),
    ],
)
def test_record_promotion_names_the_bad_argument(
    store: EventStore, kwargs: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {"name": "sasrec", "version": "v1", **kwargs}
    with pytest.raises(ValueError, match=f"^{field}"):
        store.record_promotion(args.pop("name"), args.pop("version"), **args)
    assert store.promotions() == []


def test_upgrade_from_0001_keeps_data_and_carries_promotions(empty_db_url: str) -> None:
    """A database at revision 0001 with a mirror of the registry: the users stay, each
    promoted version becomes one history row, the mirror goes; downgrade brings it back
    empty."""
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
            conn.execute(
                text(
                    "INSERT INTO users (username, password_hash, is_admin, created_at, "
                    "onboarding_genres, onboarding_titles) VALUES ('ann', 'h', false, 1.0, "
                    "'[]', '[]')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO model_versions (name, version, path, metrics, created_at, "
                    "promoted_at, is_promoted) VALUES "
                    "('sasrec', 'v1', '/m/sasrec/v1', '{}', 10.0, 20.0, false), "
                    "('sasrec', 'v2', '/m/sasrec/v2', '{}', 30.0, 40.0, true), "
                    "('als', 'v1', '/m/als/v1', '{}', 50.0, NULL, true), "
                    "('mf', 'v1', '/m/mf/v1', '{}', 60.0, NULL, false)"
                )
            )
        assert schema_version(engine) == "0001"
        migrate(engine)
        assert schema_version(engine) == HEAD
        tables = set(inspect(engine).get_table_names())
        assert "promotions" in tables and "model_versions" not in tables
        with EventStore(engine) as store:
            assert store.user_by_name("ann") is not None
            carried = store.promotions()
            assert [(p.key, p.promoted_at, p.previous_version, p.actor) for p in carried] == [
                ("sasrec:v2", 40.0, None, None),
                ("als:v1", 50.0, None, None),  # no promoted_at: its registration time
            ]
            assert all(p.note and "model_versions" in p.note for p in carried)
            store.record_promotion("sasrec", "v3", previous_version="v2")  # ids go on
            assert len(store.promotions("sasrec")) == 2

        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
        tables = set(inspect(engine).get_table_names())
        assert "model_versions" in tables and "promotions" not in tables
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM model_versions")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 1
        migrate(engine)  # and up again
        assert schema_version(engine) == HEAD
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- experiments


def test_experiments_and_sticky_assignment(store: EventStore) -> None:
    ann = store.create_user("ann", "h")
    exp = store.create_experiment(
        "rank-2026",
        "Ranking test",
        [{"name": "control", "model_version": "als@1"}, Arm("b", "sasrec@2", 3)],
    )
    assert exp.arms == (Arm("control", "als@1", 1.0), Arm("b", "sasrec@2", 3.0))
    assert exp.active and store.experiment("rank-2026") == exp
    assert store.experiments() == [exp]
    assert store.experiment("nope") is None
    with pytest.raises(ValueError, match="experiment_id: 'rank-2026' exists"):
        store.create_experiment("rank-2026", "again", [Arm("a", "x")])

    assert store.assignment("rank-2026", ann.id) is None
    assert store.assign("rank-2026", ann.id, "b") == "b"
    assert store.assign("rank-2026", ann.id, "control") == "b"  # the first assignment sticks
    assert store.assignment("rank-2026", ann.id) == "b"
    with pytest.raises(ValueError, match="arm: 'zzz'"):
        store.assign("rank-2026", ann.id, "zzz")
    with pytest.raises(NotFound, match="experiment_id"):
        store.assign("nope", ann.id, "b")
    with pytest.raises(NotFound, match="user_id"):
        store.assign("rank-2026", 31337, "b")

    stopped = store.set_experiment_active("rank-2026", False)
    assert not stopped.active and store.experiment("rank-2026") == stopped


@pytest.mark.parametrize(
    ("experiment_id", "arms", "field"),
    [
        ("Bad Id", [Arm("a", "x")], "experiment_id"),
        ("ok", [], "arms"),
        ("ok", [Arm("a", "x"), Arm("a", "y")], "arms"),
        ("ok", [{"name": "a", "model_version": "x", "weight": 0}], r"arms\[0\].weight"),
        ("ok", [{"name": "a", "model_version": ""}], r"arms\[0\].model_version"),
        ("ok", [{"name": "a", "model_version": "x", "share": 1}], r"arms\[0\]"),
    ],
)
def test_create_experiment_names_the_bad_argument(
    store: EventStore, experiment_id: str, arms: list[Any], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        store.create_experiment(experiment_id, "name", arms)
    assert store.experiments() == []


def test_concurrent_assign_gives_one_arm(store: EventStore) -> None:
    arms = [f"arm{i}" for i in range(8)]
    store.create_experiment("race", "Race", [Arm(a, "m") for a in arms])
    users = [store.create_user(f"u{i}", "h").id for i in range(3)]
    for user_id in users:
        got = run_in_threads(len(arms), lambda i, u=user_id: store.assign("race", u, arms[i]))
        assert len(set(got)) == 1, got
        assert store.assignment("race", user_id) == got[0]
    assert sum(o.users for o in store.experiment_outcomes("race")) == len(users)


def test_experiment_outcomes_on_a_planted_case(store: EventStore) -> None:
    store.create_experiment("exp", "Exp", [Arm("a", "m@1"), Arm("b", "m@2"), Arm("c", "m@3")])
    u1, u2, u3, u4 = (store.create_user(f"u{i}", "h").id for i in range(1, 5))
    for user, arm in [(u1, "a"), (u2, "a"), (u3, "b"), (u4, "b")]:
        store.assign("exp", user, arm)

    def shown(user: int, req: str, items: list[str], arm: str) -> None:
        store.log_impressions(user, req, items, model_version="m", experiment_id="exp", arm=arm)

    shown(u1, "r1", ["x", "y", "z"], "a")
    shown(u2, "r2", ["x", "y"], "a")
    shown(u3, "r3", ["x", "y", "z", "w"], "b")
    store.log_impressions(u4, "r4", ["x"], model_version="m")  # outside the experiment

    def acts(user: int, *events: NewEvent) -> None:
        store.add_events(user, list(events))

    acts(u1, NewEvent("x", "click", request_id="r1"), NewEvent("x", "play", request_id="r1"))
    acts(u1, NewEvent("x", "complete", request_id="r1"))  # a: 1 click (x counted once), 1 done
    acts(u2, NewEvent("y", "click", request_id="r2"))  # a: click on y
    acts(u2, NewEvent("z", "click", request_id="r2"))  # z was not shown in r2: not counted
    acts(u2, NewEvent("y", "like", request_id="r2"))  # not a click type
    acts(u3, NewEvent("x", "click", request_id="r1"))  # another response: not counted
    acts(u3, NewEvent("y", "play", request_id="r3"))  # b: 1 click
    acts(u3, NewEvent("w", "complete"))  # no request id: not attributed
    acts(u4, NewEvent("x", "click", request_id="r3"))  # another user's response
    acts(u4, NewEvent("x", "click", request_id="r4"))  # impression outside the experiment

    outcomes = store.experiment_outcomes("exp")
    assert outcomes == [
        ArmOutcome("a", users=2, impressions=5, clicks=2, completions=1),
        ArmOutcome("b", users=2, impressions=4, clicks=1, completions=0),
        ArmOutcome("c", users=0, impressions=0, clicks=0, completions=0),
    ]
    assert outcomes[0].ctr == pytest.approx(0.4) and outcomes[2].ctr == 0.0
    assert outcomes[0].completion_rate == pytest.approx(0.2)
    with pytest.raises(NotFound):
        store.experiment_outcomes("nope")


# ---------------------------------------------------------------------------- titles


def test_sync_titles_upserts(store: EventStore) -> None:
    rows = [
        {"item_id": "m1", "title": "Heat", "kind": "movie", "year": 1995, "genres": ["Crime"]},
        {"item_id": "s1", "title": "The Wire", "kind": "show", "year": 2002, "genres": []},
        {"item_id": "m2", "title": "Alien", "year": None},
    ]
    first = store.sync_titles(rows)
    assert (first.inserted, first.updated, first.unchanged) == (3, 0, 0)
    again = store.sync_titles(rows)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    changed = [
        {**rows[0], "genres": ["Crime", "Thriller"]},
        rows[1],
        {"item_id": "m3", "title": "Up"},
    ]
    result = store.sync_titles(changed)
    assert (result.inserted, result.updated, result.unchanged) == (1, 1, 1)
    assert store.title_count() == 4  # m2 is kept though absent from the last sync
    with store.engine.connect() as conn:
        genres = conn.execute(text("SELECT genres FROM titles WHERE item_id = 'm1'")).scalar()
    assert genres == ["Crime", "Thriller"] or genres == '["Crime", "Thriller"]'

    with pytest.raises(ValueError, match=r"rows\[1\].kind"):
        store.sync_titles([rows[0], {"item_id": "x", "title": "X", "kind": "film"}])
    with pytest.raises(ValueError, match=r"rows\[1\].item_id: 'm1' appears twice"):
        store.sync_titles([rows[0], rows[0]])
    assert store.title_count() == 4


def test_sync_titles_30k_is_fast(store: EventStore) -> None:
    rows = [
        {
            "item_id": f"i{i}",
            "title": f"Title {i}",
            "kind": "movie",
            "year": 1990 + i % 30,
            "genres": ["Drama"],
        }
        for i in range(30_000)
    ]
    start = time.perf_counter()
    assert store.sync_titles(rows).inserted == 30_000
    rows[7] = {**rows[7], "title": "Renamed"}
    assert store.sync_titles(rows).updated == 1
    elapsed = time.perf_counter() - start
    assert store.title_count() == 30_000
    assert elapsed < 30, f"two syncs of 30k titles took {elapsed:.1f} s"


def test_recent_actions_are_the_latest_events_oldest_first(store: EventStore) -> None:
    uid = store.create_user("actions", "hash").id
    store.add_events(
        uid,
        [
            NewEvent(item_id="a", event_type="play", ts=300.0),
            NewEvent(item_id="b", event_type="rate", rating=4.0, ts=100.0),
            NewEvent(item_id="c", event_type="like", ts=200.0),
        ],
    )
    got = store.recent_actions(uid, limit=2)
    assert [(a.item_id, a.event_type, a.ts, a.rating) for a in got] == [
        ("c", "like", 200.0, None),
        ("a", "play", 300.0, None),
    ]
    full = store.recent_actions(uid, limit=10)
    assert [a.item_id for a in full] == [e.item_id for e in store.events(uid)]
    assert full[0].rating == 4.0


def test_added_titles_are_kept_with_their_body(store: EventStore) -> None:
    """A title added to the running service keeps its body and time (migration 0004);
    the data set's titles have neither and are not listed."""
    store.sync_titles(
        [
            {"item_id": "a", "title": "A", "year": 1999, "genres": ["Drama"]},
            {"item_id": "n2", "title": "N2", "year": 2024, "genres": []},
            {"item_id": "n1", "title": "N1", "year": 2024, "genres": ["Drama"]},
        ]
    )
    assert store.added_titles() == []
    store.record_added_title("n2", {"item_id": "n2", "title": "N2", "cast": ["X"]}, 20.0)
    store.record_added_title("n1", {"item_id": "n1", "title": "N1"}, 10.0)
    assert store.added_titles() == [
        ({"item_id": "n1", "title": "N1"}, 10.0),
        ({"item_id": "n2", "title": "N2", "cast": ["X"]}, 20.0),
    ]
    with pytest.raises(KeyError):
        store.record_added_title("missing", {"item_id": "missing"}, 1.0)
