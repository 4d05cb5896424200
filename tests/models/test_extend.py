"""``Recommender.extend_items``: titles added after training are scored by the content and
graph models at once (no retrain), the old titles' scores do not move, a new title like a
user's history ranks high, and a grown model saves and loads; a model that cannot grow
says so and stays as it was."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from primetime.data.catalog import Catalog
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.vocab import Vocabulary
from primetime.lifecycle import build_model
from primetime.models import get_model_class
from primetime.types import UserContext

NEW = ["i5", "i25"]  # a Drama title (first half) and a Comedy/Family one (second half)
CONFIGS: dict[str, dict[str, object]] = {
    "multimodal": {
        "epochs": 30,
        "dim": 16,
        "meta_dim": 16,
        "heads": 2,
        "layers": 1,
        "ffn": 32,
        "dropout": 0.0,
        "lr": 5e-3,
        "warmup_epochs": 0.0,
    },
    "contrastive": {"epochs": 30, "dim": 16, "hidden": 32, "batch_size": 64, "lr": 5e-3},
    "genre-profile": {},
    "sasrec": {"dim": 16, "heads": 2, "layers": 1, "ffn": 32, "epochs": 30, "dropout": 0.0},
    "gnn": {"dim": 16, "epochs": 12, "batch_size": 16, "lr": 1e-2, "eval_every": 12},
}
TEXT_DIM = 24


def half(item_id: str) -> int:
    return int(int(item_id[1:]) >= 20)


def texts(ids: list[str]) -> np.ndarray:
    """One direction per half plus noise, row 0 zero (as real descriptions tell a genre)."""
    rng = np.random.default_rng(1)
    halves = rng.normal(size=(2, TEXT_DIM))
    vec = np.zeros((len(ids) + 1, TEXT_DIM), dtype=np.float32)
    for k, iid in enumerate(ids):
        v = halves[half(iid)] + 0.5 * np.random.default_rng(int(iid[1:])).normal(size=TEXT_DIM)
        vec[k + 1] = v / np.linalg.norm(v)
    return vec


@dataclasses.dataclass
class Setup:
    train: Interactions
    old: SideData
    grown: SideData


@pytest.fixture(scope="module")
def setup(planted) -> Setup:
    """The planted log without the NEW titles (catalog and events), and the grown side
    data with them appended at the end of the vocabulary."""
    frame = planted.catalog.frame
    old_cat = Catalog.from_frame(frame.filter(~pl.col("item_id").is_in(NEW)))
    grown_cat = Catalog.from_frame(
        pl.concat([old_cat.frame, frame.filter(pl.col("item_id").is_in(NEW))])
    )
    log = planted.interactions.to_polars(ids=True).filter(~pl.col("item_id").is_in(NEW))
    log = log.with_columns(item_idx=pl.Series(old_cat.items.indices(log["item_id"])))
    train = Interactions.from_polars(log, users=planted.interactions.users, items=old_cat.items)
    old = dataclasses.replace(
        SideData.build(catalog=old_cat, kg=planted.kg),
        text_vectors=texts(old_cat.items.ids()),
    )
    grown = dataclasses.replace(
        SideData.build(catalog=grown_cat, kg=planted.kg),
        text_vectors=texts(grown_cat.items.ids()),
    )
    return Setup(train, old, grown)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def grown_model(request, setup: Setup):
    model = build_model(request.param, CONFIGS[request.param])
    model.fit(setup.train, side=setup.old)
    history = {
        h: [setup.old.items.index(f"i{i}") for i in range(8 + 20 * h, 14 + 20 * h)] for h in (0, 1)
    }
    before = {h: model.score([UserContext.anonymous(history[h])])[0] for h in (0, 1)}
    assert model.extend_items(setup.grown.items, setup.grown) is True
    return model, history, before


def test_scores_grow_and_old_titles_keep_theirs(grown_model, setup: Setup) -> None:
    model, history, before = grown_model
    n_old = setup.old.items.size
    assert model.items == setup.grown.items
    for h in (0, 1):
        after = model.score([UserContext.anonymous(history[h])])[0]
        assert after.shape == (setup.grown.items.size,)
        np.testing.assert_allclose(after[:n_old], before[h], rtol=1e-5, atol=1e-5)
        assert np.isfinite(after[n_old:]).all(), model.name


def test_a_new_title_like_the_history_ranks_high(grown_model, setup: Setup) -> None:
    model, history, _ = grown_model
    items = setup.grown.items
    for h, new in ((0, "i5"), (1, "i25")):
        scores = model.score([UserContext.anonymous(history[h])])[0]
        scores[history[h]] = -np.inf
        other = NEW[1 - NEW.index(new)]
        assert scores[items.index(new)] > scores[items.index(other)], (model.name, h)
        rank = int((scores > scores[items.index(new)]).sum())
        assert rank < 15, (model.name, new, rank)  # of 34 unseen titles


def test_a_grown_model_saves_and_loads(grown_model, setup: Setup, tmp_path) -> None:
    model, history, _ = grown_model
    model.save(tmp_path / "m")
    back = get_model_class(model.name).load(tmp_path / "m")
    assert back.items == setup.grown.items
    ctx = [UserContext.anonymous(history[0]), UserContext.anonymous(history[1])]
    np.testing.assert_allclose(back.score(ctx), model.score(ctx), rtol=1e-5, atol=1e-5)


def test_a_model_that_cannot_grow_says_so(setup: Setup) -> None:
    model = build_model("itemknn")
    model.fit(setup.train, side=setup.old)
    assert model.extend_items(setup.grown.items, setup.grown) is False
    assert model.items == setup.old.items
    with pytest.raises(ValueError, match="ids first"):
        model.extend_items(Vocabulary(setup.grown.items.ids()[::-1]), setup.grown)


def test_multimodal_without_the_graph_grows_from_the_catalog_alone(setup, monkeypatch):
    """``use_kg=false`` (the ablation) at growth as at fit: the added titles' texts are
    the catalog's alone, encoded anew, and no cast or crew comes from the graph."""
    asked: list[list[str]] = []

    def fake_encoder(texts, **_):
        asked.append(list(texts))
        out = np.zeros((len(texts), 8), dtype=np.float32)
        for k, t in enumerate(texts):
            if t:
                seed = int.from_bytes(t.encode()[:8].ljust(8, b"\0"), "little") + len(t)
                v = np.random.default_rng(seed).normal(size=8)
                out[k] = v / np.linalg.norm(v)
        return out

    monkeypatch.setattr("primetime.data.text.encode_texts", fake_encoder)
    model = build_model("multimodal", {**CONFIGS["multimodal"], "epochs": 2, "use_kg": False})
    model.fit(setup.train, side=setup.old)
    assert model.extend_items(setup.grown.items, setup.grown) is True
    assert asked == [
        list(SideData.build(catalog=setup.old.catalog).item_texts),
        list(SideData.build(catalog=setup.grown.catalog).item_texts),
    ]
    enc = model.net.item_encoder
    assert enc.text.shape == (setup.grown.items.size, 8)
    assert not enc.tok_crew.any()  # the planted graph's directors, not read
    scores = model.score([UserContext.anonymous([1, 2, 3])])[0]
    assert np.isfinite(scores[setup.old.items.size :]).all()
