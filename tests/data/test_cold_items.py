"""The new-titles split (EVALUATION.md Task C) and its bring-your-own form.

A hand-made log: titles t01..t20 first appear in that order (t{i} at time 100 i),
each watched by u1, u2, u3 in turn; t21 appears last but only once (below
``min_interactions``). With 21 titles, 10% is 2 titles: the newest eligible two,
t19 and t20, are test; t17 and t18 valid; t21 stays in train.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from primetime.data import Dataset
from primetime.data.errors import DataFormatError
from primetime.data.splitdir import open_split_dir, write_split_dir
from primetime.data.splits import Split, cold_items_split, leave_one_out
from primetime.lifecycle import SPLITS, make_split


def _rows() -> list[tuple[str, str, float, int]]:
    rows = []
    for i in range(1, 21):
        for k in range(3):
            rows.append((f"u{k + 1}", f"t{i:02d}", 4.0, 100 * i + k))
    rows.append(("u1", "t21", 3.0, 5000))  # newest title, one event: not eligible
    # u4 meets t20 before t19: its test target is t20 (first in time, not lowest index);
    # u4's later t19 event and its second t17 event are dropped
    rows += [
        ("u4", "t05", 5.0, 600),
        ("u4", "t17", 2.0, 1750),
        ("u4", "t20", 5.0, 2005),
        ("u4", "t19", 4.0, 2500),
        ("u4", "t17", 2.0, 2600),
    ]
    return rows


@pytest.fixture
def log() -> Dataset:
    df = pl.DataFrame(_rows(), schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    df = df.sample(fraction=1.0, shuffle=True, seed=3)  # file order must not matter
    genres = {f"t{i:02d}": ["Drama"] if i % 2 else ["Comedy"] for i in range(1, 22)}
    catalog = pl.DataFrame(
        {"item_id": list(genres), "genres": list(genres.values())},
        schema={"item_id": pl.Utf8, "genres": pl.List(pl.Utf8)},
    )
    return Dataset.from_frames("cold", interactions=df, catalog=catalog)


@pytest.fixture
def split(log: Dataset) -> Split:
    return cold_items_split(log.interactions, min_interactions=2)


def _ids(split: Split, idx: np.ndarray) -> list[str]:
    return sorted(split.items.ids(idx))


def test_newest_eligible_titles_are_held_out(split: Split) -> None:
    assert _ids(split, split.candidates_of("test")) == ["t19", "t20"]
    assert _ids(split, split.candidates_of("valid")) == ["t17", "t18"]
    assert split.protocol == "cold-items-10%-min2"
    assert "test ranked among 2 candidate titles" in split.describe_candidates()


def test_train_never_holds_an_event_of_a_held_out_title(split: Split) -> None:
    held = set(_ids(split, split.candidates_of("test"))) | {"t17", "t18"}
    train_items = set(split.items.ids(np.unique(split.train.item_idx)))
    assert not train_items & held
    assert "t21" in train_items  # below min_interactions: never held out
    # every event on a kept title is in train
    assert len(split.train) == 16 * 3 + 1 + 1


def _targets(inter) -> dict[str, str]:
    df = inter.to_polars(ids=True)
    return dict(zip(df["user_id"].to_list(), df["item_id"].to_list(), strict=True))


def test_targets_are_each_users_first_event_on_a_held_out_title(split: Split) -> None:
    assert _targets(split.test) == {"u1": "t19", "u2": "t19", "u3": "t19", "u4": "t20"}
    assert _targets(split.valid) == {"u1": "t17", "u2": "t17", "u3": "t17", "u4": "t17"}
    ts = split.test.to_polars(ids=True).filter(pl.col("user_id") == "u4")["timestamp"]
    assert ts.to_list() == [2005]


def test_named_split_and_errors(log: Dataset) -> None:
    assert "cold-items" in SPLITS
    with pytest.raises(ValueError, match="cold-items needs 4 titles with >= 5 events"):
        make_split(log, "cold-items")  # default min 5: t01..t20 have 3 or 4 events
    with pytest.raises(ValueError, match="frac"):
        cold_items_split(log.interactions, frac=0.6)


def test_named_split_on_the_planted_log(planted: Dataset) -> None:
    sp = make_split(planted, "cold-items")
    test, valid = sp.candidates_of("test"), sp.candidates_of("valid")
    present = np.unique(planted.interactions.item_idx).size
    assert test.size == valid.size == round(0.1 * present)
    assert not np.intersect1d(test, valid).size
    assert not np.isin(sp.train.item_idx, np.concatenate([test, valid])).any()


def test_other_splits_have_no_candidates(log: Dataset) -> None:
    sp = leave_one_out(log.interactions)
    assert sp.candidates_of("test") is None and sp.describe_candidates() == ""


def test_split_rejects_bad_candidates(split: Split) -> None:
    with pytest.raises(ValueError, match="outside the catalog"):
        Split(split.train, split.valid, split.test, "x", candidates={"test": np.array([999])})
    with pytest.raises(ValueError, match="'valid' or 'test'"):
        Split(split.train, split.valid, split.test, "x", candidates={"train": np.array([1])})


def test_candidates_tsv_round_trip(split: Split, log: Dataset, tmp_path) -> None:
    from primetime.data.side import SideData

    d = write_split_dir(split, tmp_path / "byo", side=SideData.of(log))
    assert (d / "candidates.tsv").read_text().splitlines() == ["item_id", "t19", "t20"]
    assert (d / "valid_candidates.tsv").read_text().splitlines() == ["item_id", "t17", "t18"]
    back, _ = open_split_dir(d)
    assert back.items == split.items  # items.tsv fixes the index space
    for part in ("valid", "test"):
        np.testing.assert_array_equal(back.candidates_of(part), split.candidates_of(part))
    assert back.protocol == "files:byo+candidates"
    # writing a split without candidates removes stale candidate files
    write_split_dir(leave_one_out(log.interactions), d)
    assert not (d / "candidates.tsv").exists()
    assert open_split_dir(d)[0].candidates_of("test") is None


def test_candidates_tsv_without_items_tsv(tmp_path) -> None:
    d = tmp_path / "byo"
    d.mkdir()
    (d / "train.tsv").write_text("user_id\titem_id\trating\ttimestamp\nu1\ta\t4\t1\nu1\tb\t4\t2\n")
    (d / "test.tsv").write_text("user_id\titem_id\trating\ttimestamp\nu1\tc\t4\t3\n")
    (d / "candidates.tsv").write_text("item_id\nc\nnever-seen\nc\n")
    sp, _ = open_split_dir(d)
    cand = sp.candidates_of("test")
    assert sp.items.ids(cand) == ["c", "never-seen"]  # an unseen candidate gets an index
    assert sp.candidates_of("valid") is None


@pytest.mark.parametrize(
    ("text", "match"),
    [("", "empty"), ("title\nx\n", "item_id"), ("item_id\n", "no item ids")],
)
def test_bad_candidates_file_is_named(tmp_path, text: str, match: str) -> None:
    d = tmp_path / "byo"
    d.mkdir()
    (d / "train.tsv").write_text("user_id\titem_id\nu1\ta\n")
    (d / "test.tsv").write_text("user_id\titem_id\nu1\ta\n")
    (d / "candidates.tsv").write_text(text)
    with pytest.raises(DataFormatError, match=match) as e:
        open_split_dir(d)
    assert "candidates.tsv" in str(e.value)
