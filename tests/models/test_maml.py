"""``maml``: the inner gradient, adaptation on a planted log, and the bundle round trip."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
import torch

from primetime.data import Dataset
from primetime.data.interactions import Interactions
from primetime.models import get_model_class
from primetime.models.base import FitOptions
from primetime.models.maml import (
    Episodes,
    MAMLConfig,
    MAMLRecommender,
    _support_grad,
    support_grad_closed,
)
from primetime.ranking import pessimistic_ranks
from primetime.types import UserContext

FAST = MAMLConfig(dim=16, epochs=8, eval_every=100, device="cpu")


def tastes_log(
    n_users: int = 400, n_groups: int = 8, per_group: int = 10, seed: int = 0
) -> Dataset:
    """Each user watches the titles of one taste group (of ``n_groups``) in a random
    order: after k events the next title is one of the group's other titles, and
    only the user's own events tell which group that is."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        g = int(rng.integers(n_groups))
        for step, i in enumerate(rng.permutation(per_group) + g * per_group):
            rows.append((f"u{u}", f"i{i}", 1.0, 1_000_000 + u * 1_000 + step))
    df = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    return Dataset.from_frames("tastes", interactions=df, source="tests")


def new_user_ndcg(model: MAMLRecommender, inter: Interactions, users: np.ndarray, k: int) -> float:
    """Mean NDCG@10 of each user's event k + 1 given their first k events (full ranking)."""
    indptr, order = inter.user_histories()
    hists = [inter.item_idx[order[indptr[u] : indptr[u + 1]]] for u in users]
    ctx = [UserContext.anonymous(h[:k]) for h in hists]
    target = np.array([h[k] for h in hists])
    scores = model.score(ctx)
    for row, c in enumerate(ctx):
        scores[row, c.history] = -np.inf
    ranks = pessimistic_ranks(scores, target[:, None])[:, 0]
    return float(np.where(ranks <= 10, 1 / np.log2(ranks + 1), 0.0).mean())


def test_closed_form_gradient_equals_torch_func() -> None:
    """Serving's closed-form inner gradient is the torch.func gradient of the support
    loss, padding included (padded events add nothing)."""
    g = torch.Generator().manual_seed(0)
    b, s, v, d = 3, 4, 9, 5
    phi, ctx = torch.randn(b, d + 2, generator=g), torch.randn(b, s, d, generator=g)
    table, bias = torch.randn(v, d, generator=g), torch.randn(v, generator=g)
    keep = torch.tensor([[1.0, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    targets = torch.randint(1, v, (b, s), generator=g) * keep.long()
    closed = support_grad_closed(phi, ctx, targets, keep, table, bias)
    np.testing.assert_allclose(
        closed.numpy(), _support_grad(phi, ctx, targets, keep, table, bias).numpy(), atol=1e-5
    )
    # a user's gradient does not depend on how much padding follows its events
    alone = support_grad_closed(
        phi[1:2], ctx[1:2, :1], targets[1:2, :1], keep[1:2, :1], table, bias
    )
    np.testing.assert_allclose(alone.numpy(), closed[1:2].numpy(), atol=1e-6)


def test_episodes_split_support_and_query() -> None:
    h = np.arange(1, 21)
    ep = Episodes([h], per_user=50, max_support=4, query=2, first_share=0.5, seed=0)
    for i in range(len(ep)):
        sup, prev, qry, qprev = (t.numpy() for t in ep[i])
        n = int((sup > 0).sum())
        assert 1 <= n <= 4 and (np.diff(sup[:n]) == 1).all()
        assert prev[0] == 0 and (prev[1:n] == sup[: n - 1]).all()
        assert qry[0] == sup[n - 1] + 1 and qprev[0] == sup[n - 1]  # the query follows


@pytest.fixture(scope="module")
def tastes_fits() -> tuple[MAMLRecommender, MAMLRecommender, Interactions, np.ndarray]:
    inter = tastes_log().interactions
    new = np.arange(1, 101)  # users 1..100 are never trained on
    train = inter.take(~np.isin(inter.user_idx, new))
    options = FitOptions(threads=1)
    plain = MAMLRecommender(dataclasses.replace(FAST, meta=False))
    plain.fit(train, options=options)
    meta = MAMLRecommender(FAST)
    meta.fit(train, options=options)
    return plain, meta, inter, new


def test_meta_learned_adaptation_beats_no_adaptation(tastes_fits) -> None:
    """New users with k = 1, 3, 5 events: the meta-learned model after its inner
    steps ranks the next title better than the same net trained without meta-learning
    and scored without adaptation (mean NDCG@10 over the three k, margin 0.02).

    Measured when written (mean over k): 0.548 against 0.464 on this log, 0.523
    against 0.495 with ``seed=1``. Most of the gain is the meta-learned
    initialisation: the same model without its steps scored 0.524 and 0.525.
    """
    plain, meta, inter, new = tastes_fits
    none = MAMLRecommender(dataclasses.replace(plain.config, adapt_steps=0))
    none.net, none.items = plain.net, plain.items
    ks = (1, 3, 5)
    adapted = np.mean([new_user_ndcg(meta, inter, new, k) for k in ks])
    unadapted = np.mean([new_user_ndcg(none, inter, new, k) for k in ks])
    assert adapted > unadapted + 0.02, (adapted, unadapted)


def test_bundle_round_trip(tastes_fits, tmp_path) -> None:
    _, meta, inter, new = tastes_fits
    meta.save(tmp_path / "maml")
    loaded = get_model_class("maml").load(tmp_path / "maml")
    assert loaded.config == meta.config
    np.testing.assert_array_equal(loaded.inner_lr().numpy(), meta.inner_lr().numpy())
    assert bool(loaded.net.trained.all()) == bool(meta.net.trained.all())
    ctx = inter.contexts(new[:5]) + [UserContext.anonymous([]), UserContext.anonymous([3])]
    np.testing.assert_array_equal(loaded.score(ctx), meta.score(ctx))


def test_untrained_titles_scored_by_content(planted) -> None:
    """A title without a training event gets a zero id vector: with side features it
    still scores (finite, from its genre), and it never was a training negative."""
    inter = planted.interactions
    from primetime.data.side import SideData

    hidden = inter.items.index("i5")
    model = MAMLRecommender(dataclasses.replace(FAST, epochs=2))
    model.fit(inter.take(inter.item_idx != hidden), side=SideData.of(planted))
    assert model.net is not None and not bool(model.net.trained[hidden])
    assert float(model.net.item_emb.weight[hidden].detach().abs().sum()) == 0.0
    assert np.isfinite(model.score([UserContext.anonymous([hidden])])[0, 1:]).all()
