"""``primetime trends`` and ``primetime release-plan`` on a small synthetic world, and the
planted truth behind the release plan: a holiday title is best released before December."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from primetime.cli import app
from primetime.data import synthetic
from primetime.trends.release import DemandData, forecast, plan

runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("catalog-home")


@pytest.fixture(autouse=True)
def _home(home, monkeypatch):
    monkeypatch.setenv("PRIMETIME_HOME", str(home))


def test_trends_writes_plots_and_a_summary(tmp_path):
    out = tmp_path / "trends"
    r = runner.invoke(
        app, ["trends", "--data", "synthetic-tiny", "--out", str(out), "--titles", "2"]
    )
    assert r.exit_code == 0, r.output
    assert "STL with a 52-week (yearly) cycle" in r.stdout
    summary = json.loads((out / "trends.json").read_text())
    kinds = [s["kind"] for s in summary["series"]]
    assert kinds[0] == "catalog" and kinds.count("title") == 2 and "genre" in kinds
    holiday = [s for s in summary["series"] if s["name"] == "Holiday"]
    assert holiday, "the world plants a Holiday genre"
    assert holiday[0]["peak"].endswith(("(Nov)", "(Dec)")), holiday[0]
    assert all((out / s["plot"]).stat().st_size > 1000 for s in summary["series"])


def test_trends_errors_name_the_problem(tmp_path):
    r = runner.invoke(app, ["trends", "--data", "synthetic-tiny", "--unit", "month"])
    assert r.exit_code == 2
    assert "unit must be auto, week or day" in r.output


def test_release_plan_with_planted_truth():
    r = runner.invoke(
        app,
        [
            "release-plan",
            "--data",
            "synthetic-tiny",
            "--title",
            "m000003",
            "--json",
            "--check",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["title"] == "m000003" and len(res["top_weeks"]) == 5
    assert res["best_audience"] >= res["worst_audience"] > 0
    assert res["check"]["titles"] == 3
    for key in ("wape", "wape_no_profile", "wape_observed"):
        assert np.isfinite(res["check"][key]) and res["check"][key] >= 0


def test_release_plan_bad_title_and_dates():
    r = runner.invoke(app, ["release-plan", "--data", "synthetic-tiny", "--title", "nope"])
    assert r.exit_code == 2
    assert "unknown title 'nope' in synthetic-tiny" in r.output and "m0000" in r.output
    r = runner.invoke(
        app, ["release-plan", "--data", "synthetic-tiny", "--title", "m000003", "--start", "soon"]
    )
    assert r.exit_code == 2 and "--start must be a date YYYY-MM-DD" in r.output


def test_holiday_titles_are_planned_for_late_autumn():
    """Planted: holiday titles are 4x as wanted in December. The plan for each holiday
    title launched inside the log must fall in the weeks of November or December."""
    cfg = dataclasses.replace(synthetic.PRESETS["tiny"], holiday_share=0.2)
    world = synthetic.generate(cfg)
    d = DemandData.of(world.dataset)
    launched = np.flatnonzero((d.release >= 0) & (d.release + 8 <= d.cal.n) & d.holiday)
    assert launched.size >= 5
    months = []
    for item in launched[:5].tolist():
        best = plan(forecast(d, item), d.cal.n, 52).best
        months.append(d.cal.phase_label(best).split("(")[1][:3])
    assert all(m in ("Nov", "Dec") for m in months), months


def test_season_refuses_bad_months_and_single_models():
    r = runner.invoke(app, ["season", "--data", "synthetic-tiny", "--months", "13"])
    assert r.exit_code == 2 and "--months takes comma-separated month numbers 1..12" in r.output
    r = runner.invoke(app, ["season", "--data", "synthetic-tiny", "--models", "temporal"])
    assert r.exit_code == 2 and "compares two or more models" in r.output
