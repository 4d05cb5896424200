"""Item texts as vectors: the offline encoder, unit vectors, and the on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from primetime.data import text


def test_encodes_offline_caches_and_leaves_empty_texts_zero(tmp_path, monkeypatch) -> None:
    texts = ["", "Star Wars (1977). Genres: Action, Sci-Fi", "Toy Story (1995). Genres: Animation"]
    vecs = text.encode_texts(texts, cache_dir=tmp_path)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert not vecs[0].any()
    assert np.allclose(np.linalg.norm(vecs[1:], axis=1), 1.0, atol=1e-5)
    # a second call encodes nothing: the encoder is not even loaded
    monkeypatch.setattr(text, "_load", lambda *a: pytest.fail("re-encoded a cached text"))
    again = text.encode_texts(list(reversed(texts)), cache_dir=tmp_path)
    assert np.array_equal(again[::-1], vecs)


def test_a_missing_local_encoder_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        text.encode_texts(["a"], encoder=str(tmp_path / "no-such-model"), cache_dir=tmp_path)
