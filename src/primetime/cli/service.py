"""Serving: ``serve``, the ``models`` registry group, the ``experiments`` group and
``titles add`` (a title added to a running service)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from primetime.cli.common import (
    DataOpt,
    JsonOpt,
    RegistryOpt,
    SetOpt,
    err,
    fail,
    guard,
    out,
    registry,
    served_blend_facts,
)
from primetime.models import MODELS

app = typer.Typer()
models_app = typer.Typer(
    help="The model registry: every trained version, the promoted one served.",
    no_args_is_help=True,
)
experiments_app = typer.Typer(help="A/B experiments of the service.", no_args_is_help=True)
titles_app = typer.Typer(help="Titles of a running service.", no_args_is_help=True)


@app.command("serve")
@guard
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes (default $PRIMETIME_WORKERS or 1)."),
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Data set to serve (default $PRIMETIME_DATA or ml-100k).")
    ] = None,
    train: Annotated[
        bool,
        typer.Option(
            help="Train, register and promote the configured models that have no promoted version."
        ),
    ] = True,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated addresses (IPs or CIDR networks) of the reverse proxies "
            "whose X-Forwarded-For / X-Forwarded-Proto are trusted (default "
            "$PRIMETIME_FORWARDED_ALLOW_IPS, else none: the client address is the peer's)."
        ),
    ] = None,
) -> None:
    """Run the recommendation service (API, metrics, web pages) under uvicorn.

    Serves the promoted version of each model in `$PRIMETIME_MODELS`
    (default sasrec, itemknn, popularity) from the model registry; a model with
    no promoted version is trained first, once, with a message: selected on the
    leave-one-out valid part, then refit on the whole log, registered and
    promoted. A registered version of a model in `$PRIMETIME_PREFER` (default
    ensemble, temporal) serves ahead of them; serve does not train those. Each version
    is served with the blend chosen for it on valid when it was trained. Settings
    come from PRIMETIME_* variables or a .env file (see primetime.service.settings).

    With several workers, GET /metrics merges the figures of all of them:
    prometheus_client's multiprocess mode, in a fresh private directory removed
    on exit, or in $PROMETHEUS_MULTIPROC_DIR if set (its old metrics files are
    deleted first).

    Forwarded headers (X-Forwarded-For, X-Forwarded-Proto) are trusted only from the
    addresses in `--forwarded-allow-ips` / $PRIMETIME_FORWARDED_ALLOW_IPS: by default
    from none, so the per-IP rate limit sees the real peer."""
    import os
    import shutil

    import uvicorn

    from primetime.lifecycle import ensure_models
    from primetime.registry import ModelRegistry
    from primetime.service.metrics import prepare_multiprocess_dir
    from primetime.service.settings import Settings

    if data:
        os.environ["PRIMETIME_DATA"] = data
    settings = Settings()  # validates: refuses placeholder secrets in production
    if forwarded_allow_ips is not None:
        ips = [ip.strip() for ip in forwarded_allow_ips.split(",") if ip.strip()]
        settings = Settings(forwarded_allow_ips=ips)
    registry = ModelRegistry(settings.registry_dir)
    if train:
        ensure_models(
            settings.models,
            data=settings.data,
            registry=registry,
            say=err.print,
            on_promoted=lambda mv, previous: record_promotion(mv, previous, actor="serve"),
            facts=(
                (lambda run: served_blend_facts(run.selected, run.data))
                if settings.model_blend
                else None
            ),
        )
    n = workers or settings.workers
    out.print(
        f"Primetime is serving {settings.data} on [bold]http://{host}:{port}[/] "
        f"(API docs: http://{host}:{port}/docs) · Ctrl-C stops it"
    )
    # Before the workers start: prometheus_client reads it when they import it.
    metrics_dir = prepare_multiprocess_dir(n, os.environ)
    try:
        uvicorn.run(
            "primetime.service.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=n,
            log_level="warning",
            **settings.uvicorn_proxy_options(),
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@models_app.command("list")
@guard
def models_list(registry_dir: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """Every registered version with its offline metrics; * marks the promoted one."""
    reg = registry(registry_dir)
    versions = reg.versions()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "name": v.name,
                        "version": v.version,
                        "promoted": v.promoted,
                        "created_at": v.created_at,
                        "data": v.meta.get("data"),
                        "fit_on": v.meta.get("fit_on"),
                        "valid_metrics": v.meta.get("valid_metrics") or {},
                        "metrics": v.metrics,
                        "retrain": v.meta.get("retrain"),
                        "path": str(v.path),
                    }
                    for v in versions
                ],
                indent=2,
            )
        )
        return
    if not versions:
        err.print(f"no models in {reg.root}: `primetime serve` trains the demo ones")
        return
    t = Table(
        "model",
        "version",
        "",
        "created",
        "data",
        "fit on",
        "valid NDCG@10",
        "test NDCG@10",
        "test RMSE",
        "retrain gate",
        caption="* promoted · test figures are the selection fit's, measured before any refit"
        " · retrain gate: candidate vs the promoted version's NDCG@10 on the newest slice",
    )
    for v in versions:
        fit_on = v.meta.get("fit_on") or {}
        valid = v.meta.get("valid_metrics") or {}
        t.add_row(
            v.name,
            v.version,
            "*" if v.promoted else "",
            v.created_at[:16].replace("T", " "),
            Path(str(v.meta.get("data") or (v.meta.get("dataset") or {}).get("name") or "—")).name,
            str(fit_on.get("part", "—")),
            _num(valid.get("valid NDCG@10")),
            _num(v.metrics.get("NDCG@10")),
            _num(v.metrics.get("RMSE")),
            _gate(v.meta.get("retrain")),
        )
    out.print(t)


def _gate(g: Any) -> str:
    """A retrain decision in a cell: ``promoted 0.1234 vs 0.1100 (v2), p=0.01``."""
    if not isinstance(g, dict):
        return "—"
    word = "promoted" if g.get("promote") else "kept out"
    if g.get("promoted") is None:
        return f"{word} {_num(g.get('candidate'))} (none before)"
    p = g.get("p_value")
    p_text = f", p={p:.2g}" if isinstance(p, int | float) else ""
    return (
        f"{word} {_num(g.get('candidate'))} vs {_num(g.get('promoted'))} "
        f"({g.get('promoted_version')}, margin {g.get('margin')}){p_text}"
    )


def _num(x: Any) -> str:
    return "—" if x is None else f"{float(x):.4f}"


@models_app.command("promote")
@guard
def models_promote(
    name: Annotated[str, typer.Argument(help="Model name, e.g. sasrec.")],
    version: Annotated[str, typer.Argument(help="Version, e.g. v2.")],
    registry_dir: RegistryOpt = None,
) -> None:
    """Promote NAME VERSION in the registry and record it in the service database's
    promotion history; a running service serves it after `POST /api/v1/admin/reload`."""
    from primetime.service.promotion import promote
    from primetime.service.settings import Settings
    from primetime.service.store import EventStore

    reg = registry(registry_dir)
    reg.get(name, version)  # an unknown name or version fails before the database opens
    with EventStore.open(Settings().database_url) as store:
        v, row = promote(reg, store, name, version, actor=f"cli:{_user()}")
    note = "" if row is not None else " (it already was)"
    out.print(f"promoted {v.name} {v.version}{note} (reload a running service to serve it)")


def record_promotion(mv: Any, previous: str | None, *, actor: str) -> None:
    """Append a promotion made by the life cycle (``train``, ``serve``'s first training)
    to the service database's history; a database that cannot be reached is a warning,
    not a failure (the registry already holds the promotion)."""
    from sqlalchemy.exc import SQLAlchemyError

    from primetime.service.settings import Settings
    from primetime.service.store import EventStore

    try:
        with EventStore.open(Settings().database_url) as store:
            store.record_promotion(mv.name, mv.version, previous_version=previous, actor=actor)
    except (SQLAlchemyError, OSError) as e:
        err.print(f"[yellow]warning:[/] promotion history not recorded ({e})")


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@models_app.command("register")
@guard
def models_register(
    name: Annotated[
        str | None, typer.Argument(help=f"Model to train: {', '.join(MODELS)}.")
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option(
            help="Adopt a bundle trained elsewhere (a folder with `bundle.json`) instead of "
            "training; NAME, if given, is the registry name."
        ),
    ] = None,
    data: DataOpt = "ml-100k",
    options: SetOpt = None,
    refit: Annotated[
        bool, typer.Option(help="Refit on the whole log after selection (see `train`).")
    ] = True,
    promote: Annotated[bool, typer.Option(help="Promote the new version.")] = False,
    registry_dir: RegistryOpt = None,
) -> None:
    """Add a version to the registry: train NAME (selection on the leave-one-out
    valid part, test figures, refit on the whole log), or adopt `--bundle PATH`."""
    reg = registry(registry_dir)
    if bundle is not None:
        v = reg.adopt(bundle, name=name)
        if promote:
            v = reg.promote(v.name, v.version)
    else:
        if name is None:
            fail("name a model to train, or give --bundle PATH to adopt")
        assert name is not None
        from primetime.experiment import parse_overrides
        from primetime.lifecycle import DataSpec, FitSpec, default_split, train_and_register

        spec = FitSpec(
            name,
            data=DataSpec(data=data, split=default_split(name)),
            overrides=parse_overrides(options or []),
            refit=refit,
        )
        _, v = train_and_register(spec, reg, promote=promote, notes="primetime models register")
    figure = v.metrics.get("NDCG@10", v.metrics.get("RMSE"))
    out.print(
        f"registered {v.name} {v.version}"
        + (" (promoted)" if v.promoted else "")
        + (
            f": test {'NDCG@10' if 'NDCG@10' in v.metrics else 'RMSE'} {figure:.4f}"
            if figure is not None
            else ""
        )
    )


@experiments_app.command("list")
@guard
def experiments_list() -> None:
    """Experiments in the service's database ($PRIMETIME_DATABASE_URL)."""
    from primetime.service.settings import Settings
    from primetime.service.store import EventStore

    store = EventStore.open(Settings().database_url)
    t = Table("id", "name", "active", "arms")
    for e in store.experiments():
        arms = ", ".join(f"{a.name}={a.model_version} ({a.weight:g})" for a in e.arms)
        t.add_row(e.id, e.name, "yes" if e.active else "no", arms)
    out.print(t)


def _rate(p: float, ci: Sequence[float]) -> str:
    return f"{p:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


@experiments_app.command("report")
@guard
def experiments_report(
    experiment_id: Annotated[str, typer.Argument(help="Experiment id.")],
    as_json: JsonOpt = False,
) -> None:
    """CTR and completion rate per arm with 95% Wilson intervals."""
    from primetime.service.experiments import experiment_report
    from primetime.service.settings import Settings
    from primetime.service.store import EventStore

    rep = experiment_report(EventStore.open(Settings().database_url), experiment_id)
    if as_json:
        print(json.dumps(rep, indent=2))
        return
    t = Table(
        "arm",
        "model",
        "users",
        "impressions",
        "clicks",
        "CTR [95% CI]",
        "completions",
        "completion [95% CI]",
        title=f"{rep['id']}: {rep['name']} ({'active' if rep['active'] else 'stopped'})",
    )
    for a in rep["arms"]:
        t.add_row(
            a["arm"],
            a["model_version"],
            str(a["users"]),
            str(a["impressions"]),
            str(a["clicks"]),
            _rate(a["ctr"], a["ctr_ci"]),
            str(a["completions"]),
            _rate(a["completion_rate"], a["completion_ci"]),
        )
    out.print(t)


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@titles_app.command("add")
@guard
def titles_add(
    item_id: Annotated[str, typer.Option("--item-id", help="The new title's id.")],
    title: Annotated[str, typer.Option(help="Its name.")],
    genres: Annotated[str, typer.Option(help="Comma-separated genres of the catalog.")] = "",
    year: Annotated[int | None, typer.Option(help="Release year.")] = None,
    kind: Annotated[str, typer.Option(help="movie or show.")] = "movie",
    description: Annotated[str | None, typer.Option(help="A sentence or two.")] = None,
    cast: Annotated[str | None, typer.Option(help="Comma-separated cast.")] = None,
    directors: Annotated[str | None, typer.Option(help="Comma-separated directors.")] = None,
    crew: Annotated[str | None, typer.Option(help="Comma-separated other crew.")] = None,
    network: Annotated[str | None, typer.Option(help="Network or platform (shows).")] = None,
    url: Annotated[
        str, typer.Option(help="The running service (default $PRIMETIME_URL).")
    ] = "http://127.0.0.1:8000",
    admin_token: Annotated[
        str | None,
        typer.Option("--admin-token", help="Admin token (default $PRIMETIME_ADMIN_TOKEN)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a title to a running service (POST /api/v1/admin/titles): the content and
    graph models score it at once, no retraining, and it shows in the "New on
    Primetime" row. The service keeps it in memory (and mirrors it in the titles
    table); with several workers, each worker that should serve it needs the call
    (or a restart with the title in the data set)."""
    import os

    import httpx

    token = admin_token or os.environ.get("PRIMETIME_ADMIN_TOKEN")
    if not token:
        fail("an admin token is needed: --admin-token or $PRIMETIME_ADMIN_TOKEN")
    body: dict[str, Any] = {
        "item_id": item_id,
        "title": title,
        "genres": _names(genres),
        "kind": kind,
        "cast": _names(cast),
        "directors": _names(directors),
        "crew": _names(crew),
    }
    for key, value in (("year", year), ("description", description), ("network", network)):
        if value is not None:
            body[key] = value
    base = os.environ.get("PRIMETIME_URL", url) if url == "http://127.0.0.1:8000" else url
    try:
        r = httpx.post(
            f"{base.rstrip('/')}/api/v1/admin/titles",
            json=body,
            headers={"X-Admin-Token": str(token)},
            timeout=120,
        )
    except httpx.HTTPError as e:
        fail(f"cannot reach the service at {base}: {e}")
        return
    if r.status_code != 201:
        try:
            answer = r.json()
            detail = answer.get("message") or answer.get("detail")
        except ValueError:
            detail = r.text
        fail(f"the service answered {r.status_code}: {detail}")
    data = r.json()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    grown = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in data["models"].items())
    out.print(
        f"added {data['item_id']} as item_idx {data['item_idx']}; scored by its own model: "
        f"{grown}; content member {data['content_model']}"
    )
