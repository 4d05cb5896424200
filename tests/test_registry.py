"""The versioned model registry: register, promote, reload, errors, atomic promotion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from primetime.data import Dataset
from primetime.models.itemknn import ItemKNNConfig, ItemKNNRecommender
from primetime.models.popularity import PopularityRecommender
from primetime.registry import META_FILE, PROMOTED_FILE, ModelRegistry, default_root


@pytest.fixture(scope="module")
def knns(planted: Dataset) -> tuple[ItemKNNRecommender, ItemKNNRecommender]:
    a = ItemKNNRecommender(ItemKNNConfig(neighbours=5))
    a.fit(planted.interactions)
    b = ItemKNNRecommender(ItemKNNConfig(neighbours=20))
    b.fit(planted.interactions)
    return a, b


def test_register_promote_and_reload(
    tmp_path: Path, planted: Dataset, knns: tuple[ItemKNNRecommender, ItemKNNRecommender]
) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    a, b = knns
    v1 = reg.register(
        a, metrics={"NDCG@10": 0.1}, dataset=planted, notes="first", train_seconds=1.5
    )
    v2 = reg.register(b, metrics={"NDCG@10": 0.2}, dataset="planted")
    assert (v1.version, v2.version) == ("v1", "v2") and v2.number == 2
    assert v1.path == tmp_path / "reg" / "itemknn" / "v1"
    meta = json.loads((v1.path / META_FILE).read_text())
    assert meta["name"] == "itemknn" and meta["model"] == "itemknn"
    assert meta["dataset"]["name"] == "planted" and len(meta["dataset"]["fingerprint"]) == 64
    assert meta["config"]["neighbours"] == 5 and meta["train_seconds"] == 1.5
    assert meta["metrics"] == {"NDCG@10": 0.1} and meta["notes"] == "first"
    assert "created_at" in meta and "commit" in meta
    assert [v.version for v in reg.versions("itemknn")] == ["v1", "v2"]
    assert reg.names() == ["itemknn"]

    # nothing promoted: load gives the newest
    assert reg.promoted("itemknn") is None
    contexts = planted.interactions.contexts()[:5]
    np.testing.assert_array_equal(reg.load("itemknn").score(contexts), b.score(contexts))

    promoted = reg.promote("itemknn", "v1")
    assert promoted.promoted and promoted.version == "v1"
    assert (tmp_path / "reg" / "itemknn" / PROMOTED_FILE).read_text() == "v1\n"
    current = reg.promoted("itemknn")
    assert current is not None and current.version == "v1" and current.metrics == {"NDCG@10": 0.1}
    assert [v.promoted for v in reg.versions()] == [True, False]
    np.testing.assert_array_equal(reg.load("itemknn").score(contexts), a.score(contexts))
    np.testing.assert_array_equal(reg.load("itemknn", 2).score(contexts), b.score(contexts))
    assert reg.latest("itemknn").version == "v2"
    reg.promote("itemknn", 2)
    assert reg.promoted("itemknn").version == "v2"  # type: ignore[union-attr]


def test_unknown_names_and_versions(
    tmp_path: Path, knns: tuple[ItemKNNRecommender, ItemKNNRecommender]
) -> None:
    reg = ModelRegistry(tmp_path)
    assert reg.names() == [] and reg.versions() == []
    with pytest.raises(KeyError, match="no model 'itemknn'.*registered: none"):
        reg.load("itemknn")
    reg.register(knns[0])
    with pytest.raises(KeyError, match="no model 'sasrec'.*registered: itemknn"):
        reg.promote("sasrec", "v1")
    with pytest.raises(KeyError, match="no version 'v7'; versions: v1"):
        reg.promote("itemknn", "v7")
    with pytest.raises(KeyError, match="no version"):
        reg.load("itemknn", 3)
    with pytest.raises(ValueError, match="version must look like"):
        reg.promote("itemknn", "latest")
    with pytest.raises(ValueError, match="start at 1"):
        reg.get("itemknn", 0)
    with pytest.raises(ValueError, match="not fitted"):
        reg.register(PopularityRecommender())
    with pytest.raises(ValueError, match="registry name"):
        reg.register(knns[0], name="../escape")


def test_versions_are_monotonic_and_incomplete_ones_invisible(
    tmp_path: Path, knns: tuple[ItemKNNRecommender, ItemKNNRecommender]
) -> None:
    reg = ModelRegistry(tmp_path)
    reg.register(knns[0])
    (tmp_path / "itemknn" / "v2").mkdir()  # a registration that crashed half-way
    assert [v.version for v in reg.versions("itemknn")] == ["v1"]
    v = reg.register(knns[1], name="itemknn")
    assert v.version == "v3"  # never reuses a number
    other = reg.register(knns[1], name="itemknn-wide")
    assert other.version == "v1" and reg.names() == ["itemknn", "itemknn-wide"]
    assert isinstance(reg.load("itemknn-wide"), ItemKNNRecommender)


def test_promotion_is_atomic(
    tmp_path: Path,
    knns: tuple[ItemKNNRecommender, ItemKNNRecommender],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = ModelRegistry(tmp_path)
    reg.register(knns[0])
    reg.register(knns[1])
    reg.promote("itemknn", "v1")

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("primetime.registry.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        reg.promote("itemknn", "v2")
    monkeypatch.undo()
    folder = tmp_path / "itemknn"
    assert (folder / PROMOTED_FILE).read_text() == "v1\n"  # old pointer intact
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # temp file removed
    assert reg.promoted("itemknn").version == "v1"  # type: ignore[union-attr]


def test_default_root_follows_primetime_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIMETIME_HOME", str(tmp_path))
    assert default_root() == tmp_path / "models"
    assert ModelRegistry().root == tmp_path / "models"


# ------------------------------------------------------------ one store: migration, adoption
def test_old_layouts_are_migrated_into_one_store(
    tmp_path: Path, knns: tuple[ItemKNNRecommender, ItemKNNRecommender]
) -> None:
    """A folder written by the old `train` (models/<name>/bundle.json) and the old separate
    registry (models/registry/<name>/vN + PROMOTED) both land in models/<name>/vN."""
    a, b = knns
    root = tmp_path / "models"
    a.save(root / "itemknn", meta={"dataset": "planted", "split": "loo", "fit_seconds": 0.5})
    old = ModelRegistry(root / "registry", migrate=False)
    old.register(a, metrics={"NDCG@10": 0.1}, dataset="planted")
    old.register(b, metrics={"NDCG@10": 0.2}, dataset="planted")
    old.promote("itemknn", "v2")

    reg = ModelRegistry(root)
    assert not (root / "registry").exists() and not (root / "itemknn" / "bundle.json").exists()
    versions = reg.versions("itemknn")
    assert [v.version for v in versions] == ["v1", "v2", "v3"]
    assert versions[0].meta["data"] == "planted" and versions[0].meta["split"] == "loo"
    assert "migrated" in versions[0].meta["notes"]
    promoted = reg.promoted("itemknn")
    assert promoted is not None and promoted.version == "v3"  # the old v2, still promoted
    assert promoted.metrics == {"NDCG@10": 0.2} and promoted.meta["version"] == "v3"
    assert reg.load("itemknn").config.neighbours == 20
    assert ModelRegistry(root).versions("itemknn") == versions  # a second open moves nothing
    assert reg.names() == ["itemknn"]


def test_a_bundle_made_elsewhere_is_adopted(
    tmp_path: Path, knns: tuple[ItemKNNRecommender, ItemKNNRecommender], planted: Dataset
) -> None:
    a, _ = knns
    elsewhere = a.save(tmp_path / "laptop" / "knn", meta={"dataset": "planted"})
    reg = ModelRegistry(tmp_path / "models")
    mv = reg.adopt(elsewhere, name="knn-laptop")
    assert (mv.name, mv.version, mv.promoted) == ("knn-laptop", "v1", False)
    assert mv.meta["adopted_from"] == str(elsewhere) and mv.meta["model"] == "itemknn"
    ctx = planted.interactions.contexts()[:3]
    assert np.array_equal(reg.load("knn-laptop").score(ctx), a.score(ctx))
    assert reg.load_key("knn-laptop:v1").config.neighbours == a.config.neighbours
    with pytest.raises(FileNotFoundError, match="not a model bundle"):
        reg.adopt(tmp_path / "laptop")
    with pytest.raises(ValueError, match="registry name"):
        reg.adopt(elsewhere, name="registry")
    with pytest.raises(ValueError, match="registry key"):
        reg.load_key("knn-laptop")


def test_bundles_keep_named_vocabularies_and_member_keys(
    tmp_path: Path, knns: tuple[ItemKNNRecommender, ItemKNNRecommender]
) -> None:
    """What an ensemble (members by registry key) and a graph model (entity and relation
    vocabularies) need from a bundle."""
    from primetime.data.vocab import Vocabulary

    a, _ = knns
    a.vocabs = {"entity": Vocabulary(["person:1", "genre:drama"], name="entity")}
    a.members = {"sequential": "sasrec:v3"}
    try:
        d = a.save(tmp_path / "b")
        back = ItemKNNRecommender.load(d)
        assert back.vocabs["entity"].ids() == ["person:1", "genre:drama"]
        assert back.members == {"sequential": "sasrec:v3"}
        (d / "vocab-entity.txt").write_text("person:1\n")
        with pytest.raises(ValueError, match="vocab-entity.txt does not match"):
            ItemKNNRecommender.load(d)
        a.members = {"sequential": "sasrec"}
        with pytest.raises(ValueError, match="registry key"):
            a.save(tmp_path / "c")
    finally:
        a.vocabs, a.members = {}, {}
