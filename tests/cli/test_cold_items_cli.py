"""The new-titles protocol from the command line: ``data split --split cold-items``
writes the candidate files, ``benchmark`` reads them back, ranks among them only,
exports only them and labels the report."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from primetime.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIMETIME_HOME", str(tmp_path / "home"))


def test_cold_items_split_folder_round_trip(tmp_path, planted_csv):
    byo = tmp_path / "byo"
    r = runner.invoke(
        app, ["data", "split", str(byo), "--data", str(planted_csv), "--split", "cold-items"]
    )
    assert r.exit_code == 0, r.output
    assert "test ranked among 3 candidate titles" in r.stdout
    cand = pl.read_csv(byo / "candidates.tsv", separator="\t")["item_id"].cast(pl.Utf8)
    assert (byo / "valid_candidates.tsv").exists() and cand.len() == 3
    train = pl.read_csv(byo / "train.tsv", separator="\t")["item_id"].cast(pl.Utf8)
    assert not train.is_in(cand.implode()).any()

    topk = tmp_path / "topk"
    r = runner.invoke(
        app,
        [
            "benchmark",
            "--split-dir",
            str(byo),
            "--models",
            "random,popularity",
            "--export-topk",
            str(topk),
            "--k",
            "5",
            "--json",
            "--n-boot",
            "50",
            "--report",
            str(tmp_path / "rep"),
        ],
    )
    assert r.exit_code == 0, r.output
    models = json.loads(r.stdout)["models"]
    assert set(models) == {"random", "popularity"}
    assert models["popularity"]["Coverage@5"] == pytest.approx(1.0)  # 3 candidates, all listed
    listed = pl.read_csv(topk / "random.tsv", separator="\t")["item_id"].cast(pl.Utf8)
    assert set(listed) <= set(cand)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "C: new titles (cold-start items), ranked among 3 candidate titles only" in md
    assert "## Top-N: ranked among 3 candidate titles only on test" in md
    assert "vs random" in md  # paired tests against the floor by default


def test_benchmark_cold_items_by_name_and_sampled_refused(tmp_path, planted_csv):
    args = ["benchmark", "--data", str(planted_csv), "--split", "cold-items", "--n-boot", "50"]
    r = runner.invoke(
        app, [*args, "--models", "random,genre-profile", "--report", str(tmp_path / "rep")]
    )
    assert r.exit_code == 0, r.output
    assert "ranked among 3 candidate titles only" in r.stdout
    r = runner.invoke(app, [*args, "--models", "random", "--sampled"])
    assert r.exit_code != 0 and "drop --sampled" in r.output
