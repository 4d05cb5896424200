"""The content head for never-watched titles: on a planted world whose two taste groups
differ by genre, a new title of a user's genre ranks above a new title of the other genre
among the new titles (the cold-items protocol), for the graph and the contrastive model;
without the head the graph model has nothing for a new title without graph links (they
tie)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from primetime.data import Dataset
from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.models.coldhead import HeadConfig, content_features, fit_head, newest_titles
from primetime.models.contrastive import ContrastiveConfig, ContrastiveRecommender
from primetime.models.gnn import GNNConfig, GNNRecommender


def with_new_titles(seed: int = 0) -> Dataset:
    """A planted world (as the ``planted`` fixture: 60 users in two taste groups, each
    watching a run of 6-11 titles of its half of 40; Drama first half, Comedy|Family
    second; a graph of genre and director links) plus two titles nobody watched and the
    graph does not know: ``new-drama`` and ``new-comedy``."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(60):
        start = int(rng.integers(0, 8))
        for step in range(int(rng.integers(6, 12))):
            rows.append((f"u{u}", f"i{(u % 2) * 20 + start + step}", 4.0, 10_000 * u + step))
    ids = [f"i{i}" for i in range(40)] + ["new-drama", "new-comedy"]
    genres = [["Drama"] if i < 20 else ["Comedy", "Family"] for i in range(40)]
    kg = [(f"i{i}", "genre", f"genre:{i // 20}") for i in range(40)]
    kg += [(f"i{i}", "directed_by", f"person:{i % 4}") for i in range(40)]
    return Dataset.from_frames(
        "planted-new",
        interactions=pl.DataFrame(
            rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row"
        ),
        catalog=pl.DataFrame(
            {
                "item_id": ids,
                "title": [f"Title {k}" for k in range(len(ids))],
                "genres": [*genres, ["Drama"], ["Comedy", "Family"]],
            }
        ),
        kg=pl.DataFrame(kg, schema=["head", "relation", "tail"], orient="row"),
        source="tests",
    )


def right_share(model, data: Dataset) -> float:
    """Share of users whose own genre's new title scores above the other's."""
    train = leave_one_out(data.interactions).train
    items = train.items
    new = np.array([items.index("new-drama"), items.index("new-comedy")])
    right = total = 0
    for c in train.contexts():
        s = model.score([c])[0][new]  # (2,)
        own = 0 if int(items.id(int(c.history[0]))[1:]) < 20 else 1
        right += int(s[own] > s[1 - own])
        total += 1
    return right / total


GNN = {"dim": 16, "epochs": 12, "batch_size": 16, "lr": 1e-2, "eval_every": 12, "dropout": 0.0}


@pytest.mark.parametrize("cold_head", [True, False], ids=["head", "no-head"])
def test_gnn_new_title_of_the_users_genre_first(cold_head):
    data = with_new_titles()
    model = GNNRecommender(GNNConfig(**GNN, cold_head=cold_head, head_epochs=20))
    model.fit(leave_one_out(data.interactions).train, side=SideData.of(data))
    share = right_share(model, data)
    if cold_head:
        assert share >= 0.9, share
    else:
        assert share == 0.0, "without the head and graph links a new title has no vector"


def test_contrastive_new_title_of_the_users_genre_first():
    data = with_new_titles()
    cfg = ContrastiveConfig(dim=16, hidden=32, epochs=2, batch_size=64, eval_every=2)
    model = ContrastiveRecommender(cfg)
    model.fit(leave_one_out(data.interactions).train, side=SideData.of(data))
    assert right_share(model, data) >= 0.9
    assert model.score_vectors is not None
    watched = np.bincount(leave_one_out(data.interactions).train.item_idx) > 0
    np.testing.assert_array_equal(  # watched titles keep the encoder's vectors
        model.score_vectors[1 : len(watched)][watched[1:]],
        model.item_vectors()[1 : len(watched)][watched[1:]],
    )


def test_fit_head_learns_which_genre_each_user_wants():
    """Two user directions, titles of two genres: the head puts each genre's titles,
    watched or not, on its users' side."""
    genres = np.array([[0]] + [[1 + i % 2] for i in range(20)])  # (21, 1) padding row 0
    features = {"genres": genres}
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(50, 1)  # (100, 2)
    rng = np.random.default_rng(0)
    odd, even = np.arange(1, 17, 2), np.arange(2, 17, 2)  # titles 17-20 stay unwatched
    targets = torch.from_numpy(np.stack([rng.choice(odd, 50), rng.choice(even, 50)], 1).ravel())
    watched = torch.zeros(21, dtype=torch.bool)
    watched[1:17] = True
    out = fit_head(features, users, targets, watched, HeadConfig(hidden=8, epochs=30))
    assert out.shape == (21, 2)
    assert float(out[0].abs().sum()) == 0.0
    # unwatched 17 (genre 1, like the odd titles) and 18 (genre 2)
    assert out[17, 0] > out[17, 1] and out[18, 1] > out[18, 0]


def test_fit_head_rejects_unwatched_targets():
    features = {"genres": np.array([[0], [1], [2]])}
    watched = torch.tensor([False, True, False])
    with pytest.raises(ValueError, match="watched"):
        fit_head(features, torch.ones(1, 2), torch.tensor([2]), watched, HeadConfig())


def test_newest_titles_by_first_event():
    item = np.array([1, 2, 3, 1, 4])
    ts = np.array([0, 5, 9, 10, 7])
    assert newest_titles(item, ts, 6, 0.5).nonzero().squeeze(1).tolist() == [3, 4]
    with pytest.raises(ValueError):
        newest_titles(item, ts, 6, 1.0)


def test_content_features_have_an_exact_year():
    data = Dataset.from_frames(
        "years",
        interactions=pl.DataFrame(
            [("u1", "a", 4.0, 1), ("u1", "b", 4.0, 2)],
            schema=["user_id", "item_id", "rating", "timestamp"],
            orient="row",
        ),
        catalog=pl.DataFrame(
            {
                "item_id": ["a", "b"],
                "title": ["A", "B"],
                "genres": [["Drama"]] * 2,
                "year": [1997, 1998],
            }
        ),
        source="tests",
    )
    side = SideData.of(data)
    f = content_features(side, side.items.size, use_text=False)
    years = f["year"][1:, 0]
    assert len(set(years.tolist())) == 2  # 1997 and 1998 apart (5-year buckets merge them)
