"""Fixtures for the service: databases (SQLite file, PostgreSQL), stores and Redis.

PostgreSQL: `PRIMETIME_TEST_POSTGRES_URL` (default
`postgresql+psycopg://postgres@127.0.0.1:5432/postgres`) is a server URL; each test session
creates its own database there, migrates it once, empties it before every test and drops it at
the end. Redis: `PRIMETIME_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/15`); a test
session only touches keys under its own prefix and deletes them at the end.

Unreachable services skip their tests, or fail them when `CI` is set to a true value.

RabbitMQ (the job system's other broker): `PRIMETIME_TEST_RABBITMQ_URL` (default
`amqp://guest:guest@127.0.0.1:5672//`).

Fixtures for other service tests: `db_url` (migrated, empty; sqlite and postgres), `store`
(an `EventStore` on it), `empty_db_url` (never migrated), `redis_url`, `redis_prefix`,
`rabbitmq_url`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from primetime.service.db import Base, make_engine, migrate, normalize_url
from primetime.service.store import EventStore

POSTGRES_URL = os.environ.get(
    "PRIMETIME_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("PRIMETIME_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RABBITMQ_URL = os.environ.get("PRIMETIME_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
SESSION_TAG = uuid.uuid4().hex[:10]

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)]


_SERVICE_FIXTURES = frozenset(
    {"postgres_server", "postgres_db", "redis_url", "redis_prefix", "rabbitmq_url"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use PostgreSQL or Redis fixtures are integration tests, marked or not."""
    for item in items:
        if _SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _unavailable(reason: str) -> None:
    """Skip, or fail under CI, when an external service is missing."""
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class PostgresServer:
    """Creates and drops uniquely named databases on one PostgreSQL server."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self._admin = create_engine(url, isolation_level="AUTOCOMMIT")
        self._count = 0

    def ping(self) -> None:
        with self._admin.connect() as conn:
            conn.execute(text("SELECT 1"))

    def create_database(self) -> URL:
        self._count += 1
        name = f"primetime_test_{SESSION_TAG}_{self._count}"
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return self.url.set(database=name)

    def drop_database(self, url: URL) -> None:
        with self._admin.connect() as conn:
            # FORCE (PostgreSQL >= 13) ends connections a failed test may have left open.
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))

    def close(self) -> None:
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    url = normalize_url(POSTGRES_URL)
    url = url.set(query={**url.query, "connect_timeout": "3"})
    server = PostgresServer(url)
    try:
        server.ping()
    except SQLAlchemyError as err:
        server.close()
        _unavailable(
            f"PostgreSQL not reachable at {url.render_as_string(hide_password=True)} "
            f"({type(err).__name__}); start it or set PRIMETIME_TEST_POSTGRES_URL"
        )
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_db(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of this session's migrated PostgreSQL database."""
    url = postgres_server.create_database()
    rendered = url.render_as_string(hide_password=False)
    migrate(rendered)
    yield rendered
    postgres_server.drop_database(url)


def _truncate_all(url: str) -> None:
    engine = make_engine(url)
    try:
        names = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a fresh SQLite file, or this session's PostgreSQL
    database emptied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'service.db'}"
        migrate(url)
        return url
    url = request.getfixturevalue("postgres_db")
    _truncate_all(url)
    return url


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database that was never migrated (a new PostgreSQL database per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'service.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url.render_as_string(hide_password=False)
    server.drop_database(url)


@pytest.fixture
def store(db_url: str) -> Iterator[EventStore]:
    """An `EventStore` on an empty migrated database (closed after the test)."""
    s = EventStore.open(db_url, migrate=False)
    yield s
    s.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a reachable Redis (skip, or fail under CI, when there is none)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as err:
        _unavailable(
            f"Redis not reachable at {REDIS_URL} ({type(err).__name__}); start it or set "
            "PRIMETIME_TEST_REDIS_URL"
        )
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_session_prefix(redis_url: str) -> Iterator[str]:
    """Key prefix of this test session; its keys are deleted at the end."""
    import redis

    prefix = f"primetime-test:{SESSION_TAG}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_session_prefix: str) -> str:
    """A key prefix used by this test only (under the session prefix)."""
    return f"{redis_session_prefix}{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """URL of a reachable RabbitMQ (skip, or fail under CI, when there is none)."""
    from kombu import Connection

    try:
        with Connection(RABBITMQ_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as err:  # kombu raises the transport's own errors
        _unavailable(
            f"RabbitMQ not reachable at {RABBITMQ_URL.split('@')[-1]} ({type(err).__name__}); "
            "start it or set PRIMETIME_TEST_RABBITMQ_URL"
        )
    return RABBITMQ_URL
