"""ONNX export of the sequence models: the float32 graph scores as torch does (at
batch sizes and history lengths other than the export example's), the INT8 graph
loads and ranks close to torch, and a file for another catalog is refused."""

from __future__ import annotations

import numpy as np
import pytest

from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.data.vocab import Vocabulary
from primetime.lifecycle import build_model
from primetime.models.onnx import export_onnx
from primetime.types import UserContext

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TINY = {"dim": 32, "heads": 2, "layers": 2, "ffn": 64, "max_len": 12, "epochs": 8, "lr": 0.01}


@pytest.fixture(scope="module")
def trained(planted):
    split = leave_one_out(planted.interactions)
    model = build_model("sasrec", {**TINY, "dropout": 0.0, "patience": 0, "device": "cpu"})
    model.fit(split.train, side=SideData.build(catalog=planted.catalog))
    assert model.net.genre_proj is not None, "side features are part of what is exported"
    contexts = split.train.contexts()
    # longer than max_len, a single title, and an empty history
    rng = np.random.default_rng(0)
    contexts.append(UserContext.anonymous(rng.integers(1, planted.items.size, 30)))
    contexts.append(UserContext.anonymous(np.array([3])))
    contexts.append(UserContext.anonymous(np.zeros(0, dtype=np.int64)))
    return model, contexts


def top10(scores: np.ndarray, contexts: list[UserContext]) -> np.ndarray:
    s = scores.copy()
    for row, c in enumerate(contexts):
        s[row, c.history] = -np.inf
    return np.argsort(-s, axis=1, kind="stable")[:, :10]


def test_float32_export_scores_equal_torch(trained, tmp_path):
    model, contexts = trained
    model.use_onnx(None)
    expected = model.score(contexts)
    path = export_onnx(model, tmp_path / "sasrec.onnx")
    assert path == tmp_path / "sasrec.onnx" and path.is_file()
    model.use_onnx(path, threads=1)
    try:
        got = model.score(contexts)  # one batch of every length
        single = np.concatenate([model.score([c]) for c in contexts[:5]])  # batch of 1
    finally:
        model.use_onnx(None)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(single, expected[:5], rtol=1e-4, atol=1e-4)


def test_int8_loads_and_ranks_close_to_torch(trained, tmp_path):
    model, contexts = trained
    model.use_onnx(None)
    expected = model.score(contexts)
    path = export_onnx(model, tmp_path / "sasrec.onnx", int8=True)
    assert path.name == "sasrec.int8.onnx"
    assert path.stat().st_size < (tmp_path / "sasrec.onnx").stat().st_size
    model.use_onnx(path, threads=1)
    try:
        got = model.score(contexts)
    finally:
        model.use_onnx(None)
    assert not np.allclose(got, expected), "quantised weights change the scores a little"
    real = [i for i, c in enumerate(contexts) if len(c.history)]
    a = top10(got[real], [contexts[i] for i in real])
    b = top10(expected[real], [contexts[i] for i in real])
    overlap = np.mean([len(np.intersect1d(x, y)) / 10 for x, y in zip(a, b, strict=True)])
    assert overlap >= 0.8, f"INT8 top-10 overlap with torch {overlap:.2f}"


def test_a_file_for_another_catalog_is_refused(trained, tmp_path):
    model, _ = trained
    path = export_onnx(model, tmp_path / "sasrec.onnx")
    other = build_model("sasrec", TINY)
    other.items = Vocabulary([f"x{i}" for i in range(50)], name="item")  # 51 with padding
    with pytest.raises(ValueError, match=f"scores {model.items.size} items, the model 51"):
        other.use_onnx(path)
    assert other.onnx is None


def test_gru4rec_exports_too(planted, tmp_path):
    split = leave_one_out(planted.interactions)
    model = build_model("gru4rec", {"dim": 16, "epochs": 2, "max_len": 12})
    model.fit(split.train)
    contexts = split.train.contexts()[:8]
    expected = model.score(contexts)
    model.use_onnx(export_onnx(model, tmp_path / "gru.onnx"), threads=1)
    got = model.score(contexts)
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-4, atol=1e-4)
