"""The ``temporal`` model: its time features by hand, causality with timestamps, and the
planted truth: on a world with December holiday peaks it ranks the holiday titles
better in December than the time-blind transformer does."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
import pytest
import torch

from primetime.data import synthetic
from primetime.data.open import Loaded
from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.lifecycle import build_model
from primetime.models.base import FitOptions
from primetime.models.temporal import (
    TemporalConfig,
    TemporalNet,
    calendar,
    interval_bucket,
    right_pad_times,
    year_fraction,
)
from primetime.trends.season import run_season_study
from primetime.types import UserContext


def _ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def test_interval_buckets_by_hand():
    gaps = torch.tensor([0, 59, 60, 3 * 60, 3600, 86_400, 30 * 86_400, -5, 10**10])
    # floor(log2(1 + minutes)): 0, 0, 1, 2, 5 (61 min), 10 (1441), 15 (43201), clamp, cap
    assert interval_bucket(gaps, 24).tolist() == [0, 0, 1, 2, 5, 10, 15, 0, 23]


def test_calendar_by_hand():
    ts = torch.tensor([_ts(2023, 12, 25, 20, 30), _ts(2024, 1, 2, 0, 0), _ts(2023, 7, 1, 9)])
    hour, weekday, week = calendar(ts)
    assert hour.tolist() == [20, 0, 9]
    assert weekday.tolist() == [0, 1, 5]  # Christmas 2023 was a Monday
    # days 357, 1 and 181 of their years: weeks 51, 0 and 25 (the mean year drifts < 1 day)
    assert week.tolist() == [51, 0, 25]
    frac = year_fraction(torch.tensor([_ts(2024, 1, 1, 12), _ts(2023, 7, 2, 12)]))
    assert abs(frac[0].item() - 0.5 / 366) < 1 / 365 and abs(frac[1].item() - 0.5) < 1 / 365


def test_right_pad_times_fallbacks():
    a = UserContext(user_idx=1, history=np.array([3, 4]), timestamps=np.array([10, 20]), now=99)
    b = UserContext(user_idx=None, history=np.array([5]))  # no times at all
    ts, now = right_pad_times([a, b], 4, fallback=7)
    assert now.tolist() == [99, 7]
    assert ts.tolist() == [[10, 20, 0, 0], [7, 0, 0, 0]]


def test_future_events_never_change_earlier_outputs():
    torch.manual_seed(0)
    cfg = TemporalConfig(dim=16, heads=2, layers=1, ffn=32, dropout=0.0)
    net = TemporalNet(20, cfg, None, span=(0, 10**6)).eval()
    with torch.no_grad():
        net.interval_bias.weight.normal_()  # non-zero biases, so times matter
    seq = torch.tensor([[3, 4, 5, 6]])
    ts = torch.tensor([[100, 5_000, 90_000, 10**6]])
    seq2, ts2 = seq.clone(), ts.clone()
    seq2[0, 3], ts2[0, 3] = 9, 2 * 10**6  # a different last event
    with torch.no_grad():
        h1, h2 = net(seq, ts), net(seq2, ts2)
    assert torch.allclose(h1[:, :3], h2[:, :3], atol=1e-6)
    assert not torch.allclose(h1[:, 3], h2[:, 3])


def _biased_net() -> TemporalNet:
    torch.manual_seed(0)
    cfg = TemporalConfig(dim=16, heads=2, layers=2, ffn=32, dropout=0.0)
    net = TemporalNet(30, cfg, None, span=(0, 10**6)).eval()
    with torch.no_grad():
        net.interval_bias.weight.normal_()  # non-zero biases, so the per-head mask matters
    return net


def test_plain_encoder_equals_the_encoder_with_the_fast_path_off():
    """The per-head path gives what PyTorch's encoder gives with its fast path switched
    off process-wide (how it was computed before): the same hidden states, bit for bit,
    in eval mode and in training (where the encoder takes its plain path anyway)."""
    net = _biased_net()
    seq = torch.tensor([[3, 4, 5, 6, 0], [7, 8, 0, 0, 0]])
    ts = torch.tensor([[100, 5_000, 90_000, 10**6, 0], [10, 20, 0, 0, 0]])

    def inputs() -> tuple[torch.Tensor, torch.Tensor]:
        causal = torch.nn.Transformer.generate_square_subsequent_mask(5)  # (T, T)
        gap = interval_bucket(ts[:, :, None] - ts[:, None, :], 24)  # (B, T, T)
        bias = net.interval_bias(gap).permute(0, 3, 1, 2).reshape(4, 5, 5)  # (B*H, T, T)
        return net.embed(seq, net.event_time(ts)), bias + causal

    with torch.no_grad():
        now = net(seq, ts)
        x, mask = inputs()
        fast = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            before = net.encode(x, mask, is_causal=False)
        finally:
            torch.backends.mha.set_fastpath_enabled(fast)
    assert torch.isfinite(now).all()
    assert torch.equal(now, before)
    net.train()
    x, mask = inputs()
    assert torch.equal(net.encode_plain(x, mask), net.encode(x, mask, is_causal=False))
    assert torch.equal(net(seq, ts), net.encode_plain(x, mask))


def test_scoring_never_touches_the_process_wide_fast_path_switch(monkeypatch):
    def refuse(enabled: bool) -> None:
        raise AssertionError("torch.backends.mha.set_fastpath_enabled called")

    net = _biased_net()
    monkeypatch.setattr(torch.backends.mha, "set_fastpath_enabled", refuse)
    with torch.no_grad():
        h = net(torch.tensor([[3, 4, 5]]), torch.tensor([[100, 5_000, 90_000]]))
    assert torch.isfinite(h).all()


def test_threads_scoring_at_once_get_the_single_thread_scores(make_planted):
    ds = make_planted(n_users=80, n_items=40, seed=5)
    split = leave_one_out(ds.interactions)
    small = {"epochs": 1, "dim": 16, "heads": 2, "layers": 1, "ffn": 32}
    model = build_model("temporal", small)
    model.fit(split.train, side=SideData.of(ds), options=FitOptions(threads=1))
    ctxs = [[c] for c in split.train.contexts()[:16]]
    alone = [model.score(c) for c in ctxs]
    assert all(np.isfinite(s[:, 1:]).all() for s in alone)
    fast = torch.backends.mha.get_fastpath_enabled()

    def work(i: int) -> list[np.ndarray]:
        return [model.score(ctxs[(i + j) % len(ctxs)]) for j in range(3 * len(ctxs))]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    for i, got in enumerate(results):
        for j, s in enumerate(got):
            np.testing.assert_array_equal(s, alone[(i + j) % len(ctxs)])
    assert torch.backends.mha.get_fastpath_enabled() == fast  # left as it was


def test_config_refuses_sampled_losses():
    with pytest.raises(ValueError, match="loss='ce' only"):
        TemporalConfig(loss="bce")
    with pytest.raises(ValueError, match="trend_knots"):
        TemporalConfig(trend_knots=1)


@pytest.fixture(scope="module")
def holiday_study():
    """A tiny world with a fifth of the movies holiday titles, the December season
    split, temporal and sasrec with the same small settings."""
    cfg = dataclasses.replace(synthetic.PRESETS["tiny"], n_users=400, holiday_share=0.2)
    world = synthetic.generate(cfg)
    small = {"epochs": 16, "dim": 32, "heads": 2, "layers": 1, "ffn": 64, "eval_every": 4}
    return run_season_study(
        "tiny-holidays",
        ["temporal", "sasrec"],
        overrides={"temporal": small, "sasrec": small},
        loaded=Loaded(world.dataset, world),
    ), world


def test_temporal_ranks_holiday_titles_better_in_december(holiday_study):
    study, _ = holiday_study
    row = {r["group"]: r for r in study.rows}["in-season title (holiday)"]
    assert row["n"] >= 20, f"too few December holiday targets to judge: {row['n']}"
    # planted: holiday titles are 4x as wanted in December; a time-blind model can only
    # guess the season from the history, the temporal model reads it from `now`
    assert row["temporal"] >= row["sasrec"] + 0.05, row
    assert row["p"] < 0.05, row


def test_the_request_time_moves_holiday_titles(holiday_study):
    study, world = holiday_study
    split = study.split
    holiday = np.flatnonzero(world.latents.holiday)
    ctxs = split.train.contexts()[:100]

    def mean_rank(model, month: int) -> float:
        at = [dataclasses.replace(c, now=_ts(2022, month, 15, 20)) for c in ctxs]
        s = model.score(at)[:, 1:]
        ranks = (-s).argsort(1).argsort(1)  # 0 = best
        return float(ranks[:, holiday - 1].mean())

    temporal, sasrec = study.fitted["temporal"], study.fitted["sasrec"]
    assert mean_rank(temporal, 12) < mean_rank(temporal, 7) - 10  # higher in December
    assert mean_rank(sasrec, 12) == mean_rank(sasrec, 7)  # sasrec ignores the time


def test_inference_scores_equal_the_training_formula_and_follow_weight_changes(make_planted):
    """At inference ``time_logits`` is one product over a cached joint table: it equals
    ``logits + basis @ curves.T`` (the training path), and a changed weight (a curve
    coefficient, an item vector) is seen by the next call."""
    ds = make_planted(n_users=60, n_items=30, seed=2)
    model = build_model("temporal", {"epochs": 1, "dim": 16, "heads": 2, "layers": 1, "ffn": 32})
    model.fit(ds.interactions, side=SideData.of(ds), options=FitOptions(threads=1))
    net = model.net
    net.eval()
    q = torch.randn(4, 16)
    now = torch.tensor([_ts(2024, 12, 20), _ts(2024, 7, 1), _ts(1998, 3, 3), _ts(2030, 1, 1)])

    def by_formula() -> torch.Tensor:
        with torch.no_grad():
            return net.logits(q) + net.basis(now) @ net.curves().T

    with torch.inference_mode():
        fast = net.time_logits(q, now)
    torch.testing.assert_close(fast, by_formula(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        net.curve_item.weight[5] += 3.0
        net.item_emb.weight[7] -= 2.0
    with torch.inference_mode():
        moved = net.time_logits(q, now)
    torch.testing.assert_close(moved, by_formula(), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(moved[:, 5], fast[:, 5]) and not torch.allclose(
        moved[:, 7], fast[:, 7]
    )
