"""The training loop every neural model uses.

AdamW, linear warm-up + cosine decay, gradient clipping and accumulation,
early stopping on a validation metric (selection on valid only), the best
weights kept, resumable checkpoints that carry their config, a JSON log and
a training-curve PNG per run, seeded determinism, mixed precision and
``torch.compile`` on CUDA, and DistributedDataParallel when started by
``torchrun`` (gloo on CPU, NCCL on GPU).

A model hands the loop a pure ``nn.Module``, a ``Dataset`` of training
examples, a ``loss_fn(net, batch) -> scalar`` and a ``validate(net) -> float``
(higher is better); the loop owns devices, optimisation and bookkeeping.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from primetime.training.schedules import warmup_cosine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """How to train (not what): shared by every neural model.

    Attributes:
        epochs: Most epochs.
        max_steps: Most optimiser steps in all (0: no limit): a bounded run, e.g. to time
            a few hundred steps of an epoch too long to run whole. The learning-rate
            schedule then spans ``min(epochs x steps per epoch, max_steps)`` steps; the
            epoch that reaches the bound ends there (validated as a last epoch). With a
            bound, history rows record ``steps`` (optimiser steps in the epoch), and
            ``truncated`` = 1 on an epoch the bound cut short.
        batch_size: Examples per optimiser step and process (before accumulation).
        lr: Peak learning rate.
        weight_decay: AdamW decoupled weight decay (not applied to parameters of
            fewer than two dimensions, parameters the module lists in ``no_decay``,
            or ``nn.Embedding`` weights unless ``decay_embeddings``).
        decay_embeddings: Also decay the weights of ``nn.Embedding`` modules.
        warmup_epochs: Linear warm-up length, in epochs (fractions allowed).
        min_lr_ratio: Final learning rate as a share of ``lr``.
        grad_clip: Max global gradient norm (0 = off).
        grad_accum: Micro-batches per optimiser step.
        patience: Validations without improvement before stopping (0 = never stop).
        eval_every: Validate every this many epochs.
        min_epochs: Never stop before this many epochs.
        seed: Seeds torch, numpy and the data order.
        device: "auto" (CUDA if available), "cpu" or "cuda[:N]".
        amp: bfloat16/float16 autocast on CUDA (ignored on CPU).
        compile: ``torch.compile`` the module on CUDA (ignored on CPU).
        num_workers: DataLoader worker processes.
        progress: Show a progress bar on stderr.
    """

    epochs: int = 200
    max_steps: int = 0
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    decay_embeddings: bool = False
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    grad_accum: int = 1
    patience: int = 10
    eval_every: int = 1
    min_epochs: int = 0
    seed: int = 42
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    num_workers: int = 0
    progress: bool = True

    @classmethod
    def of(cls, model_config: Any) -> TrainConfig:
        """The training settings inside a model's config: its fields named like ours."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in model_config.__dict__.items() if k in names})

    def on(self, device: str | None) -> TrainConfig:
        """This config on ``device`` ("cpu", "cuda[:N]"); None keeps the config's own."""
        return self if device is None else dataclasses.replace(self, device=device)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "warmup_epochs",
            "grad_clip",
            "weight_decay",
            "patience",
            "min_epochs",
            "num_workers",
            "max_steps",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class TrainResult:
    """What a run produced: the best weights and how it got there."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_metric: float
    epochs_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    examples_per_second: float = 0.0
    data_wait_share: float = 0.0  # share of train time spent waiting for batches


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def distributed() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not under torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def process_backend(gpus: int, local_rank: int, local_world: int) -> tuple[str, int | None]:
    """(backend, GPU index) of one ``torchrun`` process on a machine with ``gpus`` GPUs.

    NCCL when every process on the machine has a GPU of its own (NCCL refuses two
    ranks on one device); with fewer GPUs than processes, gloo, the processes
    sharing the GPUs in turn (gloo reduces CUDA tensors too, more slowly); with no
    GPU, gloo on the CPU (index None)."""
    if gpus <= 0:
        return "gloo", None
    if local_world <= gpus:
        return "nccl", local_rank
    return "gloo", local_rank % gpus


def init_distributed() -> bool:
    """Join the process group when started by ``torchrun`` (RANK/WORLD_SIZE set)."""
    if "RANK" not in os.environ or (dist.is_available() and dist.is_initialized()):
        return dist.is_available() and dist.is_initialized()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", 1)))
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    backend, gpu = process_backend(gpus, local_rank, local_world)
    if gpu is not None:
        torch.cuda.set_device(gpu)
        if backend == "gloo" and local_rank == 0:
            log.warning(
                "%d processes share %d GPU(s): gloo instead of NCCL (one GPU a process "
                "for NCCL: --nproc-per-node %d)",
                local_world,
                gpus,
                gpus,
            )
    dist.init_process_group(backend=backend)
    return True


def shutdown_distributed() -> None:
    """Leave the process group together: a barrier first, so no rank tears down its
    connections (rank 0 also hosts the rendezvous store) while another still uses them,
    then ``destroy_process_group``. A no-op outside a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if dist.get_world_size() > 1:
        dist.barrier()
    dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Seed torch (numpy randomness is passed in as Generators, never global)."""
    torch.manual_seed(seed)


def _param_groups(
    net: nn.Module, weight_decay: float, *, decay_embeddings: bool = False
) -> list[dict[str, Any]]:
    """Decay matrices only. Left alone: every parameter of fewer than two dimensions
    (biases, norm scales), the parameters a module names in its ``no_decay``
    attribute (full names, as ``named_parameters`` gives them), and, unless
    ``decay_embeddings``, the weights of ``nn.Embedding`` modules. The rule is the
    declaration and the module type, never a substring of a parameter's name."""
    skip = set(getattr(net, "no_decay", ()))
    unknown = skip - {name for name, _ in net.named_parameters()}
    if unknown:
        raise ValueError(f"{type(net).__name__}.no_decay names no parameter: {sorted(unknown)}")
    embeddings = {
        id(p) for m in net.modules() if isinstance(m, nn.Embedding) for p in m.parameters()
    }
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        is_emb = id(p) in embeddings and not decay_embeddings
        if p.ndim < 2 or name in skip or is_emb:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def train(
    net: nn.Module,
    *,
    dataset: Dataset[Any],
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    validate: Callable[[nn.Module], float] | None,
    config: TrainConfig,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    model_config: dict[str, Any] | None = None,
    metric_name: str = "valid",
) -> TrainResult:
    """Train ``net`` in place and return the best weights (by ``validate``).

    Args:
        net: The module; moved to the device.
        dataset: Training examples; batches come from a DataLoader over it.
        loss_fn: ``loss_fn(net, batch)`` -> scalar loss (batch already on the device).
        validate: ``validate(net)`` -> metric, higher is better (run on rank 0, in
            eval mode, without gradients); None: keep the last epoch.
        config: Optimisation settings.
        collate_fn: Builds a batch from examples.
        run_dir: Where ``checkpoint.pt``, ``train_log.json`` and ``train_curve.png``
            go; None keeps everything in memory.
        resume: Continue from ``run_dir/checkpoint.pt`` when it exists.
        model_config: The model's own config, stored in checkpoints and the log.
        metric_name: Label of the validation metric in logs and plots.

    Returns:
        A :class:`TrainResult`; ``net`` holds the best weights on return.
    """
    cfg = config
    seed_everything(cfg.seed)
    rank, world = distributed()
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", torch.cuda.current_device())
    net.to(device)
    fwd: nn.Module = net
    if cfg.compile and device.type == "cuda":
        fwd = torch.compile(net)  # type: ignore[assignment]
    step: Callable[[Any], torch.Tensor]
    if world > 1:
        # DDP wraps the whole step, so gradients are averaged even where ``loss_fn``
        # calls parts of the network rather than its ``forward``; unused parameters
        # (a branch a batch does not take) are allowed
        step = nn.parallel.DistributedDataParallel(
            _Step(fwd, loss_fn),
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,
        )
    else:

        def step(batch: Any) -> torch.Tensor:
            return loss_fn(fwd, batch)

    gen = torch.Generator().manual_seed(cfg.seed)
    sampler: DistributedSampler[Any] | None = (
        DistributedSampler(dataset, seed=cfg.seed, drop_last=False) if world > 1 else None
    )
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        generator=gen if sampler is None else None,
        collate_fn=collate_fn,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        drop_last=False,
    )
    steps_per_epoch = max(1, math.ceil(len(loader) / cfg.grad_accum))
    optimizer = torch.optim.AdamW(
        _param_groups(net, cfg.weight_decay, decay_embeddings=cfg.decay_embeddings), lr=cfg.lr
    )
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    scheduler = warmup_cosine(
        optimizer,
        warmup_steps=min(int(cfg.warmup_epochs * steps_per_epoch), total_steps),
        total_steps=total_steps,
        min_ratio=cfg.min_lr_ratio,
    )
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    run = Path(run_dir) if run_dir is not None else None
    history: list[dict[str, float]] = []
    best_metric, best_epoch, start_epoch, bad = -math.inf, 0, 1, 0
    best_state = copy.deepcopy(net.state_dict())
    if resume and run is not None and (run / "checkpoint.pt").exists():
        ckpt = torch.load(run / "checkpoint.pt", map_location=device, weights_only=True)
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        _continue_schedule(optimizer, scheduler, json.loads(ckpt["train_config"]), cfg)
        best_state = ckpt["best_model"]
        history = [dict(h) for h in json.loads(ckpt["history"])]
        best_metric, best_epoch = float(ckpt["best_metric"]), int(ckpt["best_epoch"])
        start_epoch, bad = int(ckpt["epoch"]) + 1, int(ckpt["bad"])
        # RNG states are CPU byte tensors whatever ``map_location`` did to them
        gen.set_state(ckpt["generator"].cpu())
        torch.set_rng_state(ckpt["torch_rng"].cpu())  # dropout continues, not restarts
        if device.type == "cuda" and "cuda_rng" in ckpt:
            torch.cuda.set_rng_state(ckpt["cuda_rng"].cpu(), device)  # dropout on the GPU
        log.info("resumed from %s at epoch %d", run / "checkpoint.pt", start_epoch)

    bar = _Progress(cfg.progress and rank == 0, cfg.epochs, start_epoch - 1)
    t_start = time.perf_counter()
    examples, data_wait, train_time = 0, 0.0, 0.0
    epoch = start_epoch - 1
    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            if sampler is not None:
                sampler.set_epoch(epoch)
            net.train()
            t_epoch = time.perf_counter()
            total, count, epoch_steps, truncated = 0.0, 0, 0, False
            optimizer.zero_grad(set_to_none=True)
            t_wait = time.perf_counter()
            n_batches = len(loader)
            for i, batch in enumerate(loader):
                data_wait += time.perf_counter() - t_wait
                batch = _to_device(batch, device)
                # the last group of an epoch may hold fewer micro-batches than grad_accum
                group_start = i - i % cfg.grad_accum
                group = min(cfg.grad_accum, n_batches - group_start)
                ctx = torch.autocast("cuda", dtype=amp_dtype) if use_amp else nullcontext()
                with ctx:
                    loss = step(batch) / group
                scaler.scale(loss).backward()
                if (i + 1) % cfg.grad_accum == 0 or i + 1 == n_batches:
                    if cfg.grad_clip > 0:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    scheduler.step()
                    epoch_steps += 1
                n = _batch_size(batch)
                total += float(loss.detach()) * group * n
                count += n
                t_wait = time.perf_counter()
                if cfg.max_steps and scheduler.last_epoch >= cfg.max_steps:
                    truncated = i + 1 < n_batches
                    break
            examples += count
            train_time += time.perf_counter() - t_epoch
            row = {
                "epoch": float(epoch),
                "train_loss": _all_mean(total, count, device),
                "lr": float(scheduler.get_last_lr()[0]),
                "seconds": time.perf_counter() - t_epoch,
            }
            if cfg.max_steps:
                row["steps"] = float(epoch_steps)
                if truncated:
                    row["truncated"] = 1.0
            bounded = bool(cfg.max_steps) and scheduler.last_epoch >= cfg.max_steps
            last = epoch == cfg.epochs or bounded
            stop = False
            if validate is not None and (epoch % cfg.eval_every == 0 or last):
                t_valid = time.perf_counter()
                metric = _validate_rank0(net, validate, device)
                row[metric_name] = metric
                row["valid_seconds"] = time.perf_counter() - t_valid
                if metric > best_metric:
                    best_metric, best_epoch, bad = metric, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    bad += 1
                stop = cfg.patience > 0 and bad >= cfg.patience and epoch >= cfg.min_epochs
            history.append(row)
            log.debug("epoch %d %s", epoch, row)
            bar.update(epoch, row, metric_name, best_metric)
            if run is not None and rank == 0:
                _save_checkpoint(
                    run,
                    net,
                    optimizer,
                    scheduler,
                    best_state,
                    history,
                    best_metric,
                    best_epoch,
                    epoch,
                    bad,
                    gen,
                    cfg,
                    model_config,
                )
            if bounded:
                log.info("max_steps %d reached in epoch %d", cfg.max_steps, epoch)
                break
            if stop:
                log.info(
                    "early stop at epoch %d: best %s %.4f at epoch %d",
                    epoch,
                    metric_name,
                    best_metric,
                    best_epoch,
                )
                break
    finally:
        bar.close()
    if validate is None:
        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        best_epoch = epoch
    net.load_state_dict(best_state)
    result = TrainResult(
        best_state=best_state,
        best_epoch=best_epoch,
        best_metric=best_metric,
        epochs_run=epoch - start_epoch + 1,
        seconds=time.perf_counter() - t_start,
        history=history,
        examples_per_second=examples * world / max(train_time, 1e-9),
        data_wait_share=data_wait / max(train_time, 1e-9),
    )
    if run is not None and rank == 0:
        write_log(run, result, cfg, model_config, metric_name)
    return result


# ----------------------------------------------------------------- helpers
class _Step(nn.Module):
    """One training step's loss as a module, the thing DistributedDataParallel wraps:
    its forward is ``loss_fn(net, batch)``, so DDP's gradient hooks are armed for
    every model (some losses reach into the network's parts, never its forward)."""

    def __init__(self, net: nn.Module, loss_fn: Callable[[nn.Module, Any], torch.Tensor]):
        super().__init__()
        self.net = net
        self.loss_fn = loss_fn

    def forward(self, batch: Any) -> torch.Tensor:
        return self.loss_fn(self.net, batch)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, (tuple, list)):
        return _batch_size(batch[0])
    if isinstance(batch, dict):
        return _batch_size(next(iter(batch.values())))
    return 1


def _all_mean(total: float, count: int, device: torch.device) -> float:
    """Mean over all processes (a plain mean without DDP)."""
    rank, world = distributed()
    if world == 1:
        return total / max(count, 1)
    t = torch.tensor([total, float(count)], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return float(t[0] / max(float(t[1]), 1.0))


def _validate_rank0(
    net: nn.Module, validate: Callable[[nn.Module], float], device: torch.device
) -> float:
    """Validate on rank 0 and share the number, so every rank stops together."""
    rank, world = distributed()
    net.eval()
    with torch.no_grad():
        value = validate(net) if rank == 0 else 0.0
    if world > 1:
        t = torch.tensor([value], device=device, dtype=torch.float64)
        dist.broadcast(t, src=0)
        value = float(t[0])
    return float(value)


#: TrainConfig fields that shape the learning-rate curve.
_SCHEDULE_FIELDS = ("epochs", "lr", "warmup_epochs", "min_lr_ratio", "batch_size", "grad_accum")


def _continue_schedule(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    saved: dict[str, Any],
    cfg: TrainConfig,
) -> None:
    """After loading a checkpoint: put the optimizer on *this* run's curve at the saved step.

    The optimizer state holds the rate of the run that saved it; when the schedule changed
    (more epochs, another lr) that rate would be used for one step before the scheduler moves
    onto the new curve. Say so when it changed: such a run cannot equal a straight run with
    the new settings, whose first epochs followed another curve.
    """
    changed = {
        k: (saved[k], getattr(cfg, k))
        for k in _SCHEDULE_FIELDS
        if k in saved and saved[k] != getattr(cfg, k)
    }
    if changed:
        log.warning(
            "resuming with another schedule (%s): the learning rate continues on the new "
            "curve from step %d",
            ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()),
            scheduler.last_epoch,
        )
    for group, base, factor in zip(
        optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True
    ):
        group["lr"] = base * factor(scheduler.last_epoch)
    scheduler._last_lr = [float(g["lr"]) for g in optimizer.param_groups]


def _save_checkpoint(
    run: Path,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    best_state: dict[str, torch.Tensor],
    history: list[dict[str, float]],
    best_metric: float,
    best_epoch: int,
    epoch: int,
    bad: int,
    gen: torch.Generator,
    cfg: TrainConfig,
    model_config: dict[str, Any] | None,
) -> None:
    run.mkdir(parents=True, exist_ok=True)
    dev = next(net.parameters(), torch.empty(0)).device
    ckpt = {
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "best_model": best_state,
        "history": json.dumps(history),
        "best_metric": best_metric,
        "best_epoch": best_epoch,
        "epoch": epoch,
        "bad": bad,
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        **({"cuda_rng": torch.cuda.get_rng_state(dev)} if dev.type == "cuda" else {}),
        "train_config": json.dumps(dataclasses.asdict(cfg)),
        "model_config": json.dumps(model_config or {}, default=str),
    }
    tmp = run / "checkpoint.pt.tmp"
    torch.save(ckpt, tmp)
    tmp.replace(run / "checkpoint.pt")  # atomic: a crash never leaves half a checkpoint


def write_log(
    run: Path,
    result: TrainResult,
    cfg: TrainConfig,
    model_config: dict[str, Any] | None,
    metric_name: str,
) -> None:
    """``train_log.json`` (config, history, summary) and ``train_curve.png``."""
    run.mkdir(parents=True, exist_ok=True)
    doc = {
        "train_config": dataclasses.asdict(cfg),
        "model_config": model_config or {},
        "best_epoch": result.best_epoch,
        "best_metric": result.best_metric if math.isfinite(result.best_metric) else None,
        "metric": metric_name,
        "epochs_run": result.epochs_run,
        "seconds": result.seconds,
        "examples_per_second": result.examples_per_second,
        "data_wait_share": result.data_wait_share,
        "history": result.history,
    }
    (run / "train_log.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    ep = [h["epoch"] for h in result.history]
    ax.plot(ep, [h["train_loss"] for h in result.history], color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    vals = [(h["epoch"], h[metric_name]) for h in result.history if metric_name in h]
    if vals:
        ax2 = ax.twinx()
        ax2.plot([v[0] for v in vals], [v[1] for v in vals], color="tab:red", label=metric_name)
        ax2.axvline(result.best_epoch, color="grey", linestyle=":", linewidth=1)
        ax2.set_ylabel(metric_name, color="tab:red")
    ax.set_title(
        f"training curve (best {metric_name} {result.best_metric:.4f} at epoch {result.best_epoch})"
    )
    fig.tight_layout()
    fig.savefig(run / "train_curve.png", dpi=110)


class _Progress:
    """A Rich progress bar over epochs with loss, metric and throughput."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(
            TextColumn("epoch"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=Console(stderr=True),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task("train", total=total, completed=done, info="")

    def update(self, epoch: int, row: dict[str, float], metric: str, best: float) -> None:
        if self.bar is None:
            return
        info = f"loss {row['train_loss']:.4f}"
        if metric in row:
            info += f" · {metric} {row[metric]:.4f} (best {best:.4f})"
        info += f" · {row['seconds']:.1f}s/epoch"
        self.bar.update(self.task, completed=epoch, info=info)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
