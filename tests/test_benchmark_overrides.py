"""``benchmark --set MODEL.KEY=VALUE``: an option reaches the one model it names."""

from __future__ import annotations

import pytest

from primetime.experiment import BenchmarkSpec


def test_set_reaches_only_the_named_model():
    spec = BenchmarkSpec(
        names=("ensemble", "itemknn"),
        overrides={"ensemble.members": "itemknn,als", "itemknn.neighbours": 50},
    )
    assert spec.overrides_of("ensemble") == {"members": "itemknn,als"}
    assert spec.overrides_of("itemknn") == {"neighbours": 50}
    assert spec.overrides_of("als") == {}


@pytest.mark.parametrize("key", ["members", "als.factors", "ensemble."])
def test_set_without_a_benchmarked_model_is_named(key):
    with pytest.raises(ValueError, match="MODEL.KEY"):
        BenchmarkSpec(names=("ensemble", "itemknn"), overrides={key: 1})
