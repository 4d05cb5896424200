"""Train / valid / test splits, exactly as in EVALUATION.md."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from primetime.data.errors import DataFormatError
from primetime.data.interactions import Interactions
from primetime.data.vocab import Vocabulary

log = logging.getLogger(__name__)

SPLIT_COLUMNS = ("user_id", "item_id", "rating", "timestamp")


@dataclass(frozen=True, eq=False)
class Split:
    """Three disjoint parts of one log, sharing vocabularies.

    Attributes:
        train: Fit on this.
        valid: Choose epochs and hyper-parameters on this (may be empty).
        test: Report on this, once.
        protocol: How the split was made ("loo", "ratio-90/10-seed42", "temporal",
            "cold-items-10%-min5", "files").
        candidates: Per part ("valid", "test"), the item indices its targets are ranked
            among (sorted, distinct); a part without an entry ranks the whole catalog.
            Set by :func:`cold_items_split` and by split folders with ``candidates.tsv``.
    """

    train: Interactions
    valid: Interactions
    test: Interactions
    protocol: str
    candidates: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clean = {}
        for part, items in self.candidates.items():
            if part not in ("valid", "test"):
                raise ValueError(f"candidates are for 'valid' or 'test', got {part!r}")
            arr = np.unique(np.asarray(items, dtype=np.int64))
            if arr.size == 0:
                raise ValueError(f"{part} candidates are empty")
            if arr[0] < 1 or arr[-1] >= self.train.items.size:
                raise ValueError(f"{part} candidates hold item_idx outside the catalog")
            clean[part] = arr
        object.__setattr__(self, "candidates", clean)

    def candidates_of(self, part: str) -> np.ndarray | None:
        """(C,) sorted item indices ``part``'s targets are ranked among, or None (all)."""
        return self.candidates.get(part)

    @property
    def items(self) -> Vocabulary:
        return self.train.items

    @property
    def users(self) -> Vocabulary:
        return self.train.users

    def train_valid(self) -> Interactions:
        """Train and valid rows together: the history used when scoring test."""
        return Interactions.concat([self.train, self.valid])

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}

    def describe_candidates(self) -> str:
        """``"test ranked among 168 candidate titles (valid: 168)"``, or "" without any."""
        test, valid = self.candidates_of("test"), self.candidates_of("valid")
        if test is None and valid is None:
            return ""
        parts = []
        if test is not None:
            parts.append(f"test ranked among {test.size} candidate titles")
        if valid is not None:
            parts.append(f"valid among {valid.size}")
        return ", ".join(parts)


def leave_one_out(inter: Interactions) -> Split:
    """Leave-one-out by time (EVALUATION.md, Task A).

    Each user's events are ordered by timestamp, equal timestamps keeping file
    order (stable sort). The last event is test, the one before it valid, the
    rest train. Users with fewer than 3 events stay wholly in train.
    """
    indptr, order = inter.user_histories()
    counts = np.diff(indptr)  # (users.size,)
    n = len(inter)
    role = np.zeros(n, dtype=np.int8)  # 0 train, 1 valid, 2 test; indexed by sorted position
    eligible = counts >= 3
    ends = indptr[1:][eligible]  # one past each eligible user's last sorted row
    role[ends - 1] = 2
    role[ends - 2] = 1
    row_role = np.empty(n, dtype=np.int8)
    row_role[order] = role
    # keep file order inside each part: the tie-break must survive later re-sorts
    return Split(
        train=inter.take(row_role == 0),
        valid=inter.take(row_role == 1),
        test=inter.take(row_role == 2),
        protocol="loo",
    )


def last_n_out(inter: Interactions, n: int = 5) -> Split:
    """Each user's last ``n`` events (time order, ties in file order) are test, the one
    before valid, the rest train; users with fewer than ``n + 2`` events stay in train.

    Not the project's protocol (that is :func:`leave_one_out`): a comparison protocol
    for figures quoted under "last-n held out"; HR@K counts a hit when any of the ``n``
    is in the top K. Protocol label ``last-<n>``.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    indptr, order = inter.user_histories()
    counts = np.diff(indptr)
    role = np.zeros(len(inter), dtype=np.int8)  # by sorted position: 0 train, 1 valid, 2 test
    ends = indptr[1:][counts >= n + 2]
    for j in range(1, n + 1):
        role[ends - j] = 2
    role[ends - n - 1] = 1
    row_role = np.empty(len(inter), dtype=np.int8)
    row_role[order] = role
    return Split(
        train=inter.take(row_role == 0),
        valid=inter.take(row_role == 1),
        test=inter.take(row_role == 2),
        protocol=f"last-{n}",
    )


def ratio_split(
    inter: Interactions, *, train_frac: float = 0.9, valid_frac: float = 0.0, seed: int = 42
) -> Split:
    """Random split of rating rows (EVALUATION.md, Task B).

    ``numpy.random.default_rng(seed).permutation`` over the rated rows in file
    order; the first ``train_frac`` go to train, the rest to test. If
    ``valid_frac`` > 0 that share of the train rows (the last ones of the
    permuted train part) is held out as valid for early stopping.
    """
    if not 0 < train_frac < 1:
        raise ValueError(f"train_frac must be in (0, 1), got {train_frac}")
    if not 0 <= valid_frac < 1:
        raise ValueError(f"valid_frac must be in [0, 1), got {valid_frac}")
    rated = np.flatnonzero(~np.isnan(inter.rating))
    if rated.size == 0:
        raise ValueError("ratio_split needs rated interactions; this log has no ratings")
    perm = rated[np.random.default_rng(seed).permutation(rated.size)]
    n_train = int(round(train_frac * rated.size))
    train_rows, test_rows = perm[:n_train], perm[n_train:]
    n_valid = int(round(valid_frac * n_train))
    valid_rows = train_rows[n_train - n_valid :]
    train_rows = train_rows[: n_train - n_valid]
    name = f"ratio-{round(train_frac * 100)}/{round((1 - train_frac) * 100)}-seed{seed}"
    return Split(
        train=inter.take(np.sort(train_rows)),
        valid=inter.take(np.sort(valid_rows)),
        test=inter.take(np.sort(test_rows)),
        protocol=name,
    )


def temporal_split(
    inter: Interactions, *, valid_frac: float = 0.1, test_frac: float = 0.1
) -> Split:
    """Global temporal split: the last ``test_frac`` of events by time are test,
    the ``valid_frac`` before them valid, the rest train (ties by file order)."""
    if valid_frac < 0 or test_frac <= 0 or valid_frac + test_frac >= 1:
        raise ValueError(f"bad fractions valid={valid_frac} test={test_frac}")
    order = np.argsort(inter.timestamp, kind="stable")
    n = len(inter)
    n_test = int(round(test_frac * n))
    n_valid = int(round(valid_frac * n))
    role = np.zeros(n, dtype=np.int8)
    role[order[n - n_test :]] = 2
    role[order[n - n_test - n_valid : n - n_test]] = 1
    return Split(
        train=inter.take(role == 0),
        valid=inter.take(role == 1),
        test=inter.take(role == 2),
        protocol=f"temporal-{valid_frac:g}/{test_frac:g}",
    )


def time_slice_split(
    inter: Interactions, *, test_seconds: float, valid_seconds: float | None = None
) -> Split:
    """The newest time slice: events in the last ``test_seconds`` before the newest event
    are test, the ``valid_seconds`` before them valid (default: as long as test), the rest
    train. The retrain job's gate (a candidate and the promoted version ranked on the
    same slice) and the learning loop use it.

    Raises:
        ValueError: a non-positive length, or a slice that leaves train or test empty.
    """
    valid_seconds = test_seconds if valid_seconds is None else valid_seconds
    if not test_seconds > 0 or valid_seconds < 0:
        raise ValueError(f"bad slice lengths test={test_seconds}s valid={valid_seconds}s")
    if not len(inter):
        raise ValueError("an empty log has no newest time slice")
    newest = float(inter.timestamp.max())
    test_from = newest - test_seconds
    valid_from = test_from - valid_seconds
    ts = inter.timestamp.astype(np.float64)
    role = np.where(ts > test_from, 2, np.where(ts > valid_from, 1, 0)).astype(np.int8)
    if not (role == 0).any() or not (role == 2).any():
        raise ValueError(
            f"a newest slice of {test_seconds / 86400:g} days (+ {valid_seconds / 86400:g} "
            "valid) leaves train or test empty; pick a shorter slice"
        )
    return Split(
        train=inter.take(role == 0),
        valid=inter.take(role == 1),
        test=inter.take(role == 2),
        protocol=f"slice-{test_seconds / 86400:g}d/{valid_seconds / 86400:g}d",
    )


def cold_items_split(inter: Interactions, *, frac: float = 0.1, min_interactions: int = 5) -> Split:
    """New titles (cold-start items), EVALUATION.md Task C.

    Titles are ordered by their first appearance in the log (timestamp, equal
    timestamps in file order). Among titles with at least ``min_interactions``
    events, the newest ``n = round(frac x titles in the log)`` are the **test**
    titles (the new releases) and the ``n`` before them the **valid** titles. The
    choice is deterministic: no seed.

    - **train**: every event on any other title (no event on a valid or test title).
    - **test**: per user, the first event (time order) on a test title: the target.
    - **valid**: per user, the first event on a valid title.

    The other events on held-out titles are dropped. Test targets are ranked among
    the test titles only (``candidates["test"]``), valid targets among the valid
    titles, so a model can choose epochs on valid without seeing the test titles.
    History for scoring test is train + valid as usual.

    Raises:
        ValueError: if fewer than ``2 n`` titles have ``min_interactions`` events.
    """
    if not 0 < frac < 0.5:
        raise ValueError(f"frac must be in (0, 0.5), got {frac}")
    if min_interactions < 1:
        raise ValueError(f"min_interactions must be >= 1, got {min_interactions}")
    n_rows = len(inter)
    order = np.argsort(inter.timestamp, kind="stable")  # time order, ties by file order
    size = inter.items.size
    first = np.full(size, n_rows, dtype=np.int64)  # first position in time order
    np.minimum.at(first, inter.item_idx[order], np.arange(n_rows, dtype=np.int64))
    counts = np.bincount(inter.item_idx, minlength=size)
    present = int((counts > 0).sum())
    n = max(1, int(round(frac * present)))
    eligible = np.flatnonzero(counts >= min_interactions)
    if eligible.size < 2 * n:
        raise ValueError(
            f"cold-items needs {2 * n} titles with >= {min_interactions} events "
            f"({frac:.0%} of {present} titles for test and as many for valid); "
            f"this log has {eligible.size}"
        )
    newest_first = eligible[np.argsort(-first[eligible], kind="stable")]
    test_items = np.sort(newest_first[:n])
    valid_items = np.sort(newest_first[n : 2 * n])
    role = np.zeros(size, dtype=np.int8)  # 0 train, 1 valid title, 2 test title
    role[valid_items] = 1
    role[test_items] = 2
    row_role = role[inter.item_idx]

    def first_per_user(which: int) -> np.ndarray:
        """(N,) bool: each user's first row (time order) on a title of role ``which``."""
        rows = order[row_role[order] == which]  # time order
        _, idx = np.unique(inter.user_idx[rows], return_index=True)  # first occurrence
        mask = np.zeros(n_rows, dtype=bool)
        mask[rows[idx]] = True
        return mask

    split = Split(
        train=inter.take(row_role == 0),
        valid=inter.take(first_per_user(1)),
        test=inter.take(first_per_user(2)),
        protocol=f"cold-items-{frac:.0%}-min{min_interactions}",
        candidates={"valid": valid_items, "test": test_items},
    )
    log.info(
        "cold-items: %d test titles, %d valid titles, %s",
        test_items.size,
        valid_items.size,
        split.sizes(),
    )
    return split


def read_split_file(path: Path) -> pl.DataFrame:
    """One split part (``user_id item_id rating timestamp``), errors naming file and line."""
    if not path.exists():
        raise FileNotFoundError(f"split file {path} does not exist")
    if path.stat().st_size == 0:
        raise DataFormatError(
            path, "file is empty; expected a header 'user_id item_id rating timestamp'"
        )
    try:
        df = pl.read_csv(path, separator="\t", infer_schema=False, quote_char=None)
    except pl.exceptions.ComputeError as e:
        raise DataFormatError(path, f"not a tab-separated file: {e}") from e
    missing = [c for c in ("user_id", "item_id") if c not in df.columns]
    if missing:
        raise DataFormatError(
            path,
            f"missing column(s) {missing}; header must be 'user_id item_id rating timestamp'",
            line=1,
        )
    out: list[pl.Expr | pl.Series] = [pl.col("user_id"), pl.col("item_id")]
    for col in ("rating", "timestamp"):
        if col not in df.columns:
            out.append(pl.lit(None if col == "rating" else 0).alias(col))
            continue
        parsed = df[col].str.strip_chars().cast(pl.Float64, strict=False)
        bad = parsed.is_null() & df[col].is_not_null() & (df[col].str.strip_chars() != "")
        if bad.any():
            row = int(bad.arg_max())  # type: ignore[arg-type]
            raise DataFormatError(
                path, f"{col} {df[col][row]!r} is not a number", line=row + 2, column=col
            )
        out.append(pl.Series(col, parsed))
    return df.select(out).with_columns(
        pl.col("rating").cast(pl.Float32), pl.col("timestamp").cast(pl.Int64)
    )
