"""Reading delimited text and Parquet, with errors that name the file, line and column."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import polars as pl

from primetime.data.errors import DataFormatError

log = logging.getLogger(__name__)

#: Column added by the readers: the 1-based line of each row in its text file.
LINE = "_line"
#: Column added by the Parquet reader: the 1-based row number.
ROW = "_row"

TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")
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
