"""``WorldConfig.summer_share``: summer premieres come from a random stream of their own,
so they move only the chosen release dates and leave every other world as it was."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from primetime.data import synthetic

TINY = synthetic.PRESETS["tiny"]


def _months(release_ts: np.ndarray) -> np.ndarray:
    return release_ts.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64) % 12 + 1


def test_summer_premieres_move_only_new_movies_into_summer():
    plain = synthetic.generate(TINY)
    summer = synthetic.generate(dataclasses.replace(TINY, summer_share=0.6))
    a, b = plain.latents, summer.latents
    assert (a.item_ids == b.item_ids).all() and (a.holiday == b.holiday).all()
    moved = a.release_ts != b.release_ts
    assert moved.sum() >= 20
    start = TINY.start_ts
    assert (a.release_ts[moved] >= start - 366 * 86_400).all()  # new titles only
    assert np.isin(_months(b.release_ts[moved]), (5, 6, 7, 8)).all()  # about June 1..Aug 31
    assert not (a.holiday[moved]).any()
    assert all(iid.startswith("m") for iid in a.item_ids[moved[1:].nonzero()[0]])


def test_summer_share_is_checked():
    with pytest.raises(ValueError, match="summer_share must be in"):
        dataclasses.replace(TINY, summer_share=1.5)
