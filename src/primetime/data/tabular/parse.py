"""Column parsers: typed columns from text, with the first bad line named."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import polars as pl

from primetime.data.dataset import sha256_file
from primetime.data.errors import DataFormatError
from primetime.data.events import EVENT_NAMES, EventType
from primetime.data.tabular.read import _where

log = logging.getLogger(__name__)

#: Timestamps above this many "seconds" (year 5138) are almost surely milliseconds.
_MAX_PLAUSIBLE_SECONDS = 100_000_000_000


# ---------------------------------------------------------------------------
# Converting columns, with the first bad line named
# ---------------------------------------------------------------------------
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
    """Column of canonical event names (:class:`EventType` values).

    Any spelling :meth:`EventType.parse` reads is accepted (any case, ``_`` for
    ``-``, the legacy ``search_click``), so files written with the old names load.

    Raises:
        DataFormatError: at the first unknown or empty event name.
    """
    src = _text(df[column])
    canonical: dict[str, str] = {}
    for name in src.drop_nulls().unique().to_list():
        with contextlib.suppress(ValueError):  # unknown: refused by _fail below
            canonical[name] = EventType.parse(name).value
    _fail(
        df,
        src.is_not_null() & ~src.is_in(list(canonical)),
        path,
        column,
        f"an event type (one of {list(EVENT_NAMES)})",
    )
    _check_required(df, src, path, column)
    return src.replace_strict(canonical, return_dtype=pl.Utf8).alias(column)


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
