"""The command line as a user meets it: help, the benchmark contract, errors."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from primetime.cli import app
from primetime.data.splitdir import write_split_dir
from primetime.data.splits import leave_one_out, ratio_split
from primetime.pipeline.blend import BlendWeights, version_blend
from primetime.registry import ModelRegistry

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIMETIME_HOME", str(tmp_path / "home"))


@pytest.fixture
def split_dir(tmp_path, planted):
    d = tmp_path / "split"
    write_split_dir(leave_one_out(planted.interactions), d)
    return d


def _json_stdout(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_help_explains_every_command():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("data", "train", "evaluate", "benchmark", "recommend", "demo"):
        assert cmd in r.stdout
    r = runner.invoke(app, ["benchmark", "--help"])
    for opt in ("--split-dir", "--export-topk", "--json", "--task", "--tune", "--k"):
        assert opt in r.stdout


def test_benchmark_byo_split_contract(split_dir, tmp_path, planted):
    out = tmp_path / "topk"
    r = runner.invoke(
        app,
        [
            "benchmark",
            "--split-dir",
            str(split_dir),
            "--models",
            "popularity,itemknn,als",
            "--export-topk",
            str(out),
            "--k",
            "20",
            "--json",
            "--n-boot",
            "50",
        ],
    )
    data = _json_stdout(r)
    assert set(data["models"]) == {"popularity", "itemknn", "als"}
    for metrics in data["models"].values():
        assert 0 <= metrics["NDCG@10"] <= metrics["HR@10"] <= 1
    assert data["models"]["itemknn"]["NDCG@10"] > data["models"]["popularity"]["NDCG@10"]
    train = pl.read_csv(split_dir / "train.tsv", separator="\t", infer_schema=False)
    valid = pl.read_csv(split_dir / "valid.tsv", separator="\t", infer_schema=False)
    seen = set(zip(train["user_id"], train["item_id"], strict=True)) | set(
        zip(valid["user_id"], valid["item_id"], strict=True)
    )
    test_users = set(
        pl.read_csv(split_dir / "test.tsv", separator="\t", infer_schema=False)["user_id"]
    )
    for name in ("popularity", "itemknn", "als"):
        lines = (out / f"{name}.tsv").read_text().splitlines()
        assert lines[0] == "user_id\titem_id\trank"
        rows = [ln.split("\t") for ln in lines[1:]]
        assert {u for u, _, _ in rows} == test_users
        assert not {(u, i) for u, i, _ in rows} & seen, "train/valid items must be excluded"
        per_user = pl.DataFrame(rows, schema=["u", "i", "r"], orient="row")
        assert per_user.group_by("u").len()["len"].max() == 20
        assert all(i.startswith("i") for _, i, _ in rows), "original ids, not indices"


def test_benchmark_rating_contract(tmp_path, planted):
    d = tmp_path / "rsplit"
    write_split_dir(ratio_split(planted.interactions, seed=42, valid_frac=0.1), d)
    out = tmp_path / "pred"
    r = runner.invoke(
        app,
        [
            "benchmark",
            "--task",
            "rating",
            "--split-dir",
            str(d),
            "--models",
            "mf",
            "--export-predictions",
            str(out),
            "--json",
            "--n-boot",
            "50",
        ],
    )
    data = _json_stdout(r)
    assert (
        data["models"]["mf"]["MAE"] > 0
        and data["models"]["mf"]["RMSE"] >= data["models"]["mf"]["MAE"]
    )
    lines = (out / "mf.tsv").read_text().splitlines()
    assert lines[0] == "user_id\titem_id\tprediction"
    assert len(lines) - 1 == len(pl.read_csv(d / "test.tsv", separator="\t"))


def test_rating_task_refuses_topn_model(split_dir):
    r = runner.invoke(
        app, ["benchmark", "--task", "rating", "--split-dir", str(split_dir), "--models", "als"]
    )
    assert r.exit_code == 2
    assert "does not predict ratings" in r.output


def test_unknown_model_and_bad_k(split_dir):
    r = runner.invoke(app, ["benchmark", "--split-dir", str(split_dir), "--models", "alz"])
    assert r.exit_code == 2 and "unknown model 'alz'" in r.output
    r = runner.invoke(app, ["benchmark", "--split-dir", str(split_dir), "--k", "0"])
    assert r.exit_code == 2 and "--k" in r.output


def test_bad_split_file_names_line_and_column(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "train.tsv").write_text("user_id\titem_id\trating\ttimestamp\n1\ta\t4\tyesterday\n")
    (d / "test.tsv").write_text("user_id\titem_id\trating\ttimestamp\n1\tb\t4\t5\n")
    r = runner.invoke(app, ["benchmark", "--split-dir", str(d), "--models", "popularity"])
    assert r.exit_code == 2
    assert "train.tsv, line 2, column 'timestamp'" in r.output


def test_train_then_recommend_from_a_csv_log(tmp_path, planted):
    log = tmp_path / "log.csv"
    planted.interactions.to_polars(ids=True).select(
        "user_id", "item_id", "rating", "timestamp"
    ).write_csv(log)
    r = runner.invoke(app, ["train", "itemknn", "--data", str(log)])
    assert r.exit_code == 0, r.output
    # the version records the blend the service serves it with, chosen on valid
    mv = ModelRegistry().promoted("itemknn")
    assert mv is not None and "served blend (valid)" in r.output
    blend = mv.meta["served_blend"]
    assert version_blend(mv.meta) == BlendWeights.from_dict(blend["weights"])
    eligible = [t for t in blend["trials"] if t["eligible"]]
    assert blend["valid"]["NDCG@10"] == max(t["valid"]["NDCG@10"] for t in eligible)
    # a log without a catalog has no genres: diversity is not measured, no floor
    assert blend["diversity_floor"] is None and all(t["eligible"] for t in blend["trials"])
    r = runner.invoke(app, ["train", "itemknn", "--data", str(log), "--no-blend"])
    assert r.exit_code == 0, r.output
    latest = ModelRegistry().promoted("itemknn")
    assert latest is not None and latest.version != mv.version
    assert "served_blend" not in latest.meta and version_blend(latest.meta) is None
    r = runner.invoke(
        app, ["recommend", "--model", "itemknn", "--history", "i3,i4,i5", "--k", "5", "--json"]
    )
    data = _json_stdout(r)
    got = [x["item_id"] for x in data["items"]]
    assert len(got) == 5 and "i6" in got[:3] and not {"i3", "i4", "i5"} & set(got)
    r = runner.invoke(app, ["recommend", "--model", "itemknn", "--history", "nope"])
    assert r.exit_code == 2 and "unknown item id" in r.output
    assert r.output.count("error:") == 1, r.output  # one line, not a second "error: 2"
    r = runner.invoke(app, ["evaluate", "itemknn", "--json"])
    assert "NDCG@10" in _json_stdout(r)["models"]["itemknn"]


def test_recommend_before_training_says_what_to_do():
    r = runner.invoke(app, ["recommend", "--model", "als", "--history", "1"])
    assert r.exit_code == 2 and "no model 'als' in the registry" in r.output
    assert "primetime train als" in r.output


def test_data_errors_are_one_clear_line(tmp_path):
    r = runner.invoke(app, ["data", "info", "--data", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and f"'{tmp_path / 'missing.csv'}' is not an existing file" in r.output
    bad = tmp_path / "log.csv"
    bad.write_text("user_id,item_id,rating,timestamp\n1,10,4,100\n1,11,abc,101\n")
    r = runner.invoke(app, ["data", "info", "--data", str(bad)])
    assert r.exit_code == 2 and "log.csv, line 3, column 'rating'" in r.output
    r = runner.invoke(app, ["train", "knn"])
    assert r.exit_code == 2 and "unknown model 'knn'" in r.output


def test_sampled_variant_is_labelled_and_kept_apart(split_dir, tmp_path):
    rep = tmp_path / "rep"
    r = runner.invoke(
        app,
        [
            "benchmark",
            "--split-dir",
            str(split_dir),
            "--models",
            "popularity",
            "--sampled",
            "--report",
            str(rep),
            "--json",
            "--n-boot",
            "20",
        ],
    )
    data = _json_stdout(r)
    assert list(data["models"]) == ["popularity"], "sampled numbers never enter the contract JSON"
    md = (rep / "report.md").read_text()
    assert "## Top-N: full ranking on test" in md and "## Top-N: sampled-100 on test" in md
    assert "popularity [sampled-100]" in md


def test_ablate_reports_variants_against_full(tmp_path, planted):
    log = tmp_path / "log.csv"
    planted.interactions.to_polars(ids=True).select(
        "user_id", "item_id", "rating", "timestamp"
    ).write_csv(log)
    rep = tmp_path / "abl"
    r = runner.invoke(
        app,
        [
            "ablate",
            "--data",
            str(log),
            "--variants",
            "full,2 layers,length 20",
            "--base",
            "tuned",
            "--set",
            "epochs=1",
            "--set",
            "dim=16",
            "--set",
            "heads=2",
            "--set",
            "ffn=32",
            "--set",
            "layers=3",
            "--report",
            str(rep),
            "--n-boot",
            "20",
        ],
    )
    assert r.exit_code == 0, r.output
    md = (rep / "report.md").read_text()
    assert "vs full" in md and "| 2 layers |" in md and "| length 20 |" in md
    r = runner.invoke(app, ["ablate", "--data", str(log), "--variants", "full,4 wings"])
    assert r.exit_code == 2 and "unknown ablation" in r.output
    # a known ablation of another model: refused before the first variant is fit
    args = ["ablate", "--data", str(log), "--model", "contrastive"]
    r = runner.invoke(app, [*args, "--variants", "full,no knowledge graph"])
    assert r.exit_code == 2 and "'no knowledge graph' does not apply to contrastive" in r.output
    assert "fitting" not in r.output and "full:" not in r.output


def test_search_tunes_on_valid_and_prints_settings(tmp_path, planted):
    log = tmp_path / "log.csv"
    planted.interactions.to_polars(ids=True).select(
        "user_id", "item_id", "rating", "timestamp"
    ).write_csv(log)
    study = tmp_path / "study.json"
    r = runner.invoke(
        app,
        [
            "search",
            "--data",
            str(log),
            "--trials",
            "2",
            "--set",
            "epochs=1",
            "--set",
            "dim=16",
            "--set",
            "ffn=32",
            "--set",
            "layers=1",
            "--output",
            str(study),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "primetime benchmark --models sasrec --set" in r.stdout
    res = json.loads(study.read_text())
    assert len(res["trials"]) == 2 and res["best_params"]["dim"] == 16
    assert all(0 <= t["valid_ndcg10"] <= 1 for t in res["trials"])


def test_versus_tests_every_model_against_each_named_reference(split_dir, tmp_path):
    rep = tmp_path / "rep"
    args = ["benchmark", "--split-dir", str(split_dir), "--models", "popularity,itemknn,als"]
    r = runner.invoke(
        app, [*args, "--versus", "itemknn,als", "--report", str(rep), "--n-boot", "20"]
    )
    assert r.exit_code == 0, r.output
    tests = json.loads((rep / "report.json").read_text())["sections"][0]["paired_tests"]
    pairs = {(t["model"], t["reference"]) for t in tests}
    assert pairs == {
        ("popularity", "itemknn"),
        ("als", "itemknn"),
        ("popularity", "als"),
        ("itemknn", "als"),
    }
    assert "vs itemknn, als" in (rep / "report.md").read_text()
    bad = runner.invoke(app, [*args, "--versus", "sasrec"])
    assert bad.exit_code == 2 and "not in --models" in bad.output


@pytest.mark.slow
def test_train_under_torchrun_two_processes(tmp_path, planted):
    """`torchrun --nproc-per-node 2 primetime train`: one model saved (by rank 0), stamped
    with the process count, and it recommends like a single-process one."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    log = tmp_path / "log.csv"
    planted.interactions.to_polars(ids=True).select(
        "user_id", "item_id", "rating", "timestamp"
    ).write_csv(log)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "primetime.cli"]
    cmd += ["train", "gru4rec", "--data", str(log), "--set", "epochs=3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("training gru4rec on log") == 1, r.stderr  # rank 0 only
    assert "2 processes" in r.stderr
    version = tmp_path / "home" / "models" / "gru4rec" / "v1"
    assert json.loads((version / "meta.json").read_text())["processes"] == 2
    assert json.loads((version / "bundle.json").read_text())["meta"]["processes"] == 2
    assert r.stdout.count("registered gru4rec v1") == 1
    r = runner.invoke(app, ["recommend", "--model", "gru4rec", "--history", "i3,i4,i5", "--json"])
    assert len(_json_stdout(r)["items"]) == 10


def test_wrong_option_values_are_one_clear_line():
    r = runner.invoke(app, ["train", "sasrec", "--set", "epochs=abc"])
    assert r.exit_code == 2 and "SASRecConfig.epochs: expected int" in r.output
    r = runner.invoke(app, ["train", "als", "--set", "regularization=true"])
    assert r.exit_code == 2 and "expected float" in r.output
    r = runner.invoke(app, ["serve", "--port", "99999"])
    assert r.exit_code == 2 and "--port" in r.output
    r = runner.invoke(app, ["serve", "--workers", "0"])
    assert r.exit_code == 2 and "--workers" in r.output


def test_help_keeps_angle_brackets_of_placeholders():
    """Help is rendered as Markdown, which takes `<preset>` for an HTML tag unless quoted."""
    r = runner.invoke(app, ["benchmark", "--help"], env={"COLUMNS": "200"})
    assert "synthetic-<preset>[-seed<N>]" in r.stdout
    assert "OUT/<model>.tsv" in r.stdout and "<data>-<task>" in r.stdout


def test_one_registry_from_train_to_recommend_and_evaluate(tmp_path, planted):
    """`train` registers and promotes a refit version; `recommend` answers from it;
    `evaluate` shows its recorded figures (it has seen test); a `--no-refit` version is
    measured again; `benchmark --register` and `models register --bundle` land in the
    same registry that `models list` shows."""
    log = tmp_path / "log.csv"
    planted.interactions.to_polars(ids=True).select(
        "user_id", "item_id", "rating", "timestamp"
    ).write_csv(log)
    r = runner.invoke(app, ["train", "itemknn", "--data", str(log)])
    assert r.exit_code == 0 and "registered itemknn v1 (promoted)" in r.stdout, r.output
    rec = _json_stdout(
        runner.invoke(app, ["recommend", "--model", "itemknn", "--history", "i3,i4", "--json"])
    )
    assert rec["version"] == "v1" and len(rec["items"]) == 10
    shown = _json_stdout(runner.invoke(app, ["evaluate", "itemknn", "--json"]))
    assert shown["recorded"] is True and "NDCG@10" in shown["models"]["itemknn"]

    r = runner.invoke(app, ["train", "itemknn", "--data", str(log), "--no-refit", "--no-promote"])
    assert r.exit_code == 0 and "registered itemknn v2 (not promoted)" in r.stdout, r.output
    fresh = _json_stdout(runner.invoke(app, ["evaluate", "itemknn", "--version", "v2", "--json"]))
    listed = _json_stdout(runner.invoke(app, ["models", "list", "--json"]))
    v2 = next(v for v in listed if v["version"] == "v2")
    assert fresh["models"]["itemknn"]["NDCG@10"] == pytest.approx(v2["metrics"]["NDCG@10"])
    assert v2["fit_on"]["part"] == "train" and not v2["promoted"]
    rec = _json_stdout(
        runner.invoke(app, ["recommend", "--model", "itemknn", "--history", "i3", "--json"])
    )
    assert rec["version"] == "v1"  # the promoted one, not the newest

    r = runner.invoke(
        app,
        [
            "benchmark",
            "--data",
            str(log),
            "--models",
            "popularity",
            "--register",
            "--report",
            str(tmp_path / "rep"),
        ],
    )
    assert r.exit_code == 0, r.output
    bundle = tmp_path / "home" / "models" / "popularity" / "v1"
    r = runner.invoke(app, ["models", "register", "pop-copy", "--bundle", str(bundle)])
    assert r.exit_code == 0 and "registered pop-copy v1" in r.stdout, r.output
    listed = _json_stdout(runner.invoke(app, ["models", "list", "--json"]))
    assert {(v["name"], v["version"]) for v in listed} == {
        ("itemknn", "v1"),
        ("itemknn", "v2"),
        ("popularity", "v1"),
        ("pop-copy", "v1"),
    }
    r = runner.invoke(app, ["models", "register", "--bundle", str(tmp_path)])
    assert r.exit_code == 2 and "not a model bundle" in r.output


def test_data_split_writes_a_split_folder_with_metadata(tmp_path, planted):
    log = tmp_path / "log.csv"
    planted.interactions.to_polars(ids=True).select(
        "user_id", "item_id", "rating", "timestamp"
    ).write_csv(log)
    r = runner.invoke(app, ["data", "split", str(tmp_path / "byo"), "--data", str(log)])
    assert r.exit_code == 0, r.output
    assert {p.name for p in (tmp_path / "byo").iterdir()} >= {"train.tsv", "test.tsv"}
    r = runner.invoke(
        app,
        [
            "benchmark",
            "--split-dir",
            str(tmp_path / "byo"),
            "--models",
            "popularity",
            "--json",
            "--report",
            str(tmp_path / "rep"),
        ],
    )
    assert "popularity" in _json_stdout(r)["models"]


def test_ablate_a_content_model_runs_its_own_study(tmp_path, planted):
    """`ablate --model gnn` defaults to the graph model's study on its tuned defaults."""
    log = tmp_path / "log.csv"
    planted.interactions.to_polars(ids=True).select(
        "user_id", "item_id", "rating", "timestamp"
    ).write_csv(log)
    rep = tmp_path / "abl"
    args = ["ablate", "--data", str(log), "--model", "gnn", "--set", "epochs=1"]
    r = runner.invoke(app, [*args, "--set", "dim=8", "--report", str(rep), "--n-boot", "20"])
    assert r.exit_code == 0, r.output
    md = (rep / "report.md").read_text()
    assert "| full |" in md and "| no knowledge graph |" in md
    r = runner.invoke(app, ["ablate", "--data", str(log), "--model", "itemknn"])
    assert r.exit_code == 2 and "no default ablations for 'itemknn'" in r.output
    r = runner.invoke(app, [*args, "--split", "ratio"])
    assert r.exit_code == 2 and "--split must be 'loo' or 'cold-items'" in r.output


def test_benchmark_pipeline_scores_and_exports_the_served_lists(split_dir, tmp_path, planted):
    """`--pipeline` adds `served-<model>` (the list GET /recommendations returns), paired
    against --versus and exported like the bare models; a list of 10 is the first 10 of
    the exported 20 (tests/service/test_served_is_evaluated.py checks it is the API's)."""
    out, rep = tmp_path / "topk", tmp_path / "rep"
    args = ["benchmark", "--split-dir", str(split_dir), "--models", "popularity,itemknn"]
    r = runner.invoke(
        app,
        [*args, "--pipeline", "--versus", "itemknn,served-itemknn"]
        + ["--export-topk", str(out), "--k", "20"]
        + ["--report", str(rep), "--n-boot", "20", "--json"],
    )
    data = _json_stdout(r)
    assert set(data["models"]) == {"popularity", "itemknn", "served-popularity", "served-itemknn"}
    tests = json.loads((rep / "report.json").read_text())["sections"][0]["paired_tests"]
    pairs = {(t["model"], t["reference"]) for t in tests}
    assert ("served-itemknn", "itemknn") in pairs
    # a served row can be the reference: what users get from one model against another's
    assert ("served-popularity", "served-itemknn") in pairs
    bad = runner.invoke(app, [*args, "--versus", "served-itemknn"])  # no --pipeline
    assert bad.exit_code != 0 and "not in --models" in bad.output
    train = pl.read_csv(split_dir / "train.tsv", separator="\t", infer_schema=False)
    valid = pl.read_csv(split_dir / "valid.tsv", separator="\t", infer_schema=False)
    seen = set(zip(train["user_id"], train["item_id"], strict=True)) | set(
        zip(valid["user_id"], valid["item_id"], strict=True)
    )
    served = pl.read_csv(out / "served-itemknn.tsv", separator="\t", infer_schema=False)
    bare = pl.read_csv(out / "itemknn.tsv", separator="\t", infer_schema=False)
    assert served.height > 0 and served["rank"].cast(int).max() <= 20
    assert not set(zip(served["user_id"], served["item_id"], strict=True)) & seen
    assert not served.equals(bare), "the served lists are the pipeline's, not the model's"
    bad = runner.invoke(app, [*args, "--blend-grid"])
    assert bad.exit_code != 0 and "--pipeline" in bad.output


def test_export_onnx_then_recommend_through_onnxruntime_and_faiss(tmp_path, planted):
    """`export-onnx` writes float32 + INT8 files; `recommend --onnx` and `--retrieval`
    answer like the torch model does (the chain i3, i4, i5 -> i6)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("faiss")
    log = tmp_path / "log.csv"
    planted.interactions.to_polars(ids=True).select(
        "user_id", "item_id", "rating", "timestamp"
    ).write_csv(log)
    sets = ["--set", "dim=16", "--set", "heads=1", "--set", "layers=1", "--set", "ffn=32"]
    sets += ["--set", "epochs=30", "--set", "lr=0.01", "--set", "patience=0"]
    r = runner.invoke(app, ["train", "sasrec", "--data", str(log), "--no-refit", *sets])
    assert r.exit_code == 0, r.output
    out_file = tmp_path / "s.onnx"
    r = runner.invoke(app, ["export-onnx", "--model", "sasrec", "--out", str(out_file), "--int8"])
    assert r.exit_code == 0, r.output
    assert out_file.is_file() and (tmp_path / "s.int8.onnx").is_file()
    ask = ["recommend", "--model", "sasrec", "--history", "i3,i4,i5", "--k", "5", "--json"]
    torch_top = [x["item_id"] for x in _json_stdout(runner.invoke(app, ask))["items"]]
    onnx_top = [
        x["item_id"]
        for x in _json_stdout(runner.invoke(app, [*ask, "--onnx", str(out_file)]))["items"]
    ]
    assert onnx_top == torch_top
    r = runner.invoke(app, [*ask, "--retrieval", "flat", "--candidates", "5"])
    assert [x["item_id"] for x in _json_stdout(r)["items"]] == torch_top
    r = runner.invoke(app, ["export-onnx", "--model", "sasrec", "--out", str(tmp_path / "x")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*ask, "--retrieval", "annoy"])
    assert r.exit_code == 2 and "--retrieval" in r.output


def test_benchmark_ensemble_binds_its_members_fit_in_the_same_run(split_dir, itemknn_fits):
    """`benchmark --models itemknn,popularity,ensemble`: the ensemble's final members are
    the table's own itemknn and popularity (itemknn fit once for the table and once on the
    ensemble's earlier cut, not a third time)."""
    fits = itemknn_fits
    args = ["--split-dir", str(split_dir), "--models", "itemknn,popularity,ensemble"]
    args += ["--set", "ensemble.members=itemknn,popularity", "--json", "--n-boot", "50"]
    data = _json_stdout(runner.invoke(app, ["benchmark", *args]))
    assert set(data["models"]) == {"itemknn", "popularity", "ensemble"}
    assert len(fits) == 2 and fits[1] < fits[0], fits  # the table's fit, then the cut's
