"""SASRec-specific checks: causality, padding invariance, losses, learning a chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.lifecycle import build_model
from primetime.models.sasrec import SASRecConfig, SASRecNet
from primetime.models.sequential import right_pad, training_windows
from primetime.types import UserContext

SMALL = {"dim": 32, "heads": 2, "layers": 2, "ffn": 64}


@pytest.fixture(params=["sinusoidal", "learned", "none"])
def net(request):
    torch.manual_seed(0)
    n = SASRecNet(50, SASRecConfig(**SMALL, max_len=12, positions=request.param))
    return n.eval()


def test_causal_later_items_never_change_earlier_outputs(net):
    seq = torch.randint(1, 50, (3, 12))
    h = net(seq)
    changed = seq.clone()
    changed[:, 7:] = torch.randint(1, 50, (3, 5))
    h2 = net(changed)
    torch.testing.assert_close(h[:, :7], h2[:, :7])
    assert not torch.allclose(h[:, 7:], h2[:, 7:])


def test_padding_invariance(net):
    seq = torch.randint(1, 50, (2, 6))
    padded = torch.cat([seq, torch.zeros(2, 6, dtype=torch.long)], dim=1)
    torch.testing.assert_close(net(seq), net(padded)[:, :6])


def test_right_pad_keeps_the_most_recent_items():
    seq, last = right_pad([np.arange(1, 8), np.array([5]), np.array([], dtype=np.int64)], 4)
    assert seq.tolist() == [[4, 5, 6, 7], [5, 0, 0, 0], [0, 0, 0, 0]]
    assert last.tolist() == [3, 0, 0]


def test_training_windows_cover_every_pair(planted):
    split = leave_one_out(planted.interactions)
    x, y = training_windows(split.train, 4)
    n_pairs = sum(max(len(c.history) - 1, 0) for c in split.train.contexts())
    assert int((y > 0).sum()) == n_pairs
    assert ((x > 0) == (y > 0)).all(), "every input position has its next item"


@pytest.mark.parametrize("loss", ["ce", "sampled_softmax", "bce"])
def test_learns_the_chain(planted, loss):
    """Each user walks i -> i+1: after i3, i4, i5 the next title i6 must rank top-3."""
    split = leave_one_out(planted.interactions)
    m = build_model(
        "sasrec",
        {
            **SMALL,
            "loss": loss,
            "negatives": 16,
            "epochs": 40,
            "lr": 0.01,
            "dropout": 0.0,
            "patience": 0,
            "max_len": 12,
        },
    )
    m.fit(split.train)
    items = planted.items
    hist = np.array([items.index(f"i{k}") for k in (3, 4, 5)])
    s = m.score([UserContext.anonymous(hist)])[0]
    s[hist] = -np.inf
    assert items.index("i6") in np.argsort(-s)[:3]


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="divisible"):
        SASRecConfig(dim=30, heads=4)
    with pytest.raises(ValueError, match="positions"):
        SASRecConfig(positions="rotary")


def test_overlapping_windows_keep_every_pair_and_add_context(planted):
    split = leave_one_out(planted.interactions)
    x0, y0 = training_windows(split.train, 4)
    x2, y2 = training_windows(split.train, 4, stride=2)
    assert len(x2) > len(x0)
    pairs0 = {(int(a), int(b)) for a, b in zip(x0[y0 > 0], y0[y0 > 0], strict=True)}
    pairs2 = {(int(a), int(b)) for a, b in zip(x2[y2 > 0], y2[y2 > 0], strict=True)}
    assert pairs0 == pairs2, "overlap repeats pairs, never invents or drops one"


def test_side_features_train_save_load_and_fall_back_without_a_catalog(planted, tmp_path):
    split = leave_one_out(planted.interactions)
    cfg = {**SMALL, "side_features": True, "epochs": 3, "patience": 0}
    m = build_model("sasrec", cfg)
    m.fit(split.train)
    assert m.net.genre_proj is None, "no catalog: ids only"
    m.fit(split.train, side=SideData.build(catalog=planted.catalog))
    assert m.net.genre_proj is not None
    # Genre vectors enter the item table: two items differing only in id still differ.
    table = m.net.item_table().detach()
    assert torch.count_nonzero(table[0]) == 0, "padding stays zero"
    ctx = [UserContext.anonymous(np.array([1, 2, 3]))]
    before = m.score(ctx)
    m.save(tmp_path / "m")
    again = type(m).load(tmp_path / "m")
    np.testing.assert_array_equal(again.score(ctx), before)
    # Without side features the same seed gives different scores: the features are used.
    plain = build_model("sasrec", {**cfg, "side_features": False})
    plain.fit(split.train, side=SideData.build(catalog=planted.catalog))
    assert not np.allclose(plain.score(ctx), before)


def test_item_table_cache_follows_weight_changes(planted):
    split = leave_one_out(planted.interactions)
    m = build_model("sasrec", {**SMALL, "epochs": 1, "patience": 0})
    m.fit(split.train, side=SideData.build(catalog=planted.catalog))
    net = m.net.eval()
    with torch.no_grad():
        first = net.item_table()
        assert net.item_table() is first, "cached at inference"
        net.genre_proj.weight.mul_(2.0)  # in-place change: the version counter moves
        second = net.item_table()
    assert second is not first and not torch.allclose(second, first)
    net.train()
    assert net.item_table() is not second, "never cached while training"


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_scores_do_not_depend_on_the_batch_a_history_is_scored_in(planted, name):
    """A batch runs only as long as its longest history: a short history scores the same
    alone (no padding at all) as beside a long one (padded to its length)."""
    split = leave_one_out(planted.interactions)
    m = build_model(name, {"dim": 32, "epochs": 1, "patience": 0})
    m.fit(split.train)
    short = UserContext.anonymous(np.array([3, 1, 4]))
    long = UserContext.anonymous(np.arange(1, 30) % (m.items.size - 1) + 1)
    alone = m.score([short])
    together = m.score([short, long])
    np.testing.assert_allclose(together[0], alone[0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(together[1], alone[0])
    assert m.net.training is False
