"""The content head for never-watched titles: on a planted world whose two taste groups
differ by genre, a new title of a user's genre ranks above a new title of the other genre
among the new titles (the cold-items protocol), for the graph and the contrastive model;
without the head the graph model has nothing for a new title without graph links (they
tie). The head is saved with the model and gives titles added after training
(``extend_items``) rows on the scale of the watched titles' rows: a new title of a genre
fan's genre ranks first among the titles they have not seen; a bundle without a head
grows as it did before heads were kept."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from primetime.data import Dataset
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.models import get_model_class
from primetime.models.base import Recommender
from primetime.models.coldhead import (
    HeadConfig,
    Positions,
    ProfileHead,
    break_ties,
    calibrate,
    content_features,
    fit_head,
    newest_titles,
)
from primetime.models.contrastive import ContrastiveConfig, ContrastiveRecommender
from primetime.models.gnn import GNNConfig, GNNRecommender
from primetime.types import UserContext


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


def test_the_profile_learns_each_users_genre_where_the_user_vectors_cannot_tell():
    """Every position has the same user vector (the model's gives nothing to go on), so
    the head's rows alone rank a new title the same for everybody; the profile of the
    history (train_head with positions) learns that a user who watched genre 1 wants
    genre 1 next: each user's own genre's unwatched title scores higher."""
    from primetime.models.coldhead import train_head

    genres = np.array([[0]] + [[1 + i % 2] for i in range(20)])  # odd titles genre 1
    features = {"genres": genres}
    rng = np.random.default_rng(0)
    odd, even = np.arange(1, 17, 2), np.arange(2, 17, 2)  # titles 17-20 stay unwatched
    windows = np.stack([rng.choice(odd if u % 2 == 0 else even, 6) for u in range(40)])  # (40, 6)
    keep = np.zeros_like(windows, dtype=bool)
    keep[:, 1:] = True  # every title but the first is a target after the ones before
    targets = torch.from_numpy(windows[keep])
    history = np.zeros_like(windows)
    history[:, 1:] = windows[:, :-1]  # position t's history: titles before t
    positions = Positions.of(history[:, 1:], keep[:, 1:])
    users = torch.ones(len(targets), 2)  # the same for every position
    watched = torch.zeros(21, dtype=torch.bool)
    watched[1:17] = True
    cfg = HeadConfig(hidden=8, epochs=40, batch_size=64)
    head, profile = train_head(features, users, targets, watched, cfg, positions=positions)
    assert isinstance(profile, ProfileHead)
    with torch.no_grad():
        p_rows, g_rows = profile()
    for own, other, hist in ((17, 18, odd[:4]), (18, 17, even[:4])):
        u = p_rows[torch.from_numpy(hist)].mean(0)
        assert float(u @ g_rows[own]) > float(u @ g_rows[other]), own
    # without positions no profile is trained
    _, none = train_head(features, users, targets, watched, cfg)
    assert none is None


def test_positions_follow_the_order_of_the_kept_places():
    keep = np.array([[False, True, True], [True, False, False]])
    pos = Positions.of(np.arange(6).reshape(2, 3) + 1, keep)
    assert pos.row.tolist() == [0, 0, 1] and pos.col.tolist() == [1, 2, 0]
    rows = torch.arange(8, dtype=torch.float32)[:, None] * torch.ones(1, 2)  # row i = (i, i)
    means = ProfileHead.profiles(rows, pos.windows[pos.row], pos.col)
    # windows [[1, 2, 3], [4, 5, 6]]: (1+2)/2, (1+2+3)/3, 4/1
    torch.testing.assert_close(means[:, 0], torch.tensor([1.5, 2.0, 4.0]))


def test_break_ties_orders_equal_rows_by_the_models_own_rows():
    rows = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # titles 0 and 1 tie
    own = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5]])
    out = break_ties(rows, own)
    u = torch.tensor([1.0, 0.2])
    s = out @ u
    assert s[1] > s[0] > s[2]  # the tie broken by the own row, the rest as before
    assert float((out - rows).abs().max()) < 1e-2  # a small share
    torch.testing.assert_close(out[0], rows[0])  # a zero own row changes nothing
    with pytest.raises(ValueError, match="own rows"):
        break_ties(rows, own[:2])


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


def test_calibrate_maps_head_rows_onto_the_models_rows():
    """Head rows a tenth of the model's, rotated and offset: the map recovers the model's
    rows from the watched titles and carries a never-watched title's row over too."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    rot = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=torch.float64))[0]
    rows = 0.1 * base @ rot + torch.tensor([3.0, 0.0, -1.0, 0.5], dtype=torch.float64)
    watched = torch.ones(30, dtype=torch.bool)
    watched[[0, 25, 26]] = False  # padding and two never-watched titles
    weight, bias = calibrate(rows, base, watched)
    torch.testing.assert_close(rows[1:] @ weight + bias, base[1:])
    with pytest.raises(ValueError, match="rows"):
        calibrate(rows[:5], base, watched)


# ---------------------------------------------------------------- titles added later
HEAD_MODELS: dict[str, dict[str, object]] = {
    "gnn": {**GNN, "head_epochs": 20},
    "contrastive": {"dim": 16, "hidden": 32, "epochs": 2, "batch_size": 64, "eval_every": 2},
}


def before_and_after() -> tuple[Interactions, SideData, SideData]:
    """The train log of :func:`with_new_titles` and its side data without the two new
    titles (the catalog a model is fitted on), and the grown side data with them."""
    data = with_new_titles()
    triples = data.kg.triples if data.kg is not None else None
    old = Dataset.from_frames(
        "planted-old",
        interactions=data.interactions.to_polars(ids=True).select(
            "user_id", "item_id", "rating", "timestamp"
        ),
        catalog=data.catalog.frame.head(40),
        kg=triples,
        source="tests",
    )
    grown = SideData.of(data)
    assert grown.items.ids()[:40] == old.catalog.items.ids()  # the new ids appended
    return leave_one_out(old.interactions).train, SideData.of(old), grown


@pytest.fixture(scope="module", params=sorted(HEAD_MODELS))
def fitted(request) -> tuple[Recommender, Interactions, SideData]:
    train, old, grown = before_and_after()
    model = get_model_class(request.param)(
        get_model_class(request.param).config_class(**HEAD_MODELS[request.param])
    )
    model.fit(train, side=old)
    return model, train, grown


def grown_copy(model: Recommender, grown: SideData, tmp_path, *, head: bool = True):
    """``model`` through save -> load (without its head when ``head`` is False: a bundle
    saved before heads were kept), grown by the new titles."""
    kept = model.cold  # type: ignore[attr-defined]
    if not head:
        model.cold = None  # type: ignore[attr-defined]
    try:
        model.save(tmp_path / "m")
    finally:
        model.cold = kept  # type: ignore[attr-defined]
    back = get_model_class(model.name).load(tmp_path / "m")
    return back, back.extend_items(grown.items, grown)


def test_the_head_saves_and_loads(fitted, tmp_path) -> None:
    model, _, grown = fitted
    back, ok = grown_copy(model, grown, tmp_path)
    assert ok and back.cold is not None
    torch.testing.assert_close(back.cold.weight, model.cold.weight)
    torch.testing.assert_close(back.cold.bias, model.cold.bias)
    grown_state = back.cold.module.state_dict()  # token buffers grown by the new titles
    for k, v in model.cold.module.state_dict().items():
        torch.testing.assert_close(grown_state[k][: len(v)], v)
    again, _ = grown_copy(model, grown, tmp_path / "again")
    drama = [grown.items.index(f"i{i}") for i in range(20)]
    ctx = [UserContext.anonymous(np.array(drama[:8]))]
    np.testing.assert_allclose(again.score(ctx), back.score(ctx), rtol=1e-5, atol=1e-5)
    # and the grown model, head buffers grown, saves and loads too
    back.save(tmp_path / "grown")
    loaded = get_model_class(model.name).load(tmp_path / "grown")
    assert loaded.cold is not None and loaded.cold.size == grown.items.size
    assert loaded.cold.profile is not None and model.cold.profile is not None
    np.testing.assert_array_equal(loaded.cold.scored, back.cold.scored)
    assert set(back.cold.scored.tolist()) >= {41, 42}  # the added titles
    assert loaded.cold.profile_scale == model.cold.profile_scale
    np.testing.assert_allclose(loaded.score(ctx), back.score(ctx), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fitted", ["gnn"], indirect=True)
def test_added_titles_score_on_the_watched_rows_scale(fitted, tmp_path) -> None:
    """gnn: the head reads genres only, so every Drama title has one head row and every
    Comedy|Family title another; the watched titles are half of each. Calibrated, an
    added title's row is the mean watched row of its genre, so the mean of the two
    added titles' scores is every user's mean score over the watched titles, exactly.
    Uncalibrated (the head's raw rows) it is not. (The contrastive model keeps the
    head's order instead: the next test.)"""
    model, train, grown = fitted
    back, ok = grown_copy(model, grown, tmp_path)
    assert ok
    new = [grown.items.index("new-drama"), grown.items.index("new-comedy")]
    assert set(new) <= set(back.cold.scored.tolist())  # the profile term scores them
    back.cold.profile = back.cold.terms = None  # the rows alone (the terms: later tests)
    watched = np.flatnonzero(np.bincount(train.item_idx, minlength=41) > 0)
    genre = np.array([int(int(i[1:]) < 20) for i in grown.items.ids()[:40]])
    assert genre[watched - 1].sum() * 2 == len(watched)  # half Drama: the identity holds
    scores = back.score(list(train.contexts()))  # (U, 43)
    spread = float(scores[:, watched].std(1).mean())
    np.testing.assert_allclose(
        scores[:, new].mean(1), scores[:, watched].mean(1), atol=1e-4 * max(spread, 1.0)
    )


@pytest.mark.parametrize("fitted", ["contrastive"], indirect=True)
def test_contrastive_added_titles_score_as_never_watched_titles_at_fit(fitted, tmp_path) -> None:
    """The contrastive model gives a title added after training what it gave a title
    nobody watched at fit: the head's row under one common scale and shift (so each
    user's order among such titles is the head's, the order the cold-items benchmark
    measures), which put the watched titles' head rows on the centre and spread of
    their encoder rows."""
    model, train, grown = fitted
    back, ok = grown_copy(model, grown, tmp_path)
    assert ok and back.cold is not None
    dim = back.cold.weight.shape[0]
    scale = float(back.cold.weight[0, 0])
    assert scale > 0
    torch.testing.assert_close(back.cold.weight, torch.eye(dim) * scale)
    with torch.no_grad():
        raw = back.cold.module()  # (43, dim): the grown head's rows of every title
    placed = (raw * scale + back.cold.bias).numpy()
    tied = break_ties(torch.from_numpy(placed[41:]), torch.from_numpy(back.item_vectors()[41:]))
    np.testing.assert_allclose(back.score_vectors[41:], tied.numpy(), rtol=1e-4, atol=1e-6)
    # the map's centre and spread: those of the watched titles' encoder rows
    watched = np.flatnonzero(np.bincount(train.item_idx, minlength=41) > 0)
    z = model.item_vectors()[watched]
    np.testing.assert_allclose(placed[watched].mean(0), z.mean(0), atol=1e-5)
    spread = np.linalg.norm(placed[watched] - z.mean(0), axis=1).mean()
    assert spread == pytest.approx(np.linalg.norm(z - z.mean(0), axis=1).mean(), rel=1e-4)
    # each user's order among the added titles is the head's: its rows and profile term
    users = list(train.contexts())[:10]
    s = back.score(users)[:, 41:]
    vec = back.item_vectors()
    profile = back.cold.profile_scores([c.history for c in users])  # (10, S)
    assert profile is not None
    at = [int(np.flatnonzero(back.cold.scored == i)[0]) for i in (41, 42)]
    for c, row, prof in zip(users, s, profile, strict=True):
        age = np.arange(len(c.history))[::-1]
        w = 0.5 ** (age / back.config.recency_halflife)
        u = (w[:, None] * vec[c.history]).sum(0)
        u = u / np.linalg.norm(u)
        by_head = scale * (u @ raw[41:].numpy().T) + prof[at]
        assert np.sign(row[0] - row[1]) == np.sign(by_head[0] - by_head[1])


def test_a_head_placed_new_title_ranks_first_for_its_genre_fans(fitted, tmp_path) -> None:
    """A user who has watched every title of one genre: of the titles left, the added
    title of that genre comes first, the other genre's added title after it."""
    model, _, grown = fitted
    back, ok = grown_copy(model, grown, tmp_path)
    assert ok
    items = grown.items
    for half, own, other in ((0, "new-drama", "new-comedy"), (1, "new-comedy", "new-drama")):
        history = np.array([items.index(f"i{i}") for i in range(20 * half, 20 * half + 20)])
        scores = back.score([UserContext.anonymous(history)])[0]
        scores[history] = -np.inf
        assert int(np.argmax(scores)) == items.index(own), (model.name, own)
        assert scores[items.index(own)] > scores[items.index(other)]


def test_a_bundle_without_a_head_grows_as_before(fitted, tmp_path) -> None:
    """No head saved: the contrastive model scores an added title by its encoder
    vector; the graph model has no graph link for these titles, so it cannot grow."""
    model, _, grown = fitted
    back, ok = grown_copy(model, grown, tmp_path, head=False)
    assert back.cold is None
    if model.name == "gnn":
        assert ok is False and back.items.size == 41
    else:
        assert ok is True
        np.testing.assert_array_equal(back.score_vectors[41:], back.item_vectors()[41:])
        head, _ = grown_copy(model, grown, tmp_path / "head")
        assert not np.allclose(head.score_vectors[41:], head.item_vectors()[41:])


def test_the_heads_user_dropout_is_checked():
    with pytest.raises(ValueError, match="head_user_dropout"):
        GNNConfig(head_user_dropout=1.0)
    with pytest.raises(ValueError, match="head_user_dropout"):
        ContrastiveConfig(head_user_dropout=-0.1)
    with pytest.raises(ValueError, match="user_dropout"):
        HeadConfig(user_dropout=1.0)


def test_logit_adjustment_takes_the_popular_genres_lead_away():
    """Every user the same, nine in ten targets of genre 1: unadjusted, the head puts an
    unwatched genre-1 title far above an unwatched genre-2 title (the popular genre);
    with the log counts in the training logits (``logit_adjust=1``) the lead shrinks,
    since what is left to learn is a title's share beyond its count."""
    genres = np.array([[0]] + [[1 + i % 2] for i in range(20)])  # odd titles genre 1
    features = {"genres": genres}
    rng = np.random.default_rng(0)
    odd, even = np.arange(1, 17, 2), np.arange(2, 17, 2)  # titles 17-20 stay unwatched
    targets = torch.from_numpy(
        np.where(rng.random(400) < 0.9, rng.choice(odd, 400), rng.choice(even, 400))
    )
    users = torch.ones(400, 2)
    watched = torch.zeros(21, dtype=torch.bool)
    watched[1:17] = True
    gap = {}
    for tau in (0.0, 1.0):
        cfg = HeadConfig(hidden=8, epochs=30, batch_size=64, logit_adjust=tau)
        out = fit_head(features, users, targets, watched, cfg)
        gap[tau] = float(users[0] @ (out[17] - out[18]))
    assert gap[0.0] > 1.0, gap  # log(0.9 / 0.1) is about 2.2
    assert abs(gap[1.0]) < 0.5 * gap[0.0], gap


def test_the_logit_adjustment_option():
    from primetime.models.coldhead import adjust_choices, head_overrides

    assert adjust_choices("auto", True) == [0.0, 1.0]
    assert adjust_choices("auto", False) == [0.0]
    assert adjust_choices("0.5", True) == [0.5]
    for bad in ("2", "often", "-1"):
        with pytest.raises(ValueError, match="head_logit_adjust"):
            GNNConfig(head_logit_adjust=bad)
    assert head_overrides("auto", {"head_logit_adjust": 1.0}) == {"head_logit_adjust": "1.0"}
    assert head_overrides("0", {"head_logit_adjust": 0.0}) == {}


def recording(seen: list[object], score):
    """A ``FitOptions.validation`` that records the head (``model.cold``) each validation
    sees in ``seen`` and returns ``score(seen)``."""

    def validation(train, valid):
        def judge(model):
            seen.append(model.cold)
            return score(seen)

        return judge

    return validation


@pytest.mark.parametrize("name", ["gnn", "contrastive"])
def test_auto_keeps_the_adjustment_valid_prefers_and_a_refit_pins_it(name):
    """A validator that prefers the second head (adjusted) gets it: the fit reports 1.0,
    the model keeps that head's rows, and ``refit_overrides`` pins it."""
    from primetime.models.base import FitOptions

    data = with_new_titles()
    split = leave_one_out(data.interactions)
    calls: list[object] = []
    validation = recording(calls, lambda seen: 0.1 if seen[-1] is None else float(len(seen)))

    cls = get_model_class(name)
    model = cls(cls.config_class(**HEAD_MODELS[name]))
    report = model.fit(
        split.train,
        valid=split.valid,
        side=SideData.of(data),
        options=FitOptions(validation=validation),
    )
    assert report.notes["head_logit_adjust"] == 1.0
    assert model.cold is calls[-1]  # the second (last scored) head is the one kept
    assert model.refit_overrides(report)["head_logit_adjust"] == "1.0"


def test_head_valid_on_new_titles_only_by_default():
    """``head_valid="auto"`` fits the head at each validation where most valid targets
    are titles without a training event (the cold-items split), not on leave-one-out."""
    from primetime.data.splits import cold_items_split
    from primetime.models.coldhead import validates_head

    inter = with_new_titles().interactions
    loo, cold = leave_one_out(inter), cold_items_split(inter, frac=0.2, min_interactions=2)
    assert not validates_head("auto", loo.train, loo.valid)
    assert validates_head("auto", cold.train, cold.valid)
    assert validates_head("true", loo.train, loo.valid)
    assert not validates_head("false", cold.train, cold.valid)
    assert not validates_head("true", cold.train, None)  # no valid set: nothing to score
    with pytest.raises(ValueError, match="head_valid"):
        GNNConfig(head_valid="sometimes")


@pytest.mark.parametrize("head_valid", ["true", "false"])
@pytest.mark.parametrize("name", sorted(HEAD_MODELS))
def test_head_valid_scores_each_epoch_with_the_head_s_rows(name, head_valid):
    """With ``head_valid`` each epoch's validation scores the model with a head fitted on
    that epoch's weights (the rows served for never-watched titles); without it, the
    model's own rows until the final head."""
    from primetime.models.base import FitOptions

    data = with_new_titles()
    split = leave_one_out(data.interactions)
    heads: list[object] = []
    validation = recording(heads, lambda seen: 0.1)

    cls = get_model_class(name)
    config = {**HEAD_MODELS[name], "epochs": 4, "eval_every": 2, "patience": 0}
    model = cls(cls.config_class(**config, head_valid=head_valid))
    side, options = SideData.of(data), FitOptions(validation=validation)
    model.fit(split.train, valid=split.valid, side=side, options=options)
    during = heads[:2]  # epochs 2 and 4; then the final head's two adjustments
    assert len(heads) == 4
    if head_valid == "true":
        assert all(h is not None for h in during) and during[0] is not during[1]
    else:
        assert during == [None, None]


@pytest.mark.parametrize("name", sorted(HEAD_MODELS))
def test_head_valid_changes_which_epoch_is_kept_not_the_training(name):
    """The heads fitted at validation seed torch's generator; training goes on from the
    state it had, so with the last epoch kept the weights equal those of a fit without
    ``head_valid``."""
    from primetime.models.base import FitOptions

    data = with_new_titles()
    split = leave_one_out(data.interactions)

    def rising(train, valid):
        calls = iter(range(100))
        return lambda model: float(next(calls))  # every validation better: keep the last

    nets = []
    cls = get_model_class(name)
    for head_valid in ("true", "false"):
        config = {**HEAD_MODELS[name], "epochs": 4, "eval_every": 2, "dropout": 0.2}
        if name == "contrastive":
            config.pop("dropout")
        model = cls(cls.config_class(**config, patience=0, head_valid=head_valid))
        side, options = SideData.of(data), FitOptions(validation=rising)
        model.fit(split.train, valid=split.valid, side=side, options=options)
        nets.append(model.net.state_dict())
    for key, value in nets[0].items():
        torch.testing.assert_close(value, nets[1][key], msg=key)
