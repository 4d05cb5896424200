"""Events exported from the service (``primetime data export``), read back and joined to
the base log they were served beside.

An export folder holds (written by :mod:`primetime.service.export`):

* ``interactions.parquet``: every exported event, columns ``user_id``, ``item_id``,
  ``rating``, ``timestamp`` (unix seconds), ``event`` (an :class:`EventType` value):
  a generic log that :func:`primetime.data.tabular.load_table` reads as it is;
* ``items.parquet``: the catalog as the service knows it (its ``titles`` table: the
  data set's titles and those added while it ran, in the order they were added);
* ``events/part-NNNNNN.parquet``: one file per export run (the increments);
* ``watermark.json``: the last exported event id, and one line per run.

Service users carry ids ``svc-<account id>`` (:data:`SERVICE_USER_PREFIX`), so they
never meet a user of the base log; :func:`with_export` refuses a base log that has
such ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from primetime.data.dataset import Dataset
from primetime.data.events import EventType

__all__ = [
    "EVENTS_FILE",
    "ITEMS_FILE",
    "SERVICE_USER_PREFIX",
    "WATERMARK_FILE",
    "read_export",
    "join_events",
    "read_watermark",
    "with_export",
]

SERVICE_USER_PREFIX = "svc-"
EVENTS_FILE = "interactions.parquet"
ITEMS_FILE = "items.parquet"
WATERMARK_FILE = "watermark.json"


def read_watermark(directory: str | Path) -> dict[str, Any]:
    """``watermark.json`` of an export folder (``{"last_event_id": 0, "runs": []}`` when
    there is none yet).

    Raises:
        ValueError: the file exists but is not a watermark.
    """
    f = Path(directory) / WATERMARK_FILE
    if not f.exists():
        return {"last_event_id": 0, "runs": []}
    try:
        mark = json.loads(f.read_text(encoding="utf-8"))
        int(mark["last_event_id"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{f}: not an export watermark ({e})") from None
    return dict(mark)


def read_export(directory: str | Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The exported events and titles of an export folder.

    Returns:
        ``(events, titles)``: events with ``user_id, item_id, rating, timestamp, event``
        (ids as strings), titles with the catalog columns the service keeps.

    Raises:
        FileNotFoundError: ``directory`` is not an export folder (names the missing file).
    """
    d = Path(directory)
    for name in (EVENTS_FILE, ITEMS_FILE):
        if not (d / name).is_file():
            raise FileNotFoundError(
                f"{d} is not an export folder: it lacks {name} (write one with "
                "`primetime data export --database URL --out DIR`)"
            )
    events = pl.read_parquet(d / EVENTS_FILE)
    titles = pl.read_parquet(d / ITEMS_FILE)
    return events, titles


def with_export(base: Dataset, directory: str | Path) -> Dataset:
    """``base`` with the exported events of ``directory`` appended.

    The base log's users and titles keep their indices (the exported ones come after
    them): a model fit on ``base`` reads contexts of the joined data set the same way.
    Titles the service added are appended in the order it added them.

    Raises:
        FileNotFoundError: not an export folder.
        ValueError: the base log has users whose ids look like service users'.
    """
    events, titles = read_export(directory)
    return join_events(
        base, events, titles, source=f"export {Path(directory)}", name=f"{base.name}+events"
    )


def join_events(
    base: Dataset,
    events: pl.DataFrame,
    titles: pl.DataFrame,
    *,
    source: str = "service events",
    name: str | None = None,
) -> Dataset:
    """``base`` with ``events`` (columns ``user_id, item_id, rating, timestamp, event``,
    service users as ``svc-<id>``) appended, and the titles of ``titles`` that ``base``
    lacks appended to its catalog in ``titles``' order (see :func:`with_export`).

    Raises:
        ValueError: the base log has users whose ids look like service users'.
    """
    clash = [u for u in base.users.users.ids() if u.startswith(SERVICE_USER_PREFIX)][:3]
    if clash:
        raise ValueError(
            f"base log {base.name!r} has user ids {clash} that look like exported service "
            f"users ({SERVICE_USER_PREFIX}<id>); rename them before joining an export"
        )
    names = {e.code: e.value for e in EventType}
    old = base.interactions.to_polars(ids=True).select(
        "user_id",
        "item_id",
        pl.col("rating").cast(pl.Float32),
        pl.col("timestamp").cast(pl.Int64),
        pl.col("event").replace_strict(names, return_dtype=pl.Utf8),
    )
    new = events.select(
        pl.col("user_id").cast(pl.Utf8),
        pl.col("item_id").cast(pl.Utf8),
        pl.col("rating").cast(pl.Float32),
        pl.col("timestamp").cast(pl.Int64),
        pl.col("event").cast(pl.Utf8),
    )
    added = titles.join(base.catalog.frame.select("item_id"), on="item_id", how="anti")
    keep = [c for c in added.columns if c in base.catalog.frame.columns]
    catalog = pl.concat([base.catalog.frame, added.select(keep)], how="diagonal_relaxed")
    return Dataset.from_frames(
        name or f"{base.name}+events",
        interactions=pl.concat([old, new]),
        catalog=catalog,
        users=base.users.frame,
        kg=base.kg.triples,
        source=f"{base.manifest.get('source') or base.name} + {source}",
        inputs={**base.manifest.get("inputs_sha256", {})},
        drop_duplicates=False,
    )
