"""Promoting a model version: in the registry on disk, with a history row in the database.

The model registry (`primetime.registry.ModelRegistry`) is the one store of model versions
and of which one is promoted (its `PROMOTED` files); the database keeps only the history of
promotions (`EventStore.record_promotion` / `promotions`). `promote` does both, in that order:
the registry decides, the history records what it decided.
"""

from __future__ import annotations

import logging

from primetime.registry import ModelRegistry, ModelVersion
from primetime.service.store import EventStore, PromotionRecord

log = logging.getLogger(__name__)


def promote(
    registry: ModelRegistry,
    store: EventStore,
    name: str,
    version: str | int,
    *,
    actor: str | None = None,
    note: str | None = None,
) -> tuple[ModelVersion, PromotionRecord | None]:
    """Promote `version` of `name` in the registry and append the promotion to the history.

    Promoting the version that is already promoted changes nothing and writes no history row.
    The registry is written first: if the database then fails, the version is promoted (the
    registry is the truth) and the error propagates, so the caller knows the history lacks it.

    Args:
        registry: where the versions live.
        store: where the history is kept.
        name: model name in the registry.
        version: ``"v2"`` or ``2``.
        actor: who asked (a username, "admin token", …); None when unknown.
        note: free text kept with the history row.

    Returns:
        The promoted version, and its history row (None when it was promoted already).

    Raises:
        KeyError: unknown name or version (nothing written).
        ValueError: a malformed version (nothing written); a bad `actor` or `note` (the
            store's checks: the registry is promoted by then, only the row is missing).
    """
    target = registry.get(name, version)  # unknown or malformed: raises before any write
    before = registry.promoted(name)
    if before is not None and before.version == target.version:
        return target, None
    previous = before.version if before is not None else None
    promoted = registry.promote(name, target.version)
    row = store.record_promotion(
        name, promoted.version, previous_version=previous, actor=actor, note=note
    )
    log.info("promoted %s %s (was %s) by %s", name, promoted.version, previous, actor or "?")
    return promoted, row
