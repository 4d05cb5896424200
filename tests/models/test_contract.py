"""The contract every model passes (STYLE.md #6): fits a tiny log, finite scores for
known and unknown users, padding never recommended, seen items kept out by
``top_k``, identical scores after save -> load, batch equals single, and a
clear error for a catalog it was not trained on."""

from __future__ import annotations

import numpy as np
import pytest

from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.data.vocab import Vocabulary
from primetime.eval.validation import ndcg_at_10
from primetime.lifecycle import build_model
from primetime.models import MODELS, get_model_class
from primetime.models.base import FitOptions, top_k
from primetime.registry import ModelRegistry
from primetime.types import UserContext

FAST = {
    "bpr": {"iterations": 30, "fold_in_steps": 100},
    "mf": {"epochs": 5},
    "ncf": {"epochs": 3, "gmf_dim": 8, "mlp_dim": 8, "hidden": 16, "blocks": 1},
    "ncf-implicit": {"epochs": 2, "gmf_dim": 8, "mlp_dim": 8, "hidden": 16, "blocks": 1},
    "als": {"iterations": 5},
    "sasrec": {"epochs": 2, "dim": 16, "heads": 2, "layers": 1, "ffn": 32, "eval_every": 1},
    "temporal": {"epochs": 2, "dim": 16, "heads": 2, "layers": 1, "ffn": 32, "eval_every": 1},
    "gru4rec": {"epochs": 2, "dim": 16, "eval_every": 1},
    "gnn": {"epochs": 2, "dim": 16, "eval_every": 1},
    "contrastive": {"epochs": 2, "dim": 8, "hidden": 16, "batch_size": 64, "eval_every": 1},
    "multimodal": {"epochs": 2, "dim": 16, "heads": 2, "layers": 1, "ffn": 32, "eval_every": 1},
    "ensemble": {"members": "itemknn,als,popularity", "member_settings": "als.iterations=5"},
    "maml": {"epochs": 2, "dim": 16, "eval_every": 1},
}

VALIDATE = FitOptions(validation=ndcg_at_10)  # early stopping on valid NDCG@10


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request, planted):
    split = leave_one_out(planted.interactions)
    model = build_model(request.param, FAST.get(request.param))
    report = model.fit(
        split.train,
        valid=split.valid,
        side=SideData.of(planted),  # catalog, knowledge graph, users, item texts
        options=VALIDATE,
    )
    return model, split, report


def test_side_data_reaches_fit(planted):
    side = SideData.of(planted)
    assert side.catalog is not None and side.kg is not None and side.users is not None
    assert side.item_texts is not None and side.item_texts[0] == ""
    assert side.item_texts[1].startswith("Title 0") and "Drama" in side.item_texts[1]
    assert side.describe()["kg_triples"] == 80


def test_fit_report(fitted):
    _, _, report = fitted
    assert report.seconds >= 0


def test_scores_shape_finite_and_padding(fitted):
    model, split, _ = fitted
    ctx = split.train.contexts()[:5]
    s = model.score(ctx)
    assert s.shape == (5, split.items.size)
    assert s.dtype == np.float32
    assert np.all(s[:, 0] == -np.inf), "padding column must be -inf"
    assert np.isfinite(s[:, 1:]).all()


def test_unknown_user_and_empty_history(fitted):
    model, split, _ = fitted
    ctx = [UserContext.anonymous([1, 2, 3]), UserContext.anonymous([])]
    s = model.score(ctx)
    assert np.isfinite(s[:, 1:]).all()


def test_seen_items_kept_out(fitted):
    model, split, _ = fitted
    ctx = split.train.contexts()[:8]
    items, _ = top_k(model.score(ctx), 5, exclude=[c.history for c in ctx])
    for c, row in zip(ctx, items, strict=True):
        assert not set(row.tolist()) & set(c.history.tolist())
        assert 0 not in row


def test_batch_equals_single(fitted):
    model, split, _ = fitted
    ctx = split.train.contexts()[:6]
    batch = model.score(ctx)
    single = np.vstack([model.score([c]) for c in ctx])
    np.testing.assert_allclose(batch, single, rtol=1e-5, atol=1e-5)


def _save(model, directory):
    """``model.save``; a model with members (the ensemble) is saved the one way it can
    be: registered, its members first, in a registry under ``directory``."""
    if not model.member_models():
        return model.save(directory), lambda: get_model_class(model.name).load(directory)
    registry = ModelRegistry(directory.parent / f"{directory.name}-registry")
    mv = registry.register(model)
    return mv.path, lambda: registry.load(mv.name, mv.version)


def test_save_load_identical(fitted, tmp_path):
    model, split, _ = fitted
    _, load = _save(model, tmp_path / model.name)
    loaded = load()
    ctx = split.train.contexts()[:10] + [UserContext.anonymous([3, 4])]
    np.testing.assert_array_equal(model.score(ctx), loaded.score(ctx))
    assert loaded.config == model.config


def test_history_beyond_catalog_rejected(fitted):
    model, split, _ = fitted
    with pytest.raises((ValueError, IndexError)):
        model.score([UserContext.anonymous([split.items.size + 5])])


def test_fit_rejects_other_catalog(planted):
    split = leave_one_out(planted.interactions)
    import polars as pl

    from primetime.data.catalog import Catalog

    other = Catalog.from_frame(pl.DataFrame({"item_id": ["x", "y"]}))
    with pytest.raises(ValueError, match="different catalog"):
        build_model("popularity").fit(split.train, side=SideData.build(catalog=other))


def test_load_wrong_model_name(fitted, tmp_path):
    model, _, _ = fitted
    path, _ = _save(model, tmp_path / "m")
    other = "popularity" if model.name != "popularity" else "itemknn"
    with pytest.raises(ValueError, match="holds a"):
        get_model_class(other).load(path)


def test_unknown_option_named():
    with pytest.raises(ValueError, match="no option"):
        build_model("als", {"factorz": 3})
    with pytest.raises(ValueError, match="unknown model"):
        get_model_class("nope")


def test_vocab_roundtrip():
    v = Vocabulary(["a", "b"], name="item")
    assert v.index("b") == 2 and v.id(1) == "a" and v.size == 3
    with pytest.raises(KeyError, match="unknown item id"):
        v.index("zz")
