"""benchmarks/bench_added_titles.py's "added after" path on a tiny world: the model is
fit on a catalog, graph and vocabulary without the cold-items split's test titles (so
its rows for them cannot be the fit-time rows the cold-items benchmark scores), then
grown by the service's ``grow_model`` to score them, on the same test events."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest

from bench_support import load_benchmark
from primetime.data import Dataset
from primetime.data.side import SideData
from primetime.lifecycle import DataSpec, Prepared, make_split
from primetime.types import UserContext

TINY = {
    "gnn": {"dim": 16, "epochs": 3, "batch_size": 16, "eval_every": 3, "head_epochs": 3},
    "contrastive": {"dim": 16, "hidden": 32, "epochs": 2, "batch_size": 64, "eval_every": 2},
}


def fake_vectors(texts, **_) -> np.ndarray:
    """(N, 8) unit vectors from a hash of each text, zero for an empty one: a stand-in
    for the sentence encoder (the test needs the text path, not its meaning)."""
    out = np.zeros((len(texts), 8), dtype=np.float32)
    for k, t in enumerate(texts):
        if t:
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).standard_normal(8)
            out[k] = v / np.linalg.norm(v)
    return out


def tiny_world() -> Prepared:
    """48 titles (even Drama, odd Comedy; four directors), 60 users in two taste groups:
    eight early titles of their genre, then two of the eight titles first watched late
    (40-47), so the cold-items split holds late titles out."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(60):
        own = [i for i in range(40) if i % 2 == u % 2]
        for step, i in enumerate(rng.choice(own, 8, replace=False)):
            rows.append((f"u{u}", f"i{i}", 4.0, 1_000 * u + step))
        late = [i for i in range(40, 48) if i % 2 == u % 2]
        for step, i in enumerate(rng.choice(late, 2, replace=False)):
            rows.append((f"u{u}", f"i{i}", 4.0, 1_000_000 + 1_000 * u + step))
    ids = [f"i{i}" for i in range(48)]
    kg = [(t, "directed_by", f"person:{i % 4}") for i, t in enumerate(ids)]
    data = Dataset.from_frames(
        "tiny-late",
        interactions=pl.DataFrame(
            rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row"
        ),
        catalog=pl.DataFrame(
            {
                "item_id": ids,
                "title": [f"Title {i}" for i in range(48)],
                "genres": [["Drama"] if i % 2 == 0 else ["Comedy"] for i in range(48)],
            }
        ),
        kg=pl.DataFrame(kg, schema=["head", "relation", "tail"], orient="row"),
        source="tests",
    )
    spec = DataSpec(data="tiny-late", split="cold-items")
    return Prepared(spec, make_split(data, "cold-items"), SideData.of(data), "tiny-late", data)


def test_added_after_leaves_the_test_titles_out_and_keeps_the_events() -> None:
    bench = load_benchmark("bench_added_titles")
    prepared = tiny_world()
    sp = prepared.split
    test_ids = set(sp.items.ids(sp.candidates_of("test")))
    after = bench.added_after(prepared)
    before = after.before
    assert test_ids and not test_ids & set(before.split.items.ids())
    assert before.side.catalog is not None and before.side.kg is not None
    assert not test_ids & set(before.side.catalog.items.ids())
    triples = before.side.kg.triples
    assert not test_ids & set(triples["head"].to_list() + triples["tail"].to_list())
    grown = after.split.items
    n_old = before.split.items.size
    assert grown.ids()[: n_old - 1] == before.split.items.ids()  # extend_items' order
    assert set(grown.ids()[n_old - 1 :]) == test_ids
    assert set(grown.ids(after.split.candidates_of("test"))) == test_ids

    def pairs(inter) -> set[tuple[str, str]]:
        frame = inter.to_polars(ids=True)
        return set(zip(frame["user_id"].to_list(), frame["item_id"].to_list(), strict=True))

    for part in ("train", "valid", "test"):  # the same events, in the grown vocabulary
        assert pairs(getattr(after.split, part)) == pairs(getattr(sp, part))
    assert pairs(before.split.train) == pairs(sp.train)


@pytest.mark.parametrize("name", sorted(TINY))
def test_the_added_titles_are_scored_by_extend_items(name, monkeypatch) -> None:
    monkeypatch.setattr("primetime.data.text.encode_texts", fake_vectors)
    bench = load_benchmark("bench_added_titles")
    after = bench.added_after(tiny_world())
    model, _ = bench._fit(name, after.before, TINY[name])
    n_old = after.before.split.items.size
    assert model.items == after.before.split.items  # the fit never saw the test titles
    ctx = [UserContext.anonymous(np.array([1, 3, 5]))]
    assert model.score(ctx).shape == (1, n_old)
    grown = bench.grow_after_fit(model, after)
    assert grown is not None, f"{name} could not grow"
    assert grown.items == after.split.items
    test = after.split.candidates_of("test")
    assert test.min() >= n_old  # appended after the fit's titles
    scores = grown.score(ctx)[0]  # (V,)
    assert np.isfinite(scores[test]).all()
    np.testing.assert_allclose(scores[1:n_old], model.score(ctx)[0][1:], rtol=1e-5, atol=1e-6)
    result = bench._score(grown, after.split, after.grown.catalog)
    assert result.n_users == len(np.unique(after.split.test.user_idx))
