"""A/B arithmetic: stable arm assignment and Wilson intervals."""

from __future__ import annotations

import pytest

from primetime.service.experiments import wilson
from primetime.service.state import stable_arm


def test_wilson_matches_the_textbook_values() -> None:
    lo, hi = wilson(1, 2)
    assert lo == pytest.approx(0.0945, abs=1e-4) and hi == pytest.approx(0.9055, abs=1e-4)
    lo, hi = wilson(0, 50)
    assert lo == 0.0 and hi == pytest.approx(0.0713, abs=1e-4), "no clicks: still an upper bound"
    assert wilson(0, 0) == (0.0, 0.0)


def test_stable_arm_is_deterministic_independent_and_weighted() -> None:
    arms = [{"name": "a", "weight": 1.0}, {"name": "b", "weight": 3.0}]
    first = [stable_arm("exp", u, arms) for u in range(4000)]
    assert first == [stable_arm("exp", u, arms) for u in range(4000)], "same user, same arm"
    share_b = first.count("b") / len(first)
    assert 0.72 < share_b < 0.78, share_b
    other = [stable_arm("exp2", u, arms) for u in range(4000)]
    agree = sum(x == y for x, y in zip(first, other, strict=True)) / len(first)
    assert agree < 0.7, "a second experiment splits users independently of the first"
    with pytest.raises(ValueError, match="arm"):
        stable_arm("exp", 1, [])
