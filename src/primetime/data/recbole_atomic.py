"""RecBole "atomic" files -> :class:`~primetime.data.dataset.Dataset`.

A RecBole data set ``X`` is a folder of tab-separated files ``X.inter``
(interactions), ``X.item``, ``X.user``, ``X.kg`` (``head_id relation_id tail_id``)
and ``X.link`` (``item_id entity_id``). Line 1 names each field with its type,
``name:type``, where the type is ``token``, ``token_seq`` (space-separated
tokens), ``float`` or ``float_seq``. Fields are not quoted: titles hold bare
quotes and apostrophes.

Mapping onto Primetime's frames:

* ``.inter``: ``user_id``, ``item_id``, ``rating`` (optional), ``timestamp``
  (optional: without it every event gets time 0, with a warning).
* ``.item``: ``movie_title``/``title`` -> ``title``; ``release_year``/``year`` ->
  ``year`` (an unreadable year is taken from a trailing ``(1995)`` in the title
  if there is one, else left empty); ``class``/``genre``/``genres``/``categories``
  (``token_seq``) -> ``genres``.
* ``.user``: ``user_id`` plus ``age`` (integer), ``gender``, ``occupation``,
  ``zip_code`` and any other fields as text. Users without interactions are kept.
* ``.kg`` + ``.link``: entities that are linked movies become the catalog's
  ``item_id``; all other entities keep their Freebase mid. Link rows whose
  ``item_id`` is not in the catalog are dropped (warned); an entity linked to
  several items keeps its first link (warned).
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from primetime.data.dataset import Dataset
from primetime.data.errors import DataFormatError
from primetime.data.tabular import (
    LINE,
    file_inputs,
    first_duplicate,
    lenient_int,
    parse_float,
    parse_ids,
    parse_timestamp,
    read_delimited,
    read_header,
    require_columns,
    split_list,
    warn_unused_side_rows,
)

log = logging.getLogger(__name__)

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
ATOMIC_SUFFIXES = ("inter", "item", "user", "link", "kg")

_TITLE_FIELDS = ("movie_title", "title")
_YEAR_FIELDS = ("release_year", "year")
_GENRE_FIELDS = ("class", "genre", "genres", "categories")
#: A year at the end of a title: "Toy Story (1995)".
TITLE_YEAR = r"\s*\((\d{4})\)\s*$"


def read_atomic_header(path: str | Path) -> dict[str, str]:
    """Field name -> RecBole type from line 1 of an atomic file.

    Raises:
        DataFormatError: if a field is not ``name:type`` with a known type.
    """
    fields: dict[str, str] = {}
    for raw in read_header(path, separator="\t"):
        name, sep, kind = raw.rpartition(":")
        if not sep or not name:
            raise DataFormatError(path, "header field is not 'name:type'", line=1, column=raw)
        if kind not in ATOMIC_TYPES:
            raise DataFormatError(
                path,
                f"unknown field type {kind!r}; expected one of {list(ATOMIC_TYPES)}",
                line=1,
                column=raw,
            )
        if name in fields:
            raise DataFormatError(path, "the header repeats this field", line=1, column=name)
        fields[name] = kind
    return fields


def read_atomic(
    path: str | Path, *, required: tuple[str, ...] = (), allow_empty: bool = False
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Read one atomic file.

    Args:
        path: The file.
        required: Field names (without type) that must exist and be non-empty.
        allow_empty: Accept a file with a header and no rows.

    Returns:
        ``(frame, types)``: columns named without their type suffix (text, or
        Float64 for ``float`` fields when every value parses) plus ``_line``;
        ``types`` maps each name to its RecBole type.

    Raises:
        DataFormatError: see :func:`~primetime.data.tabular.read_delimited`.
    """
    types = read_atomic_header(path)
    require_columns(path, list(types), required)
    dtypes: dict[str, pl.DataType] = {n: pl.Float64() for n, t in types.items() if t == "float"}
    df = read_delimited(
        path,
        separator="\t",
        names=list(types),
        header=True,
        dtypes=dtypes,
        required=required,
        allow_empty=allow_empty,
    )
    return df, types


def atomic_files(directory: str | Path, name: str | None = None) -> dict[str, Path]:
    """The atomic files of data set ``name`` in ``directory``, by suffix.

    Args:
        directory: The folder.
        name: File stem (``"ml-100k"``); ``None`` picks the folder's only ``*.inter``.

    Raises:
        FileNotFoundError: if there is no (or no unique) ``.inter`` file.
    """
    d = Path(directory)
    if name is None:
        inters = sorted(d.glob("*.inter"))
        if len(inters) != 1:
            raise FileNotFoundError(
                f"{d}: expected exactly one *.inter file, found {[p.name for p in inters]}; "
                "pass the data set name"
            )
        name = inters[0].stem
    files = {s: d / f"{name}.{s}" for s in ATOMIC_SUFFIXES if (d / f"{name}.{s}").is_file()}
    if "inter" not in files:
        raise FileNotFoundError(f"{d}: no {name}.inter file")
    return files


def _first(names: tuple[str, ...], present: dict[str, str]) -> str | None:
    return next((n for n in names if n in present), None)


def _read_inter(path: Path) -> pl.DataFrame:
    df, types = read_atomic(path, required=("user_id", "item_id"))
    cols = [parse_ids(df, "user_id", path), parse_ids(df, "item_id", path)]
    if "rating" in types:
        cols.append(parse_float(df, "rating", path))
    if "timestamp" in types:
        cols.append(parse_timestamp(df, "timestamp", path))
    else:
        log.warning(
            "%s: no timestamp field; every event gets time 0 and file order is the only order", path
        )
        cols.append(pl.Series("timestamp", [0] * df.height, dtype=pl.Int64))
    return pl.DataFrame(cols)


def _read_items(path: Path) -> pl.DataFrame:
    df, types = read_atomic(path, required=("item_id",), allow_empty=True)
    df = df.with_columns(parse_ids(df, "item_id", path))
    first_duplicate(df, "item_id", path, "item_id")
    out = [df["item_id"]]
    title_col, year_col, genre_col = (
        _first(f, types) for f in (_TITLE_FIELDS, _YEAR_FIELDS, _GENRE_FIELDS)
    )
    title = df[title_col].str.strip_chars().alias("title") if title_col else None
    if year_col:
        if title is not None:
            # "Land Before Time III (1995)" with year "V": the title knows better
            raw = df[year_col].str.strip_chars()
            from_title = title.str.extract(TITLE_YEAR, 1)
            fix = raw.cast(pl.Int32, strict=False).is_null() & from_title.is_not_null()
            if fix.any():
                fixed = pl.select(pl.when(fix).then(from_title).otherwise(raw)).to_series()
                df = df.with_columns(fixed.alias(year_col))
                title = pl.select(
                    pl.when(fix).then(title.str.replace(TITLE_YEAR, "")).otherwise(title)
                ).to_series()
        out.append(lenient_int(df, year_col, path).alias("year"))
    if title is not None:
        out.append(title.alias("title"))
    if genre_col:
        out.append(split_list(df[genre_col], " ").alias("genres"))
    return pl.DataFrame(out)


def _read_users(path: Path) -> pl.DataFrame:
    df, types = read_atomic(path, required=("user_id",), allow_empty=True)
    df = df.with_columns(parse_ids(df, "user_id", path))
    first_duplicate(df, "user_id", path, "user_id")
    cols = [df["user_id"]]
    for name in types:
        if name == "user_id":
            continue
        cols.append(lenient_int(df, name, path) if name == "age" else df[name])
    return pl.DataFrame(cols)


def _read_kg(kg_path: Path, link_path: Path | None, item_ids: pl.Series, name: str) -> pl.DataFrame:
    """Triples with linked entities replaced by catalog item ids."""
    kg, _ = read_atomic(kg_path, required=("head_id", "relation_id", "tail_id"), allow_empty=True)
    kg = pl.DataFrame([parse_ids(kg, c, kg_path) for c in ("head_id", "relation_id", "tail_id")])
    kg = kg.rename({"head_id": "head", "relation_id": "relation", "tail_id": "tail"})
    before = kg.height
    kg = kg.unique(maintain_order=True)
    if kg.height < before:
        log.warning("%s: dropped %d repeated triple(s)", kg_path, before - kg.height)
    if link_path is None:
        log.warning("%s: no .link file; knowledge-graph entities are not tied to titles", name)
        return kg
    link, _ = read_atomic(link_path, required=("item_id", "entity_id"), allow_empty=True)
    link = pl.DataFrame(
        [parse_ids(link, "item_id", link_path), parse_ids(link, "entity_id", link_path), link[LINE]]
    )
    known = link["item_id"].is_in(item_ids.implode())
    if not known.all():
        log.warning(
            "%s: dropped %d link row(s) whose item_id is not in the catalog",
            link_path,
            int((~known).sum()),
        )
        link = link.filter(known)
    dup = link["entity_id"].is_duplicated()
    if dup.any():
        log.warning(
            "%s: %d entity id(s) are linked to several items; each keeps its first link",
            link_path,
            link.filter(dup)["entity_id"].n_unique(),
        )
        link = link.unique("entity_id", keep="first", maintain_order=True)
    ent = link.select("entity_id", "item_id")
    kg = (
        kg.join(
            ent.rename({"entity_id": "head", "item_id": "_h"}),
            on="head",
            how="left",
            maintain_order="left",
        )
        .join(
            ent.rename({"entity_id": "tail", "item_id": "_t"}),
            on="tail",
            how="left",
            maintain_order="left",
        )
        .select(
            pl.coalesce("_h", "head").alias("head"),
            "relation",
            pl.coalesce("_t", "tail").alias("tail"),
        )
    )
    return kg


def load_atomic(
    directory: str | Path,
    name: str | None = None,
    *,
    dataset_name: str | None = None,
    source: str | None = None,
) -> Dataset:
    """Load RecBole atomic files into a dataset.

    Args:
        directory: Folder holding ``<name>.inter`` and optional ``.item``,
            ``.user``, ``.link``, ``.kg``.
        name: File stem; ``None`` picks the folder's only ``*.inter``.
        dataset_name: Name of the dataset; default ``name``.
        source: Provenance for the manifest; default the folder's absolute path.

    Returns:
        The dataset; its manifest records the sha256 of every file read.

    Raises:
        FileNotFoundError: no ``.inter`` file.
        DataFormatError: a malformed file (see :mod:`primetime.data.tabular`).
    """
    files = atomic_files(directory, name)
    stem = files["inter"].stem
    ds_name = dataset_name or stem
    inter = _read_inter(files["inter"])
    catalog = users = kg = None
    if "item" in files:
        catalog = _read_items(files["item"])
        warn_unused_side_rows(
            ds_name,
            "item",
            catalog["item_id"],
            inter["item_id"],
            files["item"],
            "kept as titles nobody has watched yet",
        )
    if "user" in files:
        users = _read_users(files["user"])
        warn_unused_side_rows(
            ds_name, "user", users["user_id"], inter["user_id"], files["user"], "kept"
        )
    if "kg" in files:
        known = [inter["item_id"]] + ([catalog["item_id"]] if catalog is not None else [])
        item_ids = pl.concat(known).unique()
        kg = _read_kg(files["kg"], files.get("link"), item_ids, ds_name)
    elif "link" in files:
        log.warning("%s: %s has no .kg file to link; ignored", ds_name, files["link"])
    return Dataset.from_frames(
        ds_name,
        interactions=inter,
        catalog=catalog,
        users=users,
        kg=kg,
        source=source or str(Path(directory).resolve()),
        inputs=file_inputs(*files.values()),
    )
