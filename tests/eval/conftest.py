"""A tiny planted log and fake models whose scores the tests control.

Items m1..m8 get item_idx 1..8 (catalog order); users u1..u4 get user_idx
1..4 (order of first appearance). Leave-one-out by time gives:

=====  ===================  =====  ====
user   train                valid  test
=====  ===================  =====  ====
u1     m1 m2 m3             m4     m5
u2     m2                   m7     m6   (m7 and m6 share t=9: file order decides)
u3     m1 m3 (< 3 events, wholly train, never evaluated)
u4     m8 m1 m2 m6          m4     m3
=====  ===================  =====  ====
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
import pytest

from primetime.data import Dataset
from primetime.data.splits import Split, leave_one_out
from primetime.types import UserContext

GENRES = {
    "m1": ["Action"],
    "m2": ["Comedy"],
    "m3": ["Action", "Comedy"],
    "m4": ["Drama"],
    "m5": [],
    "m6": ["Drama", "Romance"],
    "m7": ["Comedy"],
    "m8": ["Horror"],
}

ROWS = [  # user, item, rating, timestamp — file order
    ("u1", "m1", 4.0, 10),
    ("u1", "m2", 3.0, 20),
    ("u1", "m3", 5.0, 30),
    ("u1", "m4", 2.0, 40),
    ("u1", "m5", 4.0, 50),
    ("u2", "m2", 1.0, 5),
    ("u2", "m7", 5.0, 9),
    ("u2", "m6", 4.0, 9),
    ("u3", "m1", 3.0, 1),
    ("u3", "m3", 3.0, 2),
    ("u4", "m8", 2.0, 1),
    ("u4", "m1", 4.0, 2),
    ("u4", "m2", 5.0, 3),
    ("u4", "m6", 3.0, 4),
    ("u4", "m4", 4.0, 5),
    ("u4", "m3", 1.0, 6),
]


@pytest.fixture
def tiny() -> Dataset:
    catalog = pl.DataFrame(
        {"item_id": list(GENRES), "genres": list(GENRES.values())},
        schema={"item_id": pl.Utf8, "genres": pl.List(pl.Utf8)},
    )
    inter = pl.DataFrame(ROWS, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    return Dataset.from_frames("tiny", interactions=inter, catalog=catalog)


@pytest.fixture
def split(tiny: Dataset) -> Split:
    return leave_one_out(tiny.interactions)


class TableModel:
    """Scores from a function of the context: ``row(ctx) -> (V,) scores``."""

    def __init__(self, name: str, n_cols: int, row: Callable[[UserContext], np.ndarray]):
        self.name = name
        self.n_cols = n_cols
        self.row = row
        self.calls: list[int] = []

    def score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        self.calls.append(len(contexts))
        out = np.stack([np.asarray(self.row(c), dtype=np.float32) for c in contexts])
        out[:, 0] = -np.inf
        return out


class ConstantModel:
    name = "constant"

    def __init__(self, n_cols: int) -> None:
        self.n_cols = n_cols

    def score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        out = np.zeros((len(contexts), self.n_cols), dtype=np.float32)
        out[:, 0] = -np.inf
        return out


class HashModel:
    """Pseudo-random scores that depend only on (user_idx, item), with many ties."""

    def __init__(self, n_cols: int, name: str = "hash", levels: int = 4) -> None:
        self.name = name
        self.n_cols = n_cols
        self.levels = levels

    def score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        out = np.empty((len(contexts), self.n_cols), dtype=np.float32)
        for b, c in enumerate(contexts):
            rng = np.random.default_rng(1000 + (c.user_idx or 0))
            out[b] = rng.integers(0, self.levels, self.n_cols)
        out[:, 0] = -np.inf
        return out


class Fakes:
    """The fake models, handed to tests as a fixture (no test-module imports needed)."""

    TableModel = TableModel
    ConstantModel = ConstantModel
    HashModel = HashModel


@pytest.fixture
def fakes() -> type[Fakes]:
    return Fakes
