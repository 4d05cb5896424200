"""The learning loop on a drifting world (primetime.loopdemo): serve, post a week through the
API, export, retrain, promote; the served lists for the next week get better (paired test),
the promotion reaches the worker under load with no failed request."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from primetime.lifecycle import DataSpec, build_model, prepare_data
from primetime.loopdemo import (
    DriftConfig,
    LoopReport,
    make_world,
    ndcg_at_10,
    run_loop,
    write_week1_export,
)
from primetime.registry import ModelRegistry
from primetime.retrain import retrain


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
def loop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("loop")


@pytest.fixture(scope="module")
def loop(loop_dir: Path) -> LoopReport:
    return run_loop(DriftConfig(), loop_dir)


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


@pytest.mark.slow
def test_models_list_shows_the_gate(loop: LoopReport, loop_dir: Path) -> None:
    from typer.testing import CliRunner

    from primetime.cli import app

    r = CliRunner().invoke(
        app, ["models", "list", "--registry", str(loop_dir / "models"), "--json"]
    )
    assert r.exit_code == 0, r.output
    rows = {(v["name"], v["version"]): v for v in json.loads(r.output)}
    gate = rows[("itemknn", "v2")]["retrain"]
    assert gate["promote"] and gate["promoted_version"] == "v1"
    assert gate["candidate"] == pytest.approx(loop.gates["itemknn"]["candidate"])
    assert rows[("itemknn", "v1")]["retrain"] is None  # fit by the life cycle, not a retrain
    r = CliRunner().invoke(app, ["models", "list", "--registry", str(loop_dir / "models")])
    assert r.exit_code == 0 and "retrain gate" in r.output, r.output


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


def test_the_gate_keeps_out_a_candidate_worse_than_the_promoted(tmp_path: Path) -> None:
    """The promoted version has seen the gate slice (fit on the whole joined log): no honest
    candidate can match it, so the gate must say no and leave it promoted."""
    world = make_world(DriftConfig(n_base_users=80, n_live_users=30))
    base = tmp_path / "base.parquet"
    world.base.write_parquet(base)
    write_week1_export(world, tmp_path)
    reg = ModelRegistry(tmp_path / "models")
    spec = DataSpec(data=str(base), split="slice", events=tmp_path, slice_days=1.0)
    leaky = build_model("itemknn")
    leaky.fit(prepare_data(spec).whole_log())
    reg.promote("itemknn", reg.register(leaky).version)
    (r,) = retrain(["itemknn"], data=str(base), events=tmp_path, registry=reg, say=lambda _: None)
    assert not r.promoted and not r.gate.promote and r.gate.promoted_version == "v1"
    assert r.gate.promoted is not None and r.gate.candidate < r.gate.promoted
    assert reg.promoted("itemknn").version == "v1"  # type: ignore[union-attr]
    assert reg.get("itemknn", "v2").meta["retrain"]["promote"] is False
    # the candidate records the blend it would be served with, chosen on the valid days
    assert reg.get("itemknn", "v2").meta["served_blend"]["weights"]["model"] == 1.0
    assert "has seen the slice" not in r.gate.reason  # v1 was not fit by a retrain
    # a margin wider than the gap lets it through
    gap = r.gate.promoted - r.gate.candidate
    (r2,) = retrain(
        ["itemknn"], data=str(base), events=tmp_path, registry=reg, margin=gap + 0.01,
        say=lambda _: None,
    )  # fmt: skip
    assert r2.promoted and reg.promoted("itemknn").version == r2.version.version  # type: ignore[union-attr]
    # again, with no new events: the promoted version has seen the slice, and the reason says so
    (r3,) = retrain(
        ["itemknn"], data=str(base), events=tmp_path, registry=reg, say=lambda _: None,
        blend=False,
    )  # fmt: skip
    assert "has seen the slice" in r3.gate.reason
    assert "served_blend" not in r3.version.meta


def test_retrain_warm_starts_sasrec_from_the_promoted_version(tmp_path: Path) -> None:
    """sasrec v1 fit on the base log and promoted; the retrain on base + week 1 starts from
    v1's weights with v1's settings, says so in the version's meta, and is gated as usual."""
    world = make_world(DriftConfig(n_base_users=80, n_live_users=30))
    base = tmp_path / "base.parquet"
    world.base.write_parquet(base)
    write_week1_export(world, tmp_path)
    reg = ModelRegistry(tmp_path / "models")
    small = {"dim": 16, "heads": 2, "layers": 1, "ffn": 32, "epochs": 2, "device": "cpu"}
    v1 = build_model("sasrec", small)
    base_only = prepare_data(DataSpec(data=str(base), split="slice", slice_days=1.0))
    v1.fit(base_only.whole_log(), side=base_only.side)
    reg.promote("sasrec", reg.register(v1).version)
    (r,) = retrain(
        ["sasrec"], data=str(base), events=tmp_path, registry=reg, slice_days=1.0,
        warm_epochs=1, say=lambda _: None,
    )  # fmt: skip
    meta = reg.get("sasrec", r.version.version).meta
    warm = meta["retrain"]["warm_start"]
    assert warm["from"] == "sasrec:v1" and warm["epochs"] == 1
    assert warm["titles_carried"] == len(world.items) and warm["titles_new"] == len(
        world.new_titles
    )
    assert warm["tensors_fresh"] == []
    v2 = reg.load("sasrec", r.version.version)
    assert v2.config.dim == 16 and v2.config.layers == 1  # v1's settings, its shapes
    # gated as usual: compared with v1 on the slice, promoted exactly when the gate says so
    assert r.gate.promoted_version == "v1" and r.gate.p_value is not None
    assert r.promoted == r.gate.promote == (r.gate.candidate >= r.gate.promoted)  # type: ignore[operator]
    assert (reg.promoted("sasrec").version == r.version.version) == r.promoted  # type: ignore[union-attr]


def test_warm_plan_says_when_and_why_not() -> None:
    from primetime.registry import ModelVersion
    from primetime.retrain import warm_plan

    def version(meta: dict) -> ModelVersion:
        return ModelVersion("sasrec", "v3", Path("x"), "", {}, True, meta)

    assert warm_plan("sasrec", version({}), 100, enabled=True, epochs=2) == {
        "from": "sasrec:v3",
        "epochs": 2,
    }
    assert (
        "switched off"
        in warm_plan("sasrec", version({}), 100, enabled=False, epochs=None)["reason"]
    )
    assert "no promoted" in warm_plan("sasrec", None, 100, enabled=True, epochs=None)["reason"]
    assert (
        "does not support"
        in warm_plan("itemknn", version({}), 100, enabled=True, epochs=None)["reason"]
    )
    seen = version({"retrain": {"fit_until": 150}})
    assert (
        "has seen the gate slice"
        in warm_plan("sasrec", seen, 100, enabled=True, epochs=None)["reason"]
    )
    assert warm_plan("sasrec", seen, 200, enabled=True, epochs=None)["from"] == "sasrec:v3"


def test_retrain_cli_documents_the_warm_start(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from primetime.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["retrain", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "--no-warm-start" in r.output and "--warm-epochs" in r.output
    r = runner.invoke(app, ["retrain", "--events", str(tmp_path), "--warm-epochs", "0"])
    assert r.exit_code == 2, r.output
