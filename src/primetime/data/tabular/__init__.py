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

Modules
-------
* :mod:`.read` — delimited text and Parquet files into frames, and locating a
  row's file line for error messages.
* :mod:`.parse` — column parsers (ids, ratings, timestamps, events, lenient
  metadata) that name the first bad line.
* :mod:`.tables` — generic interaction / item / user tables
  (:class:`ColumnMapping`, :func:`load_table`).
"""

from primetime.data.tabular.parse import (
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
    read_any_table,
    read_delimited,
    read_header,
    read_parquet_checked,
    require_columns,
)
from primetime.data.tabular.tables import (
    ColumnMapping,
    load_table,
    read_interactions,
    read_items,
    read_users,
    warn_unused_side_rows,
)

__all__ = [
    "ColumnMapping",
    "LINE",
    "PARQUET_SUFFIXES",
    "ROW",
    "TEXT_SUFFIXES",
    "file_inputs",
    "first_duplicate",
    "lenient_date",
    "lenient_int",
    "load_table",
    "parse_event",
    "parse_float",
    "parse_ids",
    "parse_timestamp",
    "read_any_table",
    "read_delimited",
    "read_header",
    "read_interactions",
    "read_items",
    "read_parquet_checked",
    "read_users",
    "require_columns",
    "split_list",
    "warn_unused_side_rows",
]
