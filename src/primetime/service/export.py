"""Export the event store as a data set the loaders read: ``primetime data export``.

Each run appends the events stored since the last one (the *watermark*, the largest event
id exported, kept in the folder) as one Parquet part, then rewrites the folder's
``interactions.parquet`` (all parts) and ``items.parquet`` (the ``titles`` table: the data
set's titles and those added while the service ran, in the order they were added). The
layout is :mod:`primetime.data.exported`'s; :func:`primetime.data.exported.with_export`
joins it to the base log for retraining.

Ids: titles keep the data set's item ids (the service's titles carry them); a service
account ``N`` becomes user ``svc-N``, which no base-log user can be (the join checks).

Deleted accounts: the service has no account deletion yet. Should one come, its events
leave with it (``events.user_id`` cascades on delete) and the export reads events joined to
``users``, so a deleted account's events are never exported after the deletion; parts
exported *before* it keep them (retracting those is not done).

Late commits: PostgreSQL hands out ids before commit, so an event with a smaller id can
commit after a larger one. An export only takes events received more than ``settle``
seconds ago, so a transaction still open then (they last milliseconds) is not skipped.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from primetime.data.exported import (
    EVENTS_FILE,
    ITEMS_FILE,
    SERVICE_USER_PREFIX,
    WATERMARK_FILE,
    read_watermark,
)
from primetime.service.db import (
    Event,
    Title,
    User,
    make_engine,
    migrate,
    normalize_url,
    schema_version,
)

__all__ = ["ExportReport", "export_events", "open_export_engine", "stored_events"]

log = logging.getLogger(__name__)

PARTS_DIR = "events"
_EVENT_SCHEMA = {
    "event_row": pl.Int64,
    "user_id": pl.Utf8,
    "item_id": pl.Utf8,
    "rating": pl.Float32,
    "timestamp": pl.Int64,
    "event": pl.Utf8,
}


@dataclass(frozen=True)
class ExportReport:
    """What one export run wrote.

    Attributes:
        out: The export folder.
        new_events: Events appended by this run.
        total_events: Events in the folder after it.
        titles: Titles in ``items.parquet`` (``added`` of them added while serving).
        added_titles: Titles the service added (not in its data set).
        watermark: Largest event id exported (0: none yet).
        part: The part file written, or None when there was nothing new.
    """

    out: Path
    new_events: int
    total_events: int
    titles: int
    added_titles: int
    watermark: int
    part: Path | None


def open_export_engine(url: str) -> Engine:
    """An engine on an existing service database (never creates one), upgraded to the
    newest schema as the service itself does when it starts.

    Raises:
        ValueError: a malformed URL, a SQLite file that does not exist, a database that
            cannot be reached or that holds no Primetime schema (one line, naming it).
    """
    try:
        parsed = normalize_url(url)
    except Exception as e:  # sqlalchemy's parse errors are of several types
        raise ValueError(f"--database: cannot parse {url!r} as a database URL ({e})") from None
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if not path or path == ":memory:" or not Path(path).is_file():
            raise ValueError(f"--database: no SQLite database file at {path or url!r}")
    engine = make_engine(parsed)
    try:
        version = schema_version(engine)
    except SQLAlchemyError as e:
        engine.dispose()
        cause = getattr(e, "orig", None)
        first = str(cause if cause is not None else e).strip().splitlines()
        raise ValueError(
            f"--database: cannot read {parsed.render_as_string(hide_password=True)}: "
            f"{first[0] if first else type(e).__name__}"
        ) from None
    if version is None:
        engine.dispose()
        raise ValueError(
            f"--database: {parsed.render_as_string(hide_password=True)} holds no Primetime "
            "schema (not a service database)"
        )
    migrate(engine)  # what every service process does on start: the newest schema
    return engine


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"--out: cannot write to {out} ({e.strerror or e})") from None


def _write_parquet(df: pl.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.write_parquet(tmp)
    os.replace(tmp, path)


def _titles(engine: Engine) -> pl.DataFrame:
    """The ``titles`` table: the data set's titles first, then the added ones by
    ``added_at`` (the order the service appended them to its catalog)."""
    stmt = select(Title.item_id, Title.title, Title.kind, Title.year, Title.genres, Title.added_at)
    with engine.connect() as conn:
        rows: list[tuple[str, str, str, int | None, list[str], float | None]] = [
            (r[0], r[1], r[2], r[3], list(r[4] or []), r[5]) for r in conn.execute(stmt)
        ]
    base = sorted((r for r in rows if r[5] is None), key=lambda r: r[0])
    added = sorted((r for r in rows if r[5] is not None), key=lambda r: (r[5] or 0.0, r[0]))
    ordered = base + added
    return pl.DataFrame(
        {
            "item_id": [r[0] for r in ordered],
            "title": [r[1] for r in ordered],
            "kind": [r[2] for r in ordered],
            "year": [r[3] for r in ordered],
            "genres": [r[4] for r in ordered],
            "added_at": [r[5] for r in ordered],
        },
        schema={
            "item_id": pl.Utf8,
            "title": pl.Utf8,
            "kind": pl.Utf8,
            "year": pl.Int32,
            "genres": pl.List(pl.Utf8),
            "added_at": pl.Float64,
        },
    )


def _new_events(engine: Engine, after_id: int, received_before: float) -> pl.DataFrame:
    """Events with ``id > after_id`` received before ``received_before``, of accounts
    that exist (joined to ``users``), in id order."""
    stmt = (
        select(Event.id, Event.user_id, Event.item_id, Event.rating, Event.ts, Event.event_type)
        .join(User, User.id == Event.user_id)
        .where(Event.id > after_id, Event.received_at <= received_before)
        .order_by(Event.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return pl.DataFrame(
        {
            "event_row": [r[0] for r in rows],
            "user_id": [f"{SERVICE_USER_PREFIX}{r[1]}" for r in rows],
            "item_id": [r[2] for r in rows],
            "rating": [r[3] for r in rows],
            "timestamp": [int(r[4]) for r in rows],
            "event": [r[5] for r in rows],
        },
        schema=_EVENT_SCHEMA,
    )


def stored_events(engine: Engine) -> pl.DataFrame:
    """Every stored event of an existing account, as the export writes them (without
    ``event_row``): what the running service folds into its pipeline's popularity,
    trending and neighbours when it swaps in a retrained version."""
    return _new_events(engine, 0, 1e18).drop("event_row")


def export_events(
    engine: Engine, out: str | Path, *, settle: float = 5.0, now: float | None = None
) -> ExportReport:
    """Append the events stored since the folder's watermark, and the catalog, to ``out``.

    Args:
        engine: The service database (:func:`open_export_engine`).
        out: The export folder (created; its watermark read and moved on).
        settle: Seconds an event must have been stored before it is exported (see the
            module docstring on late commits).
        now: Unix seconds of "now" (tests).

    Raises:
        ValueError: ``out`` cannot be written, its watermark is unreadable, or the store
            has neither events nor titles (an empty store: nothing to export).
    """
    out = Path(out)
    if settle < 0:
        raise ValueError(f"settle: expected seconds >= 0, got {settle}")
    _check_out(out)
    mark = read_watermark(out)
    after = int(mark["last_event_id"])
    now = time.time() if now is None else now
    titles = _titles(engine)
    with engine.connect() as conn:
        any_event = conn.execute(select(Event.id).limit(1)).first() is not None
    if not any_event and titles.height == 0:
        raise ValueError(
            f"the event store at {engine.url.render_as_string(hide_password=True)} is empty: "
            "no events and no titles to export"
        )
    new = _new_events(engine, after, now - settle)
    parts = out / PARTS_DIR
    parts.mkdir(exist_ok=True)
    part: Path | None = None
    if new.height:
        last = int(new["event_row"].max())  # type: ignore[arg-type]
        part = parts / f"part-{after + 1:012d}-{last:012d}.parquet"
        _write_parquet(new, part)
    else:
        last = after
    # Rebuilt from the parts, deduplicated by event id: a run that died between writing
    # its part and moving the watermark leaves a part the next run overlaps, not doubles.
    files = sorted(parts.glob("part-*.parquet"))
    every = (
        pl.concat([pl.read_parquet(f) for f in files]).unique("event_row", maintain_order=True)
        if files
        else pl.DataFrame(schema=_EVENT_SCHEMA)
    )
    every = every.filter(pl.col("event_row") <= last).sort("event_row")
    _write_parquet(every.drop("event_row"), out / EVENTS_FILE)
    _write_parquet(titles, out / ITEMS_FILE)
    added = int(titles["added_at"].is_not_null().sum())
    runs: list[dict[str, Any]] = list(mark.get("runs", []))
    runs.append(
        {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "after_event_id": after,
            "last_event_id": last,
            "new_events": new.height,
        }
    )
    mark = {
        "last_event_id": last,
        "database": engine.url.render_as_string(hide_password=True),
        "events": every.height,
        "titles": titles.height,
        "added_titles": added,
        "runs": runs,
    }
    tmp = out / f".{WATERMARK_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(mark, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / WATERMARK_FILE)
    log.info("exported %d new events (up to id %d) to %s", new.height, last, out)
    return ExportReport(out, new.height, every.height, titles.height, added, last, part)
