"""MovieLens: ml-100k fetched from PyPI, and every GroupLens layout a user may have.

``fetch_ml100k`` gets MovieLens-100k (with a Freebase knowledge graph) from the
``recbole==1.2.1`` wheel through pip, checks it by sha256, and unpacks the
atomic files (see ``shared/DATA.md``; the code is in
:mod:`primetime.data.recbole_wheel`, re-exported here). Nothing else is
downloaded: the larger MovieLens sets are read from files the user already
has, in GroupLens' own layouts:

======== ========================================== ===================================
layout   files                                      format
======== ========================================== ===================================
ml-100k  ``u.data``, ``u.item``, ``u.user``         tab / ``|``, no header, Latin-1
ml-1m    ``ratings.dat``, ``movies.dat``,           ``::``, no header, Latin-1
         ``users.dat``
ml-10m   ``ratings.dat``, ``movies.dat``,           ``::``, no header (no users file)
         ``tags.dat``
csv      ``ratings.csv``, ``movies.csv``,           CSV with a header (ml-20m, ml-25m,
         ``tags.csv``, ``links.csv``                ml-latest, ml-latest-small)
======== ========================================== ===================================

Titles lose their trailing ``(1995)`` to ``year``. Tags become knowledge-graph
triples ``(item_id, "tag", "tag:<tag>")`` (tag lower-cased, spaces collapsed,
one triple per distinct pair); ``links.csv`` becomes ``(item_id, "imdb",
"imdb:tt0114709")`` and ``(item_id, "tmdb", "tmdb:862")``. Tag and link rows
for movies missing from the movies file are dropped with a warning; users in
the users file without ratings are kept with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from primetime.data.dataset import Dataset
from primetime.data.recbole_wheel import (
    ML100K_ATOMIC_SHA256,
    ML100K_DIRNAME,
    ML100K_WHEEL_DIR,
    RECBOLE_REQUIREMENT,
    RECBOLE_WHEEL,
    RECBOLE_WHEEL_SHA256,
    fetch_ml100k,
    load_ml100k,
)
from primetime.data.tabular import (
    LINE,
    file_inputs,
    first_duplicate,
    lenient_date,
    lenient_int,
    parse_float,
    parse_ids,
    parse_timestamp,
    read_delimited,
    split_list,
    warn_unused_side_rows,
)

log = logging.getLogger(__name__)

#: Public names, including those of :mod:`primetime.data.recbole_wheel` (re-exported).
__all__ = [
    "CSV_HEADERS",
    "LAYOUTS",
    "ML100K_ATOMIC_SHA256",
    "ML100K_DIRNAME",
    "ML100K_GENRES",
    "ML100K_WHEEL_DIR",
    "ML1M_OCCUPATIONS",
    "RECBOLE_REQUIREMENT",
    "RECBOLE_WHEEL",
    "RECBOLE_WHEEL_SHA256",
    "TITLE_YEAR",
    "fetch_ml100k",
    "grouplens_files",
    "grouplens_layout",
    "grouplens_name",
    "load_grouplens",
    "load_ml100k",
    "split_title_year",
]

#: ml-100k's 19 genre flags, in column order (u.genre).
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
#: ml-1m's occupation codes (README).
ML1M_OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
#: A year (or a span "2007-2013", "2007-") closing a title.
TITLE_YEAR = r"\s*\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$"

#: Header names of the CSV layout's files.
CSV_HEADERS: dict[str, list[str]] = {
    "ratings": ["userId", "movieId", "rating", "timestamp"],
    "movies": ["movieId", "title", "genres"],
    "tags": ["userId", "movieId", "tag", "timestamp"],
    "links": ["movieId", "imdbId", "tmdbId"],
}
_RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
# ids stay text (tokens: "007" is not "7"); numbers are typed on the fast path
_RATING_DTYPES: dict[str, pl.DataType] = {"rating": pl.Float64(), "timestamp": pl.Int64()}


# ---------------------------------------------------------------------------
# GroupLens layouts
# ---------------------------------------------------------------------------
#: layout -> (required files, optional files)
LAYOUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ml-100k": (("u.data", "u.item"), ("u.user", "u.genre")),
    "ml-1m": (("ratings.dat", "movies.dat", "users.dat"), ()),
    "ml-10m": (("ratings.dat", "movies.dat"), ("tags.dat",)),
    "csv": (("ratings.csv", "movies.csv"), ("tags.csv", "links.csv")),
}


def _match_layout(d: Path) -> str | None:
    for layout, (required, _) in LAYOUTS.items():
        if all((d / f).is_file() for f in required):
            return layout
    return None


def grouplens_layout(path: str | Path) -> tuple[str, Path]:
    """Which GroupLens layout ``path`` holds.

    Args:
        path: The unzipped folder, a file in it, or a folder holding exactly one
            such folder.

    Returns:
        ``(layout, folder)`` with layout one of :data:`LAYOUTS`.

    Raises:
        FileNotFoundError: if no layout matches, listing what was looked for.
    """
    p = Path(path)
    d = p.parent if p.is_file() else p
    layout = _match_layout(d)
    if layout:
        return layout, d
    if d.is_dir():
        found = [(lay, s) for s in sorted(d.iterdir()) if s.is_dir() and (lay := _match_layout(s))]
        if len(found) == 1:
            return found[0]
    wanted = "; ".join(f"{k}: {', '.join(v[0])}" for k, v in LAYOUTS.items())
    raise FileNotFoundError(
        f"{p}: not a MovieLens folder; expected the files of one layout ({wanted})"
    )


def grouplens_files(path: str | Path) -> list[Path]:
    """The files :func:`load_grouplens` reads for ``path``, in a fixed order."""
    layout, d = grouplens_layout(path)
    required, optional = LAYOUTS[layout]
    return [d / f for f in required] + [d / f for f in optional if (d / f).is_file()]


def _read(
    path: Path,
    separator: str,
    columns: list[str],
    *,
    header: list[str] | None = None,
    required: list[str] | None = None,
    dtypes: dict[str, pl.DataType] | None = None,
    encoding: str = "utf-8",
    allow_empty: bool = False,
) -> pl.DataFrame:
    """Read a GroupLens file into ``columns`` (internal names) plus ``_line``.

    Args:
        header: The file's header names for ``columns`` (the CSV layout), or
            ``None`` for a file without a header (its fields are ``columns``).
        required: Internal names of the columns that must hold a value.
    """
    required = required or []
    if header is None:
        return read_delimited(
            path,
            separator=separator,
            names=columns,
            header=False,
            dtypes=dtypes,
            required=required,
            encoding=encoding,
            allow_empty=allow_empty,
        )
    to_file = dict(zip(columns, header, strict=True))
    df = read_delimited(
        path,
        separator=separator,
        header=True,
        quote=True,
        encoding=encoding,
        dtypes={to_file[c]: t for c, t in (dtypes or {}).items()},
        required=[to_file[c] for c in required],
        allow_empty=allow_empty,
    )
    return df.select(
        *[
            pl.col(to_file[c]).alias(c)
            if to_file[c] in df.columns
            else pl.lit(None, dtype=pl.Utf8).alias(c)
            for c in columns
        ],
        LINE,
    )


def _ratings(path: Path, separator: str, *, header: list[str] | None = None) -> pl.DataFrame:
    df = _read(
        path,
        separator,
        _RATING_COLUMNS,
        header=header,
        dtypes=_RATING_DTYPES,
        required=_RATING_COLUMNS,
    )
    return pl.DataFrame(
        [
            parse_ids(df, "user_id", path),
            parse_ids(df, "item_id", path),
            parse_float(df, "rating", path),
            parse_timestamp(df, "timestamp", path),
        ]
    )


def split_title_year(title: pl.Series) -> tuple[pl.Series, pl.Series]:
    """``"Toy Story (1995)"`` -> (``"Toy Story"``, 1995); titles without a year keep it null."""
    t = title.cast(pl.Utf8).str.strip_chars()
    year = t.str.extract(TITLE_YEAR, 1).cast(pl.Int32, strict=False).alias("year")
    bare = t.str.replace(TITLE_YEAR, "").str.strip_chars()
    bare = pl.select(pl.when(bare == "").then(t).otherwise(bare)).to_series().alias("title")
    return bare, year


def _movies(path: Path, separator: str, *, header: list[str] | None = None) -> pl.DataFrame:
    df = _read(
        path,
        separator,
        ["item_id", "title", "genres"],
        header=header,
        required=["item_id"],
        encoding="auto",
    )
    df = df.with_columns(parse_ids(df, "item_id", path))
    first_duplicate(df, "item_id", path, "item_id")
    title, year = split_title_year(df["title"].fill_null(df["item_id"]))
    return pl.DataFrame([df["item_id"], title, year, split_list(df["genres"], "|")])


def _ml100k_items(d: Path) -> pl.DataFrame:
    path = d / "u.item"
    genres = list(ML100K_GENRES)
    if (d / "u.genre").is_file():
        g = read_delimited(
            d / "u.genre",
            separator="|",
            names=["genre", "code"],
            header=False,
            required=["genre", "code"],
            encoding="auto",
        )
        genres = g.sort(pl.col("code").cast(pl.Int64, strict=False))["genre"].to_list()
    flags = [f"_g{k}" for k in range(len(genres))]
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *flags]
    df = read_delimited(
        path,
        separator="|",
        names=names,
        header=False,
        required=["item_id"],
        encoding="auto",
    )
    df = df.with_columns(parse_ids(df, "item_id", path))
    first_duplicate(df, "item_id", path, "item_id")
    title, year = split_title_year(df["title"].fill_null(df["item_id"]))
    release = lenient_date(df, "release_date", path, "%d-%b-%Y")
    year = pl.select(pl.coalesce(year, release.dt.year().cast(pl.Int32))).to_series()
    genre_list = df.select(
        pl.concat_list(
            [
                pl.when(pl.col(f).str.strip_chars() == "1").then(pl.lit(g))
                for f, g in zip(flags, genres, strict=True)
            ]
        )
        .list.drop_nulls()
        .alias("genres")
    ).to_series()
    return pl.DataFrame(
        [df["item_id"], title, year.alias("year"), genre_list, release.alias("release_date")]
    )


def _users(path: Path, separator: str, names: list[str]) -> pl.DataFrame:
    df = read_delimited(
        path,
        separator=separator,
        names=names,
        header=False,
        required=["user_id"],
        encoding="auto",
        allow_empty=True,
    )
    df = df.with_columns(parse_ids(df, "user_id", path))
    first_duplicate(df, "user_id", path, "user_id")
    cols = [df["user_id"], lenient_int(df, "age", path)]
    cols += [df[c].str.strip_chars() for c in names if c not in ("user_id", "age")]
    return pl.DataFrame(cols)


def _tags_kg(
    path: Path, separator: str, *, item_ids: pl.Series, header: list[str] | None = None
) -> pl.DataFrame:
    """Distinct ``(item_id, "tag", "tag:<tag>")`` triples of a tags file."""
    df = _read(
        path,
        separator,
        ["user_id", "item_id", "tag", "timestamp"],
        header=header,
        required=["item_id"],
        encoding="auto",
        allow_empty=True,
    )
    tag = df["tag"].str.strip_chars().str.to_lowercase().str.replace_all(r"\s+", " ")
    kg = pl.DataFrame([parse_ids(df, "item_id", path).alias("head"), tag.alias("tag")])
    kg = kg.filter(pl.col("tag").is_not_null() & (pl.col("tag") != ""))
    known = kg["head"].is_in(item_ids.implode())
    if not known.all():
        log.warning(
            "%s: dropped %d tag row(s) for movies not in the movies file", path, int((~known).sum())
        )
        kg = kg.filter(known)
    return kg.unique(maintain_order=True).select(
        "head", pl.lit("tag").alias("relation"), ("tag:" + pl.col("tag")).alias("tail")
    )


def _links_kg(path: Path, *, item_ids: pl.Series) -> pl.DataFrame:
    """``imdb`` / ``tmdb`` triples of ``links.csv``."""
    df = _read(
        path,
        ",",
        ["item_id", "imdb", "tmdb"],
        header=CSV_HEADERS["links"],
        required=["item_id"],
        allow_empty=True,
    )
    df = pl.DataFrame(
        [parse_ids(df, "item_id", path), df["imdb"].str.strip_chars(), df["tmdb"].str.strip_chars()]
    )
    known = df["item_id"].is_in(item_ids.implode())
    if not known.all():
        log.warning(
            "%s: dropped %d link row(s) for movies not in the movies file",
            path,
            int((~known).sum()),
        )
        df = df.filter(known)
    imdb = df.filter(pl.col("imdb").is_not_null() & (pl.col("imdb") != "")).select(
        pl.col("item_id").alias("head"),
        pl.lit("imdb").alias("relation"),
        ("imdb:tt" + pl.col("imdb").str.strip_prefix("tt").str.zfill(7)).alias("tail"),
    )
    tmdb = df.filter(pl.col("tmdb").is_not_null() & (pl.col("tmdb") != "")).select(
        pl.col("item_id").alias("head"),
        pl.lit("tmdb").alias("relation"),
        ("tmdb:" + pl.col("tmdb")).alias("tail"),
    )
    return pl.concat([imdb, tmdb])


def grouplens_name(layout: str, d: Path) -> str:
    """Default dataset name of a GroupLens folder: the layout, or the CSV folder's name."""
    if layout != "csv":
        return layout
    return d.name.lower() if d.name.lower().startswith("ml-") else "movielens"


def load_grouplens(path: str | Path, *, name: str | None = None) -> Dataset:
    """Load MovieLens in any GroupLens layout (ml-100k, ml-1m, ml-10m, ml-20m/25m/latest).

    Args:
        path: The unzipped folder (see :func:`grouplens_layout`).
        name: Dataset name; default the layout (``"ml-1m"``) or, for the CSV
            layouts, the folder name (``"ml-25m"``).

    Returns:
        The dataset; its manifest records the sha256 of every file read.

    Raises:
        FileNotFoundError: ``path`` holds no known layout.
        DataFormatError: a malformed file (see :mod:`primetime.data.tabular`).
    """
    layout, d = grouplens_layout(path)
    files = grouplens_files(d)
    ds_name = name or grouplens_name(layout, d)
    log.info("%s: reading MovieLens %s layout from %s", ds_name, layout, d)
    users = None
    kg_parts: list[pl.DataFrame] = []
    if layout == "ml-100k":
        inter = _ratings(d / "u.data", "\t")
        catalog = _ml100k_items(d)
        if (d / "u.user").is_file():
            users = _users(
                d / "u.user", "|", ["user_id", "age", "gender", "occupation", "zip_code"]
            )
    elif layout in ("ml-1m", "ml-10m"):
        inter = _ratings(d / "ratings.dat", "::")
        catalog = _movies(d / "movies.dat", "::")
        if layout == "ml-1m":
            users = _users(
                d / "users.dat", "::", ["user_id", "gender", "age", "occupation", "zip_code"]
            )
            code = users["occupation"].cast(pl.Int64, strict=False)
            named = code.replace_strict(
                dict(enumerate(ML1M_OCCUPATIONS)), default=None, return_dtype=pl.Utf8
            )
            users = users.with_columns(
                pl.select(pl.coalesce(named, users["occupation"])).to_series().alias("occupation")
            )
        elif (d / "tags.dat").is_file():
            kg_parts.append(_tags_kg(d / "tags.dat", "::", item_ids=catalog["item_id"]))
    else:
        inter = _ratings(d / "ratings.csv", ",", header=CSV_HEADERS["ratings"])
        catalog = _movies(d / "movies.csv", ",", header=CSV_HEADERS["movies"])
        if (d / "tags.csv").is_file():
            kg_parts.append(
                _tags_kg(
                    d / "tags.csv", ",", item_ids=catalog["item_id"], header=CSV_HEADERS["tags"]
                )
            )
        if (d / "links.csv").is_file():
            kg_parts.append(_links_kg(d / "links.csv", item_ids=catalog["item_id"]))
    warn_unused_side_rows(
        ds_name,
        "item",
        catalog["item_id"],
        inter["item_id"],
        files[1],
        "kept as titles nobody has rated",
    )
    if users is not None:
        warn_unused_side_rows(
            ds_name,
            "user",
            users["user_id"],
            inter["user_id"],
            d / ("u.user" if layout == "ml-100k" else "users.dat"),
            "kept",
        )
    kg = pl.concat(kg_parts) if kg_parts else None
    return Dataset.from_frames(
        ds_name,
        interactions=inter,
        catalog=catalog,
        users=users,
        kg=kg,
        source=str(d.resolve()),
        inputs=file_inputs(*files),
    )
