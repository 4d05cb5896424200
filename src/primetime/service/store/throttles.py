"""Failed sign-ins per key, shared by every worker (the policy is `service.throttle`)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from primetime.service.db import THROTTLE_KEY_MAX, LoginThrottle
from primetime.service.store.base import StoreBase
from primetime.service.store.validate import _check_str


class ThrottlesMixin(StoreBase):
    """Counters of failed sign-ins (the `login_throttles` table)."""

    def login_blocked_until(self, keys: Iterable[str]) -> float:
        """The latest `blocked_until` among `keys` (unix seconds; 0.0 when none is known)."""
        keys = list(keys)
        if not keys:
            return 0.0
        stmt = select(func.max(LoginThrottle.blocked_until)).where(LoginThrottle.key.in_(keys))
        with self._engine.connect() as conn:
            return float(conn.execute(stmt).scalar() or 0.0)

    def add_login_failure(self, key: str, *, now: float, forget_before: float) -> int:
        """Count one failed sign-in under `key` (atomically, whichever worker counts it);
        returns the failures counted, starting again from 1 when the last one was before
        `forget_before`."""
        _check_str("key", key, THROTTLE_KEY_MAX)
        table = LoginThrottle.__table__.c
        insert = pg_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        new = insert(LoginThrottle).values(
            key=key, failures=1, last_failure_at=now, blocked_until=0.0
        )
        stmt = new.on_conflict_do_update(
            index_elements=[table.key],
            set_={
                "failures": case(
                    (table.last_failure_at < forget_before, 1), else_=table.failures + 1
                ),
                "last_failure_at": now,
            },
        ).returning(table.failures)
        with self._sessions.begin() as s:
            return int(s.execute(stmt).scalar_one())

    def block_login(self, key: str, until: float) -> None:
        """Refuse sign-ins under `key` until `until` (never shortens a longer block)."""
        stmt = (
            update(LoginThrottle)
            .where(LoginThrottle.key == key, LoginThrottle.blocked_until < until)
            .values(blocked_until=until)
        )
        with self._sessions.begin() as s:
            s.execute(stmt)

    def clear_login_failures(self, key: str) -> None:
        """Forget the failures under `key` (a successful sign-in of that account)."""
        with self._sessions.begin() as s:
            s.execute(delete(LoginThrottle).where(LoginThrottle.key == key))
