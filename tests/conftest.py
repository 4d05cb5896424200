"""Shared fixtures: small planted logs built in memory (no downloaded data)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from primetime.data import Dataset


def planted_log(n_users: int = 60, n_items: int = 40, seed: int = 0) -> Dataset:
    """Two taste groups over two halves of the catalog; each user walks a chain
    in which item i is usually followed by item i+1 of their half.

    A good model must (a) prefer a user's own half and (b) learn the chain.
    """
    rng = np.random.default_rng(seed)
    half = n_items // 2
    rows = []
    for u in range(n_users):
        group = u % 2
        start = rng.integers(0, half - 12)
        length = int(rng.integers(6, 12))
        for step in range(length):
            item = group * half + start + step
            rows.append((f"u{u}", f"i{item}", float(rng.integers(3, 6) if group else rng.integers(1, 4)),
                         1_000_000 + u * 10_000 + step * 60))
    df = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    catalog = pl.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n_items)],
            "title": [f"Title {i}" for i in range(n_items)],
            "genres": [["Drama"] if i < half else ["Comedy", "Family"] for i in range(n_items)],
        }
    )
    return Dataset.from_frames("planted", interactions=df, catalog=catalog, source="tests")


@pytest.fixture(scope="session")
def planted() -> Dataset:
    return planted_log()
