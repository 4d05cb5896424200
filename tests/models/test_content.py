"""The content models (``multimodal``, ``contrastive``) on the planted log: a user of one
half gets titles of that half, a title nobody watched is scored from its content next
to its look-alikes, save -> load keeps every score, and each ablation flag trains."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.lifecycle import build_model
from primetime.models import get_model_class
from primetime.models.contrastive import cowatch_pairs
from primetime.models.metadata import item_tokens
from primetime.types import UserContext

TINY = {
    "multimodal": {
        "epochs": 30,
        "dim": 16,
        "meta_dim": 16,
        "heads": 2,
        "layers": 1,
        "ffn": 32,
        "dropout": 0.0,
        "lr": 5e-3,
        "warmup_epochs": 0.0,
    },
    "contrastive": {"epochs": 30, "dim": 16, "hidden": 32, "batch_size": 64, "lr": 5e-3},
}
NEW = "i5"  # a Drama title (first half) that nobody watches in these tests


def side_with_text(planted, dim: int = 24) -> SideData:
    """The planted side data plus text vectors: one direction per half plus noise, so
    the texts say which half a title is in (as real descriptions say its genre)."""
    rng = np.random.default_rng(1)
    side = SideData.of(planted)
    n = planted.items.size
    halves = rng.normal(size=(2, dim))
    vec = np.zeros((n, dim), dtype=np.float32)
    for idx in range(1, n):
        half = int(int(planted.items.id(idx)[1:]) >= 20)
        vec[idx] = halves[half] + 0.5 * rng.normal(size=dim)
    vec[1:] /= np.linalg.norm(vec[1:], axis=1, keepdims=True)
    return dataclasses.replace(side, text_vectors=vec)


@pytest.fixture(scope="module", params=sorted(TINY))
def trained(request, planted):
    """A model fit without any event of ``NEW``, with the half-0 / half-1 indices."""
    split = leave_one_out(planted.interactions)
    new = planted.items.index(NEW)
    train = split.train.take(np.flatnonzero(split.train.item_idx != new))
    model = build_model(request.param, TINY[request.param])
    model.fit(train, side=side_with_text(planted))
    ids = [planted.items.id(i) for i in range(1, planted.items.size)]
    first = np.array([i + 1 for i, s in enumerate(ids) if int(s[1:]) < 20])
    second = np.array([i + 1 for i, s in enumerate(ids) if int(s[1:]) >= 20])
    return model, train, new, first, second


def test_a_user_gets_titles_of_their_half(trained):
    model, train, _, first, second = trained
    for half in (first, second):
        history = half[3:8]
        scores = model.score([UserContext.anonymous(history)])[0]
        scores[history] = -np.inf
        top = np.argsort(-scores)[:5]
        assert set(top.tolist()) <= set(half.tolist()), (model.name, top, half)


def test_a_title_nobody_watched_scores_near_its_look_alikes(trained):
    model, train, new, first, second = trained
    assert new not in set(train.item_idx.tolist())
    history = first[first != new][:6]
    scores = model.score([UserContext.anonymous(history)])[0]
    assert np.isfinite(scores[new])
    # from content alone it outranks every title of the other half
    assert scores[new] > scores[second].max(), (model.name, scores[new], scores[second].max())


def test_save_load_keeps_every_score(trained, tmp_path):
    model, train, new, first, _ = trained
    model.save(tmp_path / "m")
    loaded = get_model_class(model.name).load(tmp_path / "m")
    ctx = train.contexts()[:6] + [UserContext.anonymous([int(first[0]), new])]
    np.testing.assert_array_equal(model.score(ctx), loaded.score(ctx))


def test_contrastive_item_vectors_put_the_new_title_among_its_half(trained):
    model, _, new, first, second = trained
    if model.name != "contrastive":
        pytest.skip("item_vectors is the contrastive model's")
    z = model.item_vectors()
    assert z.shape[0] == len(first) + len(second) + 1 and not z[0].any()
    np.testing.assert_allclose(np.linalg.norm(z[1:], axis=1), 1.0, rtol=1e-5)
    sim = z @ z[new]
    assert sim[first[first != new]].mean() > sim[second].mean() + 0.2


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("multimodal", {"use_text": False}),
        ("multimodal", {"cross_attention": False}),
        ("multimodal", {"checkpointing": True, "meta_layers": 0}),
        ("contrastive", {"hard_negatives": False}),
        ("contrastive", {"cowatch": 0.0, "use_text": False}),
        ("contrastive", {"next_title": 1.0, "history_len": 8, "negatives": 16}),
    ],
)
def test_ablation_flags_train(planted, name, flags):
    split = leave_one_out(planted.interactions)
    model = build_model(name, {**TINY[name], "epochs": 2, **flags})
    report = model.fit(split.train, side=side_with_text(planted))
    scores = model.score(split.train.contexts()[:3])
    assert np.isfinite(scores[:, 1:]).all() and report.epochs == 2


def test_multimodal_checkpointing_gives_the_same_gradients(planted):
    import torch

    split = leave_one_out(planted.interactions)
    side = side_with_text(planted)
    grads = []
    for flag in (False, True):
        model = build_model(
            "multimodal", {**TINY["multimodal"], "epochs": 1, "checkpointing": flag}
        )
        model.fit(split.train, side=side)
        net = model.net
        net.train()
        torch.manual_seed(0)
        net.zero_grad()
        net.item_encoder().sum().backward()
        grads.append(net.item_encoder.out[1].weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_item_tokens_take_people_from_the_graph_and_temporal_slots(planted):
    tokens = item_tokens(SideData.of(planted), planted.items.size)
    # planted catalog has no crew column: directors come from the graph's directed_by
    assert (tokens.crew[1:] > 0).all() and not tokens.crew[0].any()
    assert (tokens.genres[1:, 0] > 0).all()
    assert tokens.temporal.shape == (planted.items.size, 5)


def test_cowatch_pairs_stay_within_a_user(planted):
    split = leave_one_out(planted.interactions)
    a, b = cowatch_pairs(split.train)
    # every planted user walks a chain of their half: consecutive titles are adjacent
    assert len(a) and (np.abs(a - b) == 1).all()


def test_multimodal_without_the_graph_reads_the_catalog_alone(planted, monkeypatch):
    """``use_kg=false`` (the ablation): no cast or crew taken from the graph, and the
    texts re-encoded without the graph's facts."""
    asked: list[list[str]] = []

    def fake_encoder(texts, **_):
        asked.append(list(texts))
        v = np.random.default_rng(0).normal(size=(len(texts), 8)).astype(np.float32)
        v[[i for i, t in enumerate(texts) if not t]] = 0.0
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    monkeypatch.setattr("primetime.data.text.encode_texts", fake_encoder)
    split = leave_one_out(planted.interactions)
    fits = {}
    for flag in (True, False):
        model = build_model("multimodal", {**TINY["multimodal"], "epochs": 1, "use_kg": flag})
        model.fit(split.train, side=side_with_text(planted))
        fits[flag] = model.net.item_encoder
    catalog_only = SideData.build(catalog=planted.catalog).item_texts
    assert asked == [list(catalog_only)]  # only the ablation encodes, and not the facts
    assert list(catalog_only) != list(SideData.of(planted).item_texts)
    assert fits[True].tok_crew.any()  # the planted graph's directors
    assert not fits[False].tok_crew.any()
    assert fits[False].text.shape[1] == 8  # the re-encoded texts, not the given vectors
