"""Metrics against hand-computed values, including edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from primetime.eval import metrics as M
from primetime.ranking import pessimistic_ranks, topk_lists

INF = np.inf
NAN = np.nan
L2, L3, L4, L5, L11 = (math.log2(x) for x in (2, 3, 4, 5, 11))


# ------------------------------------------------------------- rank metrics
def test_hit_rate_one_relevant_item() -> None:
    # rank exactly K is a hit, K + 1 is not, +inf (unrankable) never is
    ranks = np.array([1, 10, 11, INF])
    assert M.hit_rate(ranks, 10).tolist() == [1, 1, 0, 0]
    assert M.hit_rate(ranks, 1).tolist() == [1, 0, 0, 0]
    assert M.hit_rate(ranks, 11).tolist() == [1, 1, 1, 0]


def test_ndcg_one_relevant_item() -> None:
    ranks = np.array([1, 3, 10, 11, INF])
    np.testing.assert_allclose(M.ndcg(ranks, 10), [1.0, 1 / L4, 1 / L11, 0.0, 0.0])
    assert M.ndcg(np.array([3.0]), 3)[0] == pytest.approx(0.5)
    assert M.ndcg(np.array([3.0]), 2)[0] == 0.0


def test_mrr_zero_beyond_k() -> None:
    ranks = np.array([1, 4, 10, 11, INF])
    np.testing.assert_allclose(M.mrr(ranks, 10), [1.0, 0.25, 0.1, 0.0, 0.0])


def test_several_relevant_items_padded() -> None:
    ranks = np.array(
        [
            [1, 3, NAN],  # DCG 1 + 1/2, IDCG 1 + 1/log2(3)
            [1, 2, 3],  # more relevant than K=2: ideal is two hits at 1, 2
            [INF, 2, NAN],  # one unrankable item still counts as relevant
            [5, NAN, NAN],
        ]
    )
    idcg2 = 1 + 1 / L3
    np.testing.assert_allclose(
        M.ndcg(ranks, 3),
        [1.5 / idcg2, (1 + 1 / L3 + 1 / L4) / (idcg2 + 1 / L4), (1 / L3) / idcg2, 0],
    )
    np.testing.assert_allclose(M.ndcg(ranks, 2)[1], 1.0)
    assert M.hit_rate(ranks, 1).tolist() == [1, 1, 0, 0]
    assert M.hit_rate(ranks, 2).tolist() == [1, 1, 1, 0]
    np.testing.assert_allclose(M.mrr(ranks, 5), [1, 1, 0.5, 0.2])


def test_layouts_agree() -> None:
    rng = np.random.default_rng(0)
    counts = np.array([1, 3, 2, 1])
    flat = rng.integers(1, 30, counts.sum()).astype(float)
    flat[2] = INF
    off = np.concatenate([[0], np.cumsum(counts)])
    padded = np.full((4, 3), NAN)
    for u in range(4):
        padded[u, : counts[u]] = flat[off[u] : off[u + 1]]
    for k in (1, 5, 20):
        for fn in (M.hit_rate, M.ndcg, M.mrr):
            np.testing.assert_array_equal(fn(flat, k, off), fn(padded, k))
    single = np.array([2.0, 7.0, INF])
    for fn in (M.hit_rate, M.ndcg, M.mrr):
        np.testing.assert_array_equal(fn(single, 5), fn(single[:, None], 5))
        np.testing.assert_array_equal(fn(single, 5), fn(single, 5, np.arange(4)))


def test_user_without_relevant_items_and_no_users() -> None:
    flat = np.array([2.0, 1.0])
    off = np.array([0, 1, 1, 2])  # the middle user has no relevant item
    assert M.hit_rate(flat, 5, off).tolist() == [1, 0, 1]
    np.testing.assert_allclose(M.ndcg(flat, 5, off), [1 / L3, 0, 1])
    assert M.mrr(flat, 5, off).tolist() == [0.5, 0, 1]
    assert M.ndcg(np.zeros(0), 10).shape == (0,)
    assert M.hit_rate(np.zeros((0, 2)), 10).shape == (0,)


def test_rank_metric_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="1-based"):
        M.hit_rate(np.array([0.0]), 5)
    with pytest.raises(ValueError, match="k must be"):
        M.ndcg(np.array([1.0]), 0)
    with pytest.raises(ValueError, match="offsets"):
        M.mrr(np.array([1.0, 2.0]), 5, np.array([0, 1]))


# ------------------------------------------------------------ list metrics
def test_coverage() -> None:
    topk = np.array([[1, 2, 0], [2, 3, 0]])
    assert M.coverage(topk, 2, n_items=5) == pytest.approx(3 / 5)
    assert M.coverage(topk, 1, n_items=5) == pytest.approx(2 / 5)
    assert M.coverage(topk, 3, n_items=5) == pytest.approx(3 / 5)  # padding 0 is no item
    assert M.coverage(np.zeros((0, 3), dtype=int), 3, n_items=5) == 0.0
    with pytest.raises(ValueError, match="fewer than k"):
        M.coverage(topk, 4, n_items=5)


def _genres() -> np.ndarray:
    # columns A, B, C; item 1 {A, B}, item 2 {B}, item 3 {C}, item 4 {} (no genre)
    g = np.zeros((5, 3))
    g[1, [0, 1]] = 1
    g[2, 1] = 1
    g[3, 2] = 1
    return g


def test_diversity_hand_computed() -> None:
    topk = np.array(
        [
            [1, 2, 3],  # pairs: 1-J({A,B},{B}) = 1/2, ({A,B},{C}) = 1, ({B},{C}) = 1
            [1, 4, 2],  # item 4 has no genre: only the pair (1, 2) counts
            [4, 0, 0],  # no pair with genres on both sides: undefined
            [2, 2, 0],  # same genre set: dissimilarity 0
        ]
    )
    d = M.diversity(topk, 3, _genres())
    np.testing.assert_allclose(d[:2], [2.5 / 3, 0.5])
    assert np.isnan(d[2])
    assert d[3] == 0.0
    np.testing.assert_allclose(M.diversity(topk, 2, _genres())[:2], [0.5, NAN])


def test_diversity_chunking_does_not_change_values() -> None:
    rng = np.random.default_rng(1)
    g = (rng.random((30, 4)) < 0.4).astype(float)
    g[0] = 0
    topk = rng.integers(0, 30, (50, 6))
    np.testing.assert_array_equal(M.diversity(topk, 6, g, chunk=7), M.diversity(topk, 6, g))


def test_novelty_with_laplace_smoothing() -> None:
    counts = np.array([0, 3, 1, 0])  # items 1..3; N = 4, 3 items -> p = (c + 1) / 7
    info = M.self_information(counts)
    np.testing.assert_allclose(info[1:], [math.log2(7 / 4), math.log2(7 / 2), math.log2(7)])
    assert np.isnan(info[0])
    topk = np.array([[1, 3], [3, 0], [0, 0]])
    n = M.novelty(topk, 2, counts)
    np.testing.assert_allclose(n[:2], [(math.log2(7 / 4) + math.log2(7)) / 2, math.log2(7)])
    assert np.isnan(n[2])  # empty list
    assert np.isfinite(M.novelty(np.array([[3]]), 1, counts)).all()  # unseen item: finite


def test_rating_errors() -> None:
    pred, true = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 5.0])
    assert M.mae(pred, true) == pytest.approx(1.0)
    assert M.rmse(pred, true) == pytest.approx(math.sqrt(5 / 3))
    assert M.absolute_errors(pred, true).tolist() == [1, 0, 2]
    assert M.squared_errors(pred, true).tolist() == [1, 0, 4]
    assert math.isnan(M.mae(np.zeros(0), np.zeros(0)))
    with pytest.raises(ValueError, match="equal length"):
        M.rmse(pred, true[:2])


# ---------------------------------------------------------------- ranking
def test_pessimistic_ranks_hand_computed() -> None:
    s = np.array([[-INF, 0.5, 0.9, 0.5, 0.1, -INF]], dtype=np.float32)
    # item 1 (0.5): one strictly higher (0.9) + one other equal (item 3) -> rank 3
    r = pessimistic_ranks(s, np.array([[1, 2, 4, 5, 0]]))
    assert r[0, :4].tolist() == [3, 1, 4, INF]  # -inf (excluded) target -> +inf
    assert np.isnan(r[0, 4])  # padding
    # two relevant items tied with each other: both pessimistic
    assert pessimistic_ranks(s, np.array([[1, 3]])).tolist() == [[3, 3]]


def test_constant_scores_get_no_credit() -> None:
    s = np.zeros((2, 6), dtype=np.float32)
    s[:, 0] = -np.inf
    s[1, [2, 3]] = -np.inf  # two excluded items
    r = pessimistic_ranks(s, np.array([[1], [4]]))
    assert r[:, 0].tolist() == [5, 3]  # last among the rankable items
    assert M.hit_rate(r[:, 0], 2).tolist() == [0, 0]


def test_sort_path_equals_compare_path() -> None:
    rng = np.random.default_rng(2)
    s = rng.integers(0, 5, (6, 40)).astype(np.float32)  # many ties
    s[:, 0] = -np.inf
    s[rng.random(s.shape) < 0.1] = -np.inf
    rel = rng.integers(1, 40, (6, 12))
    rel[0, 5:] = 0
    r = pessimistic_ranks(s, rel)  # 12 > 8 relevant: sort + searchsorted path
    brute = np.full(rel.shape, NAN)
    for b in range(6):
        for j in range(12):
            if rel[b, j]:
                t = s[b, rel[b, j]]
                brute[b, j] = INF if t == -INF else (s[b] >= t).sum()
    np.testing.assert_array_equal(r, brute)
    np.testing.assert_array_equal(
        np.concatenate([pessimistic_ranks(s, rel[:, j : j + 1]) for j in range(12)], axis=1), r
    )


def test_topk_lists_tie_break_padding_and_batch_invariance() -> None:
    s = np.array(
        [
            [-INF, 1, 3, 3, 2, 3],  # three items tie at 3: lowest idx first
            [-INF, -INF, 5, -INF, -INF, -INF],  # one rankable item: padded
        ],
        dtype=np.float32,
    )
    items, vals = topk_lists(s, 3)
    assert items.tolist() == [[2, 3, 5], [2, 0, 0]]
    assert vals[1, 1] == -INF
    assert topk_lists(s, 2)[0].tolist() == [[2, 3], [2, 0]]  # tie at the boundary
    assert topk_lists(s, 9)[0].shape == (2, 9)  # k beyond the catalog: padded
    rng = np.random.default_rng(3)
    big = rng.integers(0, 3, (20, 50)).astype(np.float32)
    together = topk_lists(big, 7)[0]
    alone = np.concatenate([topk_lists(big[i : i + 1], 7)[0] for i in range(20)])
    np.testing.assert_array_equal(together, alone)
    for i in range(20):  # the exact order: score desc, then idx asc
        order = sorted(range(50), key=lambda j: (-big[i, j], j))[:7]
        assert together[i].tolist() == order
