"""Promoting a model, on SQLite and PostgreSQL: the registry on disk decides, the database
keeps the history (`service.promotion.promote`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from primetime.registry import META_FILE, ModelRegistry
from primetime.service.promotion import promote
from primetime.service.store import EventStore


def fake_registry(root: Path, versions: dict[str, int]) -> ModelRegistry:
    """A registry whose versions are bare `meta.json` files (enough to list and promote)."""
    for name, n in versions.items():
        for i in range(1, n + 1):
            folder = root / name / f"v{i}"
            folder.mkdir(parents=True)
            meta = {"name": name, "version": f"v{i}", "created_at": "2026-12-01T00:00:00+00:00"}
            (folder / META_FILE).write_text(json.dumps(meta))
    return ModelRegistry(root)


def test_promote_writes_the_registry_and_the_history(store: EventStore, tmp_path: Path) -> None:
    reg = fake_registry(tmp_path / "registry", {"sasrec": 2, "als": 1})

    mv, row = promote(reg, store, "sasrec", "v1", actor="ann", note="first")
    assert mv.promoted and reg.promoted("sasrec").version == "v1"  # type: ignore[union-attr]
    assert row is not None and (row.key, row.previous_version, row.actor, row.note) == (
        "sasrec:v1",
        None,
        "ann",
        "first",
    )
    _, row2 = promote(reg, store, "sasrec", 2)
    assert row2 is not None and (row2.version, row2.previous_version, row2.actor) == (
        "v2",
        "v1",
        None,
    )
    assert reg.promoted("sasrec").version == "v2"  # type: ignore[union-attr]

    # Promoting the promoted version again changes nothing and writes no row.
    assert promote(reg, store, "sasrec", "v2", actor="bob")[1] is None
    assert [p.version for p in store.promotions("sasrec")] == ["v1", "v2"]

    # Unknown or malformed: nothing written anywhere.
    with pytest.raises(KeyError, match="v7"):
        promote(reg, store, "sasrec", "v7")
    with pytest.raises(KeyError, match="nope"):
        promote(reg, store, "nope", "v1")
    with pytest.raises(ValueError, match="version"):
        promote(reg, store, "sasrec", "latest")
    assert reg.promoted("sasrec").version == "v2"  # type: ignore[union-attr]
    assert len(store.promotions()) == 2
    assert reg.promoted("als") is None  # other names untouched
