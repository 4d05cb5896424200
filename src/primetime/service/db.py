"""Database schema and engine of the service: users, events, impressions, promotions, experiments.

One schema serves SQLite (a single file, for one machine) and PostgreSQL (for several app
processes). Tables are SQLAlchemy 2 typed declarative models; the schema itself is created and
upgraded only by the Alembic revisions in `primetime/service/migrations` (`migrate`), never by
`create_all`, so a deployed database and a test database always come from the same DDL.

Every timestamp is unix seconds as a float (`time.time()`), the unit the models use.

Usage::

    engine = make_engine("sqlite:///var/primetime.db")   # or "postgresql://user@host/db"
    migrate(engine)                                       # alembic upgrade head, idempotent
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Connection,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    create_engine,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import StaticPool

from primetime.data.events import EVENT_NAMES

log = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")

EVENT_TYPES: Final[tuple[str, ...]] = EVENT_NAMES
"""Allowed `events.event_type` values: the `EventType` values, stored as they are spelled in
the API (checked in Python, see `store.NewEvent`; the column has no CHECK constraint)."""

TITLE_KINDS: Final = ("movie", "show")

# Lengths shared by the tables and the checks in the store.
USERNAME_MAX: Final = 64
ITEM_ID_MAX: Final = 128
SLUG_MAX: Final = 64
EVENT_ID_MAX: Final = 64
"""Longest client `event_id` (the key that makes a retried event a no-op)."""
SESSION_ID_MAX: Final = 32
USER_AGENT_MAX: Final = 256
THROTTLE_KEY_MAX: Final = 160
REQUEST_ID_MAX: Final = SLUG_MAX
"""Longest request id an event or impression keeps (the columns are `String(SLUG_MAX)`): the
one limit of the API schema, the store and the web forms."""
MODEL_NAME_MAX: Final = 128
"""Longest model name, version or promotion actor (`promotions` columns)."""

SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
PG_CONNECT_TIMEOUT_S: Final = 10
PG_KEEPALIVE: Final = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2}
"""TCP keepalives: a PostgreSQL server that vanished (no reset, no answer) is noticed within
about 5 + 2 x the kernel's probe count seconds instead of the kernel's two hours."""
DB_RETRY_AFTER_S: Final = 5
"""`Retry-After` of the 503 a request gets while the database is unreachable or too slow."""
UNAVAILABLE: Final[tuple[type[Exception], ...]] = (
    OperationalError,  # refused or lost connection, statement timeout, SQLite "locked"
    InterfaceError,  # a connection closed under the driver
    PoolTimeout,  # every pooled connection busy for the pool's timeout
)
"""The errors that mean "the database is unavailable now" (503, retry) rather than a bug."""
# Any fixed 64-bit key: every process migrating a PostgreSQL database takes this advisory lock.
_PG_MIGRATION_LOCK: Final = 0x7072_696D_6574_696D  # "primetim"

# Portable ids: SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
# JSON on SQLite (text), JSONB on PostgreSQL (binary, indexable).
JSONType = JSON().with_variant(JSONB(), "postgresql")


def _now() -> float:
    return time.time()


class Base(DeclarativeBase):
    """Declarative base; the naming convention gives every constraint a stable name."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class User(Base):
    """An account. `demographics` holds optional `age` (int), `gender`, `occupation` (str).

    Usernames are unique regardless of case (`uq_users_lower_username`, an index on
    `lower(username)`), and stored as the user typed them."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Double, default=_now)
    onboarding_genres: Mapped[list[str]] = mapped_column(JSONType, default=list)
    onboarding_titles: Mapped[list[str]] = mapped_column(JSONType, default=list)  # item ids
    demographics: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


Index("uq_users_lower_username", func.lower(User.username), unique=True)


class UserSession(Base):
    """One sign-in: a session token names its row (`id`), and is honoured only while the row
    is neither revoked (`revoked_at`: sign-out, sign-out everywhere, a changed password) nor
    expired. Times are unix seconds."""

    __tablename__ = "sessions"
    __table_args__ = (Index(None, "user_id", "revoked_at"),)

    id: Mapped[str] = mapped_column(String(SESSION_ID_MAX), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX), nullable=True)


class LoginThrottle(Base):
    """Failed sign-ins per key (`account:<lower username>` or `address:<client ip>`), shared by
    every worker: after a few, sign-ins under the key wait until `blocked_until`."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(THROTTLE_KEY_MAX), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[float] = mapped_column(Double)
    blocked_until: Mapped[float] = mapped_column(Double)


class Title(Base):
    """Mirror of the catalog the service serves (filled by `EventStore.sync_titles`)."""

    __tablename__ = "titles"
    __table_args__ = (CheckConstraint("kind IN ('movie', 'show')", name="kind"),)

    item_id: Mapped[str] = mapped_column(String(ITEM_ID_MAX), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(8))
    year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    genres: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # A title added to the running service (`POST /api/v1/admin/titles`): the request body
    # (cast, crew, text …) and when, so every worker grows its models to it at start-up.
    # NULL for the titles of the data set.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    added_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class Event(Base):
    """One user action on a title. `ts` is when it happened (client clock, unix seconds),
    `received_at` when the server stored it; `request_id` links it to the impressions of the
    recommendation response it came from."""

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating"),
        Index(None, "user_id", "ts"),
        Index(None, "item_id", "ts"),
        Index(None, "request_id", "item_id"),
        # A client's `event_id` makes a retried event a no-op (NULLs never collide).
        Index("uq_events_user_id_event_id", "user_id", "event_id", unique=True),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(ITEM_ID_MAX))
    event_type: Mapped[str] = mapped_column(String(32))
    rating: Mapped[float | None] = mapped_column(Double, nullable=True)
    ts: Mapped[float] = mapped_column(Double)
    received_at: Mapped[float] = mapped_column(Double)
    device: Mapped[str | None] = mapped_column(String(64), nullable=True)
    position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(SLUG_MAX), nullable=True)
    event_id: Mapped[str | None] = mapped_column(String(EVENT_ID_MAX), nullable=True)


class Impression(Base):
    """One item shown to a user in one recommendation response; `position` is 0-based."""

    __tablename__ = "impressions"
    __table_args__ = (
        Index(None, "user_id", "ts"),
        Index(None, "request_id", "item_id"),
        Index(None, "experiment_id", "arm"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(ITEM_ID_MAX))
    request_id: Mapped[str] = mapped_column(String(SLUG_MAX))
    model_version: Mapped[str] = mapped_column(String(256))
    experiment_id: Mapped[str | None] = mapped_column(
        ForeignKey("experiments.id", ondelete="SET NULL"), nullable=True
    )
    arm: Mapped[str | None] = mapped_column(String(SLUG_MAX), nullable=True)
    position: Mapped[int] = mapped_column(Integer)
    ts: Mapped[float] = mapped_column(Double)


class Promotion(Base):
    """One promotion in the model registry: `version` of `name` was promoted at `promoted_at`
    by `actor`, replacing `previous_version` (None: nothing was promoted). The registry's
    `PROMOTED` files say what is promoted now and hold the versions; this is only the history,
    which the files do not keep."""

    __tablename__ = "promotions"
    __table_args__ = (Index(None, "name", "promoted_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MODEL_NAME_MAX))
    version: Mapped[str] = mapped_column(String(MODEL_NAME_MAX))
    previous_version: Mapped[str | None] = mapped_column(String(MODEL_NAME_MAX), nullable=True)
    promoted_at: Mapped[float] = mapped_column(Double, default=_now)
    actor: Mapped[str | None] = mapped_column(String(MODEL_NAME_MAX), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Experiment(Base):
    """An A/B test; `arms` is a list of `{"name", "model_version", "weight"}`."""

    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(String(SLUG_MAX), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    arms: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    created_at: Mapped[float] = mapped_column(Double, default=_now)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ExperimentAssignment(Base):
    """The arm a user was put in; the primary key makes the first assignment the only one."""

    __tablename__ = "experiment_assignments"

    experiment_id: Mapped[str] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    arm: Mapped[str] = mapped_column(String(SLUG_MAX))
    assigned_at: Mapped[float] = mapped_column(Double, default=_now)


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL and pick the driver this package ships with.

    Args:
        url: `sqlite:///path.db`, `sqlite://` (in memory), or `postgresql://…`
            (`postgres://` and `postgresql+psycopg://` are accepted too).

    Returns:
        The URL with PostgreSQL routed to psycopg 3.

    Raises:
        ValueError: naming `url` when it is neither SQLite nor PostgreSQL.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    backend = parsed.get_backend_name()
    if backend == "postgres":  # the Heroku-style alias
        parsed = parsed.set(drivername="postgresql")
        backend = "postgresql"
    if backend == "postgresql":
        driver = parsed.get_driver_name()
        if parsed.drivername == "postgresql" or driver == "psycopg2":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed
    if backend == "sqlite":
        return parsed
    raise ValueError(
        f"url: unsupported database {parsed.drivername!r} in "
        f"{parsed.render_as_string(hide_password=True)!r}; use sqlite:///FILE or postgresql://…"
    )


def _sqlite_in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; synchronous=NORMAL in WAL mode keeps every
    # committed transaction through a process crash (SIGKILL) — only a power loss can drop the
    # last few, which FULL would prevent at the cost of an fsync per commit.
    cursor = dbapi_conn.cursor()
    try:
        # busy_timeout first, so the statements below wait for a lock instead of failing.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # Switching a new database to WAL needs an exclusive lock and does not always go
        # through the busy handler: processes opening one file at once retry briefly.
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def make_engine(
    url: str | URL, *, echo: bool = False, statement_timeout: float | None = None
) -> Engine:
    """Build the engine for SQLite or PostgreSQL with the settings the service relies on.

    SQLite: WAL journal, `synchronous=NORMAL`, foreign keys on, a 10 s busy timeout, usable
    from any thread; the parent folder of a file database is created. An in-memory database
    (`sqlite://`) is one shared connection. PostgreSQL: psycopg 3. Both ping pooled connections
    before use, so a restarted database server costs no failed request.

    The in-memory database is one connection shared by all threads: for tests and demos only.

    Args:
        url: see `normalize_url`.
        echo: log every SQL statement (debugging).
        statement_timeout: PostgreSQL: seconds any one statement may run before the server
            cancels it (`statement_timeout`; the driver then raises `OperationalError`).
            None: no limit. SQLite has no such limit; its busy timeout bounds lock waits.

    Returns:
        A new engine; the caller disposes of it.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args: dict[str, Any] = {
            "check_same_thread": False,
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
        }
        if _sqlite_in_memory(parsed):
            engine = create_engine(
                parsed, echo=echo, connect_args=connect_args, poolclass=StaticPool
            )
        else:
            assert parsed.database is not None  # excluded by _sqlite_in_memory
            if not parsed.database.startswith("file:"):
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, echo=echo, connect_args=connect_args, pool_pre_ping=True)
        event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    connect_args = {
        "connect_timeout": PG_CONNECT_TIMEOUT_S,
        "application_name": "primetime",
        **PG_KEEPALIVE,
    }
    if statement_timeout is not None:
        if not statement_timeout > 0:
            raise ValueError(f"statement_timeout must be > 0 seconds, got {statement_timeout}")
        connect_args["options"] = f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"
    return create_engine(parsed, echo=echo, pool_pre_ping=True, connect_args=connect_args)


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config pointing at the migrations shipped inside this package.

    No `alembic.ini` is needed. To write a new revision from changed models::

        from alembic import command
        command.revision(alembic_config(url), message="add x", autogenerate=True)

    Args:
        url: database URL, used when no connection is put in `config.attributes["connection"]`.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        # `%` is Alembic's interpolation character; escape it in passwords.
        rendered = normalize_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def _lock_for_migration(conn: Connection) -> None:
    """Serialise concurrent `migrate` calls (several app processes starting at once)."""
    if conn.dialect.name == "postgresql":
        # A migration (or the wait for another process's) may take longer than the
        # service's statement timeout: none inside this transaction.
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    elif conn.dialect.name == "sqlite":
        # Take the write lock now; the other process waits (busy timeout) and then finds head.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine_or_url: Engine | str | URL) -> None:
    """Bring the database to the newest schema (`alembic upgrade head`); a no-op when it is.

    Safe to call from several processes at once: the upgrade runs in one transaction under a
    lock (PostgreSQL advisory lock; SQLite `BEGIN IMMEDIATE`).

    Args:
        engine_or_url: an engine (kept open) or a URL (an engine is made and disposed of).
    """
    engine = engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url)
    try:
        with engine.begin() as conn:
            _lock_for_migration(conn)
            before = MigrationContext.configure(conn).get_current_revision()
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            after = MigrationContext.configure(conn).get_current_revision()
        if before != after:
            log.info("database schema upgraded from %s to %s", before, after)
    finally:
        if engine is not engine_or_url:
            engine.dispose()


def schema_version(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None for a database never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
