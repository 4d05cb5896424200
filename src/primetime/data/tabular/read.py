"""Generic interaction tables (CSV, TSV, Parquet), and the text reader all loaders share.

Every loader in :mod:`primetime.data` follows one policy on bad input:

* **Structure** — an empty file, a missing required column, a line with the
  wrong number of fields, a duplicate id in a side file: :class:`DataFormatError`
  naming the file (and the line, for a line-level problem).
* **Interaction values** — ids, rating, timestamp, event: a value that cannot
  be read raises :class:`DataFormatError` naming the file, the 1-based line
  (the header is line 1) and the column.
* **Metadata values** — year, dates, age: a value that cannot be read becomes
  null, with one logged warning per column giving the count and the first line.
* **Unknown ids in side files** — each loader documents whether such rows are
  kept or dropped, and logs a warning with the count.

Reading is vectorised: Polars parses the file, typed on the happy path; when
that fails it parses again with text columns and finds the first bad row with
a non-strict cast, so neither path loops over rows in Python.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import polars as pl

from primetime.data.catalog import CATALOG_SCHEMA, KINDS
from primetime.data.dataset import Dataset, sha256_file
from primetime.data.errors import DataFormatError
from primetime.data.interactions import EVENT_TYPES

log = logging.getLogger(__name__)

#: Column added by the readers: the 1-based line of each row in its text file.
LINE = "_line"
#: Column added by the Parquet reader: the 1-based row number.
ROW = "_row"

TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Timestamps above this many "seconds" (year 5138) are almost surely milliseconds.
_MAX_PLAUSIBLE_SECONDS = 100_000_000_000
# Control bytes that stand in for a multi-byte separator ("::") inside Polars.
_SUBSTITUTE_BYTES = (b"\x1f", b"\x1e", b"\x1d", b"\x1c", b"\x01", b"\x02")


# ---------------------------------------------------------------------------
# Reading delimited text
# ---------------------------------------------------------------------------
def _decode(data: bytes, encoding: str) -> str:
    """Bytes -> str for ``encoding`` in {"utf-8", "latin-1", "auto"} (auto: UTF-8, else Latin-1)."""
    if encoding == "auto":
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    if encoding == "utf-8":
        return data.decode("utf-8-sig", errors="replace")
    return data.decode(encoding)


def _absent_byte(data: bytes) -> bytes:
    """A control byte that does not occur in ``data`` (to stand in for a separator)."""
    for b in _SUBSTITUTE_BYTES:
        if b not in data:
            return b
    raise ValueError("no free control byte to use as a separator")  # pragma: no cover


def _split_line(line: str, separator: str, quote: bool) -> list[str]:
    if quote:
        return next(csv.reader([line], delimiter=separator), [])
    return line.split(separator)


def read_header(
    path: str | Path, *, separator: str, quote: bool = False, encoding: str = "utf-8"
) -> list[str]:
    """Field names on line 1 of a delimited file, whitespace-stripped.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        DataFormatError: if the file is empty, line 1 is blank, or names repeat.
    """
    p = _check_file(path)
    with open(p, "rb") as f:
        first = f.readline()
    text = _decode(first, encoding).rstrip("\r\n")
    if not text.strip():
        raise DataFormatError(p, "the header line is blank; expected column names", line=1)
    names = [n.strip() for n in _split_line(text, separator, quote)]
    seen: set[str] = set()
    for k, n in enumerate(names, start=1):
        if not n:
            raise DataFormatError(p, "the header has an empty column name", line=1, column=k)
        if n in seen:
            raise DataFormatError(p, "the header repeats this column name", line=1, column=n)
        seen.add(n)
    return names


def _check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise DataFormatError(p, "file is empty")
    return p


def require_columns(
    path: str | Path, present: Sequence[str], required: Sequence[str], *, line: int | None = 1
) -> None:
    """Raise :class:`DataFormatError` naming ``required`` columns absent from ``present``."""
    missing = [c for c in required if c not in present]
    if missing:
        raise DataFormatError(
            path,
            f"missing required column(s) {missing}; the file has {list(present)}",
            line=line,
        )


def read_delimited(
    path: str | Path,
    *,
    separator: str,
    names: Sequence[str] | None = None,
    header: bool = True,
    dtypes: Mapping[str, pl.DataType] | None = None,
    required: Sequence[str] = (),
    quote: bool = False,
    encoding: str = "utf-8",
    allow_empty: bool = False,
) -> pl.DataFrame:
    """Read a delimited text file into a frame with a :data:`LINE` column.

    Columns are typed as in ``dtypes`` when every value parses (the fast path);
    otherwise every column is text (``Utf8``) and the caller converts with
    :func:`parse_float`, :func:`parse_timestamp` and friends, which report the
    first bad line. Blank lines are skipped; their line numbers are not reused.

    Args:
        path: The file.
        separator: Field separator; may be several characters (``"::"``).
        names: Column names. With ``header=True`` they replace the header's names
            (which are skipped); ``None`` reads the names from line 1.
        header: Whether line 1 is a header.
        dtypes: Types for the fast path, by column name; others are ``Utf8``.
        required: Columns that must exist and hold a value on every line.
        quote: Honour ``"`` quoting (CSV); off for tab- and ``::``-separated
            formats whose titles contain bare quotes.
        encoding: ``"utf-8"`` (invalid bytes become U+FFFD), ``"latin-1"`` or
            ``"auto"`` (UTF-8, else Latin-1).
        allow_empty: Return an empty frame for a file with no data rows instead
            of raising.

    Returns:
        The data, one row per non-blank line, plus ``_line``: the row's 1-based
        line when no quoted value spans lines (reports go through the error
        helpers here, which account for those).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        DataFormatError: empty file, missing column, wrong number of fields on a
            line, or an empty value in a required column.
    """
    p = _check_file(path)
    if names is None:
        if not header:
            raise ValueError("read_delimited needs names= when header=False")
        names = read_header(p, separator=separator, quote=quote, encoding=encoding)
        require_columns(p, names, required)
    names = list(names)
    sep_bytes = separator.encode()
    # Polars reads UTF-8 only: other encodings, and "::" separators, go through memory.
    # "auto" first lets Polars try strict UTF-8 straight from disk (big logs).
    polars_encoding = "utf8" if encoding == "auto" else "utf8-lossy"
    source: str | bytes
    if len(sep_bytes) == 1 and encoding in ("utf-8", "auto"):
        source, polars_sep = str(p), separator
    else:
        source, polars_sep = _in_memory(p, encoding, sep_bytes)

    def _read(schema: dict[str, pl.DataType]) -> pl.DataFrame:
        nonlocal source, polars_sep, polars_encoding
        for attempt in range(2):
            try:
                return pl.read_csv(
                    io.BytesIO(source) if isinstance(source, bytes) else source,
                    has_header=False,
                    skip_rows=1 if header else 0,
                    schema=schema,
                    separator=polars_sep,
                    quote_char='"' if quote else None,
                    encoding=polars_encoding,
                    truncate_ragged_lines=False,
                    raise_if_empty=False,
                )
            except pl.exceptions.ComputeError as exc:
                if attempt or "invalid utf-8" not in str(exc).lower():
                    raise
                log.info("%s: not UTF-8; reading it as Latin-1", p)
                source, polars_sep = _in_memory(p, "latin-1", sep_bytes)
                polars_encoding = "utf8-lossy"
        raise AssertionError("unreachable")  # pragma: no cover

    text_schema: dict[str, pl.DataType] = {n: pl.Utf8() for n in names}
    typed_schema = {n: (dtypes or {}).get(n, pl.Utf8()) for n in names}
    try:
        df = _read(typed_schema)
    except pl.exceptions.ComputeError as exc:
        if typed_schema == text_schema:
            _raise_field_count(
                p,
                exc,
                separator=separator,
                n_fields=len(names),
                header=header,
                quote=quote,
                encoding=encoding,
            )
        log.debug("%s: typed read failed (%s); reading as text", p, str(exc).split("\n")[0])
        try:
            df = _read(text_schema)
        except pl.exceptions.ComputeError as exc2:
            _raise_field_count(
                p,
                exc2,
                separator=separator,
                n_fields=len(names),
                header=header,
                quote=quote,
                encoding=encoding,
            )

    # Line of each row if no quoted value spans lines; _where() adds the newlines
    # held by earlier rows when it reports one (cheaper than fixing every row here).
    df = df.with_row_index(LINE, offset=1 + int(header))
    blank = df.select(pl.all_horizontal([pl.col(c).is_null() for c in names])).to_series()
    if blank.any():  # filtering copies every column: only when there are blank lines
        df = df.filter(~blank)
    if df.height == 0 and not allow_empty:
        what = "a header but no data rows" if header else "no data rows"
        raise DataFormatError(p, f"file has {what}")
    for col in required:
        if df[col].null_count():  # whitespace-only values are caught by parse_ids & co.
            row = int(df[col].is_null().arg_true()[0])
            line, _ = _where(df, row)
            assert line is not None
            _raise_short_line(
                p, line, separator=separator, n_fields=len(names), quote=quote, encoding=encoding
            )
            raise DataFormatError(p, "empty value in a required column", line=line, column=col)
    return df


def _in_memory(path: Path, encoding: str, sep_bytes: bytes) -> tuple[bytes, str]:
    """File bytes as UTF-8, with a multi-byte separator replaced by a free control byte."""
    data = path.read_bytes()
    if encoding != "utf-8":
        data = _decode(data, encoding).encode("utf-8")
    if len(sep_bytes) == 1:
        return data, sep_bytes.decode()
    sub = _absent_byte(data)
    return data.replace(sep_bytes, sub), sub.decode()


def _raw_lines(path: Path, encoding: str) -> pl.Series:
    """Every physical line of ``path`` as text (blank lines null), for error reports."""
    data = path.read_bytes()
    if encoding != "utf-8":
        data = _decode(data, encoding).encode("utf-8")
    sep = _absent_byte(data)
    return pl.read_csv(
        io.BytesIO(data),
        has_header=False,
        separator=sep.decode(),
        quote_char=None,
        schema={"text": pl.Utf8()},
        encoding="utf8-lossy",
        raise_if_empty=False,
    )["text"].str.strip_suffix("\r")


def _field_counts(lines: pl.Series, separator: str, quote: bool) -> pl.Series:
    if quote:
        lines = lines.str.replace_all(r'"(?:[^"]|"")*"', "")
    return lines.str.count_matches(separator, literal=True) + 1


def _raise_field_count(
    path: Path,
    exc: Exception,
    *,
    separator: str,
    n_fields: int,
    header: bool,
    quote: bool,
    encoding: str,
) -> NoReturn:
    """Turn a Polars parse failure into a DataFormatError naming the first ragged line."""
    lines = _raw_lines(path, encoding)
    counts = _field_counts(lines, separator, quote)
    bad = (counts != n_fields) & lines.is_not_null() & (lines.str.strip_chars() != "")
    if header:
        bad[0] = False
    if bad.any():
        row = int(bad.arg_true()[0])
        raise DataFormatError(
            path,
            f"expected {n_fields} fields separated by {separator!r}, found {counts[row]}",
            line=row + 1,
        ) from exc
    first = str(exc).strip().split("\n")[0]
    raise DataFormatError(path, f"cannot parse the file: {first}") from exc


def _raise_short_line(
    path: Path, line: int, *, separator: str, n_fields: int, quote: bool, encoding: str
) -> None:
    """Raise if ``line`` has fewer fields than expected (Polars pads such lines with nulls)."""
    lines = _raw_lines(path, encoding)
    if line - 1 >= len(lines):
        return
    text = lines[line - 1]
    if text is None:
        return
    n = len(_split_line(text, separator, quote))
    if n != n_fields:
        raise DataFormatError(
            path, f"expected {n_fields} fields separated by {separator!r}, found {n}", line=line
        )


def read_parquet_checked(
    path: str | Path, *, required: Sequence[str] = (), allow_empty: bool = False
) -> pl.DataFrame:
    """Read a Parquet file, adding :data:`ROW` (1-based row number).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        DataFormatError: if the file is empty, unreadable, or lacks a required column.
    """
    p = _check_file(path)
    try:
        df = pl.read_parquet(p)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataFormatError(p, f"cannot read as Parquet: {str(exc).splitlines()[0]}") from exc
    require_columns(p, df.columns, required, line=None)
    if df.height == 0 and not allow_empty:
        raise DataFormatError(p, "file has no rows")
    return df.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))


def read_any_table(
    path: str | Path,
    *,
    required: Sequence[str] = (),
    dtypes: Mapping[str, pl.DataType] | None = None,
    separator: str | None = None,
    allow_empty: bool = False,
) -> pl.DataFrame:
    """Read a CSV/TSV (by suffix, or ``separator``) or Parquet file with a header.

    Raises:
        ValueError: if the suffix is not one of .csv, .tsv, .tab, .parquet, .pq and
            no ``separator`` is given.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in PARQUET_SUFFIXES and separator is None:
        return read_parquet_checked(p, required=required, allow_empty=allow_empty)
    sep = separator or TEXT_SUFFIXES.get(suffix)
    if sep is None:
        raise ValueError(
            f"path {p}: unknown table format {suffix!r}; use .csv, .tsv, .tab, .parquet or .pq"
        )
    return read_delimited(
        p,
        separator=sep,
        dtypes=dtypes,
        required=required,
        quote=sep == ",",
        encoding="auto",
        allow_empty=allow_empty,
    )


# ---------------------------------------------------------------------------
# Converting columns, with the first bad line named
# ---------------------------------------------------------------------------
def _where(df: pl.DataFrame, row: int) -> tuple[int | None, str]:
    """(line, prefix) locating ``row``: a text line, or a Parquet row in the message."""
    if LINE in df.columns:
        # quoted values holding newlines push later rows down (only quoted CSV has them)
        before = df.head(row)
        shift = sum(
            int(before[c].str.count_matches("\n", literal=True).sum() or 0)
            for c, t in before.schema.items()
            if t == pl.Utf8
        )
        return int(df[LINE][row]) + shift, ""
    if ROW in df.columns:
        return None, f"row {int(df[ROW][row])}: "
    return None, f"row {row + 1}: "


def _fail(df: pl.DataFrame, mask: pl.Series, path: str | Path, column: str, what: str) -> None:
    """Raise a DataFormatError at the first True of ``mask``, quoting the raw value."""
    if not mask.any():
        return
    row = int(mask.arg_true()[0])
    line, prefix = _where(df, row)
    value = df[column][row]
    raise DataFormatError(
        path, f"{prefix}cannot read {value!r} as {what}", line=line, column=column
    )


def _text(s: pl.Series) -> pl.Series:
    """Stripped text with empty strings as null."""
    t = s.cast(pl.Utf8).str.strip_chars().alias(s.name)
    empty = t.str.len_bytes() == 0
    if empty.any():
        t = pl.select(pl.when(empty).then(None).otherwise(t)).to_series().alias(s.name)
    return t


def _check_required(df: pl.DataFrame, values: pl.Series, path: str | Path, column: str) -> None:
    missing = values.is_null()
    if missing.any():
        row = int(missing.arg_true()[0])
        line, prefix = _where(df, row)
        raise DataFormatError(
            path, f"{prefix}empty value in a required column", line=line, column=column
        )


def parse_float(
    df: pl.DataFrame, column: str, path: str | Path, *, required: bool = True
) -> pl.Series:
    """Column as Float64; a non-numeric, NaN or infinite value raises.

    Raises:
        DataFormatError: naming ``path``, the line and ``column``.
    """
    s = df[column]
    if s.dtype.is_numeric():
        out = s.cast(pl.Float64)
    else:
        src = _text(s)
        out = src.cast(pl.Float64, strict=False)
        _fail(df, out.is_null() & src.is_not_null(), path, column, "a number")
    _fail(df, out.is_not_null() & ~out.is_finite().fill_null(True), path, column, "a finite number")
    if required:
        _check_required(df, out, path, column)
    return out.alias(column)


def parse_ids(df: pl.DataFrame, column: str, path: str | Path) -> pl.Series:
    """Column as stripped text ids (external id space); an empty id raises."""
    s = df[column]
    # integers (the typed fast path) need no stripping: casting is much cheaper
    out = s.cast(pl.Utf8) if s.dtype.is_integer() else _text(s).alias(column)
    _check_required(df, out, path, column)
    return out


def parse_timestamp(df: pl.DataFrame, column: str, path: str | Path) -> pl.Series:
    """Column as unix seconds (Int64).

    Accepts integer or fractional unix seconds (floored), ISO-8601 date-times
    (an offset or ``Z`` is honoured; naive values are taken as UTC) and dates.
    The first non-empty value decides between "number" and "date-time".

    Raises:
        DataFormatError: naming ``path``, the line and ``column`` of the first
            value that cannot be read, or of an empty one.
    """
    s = df[column]
    if s.dtype.is_integer():
        out = s.cast(pl.Int64)
    elif s.dtype.is_float():
        _fail(
            df, s.is_not_null() & ~s.is_finite().fill_null(True), path, column, "a unix timestamp"
        )
        out = s.floor().cast(pl.Int64)
    elif s.dtype == pl.Datetime or s.dtype == pl.Date:
        out = _datetime_seconds(s)
    else:
        src = _text(s)
        first = src.drop_nulls().head(1)
        numeric = first.len() == 0 or first.cast(pl.Float64, strict=False).is_not_null().all()
        if numeric:
            as_int = src.cast(pl.Int64, strict=False)
            if (as_int.is_null() & src.is_not_null()).any():
                as_float = src.cast(pl.Float64, strict=False)
                _fail(
                    df,
                    (as_float.is_null() & src.is_not_null())
                    | ~as_float.is_finite().fill_null(True),
                    path,
                    column,
                    "a unix timestamp (seconds)",
                )
                as_int = as_float.floor().cast(pl.Int64)
            out = as_int
        else:
            out = _parse_datetimes(src)
            _fail(
                df,
                out.is_null() & src.is_not_null(),
                path,
                column,
                "a unix timestamp or an ISO-8601 date-time",
            )
    _check_required(df, out, path, column)
    top = out.max()
    if isinstance(top, int) and top > _MAX_PLAUSIBLE_SECONDS:
        log.warning(
            "%s: column %r holds values above %d; timestamps must be unix *seconds* "
            "(are these milliseconds?)",
            path,
            column,
            _MAX_PLAUSIBLE_SECONDS,
        )
    return out.alias(column)


def _parse_datetimes(src: pl.Series, max_formats: int = 8) -> pl.Series:
    """Date-time strings -> unix seconds (Int64), null where no format fits.

    Polars infers one format from the first value; a column mixing formats (with
    and without an offset, dates and date-times) is parsed one format at a time.
    """
    out = pl.Series(src.name, [None] * src.len(), dtype=pl.Int64)
    todo = src
    for _ in range(max_formats):
        if todo.null_count() == todo.len():
            break
        try:
            parsed = todo.str.to_datetime(strict=False, time_unit="us")
        except pl.exceptions.PolarsError:  # no format inferred from the first value
            break
        secs = _datetime_seconds(parsed)
        if secs.null_count() == secs.len():
            break
        out = out.zip_with(out.is_not_null(), secs)
        todo = todo.zip_with(secs.is_null(), pl.Series([None] * src.len(), dtype=pl.Utf8))
    return out


def _datetime_seconds(s: pl.Series) -> pl.Series:
    if s.dtype == pl.Date:
        s = s.cast(pl.Datetime("us"))
    dtype = s.dtype
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return s.dt.epoch("s").cast(pl.Int64)


def parse_event(df: pl.DataFrame, column: str, path: str | Path) -> pl.Series:
    """Column of event names (case-insensitive) from :data:`EVENT_TYPES`.

    Raises:
        DataFormatError: at the first unknown or empty event name.
    """
    src = _text(df[column]).str.to_lowercase()
    _fail(
        df,
        src.is_not_null() & ~src.is_in(EVENT_TYPES),
        path,
        column,
        f"an event type (one of {list(EVENT_TYPES)})",
    )
    _check_required(df, src, path, column)
    return src.alias(column)


def lenient_int(
    df: pl.DataFrame, column: str, path: str | Path, dtype: pl.DataType | None = None
) -> pl.Series:
    """Metadata column as integers; unreadable values become null with one warning."""
    s = df[column]
    dtype = dtype or pl.Int32()
    if s.dtype.is_integer():
        return s.cast(dtype).alias(column)
    src = s.cast(pl.Float64) if s.dtype.is_float() else _text(s)
    as_float = src.cast(pl.Float64, strict=False)
    out = as_float.floor().cast(dtype, strict=False)
    _warn_unreadable(df, out.is_null() & src.is_not_null(), path, column, "an integer")
    return out.alias(column)


def lenient_date(
    df: pl.DataFrame, column: str, path: str | Path, fmt: str | None = None
) -> pl.Series:
    """Metadata column as dates; unreadable values become null with one warning."""
    s = df[column]
    if s.dtype == pl.Date:
        return s
    if isinstance(s.dtype, pl.Datetime):
        return s.dt.date()
    src = _text(s)
    out = src.str.to_date(fmt, strict=False)
    _warn_unreadable(df, out.is_null() & src.is_not_null(), path, column, "a date")
    return out.alias(column)


def _warn_unreadable(
    df: pl.DataFrame, mask: pl.Series, path: str | Path, column: str, what: str
) -> None:
    n = int(mask.sum())
    if n:
        row = int(mask.arg_true()[0])
        line, prefix = _where(df, row)
        where = f"line {line}" if line is not None else prefix.rstrip(": ")
        log.warning(
            "%s: %d value(s) in column %r are not %s and were left empty (first at %s: %r)",
            path,
            n,
            column,
            what,
            where,
            df[column][row],
        )


def split_list(s: pl.Series, separator: str = "|") -> pl.Series:
    """``"A|B"`` strings (or lists) -> list of stripped, non-empty strings.

    ``"(no genres listed)"`` (MovieLens' marker) becomes an empty list.
    """
    if isinstance(s.dtype, pl.List):
        out = s.cast(pl.List(pl.Utf8))
    else:
        out = _text(s).str.split(separator)
    out = out.list.eval(pl.element().str.strip_chars()).list.eval(
        pl.element().filter((pl.element() != "") & (pl.element() != "(no genres listed)"))
    )
    return out.fill_null([]).alias(s.name)


def first_duplicate(df: pl.DataFrame, column: str, path: str | Path, what: str) -> None:
    """Raise :class:`DataFormatError` at the second occurrence of a repeated id."""
    dup = df[column].is_duplicated() & ~df[column].is_first_distinct()
    if dup.any():
        row = int(dup.arg_true()[0])
        line, prefix = _where(df, row)
        raise DataFormatError(
            path, f"{prefix}{what} {df[column][row]!r} appears twice", line=line, column=column
        )


def file_inputs(*paths: Path) -> dict[str, str]:
    """``{file name: sha256}`` of input files, for a dataset manifest."""
    return {p.name: sha256_file(p) for p in paths}


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
        event: Event type column (names from ``EVENT_TYPES``), or None.
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
