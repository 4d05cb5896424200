"""NCF (``ncf`` and ``ncf-implicit``) on planted data with a known answer, and its
own rules: the predicted item is left out of the user's history mean, unseen
users are folded in from their history, both names share one network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from primetime.data.splits import leave_one_out, ratio_split
from primetime.eval.protocol import EvalSet, evaluate, evaluate_ratings
from primetime.eval.validation import ndcg_at_10
from primetime.lifecycle import build_model
from primetime.models import MODELS
from primetime.models.base import FitOptions
from primetime.models.ncf import (
    Histories,
    NCFConfig,
    NCFImplicitRecommender,
    NCFNet,
    NCFRecommender,
    _rating_loss,
)
from primetime.types import UserContext

# planted logs are ~450 rows: small batches give the optimiser enough steps
FAST = {"batch_size": 32}

VALIDATE = FitOptions(validation=ndcg_at_10)  # early stopping on valid NDCG@10


@pytest.fixture(scope="module")
def rating_fit(planted):
    split = ratio_split(planted.interactions, seed=42)
    model = build_model("ncf", FAST)
    model.fit(split.train)
    return model, split


@pytest.fixture(scope="module")
def implicit_fit(planted):
    split = leave_one_out(planted.interactions)
    model = build_model("ncf-implicit", FAST)
    model.fit(split.train, valid=split.valid, options=VALIDATE)
    return model, split


def _halves(planted) -> tuple[np.ndarray, np.ndarray]:
    """item_idx of the low half (group 0's titles) and the high half (group 1's)."""
    ids = [f"i{i}" for i in range(40)]
    idx = np.array([planted.items.index(x) for x in ids])
    return idx[:20], idx[20:]


def test_two_names_two_tasks():
    assert MODELS["ncf"] is NCFRecommender and NCFRecommender.task == "rating"
    assert MODELS["ncf-implicit"] is NCFImplicitRecommender
    assert NCFImplicitRecommender.task == "topn"
    assert NCFRecommender.tuning_grid and NCFImplicitRecommender.tuning_grid
    with pytest.raises(NotImplementedError, match="does not predict ratings"):
        NCFImplicitRecommender().predict_ratings(np.array([1]), np.array([1]))
    with pytest.raises(ValueError, match="loss"):
        NCFConfig(loss="hinge")


def test_rating_model_beats_the_global_mean(rating_fit):
    """Group 1 rates 3-5, group 0 rates 1-3: a clear margin over the global mean."""
    model, split = rating_fit
    res = evaluate_ratings(model, split.test).summary()
    mean_err = np.abs(split.test.rating - np.nanmean(split.train.rating)).mean()
    assert res["MAE"] < 0.8 * mean_err


def test_implicit_model_beats_popularity_on_planted_chains(implicit_fit):
    model, split = implicit_fit
    pop = build_model("popularity")
    pop.fit(split.train)
    test = EvalSet.for_test(split)
    ndcg = evaluate(model, test, ks=(10,)).summary()["NDCG@10"]
    assert ndcg > evaluate(pop, test, ks=(10,)).summary()["NDCG@10"] + 0.1


def test_unknown_user_folded_in_favours_their_half(implicit_fit, planted):
    model, _ = implicit_fit
    low, high = _halves(planted)
    for own, other in ((low, high), (high, low)):
        history = own[4:12]  # a stretch of one group's chain, never seen as this user
        s = model.score([UserContext.anonymous(history)])[0]
        assert np.isfinite(s[1:]).all()
        unseen = np.setdiff1d(own, history)
        assert s[unseen].mean() > s[other].mean() + 0.5


def test_rating_fold_in_uses_the_ratings(rating_fit, planted):
    model, split = rating_fit
    low, _ = _halves(planted)
    history, unseen = low[4:12], np.setdiff1d(low, low[4:12])
    typical = UserContext(None, history, ratings=np.full(8, 2.0))
    s = model.score([typical])[0]
    assert np.isfinite(s[1:]).all()
    mu = np.nanmean(split.train.rating)
    assert np.abs(s[unseen].mean() - 2.0) < np.abs(mu - 2.0)  # nearer their level than mu
    lover = UserContext(None, history, ratings=np.full(8, 5.0))
    hater = UserContext(None, history, ratings=np.full(8, 1.0))
    s_lover, s_hater = model.score([lover, hater])
    assert (s_lover[1:] > s_hater[1:]).all()


def test_scores_agree_with_predict_ratings(rating_fit):
    """score() from a known user's training history = predict_ratings() (before clamping)."""
    model, split = rating_fit
    ctx = split.train.contexts()[:5]
    items = np.arange(1, split.items.size)
    s = model.score(ctx)
    for row, c in enumerate(ctx):
        pred = model.predict_ratings(np.full(items.size, c.user_idx), items)
        np.testing.assert_allclose(np.clip(s[row, 1:], 1, 5), pred, atol=1e-4)


def test_predicted_item_is_left_out_of_the_history_mean():
    """A candidate in the history scores as if the history did not hold it (FISM's rule)."""
    torch.manual_seed(0)
    net = NCFNet(4, 10, NCFConfig(gmf_dim=4, mlp_dim=4, hidden=8, blocks=1), mu=3.0)
    net.eval()
    users, cand = torch.tensor([2]), torch.tensor([[7]])
    bag_with = torch.tensor([3, 7, 5])
    with_it = net(users, cand, bag_with, torch.tensor([3]), torch.tensor([[1.0]]))[0]
    bag_without = torch.tensor([3, 5])
    without = net(users, cand, bag_without, torch.tensor([2]), torch.tensor([[0.0]]))[0]
    torch.testing.assert_close(with_it, without)
    ignored = net(users, cand, bag_with, torch.tensor([3]), torch.tensor([[0.0]]))[0]
    assert not torch.allclose(with_it, ignored)  # the rule is what made them equal


def test_histories_multiplicity_and_bags(planted):
    hist = Histories.of(planted.interactions)
    ctx = planted.interactions.contexts()[:2]
    u = torch.tensor([c.user_idx for c in ctx])
    items, lens = hist.bags(u)
    assert lens.tolist() == [len(c.history) for c in ctx]
    assert items.tolist() == np.concatenate([c.history for c in ctx]).tolist()
    absent = int(np.setdiff1d(np.arange(1, planted.items.size), ctx[0].history)[0])
    mult = hist.multiplicity(u[:1], torch.tensor([[int(ctx[0].history[0]), absent]]))
    assert mult.tolist() == [[1.0, 0.0]]


def test_rating_loss_trains_on_a_batch_of_one(planted):
    """The engine keeps a last batch of one row; BatchNorm must not fail on it."""
    inter = planted.interactions
    hist = Histories.of(inter)
    net = NCFNet(inter.users.size, inter.items.size, NCFConfig(gmf_dim=4, mlp_dim=4), mu=3.0)
    net.train()
    loss = _rating_loss(hist, 0.1)(net, (torch.tensor([1]), torch.tensor([1]), torch.tensor([4.0])))
    loss.backward()
    assert torch.isfinite(loss)
