"""The shared training engine (primetime.training.loop) on a tiny linear model.

Every test uses a linear regression y = x . w + 0.5 + noise, where the right
answer is known, so "it learned" and "two runs agree" can be checked exactly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from primetime.training.loop import (
    TrainConfig,
    init_distributed,
    process_backend,
    shutdown_distributed,
    train,
)
from primetime.training.schedules import warmup_cosine

D = 4  # input features
NOISE = 0.1  # std of the label noise: the best possible valid MSE is NOISE**2


# ----------------------------------------------------------------- helpers
def regression(n: int = 64, *, seed: int = 0) -> TensorDataset:
    """n examples x (n, D), y (n, 1) of a fixed linear function plus noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g)  # (n, D)
    w = torch.arange(1, D + 1, dtype=torch.float32) / D  # (D,)
    y = x @ w + 0.5 + NOISE * torch.randn(n, generator=g)  # (n,)
    return TensorDataset(x, y[:, None])


def make_net(*, dropout: float = 0.0, seed: int = 0) -> nn.Module:
    """A linear model, initialised from ``seed`` (dropout only to exercise the RNG)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(D, 1))


def mse_loss(net: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch  # (B, D), (B, 1)
    return F.mse_loss(net(x), y)


def cfg(**overrides: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "epochs": 6,
        "batch_size": 8,
        "lr": 0.05,
        "patience": 0,
        "device": "cpu",
        "amp": False,
        "progress": False,
        "seed": 0,
    }
    return TrainConfig(**{**base, **overrides})


def state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], **tol: float):
    assert a.keys() == b.keys()
    for k in a:
        if tol:
            torch.testing.assert_close(a[k], b[k], **tol)  # type: ignore[arg-type]
        else:
            assert torch.equal(a[k], b[k]), f"{k}: {a[k]} != {b[k]}"


def scripted(values: list[float], snapshots: list[dict[str, torch.Tensor]] | None = None):
    """A ``validate`` that returns ``values`` in turn (and records the weights it saw)."""
    it = iter(values)

    def validate(net: nn.Module) -> float:
        if snapshots is not None:
            snapshots.append(state(net))
        return next(it)

    return validate


def valid_mse(valid: TensorDataset):
    x, y = valid.tensors

    def validate(net: nn.Module) -> float:
        return -float(F.mse_loss(net(x), y))  # higher is better

    return validate


# -------------------------------------------------------------- learning
def test_loss_decreases():
    res = train(make_net(), dataset=regression(), loss_fn=mse_loss, validate=None, config=cfg())
    losses = [h["train_loss"] for h in res.history]
    assert len(losses) == 6
    assert losses[-1] < 0.2 * losses[0]
    assert all(math.isfinite(v) for v in losses)


# -------------------------------------------------------------- schedule
def test_warmup_cosine_values_by_hand():
    """warmup 4, total 12, min_ratio 0.1, base lr 2.0 (factor(step) x 2.0):
    warm-up (step + 1) / 4; then 0.1 + 0.9 * 0.5 * (1 + cos(pi * (step - 4) / 8))."""
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2.0)
    sched = warmup_cosine(opt, warmup_steps=4, total_steps=12, min_ratio=0.1)
    seen = [opt.param_groups[0]["lr"]]
    for _ in range(14):
        opt.step()
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    expected = {
        0: 2.0 * 0.25,
        1: 2.0 * 0.5,
        2: 2.0 * 0.75,
        3: 2.0 * 1.0,
        4: 2.0 * 1.0,  # cosine starts at the peak
        6: 2.0 * (0.1 + 0.45 * (1 + math.sqrt(0.5))),  # progress 1/4: 1.73639610...
        8: 2.0 * 0.55,  # progress 1/2
        10: 2.0 * (0.1 + 0.45 * (1 - math.sqrt(0.5))),  # progress 3/4: 0.46360389...
        12: 2.0 * 0.1,  # the floor
        14: 2.0 * 0.1,  # stays at the floor past total_steps
    }
    for step, lr in expected.items():
        assert seen[step] == pytest.approx(lr, abs=1e-12), f"step {step}"
    assert seen[6] == pytest.approx(1.7363961030678928, abs=1e-12)


def test_warmup_cosine_without_warmup_and_bad_arguments():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, warmup_steps=0, total_steps=2)
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(opt, warmup_steps=-1, total_steps=10)
    with pytest.raises(ValueError, match="total_steps"):
        warmup_cosine(opt, warmup_steps=0, total_steps=0)


def test_loop_follows_the_schedule_per_optimizer_step():
    """64 examples / batch 8 = 8 steps per epoch; warm-up 1 epoch, 4 epochs in all:
    the lr logged after epoch e is lr * factor(8 e) of a (warm-up 8, total 32) schedule."""
    res = train(
        make_net(),
        dataset=regression(),
        loss_fn=mse_loss,
        validate=None,
        config=cfg(epochs=4, warmup_epochs=1.0, min_lr_ratio=0.0),
    )
    for h in res.history:
        progress = (8 * h["epoch"] - 8) / 24
        assert h["lr"] == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * progress)), abs=1e-12)


def test_max_steps_bounds_the_run_and_the_schedule():
    """64 examples / batch 8 = 8 steps per epoch; max_steps 12 ends epoch 2 after 4 steps,
    validates it as the last epoch, and the schedule spans 12 steps (lr 0 at the end)."""
    seen: list[dict[str, torch.Tensor]] = []
    res = train(
        make_net(),
        dataset=regression(),
        loss_fn=mse_loss,
        validate=scripted([1.0, 2.0], seen),
        config=cfg(epochs=10, max_steps=12, warmup_epochs=0.0),
    )
    assert res.epochs_run == 2
    assert [h["steps"] for h in res.history] == [8.0, 4.0]
    assert "truncated" not in res.history[0] and res.history[1]["truncated"] == 1.0
    assert len(seen) == 2  # the bounded epoch is validated
    assert res.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    # the same 12 steps as a plain 12-step schedule over two epochs of 6 steps each
    a, b = make_net(), make_net()
    train(a, dataset=regression(48), loss_fn=mse_loss, validate=None, config=cfg(epochs=2))
    train(
        b,
        dataset=regression(48),
        loss_fn=mse_loss,
        validate=None,
        config=cfg(epochs=5, max_steps=12),
    )
    assert_same_weights(state(a), state(b))
    with pytest.raises(ValueError, match="max_steps"):
        cfg(max_steps=-1)


# ------------------------------------------------- gradient accumulation
def test_grad_accumulation_equals_a_double_batch():
    """accum 2 x batch 8 == accum 1 x batch 16: same data order, same mean gradient,
    same number of optimiser steps (64 examples: no ragged tail)."""
    data = regression(64)
    a, b = make_net(), make_net()
    ra = train(a, dataset=data, loss_fn=mse_loss, validate=None, config=cfg(grad_accum=2))
    rb = train(b, dataset=data, loss_fn=mse_loss, validate=None, config=cfg(batch_size=16))
    assert_same_weights(state(a), state(b), rtol=1e-5, atol=1e-6)
    assert [h["lr"] for h in ra.history] == pytest.approx([h["lr"] for h in rb.history])
    assert [h["train_loss"] for h in ra.history] == pytest.approx(
        [h["train_loss"] for h in rb.history], rel=1e-5
    )


def test_grad_accumulation_with_a_ragged_tail():
    """40 examples: accum 2 x batch 8 -> micro-batches 8,8 | 8,8 | 8; batch 16 -> 16 | 16 | 8.
    The third step sees the same 8 examples both ways and should be the same update."""
    data = regression(40)
    a, b = make_net(), make_net()
    train(a, dataset=data, loss_fn=mse_loss, validate=None, config=cfg(grad_accum=2))
    train(b, dataset=data, loss_fn=mse_loss, validate=None, config=cfg(batch_size=16))
    assert_same_weights(state(a), state(b), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------- early stopping
def test_early_stopping_after_patience_restores_the_best_weights():
    snapshots: list[dict[str, torch.Tensor]] = []
    net = make_net()
    res = train(
        net,
        dataset=regression(),
        loss_fn=mse_loss,
        validate=scripted([0.1, 0.3, 0.2, 0.25, 0.1, 0.9, 0.9], snapshots),
        config=cfg(epochs=10, patience=3),
    )
    # best 0.3 at epoch 2, then 3 validations without improvement -> stop after epoch 5
    assert (res.best_epoch, res.best_metric, res.epochs_run) == (2, 0.3, 5)
    assert [h["valid"] for h in res.history] == [0.1, 0.3, 0.2, 0.25, 0.1]
    assert len(snapshots) == 5
    assert_same_weights(state(net), snapshots[1])
    assert_same_weights(res.best_state, snapshots[1])
    assert not torch.equal(state(net)["1.weight"], snapshots[-1]["1.weight"])


def test_min_epochs_is_respected():
    falling = [0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1, -0.2]
    data = regression()
    early = train(
        make_net(),
        dataset=data,
        loss_fn=mse_loss,
        validate=scripted(falling),
        config=cfg(epochs=8, patience=1),
    )
    assert early.epochs_run == 2
    late = train(
        make_net(),
        dataset=data,
        loss_fn=mse_loss,
        validate=scripted(falling),
        config=cfg(epochs=8, patience=1, min_epochs=4),
    )
    assert late.epochs_run == 4
    assert late.best_epoch == 1
    never = train(
        make_net(),
        dataset=data,
        loss_fn=mse_loss,
        validate=scripted(falling),
        config=cfg(epochs=8, patience=0),
    )
    assert never.epochs_run == 8


def test_eval_every_validates_on_schedule_and_at_the_end():
    res = train(
        make_net(),
        dataset=regression(),
        loss_fn=mse_loss,
        validate=scripted([0.1, 0.2, 0.3]),
        config=cfg(epochs=5, eval_every=2),
    )
    assert [h["epoch"] for h in res.history if "valid" in h] == [2.0, 4.0, 5.0]
    assert res.best_epoch == 5


# --------------------------------------------------------- determinism
def test_same_seed_same_weights_other_seed_other_weights():
    """Dropout is on, so the seeded global RNG matters as well as the data order."""
    data = regression()
    runs = []
    for seed in (0, 0, 1):
        net = make_net(dropout=0.2)
        res = train(net, dataset=data, loss_fn=mse_loss, validate=None, config=cfg(seed=seed))
        runs.append((state(net), [h["train_loss"] for h in res.history]))
    assert_same_weights(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert not torch.equal(runs[0][0]["1.weight"], runs[2][0]["1.weight"])


# --------------------------------------------------------------- resume
class _Interrupted(Exception):
    pass


def interrupt_after(steps: int):
    """A loss that raises on its ``steps + 1``-th call (a crash mid-run)."""
    calls = [0]

    def loss(net: nn.Module, batch: Any) -> torch.Tensor:
        calls[0] += 1
        if calls[0] > steps:
            raise _Interrupted
        return mse_loss(net, batch)

    return loss


def straight_and_resumed(tmp_path: Path, first: TrainConfig, second: TrainConfig, dropout: float):
    """Weights and loss curve of one run of ``second`` vs ``first`` (checkpointed) resumed
    as ``second``; ``first`` is cut by a crash when it has as many epochs as ``second``."""
    data = regression()
    straight = make_net(dropout=dropout)
    rs = train(straight, dataset=data, loss_fn=mse_loss, validate=None, config=second)
    net = make_net(dropout=dropout)
    run_dir = tmp_path / "run"
    if first.epochs == second.epochs:  # crash at the first step of epoch 4 (8 steps an epoch)
        with pytest.raises(_Interrupted):
            train(
                net,
                dataset=data,
                loss_fn=interrupt_after(3 * 8),
                validate=None,
                config=first,
                run_dir=run_dir,
            )
    else:
        train(net, dataset=data, loss_fn=mse_loss, validate=None, config=first, run_dir=run_dir)
    assert (run_dir / "checkpoint.pt").exists()
    resumed = make_net(dropout=dropout, seed=123)  # weights must come from the checkpoint
    rr = train(
        resumed,
        dataset=data,
        loss_fn=mse_loss,
        validate=None,
        config=second,
        run_dir=run_dir,
        resume=True,
    )
    assert [h["epoch"] for h in rr.history] == [float(e) for e in range(1, 7)]
    assert rr.epochs_run == 3
    return (state(straight), rs), (state(resumed), rr)


def test_resume_after_a_crash_equals_a_straight_run(tmp_path):
    """6 epochs planned, crash during epoch 4, resume: same weights as 6 straight epochs."""
    (ws, rs), (wr, rr) = straight_and_resumed(tmp_path, cfg(epochs=6), cfg(epochs=6), 0.0)
    assert_same_weights(ws, wr)
    assert [h["train_loss"] for h in rs.history] == [h["train_loss"] for h in rr.history]


def test_resume_to_more_epochs_equals_a_straight_run_at_constant_lr(tmp_path):
    """3 epochs, then resume to 6: equal to 6 straight when the lr does not depend on
    the planned length (no warm-up, no decay)."""
    flat = {"warmup_epochs": 0.0, "min_lr_ratio": 1.0}
    (ws, _), (wr, _) = straight_and_resumed(
        tmp_path, cfg(epochs=3, **flat), cfg(epochs=6, **flat), 0.0
    )
    assert_same_weights(ws, wr)


@pytest.mark.xfail(
    strict=True,
    reason="the cosine schedule's length comes from TrainConfig.epochs: a 3-epoch run decays "
    "to min_lr by epoch 3, a straight 6-epoch run is still near the peak there, so their first "
    "3 epochs differ; a resume continues on the 6-epoch curve from step 24 and warns (tested "
    "above), which cannot undo them",
)
def test_resume_to_more_epochs_equals_a_straight_run(tmp_path):
    """The brief's case: train 3 epochs with run_dir, resume to 6, compare with 6 straight."""
    (ws, _), (wr, _) = straight_and_resumed(tmp_path, cfg(epochs=3), cfg(epochs=6), 0.0)
    assert_same_weights(ws, wr, rtol=1e-4, atol=1e-5)


def test_resume_to_more_epochs_follows_the_new_schedule_from_its_first_step(tmp_path, caplog):
    """3 epochs, then resume to 6: every step after the resume uses the rate a straight
    6-epoch run uses at that step (not the 3-epoch run's last rate), and the log says the
    schedule changed."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    data = regression()
    lrs: list[float] = []
    handle = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"])
    )

    def fit(epochs: int, **kw: Any) -> None:
        train(
            make_net(),
            dataset=data,
            loss_fn=mse_loss,
            validate=None,
            config=cfg(epochs=epochs),
            **kw,
        )

    try:
        fit(6)
        straight, lrs[:] = list(lrs), []
        fit(3, run_dir=tmp_path / "run")
        lrs.clear()
        with caplog.at_level("WARNING", logger="primetime.training.loop"):
            fit(6, run_dir=tmp_path / "run", resume=True)
    finally:
        handle.remove()
    assert len(straight) == 6 * 8 and len(lrs) == 3 * 8
    assert lrs == pytest.approx(straight[3 * 8 :], rel=1e-12)
    assert "another schedule (epochs 3 -> 6)" in caplog.text


def test_resume_with_dropout_equals_a_straight_run(tmp_path):
    (ws, _), (wr, _) = straight_and_resumed(tmp_path, cfg(epochs=6), cfg(epochs=6), 0.2)
    assert_same_weights(ws, wr)


# ------------------------------------------------------------- run_dir
def test_run_dir_gets_log_curve_and_checkpoint(tmp_path):
    res = train(
        make_net(),
        dataset=regression(),
        loss_fn=mse_loss,
        validate=valid_mse(regression(32, seed=1)),
        config=cfg(epochs=3),
        run_dir=tmp_path,
        model_config={"kind": "linear", "dim": D},
        metric_name="valid -MSE",
    )
    doc = json.loads((tmp_path / "train_log.json").read_text(), parse_constant=_no_nan)
    assert doc["model_config"] == {"kind": "linear", "dim": D}
    assert doc["train_config"]["epochs"] == 3
    assert doc["metric"] == "valid -MSE"
    assert doc["best_epoch"] == res.best_epoch
    assert doc["history"] == res.history
    assert [set(h) for h in doc["history"]] == [
        {"epoch", "train_loss", "lr", "seconds", "valid -MSE", "valid_seconds"}
    ] * 3
    # each validation's own time, apart from the epoch's training seconds
    assert all(h["valid_seconds"] > 0 for h in doc["history"])
    assert (tmp_path / "train_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "checkpoint.pt").exists()


def _no_nan(token: str) -> float:
    raise ValueError(f"train_log.json is not strict JSON: holds {token}")


def test_train_log_is_strict_json_without_validation(tmp_path):
    train(
        make_net(),
        dataset=regression(),
        loss_fn=mse_loss,
        validate=None,
        config=cfg(epochs=1),
        run_dir=tmp_path,
    )
    json.loads((tmp_path / "train_log.json").read_text(), parse_constant=_no_nan)


# -------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("grad_accum", 0),
        ("eval_every", 0),
        ("lr", 0.0),
        ("lr", -1e-3),
        *[
            (f, v)
            for f, v in [
                ("warmup_epochs", -1.0),
                ("min_lr_ratio", 1.5),
                ("min_lr_ratio", -0.1),
                ("patience", -1),
                ("grad_clip", -1.0),
                ("weight_decay", -0.1),
                ("min_epochs", -1),
                ("num_workers", -1),
            ]
        ],
    ],
)
def test_train_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field}\b"):
        TrainConfig(**{field: value})


# ----------------------------------------------------------------- DDP
DDP_DATA, DDP_VALID = 256, 128


def ddp_task() -> tuple[TensorDataset, Any, TrainConfig]:
    """Per-process batch 8; the single-process reference uses 16 (same global batch)."""
    config = cfg(epochs=12, lr=0.05, batch_size=8, warmup_epochs=0.5)
    return regression(DDP_DATA), valid_mse(regression(DDP_VALID, seed=1)), config


def parts_loss(net: nn.Module, batch: Any) -> torch.Tensor:
    """The MSE through the network's parts, never its ``forward`` (as the graph and
    meta-learning models' losses are): DDP must still average the gradients."""
    x, y = batch  # (B, D), (B, 1)
    inner: Any = getattr(net, "module", net)
    return F.mse_loss(inner[1](inner[0](x)), y)


LOSSES = {"forward": mse_loss, "parts": parts_loss}


def _ddp_worker(rank: int, world: int, port: int, out: str, loss: str = "forward") -> None:
    """One process of the 2-process gloo run (started by torch.multiprocessing.spawn)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    assert init_distributed()
    try:
        data, validate, config = ddp_task()
        net = make_net()
        res = train(net, dataset=data, loss_fn=LOSSES[loss], validate=validate, config=config)
        torch.save(
            {"state": state(net), "metric": res.best_metric, "history": res.history},
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        shutdown_distributed()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["forward", "parts"])
def test_ddp_two_cpu_processes_agree_and_match_single_process(tmp_path, loss):
    """Two gloo processes on the same task: identical weights on both ranks, and a valid
    MSE within noise of one process with the same global batch (2 x 8 = 16).

    Tolerance: the runs see the same examples in a different order, so their weights
    differ by optimisation noise. Both should reach the noise floor NOISE**2 = 0.01
    plus an excess of about D * NOISE**2 / n = 1.6e-4 for least squares; a gap of
    0.1 * NOISE**2 = 1e-3 (6x the excess) is noise, more is a bug (a rank training on
    half the data, gradients summed instead of averaged, ranks drifting apart). With
    ``parts`` the loss never calls the network's ``forward``: the ranks still agree.
    """
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path), loss), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert_same_weights(r0["state"], r1["state"])
    assert r0["metric"] == r1["metric"]  # broadcast from rank 0
    assert [h["train_loss"] for h in r0["history"]] == [h["train_loss"] for h in r1["history"]]

    data, validate, config = ddp_task()
    single = train(
        make_net(),
        dataset=data,
        loss_fn=mse_loss,
        validate=validate,
        config=dataclasses.replace(config, batch_size=16),
    )
    assert single.best_metric > -1.5 * NOISE**2, "single-process run did not converge"
    assert abs(r0["metric"] - single.best_metric) < 0.1 * NOISE**2


def test_weight_decay_follows_declarations_not_names() -> None:
    """Matrices decay; 1-d parameters, those a module lists in ``no_decay`` and (unless
    asked) nn.Embedding weights do not, whatever the parameters are called."""
    from torch import nn

    from primetime.training.loop import _param_groups

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item_emb = nn.Linear(4, 4)  # named "emb", but a matrix: decays
            self.table = nn.Embedding(10, 4)  # an embedding by type
            self.bias_table = nn.Embedding(10, 1)  # an embedding too (a bias per item)
            self.norm_scale = nn.Parameter(torch.ones(4, 4))  # "norm" in the name: decays
            self.skip_me = nn.Linear(4, 4, bias=False)
            self.no_decay = ("skip_me.weight",)

    def names(groups: list[dict], decayed: bool, net: nn.Module) -> set[str]:
        ids = {id(p) for g in groups if (g["weight_decay"] > 0) == decayed for p in g["params"]}
        return {n for n, p in net.named_parameters() if id(p) in ids}

    net = Net()
    groups = _param_groups(net, 0.1)
    assert names(groups, True, net) == {"item_emb.weight", "norm_scale"}
    assert names(groups, False, net) == {
        "item_emb.bias",
        "table.weight",
        "bias_table.weight",
        "skip_me.weight",
    }
    groups = _param_groups(net, 0.1, decay_embeddings=True)
    assert {"table.weight", "bias_table.weight"} <= names(groups, True, net)
    net.no_decay = ("nope.weight",)
    with pytest.raises(ValueError, match="no_decay names no parameter"):
        _param_groups(net, 0.1)


@pytest.mark.parametrize(
    ("gpus", "local_rank", "local_world", "expected"),
    [
        (0, 1, 2, ("gloo", None)),  # no GPU: gloo on the CPU
        (2, 1, 2, ("nccl", 1)),  # a GPU a process: NCCL, each on its own
        (4, 3, 4, ("nccl", 3)),
        (1, 0, 1, ("nccl", 0)),
        (1, 1, 2, ("gloo", 0)),  # two processes, one GPU: NCCL would refuse; they share it
        (2, 2, 3, ("gloo", 0)),
    ],
)
def test_process_backend_by_gpus_and_processes(gpus, local_rank, local_world, expected):
    assert process_backend(gpus, local_rank, local_world) == expected
