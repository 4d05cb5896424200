"""The catalog over time: ``trends``, ``release-plan`` and the planted-season study ``season``."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from primetime.cli.common import DataOpt, SetOpt, err, guard, out, split_models

app = typer.Typer()


def _months(text: str) -> list[int]:
    try:
        months = [int(m) for m in text.split(",") if m.strip()]
    except ValueError:
        raise ValueError(
            f"--months takes comma-separated month numbers 1..12, got {text!r}"
        ) from None
    if not months or min(months) < 1 or max(months) > 12:
        raise ValueError(f"--months takes comma-separated month numbers 1..12, got {text!r}")
    return months


def _overrides(pairs: list[str] | None) -> dict[str, Any]:
    from primetime.experiment import parse_overrides

    return parse_overrides(pairs or [])


# ------------------------------------------------------------------ season
@app.command("season")
@guard
def season(
    data: DataOpt = "synthetic-seasons",
    models: Annotated[
        str, typer.Option(help="Comma-separated models; the first is tested against the last.")
    ] = "temporal,sasrec",
    months: Annotated[
        str, typer.Option(help="The season: comma-separated months 1..12 (12 = December).")
    ] = "12",
    report: Annotated[
        Path | None, typer.Option(help="Folder for `report.md` and `season.json`.")
    ] = None,
    overrides: SetOpt = None,
    threads: Annotated[int, typer.Option(help="torch threads per fit.")] = 1,
) -> None:
    """Planted seasons: fit the models on a leave-one-out split at each user's last
    in-season event and compare them on test, grouped by whether the held-out title is
    in season (a holiday title in December), in its premiere window, or neither, with
    paired Wilcoxon tests. `--set` applies to every model."""
    from primetime.trends.season import run_season_study, write_report

    names = split_models(models)
    common = _overrides(overrides)
    study = run_season_study(
        data,
        names,
        months=_months(months),
        overrides={n: dict(common) for n in names},
        threads=threads,
    )
    table = Table(title=f"{study.data}: test users by held-out title ({study.protocol})")
    table.add_column("test users")
    table.add_column("n", justify="right")
    for m in study.models:
        table.add_column(f"{m} NDCG@10", justify="right")
    table.add_column(f"Δ {names[0]} − {names[-1]} [95% CI]", justify="right")
    table.add_column("p", justify="right")
    for r in study.rows:
        table.add_row(
            r["group"],
            str(r["n"]),
            *(f"{r[m]:.4f}" for m in study.models),
            f"{r['diff']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
            f"{r['p']:.2g}",
        )
    out.print(table)
    if report is not None:
        command = "primetime " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        err.print(f"report: {write_report(study, report, command)}")


# ------------------------------------------------------------------ trends
@app.command("trends")
@guard
def trends(
    data: DataOpt = "ml-100k",
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for the PNG plots and `trends.json`.")
    ] = Path("trends"),
    titles: Annotated[
        int, typer.Option(help="Decompose this many most-watched titles as well.")
    ] = 5,
    unit: Annotated[
        str,
        typer.Option(
            help="`week` (yearly cycle), `day` (weekly cycle) or `auto`: weeks for a log of "
            "two years or more, else days."
        ),
    ] = "auto",
) -> None:
    """Split demand (events per week or day) of the whole catalog, of every genre and of
    the most-watched titles into trend, seasonal and residual parts (STL); plot each
    part and print a summary: how seasonal each series is and when it peaks."""
    import json

    import numpy as np

    from primetime.experiment import open_data
    from primetime.trends.demand import calendar_of, counts, decompose, plot, slug

    if titles < 0:
        raise ValueError(f"--titles must be >= 0, got {titles}")
    ds = open_data(data).dataset
    inter = ds.interactions
    cal = calendar_of(inter, unit=unit)
    genres, names = ds.catalog.genre_matrix()
    per_title = counts(inter, cal, np.arange(inter.items.size))  # (V, n)
    series: list[tuple[str, str, np.ndarray]] = [("catalog", "all titles", per_title.sum(0))]
    for j, g in enumerate(names):
        series.append(("genre", g, genres[:, j] @ per_title))
    top = np.argsort(-per_title.sum(1), kind="stable")[:titles]
    labels = ds.catalog.frame["title"].to_list()
    for i in top:
        if per_title[i].sum() > 0:
            series.append(
                ("title", f"{inter.items.ids([int(i)])[0]} {labels[i - 1]}", per_title[i])
            )
    table = Table(
        title=f"{ds.name}: events per {cal.unit}, STL with a {cal.period}-{cal.unit} "
        f"({cal.cycle}ly) cycle, {cal.n} {cal.unit}s"
    )
    for col, just in (
        ("kind", "left"),
        ("series", "left"),
        ("events", "right"),
        ("seasonal strength", "right"),
        ("trend strength", "right"),
        ("peak", "left"),
        ("trend first → last", "right"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    rows = []
    for kind, name, y in series:
        d = decompose(y, cal, name)
        png = plot(d, cal, out_dir / f"{kind}-{slug(name)}.png")
        peak = cal.phase_label(d.peak)
        table.add_row(
            kind,
            name,
            f"{d.events:,}",
            f"{d.seasonal_strength:.2f}",
            f"{d.trend_strength:.2f}",
            peak,
            f"{d.trend[0]:.1f} → {d.trend[-1]:.1f}",
        )
        rows.append(
            {
                "kind": kind,
                "name": name,
                "events": d.events,
                "seasonal_strength": d.seasonal_strength,
                "trend_strength": d.trend_strength,
                "peak": peak,
                "trend_first": float(d.trend[0]),
                "trend_last": float(d.trend[-1]),
                "plot": png.name,
            }
        )
    (out_dir / "trends.json").write_text(
        json.dumps(
            {"data": ds.name, "unit": cal.unit, "period": cal.period, "series": rows}, indent=2
        ),
        encoding="utf-8",
    )
    out.print(table)
    err.print(f"{len(rows)} plots and trends.json in {out_dir}")


# ------------------------------------------------------------------ release plan
@app.command("release-plan")
@guard
def release_plan(
    title: Annotated[str, typer.Option("--title", help="The title's item id.")],
    data: DataOpt = "ml-100k",
    horizon: Annotated[int, typer.Option(help="Weeks of audience a release is judged on.")] = 8,
    start: Annotated[
        str | None,
        typer.Option(
            help="First candidate release day, `YYYY-MM-DD` (default: the week after the log ends)."
        ),
    ] = None,
    weeks: Annotated[int, typer.Option(help="Candidate release weeks from --start.")] = 52,
    neighbours: Annotated[int, typer.Option(help="Similar titles the forecast uses.")] = 20,
    check: Annotated[
        int,
        typer.Option(
            help="Synthetic worlds: also score the forecast against the planted truth for "
            "this many titles launched inside the log (a seeded sample)."
        ),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Forecast a title's weekly audience from its profile (kind, genres, holiday flag,
    the launch curves of similar titles, the seasonal index of their demand) and
    recommend the release week with the largest audience over --horizon weeks. On a
    synthetic world the forecast for the title's actual release is scored against the
    world's planted expected audience."""
    import json
    from datetime import date

    import numpy as np

    from primetime.experiment import open_data
    from primetime.trends.release import (
        DemandData,
        check_forecasts,
        forecast,
        plan,
        true_demand,
        wape,
    )

    if weeks < 1:
        raise ValueError(f"--weeks must be >= 1, got {weeks}")
    loaded = open_data(data)
    d = DemandData.of(loaded.dataset)
    item = d.item(title)
    fc = forecast(d, item, horizon=horizon, k=neighbours)
    if start is None:
        first = d.cal.n
    else:
        try:
            day = (date.fromisoformat(start) - date(1970, 1, 1)).days
        except ValueError:
            raise ValueError(f"--start must be a date YYYY-MM-DD, got {start!r}") from None
        first = int(d.cal.index(np.array([day * 86_400]))[0])
    p = plan(fc, first, weeks)

    def week_day(w: int) -> str:
        return str(np.datetime64(int(d.cal.start + w * d.cal.step), "s").astype("datetime64[D]"))

    frame = d.dataset.catalog.frame
    row = frame.row(item - 1, named=True)
    result: dict[str, Any] = {
        "title": title,
        "name": row["title"],
        "kind": row["kind"],
        "genres": row["genres"],
        "holiday": bool(d.holiday[item]),
        "neighbours": d.dataset.catalog.items.ids(fc.neighbours[:5].tolist()),
        "seasonal_index": fc.seasonal,
        "best_week": week_day(p.best),
        "best_audience": float(p.audience.max()),
        "worst_audience": float(p.audience.min()),
        "horizon": horizon,
    }
    order = np.argsort(-p.audience, kind="stable")[:5]
    result["top_weeks"] = [
        {"week": week_day(int(p.weeks[j])), "audience": float(p.audience[j])} for j in order
    ]
    world = getattr(loaded, "world", None)
    r = int(d.release[item])
    if world is not None and r >= 0 and r + horizon <= d.cal.n:
        wk = r + np.arange(horizon)
        truth = true_demand(world, d, item, wk)
        base = forecast(d, item, horizon=horizon, k=neighbours, profile=False)
        result["truth"] = {
            "release_week": week_day(r),
            "true": truth.round(3).tolist(),
            "forecast": fc.audience(r).round(3).tolist(),
            "wape": wape(fc.audience(r), truth),
            "wape_no_profile": wape(base.audience(r), truth),
            "wape_observed": wape(d.per_title[item, wk], truth),
            "total_error": float(abs(fc.audience(r).sum() - truth.sum()) / max(truth.sum(), 1e-12)),
        }
    elif world is not None:
        result["truth"] = None
    if check:
        if world is None:
            raise ValueError("--check needs a synthetic world (--data synthetic-...)")
        result["check"] = check_forecasts(world, d, check, horizon=horizon, k=neighbours)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    out.print(
        f"[bold]{title}[/] {row['title']} ({row['kind']}; {', '.join(row['genres'] or [])}"
        f"{'; holiday title' if d.holiday[item] else ''}); forecast from "
        f"{len(fc.neighbours)} similar titles, seasonal index "
        f"{'from STL' if fc.seasonal else 'off (log under two years)'}"
    )
    table = Table(title=f"best release weeks: forecast audience over {horizon} weeks")
    table.add_column("release week")
    table.add_column("audience", justify="right")
    for entry in result["top_weeks"]:
        table.add_row(entry["week"], f"{entry['audience']:.1f}")
    out.print(table)
    out.print(
        f"recommended: week of {result['best_week']} "
        f"({result['best_audience']:.1f} vs {result['worst_audience']:.1f} in the worst week)"
    )
    t = result.get("truth")
    if t:
        out.print(
            f"against the planted truth (released week of {t['release_week']}): WAPE "
            f"{t['wape']:.2f} (no profile {t['wape_no_profile']:.2f}; the observed counts "
            f"themselves {t['wape_observed']:.2f}), total audience off by {t['total_error']:.0%}"
        )
    elif world is not None:
        out.print(f"no planted-truth check: {title}'s first {horizon} weeks are not inside the log")
    c = result.get("check")
    if c:
        table = Table(
            title=f"forecast vs planted truth, {int(c['titles'])} titles, first {horizon} weeks"
        )
        for col in ("forecast", "mean WAPE", "mean total-audience error"):
            table.add_column(col, justify="left" if col == "forecast" else "right")
        table.add_row("profile (this command)", f"{c['wape']:.2f}", f"{c['total']:.0%}")
        table.add_row(
            "no profile (average title of its kind)",
            f"{c['wape_no_profile']:.2f}",
            f"{c['total_no_profile']:.0%}",
        )
        table.add_row("the observed counts themselves", f"{c['wape_observed']:.2f}", "—")
        out.print(table)
