"""A prepared data set: catalog, interactions, users and knowledge graph, with a manifest.

Datasets are cached as Parquet next to a ``manifest.json`` recording where the
data came from (source, sha256 of every input file) and what it holds (counts).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from primetime import __version__
from primetime.data.catalog import Catalog
from primetime.data.events import EVENT_NAMES, EventType
from primetime.data.graph import KnowledgeGraph
from primetime.data.interactions import Interactions
from primetime.data.users import Users
from primetime.data.vocab import Vocabulary

log = logging.getLogger(__name__)

#: Columns of a raw interaction frame handed to :meth:`Dataset.from_frames`.
RAW_INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp", "event")
FORMAT_VERSION = 1


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _event_codes(names: pl.Series) -> dict[str, int]:
    """Int8 code of every distinct event name in ``names``.

    Names may use any spelling :meth:`EventType.parse` reads (``add_to_list``,
    ``search_click``, any case).

    Raises:
        ValueError: naming up to three unknown names (null counts as unknown) and the known ones.
    """
    codes: dict[str, int] = {}
    bad: list[str | None] = []
    for name in names.unique().to_list():
        try:
            codes[name] = EventType.parse(name).code
        except ValueError:
            bad.append(name)
    if bad:
        bad.sort(key=str)
        raise ValueError(f"unknown event type(s) {bad[:3]}; known: {EVENT_NAMES}")
    return codes


@dataclass(frozen=True, eq=False)
class Dataset:
    """Everything a model or the service knows about one data set."""

    name: str
    catalog: Catalog
    interactions: Interactions
    users: Users
    kg: KnowledgeGraph
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def items(self) -> Vocabulary:
        return self.catalog.items

    # ------------------------------------------------------------ building
    @classmethod
    def from_frames(
        cls,
        name: str,
        *,
        interactions: pl.DataFrame,
        catalog: pl.DataFrame | None = None,
        users: pl.DataFrame | None = None,
        kg: pl.DataFrame | None = None,
        source: str = "",
        inputs: dict[str, str] | None = None,
        drop_duplicates: bool = True,
    ) -> Dataset:
        """Build a dataset from raw frames in id space.

        Args:
            name: Short name ("ml-100k", "synthetic-tiny").
            interactions: Columns ``user_id``, ``item_id``, ``timestamp`` and optionally
                ``rating`` (float) and ``event`` (an event name in any spelling
                :meth:`EventType.parse` accepts, e.g. ``add-to-list`` or the legacy
                ``add_to_list``), in file order.
            catalog: Title metadata (see ``CATALOG_SCHEMA``); titles that appear only in
                ``interactions`` are added with their id as title, and logged.
            users: User side information with ``user_id``; rows for users without any
                interaction are kept (they may come back), interaction users missing from
                it are added.
            kg: Triples ``head, relation, tail``.
            source: Where the data came from (a path, a package, a generator spec).
            inputs: File name -> sha256 of every input file, for the manifest.
            drop_duplicates: Drop rows repeating (user, item, timestamp, rating, event)
                exactly, logging how many.
        """
        missing = [c for c in ("user_id", "item_id", "timestamp") if c not in interactions.columns]
        if missing:
            raise ValueError(f"interactions lack column(s) {missing}")
        df = interactions.with_columns(
            pl.col("user_id").cast(pl.Utf8), pl.col("item_id").cast(pl.Utf8)
        )
        if "rating" not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.Float32).alias("rating"))
        # NaN and null both mean "no rating"
        df = df.with_columns(pl.col("rating").cast(pl.Float32).fill_nan(None))
        if "event" not in df.columns:
            has_rating = df["rating"].null_count() < df.height
            default = EventType.RATE.value if has_rating else EventType.VIEW.value
            df = df.with_columns(pl.lit(default).alias("event"))
        codes = _event_codes(df["event"])
        df = df.select(
            "user_id",
            "item_id",
            "rating",
            pl.col("timestamp").cast(pl.Int64),
            pl.col("event").replace_strict(codes, return_dtype=pl.Int8),
        )

        # catalog: file order, then titles only seen in interactions
        cat_df = (
            catalog
            if catalog is not None
            else pl.DataFrame({"item_id": []}, schema={"item_id": pl.Utf8})
        )
        cat_df = cat_df.with_columns(pl.col("item_id").cast(pl.Utf8))
        extra = (
            df.select("item_id")
            .unique(maintain_order=True)
            .join(cat_df.select("item_id"), on="item_id", how="anti")
        )
        if extra.height:
            if catalog is not None:
                log.warning(
                    "%s: %d item id(s) in interactions are missing from the catalog; "
                    "added with their id as title",
                    name,
                    extra.height,
                )
            cat_df = pl.concat([cat_df, extra], how="diagonal_relaxed")
        cat = Catalog.from_frame(cat_df)

        usr_df = (
            users
            if users is not None
            else pl.DataFrame({"user_id": []}, schema={"user_id": pl.Utf8})
        )
        usr_df = usr_df.with_columns(pl.col("user_id").cast(pl.Utf8))
        dup = usr_df.filter(pl.col("user_id").is_duplicated())["user_id"].unique().head(3).to_list()
        if dup:
            raise ValueError(f"users file has duplicate user_id(s) {dup}")
        extra_u = (
            df.select("user_id")
            .unique(maintain_order=True)
            .join(usr_df.select("user_id"), on="user_id", how="anti")
        )
        if extra_u.height:
            if users is not None:
                log.warning(
                    "%s: %d user id(s) in interactions are missing from the users file",
                    name,
                    extra_u.height,
                )
            usr_df = pl.concat([usr_df, extra_u], how="diagonal_relaxed")
        usr = Users.from_frame(usr_df)

        # Map ids to indices first, then drop duplicates on integer columns:
        # on a 25M-row log this is several times faster than on the id strings.
        idx = pl.DataFrame(
            {
                "user_idx": usr.users.indices(df["user_id"]),
                "item_idx": cat.items.indices(df["item_id"]),
                "rating": df["rating"],
                "timestamp": df["timestamp"],
                "event": df["event"],
            }
        )
        del df
        if drop_duplicates:
            before = idx.height
            idx = drop_exact_duplicates(idx)
            if idx.height < before:
                log.warning(
                    "%s: dropped %d exact duplicate interaction rows", name, before - idx.height
                )
        inter = Interactions(
            user_idx=idx["user_idx"].to_numpy(),
            item_idx=idx["item_idx"].to_numpy(),
            rating=idx["rating"].fill_null(float("nan")).to_numpy(),
            timestamp=idx["timestamp"].to_numpy(),
            event=idx["event"].to_numpy(),
            users=usr.users,
            items=cat.items,
        )
        graph = KnowledgeGraph.from_frame(kg) if kg is not None else KnowledgeGraph.empty()
        ds = cls(name=name, catalog=cat, interactions=inter, users=usr, kg=graph)
        object.__setattr__(ds, "manifest", ds._make_manifest(source, inputs or {}))
        return ds

    def _make_manifest(self, source: str, inputs: dict[str, str]) -> dict[str, Any]:
        inter = self.interactions
        ts = inter.timestamp
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "source": source,
            "inputs_sha256": dict(sorted(inputs.items())),
            "primetime_version": __version__,
            "counts": {
                "interactions": len(inter),
                "users": len(self.users),
                "items": len(self.catalog),
                "movies": int((self.catalog.frame["kind"] == "movie").sum()),
                "shows": int((self.catalog.frame["kind"] == "show").sum()),
                "rated_interactions": int((~np.isnan(inter.rating)).sum()),
                "kg_triples": len(self.kg),
            },
            "time_range": [int(ts.min()), int(ts.max())] if len(ts) else None,
        }

    # ------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write Parquet files and ``manifest.json`` into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.interactions.to_polars().write_parquet(d / "interactions.parquet")
        self.catalog.frame.write_parquet(d / "catalog.parquet")
        self.users.frame.write_parquet(d / "users.parquet")
        self.kg.triples.write_parquet(d / "kg.parquet")
        (d / "manifest.json").write_text(json.dumps(self.manifest, indent=2) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> Dataset:
        """Read a dataset written by :meth:`save`.

        Raises:
            FileNotFoundError: naming the missing file, if the cache is incomplete.
        """
        d = Path(directory)
        for f in (
            "manifest.json",
            "interactions.parquet",
            "catalog.parquet",
            "users.parquet",
            "kg.parquet",
        ):
            if not (d / f).exists():
                raise FileNotFoundError(f"prepared dataset {d} lacks {f}")
        manifest = json.loads((d / "manifest.json").read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{d}: dataset format {manifest.get('format_version')} "
                f"!= {FORMAT_VERSION}; prepare it again"
            )
        cat = Catalog.from_frame(pl.read_parquet(d / "catalog.parquet"))
        usr = Users.from_frame(pl.read_parquet(d / "users.parquet"))
        inter = Interactions.from_polars(
            pl.read_parquet(d / "interactions.parquet"), users=usr.users, items=cat.items
        )
        kg = KnowledgeGraph.from_frame(pl.read_parquet(d / "kg.parquet"))
        return cls(
            name=manifest["name"],
            catalog=cat,
            interactions=inter,
            users=usr,
            kg=kg,
            manifest=manifest,
        )


def drop_exact_duplicates(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame.unique(maintain_order=True)`` (the first of each repeated row kept, in
    order), in far less memory on a large log: a 64-bit hash per row finds the rows
    that may repeat, and only those are compared exactly (a hash collision between two
    different rows keeps both). On a 25M-row log the whole-frame ``unique`` held about
    2.5 GiB of hash tables at once, the peak of loading it.
    """
    maybe = frame.hash_rows().is_duplicated()  # (N,) bool
    if not maybe.any():
        return frame
    rows = frame.with_row_index("_row").filter(maybe)
    first = rows.unique(subset=frame.columns, keep="first", maintain_order=True)["_row"]
    keep = ~maybe.to_numpy()
    keep[first.to_numpy()] = True
    return frame.filter(pl.Series(keep))
