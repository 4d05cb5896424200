"""The foundation's promises on real MovieLens-100k (EVALUATION.md protocol).

Expected neighbourhood from the issue: popularity NDCG@10 about 0.03-0.045;
ItemKNN, BPR and ALS 0.06 or more and clearly above popularity; biased MF
MAE <= 0.74 on the rating split. These are regression tests on real data:
a change that silently breaks a model or the protocol fails here.
"""

from __future__ import annotations

import pytest

from primetime.data.splits import leave_one_out, ratio_split
from primetime.eval.protocol import EvalSet, evaluate, evaluate_ratings
from primetime.eval.significance import paired_test
from primetime.eval.validation import ndcg_at_10
from primetime.lifecycle import build_model
from primetime.models.base import FitOptions

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VALIDATE = FitOptions(validation=ndcg_at_10)  # early stopping on valid NDCG@10


@pytest.fixture(scope="module")
def loo(ml100k):
    split = leave_one_out(ml100k.interactions)
    assert split.sizes() == {"train": 98_114, "valid": 943, "test": 943}
    return split


@pytest.fixture(scope="module")
def results(loo):
    test = EvalSet.for_test(loo)
    out = {}
    for name in ("popularity", "itemknn", "als", "bpr"):
        model = build_model(name)
        model.fit(loo.train, valid=loo.valid, options=VALIDATE)
        out[name] = evaluate(model, test, ks=(10,))
    return out


def test_popularity_in_expected_band(results):
    assert 0.03 <= results["popularity"].summary()["NDCG@10"] <= 0.045


@pytest.mark.parametrize("name", ["itemknn", "als", "bpr"])
def test_personalised_baselines_clearly_above_popularity(results, name):
    ndcg = results[name].summary()["NDCG@10"]
    assert ndcg >= 0.06
    test = paired_test(results[name], results["popularity"])
    assert test["p_value"] < 0.01 and test["mean_diff"] > 0


def test_biased_mf_rating_target(ml100k):
    split = ratio_split(ml100k.interactions, seed=42)
    assert len(split.test) == 10_000
    model = build_model("mf")
    model.fit(split.train)
    assert evaluate_ratings(model, split.test).summary()["MAE"] <= 0.74
