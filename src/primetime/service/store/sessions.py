"""Sessions: one row per sign-in, checked on every authenticated request, revoked on sign-out,
on "sign out everywhere" and when the password changes."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from functools import cached_property
from typing import Any, cast

from sqlalchemy import Engine, Update, delete, select, update
from sqlalchemy.exc import DBAPIError

from primetime.service.db import USER_AGENT_MAX, User, UserSession
from primetime.service.store.base import StoreBase
from primetime.service.store.errors import NotFound
from primetime.service.store.validate import _check_id

# The hot path (every authenticated request): one primary-key read on the driver's own
# cursor. Through a SQLAlchemy Connection and Result the same read cost 37 us on SQLite,
# on the DBAPI cursor 10 us (pool checkout with its pre-ping included).
_SESSION_SQL = "SELECT user_id, expires_at, revoked_at FROM sessions WHERE id = {}"


class _SessionReader:
    """One connection of its own, in autocommit, for the session read on PostgreSQL.

    Through the pool the read was three round trips to the server (the pool's pre-ping, the
    query, the rollback when the connection goes back), the whole of a worker's event loop
    waiting on them under load; here it is one. A connection that fails is dropped (and
    the error raised, a 503); one that was idle when the server restarted fails once and
    the read is retried on a new one. The lock serialises the callers of one process (the
    event loop and the web pages' threads): each holds it for one round trip.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._conn: Any = None  # a detached pooled connection, or None

    def row(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            for retry in (False, True):
                fresh = self._conn is None
                if fresh:
                    raw = self._engine.raw_connection()  # pre-pinged, statement timeout set
                    raw.driver_connection.autocommit = True  # type: ignore[union-attr]
                    raw.detach()  # ours now: the pool opens another for the others
                    self._conn = raw
                try:
                    cursor = self._conn.cursor()
                    try:
                        cursor.execute(sql, params)
                        return cast("tuple[Any, ...] | None", cursor.fetchone())
                    finally:
                        cursor.close()
                except Exception:
                    self._drop()
                    if fresh or retry:
                        raise
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()  # closes it, without a rollback on a lost connection

    def close(self) -> None:
        with self._lock:
            self._drop()


def new_session_id() -> str:
    """A random session id (22 URL-safe characters, 128 bits)."""
    return secrets.token_urlsafe(16)


class SessionsMixin(StoreBase):
    """Sign-in sessions (the `sessions` table)."""

    @cached_property
    def _session_sql(self) -> str:
        marker = "?" if self._engine.dialect.paramstyle == "qmark" else "%s"
        return _SESSION_SQL.format(marker)

    def create_session(
        self,
        user_id: int,
        *,
        ttl: float,
        user_agent: str | None = None,
        revoke_others: bool = False,
        password_hash: str | None = None,
    ) -> str:
        """Start a session of `user_id` that lasts `ttl` seconds; returns its id.

        In the same transaction, sessions of the user that ended (expired, or revoked longer
        than `ttl` ago) are deleted; with `revoke_others` every other open session is revoked,
        and with `password_hash` the user's password is replaced (a password change).

        Raises:
            NotFound: no such user.
            ValueError: a bad argument.
        """
        _check_id("user_id", user_id)
        if not ttl > 0:
            raise ValueError(f"ttl: expected seconds > 0, got {ttl!r}")
        now = time.time()
        sid = new_session_id()
        agent = user_agent[:USER_AGENT_MAX] if user_agent else None
        with self._sessions.begin() as s:
            if s.get(User, user_id, with_for_update=True) is None:
                raise NotFound(f"user_id: no user {user_id}")
            if password_hash is not None:
                s.execute(
                    update(User).where(User.id == user_id).values(password_hash=password_hash)
                )
            if revoke_others:
                s.execute(self._revoke_stmt(user_id, now))
            s.execute(
                delete(UserSession).where(
                    UserSession.user_id == user_id,
                    (UserSession.expires_at <= now) | (UserSession.revoked_at <= now - ttl),
                )
            )
            s.add(
                UserSession(
                    id=sid, user_id=user_id, created_at=now, expires_at=now + ttl, user_agent=agent
                )
            )
        return sid

    @staticmethod
    def _revoke_stmt(user_id: int, now: float) -> Update:
        return (
            update(UserSession)
            .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    def session_active(self, session_id: str, user_id: int, *, now: float | None = None) -> bool:
        """True while session `session_id` of `user_id` is neither revoked nor expired.

        One primary-key read on a pooled DBAPI connection: it runs on every authenticated
        request."""
        dbapi_error = self._engine.dialect.loaded_dbapi.Error
        try:
            row = self._session_row(session_id)
        except dbapi_error as e:
            # A DBAPI connection raises the driver's own errors (on connect, too, when the
            # pool's pre-ping finds the server gone): wrap them as SQLAlchemy would, so a
            # lost server is an OperationalError answered 503 like every other outage.
            raise DBAPIError.instance(self._session_sql, (session_id,), e, dbapi_error) from e
        if row is None or row[0] != user_id or row[2] is not None:
            return False
        return bool(row[1] > (time.time() if now is None else now))

    def _session_row(self, session_id: str) -> tuple[Any, ...] | None:
        if self._engine.dialect.name == "postgresql":
            return self._session_reader.row(self._session_sql, (session_id,))
        return self._pooled_session_row(session_id)

    def _pooled_session_row(self, session_id: str) -> tuple[Any, ...] | None:
        """The read on a pooled connection (SQLite: no round trips to save)."""
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(self._session_sql, (session_id,))
                return cursor.fetchone()
            finally:
                cursor.close()
        except Exception:
            raw.invalidate()  # a broken connection is not pooled again
            raise
        finally:
            raw.close()  # back to the pool, which rolls the read back

    @cached_property
    def _session_reader(self) -> _SessionReader:
        return _SessionReader(self._engine)

    def close(self) -> None:
        if "_session_reader" in self.__dict__:
            self._session_reader.close()
        super().close()

    def revoke_session(self, session_id: str) -> bool:
        """End one session (sign-out); False when it was not open."""
        with self._sessions.begin() as s:
            result = s.execute(
                update(UserSession)
                .where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def revoke_sessions(self, user_id: int) -> int:
        """End every open session of the user ("sign out everywhere"); how many were open."""
        with self._sessions.begin() as s:
            result = s.execute(self._revoke_stmt(user_id, time.time()))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def open_sessions(self, user_id: int) -> int:
        """How many sessions of the user are open (neither revoked nor expired)."""
        stmt = select(UserSession.id).where(
            UserSession.user_id == user_id,
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > time.time(),
        )
        with self._sessions() as s:
            return len(s.scalars(stmt).all())
