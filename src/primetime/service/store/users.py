"""Accounts: create, look up by id or name, onboarding picks."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError

from primetime.service.db import ITEM_ID_MAX, USERNAME_MAX, User
from primetime.service.store.base import StoreBase
from primetime.service.store.errors import NotFound, UsernameTaken
from primetime.service.store.records import UserRecord
from primetime.service.store.validate import _check_demographics, _check_str, _json, _str_list

_USER = select(*User.__table__.c).where(User.id == bindparam("user_id"))


def _user_record(row: Any) -> UserRecord:
    """From a `User` or a row of its columns."""
    return UserRecord(
        id=row.id,
        username=row.username,
        password_hash=row.password_hash,
        is_admin=row.is_admin,
        created_at=row.created_at,
        onboarding_genres=tuple(row.onboarding_genres),
        onboarding_titles=tuple(row.onboarding_titles),
        demographics=dict(row.demographics) if row.demographics is not None else None,
    )


class UsersMixin(StoreBase):
    """Accounts (the `users` table)."""

    def create_user(
        self,
        username: str,
        password_hash: str,
        *,
        is_admin: bool = False,
        onboarding_genres: Iterable[str] = (),
        onboarding_titles: Iterable[str] = (),
        demographics: Mapping[str, Any] | None = None,
    ) -> UserRecord:
        """Create an account.

        Args:
            username: 1–64 characters, stored as given; unique regardless of case
                (`Ann` cannot join `ann`: the database's index on `lower(username)`).
            password_hash: an already hashed password (never the password).
            is_admin: may use the admin pages.
            onboarding_genres: genres picked at sign-up.
            onboarding_titles: item ids picked at sign-up.
            demographics: optional `age`, `gender`, `occupation`.

        Raises:
            UsernameTaken: the username exists (in any case).
            ValueError: naming the bad argument.
        """
        _check_str("username", username, USERNAME_MAX)
        _check_str("password_hash", password_hash, 255)
        row = User(
            username=username,
            password_hash=password_hash,
            is_admin=bool(is_admin),
            created_at=time.time(),
            onboarding_genres=_str_list("onboarding_genres", onboarding_genres, 64),
            onboarding_titles=_str_list("onboarding_titles", onboarding_titles, ITEM_ID_MAX),
            demographics=_json("demographics", _check_demographics(demographics)),
        )
        try:
            with self._sessions.begin() as s:
                s.add(row)
                s.flush()
                return _user_record(row)
        except IntegrityError as err:
            raise UsernameTaken(f"username: {username!r} is taken") from err

    def user(self, user_id: int) -> UserRecord | None:
        """The user with this id, or None (a prebuilt select: read on many requests)."""
        with self._engine.connect() as conn:
            row = conn.execute(_USER, {"user_id": user_id}).first()
        return _user_record(row) if row is not None else None

    def user_by_name(self, username: str) -> UserRecord | None:
        """The user with this username in any case (`ANN` finds `ann`), or None."""
        stmt = select(User).where(func.lower(User.username) == func.lower(username))
        with self._sessions() as s:
            row = s.scalar(stmt)
            return _user_record(row) if row is not None else None

    def set_onboarding(
        self, user_id: int, genres: Iterable[str], titles: Iterable[str]
    ) -> UserRecord:
        """Replace the user's onboarding picks (genres, and item ids of titles).

        Raises:
            NotFound: no such user.
        """
        genre_list = _str_list("genres", genres, 64)
        title_list = _str_list("titles", titles, ITEM_ID_MAX)
        with self._sessions.begin() as s:
            row = s.get(User, user_id)
            if row is None:
                raise NotFound(f"user_id: no user {user_id}")
            row.onboarding_genres = genre_list
            row.onboarding_titles = title_list
            s.flush()
            return _user_record(row)
