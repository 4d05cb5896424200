"""Report files, the contract JSON and the CLI table."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from rich.console import Console
from rich.table import Table

from primetime.eval import (
    EvalSet,
    Report,
    evaluate,
    evaluate_ratings,
    evaluate_sampled,
    make_stamp,
    rich_table,
    to_contract_json,
)
from primetime.eval.report import git_commit

V = 9


def _results(split, fakes):
    es = EvalSet.for_test(split)
    by_idx = fakes.TableModel("popularity", V, lambda c: -np.arange(V, dtype=float))
    oracle_rows = {1: 5, 2: 6, 4: 3}

    def oracle_row(ctx):
        s = np.zeros(V)
        s[oracle_rows[ctx.user_idx]] = 1.0
        return s

    oracle = fakes.TableModel("oracle", V, oracle_row)
    return es, [evaluate(m, es) for m in (by_idx, oracle, fakes.HashModel(V))]


@pytest.fixture
def stamp(split) -> dict:
    return make_stamp(
        dataset="tiny", task="A: next-item top-N", protocol=split.protocol,
        split_sizes=split.sizes(), seed=7, command=["primetime", "evaluate", "--data", "tiny"],
    )  # fmt: skip


def test_stamp_fields(stamp) -> None:
    assert stamp["dataset"] == "tiny"
    assert stamp["seed"] == 7
    assert stamp["command"] == "primetime evaluate --data tiny"
    assert stamp["split_sizes"] == {"train": 10, "valid": 3, "test": 3}
    assert re.fullmatch(r"unknown|[0-9a-f]{4,40}(-dirty)?", stamp["commit"])
    assert "T" in stamp["timestamp"]


def test_git_commit_outside_a_repository(tmp_path) -> None:
    assert git_commit(tmp_path) == "unknown"


def test_report_writes_files(split, tiny, fakes, stamp, tmp_path) -> None:
    es, results = _results(split, fakes)
    sampled = evaluate_sampled(fakes.ConstantModel(V), es)

    class Mean:
        name = "mean"

        def predict_ratings(self, u, i):
            return np.full(len(u), 3.5)

    ratings = evaluate_ratings(Mean(), split.test)
    rep = Report([*results, sampled], stamp, ratings=[ratings], catalog=tiny.catalog,
                 data=tiny.interactions, n_boot=200)  # fmt: skip
    written = rep.write(tmp_path / "out")
    for key in ("markdown", "json", "plot:metrics", "plot:segments", "plot:genres", "plot:ratings"):
        assert written[key].exists() and written[key].stat().st_size > 0, key
    assert written["plot:metrics"].read_bytes()[:4] == b"\x89PNG"

    md = written["markdown"].read_text()
    assert "primetime evaluate --data tiny" in md  # the command
    assert stamp["commit"] in md and "tiny" in md and "loo" in md  # the stamp
    assert "share of oracle (NDCG@10)" in md
    assert "## Top-N: full ranking on test" in md
    assert "## Top-N: sampled-100 on test" in md  # its own section, never mixed
    assert "Wilcoxon" in md and "By user activity segment" in md and "By genre" in md
    assert "Rating prediction" in md
    assert "![metrics](metrics.png)" in md

    data = json.loads(written["json"].read_text())
    assert data["stamp"]["command"] == "primetime evaluate --data tiny"
    assert set(data["models"]) == {"popularity", "oracle", "hash"}  # full ranking only
    assert data["models"]["oracle"]["NDCG@10"] == 1.0
    full = data["sections"][0]
    assert full["protocol"] == "full"
    hr = full["results"]["popularity"]["metrics"]["HR@10"]
    assert hr["lo"] <= hr["mean"] <= hr["hi"]
    assert full["results"]["oracle"]["share_of_oracle"] == 1.0
    assert data["sections"][1]["protocol"] == "sampled-100"
    assert data["ratings"]["mean"]["metrics"]["MAE"]["mean"] == pytest.approx(
        float(np.mean(np.abs(split.test.rating - 3.5)))
    )


def test_report_by_popularity_with_paired_tests(split, fakes, stamp, tmp_path) -> None:
    _, results = _results(split, fakes)
    rep = Report(results, stamp, train=split.train, reference="popularity", n_boot=50)
    pop = rep.to_dict()["sections"][0]["results"]
    assert pop["oracle"]["popularity"]["rarest third"]["NDCG@10"] == 1.0
    assert pop["oracle"]["popularity"]["rarest third"]["users"] == 1
    tests = pop["oracle"]["popularity_tests"]
    assert set(tests) == {"rarest third", "middle third", "most watched third"}
    assert tests["rarest third"]["reference"] == "popularity"
    assert tests["rarest third"]["n_users"] == 1
    assert pop["popularity"]["popularity_tests"] is None  # the reference itself
    md = rep.write(tmp_path / "r", plots=False)["markdown"].read_text()
    assert "### By popularity of the held-out item (NDCG@10)" in md
    assert "oracle − popularity (p)" in md
    assert "| rarest third | 0–0 | 1 |" in md
    # without train there is nothing to count
    assert "By popularity" not in Report(results, stamp, n_boot=50).to_markdown()


def test_share_of_oracle(split, fakes, stamp) -> None:
    _, results = _results(split, fakes)
    d = Report(results, stamp, n_boot=50).to_dict()
    res = d["sections"][0]["results"]
    ndcg = {k: v["metrics"]["NDCG@10"]["mean"] for k, v in res.items()}
    assert res["popularity"]["share_of_oracle"] == pytest.approx(
        ndcg["popularity"] / ndcg["oracle"]
    )
    assert "share of oracle" not in Report(results[:1], stamp, n_boot=50).to_markdown()


def test_contract_json(split, fakes) -> None:
    es, results = _results(split, fakes)
    c = to_contract_json(results)
    assert set(c) == {"models"}
    assert c["models"]["oracle"]["NDCG@10"] == 1.0
    assert {"HR@10", "NDCG@10", "MRR@10", "Coverage@10"} <= set(c["models"]["hash"])
    json.dumps(c, allow_nan=False)
    sampled = evaluate_sampled(fakes.ConstantModel(V), es)
    with pytest.raises(ValueError, match="mix protocols"):
        to_contract_json([results[0], sampled])
    with pytest.raises(ValueError, match="several results"):
        to_contract_json([results[0], results[0]])


def test_rich_table(split, fakes) -> None:
    _, results = _results(split, fakes)
    t = rich_table(results, n_boot=50)
    assert isinstance(t, Table)
    assert [c.header for c in t.columns] == ["metric", "popularity", "oracle", "hash"]
    console = Console(record=True, width=200)
    console.print(t)
    text = console.export_text()
    assert "NDCG@10" in text and "share of oracle" in text
    assert rich_table(results, cis=False).row_count == t.row_count
