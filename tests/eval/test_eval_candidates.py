"""Ranking among a candidate set (EVALUATION.md Task C): every non-candidate item is
left out of the ranking, the top-K lists, the export and Coverage.

The tiny log of conftest.py, leave-one-out: test targets u1 -> m5, u2 -> m6,
u4 -> m3. Candidates {m3, m5, m6, m8} here.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from primetime.data.splits import Split
from primetime.eval.protocol import (
    EvalSet,
    candidates_label,
    evaluate,
    evaluate_sampled,
    is_ranking,
    protocol_title,
)
from primetime.eval.report import Report, make_stamp

CAND = ["m3", "m5", "m6", "m8"]


@pytest.fixture
def cand_split(split: Split) -> Split:
    idx = split.items.indices(CAND)
    return Split(split.train, split.valid, split.test, "cold", candidates={"test": idx})


def test_evalset_carries_candidates(cand_split: Split) -> None:
    es = EvalSet.for_test(cand_split)
    np.testing.assert_array_equal(es.candidates, np.sort(cand_split.items.indices(CAND)))
    assert es.n_candidates == 4
    assert EvalSet.for_valid(cand_split).candidates is None  # no valid candidates given


def test_non_candidate_scored_highest_does_not_cost_rank(cand_split: Split, fakes) -> None:
    items = cand_split.items
    V = items.size
    m1, m2, m7 = items.indices(["m1", "m2", "m7"])

    def row(ctx) -> np.ndarray:
        s = np.zeros(V, dtype=np.float32)
        s[[m1, m2, m7]] = 100.0  # non-candidates (and m1, m2 history for some users)
        s[items.indices(["m5", "m6", "m3"])] = 10.0  # every user's target, ties broken
        s[items.index("m8")] = 1.0
        return s

    model = fakes.TableModel("noncand", V, row)
    res = evaluate(model, EvalSet.for_test(cand_split), ks=(1, 5))
    # each target competes only with the other candidates not in the user's history:
    # m5, m6, m3 tie at 10 (pessimistic rank <= 3); the three non-candidates at 100
    # would have pushed every target to rank >= 4 under full ranking
    sp = cand_split
    full = evaluate(model, EvalSet.for_test(Split(sp.train, sp.valid, sp.test, "loo")), ks=(1, 5))
    assert np.all(res.ranks <= 3)
    assert np.all(full.ranks > res.ranks)
    assert res.protocol == candidates_label(4) and res.label == "noncand"
    assert res.notes["candidates"] == 4
    listed = set(res.topk[res.topk > 0].tolist())
    assert listed <= set(items.indices(CAND).tolist())
    assert res.summary()["Coverage@5"] == pytest.approx(1.0)  # all 4 candidates listed


def test_candidate_target_first_gets_rank_one(cand_split: Split, fakes) -> None:
    items = cand_split.items
    V = items.size
    target = {1: items.index("m5"), 2: items.index("m6"), 4: items.index("m3")}

    def row(ctx) -> np.ndarray:
        s = np.linspace(0, 1, V).astype(np.float32)
        s[items.index("m7")] = 50.0  # a non-candidate above everything
        s[target[ctx.user_idx]] = 5.0
        return s

    res = evaluate(fakes.TableModel("t", V, row), EvalSet.for_test(cand_split), ks=(1, 10))
    assert res.summary()["HR@1"] == 1.0 and res.summary()["NDCG@10"] == 1.0


def test_target_outside_candidates_is_a_miss(split: Split, fakes) -> None:
    idx = split.items.indices(["m5", "m8"])  # u2's m6 and u4's m3 are not candidates
    sp = Split(split.train, split.valid, split.test, "c", candidates={"test": idx})
    res = evaluate(fakes.ConstantModel(split.items.size), EvalSet.for_test(sp), ks=(10,))
    assert res.notes["unrankable_targets"] == 2


def test_export_holds_only_candidates(cand_split: Split, fakes, tmp_path) -> None:
    V = cand_split.items.size
    res = evaluate(fakes.HashModel(V), EvalSet.for_test(cand_split), ks=(5,))
    df = pl.read_csv(res.export_topk(tmp_path / "t.tsv"), separator="\t")
    assert set(df["item_id"].cast(pl.Utf8)) <= set(CAND)


def test_report_labels_the_protocol(cand_split: Split, fakes) -> None:
    V = cand_split.items.size
    es = EvalSet.for_test(cand_split)
    results = [evaluate(fakes.HashModel(V, name=n), es, ks=(5, 10)) for n in ("a", "b")]
    rep = Report(results=results, stamp=make_stamp(dataset="tiny", task="C", protocol="cold"))
    md = rep.to_markdown()
    assert "ranked among 4 candidate titles only on test" in md
    assert "candidate titles only (the titles held out of train" in md
    assert rep.to_dict()["models"].keys() == {"a", "b"}  # the primary section
    assert is_ranking("candidates-4") and not is_ranking("sampled-100")
    assert protocol_title("full") == "full ranking"


def test_sampled_refuses_a_candidate_set(cand_split: Split, fakes) -> None:
    with pytest.raises(ValueError, match="candidates"):
        evaluate_sampled(fakes.ConstantModel(cand_split.items.size), EvalSet.for_test(cand_split))


def test_bad_candidates_rejected(split: Split) -> None:
    with pytest.raises(ValueError, match="candidates must be"):
        EvalSet.from_parts(split.train, split.test, "x", candidates=np.array([0, 1]))
