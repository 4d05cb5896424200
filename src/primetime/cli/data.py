"""``primetime data``: fetch, generate and inspect data sets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from primetime.cli.common import DataOpt, err, fail, guard, out

app = typer.Typer(help="Fetch, generate and inspect data sets.", no_args_is_help=True)


@app.command("fetch")
@guard
def data_fetch(
    name: Annotated[
        str, typer.Argument(help="Data set to fetch: only 'ml-100k' is fetchable.")
    ] = "ml-100k",
) -> None:
    """Download MovieLens-100k (inside the recbole wheel, via pip), verify its sha256,
    prepare it as Parquet, and print what it holds."""
    if name != "ml-100k":
        fail(f"only 'ml-100k' can be fetched; for {name!r} pass the files with --data PATH")
    from primetime.experiment import open_data

    ds = open_data(name).dataset
    _print_info(ds)


@app.command("synth")
@guard
def data_synth(
    preset: Annotated[
        str,
        typer.Option(
            help="World size: tiny, small, seasons, medium, ml-25m or xl-catalog (100k+ titles)."
        ),
    ] = "small",
    seed: Annotated[int, typer.Option(help="Seed of the world; same seed, same world.")] = 0,
) -> None:
    """Generate a synthetic movie + TV world with a planted preference model (cached as
    `synthetic-<preset>-seed<N>`; use that name with `--data`)."""
    from primetime.experiment import open_data

    t0 = time.perf_counter()
    ds = open_data(f"synthetic-{preset}-seed{seed}").dataset
    err.print(
        f"world ready in {time.perf_counter() - t0:.1f}s: --data synthetic-{preset}-seed{seed}"
    )
    _print_info(ds)


@app.command("info")
@guard
def data_info(data: DataOpt = "ml-100k") -> None:
    """Print the manifest (source, sha256 of inputs, counts) of a data set."""
    from primetime.experiment import open_data

    _print_info(open_data(data).dataset)


def _print_info(ds: Any) -> None:
    m = ds.manifest
    t = Table(title=f"{ds.name}", show_header=False)
    t.add_column("what")
    t.add_column("value")
    t.add_row("source", str(m.get("source", "")))
    for k, v in m.get("counts", {}).items():
        t.add_row(k, f"{v:,}")
    if m.get("time_range"):
        import datetime as dt

        lo, hi = (dt.datetime.fromtimestamp(x, dt.UTC).date() for x in m["time_range"])
        t.add_row("time range", f"{lo} .. {hi}")
    for f, h in m.get("inputs_sha256", {}).items():
        t.add_row(f"sha256 {f}", h[:16] + "…")
    out.print(t)


@app.command("split")
@guard
def data_split(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the split into.")],
    data: DataOpt = "ml-100k",
    split: Annotated[
        str,
        typer.Option(
            help="`loo` (leave-one-out by time), `ratio` (90/10), `temporal` or `cold-items` "
            "(new titles; also writes `candidates.tsv` and `valid_candidates.tsv`)."
        ),
    ] = "loo",
    seed: Annotated[int, typer.Option(help="Seed of the ratio split.")] = 42,
) -> None:
    """Write a data set's split as a bring-your-own split folder: `train.tsv`,
    `valid.tsv`, `test.tsv`, the candidate sets of a `cold-items` split
    (`candidates.tsv`, `valid_candidates.tsv`), and the metadata `items.tsv`,
    `users.tsv` and `kg.tsv` where the data set has them. `benchmark --split-dir` and
    `train --split-dir` read it back into the same index spaces, so models score as on
    the built-in split."""
    from primetime.data.splitdir import write_split_dir
    from primetime.experiment import prepare
    from primetime.lifecycle import DataSpec

    prepared = prepare(DataSpec(data=data, split=split, seed=seed))
    d = write_split_dir(prepared.split, out_dir, side=prepared.side)
    files = ", ".join(sorted(p.name for p in d.iterdir()))
    restricted = prepared.split.describe_candidates()
    out.print(
        f"{prepared.name} · {prepared.split.protocol} · {prepared.split.sizes()}"
        + (f" · {restricted}" if restricted else "")
        + f" → {d}: {files}"
    )


@app.command("export")
@guard
def data_export(
    database: Annotated[
        str,
        typer.Option(
            "--database", help="The service database, `sqlite:///FILE` or `postgresql://…`."
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Export folder (created).")],
    settle: Annotated[
        float,
        typer.Option(
            min=0, help="Export only events stored at least this many seconds ago (late commits)."
        ),
    ] = 5.0,
) -> None:
    """Export the service's events and catalog as a data set (Parquet), incrementally: a
    second run appends only the events stored since the first (the watermark in `--out`).
    Service users become `svc-<id>`; titles keep their item ids."""
    from primetime.service.export import export_events, open_export_engine

    engine = open_export_engine(database)
    try:
        r = export_events(engine, out_dir, settle=settle)
    finally:
        engine.dispose()
    out.print(
        f"exported {r.new_events} new events (up to event id {r.watermark}); "
        f"{r.total_events} events, {r.titles} titles ({r.added_titles} added while serving) "
        f"in {r.out}"
    )
