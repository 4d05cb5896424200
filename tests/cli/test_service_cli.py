"""The service's commands: models list|promote|register, experiments list|report, serve --help."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from primetime.cli import app
from primetime.service.store import EventStore, NewEvent

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIMETIME_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PRIMETIME_DATABASE_URL", f"sqlite:///{tmp_path / 'svc.db'}")


def test_models_register_list_promote(tmp_path, planted):
    log = tmp_path / "log.csv"
    planted.interactions.to_polars(ids=True).select(
        "user_id", "item_id", "rating", "timestamp"
    ).write_csv(log)
    reg = ["--registry", str(tmp_path / "reg")]
    r = runner.invoke(app, ["models", "register", "popularity", "--data", str(log), *reg])
    assert r.exit_code == 0 and "registered popularity v1:" in r.output, r.output
    r = runner.invoke(app, ["models", "register", "itemknn", "--data", str(log), "--promote", *reg])
    assert r.exit_code == 0 and "itemknn v1 (promoted)" in r.output, r.output
    listed = json.loads(runner.invoke(app, ["models", "list", "--json", *reg]).stdout)
    assert {(v["name"], v["version"], v["promoted"]) for v in listed} == {
        ("popularity", "v1", False),
        ("itemknn", "v1", True),
    }
    assert all(0 <= v["metrics"]["NDCG@10"] <= 1 for v in listed)
    r = runner.invoke(app, ["models", "promote", "popularity", "v1", *reg])
    assert r.exit_code == 0 and "promoted popularity v1" in r.output
    r = runner.invoke(app, ["models", "promote", "popularity", "v7", *reg])
    assert r.exit_code == 2 and "v7" in r.output
    table = runner.invoke(app, ["models", "list", *reg]).output
    assert "itemknn" in table and "popularity" in table


def test_experiments_report_with_intervals(tmp_path):
    import os

    store = EventStore.open(os.environ["PRIMETIME_DATABASE_URL"])
    store.create_experiment(
        "ab1",
        "A against B",
        [{"name": "a", "model_version": "x:v1"}, {"name": "b", "model_version": "y:v1"}],
    )
    uid = store.create_user("u1", "hash").id
    store.assign("ab1", uid, "a")
    store.log_impressions(
        uid, "req1", ["i1", "i2"], model_version="x:v1", experiment_id="ab1", arm="a"
    )
    store.add_events(uid, [NewEvent(item_id="i1", event_type="click", request_id="req1")])
    rep = json.loads(runner.invoke(app, ["experiments", "report", "ab1", "--json"]).stdout)
    a = next(arm for arm in rep["arms"] if arm["arm"] == "a")
    assert (a["users"], a["impressions"], a["clicks"]) == (1, 2, 1)
    assert a["ctr"] == 0.5 and a["ctr_ci"][0] < 0.5 < a["ctr_ci"][1]
    table = runner.invoke(app, ["experiments", "report", "ab1"]).output
    assert "0.500 [" in table
    assert "ab1" in runner.invoke(app, ["experiments", "list"]).output
    missing = runner.invoke(app, ["experiments", "report", "nope"])
    assert missing.exit_code == 2 and "no experiment 'nope'" in missing.output


def test_serve_help_names_the_settings():
    r = runner.invoke(app, ["serve", "--help"])
    assert r.exit_code == 0 and "PRIMETIME_" in r.output and "--port" in r.output
