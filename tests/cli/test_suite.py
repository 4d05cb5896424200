"""`primetime train --suite`: stages from YAML, `--set`, skipping current versions, report."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from primetime.cli import app
from primetime.registry import ModelRegistry
from primetime.suite import default_config_dir, load_suite

runner = CliRunner()

TRAINING = """
data: {data}
refit: false
blend: [itemknn]
suites:
  tiny:
    - stage: 1
      title: members
      models: [popularity, itemknn]
    - stage: 2
      title: on top
      models: [als]
"""


@pytest.fixture
def setup(tmp_path, planted_csv, monkeypatch):
    monkeypatch.setenv("PRIMETIME_HOME", str(tmp_path / "home"))
    log = planted_csv
    cfg = tmp_path / "configs"
    cfg.mkdir()
    (cfg / "training.yaml").write_text(TRAINING.format(data=log))
    (cfg / "models.yaml").write_text("itemknn: {neighbours: 30}\nals: {factors: 8}\n")
    return cfg, tmp_path


def _suite(cfg, tmp_path, *extra):
    return runner.invoke(
        app,
        [
            "train",
            "--suite",
            "tiny",
            "--config-dir",
            str(cfg),
            "--report",
            str(tmp_path / "rep"),
            *extra,
        ],
    )


def test_suite_trains_stages_then_skips_what_is_current(setup):
    cfg, tmp_path = setup
    r = _suite(cfg, tmp_path)
    assert r.exit_code == 0, r.output
    reg = ModelRegistry()
    for name in ("popularity", "itemknn", "als"):
        mv = reg.promoted(name)
        assert mv is not None and mv.meta["suite"]["name"] == "tiny"
    assert reg.promoted("itemknn").meta["config"]["neighbours"] == 30
    # `blend:` models record the blend they are served with, chosen on valid; others not
    blend = reg.promoted("itemknn").meta["served_blend"]
    assert blend["weights"]["model"] == 1.0 and blend["trials"]
    assert "served_blend" not in reg.promoted("popularity").meta
    # the later stage records the versions it was built on
    assert reg.promoted("als").meta["suite"]["upstream"] == {"popularity": "v1", "itemknn": "v1"}
    rep = json.loads((tmp_path / "rep" / "suite.json").read_text())
    assert [s["status"] for s in rep["steps"]] == ["trained"] * 3
    assert set(rep["latency_ms"]) == {"popularity", "itemknn", "als", "all members"}
    assert rep["cpu_seconds"] > 0 and all(s["cpu_seconds"] > 0 for s in rep["steps"])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| 1 | itemknn | trained | v1 |" in md
    # the machine it ran on (timings compare only on one kind of CPU)
    from primetime.machine import cpu_model

    assert rep["machine"].startswith(cpu_model()) and f"({rep['machine']})" in md

    # a second run has nothing to do
    r = _suite(cfg, tmp_path)
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "rep" / "suite.json").read_text())
    assert [s["status"] for s in rep["steps"]] == ["current"] * 3
    assert reg.latest("als").version == "v1"

    # changing a stage-1 option retrains that member, and the later stage with it
    r = _suite(cfg, tmp_path, "--set", "itemknn.neighbours=10")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "rep" / "suite.json").read_text())
    assert [s["status"] for s in rep["steps"]] == ["current", "trained", "trained"]
    assert reg.promoted("itemknn").meta["config"]["neighbours"] == 10
    assert reg.promoted("als").meta["suite"]["upstream"]["itemknn"] == "v2"


def test_suite_errors_name_the_file_and_the_problem(setup):
    cfg, tmp_path = setup
    r = runner.invoke(app, ["train", "--suite", "nope", "--config-dir", str(cfg)])
    assert r.exit_code == 2 and "no suite 'nope'; suites: tiny" in r.output
    r = _suite(cfg, tmp_path, "--set", "neighbours=10")
    assert r.exit_code == 2 and "name the model: MODEL.KEY=VALUE" in r.output
    r = _suite(cfg, tmp_path, "--set", "als.nope=1")  # stage 2's option: refused before stage 1
    assert r.exit_code == 2 and "'als'" in r.output and "nope" in r.output, r.output
    assert not ModelRegistry().names()
    r = runner.invoke(app, ["train", "itemknn", "--suite", "tiny", "--config-dir", str(cfg)])
    assert r.exit_code == 2 and "not both" in r.output
    r = runner.invoke(app, ["train"])
    assert r.exit_code == 2 and "name a MODEL" in r.output
    (cfg / "training.yaml").write_text("suites:\n  tiny:\n    - models: [knn]\n")
    r = _suite(cfg, tmp_path)
    assert r.exit_code == 2 and "unknown model(s) knn" in r.output
    (cfg / "training.yaml").write_text("blend: [knn]\nsuites:\n  tiny:\n    - models: [als]\n")
    r = _suite(cfg, tmp_path)
    assert r.exit_code == 2 and "`blend:` must be a list of model names" in r.output
    (cfg / "training.yaml").write_text("suites: [\n")
    r = _suite(cfg, tmp_path)
    assert r.exit_code == 2 and "training.yaml, line" in r.output and "not valid YAML" in r.output


def test_the_shipped_configs_name_known_models():
    suite = load_suite("full", config_dir=default_config_dir())
    assert [s.number for s in suite.stages] == [1, 2, 3]
    assert suite.stages[-1].models == ("ensemble",)
    assert {"gnn", "multimodal", "contrastive", "temporal", "maml"} <= set(suite.models)
    # what the service prefers records its served blend
    assert {"ensemble", "temporal"} <= set(suite.blend) <= set(suite.models)


FUSED = """
data: {data}
refit: true
suites:
  fused:
    - stage: 1
      models: [popularity, itemknn]
    - stage: 2
      models: [ensemble]
"""


def test_the_fusion_stage_binds_the_members_the_suite_fit(setup, itemknn_fits):
    """The ensemble's final members are the earlier stages' fits (models.yaml's options
    included), in the selection fit and in the refit: none is fit again, and its bundle
    names the suite's own versions instead of registering copies."""
    cfg, tmp_path = setup
    fits = itemknn_fits
    (cfg / "training.yaml").write_text(FUSED.format(data=tmp_path / "log.csv"))
    (cfg / "models.yaml").write_text(
        "itemknn: {neighbours: 30}\nensemble: {members: 'itemknn,popularity'}\n"
    )
    r = runner.invoke(app, ["train", "--suite", "fused", "--config-dir", str(cfg)])
    assert r.exit_code == 0, r.output
    reg = ModelRegistry()
    ens = reg.promoted("ensemble")
    assert json.loads((ens.path / "bundle.json").read_text())["members"] == {
        "itemknn": "itemknn:v1",
        "popularity": "popularity:v1",
    }
    assert [v.version for v in reg.versions("itemknn")] == ["v1"]  # no copy registered
    assert "itemknn.neighbours=30" in ens.meta["config"]["member_settings"]
    loaded = reg.load("ensemble")
    assert loaded.fitted["itemknn"].config.neighbours == 30
    # stage 1: selection + refit; the ensemble: its earlier cut only (the final members
    # are bound in both of its fits, and its refit keeps the ranker)
    assert len(fits) == 3, fits


PARALLEL = """
data: {data}
refit: false
jobs: 2
suites:
  wide:
    - stage: 1
      title: members
      models: [popularity, itemknn, als]
    - stage: 2
      title: fusion
      models: [ensemble]
"""


def test_a_stage_fits_its_models_in_worker_processes(setup):
    """`jobs: 2`: the stage-1 models no later stage binds in memory are fit in two
    spawned worker processes (registered and promoted there, their news printed here);
    the ensemble's members are fit in this process and bound by it, not fit again."""
    cfg, tmp_path = setup
    (cfg / "training.yaml").write_text(PARALLEL.format(data=tmp_path / "log.csv"))
    (cfg / "models.yaml").write_text("ensemble: {members: 'popularity', trees: 5}\n")
    r = _suite(cfg, tmp_path, "--suite", "wide")
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())  # the console wraps long lines
    assert "training itemknn, als on" in said and "in 2 worker processes" in said
    assert "itemknn v1 in" in said and "als v1 in" in said  # the workers' news
    assert "training popularity on" in said  # the ensemble's member: in this process
    reg = ModelRegistry()
    for name in ("popularity", "itemknn", "als", "ensemble"):
        assert reg.promoted(name).version == "v1", name
    ens = reg.promoted("ensemble")
    assert json.loads((ens.path / "bundle.json").read_text())["members"] == {
        "popularity": "popularity:v1"
    }
    assert reg.promoted("als").meta["suite"]["upstream"] == {}
    assert reg.promoted("ensemble").meta["suite"]["upstream"] == {
        "popularity": "v1",
        "itemknn": "v1",
        "als": "v1",
    }
    rep = json.loads((tmp_path / "rep" / "suite.json").read_text())
    assert rep["jobs"] == 2
    assert [s["model"] for s in rep["steps"]] == ["popularity", "itemknn", "als", "ensemble"]
    assert all(s["status"] == "trained" and s["cpu_seconds"] > 0 for s in rep["steps"])
    # the workers' CPU time is the suite's too
    assert rep["cpu_seconds"] >= sum(s["cpu_seconds"] for s in rep["steps"]) * 0.9
    # a second run: every model current, no worker needed
    r = _suite(cfg, tmp_path, "--suite", "wide", "--jobs", "1")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "rep" / "suite.json").read_text())
    assert [s["status"] for s in rep["steps"]] == ["current"] * 4


def test_jobs_must_be_a_whole_number(setup):
    cfg, tmp_path = setup
    (cfg / "training.yaml").write_text("jobs: two\nsuites:\n  tiny:\n    - models: [als]\n")
    r = runner.invoke(app, ["train", "--suite", "tiny", "--config-dir", str(cfg)])
    assert r.exit_code == 2 and "`jobs:` must be a whole number" in r.output
    r = _suite(cfg, tmp_path, "--jobs", "0")
    assert r.exit_code == 2
