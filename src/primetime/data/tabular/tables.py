"""Generic interaction tables: read_interactions / read_items / read_users and load_table."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from primetime.data.catalog import CATALOG_SCHEMA, KINDS
from primetime.data.dataset import Dataset
from primetime.data.tabular.parse import (
    _fail,
    _text,
    file_inputs,
    first_duplicate,
    lenient_date,
    lenient_int,
    parse_event,
    parse_float,
    parse_ids,
    parse_timestamp,
    split_list,
)
from primetime.data.tabular.read import (
    LINE,
    PARQUET_SUFFIXES,
    ROW,
    TEXT_SUFFIXES,
    _check_file,
    read_any_table,
    read_header,
    require_columns,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Generic tables
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnMapping:
    """Which column of a generic log holds what.

    Attributes:
        user: External user id column.
        item: External item id column.
        rating: Explicit rating column, or None for an implicit log.
        timestamp: Event time column (unix seconds, fractional seconds, or ISO-8601
            date-times), or None when the log has none (all events then get time 0
            and file order is the only order).
        event: Event type column (``EventType`` names in any spelling
            ``EventType.parse`` reads, e.g. ``add_to_list``), or None.
    """

    user: str = "user_id"
    item: str = "item_id"
    rating: str | None = "rating"
    timestamp: str | None = "timestamp"
    event: str | None = None

    def __post_init__(self) -> None:
        named = [c for c in (self.user, self.item, self.rating, self.timestamp, self.event) if c]
        if len(set(named)) != len(named):
            raise ValueError(f"ColumnMapping names a column twice: {named}")


def read_interactions(
    path: Path, mapping: ColumnMapping, *, rating_optional: bool = False
) -> pl.DataFrame:
    """Read a generic log into the raw interaction frame of :meth:`Dataset.from_frames`.

    Args:
        path: CSV, TSV or Parquet file with a header.
        mapping: Column names.
        rating_optional: Use ``mapping.rating`` only if the file has it (the
            default mapping); otherwise a named column must exist.
    """
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        present = list(pl.read_parquet_schema(_check_file(path)))
    else:
        sep = TEXT_SUFFIXES.get(suffix)
        if sep is None:
            raise ValueError(
                f"path {path}: unknown table format {suffix!r}; "
                "use .csv, .tsv, .tab, .parquet or .pq"
            )
        present = read_header(path, separator=sep, quote=sep == ",", encoding="auto")
    rating = mapping.rating
    if rating is not None and rating_optional and rating not in present:
        rating = None
    required = [
        c for c in (mapping.user, mapping.item, rating, mapping.timestamp, mapping.event) if c
    ]
    require_columns(path, list(present), required, line=None if suffix in PARQUET_SUFFIXES else 1)
    dtypes: dict[str, pl.DataType] = {mapping.user: pl.Utf8(), mapping.item: pl.Utf8()}
    if rating:
        dtypes[rating] = pl.Float64()
    if mapping.timestamp:
        dtypes[mapping.timestamp] = pl.Int64()
    df = read_any_table(path, required=required, dtypes=dtypes)
    cols = [
        parse_ids(df, mapping.user, path).alias("user_id"),
        parse_ids(df, mapping.item, path).alias("item_id"),
    ]
    if rating:
        cols.append(parse_float(df, rating, path, required=False).alias("rating"))
    if mapping.timestamp:
        cols.append(parse_timestamp(df, mapping.timestamp, path).alias("timestamp"))
    else:
        log.warning(
            "%s: no timestamp column; every event gets time 0 and file order is the only order",
            path,
        )
        cols.append(pl.Series("timestamp", [0] * df.height, dtype=pl.Int64))
    if mapping.event:
        cols.append(parse_event(df, mapping.event, path).alias("event"))
    return pl.DataFrame(cols)


def read_items(path: Path, *, id_columns: Sequence[str] = ("item_id",)) -> pl.DataFrame:
    """Read an items file (CSV/TSV/Parquet) into a catalog frame.

    The id column is the first of ``id_columns`` present. Columns named as in
    ``CATALOG_SCHEMA`` are converted: list columns (``genres``, ``cast``, ``crew``)
    from ``"A|B"`` strings or lists, integers and dates leniently; other columns
    are ignored (logged). Titles without ``title`` use their id.

    Raises:
        DataFormatError: no id column, an empty or repeated id, or an unknown ``kind``.
    """
    df = read_any_table(path, allow_empty=True)
    present = [c for c in df.columns if c not in (LINE, ROW)]
    id_col = next((c for c in id_columns if c in present), None)
    if id_col is None:
        require_columns(
            path,
            present,
            [id_columns[0]],
            line=None if path.suffix.lower() in PARQUET_SUFFIXES else 1,
        )
    assert id_col is not None
    df = df.with_columns(parse_ids(df, id_col, path).alias(id_col))
    first_duplicate(df, id_col, path, "item_id")
    out: list[pl.Series] = [df[id_col].alias("item_id")]
    for name, dtype in CATALOG_SCHEMA.items():
        if name == "item_id" or name not in present:
            continue
        if isinstance(dtype, pl.List):
            out.append(split_list(df[name]).alias(name))
        elif dtype == pl.Int32:
            out.append(lenient_int(df, name, path))
        elif dtype == pl.Date:
            out.append(lenient_date(df, name, path))
        elif name == "kind":
            kind = _text(df[name]).str.to_lowercase()
            _fail(
                df,
                kind.is_not_null() & ~kind.is_in(KINDS),
                path,
                name,
                f"a kind (one of {list(KINDS)})",
            )
            out.append(kind)
        else:
            out.append(df[name].cast(pl.Utf8).alias(name))
    ignored = [c for c in present if c not in CATALOG_SCHEMA and c != id_col]
    if ignored:
        log.info("%s: columns %s are not catalog fields and are ignored", path, ignored)
    return pl.DataFrame(out)


def read_users(path: Path, *, id_columns: Sequence[str] = ("user_id",)) -> pl.DataFrame:
    """Read a users file (CSV/TSV/Parquet): an id column plus any side columns.

    ``age`` is converted leniently to integers; other columns are kept as read.

    Raises:
        DataFormatError: no id column, or an empty or repeated id.
    """
    df = read_any_table(path, allow_empty=True)
    present = [c for c in df.columns if c not in (LINE, ROW)]
    id_col = next((c for c in id_columns if c in present), None)
    if id_col is None:
        require_columns(
            path,
            present,
            [id_columns[0]],
            line=None if path.suffix.lower() in PARQUET_SUFFIXES else 1,
        )
    assert id_col is not None
    df = df.with_columns(parse_ids(df, id_col, path).alias(id_col))
    first_duplicate(df, id_col, path, "user_id")
    cols = [df[id_col].alias("user_id")]
    for c in present:
        if c == id_col or c == "user_id":
            continue
        cols.append(lenient_int(df, c, path) if c == "age" else df[c])
    return pl.DataFrame(cols)


def warn_unused_side_rows(
    name: str, kind: str, side_ids: pl.Series, log_ids: pl.Series, path: Path, fate: str
) -> int:
    """Log how many ids of a side file never occur in the log; returns that count."""
    n = int((~side_ids.is_in(log_ids.unique().implode())).sum())
    if n:
        log.warning("%s: %d %s id(s) in %s have no interactions; %s", name, n, kind, path, fate)
    return n


def load_table(
    path: str | Path,
    *,
    columns: ColumnMapping | None = None,
    items_path: str | Path | None = None,
    users_path: str | Path | None = None,
    name: str | None = None,
) -> Dataset:
    """Load a generic interaction log (CSV, TSV or Parquet) with optional side files.

    Args:
        path: The log, one event per row, with a header. The suffix decides the
            format: ``.csv`` (quoted CSV), ``.tsv``/``.tab``, ``.parquet``/``.pq``.
        columns: Which columns hold user, item, rating, timestamp and event.
            ``None`` means :class:`ColumnMapping` defaults, with ``rating`` used
            only if present; an explicit mapping's columns must all exist.
        items_path: Optional items file with ``item_id`` (or the mapping's item
            column) and catalog columns (``title``, ``year``, ``genres`` as
            ``"A|B"`` or a list, ...). Items without interactions are kept (cold
            titles) with a warning; logged items missing from it are added with
            their id as title (also warned).
        users_path: Optional users file with ``user_id`` (or the mapping's user
            column) and side columns; users without interactions are kept, with
            a warning.
        name: Dataset name; default: the log's file name without suffix.

    Returns:
        The dataset; its manifest records the sha256 of every file read.

    Raises:
        FileNotFoundError: a file does not exist.
        DataFormatError: a file is malformed (see the module docstring).
        ValueError: an unknown file suffix.
    """
    p = Path(path)
    mapping = columns or ColumnMapping()
    ds_name = name or p.stem
    inter = read_interactions(p, mapping, rating_optional=columns is None)
    files = [p]
    catalog = users = None
    if items_path is not None:
        ip = Path(items_path)
        catalog = read_items(ip, id_columns=("item_id", mapping.item))
        warn_unused_side_rows(
            ds_name,
            "item",
            catalog["item_id"],
            inter["item_id"],
            ip,
            "kept as titles nobody has watched yet",
        )
        files.append(ip)
    if users_path is not None:
        up = Path(users_path)
        users = read_users(up, id_columns=("user_id", mapping.user))
        warn_unused_side_rows(ds_name, "user", users["user_id"], inter["user_id"], up, "kept")
        files.append(up)
    return Dataset.from_frames(
        ds_name,
        interactions=inter,
        catalog=catalog,
        users=users,
        source=str(p.resolve()),
        inputs=file_inputs(*files),
    )
