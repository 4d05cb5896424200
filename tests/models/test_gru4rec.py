"""GRU4Rec-specific checks: causality, padding invariance, any history, learning a chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from primetime.data.splits import leave_one_out
from primetime.eval.protocol import EvalSet, evaluate
from primetime.lifecycle import build_model
from primetime.models.gru4rec import GRU4RecConfig, GRU4RecNet
from primetime.types import UserContext

SMALL = {"dim": 32, "max_len": 12}


@pytest.fixture
def net():
    torch.manual_seed(0)
    return GRU4RecNet(50, GRU4RecConfig(**SMALL, layers=2)).eval()


def test_causal_later_items_never_change_earlier_outputs(net):
    seq = torch.randint(1, 50, (3, 12))
    h = net(seq)  # (3, 12, D)
    changed = seq.clone()
    changed[:, 7:] = torch.randint(1, 50, (3, 5))
    h2 = net(changed)
    torch.testing.assert_close(h[:, :7], h2[:, :7])
    assert not torch.allclose(h[:, 7:], h2[:, 7:])


def test_padding_invariance(net):
    seq = torch.randint(1, 50, (2, 6))
    padded = torch.cat([seq, torch.zeros(2, 6, dtype=torch.long)], dim=1)  # (2, 12)
    torch.testing.assert_close(net(seq), net(padded)[:, :6])


@pytest.fixture(scope="module")
def chain(planted):
    """A small GRU4Rec fitted on the planted chains (train part of leave-one-out)."""
    split = leave_one_out(planted.interactions)
    model = build_model(
        "gru4rec",
        {**SMALL, "dropout": 0.0, "epochs": 20, "lr": 0.02, "patience": 0, "device": "cpu"},
    )
    model.fit(split.train)
    return model, split


@pytest.mark.parametrize(
    ("history", "successor"),
    [(("i3", "i4", "i5"), "i6"), (("i9",), "i10"), (("i22", "i23"), "i24")],
)
def test_learns_the_chain(chain, planted, history, successor):
    """Each user walks i -> i+1 within their half: after a short history ending
    in a, the successor b must rank in the top-3 (for a user never seen in training)."""
    model, _ = chain
    items = planted.items
    hist = np.array([items.index(i) for i in history])
    s = model.score([UserContext.anonymous(hist)])[0]
    s[hist] = -np.inf
    assert items.index(successor) in np.argsort(-s)[:3]


def test_beats_popularity_on_planted_chains(chain):
    model, split = chain
    pop = build_model("popularity")
    pop.fit(split.train)
    test = EvalSet.for_test(split)
    ndcg = evaluate(model, test, ks=(10,)).summary()["NDCG@10"]
    ndcg_pop = evaluate(pop, test, ks=(10,)).summary()["NDCG@10"]
    assert ndcg > ndcg_pop + 0.1


def test_long_history_reads_only_the_last_max_len_items(chain, planted):
    """A history longer than max_len scores like its last max_len items."""
    model, _ = chain
    long = np.arange(1, planted.items.size)[:30]
    a = model.score([UserContext.anonymous(long)])
    b = model.score([UserContext.anonymous(long[-model.config.max_len :])])
    np.testing.assert_array_equal(a, b)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="dim"):
        GRU4RecConfig(dim=0)
    with pytest.raises(ValueError, match="layers"):
        GRU4RecConfig(layers=0)
    with pytest.raises(ValueError, match="dropout"):
        GRU4RecConfig(dropout=1.0)
    with pytest.raises(ValueError, match="max_len"):
        GRU4RecConfig(max_len=1)
