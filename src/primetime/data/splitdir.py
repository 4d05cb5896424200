"""Bring-your-own splits: a folder of ``train/valid/test.tsv`` with optional metadata.

Layout of ``DIR`` (tab-separated, one header row each)::

    train.tsv   user_id item_id rating timestamp      required
    valid.tsv   same header                            optional
    test.tsv    same header                            required
    items.tsv   item_id title genres year [...]        optional: genres "|"-separated;
                extra catalog columns (kind, series_id, season_number, description,
                release_date, network, cast, crew …) are used when present
    users.tsv   user_id [age gender occupation …]      optional
    kg.tsv      head relation tail                     optional: titles appear by
                their item_id, as head or tail; other entities by any other id
    candidates.tsv        item_id                      optional: test targets are ranked
                among these titles only, and exported top-K lists hold only them
                (EVALUATION.md Task C, new titles)
    valid_candidates.tsv  item_id                      optional: the same for valid

Vocabularies follow ``items.tsv`` / ``users.tsv`` order when those files exist
(then ids seen only in the logs, in file order), so a split written from a
prepared data set with :func:`write_split_dir` is read back into the same index
spaces, and a model trained on it is the model trained on the built-in split.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl

from primetime.data.catalog import CATALOG_SCHEMA, Catalog, conform_catalog
from primetime.data.errors import DataFormatError
from primetime.data.events import EventType
from primetime.data.graph import KnowledgeGraph
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.splits import Split, read_split_file
from primetime.data.users import Users
from primetime.data.vocab import Vocabulary

log = logging.getLogger(__name__)

PARTS = ("train", "valid", "test")
KG_HEADER = ("head", "relation", "tail")
#: Candidate files: the part they restrict -> file name.
CANDIDATE_FILES = {"test": "candidates.tsv", "valid": "valid_candidates.tsv"}


def read_split_dir(directory: str | Path) -> Split:
    """The split of ``directory`` (see the module docstring); metadata files, when
    present, only fix the order of the vocabularies."""
    return open_split_dir(directory)[0]


def open_split_dir(directory: str | Path) -> tuple[Split, SideData]:
    """Read a split folder and its optional ``items.tsv``, ``users.tsv``, ``kg.tsv``,
    ``candidates.tsv`` and ``valid_candidates.tsv``.

    Returns:
        The split (vocabularies over every file, catalog order first) and the side
        data (catalog, users, knowledge graph, item texts; parts absent stay None).

    Raises:
        FileNotFoundError: if the folder, ``train.tsv`` or ``test.tsv`` is missing.
        DataFormatError: naming the file, line and column of a malformed row.
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"split directory {d} does not exist")
    frames = {}
    for part in PARTS:
        p = d / f"{part}.tsv"
        if part == "valid" and not p.exists():
            frames[part] = _empty_part()
            continue
        frames[part] = read_split_file(p)
    if frames["train"].height == 0:
        raise DataFormatError(d / "train.tsv", "has a header but no rows")
    all_rows = pl.concat([frames[p] for p in PARTS])

    items_df = _read_items(d / "items.tsv") if (d / "items.tsv").exists() else None
    users_df = _read_users(d / "users.tsv") if (d / "users.tsv").exists() else None
    kg = _read_kg(d / "kg.tsv") if (d / "kg.tsv").exists() else None
    cand_ids = {
        part: _read_candidates(d / fname)
        for part, fname in CANDIDATE_FILES.items()
        if (d / fname).exists()
    }

    item_ids = items_df["item_id"] if items_df is not None else pl.Series("item_id", [], pl.Utf8)
    # candidate titles nobody interacted with still get an index (after the logs' ids)
    extra_items = _unseen(pl.concat([all_rows["item_id"], *cand_ids.values()]), item_ids)
    if items_df is not None and len(extra_items):
        log.warning(
            "%s: %d item id(s) in the split are not in items.tsv; added with their id as title",
            d,
            len(extra_items),
        )
    catalog = None
    if items_df is not None:
        cat_df = pl.concat(
            [items_df, pl.DataFrame({"item_id": extra_items}, schema={"item_id": pl.Utf8})],
            how="diagonal_relaxed",
        )
        catalog = Catalog.from_frame(cat_df)
        items = catalog.items
    else:
        items = Vocabulary(extra_items, name="item")

    user_ids = users_df["user_id"] if users_df is not None else pl.Series("user_id", [], pl.Utf8)
    extra_users = _unseen(all_rows["user_id"], user_ids)
    users_side = None
    if users_df is not None:
        users_side = Users.from_frame(
            pl.concat(
                [users_df, pl.DataFrame({"user_id": extra_users}, schema={"user_id": pl.Utf8})],
                how="diagonal_relaxed",
            )
        )
        users = users_side.users
    else:
        users = Vocabulary(extra_users, name="user")

    def to_inter(df: pl.DataFrame) -> Interactions:
        return Interactions(
            user_idx=users.indices(df["user_id"]),
            item_idx=items.indices(df["item_id"]),
            rating=df["rating"].fill_null(float("nan")).to_numpy(),
            timestamp=df["timestamp"].fill_null(0).to_numpy(),
            event=np.full(df.height, EventType.RATE.code, dtype=np.int8),
            users=users,
            items=items,
        )

    candidates = {part: items.indices(ids) for part, ids in cand_ids.items()}
    split = Split(
        train=to_inter(frames["train"]),
        valid=to_inter(frames["valid"]),
        test=to_inter(frames["test"]),
        protocol=f"files:{d.name}" + ("+candidates" if candidates else ""),
        candidates=candidates,
    )
    return split, SideData.build(catalog=catalog, kg=kg, users=users_side)


def write_split_dir(split: Split, directory: str | Path, *, side: SideData | None = None) -> Path:
    """Write a split as ``train.tsv``, ``valid.tsv``, ``test.tsv`` (original ids), its
    candidate sets as ``candidates.tsv`` / ``valid_candidates.tsv`` and, from ``side``,
    ``items.tsv``, ``users.tsv`` and ``kg.tsv`` where known."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        df = (
            getattr(split, part)
            .to_polars(ids=True)
            .select("user_id", "item_id", "rating", "timestamp")
        )
        _write_tsv(df, d / f"{part}.tsv")
    for part, fname in CANDIDATE_FILES.items():
        cand = split.candidates_of(part)
        if cand is None:
            (d / fname).unlink(missing_ok=True)  # a stale file would restrict the new split
            continue
        frame = pl.DataFrame({"item_id": split.items.ids(cand)}, schema={"item_id": pl.Utf8})
        _write_tsv(frame, d / fname)
    if side is None:
        return d
    if side.catalog is not None:
        frame = side.catalog.frame
        cols: list[pl.Expr] = []
        for name, dtype in CATALOG_SCHEMA.items():
            if isinstance(dtype, pl.List):
                cols.append(pl.col(name).list.join("|").alias(name))
            elif name == "item_id" or frame[name].null_count() < frame.height:
                cols.append(pl.col(name))
        _write_tsv(frame.select(cols), d / "items.tsv")
    if side.users is not None:
        flat = [c for c, t in side.users.frame.schema.items() if not isinstance(t, pl.List)]
        _write_tsv(side.users.frame.select(flat), d / "users.tsv")
    if side.kg is not None:
        _write_tsv(side.kg.triples, d / "kg.tsv")
    return d


def _write_tsv(frame: pl.DataFrame, path: Path) -> None:
    """Write ``frame`` as the reader reads a ``.tsv``: one line a row, nothing quoted.

    The reader takes a ``.tsv`` value verbatim (quotes are ordinary characters there),
    so Polars' CSV quoting would come back as text: an empty list written as ``""``
    became a cast member named ``""`` on every title, and with it a different item text
    than the built-in split gives. Empty strings are written as empty fields (read back
    as empty), and tabs and line breaks inside a value, which no unquoted TSV can hold,
    as spaces.
    """
    text = [c for c, t in frame.schema.items() if t == pl.Utf8]
    if text:
        broken = frame.select(
            pl.any_horizontal(pl.col(text).str.contains(r"[\t\r\n]").fill_null(False))
        ).to_series()
        if broken.any():
            log.warning(
                "%s: %d row(s) hold a tab or line break inside a value; written as spaces",
                path.name,
                int(broken.sum()),
            )
            frame = frame.with_columns(pl.col(text).str.replace_all(r"[\t\r\n]+", " "))
    frame.write_csv(path, separator="\t", quote_style="never")


# --------------------------------------------------------------------- readers
def _empty_part() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"user_id": pl.Utf8, "item_id": pl.Utf8, "rating": pl.Float32, "timestamp": pl.Int64}
    )


def _unseen(ids: pl.Series, known: pl.Series) -> list[str]:
    """Ids of ``ids`` (first-appearance order) that are not in ``known``."""
    uniq = ids.unique(maintain_order=True)
    return uniq.filter(~uniq.is_in(known.implode())).to_list()


def _read_candidates(path: Path) -> pl.Series:
    """The ``item_id`` column of a candidates file, distinct, in file order."""
    if path.stat().st_size == 0:
        raise DataFormatError(path, "file is empty; expected a header 'item_id'")
    try:
        df = pl.read_csv(path, separator="\t", infer_schema=False, quote_char=None)
    except pl.exceptions.ComputeError as e:
        raise DataFormatError(path, f"not a tab-separated file: {e}") from e
    if "item_id" not in df.columns:
        raise DataFormatError(path, "missing column 'item_id'; header must be 'item_id'", line=1)
    ids = df["item_id"].str.strip_chars()
    blank = ids.is_null() | (ids == "")
    if blank.any():
        row = int(blank.arg_max())  # type: ignore[arg-type]
        raise DataFormatError(path, "empty item_id", line=row + 2)
    if ids.len() == 0:
        raise DataFormatError(path, "has a header but no item ids")
    return ids.unique(maintain_order=True)


def _read_items(path: Path) -> pl.DataFrame:
    from primetime.data.tabular import read_items

    try:
        return conform_catalog(read_items(path))
    except ValueError as e:
        if isinstance(e, DataFormatError):
            raise
        raise DataFormatError(path, str(e)) from e


def _read_users(path: Path) -> pl.DataFrame:
    from primetime.data.tabular import read_users

    return read_users(path)


def _read_kg(path: Path) -> KnowledgeGraph:
    from primetime.data.tabular import LINE, ROW, read_any_table, require_columns

    df = read_any_table(path, allow_empty=True)
    require_columns(path, [c for c in df.columns if c not in (LINE, ROW)], KG_HEADER)
    for col in KG_HEADER:
        blank = df[col].is_null() | (df[col].cast(pl.Utf8).str.strip_chars() == "")
        if blank.any():
            row = int(blank.arg_max())  # type: ignore[arg-type]
            line = int(df[LINE][row]) if LINE in df.columns else None
            raise DataFormatError(path, f"empty {col}", line=line, column=col)
    return KnowledgeGraph.from_frame(
        df.select([pl.col(c).cast(pl.Utf8).str.strip_chars() for c in KG_HEADER])
    )
