"""The store's connection: engine, sessions, open/close/ping; the aggregates' mixins build on it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from primetime.service.db import make_engine
from primetime.service.db import migrate as run_migrations
from primetime.service.store.errors import NotFound

if TYPE_CHECKING:
    from primetime.service.store.records import ExperimentRecord, UserRecord


class StoreBase:
    """Engine and session factory shared by the aggregate mixins of `EventStore`.

    Args:
        engine: from `db.make_engine`, already migrated (see `open`).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(
        cls, url: str, *, migrate: bool = True, statement_timeout: float | None = None
    ) -> Self:
        """Connect to `url` (see `db.make_engine`, which takes `statement_timeout`), upgrading
        the schema first when `migrate`."""
        engine = make_engine(url, statement_timeout=statement_timeout)
        if migrate:
            run_migrations(engine)
        return cls(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def ping(self) -> bool:
        """True when the database answers a trivial query (for health checks); never raises."""
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # any failure means "not healthy"; the caller reports it
            return False
        return True

    def close(self) -> None:
        """Close the pooled connections (the engine opens new ones if used again)."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _raise_if_no_user(self, user_id: int, err: Exception) -> None:
        if self.user(user_id) is None:
            raise NotFound(f"user_id: no user {user_id}") from err

    if TYPE_CHECKING:  # provided by the mixins (users, experiments) of the composed store

        def user(self, user_id: int) -> UserRecord | None:
            raise NotImplementedError

        def experiment(self, experiment_id: str) -> ExperimentRecord | None:
            raise NotImplementedError

        def session_active(
            self, session_id: str, user_id: int, *, now: float | None = None
        ) -> bool:
            raise NotImplementedError
