"""FAISS candidate retrieval: exact top-10 on a planted table, -inf outside the
candidates, exact scores inside, and the models that expose an item table."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from primetime.data.splits import leave_one_out
from primetime.lifecycle import build_model
from primetime.models.base import FitOptions
from primetime.models.retrieval import ItemIndex, RetrievalConfig, recall_at
from primetime.types import UserContext

pytest.importorskip("faiss")


def planted_table(n: int = 3_000, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n + 1, dim) item table (row 0 padding, zero) in 30 planted clusters, and 40
    queries each near one cluster: a known exact top-10 per query."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, dim)).astype(np.float32)
    table = np.zeros((n + 1, dim), dtype=np.float32)
    table[1:] = centres[rng.integers(0, 30, n)] + 0.3 * rng.standard_normal((n, dim))
    queries = centres[rng.integers(0, 30, 40)] + 0.1 * rng.standard_normal((40, dim))
    return table, queries.astype(np.float32)


def exact_top(queries: np.ndarray, table: np.ndarray, k: int) -> np.ndarray:
    s = queries @ table.T  # (B, V)
    s[:, 0] = -np.inf
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize(
    "config",
    [
        RetrievalConfig(kind="flat"),
        RetrievalConfig(kind="hnsw", hnsw_m=32, ef_construction=200, ef_search=400),
        RetrievalConfig(kind="ivf", nlist=16, nprobe=16),  # every cell probed: exact
    ],
    ids=lambda c: c.kind,
)
def test_index_finds_the_exact_top10_of_a_planted_table(config):
    table, queries = planted_table()
    found = ItemIndex(table, config).search(queries, 10)
    assert found.shape == (40, 10)
    assert (found >= 1).all(), "ids are item indices (FAISS id + 1), padding never returned"
    assert recall_at(exact_top(queries, table, 10), found) == 1.0


def test_a_coarse_ivf_index_misses_some():
    """The recall check can fail: probing 1 of 64 cells loses part of the exact top-10."""
    table, queries = planted_table()
    rng = np.random.default_rng(1)
    queries = rng.standard_normal(queries.shape).astype(np.float32)  # between clusters
    found = ItemIndex(table, RetrievalConfig(kind="ivf", nlist=64, nprobe=1)).search(queries, 10)
    assert recall_at(exact_top(queries, table, 10), found) < 1.0


@pytest.fixture(scope="module")
def split(planted):
    return leave_one_out(planted.interactions)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("als", {"factors": 8, "iterations": 5}),
        ("bpr", {"factors": 8, "iterations": 20, "fold_in_steps": 50}),
        ("mf", {"factors": 8, "epochs": 3}),
        ("sasrec", {"dim": 16, "heads": 1, "layers": 1, "ffn": 32, "epochs": 2, "max_len": 8}),
        ("gru4rec", {"dim": 16, "epochs": 2, "max_len": 8}),
    ],
)
def test_retrieval_scores_exactly_inside_the_candidates_and_minus_inf_outside(
    split, name, overrides
):
    model = build_model(name, overrides)
    # FitOptions.retrieval builds the index right after the fit
    flat = RetrievalConfig(kind="flat", candidates=5, common=0)
    model.fit(split.train, options=FitOptions(retrieval=flat))
    assert model.retrieval is not None
    contexts = [c for c in split.train.contexts()[:12] if len(c.history)]
    got = model.score(contexts)
    model.enable_retrieval(None)
    exact = model.score(contexts)
    assert got.shape == exact.shape
    for row, ctx in enumerate(contexts):
        kept = np.isfinite(got[row])
        n_seen = len(np.unique(ctx.history))  # each row: candidates + its own history
        assert kept.sum() == min(5 + n_seen, exact.shape[1] - 1), "candidates + history length"
        assert not kept[0], "padding stays -inf"
        np.testing.assert_allclose(got[row, kept], exact[row, kept], rtol=1e-4, atol=1e-4)
        # an exact index keeps the exact best items (ties aside)
        best = np.sort(exact[row, 1:])[::-1][: kept.sum()]
        np.testing.assert_allclose(np.sort(got[row, kept])[::-1], best, rtol=1e-4, atol=1e-4)


def test_score_items_stays_exact_and_non_dot_models_decline(split, tmp_path):
    model = build_model("als", {"factors": 8, "iterations": 5})
    model.fit(split.train)
    contexts = split.train.contexts()[:4]
    items = np.array([0, 3, 7, 11])
    exact = model.score_items(contexts, items)
    assert model.enable_retrieval(RetrievalConfig(kind="hnsw", candidates=1))
    np.testing.assert_allclose(model.score_items(contexts, items), exact, rtol=1e-5, atol=1e-6)
    # a loaded model can have it switched on again
    model.enable_retrieval(None)
    model.save(tmp_path / "als")
    again = type(model).load(tmp_path / "als")
    assert again.enable_retrieval(RetrievalConfig(kind="flat", candidates=3))
    # below min_items: stays exact
    assert not again.enable_retrieval(RetrievalConfig(min_items=10_000))
    assert again.retrieval is None
    knn = build_model("itemknn", {})
    knn.fit(split.train)
    assert not knn.enable_retrieval(RetrievalConfig()), "itemknn has no item table"


def test_empty_history_scores_every_item_the_same(split):
    model = build_model("sasrec", {"dim": 16, "heads": 1, "layers": 1, "ffn": 32, "epochs": 1})
    model.fit(split.train, options=FitOptions(retrieval=RetrievalConfig(kind="flat", candidates=3)))
    s = model.score([UserContext.anonymous(np.zeros(0, dtype=np.int64))])[0]
    assert np.isneginf(s[0]) and (s[1:] == 0).all(), "as exact scoring gives"


def test_search_settings_change_without_a_rebuild():
    table, queries = planted_table()
    rng = np.random.default_rng(1)
    queries = rng.standard_normal(queries.shape).astype(np.float32)
    index = ItemIndex(table, RetrievalConfig(kind="ivf", nlist=64, nprobe=1))
    exact = exact_top(queries, table, 10)
    coarse = recall_at(exact, index.search(queries, 10))
    index.set_search(nprobe=64)  # every cell
    assert index.config.nprobe == 64
    assert recall_at(exact, index.search(queries, 10)) == 1.0 > coarse


def test_zero_rows_are_left_out_and_ids_still_map_to_items():
    """Titles a model never learned (zero vectors) are not indexed; the others keep
    their item_idx."""
    table, queries = planted_table()
    table[1::3] = 0.0  # a third of the titles unlearned
    index = ItemIndex(table, RetrievalConfig(kind="hnsw", ef_search=400))
    assert len(index.ids) == len(table) - 1 - len(range(1, len(table), 3))
    found = index.search(queries, 10)
    assert not (found % 3 == 1).any(), "no zero row returned"
    assert recall_at(exact_top(queries, table, 10), found) == 1.0


def shared_taste(n: int = 6_000, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A table of random item vectors and 60 queries that are one shared vector plus a
    small personal part (as a SASRec fit for one epoch on the xl-catalog world: 98% of
    its score variance was shared, README "Benchmarks"): everyone's exact top-100 comes
    from the same few hundred items, which are not near each other."""
    rng = np.random.default_rng(seed)
    table = np.zeros((n + 1, dim), dtype=np.float32)
    table[1:] = rng.standard_normal((n, dim)) / np.sqrt(dim)
    shared = rng.standard_normal(dim)
    shared *= 7.6 / np.linalg.norm(shared)
    personal = rng.standard_normal((60, dim)) * 0.8 / np.sqrt(dim)
    return table, (shared + personal).astype(np.float32)


def test_common_items_cover_a_shared_taste_the_index_misses():
    table, queries = shared_taste()
    cfg = RetrievalConfig(kind="ivf", nlist=64, nprobe=4, common=0)
    exact = exact_top(queries, table, 100)
    need = np.full(len(queries), 100)
    plain = ItemIndex(table, cfg).candidates(queries, need)
    anchor = queries.mean(axis=0)  # the mean user vector
    index = ItemIndex(table, dataclasses.replace(cfg, common=300), anchor=anchor)
    assert len(index.common) == 300 and (index.common >= 1).all()
    both = index.candidates(queries, need)  # (B, 100 + 300)
    assert both.shape == (len(queries), 400)
    assert (both[:, 100:] == index.common).all()

    def top100(cands: np.ndarray) -> np.ndarray:
        s = np.full((len(queries), len(table)), -np.inf, dtype=np.float32)
        for r, row in enumerate(cands):
            row = row[row > 0]
            s[r, row] = queries[r] @ table[row].T
        return np.argsort(-s, axis=1, kind="stable")[:, :100]

    without, with_common = recall_at(exact, top100(plain)), recall_at(exact, top100(both))
    assert without < 0.9, "the index alone misses much of a shared taste's top-100"
    assert with_common >= 0.99 > without


def test_the_model_adds_its_common_items_to_every_user(split):
    model = build_model("als", {"factors": 8, "iterations": 5})
    model.fit(split.train)
    assert model.enable_retrieval(
        RetrievalConfig(kind="ivf", nlist=2, nprobe=1, candidates=1, common=4)
    )
    index = model.retrieval
    assert index is not None and len(index.common) == 4
    contexts = [c for c in split.train.contexts()[:6] if len(c.history)]
    got = model.score(contexts)
    exact = model.score_items(contexts, index.common)  # exact scores of those items
    np.testing.assert_allclose(got[:, index.common], exact, rtol=1e-5, atol=1e-5)
    # the common items are the best for the mean user vector of the probe histories
    mean = model._mean_user_vector(index.config)
    prior = model.item_vectors() @ mean
    prior[0] = -np.inf
    assert set(index.common) == set(np.argsort(-prior)[:4])
