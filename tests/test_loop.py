"""The learning loop on a drifting world (primetime.loopdemo): serve, post a week through the
API, export, retrain, promote; the served lists for the next week get better (paired test),
the promotion reaches the worker under load with no failed request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from primetime.loopdemo import DriftConfig, LoopReport, make_world, ndcg_at_10, run_loop


def test_world_drifts_and_gains_titles() -> None:
    cfg = DriftConfig(n_base_users=50, n_live_users=20)
    w = make_world(cfg)
    new = set(w.new_titles)
    assert not new & set(w.items)  # the base catalog has none of them
    live = [i for evs in w.week1.values() for i, _ in evs]
    assert any(i in new for i in live)
    # drift: the base log pairs genre g with g+1, the live weeks with g+shift
    shift = cfg.shift % cfg.n_genres
    pairs = {(w.genre_of[a] - w.genre_of[b]) % cfg.n_genres for a in live[:3] for b in live[:3]}
    assert pairs <= {0, shift, cfg.n_genres - shift}
    assert ndcg_at_10(["a", "x"], {"a"}) == 1.0 and ndcg_at_10(["x", "a"], {"a"}) < 1.0


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> LoopReport:
    return run_loop(DriftConfig(), tmp_path_factory.mktemp("loop"))


@pytest.mark.slow
def test_the_loop_beats_the_model_it_replaces(loop: LoopReport) -> None:
    r = loop
    assert r.failed_during_swap == 0 and r.requests_during_swap > 0
    assert r.before_version == "itemknn:v1" and r.after_version == "itemknn:v2"
    assert set(r.versions_after_swap) == {"itemknn:v2"}
    assert r.gates["itemknn"]["promote"] and r.gates["itemknn"]["promoted_version"] == "v1"
    assert np.isfinite(r.gates["itemknn"]["p_value"])
    assert r.ndcg_after > r.ndcg_before and r.test["p_value"] < 0.01


@pytest.mark.slow
def test_new_titles_reach_users_after_their_first_viewers(loop: LoopReport) -> None:
    # users who had not met a new title in week 1: none of their lists can hold one before
    # (the served model does not know them, the world's titles have no genres to go by)
    assert loop.new_in_top10_before == 0.0
    assert loop.new_in_top10_after >= 0.3 and loop.new_hit_after > loop.new_hit_before


def test_retrain_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from primetime.cli import app

    base = tmp_path / "base.parquet"
    make_world(DriftConfig(n_base_users=20, n_live_users=2)).base.write_parquet(base)
    runner = CliRunner()
    args = ["retrain", "--data", str(base), "--database", "none", "--models", "popularity"]
    r = runner.invoke(app, [*args, "--events", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "is not an export folder" in r.output, r.output
    r = runner.invoke(app, [*args, "--events", str(tmp_path), "--margin", "-1"])
    assert r.exit_code == 2, r.output
    r = runner.invoke(
        app,
        [
            *args[:-2],
            "--models",
            "popularity",
            "--database",
            "sqlite:////no/such.db",
            "--events",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 2 and "no SQLite database file" in r.output, r.output
