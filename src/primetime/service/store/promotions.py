"""Promotion history: which version of a model was promoted when, by whom, replacing what.

The model registry on disk holds the versions and says which one is promoted now; the store
only keeps the history the registry has no place for (see `service.promotion.promote`, which
does both).
"""

from __future__ import annotations

import time

from sqlalchemy import select

from primetime.service.db import MODEL_NAME_MAX, Promotion
from primetime.service.store.base import StoreBase
from primetime.service.store.records import PromotionRecord
from primetime.service.store.validate import _check_limit, _check_str, _check_ts

NOTE_MAX = 2000
"""Longest note of a promotion."""


def _promotion_record(row: Promotion) -> PromotionRecord:
    return PromotionRecord(
        id=row.id,
        name=row.name,
        version=row.version,
        previous_version=row.previous_version,
        promoted_at=row.promoted_at,
        actor=row.actor,
        note=row.note,
    )


class PromotionsMixin(StoreBase):
    """Promotion history (the `promotions` table)."""

    def record_promotion(
        self,
        name: str,
        version: str,
        *,
        previous_version: str | None = None,
        actor: str | None = None,
        note: str | None = None,
        promoted_at: float | None = None,
    ) -> PromotionRecord:
        """Append one promotion to the history. Only the history: the registry's promotion is
        the caller's (`service.promotion.promote` does both), and nothing here checks that the
        version exists.

        Args:
            name: model name in the registry, e.g. "sasrec".
            version: the version promoted, e.g. "v3".
            previous_version: the version promoted before, None when none was.
            actor: who promoted it (a username, "admin token", …), None when unknown.
            note: free text, ≤ 2,000 characters.
            promoted_at: unix seconds; None = now.

        Raises:
            ValueError: naming the bad argument.
        """
        _check_str("name", name, MODEL_NAME_MAX)
        _check_str("version", version, MODEL_NAME_MAX)
        if previous_version is not None:
            _check_str("previous_version", previous_version, MODEL_NAME_MAX)
        if actor is not None:
            _check_str("actor", actor, MODEL_NAME_MAX)
        if note is not None and (not isinstance(note, str) or len(note) > NOTE_MAX):
            raise ValueError(f"note: expected a string of ≤ {NOTE_MAX} characters or None")
        row = Promotion(
            name=name,
            version=version,
            previous_version=previous_version,
            promoted_at=time.time()
            if promoted_at is None
            else _check_ts("promoted_at", promoted_at),
            actor=actor,
            note=note or None,
        )
        with self._sessions.begin() as s:
            s.add(row)
            s.flush()
            return _promotion_record(row)

    def promotions(
        self, name: str | None = None, *, limit: int | None = None
    ) -> list[PromotionRecord]:
        """The promotion history (of one name, or all), oldest first; `limit` keeps the latest
        ones (still oldest first)."""
        stmt = select(Promotion)
        if name is not None:
            stmt = stmt.where(Promotion.name == name)
        stmt = stmt.order_by(Promotion.promoted_at.desc(), Promotion.id.desc())
        if limit is not None:
            stmt = stmt.limit(_check_limit(limit))
        with self._sessions() as s:
            return [_promotion_record(r) for r in s.scalars(stmt)][::-1]
