"""Model versions: registered bundles and the one promoted version per name."""

from __future__ import annotations

import time
from collections.abc import Mapping
from os import PathLike
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError

from primetime.service.db import ModelVersion
from primetime.service.store.base import StoreBase
from primetime.service.store.errors import NotFound
from primetime.service.store.records import ModelVersionRecord
from primetime.service.store.validate import _check_str, _json


def _model_record(row: ModelVersion) -> ModelVersionRecord:
    return ModelVersionRecord(
        id=row.id,
        name=row.name,
        version=row.version,
        path=row.path,
        metrics=dict(row.metrics),
        created_at=row.created_at,
        promoted_at=row.promoted_at,
        is_promoted=row.is_promoted,
    )


class ModelsMixin(StoreBase):
    """Model versions (the `model_versions` table)."""

    def register_model_version(
        self, name: str, version: str, path: str | PathLike[str], metrics: Mapping[str, Any]
    ) -> ModelVersionRecord:
        """Register a trained bundle; registering the same (name, version, path) again returns
        the existing record unchanged.

        Args:
            name: model family, e.g. "sasrec".
            version: unique within `name`, e.g. a date or a hash.
            path: folder of the bundle.
            metrics: JSON-able evaluation numbers (NaN refused).

        Raises:
            ValueError: naming the argument, or (name, version) exists with another path.
        """
        _check_str("name", name, 128)
        _check_str("version", version, 128)
        path_str = _check_str("path", str(path), 4096)
        metrics_json = _json("metrics", dict(metrics))
        for attempt in range(2):
            existing = self._model_version(name, version)
            if existing is not None:
                if existing.path != path_str:
                    raise ValueError(
                        f"path: {name} {version} is registered with path {existing.path!r}, "
                        f"not {path_str!r}"
                    )
                return existing
            row = ModelVersion(
                name=name,
                version=version,
                path=path_str,
                metrics=metrics_json,
                created_at=time.time(),
                is_promoted=False,
            )
            try:
                with self._sessions.begin() as s:
                    s.add(row)
                    s.flush()
                    return _model_record(row)
            except IntegrityError:
                if attempt == 1:  # registered concurrently: the next pass returns it
                    raise
        raise AssertionError("unreachable")

    def _model_version(self, name: str, version: str) -> ModelVersionRecord | None:
        stmt = select(ModelVersion).where(
            ModelVersion.name == name, ModelVersion.version == version
        )
        with self._sessions() as s:
            row = s.scalar(stmt)
            return _model_record(row) if row is not None else None

    def model_versions(self, name: str | None = None) -> list[ModelVersionRecord]:
        """Registered versions (of one name, or all), oldest first."""
        stmt = select(ModelVersion).order_by(ModelVersion.created_at, ModelVersion.id)
        if name is not None:
            stmt = stmt.where(ModelVersion.name == name)
        with self._sessions() as s:
            return [_model_record(r) for r in s.scalars(stmt)]

    def promote(self, name: str, version: str) -> ModelVersionRecord:
        """Make `version` the one promoted version of `name` (others of that name are demoted).

        Raises:
            NotFound: (name, version) was never registered.
        """
        with self._sessions.begin() as s:
            # PostgreSQL: lock the name's rows so concurrent promotions run one after the other.
            # SQLite has no row locks; there the first UPDATE takes the database write lock.
            rows = s.scalars(
                select(ModelVersion).where(ModelVersion.name == name).with_for_update()
            ).all()
            target = next((r for r in rows if r.version == version), None)
            if target is None:
                known = sorted(r.version for r in rows)
                raise NotFound(f"model version {name!r} {version!r} is not registered ({known=})")
            now = time.time()
            s.execute(
                update(ModelVersion)
                .where(
                    ModelVersion.name == name,
                    ModelVersion.is_promoted,
                    ModelVersion.id != target.id,
                )
                .values(is_promoted=False),
                execution_options={"synchronize_session": False},
            )
            s.execute(
                update(ModelVersion)
                .where(ModelVersion.id == target.id)
                .values(
                    is_promoted=True,
                    # Promoting the promoted version again keeps its original time.
                    promoted_at=case(
                        (ModelVersion.is_promoted, ModelVersion.promoted_at), else_=now
                    ),
                ),
                execution_options={"synchronize_session": False},
            )
            s.refresh(target)
            return _model_record(target)

    def promoted(self, name: str) -> ModelVersionRecord | None:
        """The promoted version of `name`, or None."""
        stmt = select(ModelVersion).where(ModelVersion.name == name, ModelVersion.is_promoted)
        with self._sessions() as s:
            row = s.scalar(stmt)
            return _model_record(row) if row is not None else None
