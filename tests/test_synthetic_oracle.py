"""On a synthetic world the oracle is the ceiling: ALS beats popularity and stays
below the oracle (issue: foundation, "Done when")."""

from __future__ import annotations

import dataclasses

import pytest

from primetime.data import synthetic
from primetime.data.splits import leave_one_out
from primetime.eval.protocol import EvalSet, evaluate
from primetime.eval.significance import paired_test
from primetime.experiment import OracleModel
from primetime.lifecycle import build_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results():
    world = synthetic.generate(dataclasses.replace(synthetic.PRESETS["small"], seed=0))
    split = leave_one_out(world.dataset.interactions)
    test = EvalSet.for_test(split)
    out = {}
    for name in ("popularity", "als"):
        model = build_model(name)
        model.fit(split.train)
        out[name] = evaluate(model, test, ks=(10,))
    out["oracle"] = evaluate(OracleModel(world), test, ks=(10,))
    return out


def test_als_beats_popularity(results):
    t = paired_test(results["als"], results["popularity"])
    assert t["mean_diff"] > 0 and t["p_value"] < 0.01


def test_oracle_is_the_ceiling(results):
    for name in ("popularity", "als"):
        t = paired_test(results["oracle"], results[name])
        assert t["mean_diff"] > 0 and t["p_value"] < 0.01, name
