"""Impressions: the items of each recommendation response, as shown, for attribution."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from primetime.service.db import ITEM_ID_MAX, SLUG_MAX, Impression
from primetime.service.store.base import StoreBase
from primetime.service.store.errors import NotFound
from primetime.service.store.records import ImpressionRecord
from primetime.service.store.validate import (
    _check_id,
    _check_limit,
    _check_str,
    _check_ts,
    _str_list,
)

log = logging.getLogger(__name__)

_IMPRESSION_COLUMNS = (
    "user_id",
    "request_id",
    "model_version",
    "item_id",
    "experiment_id",
    "arm",
    "position",
    "ts",
)


def _impression_record(row: Impression) -> ImpressionRecord:
    return ImpressionRecord(
        id=row.id,
        user_id=row.user_id,
        item_id=row.item_id,
        request_id=row.request_id,
        model_version=row.model_version,
        experiment_id=row.experiment_id,
        arm=row.arm,
        position=row.position,
        ts=row.ts,
    )


class ImpressionsMixin(StoreBase):
    """Impressions (the `impressions` table)."""

    @functools.cached_property
    def _insert_impressions_sql(self) -> str:
        """The driver-level INSERT of `log_impression_batches` (positional parameters)."""
        mark = "?" if self._engine.dialect.name == "sqlite" else "%s"  # sqlite3 / psycopg
        return (
            f"INSERT INTO {Impression.__tablename__} ({', '.join(_IMPRESSION_COLUMNS)}) "
            f"VALUES ({', '.join([mark] * len(_IMPRESSION_COLUMNS))})"
        )

    def log_impressions(
        self,
        user_id: int,
        request_id: str,
        items: Sequence[str],
        *,
        model_version: str,
        experiment_id: str | None = None,
        arm: str | None = None,
        ts: float | None = None,
    ) -> list[int]:
        """Record the items of one recommendation response, `position` = index in `items`.

        Args:
            user_id: who saw them.
            request_id: id of the response; events carrying it are attributed to it.
            items: item ids in display order.
            model_version: what produced the list.
            experiment_id: the experiment the user is in, given together with `arm`.
            arm: the user's arm in `experiment_id`.
            ts: unix seconds; None = now.

        Returns:
            The impression ids, in the order of `items`.

        Raises:
            NotFound: no such user or experiment.
        """
        _check_id("user_id", user_id)
        _check_str("request_id", request_id, SLUG_MAX)
        item_list = _str_list("items", items, ITEM_ID_MAX)
        _check_str("model_version", model_version, 256)
        if (experiment_id is None) != (arm is None):
            raise ValueError("experiment_id, arm: give both or neither")
        when = time.time() if ts is None else _check_ts("ts", ts)
        if not item_list:
            return []
        rows = [
            {
                "user_id": user_id,
                "item_id": item,
                "request_id": request_id,
                "model_version": model_version,
                "experiment_id": experiment_id,
                "arm": arm,
                "position": pos,
                "ts": when,
            }
            for pos, item in enumerate(item_list)
        ]
        try:
            with self._sessions.begin() as s:
                stmt = insert(Impression).returning(Impression.id, sort_by_parameter_order=True)
                return list(s.scalars(stmt, rows))
        except IntegrityError as err:
            self._raise_if_no_user(user_id, err)
            if experiment_id is not None and self.experiment(experiment_id) is None:
                raise NotFound(f"experiment_id: no experiment {experiment_id!r}") from err
            raise

    def log_impression_batches(self, batches: Sequence[Mapping[str, Any]]) -> int:
        """Record several responses' impressions in one transaction (the service's buffer).

        Args:
            batches: mappings with the keyword arguments of :meth:`log_impressions`
                (``user_id``, ``request_id``, ``items``, ``model_version``, optional
                ``experiment_id``, ``arm``, ``ts``).

        Returns:
            Rows written. When the batch insert fails (a user or experiment deleted
            meanwhile), each response is written alone and the bad ones are skipped
            with a warning, so one stale entry never loses the others.
        """
        rows: list[tuple[Any, ...]] = []
        for b in batches:
            when = time.time() if b.get("ts") is None else _check_ts("ts", b["ts"])
            head = (b["user_id"], b["request_id"], b["model_version"])
            tail = (b.get("experiment_id"), b.get("arm"))
            for pos, item in enumerate(_str_list("items", b["items"], ITEM_ID_MAX)):
                rows.append((*head, item, *tail, pos, when))
        if not rows:
            return 0
        try:
            # Tuples straight to the driver's executemany: no per-row work in Python while
            # this background writer holds the GIL that requests are waiting for.
            with self._engine.begin() as conn:
                conn.exec_driver_sql(self._insert_impressions_sql, rows)
            return len(rows)
        except IntegrityError:
            written = 0
            for b in batches:
                try:
                    written += len(self.log_impressions(**b))
                except (NotFound, ValueError, IntegrityError) as err:
                    log.warning("impressions of %s dropped: %s", b.get("request_id"), err)
            return written

    def impressions(
        self, user_id: int, *, request_id: str | None = None, limit: int | None = None
    ) -> list[ImpressionRecord]:
        """A user's impressions in logging order, optionally of one response; `limit` keeps the
        latest ones."""
        stmt = select(Impression).where(Impression.user_id == user_id)
        if request_id is not None:
            stmt = stmt.where(Impression.request_id == request_id)
        stmt = stmt.order_by(Impression.id.desc())
        if limit is not None:
            stmt = stmt.limit(_check_limit(limit))
        with self._sessions() as s:
            return [_impression_record(r) for r in s.scalars(stmt)][::-1]
