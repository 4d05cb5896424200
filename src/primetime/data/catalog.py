"""The title catalog: movies and TV shows, one row per title."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from primetime.data.vocab import Vocabulary

#: Column -> dtype of a catalog frame. Row ``k`` describes item_idx ``k + 1``.
CATALOG_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.Utf8(),
    "title": pl.Utf8(),
    "year": pl.Int32(),
    "genres": pl.List(pl.Utf8()),
    "kind": pl.Utf8(),  # "movie" | "show"
    "network": pl.Utf8(),  # shows: network or platform
    "series_id": pl.Utf8(),  # a season-level title: the show it belongs to
    "season_number": pl.Int32(),  # a season-level title: which season (1-based)
    "seasons": pl.Int32(),
    "episodes": pl.Int32(),
    "first_air_date": pl.Date(),
    "last_air_date": pl.Date(),
    "release_date": pl.Date(),
    "cast": pl.List(pl.Utf8()),
    "crew": pl.List(pl.Utf8()),
    "description": pl.Utf8(),
}
KINDS = ("movie", "show")


def conform_catalog(df: pl.DataFrame) -> pl.DataFrame:
    """Add missing columns as nulls/empty lists and cast to :data:`CATALOG_SCHEMA`.

    Raises:
        ValueError: if ``item_id`` is missing, ids repeat, or ``kind`` holds an
            unknown value.
    """
    if "item_id" not in df.columns:
        raise ValueError("catalog needs an 'item_id' column")
    cols = []
    for name, dtype in CATALOG_SCHEMA.items():
        if name in df.columns:
            cols.append(pl.col(name).cast(dtype))
        elif isinstance(dtype, pl.List):
            cols.append(pl.lit([], dtype=dtype).alias(name))
        elif name == "kind":
            cols.append(pl.lit("movie", dtype=pl.Utf8).alias(name))
        elif name == "title":
            cols.append(pl.col("item_id").cast(pl.Utf8).alias(name))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    out = df.select(cols).with_columns(
        pl.coalesce("title", "item_id").alias("title"),
        pl.col("kind").fill_null("movie"),
        *[pl.col(c).fill_null([]) for c, t in CATALOG_SCHEMA.items() if isinstance(t, pl.List)],
    )
    dup = out.filter(pl.col("item_id").is_duplicated())["item_id"].unique().head(3).to_list()
    if dup:
        raise ValueError(f"catalog has duplicate item_id(s) {dup}")
    bad = out.filter(~pl.col("kind").is_in(KINDS))["kind"].unique().head(3).to_list()
    if bad:
        raise ValueError(f"catalog kind must be one of {KINDS}, got {bad}")
    return out


@dataclass(frozen=True, eq=False)
class Catalog:
    """All titles. ``frame`` row ``k`` is item_idx ``k + 1`` in ``items``."""

    frame: pl.DataFrame
    items: Vocabulary

    @classmethod
    def from_frame(cls, df: pl.DataFrame) -> Catalog:
        frame = conform_catalog(df)
        return cls(frame=frame, items=Vocabulary(frame["item_id"].to_list(), name="item"))

    def __len__(self) -> int:
        return self.frame.height

    def row(self, item_idx: int) -> dict[str, object]:
        """Metadata of one title as a dict."""
        if not 1 <= item_idx <= len(self):
            raise IndexError(f"item_idx {item_idx} out of range 1..{len(self)}")
        return self.frame.row(item_idx - 1, named=True)

    def titles(self) -> list[str]:
        return self.frame["title"].to_list()

    def genre_names(self) -> list[str]:
        """All genres, sorted."""
        return sorted(self.frame["genres"].explode().drop_nulls().unique().to_list())

    def genre_matrix(self) -> tuple[np.ndarray, list[str]]:
        """Multi-hot genres, shape (items.size, n_genres), row 0 (padding) all zero."""
        names = self.genre_names()
        col = {g: j for j, g in enumerate(names)}
        m = np.zeros((self.items.size, len(names)), dtype=np.float32)
        for k, gs in enumerate(self.frame["genres"].to_list()):
            for g in gs or ():
                m[k + 1, col[g]] = 1.0
        return m, names

    def dates(self) -> tuple[np.ndarray, np.ndarray]:
        """(items.size,) int32 year (0 unknown) and (items.size,) float64 release day
        (days since 1970-01-01, NaN unknown): ``release_date``, else ``first_air_date``;
        a missing year falls back to the release date's year, a missing date to 1 January
        of the year. Row 0 (padding) is 0 and NaN."""
        day = self.frame.select(
            pl.coalesce("release_date", "first_air_date").cast(pl.Int32).alias("d"),
            pl.col("year"),
        )
        d = day["d"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        yr = day["year"].fill_null(0).to_numpy().astype(np.int32)
        from_day = (d // 365.2425 + 1970).astype(np.float64)
        yr = np.where((yr == 0) & np.isfinite(d), np.nan_to_num(from_day).astype(np.int32), yr)
        jan1 = (yr.astype(np.float64) - 1970) * 365.2425
        d = np.where(np.isnan(d) & (yr > 0), jan1, d)
        year = np.zeros(self.items.size, dtype=np.int32)
        release = np.full(self.items.size, np.nan)
        year[1:], release[1:] = yr, d
        return year, release

    def kind_codes(self) -> np.ndarray:
        """(items.size,) int8: 0 movie, 1 show, -1 padding."""
        out = np.full(self.items.size, -1, dtype=np.int8)
        out[1:] = (self.frame["kind"] == "show").to_numpy().astype(np.int8)
        return out
