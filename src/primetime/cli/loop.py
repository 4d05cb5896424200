"""``primetime retrain``: the learning loop's job (export first with ``primetime data export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from primetime.cli.common import DataOpt, RegistryOpt, err, guard, out, registry, split_models

app = typer.Typer()


@app.command("retrain")
@guard
def retrain_cmd(
    events: Annotated[
        Path, typer.Option("--events", help="Export folder of `primetime data export`.")
    ],
    data: DataOpt = "ml-100k",
    models: Annotated[
        str, typer.Option(help="Models to retrain, comma-separated (default: the served ones).")
    ] = "",
    margin: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Promote unless the candidate's NDCG@10 on the newest slice is below the "
            "promoted version's by more than this.",
        ),
    ] = 0.0,
    slice_days: Annotated[
        float, typer.Option(min=0.001, help="Days of the newest slice the gate ranks.")
    ] = 2.0,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="Service database to record promotions in (running workers watch it); "
            "default `$PRIMETIME_DATABASE_URL`; `none` = registry only.",
        ),
    ] = None,
    warm_start: Annotated[
        bool,
        typer.Option(
            "--warm-start/--no-warm-start",
            help="Start sasrec, temporal and gru4rec from their promoted version's weights (titles "
            "matched by id, new titles get fresh rows); the other models always fit from "
            "scratch. On by default: a retrain adds days of events to a log the promoted "
            "version has learned, and the gate still judges the result against it.",
        ),
    ] = True,
    warm_epochs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With a warm start, train at most this many epochs (early stopping on "
            "valid still applies); default: the model's own epochs.",
        ),
    ] = None,
    registry_dir: RegistryOpt = None,
) -> None:
    """Retrain the served models on the base log + exported events, compare each with its
    promoted version on the newest time slice (paired test), register it, and promote it
    unless it is worse by more than `--margin`. Every running worker swaps it in.

    sasrec, temporal and gru4rec start from the promoted version's weights unless
    `--no-warm-start`
    (the version's meta.json records `retrain.warm_start`)."""
    import torch

    from primetime.retrain import retrain
    from primetime.service.settings import Settings

    torch.set_num_threads(1)
    settings = Settings()
    reg = registry(registry_dir)
    names = split_models(models) or tuple(settings.retrained_models(reg.names()))
    url = database if database is not None else settings.database_url
    store = None
    if url.lower() != "none":
        from primetime.service.export import open_export_engine
        from primetime.service.store import EventStore

        store = EventStore(open_export_engine(url))
    try:
        results = retrain(
            names,
            data=data,
            events=events,
            registry=reg,
            margin=margin,
            slice_days=slice_days,
            store=store,
            say=err.print,
            warm_start=warm_start,
            warm_epochs=warm_epochs,
            blend=settings.model_blend,
        )
    finally:
        if store is not None:
            store.close()
    for r in results:
        out.print(f"{r.name} {r.version.version}: {'promoted' if r.promoted else 'not promoted'}")


@app.command("worker")
@guard
def worker_cmd(
    beat: Annotated[
        bool,
        typer.Option(
            "--beat",
            help="Also run the scheduler: the nightly retrain, home rows of active users "
            "every few minutes, queued impressions every few seconds (run one --beat only).",
        ),
    ] = False,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Worker processes (a retrain uses one of them).")
    ] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a job worker of the job system (Celery) on `$PRIMETIME_BROKER_URL`
    (redis://… or amqp://…): retrain + gate + promote (the running service swaps the
    promoted version in), precomputed home rows for active users, and the impression
    queue written to the database. Without a broker there is nothing to run: the
    embedded default needs no worker, and `primetime retrain` runs from cron."""
    from primetime.jobs import NO_BROKER, configure
    from primetime.service.settings import Settings

    settings = Settings()
    if settings.broker_url is None:
        err.print(f"error: {NO_BROKER}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(2)
    celery = configure(settings)
    celery.conf.worker_hijack_root_logger = True  # a process of its own: Celery's log lines
    argv = [
        "worker",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        f"--queues={settings.job_queue}",
    ]
    if beat:
        from primetime import paths

        paths.home().mkdir(parents=True, exist_ok=True)
        argv += ["--beat", f"--schedule={paths.home() / 'celerybeat-schedule'}"]
    celery.worker_main(argv)
