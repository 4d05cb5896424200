"""Vocabulary, Interactions, Dataset and splits (EVALUATION.md)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from primetime.data import Dataset
from primetime.data.errors import DataFormatError
from primetime.data.splitdir import read_split_dir, write_split_dir
from primetime.data.splits import (
    last_n_out,
    leave_one_out,
    ratio_split,
    temporal_split,
    time_slice_split,
)


def _ds(rows):
    df = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    return Dataset.from_frames("t", interactions=df)


def test_loo_uses_stable_tie_break():
    # user 1: three events share timestamp 2 -> file order decides: c valid, d test
    ds = _ds(
        [
            (1, "a", 5, 1),
            (1, "b", 3, 2),
            (1, "c", 4, 2),
            (1, "d", 2, 2),
            (2, "a", 1, 5),
            (2, "b", 1, 6),
        ]
    )
    s = leave_one_out(ds.interactions)
    ids = lambda part: part.to_polars(ids=True).select("user_id", "item_id").rows()  # noqa: E731
    assert ids(s.test) == [("1", "d")]
    assert ids(s.valid) == [("1", "c")]
    # user 2 has fewer than 3 events: wholly in train
    assert ("2", "a") in ids(s.train) and ("2", "b") in ids(s.train)


def test_loo_orders_by_time_not_file():
    ds = _ds([(1, "late", 5, 30), (1, "early", 3, 10), (1, "mid", 4, 20)])
    s = leave_one_out(ds.interactions)
    assert s.test.to_polars(ids=True)["item_id"].to_list() == ["late"]
    assert s.valid.to_polars(ids=True)["item_id"].to_list() == ["mid"]


def test_last_5_holds_out_the_newest_five_by_time():
    # user 1: 8 events in shuffled file order; user 2: 6 events (< 5 + 2): train only
    rows = [(1, f"i{t}", 3, t) for t in (5, 1, 8, 3, 7, 2, 6, 4)]
    rows += [(2, f"i{t}", 3, t) for t in range(6)]
    s = last_n_out(_ds(rows).interactions, 5)
    assert s.protocol == "last-5"
    assert sorted(s.test.to_polars(ids=True)["item_id"].to_list()) == [
        "i4",
        "i5",
        "i6",
        "i7",
        "i8",
    ]
    assert s.valid.to_polars(ids=True)["item_id"].to_list() == ["i3"]
    train = s.train.to_polars(ids=True).select("user_id", "item_id").rows()
    assert sorted(i for u, i in train if u == "1") == ["i1", "i2"]
    assert len([1 for u, _ in train if u == "2"]) == 6
    with pytest.raises(ValueError, match="n must be"):
        last_n_out(_ds(rows).interactions, 0)


def test_ratio_split_is_the_documented_permutation():
    rows = [(u, f"i{i}", 1 + (u + i) % 5, i) for u in range(5) for i in range(20)]
    ds = _ds(rows)
    s = ratio_split(ds.interactions, seed=42)
    perm = np.random.default_rng(42).permutation(100)
    assert sorted(np.flatnonzero(np.isin(np.arange(100), perm[90:]))) == sorted(perm[90:].tolist())
    test_keys = set(zip(s.test.user_idx.tolist(), s.test.item_idx.tolist(), strict=True))
    inter = ds.interactions
    expect = {(int(inter.user_idx[r]), int(inter.item_idx[r])) for r in perm[90:]}
    assert test_keys == expect and len(s.train) == 90
    s2 = ratio_split(ds.interactions, seed=42, valid_frac=0.1)
    assert s2.sizes() == {"train": 81, "valid": 9, "test": 10}


def test_temporal_split_orders_globally():
    rows = [(u, f"i{i}", 3, u * 100 + i) for u in range(4) for i in range(10)]
    s = temporal_split(_ds(rows).interactions, valid_frac=0.1, test_frac=0.25)
    assert s.train.timestamp.max() <= s.valid.timestamp.min() <= s.test.timestamp.min()
    assert s.sizes() == {"train": 26, "valid": 4, "test": 10}


def test_time_slice_split_takes_the_newest_days():
    day = 86_400
    rows = [(u, f"i{d}", 3, d * day + u) for u in range(3) for d in range(10)]  # days 0..9
    s = time_slice_split(_ds(rows).interactions, test_seconds=2 * day)
    # newest event: day 9 + 2 s; test = after day 7 + 2 s, valid = the 2 days before
    assert s.sizes() == {"train": 18, "valid": 6, "test": 6}
    assert s.train.timestamp.max() < s.valid.timestamp.min() <= s.valid.timestamp.max()
    assert s.valid.timestamp.max() < s.test.timestamp.min()
    assert s.protocol == "slice-2d/2d"
    with pytest.raises(ValueError, match="leaves train or test empty"):
        time_slice_split(_ds(rows).interactions, test_seconds=20 * day)
    with pytest.raises(ValueError, match="bad slice"):
        time_slice_split(_ds(rows).interactions, test_seconds=0)


def test_split_dir_roundtrip(tmp_path):
    ds = _ds([(u, f"i{i}", 3, i) for u in range(3) for i in range(5)])
    s = leave_one_out(ds.interactions)
    write_split_dir(s, tmp_path)
    assert (tmp_path / "train.tsv").read_text().splitlines()[
        0
    ] == "user_id\titem_id\trating\ttimestamp"
    back = read_split_dir(tmp_path)
    assert back.sizes() == s.sizes()
    assert (
        back.test.to_polars(ids=True).select("user_id", "item_id").rows()
        == s.test.to_polars(ids=True).select("user_id", "item_id").rows()
    )


def test_split_dir_bad_value_names_line_and_column(tmp_path):
    (tmp_path / "train.tsv").write_text(
        "user_id\titem_id\trating\ttimestamp\n1\ta\t4\t10\n1\tb\tfive\t11\n"
    )
    (tmp_path / "test.tsv").write_text("user_id\titem_id\trating\ttimestamp\n1\tc\t4\t12\n")
    with pytest.raises(DataFormatError, match=r"train\.tsv, line 3, column 'rating'"):
        read_split_dir(tmp_path)


def test_split_dir_missing_and_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.tsv"):
        read_split_dir(tmp_path)
    (tmp_path / "train.tsv").write_text("")
    (tmp_path / "test.tsv").write_text("user_id\titem_id\n")
    with pytest.raises(DataFormatError, match="empty"):
        read_split_dir(tmp_path)


def test_dataset_save_load_and_manifest(tmp_path):
    ds = _ds([(1, "a", 5, 1), (1, "a", 5, 1), (2, "b", 3, 2)])
    assert len(ds.interactions) == 2  # exact duplicate dropped
    ds.save(tmp_path)
    back = Dataset.load(tmp_path)
    assert back.manifest["counts"]["interactions"] == 2
    np.testing.assert_array_equal(back.interactions.item_idx, ds.interactions.item_idx)
    (tmp_path / "kg.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="kg.parquet"):
        Dataset.load(tmp_path)


def test_interactions_matrix_last_rating_wins():
    ds = _ds([(1, "a", 2, 1), (1, "a", 5, 9), (1, "b", 3, 2)])
    m = ds.interactions.matrix(values="rating")
    assert m[1, ds.items.index("a")] == 5
    assert ds.interactions.matrix()[1, ds.items.index("a")] == 1


def test_drop_exact_duplicates_equals_an_ordered_unique() -> None:
    """The hash-then-compare duplicate drop keeps what ``unique(maintain_order=True)``
    keeps, in the same order, nulls included."""
    from primetime.data.dataset import drop_exact_duplicates

    rng = np.random.default_rng(0)
    for n in (0, 1, 50, 5000):
        frame = pl.DataFrame(
            {
                "user_idx": rng.integers(0, 6, n),
                "item_idx": rng.integers(0, 6, n),
                "rating": pl.Series(rng.choice([1.0, 2.5, None], n).tolist(), dtype=pl.Float64),
                "event": pl.Series(rng.choice(["play", None], n).tolist(), dtype=pl.Utf8),
            }
        )
        got = drop_exact_duplicates(frame)
        assert got.equals(frame.unique(maintain_order=True))
        assert n < 50 or got.height < n  # duplicates were there to drop
