"""The store's half of issue h11 on SQLite and PostgreSQL: sessions, sign-in throttles,
case-insensitive usernames, idempotent events, and migration 0003 (up and down, with data)."""

from __future__ import annotations

import logging
import time

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from test_store import HEAD, run_in_threads

from primetime.service.db import alembic_config, make_engine, migrate, schema_version
from primetime.service.store import (
    EventIdReused,
    EventStore,
    NewEvent,
    NotFound,
    UsernameTaken,
)

# ---------------------------------------------------------------------------- usernames


def test_usernames_are_unique_regardless_of_case(store: EventStore) -> None:
    ann = store.create_user("u_abc", "h")
    with pytest.raises(UsernameTaken):
        store.create_user("U_ABC", "h")
    with pytest.raises(UsernameTaken):
        store.create_user("u_Abc", "h")
    for name in ("u_abc", "U_ABC", "U_aBc"):
        found = store.user_by_name(name)
        assert found is not None and found.id == ann.id and found.username == "u_abc"
    assert store.user_by_name("u_abcd") is None


def test_the_database_itself_refuses_a_case_duplicate(store: EventStore) -> None:
    store.create_user("Bob", "h")
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (username, password_hash, is_admin, created_at, "
                "onboarding_genres, onboarding_titles) VALUES ('BOB', 'h', false, 1.0, "
                "'[]', '[]')"
            )
        )


# ---------------------------------------------------------------------------- sessions


def test_session_lifecycle(store: EventStore) -> None:
    ann = store.create_user("ann", "h").id
    bob = store.create_user("bob", "h").id
    a1 = store.create_session(ann, ttl=60, user_agent="curl/8")
    a2 = store.create_session(ann, ttl=60)
    b1 = store.create_session(bob, ttl=60)
    assert len({a1, a2, b1}) == 3 and len(a1) <= 32
    assert store.session_active(a1, ann) and store.session_active(a2, ann)
    assert not store.session_active(a1, bob)  # another user's session id
    assert not store.session_active("no-such-session", ann)
    assert not store.session_active(a1, ann, now=time.time() + 61)  # expired
    assert store.open_sessions(ann) == 2

    assert store.revoke_session(a1) is True
    assert store.revoke_session(a1) is False
    assert not store.session_active(a1, ann) and store.session_active(a2, ann)

    a3 = store.create_session(ann, ttl=60)
    assert store.revoke_sessions(ann) == 2  # a2 and a3: sign out everywhere
    assert not store.session_active(a2, ann) and not store.session_active(a3, ann)
    assert store.session_active(b1, bob)  # other users keep theirs
    with pytest.raises(NotFound):
        store.create_session(99_999, ttl=60)


def test_password_change_revokes_every_other_session(store: EventStore) -> None:
    ann = store.create_user("ann", "old-hash").id
    old = [store.create_session(ann, ttl=60) for _ in range(3)]
    new = store.create_session(ann, ttl=60, revoke_others=True, password_hash="new-hash")
    assert not any(store.session_active(s, ann) for s in old)
    assert store.session_active(new, ann)
    user = store.user(ann)
    assert user is not None and user.password_hash == "new-hash"


def test_ended_sessions_are_cleaned_up_at_the_next_sign_in(store: EventStore) -> None:
    ann = store.create_user("ann", "h").id
    gone = store.create_session(ann, ttl=0.001)
    time.sleep(0.01)
    store.create_session(ann, ttl=60)
    with store.engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM sessions")).scalars().all()
    assert gone not in ids and len(ids) == 1


# ---------------------------------------------------------------------------- throttles


def test_login_failures_count_atomically_and_are_forgotten(store: EventStore) -> None:
    assert store.login_blocked_until(["account:ann"]) == 0.0
    counts = run_in_threads(
        8, lambda i: store.add_login_failure("account:ann", now=100.0 + i, forget_before=0)
    )
    assert sorted(counts) == list(range(1, 9))  # no failure lost between concurrent workers
    assert store.add_login_failure("account:ann", now=200.0, forget_before=150.0) == 1
    store.block_login("account:ann", 300.0)
    store.block_login("account:ann", 250.0)  # never shortens a block
    store.add_login_failure("address:1.2.3.4", now=200.0, forget_before=0)
    store.block_login("address:1.2.3.4", 400.0)
    assert store.login_blocked_until(["account:ann"]) == 300.0
    assert store.login_blocked_until(["account:ann", "address:1.2.3.4"]) == 400.0
    assert store.login_blocked_until([]) == 0.0
    store.clear_login_failures("account:ann")
    assert store.login_blocked_until(["account:ann"]) == 0.0
    assert store.add_login_failure("account:ann", now=500.0, forget_before=0) == 1


# ---------------------------------------------------------------------------- event ids


def test_an_event_sent_again_with_its_event_id_is_stored_once(store: EventStore) -> None:
    uid = store.create_user("ann", "h").id
    other = store.create_user("bob", "h").id
    batch = [
        NewEvent(item_id="a", event_type="play", event_id="e-1"),
        NewEvent(item_id="b", event_type="rate", rating=4, event_id="e-2"),
        NewEvent(item_id="c", event_type="like"),  # no key: always stored
    ]
    first = store.store_events(uid, batch)
    assert first.added == 3
    again = store.store_events(uid, batch)
    assert again.ids[:2] == first.ids[:2] and again.added == 1
    assert again.ids[2] not in first.ids
    assert store.event_count(uid) == 4
    # The same key of another user is another event.
    assert store.store_events(other, batch[:1]).added == 1
    # A batch mixing stored and new keys adds only the new ones, ids in the order given.
    mixed = store.store_events(
        uid, [NewEvent(item_id="d", event_type="play", event_id="e-3"), batch[1]]
    )
    assert mixed.added == 1 and mixed.ids[1] == first.ids[1]
    # The same key twice in one batch: one row.
    twice = store.store_events(uid, [batch[0], batch[0]])
    assert twice.ids == [first.ids[0]] * 2 and twice.added == 0
    stored = {e.event_id: e.id for e in store.events(uid) if e.event_id}
    assert stored == {"e-1": first.ids[0], "e-2": first.ids[1], "e-3": mixed.ids[0]}


def test_an_event_id_reused_for_another_event_is_refused(store: EventStore) -> None:
    uid = store.create_user("ann", "h").id
    store.add_events(uid, [NewEvent(item_id="a", event_type="play", event_id="k")])
    for other in (
        NewEvent(item_id="b", event_type="play", event_id="k"),
        NewEvent(item_id="a", event_type="like", event_id="k"),
    ):
        with pytest.raises(EventIdReused, match=r"events\[1\]\.event_id: 'k'"):
            store.add_events(uid, [NewEvent(item_id="x", event_type="play"), other])
    with pytest.raises(EventIdReused, match="another event in the batch"):
        store.add_events(
            uid,
            [
                NewEvent(item_id="x", event_type="play", event_id="z"),
                NewEvent(item_id="y", event_type="play", event_id="z"),
            ],
        )
    assert store.event_count(uid) == 1  # all or none
    with pytest.raises(ValueError, match="event_id"):
        NewEvent(item_id="a", event_type="play", event_id="x" * 65)


def test_concurrent_retries_store_one_event(store: EventStore) -> None:
    uid = store.create_user("ann", "h").id
    batch = [NewEvent(item_id=str(i), event_type="play", event_id=f"k{i}") for i in range(20)]
    results = run_in_threads(6, lambda _: store.store_events(uid, batch))
    assert all(r.ids == results[0].ids for r in results)
    assert sum(r.added for r in results) == 20
    assert store.event_count(uid) == 20


# ---------------------------------------------------------------------------- migration 0003


def _at(engine, revision: str, *, down: bool = False) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_upgrade_to_0003_resolves_case_duplicates_and_downgrades(
    empty_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(empty_db_url)
    users = [  # (id, name, created_at): 'ANN' is the oldest of the three anns
        (1, "ann", 20.0),
        (2, "ANN", 10.0),
        (3, "Ann", 30.0),
        (4, "bob", 5.0),
        (5, "ann-1", 40.0),  # the name the first rename would pick
        (6, "x" * 64, 50.0),
        (7, "X" * 64, 60.0),
    ]
    try:
        _at(engine, "0002")
        with engine.begin() as conn:
            for uid, name, created in users:
                conn.execute(
                    text(
                        "INSERT INTO users (id, username, password_hash, is_admin, created_at, "
                        "onboarding_genres, onboarding_titles) VALUES (:id, :name, 'h', false, "
                        ":created, '[]', '[]')"
                    ),
                    {"id": uid, "name": name, "created": created},
                )
            conn.execute(
                text(
                    "INSERT INTO events (user_id, item_id, event_type, ts, received_at, context) "
                    "VALUES (1, 'a', 'play', 1.0, 1.0, '{}'), (1, 'a', 'play', 1.0, 1.0, '{}')"
                )
            )
        with caplog.at_level(logging.WARNING):
            migrate(engine)
        assert schema_version(engine) == HEAD == "0004"
        with engine.connect() as conn:
            names = dict(conn.execute(text("SELECT id, username FROM users")).all())
        assert names == {
            1: "ann-1-2",  # 'ann-1' belongs to user 5
            2: "ANN",  # the oldest keeps the name
            3: "Ann-3",
            4: "bob",
            5: "ann-1",
            6: "x" * 64,
            7: "X" * 62 + "-7",  # shortened to fit 64 characters
        }
        reported = caplog.text
        assert "'ann' of user 1" in reported and "'Ann' of user 3" in reported
        assert "user 4" not in reported
        with EventStore(engine) as store:
            found = store.user_by_name("ann")
            assert found is not None and found.id == 2
            with pytest.raises(UsernameTaken):
                store.create_user("BOB", "h")
            assert store.event_count(1) == 2  # old events have no event_id: kept
            sid = store.create_session(1, ttl=60)
            assert store.session_active(sid, 1)
            store.add_events(1, [NewEvent(item_id="b", event_type="play", event_id="k")])
            store.add_login_failure("account:ann", now=1.0, forget_before=0)

        _at(engine, "0002", down=True)
        tables = set(inspect(engine).get_table_names())
        assert "sessions" not in tables and "login_throttles" not in tables
        assert "event_id" not in {c["name"] for c in inspect(engine).get_columns("events")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 3
            assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 7
        migrate(engine)  # and up again
        assert schema_version(engine) == HEAD
    finally:
        engine.dispose()


def test_session_read_survives_a_lost_connection(store: EventStore) -> None:
    """PostgreSQL reads sessions on a connection of their own: one the server dropped is
    replaced on the next read (retried once), and a revocation is seen at once."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite reads sessions on the pool")
    ann = store.create_user("ann", "h").id
    sid = store.create_session(ann, ttl=60)
    assert store.session_active(sid, ann)
    reader = store._session_reader  # noqa: SLF001
    pid = reader._conn.dbapi_connection.info.backend_pid  # noqa: SLF001
    with store.engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        conn.commit()
    assert store.session_active(sid, ann)  # a new connection, same answer
    assert reader._conn.dbapi_connection.info.backend_pid != pid  # noqa: SLF001
    store.revoke_session(sid)
    assert not store.session_active(sid, ann)
    store.close()
    assert reader._conn is None  # noqa: SLF001
