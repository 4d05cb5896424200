"""`primetime data export`: the event store as a data set, incrementally (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from primetime.cli import app
from primetime.data.dataset import Dataset
from primetime.data.exported import WATERMARK_FILE, with_export
from primetime.data.tabular import load_table
from primetime.service.export import export_events, open_export_engine
from primetime.service.store import EventStore, NewEvent

runner = CliRunner()


def _fill(store: EventStore) -> tuple[int, int]:
    store.sync_titles(
        {"item_id": i, "title": f"T{i}", "kind": "movie", "year": 2000, "genres": ["Drama"]}
        for i in ("1", "2", "3")
    )
    # added while serving, out of id order: exported in the order they were added
    store.sync_titles([{"item_id": "new-b", "title": "B", "genres": [], "added_at": 100.0}])
    store.sync_titles([{"item_id": "new-a", "title": "A", "genres": [], "added_at": 200.0}])
    ann = store.create_user("ann", "h").id
    bob = store.create_user("bob", "h").id
    store.add_events(ann, [NewEvent(item_id="1", event_type="play", ts=10.0)])
    store.add_events(bob, [NewEvent(item_id="new-b", event_type="rate", rating=4, ts=11.0)])
    return ann, bob


def test_export_is_incremental_and_loadable(store: EventStore, db_url: str, tmp_path: Path) -> None:
    ann, bob = _fill(store)
    out = tmp_path / "export"
    engine = open_export_engine(db_url)
    try:
        first = export_events(engine, out, settle=0)
        assert (first.new_events, first.total_events, first.added_titles) == (2, 2, 2)
        store.add_events(ann, [NewEvent(item_id="new-a", event_type="like", ts=12.0)])
        second = export_events(engine, out, settle=0)
        third = export_events(engine, out, settle=0)
    finally:
        engine.dispose()
    assert (second.new_events, second.total_events) == (1, 3)
    assert (third.new_events, third.total_events, third.part) == (0, 3, None)
    mark = json.loads((out / WATERMARK_FILE).read_text())
    assert mark["last_event_id"] == second.watermark > first.watermark
    assert [r["new_events"] for r in mark["runs"]] == [2, 1, 0]
    assert len(list((out / "events").glob("part-*.parquet"))) == 2
    # the loaders read the folder as it is
    ds = load_table(out / "interactions.parquet", items_path=out / "items.parquet")
    assert sorted(ds.users.users.ids()) == sorted([f"svc-{ann}", f"svc-{bob}"])
    assert ds.items.ids()[-2:] == ["new-b", "new-a"]  # the order they were added
    log = ds.interactions.to_polars(ids=True).sort("timestamp")
    assert log["item_id"].to_list() == ["1", "new-b", "new-a"]
    assert log["user_id"].to_list() == [f"svc-{ann}", f"svc-{bob}", f"svc-{ann}"]


def test_settle_holds_back_fresh_events(store: EventStore, db_url: str, tmp_path: Path) -> None:
    _fill(store)
    engine = open_export_engine(db_url)
    try:
        r = export_events(engine, tmp_path / "x", settle=3600)
    finally:
        engine.dispose()
    assert (r.new_events, r.watermark) == (0, 0)


def test_joined_to_a_base_log_keeps_its_indices(
    store: EventStore, db_url: str, tmp_path: Path
) -> None:
    _fill(store)
    engine = open_export_engine(db_url)
    try:
        export_events(engine, tmp_path / "x", settle=0)
    finally:
        engine.dispose()
    base = Dataset.from_frames(
        "base",
        interactions=pl.DataFrame(
            {"user_id": ["u1", "u2"], "item_id": ["2", "3"], "timestamp": [1, 2]}
        ),
        catalog=pl.DataFrame({"item_id": ["1", "2", "3"], "title": ["a", "b", "c"]}),
    )
    joined = with_export(base, tmp_path / "x")
    assert joined.items.ids() == ["1", "2", "3", "new-b", "new-a"]
    assert joined.users.users.ids()[:2] == ["u1", "u2"]
    assert len(joined.interactions) == 4
    clash = Dataset.from_frames(
        "clash",
        interactions=pl.DataFrame({"user_id": ["svc-1"], "item_id": ["1"], "timestamp": [1]}),
    )
    with pytest.raises(ValueError, match="look like exported service users"):
        with_export(clash, tmp_path / "x")


def test_an_empty_store_is_an_error(db_url: str, tmp_path: Path) -> None:
    engine = open_export_engine(db_url)
    try:
        with pytest.raises(ValueError, match="is empty"):
            export_events(engine, tmp_path / "x", settle=0)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite:////nonexistent/dir/service.db", "no SQLite database file"),
        ("mysql://x@localhost/db", "unsupported database"),
        ("postgresql://postgres@127.0.0.1:1/nothing", "cannot read"),
    ],
)
def test_cli_bad_database_is_one_line_and_exit_2(url: str, says: str, tmp_path: Path) -> None:
    r = runner.invoke(app, ["data", "export", "--database", url, "--out", str(tmp_path / "x")])
    assert r.exit_code == 2, r.output
    assert says in r.output and "Traceback" not in r.output


def test_cli_unwritable_out_and_empty_store(db_url: str, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    r = runner.invoke(app, ["data", "export", "--database", db_url, "--out", str(a_file)])
    assert r.exit_code == 2 and "is a file" in r.output
    r = runner.invoke(app, ["data", "export", "--database", db_url, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "is empty" in r.output
