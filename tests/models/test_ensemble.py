"""The learned fusion (``ensemble``): it learns which member to trust, its bundle names
its members by registry key, and its scores stay a full vector."""

from __future__ import annotations

import dataclasses
import json

import lightgbm as lgb
import numpy as np
import pytest

from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.eval.protocol import EvalSet, evaluate
from primetime.eval.validation import ndcg_at_10
from primetime.lifecycle import build_model
from primetime.models.base import FitOptions, FitReport, PriorFit, top_k
from primetime.models.ensemble import (
    Candidates,
    EnsembleConfig,
    EnsembleRecommender,
    TitleStats,
    _consensus_features,
    _ranks_at,
    _top,
    _unseen_scores,
    candidates_and_features,
    earlier_cut,
    fused_scores,
    learn_ranker,
    member_model,
    merge_boosters,
)
from primetime.models.ensemble_reference import (
    full_ranks,
    reference_candidates,
    reference_score,
)
from primetime.models.sasrec import SASRecRecommender
from primetime.registry import ModelRegistry
from primetime.types import UserContext

MEMBERS = {"members": "itemknn,random"}  # one member that knows the chains, one noise


@pytest.fixture(scope="module")
def chains(make_planted):
    """Users walking chains (item i is followed by i + 1 of their half), split by time."""
    ds = make_planted(n_users=240, n_items=60, seed=3)
    return ds, leave_one_out(ds.interactions)


@pytest.fixture(scope="module")
def fused(chains):
    ds, split = chains
    model = build_model("ensemble", MEMBERS)
    report = model.fit(
        split.train,
        valid=split.valid,
        side=SideData.of(ds),
        options=FitOptions(validation=ndcg_at_10, threads=1),
    )
    return model, report


def _test_ndcg(model, split) -> float:
    return float(evaluate(model, EvalSet.for_test(split), ks=(10,)).summary()["NDCG@10"])


def test_fusion_trusts_the_informative_member(chains, fused):
    _, split = chains
    model, report = fused
    knn, noise = model.fitted["itemknn"], model.fitted["random"]
    ens, good, bad = _test_ndcg(model, split), _test_ndcg(knn, split), _test_ndcg(noise, split)
    assert good > bad + 0.2, (good, bad)  # the planted world: one member is right
    assert ens > bad + 0.2, (ens, bad)
    assert ens >= 0.9 * good, (ens, good)
    gain = report.notes["feature_gain_share"]
    assert gain["itemknn_z"] + gain["itemknn_log_rank"] > gain["random_z"] + gain["random_log_rank"]
    # cut_events (3) per user, a user keeping at least 2 events
    counts = np.bincount(split.train.user_idx)
    counts = counts[counts > 0]
    held = np.clip(counts - 2, 0, model.config.cut_events)
    assert report.notes["held_out_events"] == int(held.sum()) > len(counts)


def test_registered_bundle_names_its_members(chains, fused, tmp_path):
    _, split = chains
    model, _ = fused
    registry = ModelRegistry(tmp_path)
    mv = registry.register(model, notes="test", extra={"valid_metrics": {"valid NDCG@10": 0.5}})
    info = json.loads((mv.path / "bundle.json").read_text())
    assert info["members"] == {"itemknn": "itemknn:v1", "random": "random:v1"}
    member = registry.get("itemknn", 1).meta
    assert member["member_of"] == "ensemble" and "valid_metrics" not in member
    loaded = registry.load("ensemble", mv.version)
    assert loaded.members == info["members"]
    ctx = split.train.contexts()[:12] + [UserContext.anonymous([3, 4])]
    np.testing.assert_array_equal(model.score(ctx), loaded.score(ctx))
    again = registry.register(loaded)  # members already here: not registered twice
    assert [v.version for v in registry.versions("itemknn")] == ["v1"]
    assert json.loads((again.path / "bundle.json").read_text())["members"] == info["members"]


def test_plain_save_refused_and_unbound_load_named(fused, tmp_path):
    model = build_model("ensemble", MEMBERS)
    fitted, _ = fused
    model.items, model.booster, model.stats = fitted.items, fitted.booster, fitted.stats
    model.fitted = dict(fitted.fitted)
    with pytest.raises(ValueError, match="register the ensemble"):
        model.save(tmp_path / "e")
    mv = ModelRegistry(tmp_path / "reg").register(model)
    bare = EnsembleRecommender.load(mv.path)  # without the registry: members unresolved
    with pytest.raises(RuntimeError, match="ModelRegistry.load"):
        bare.score([UserContext.anonymous([1, 2])])


class _Spy:
    """A member that remembers the contexts it was asked about."""

    def __init__(self, inner) -> None:
        self.inner, self.asked = inner, []

    def score(self, contexts):
        self.asked.extend(contexts)
        return self.inner.score(contexts)


def test_fusion_queries_ask_members_at_the_held_out_time(chains, fused):
    """The ranker learns from members asked at the held-out event's time, as evaluation
    and the service ask them (``temporal`` scores by the gap since the last event)."""
    ds, split = chains
    model, _ = fused
    cut = leave_one_out(split.train)
    history = Interactions.concat([cut.train, cut.valid])
    spy = _Spy(model.fitted["itemknn"])
    members = {"itemknn": spy, "random": model.fitted["random"]}
    stats = TitleStats.of(history, SideData.of(ds), model.config.half_life_days)
    model._queries(members, stats, history, [cut.test])
    when = dict(zip(cut.test.user_idx.tolist(), cut.test.timestamp.tolist(), strict=True))
    assert len(spy.asked) == len(when)
    assert all(c.now == when[c.user_idx] for c in spy.asked)
    assert any(c.now > c.timestamps[-1] for c in spy.asked)  # not the last event's time


def test_an_earlier_cut_of_several_events_gives_one_query_per_event(chains, fused):
    """``cut_events=3``: each user's last 3 train events are held out, oldest first, one
    round each (a user keeps 2 events: fewer rounds for short histories); a later
    round's history holds the earlier rounds' targets (what the user did next), and
    each is asked at its own target's time."""
    ds, split = chains
    model, _ = fused
    train = split.train
    rest, rounds = earlier_cut(train, 3)
    assert len(rounds) == 3 and len(rest) + sum(len(r) for r in rounds) == len(train)
    kept = np.bincount(rest.user_idx, minlength=train.users.size)
    assert kept[np.unique(rounds[0].user_idx)].min() >= 2
    t = [dict(zip(r.user_idx.tolist(), r.timestamp.tolist(), strict=True)) for r in rounds]
    for u in t[0]:  # each user's rounds in time order, all after their kept events
        last_kept = rest.timestamp[rest.user_idx == u].max()
        assert last_kept <= t[0][u] <= t[1][u] <= t[2][u]
    _, one = earlier_cut(train, 1)  # n = 1 is leave-one-out's last event
    cut = leave_one_out(train)
    assert len(one) == 1 and np.array_equal(one[0].item_idx, cut.test.item_idx)
    spy = _Spy(model.fitted["itemknn"])
    stats = TitleStats.of(rest, SideData.of(ds), model.config.half_life_days)
    model._queries({"itemknn": spy, "random": model.fitted["random"]}, stats, rest, rounds[:2])
    assert len(spy.asked) == len(t[0]) + len(t[1])
    second = spy.asked[len(t[0]) :]
    item = dict(zip(rounds[0].user_idx.tolist(), rounds[0].item_idx.tolist(), strict=True))
    assert all(c.now == t[1][c.user_idx] for c in second)
    assert all(c.history[-1] == item[c.user_idx] for c in second if c.user_idx in item)
    assert sum(c.user_idx in item for c in second) >= len(second) // 2


def test_scores_are_a_full_vector_with_candidates_on_top(chains, fused):
    _, split = chains
    model, _ = fused
    ctx = split.train.contexts()[:5]
    s = model.score(ctx)
    assert s.shape == (5, split.items.size) and np.isfinite(s[:, 1:]).all()
    for b, c in enumerate(ctx):  # seen titles are never candidates: they sit below them
        unseen = np.setdiff1d(np.arange(1, split.items.size), c.history)
        assert s[b, c.history].max() < s[b, unseen].max()


def test_fused_scores_put_non_candidates_below_in_fallback_order():
    cands = Candidates(
        rows=np.array([0, 0]),
        cols=np.array([2, 3]),
        features=np.zeros((2, 1), np.float32),
        fallback=np.array([[0.0, 0.5, 0.0, 0.0, -1.5, -np.inf]]),  # 1, then 4, then 5
    )
    s = fused_scores(cands, np.array([0.3, -0.2]), (1, 6))
    assert s[0, 0] == -np.inf
    assert s[0, 2] == pytest.approx(0.3) and s[0, 3] == pytest.approx(-0.2)
    assert -2.2 < s[0, 5] < s[0, 4] < s[0, 1] < -1.2  # below the lowest candidate, finite


def _rows(rng: np.random.Generator, b: int, v: int) -> list[np.ndarray]:
    """(B, V) float32 member-like scores: continuous, few and many tied values (counts),
    mostly zeros with -0.0 among them, and half -inf; padding and some titles -inf."""
    normal = rng.standard_normal((b, v)).astype(np.float32)
    sparse = np.where(rng.random((b, v)) < 0.9, 0.0, normal).astype(np.float32)
    sparse[0, 1:6] = -0.0
    rows = [
        normal,
        rng.integers(0, 5, (b, v)).astype(np.float32),
        rng.integers(0, 400, (b, v)).astype(np.float32),  # > TIE_VALUES_LOOP tied values
        sparse,
        np.where(rng.random((b, v)) < 0.5, -np.inf, normal).astype(np.float32),
    ]
    for s in rows:
        s[:, 0] = -np.inf
        s[:, rng.integers(1, v, 10)] = -np.inf  # a history
    return rows


@pytest.mark.parametrize(("v", "top"), [(400, 20), (3000, 100), (60, 100)])
def test_partition_and_counting_equal_full_ranking(v, top):
    rng = np.random.default_rng(v)
    for s in _rows(rng, 3, v):
        full = full_ranks(s)
        rows, cols = np.nonzero(np.ones_like(s, dtype=bool))
        np.testing.assert_array_equal(_ranks_at(s, rows, cols), full[rows, cols])
        np.testing.assert_array_equal(_top(s, top), (full < top) & np.isfinite(s))
    ctx = [UserContext.anonymous(rng.integers(1, v, n)) for n in (0, 5, 30)]
    stats = TitleStats(
        *(rng.random(v).astype(np.float32) for _ in range(2)),
        genres=rng.random((v, 4)).astype(np.float32),
        year=rng.random(v).astype(np.float32),
        age_days=rng.random(v).astype(np.float32),
        kind=rng.random(v).astype(np.float32),
    )
    members = _rows(rng, 3, v)
    for consensus in (False, True):
        fast = candidates_and_features(members, ctx, stats, top, consensus)
        ref = reference_candidates(members, ctx, stats, top, consensus)
        np.testing.assert_array_equal(fast.rows, ref.rows)
        np.testing.assert_array_equal(fast.cols, ref.cols)
        np.testing.assert_array_equal(fast.features, ref.features)  # exact, not close
    assert fast.features.shape[1] == 2 * len(members) + 2 + 9  # z, log rank; consensus


def test_consensus_is_the_mean_z_and_reciprocal_rank_fusion():
    """Two members, three candidates: the second member cannot score the last title."""
    z1, z2 = np.array([1.0, 0.0, -1.0]), np.array([3.0, 1.0, np.nan])
    r1, r2 = np.array([0, 4, 9]), np.array([2, 0, 7])
    mean_z, rrf = _consensus_features([z1, np.log1p(r1), z2, np.log1p(r2)])
    np.testing.assert_allclose(mean_z, [2.0, 0.5, -1.0])
    np.testing.assert_allclose(rrf, [1 / 61 + 1 / 63, 1 / 65 + 1 / 61, 1 / 70 + 1 / 68])


def test_fast_path_scores_candidates_as_the_full_ranking_path(chains, fused):
    _, split = chains
    fitted, _ = fused
    for top in (3, 10):  # of 60 titles: the partition, not "every title", picks them
        model = EnsembleRecommender(dataclasses.replace(fitted.config, candidates=top))
        model.items, model.booster, model.stats = fitted.items, fitted.booster, fitted.stats
        model.fitted = dict(fitted.fitted)
        ctx = split.train.contexts()[:40] + [UserContext.anonymous([3, 4])]
        fast, old = model.score(ctx), reference_score(model, ctx)
        scores = [_unseen_scores(m, ctx) for m in model.fitted.values()]
        cands = candidates_and_features(scores, ctx, model.stats, top)
        assert len(cands.rows) < len(ctx) * (split.items.size - 1) / 2
        np.testing.assert_array_equal(fast[cands.rows, cands.cols], old[cands.rows, cands.cols])
        np.testing.assert_array_equal(top_k(fast, top)[0], top_k(old, top)[0])
        assert np.isfinite(fast[:, 1:]).all()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"members": "itemknn,itemknn"}, "named twice"),
        ({"members": "ensemble"}, "own member"),
        ({"members": ""}, "at least one"),
        ({"member_settings": "epochs=2"}, "MEMBER.OPTION"),
        ({"member_settings": "gru4rec.epochs=2"}, "not among members"),
        ({"candidates": 0}, "candidates"),
        ({"bags": 0}, "bags"),
        ({"objective": "regression"}, "objective must be one of"),
        ({"members": "itemknn,itemknn@1"}, "NAME@N"),
        ({"members": "itemknn,itemknn@two"}, "NAME@N"),
        ({"members": "@2"}, "NAME@N"),
    ],
)
def test_config_errors_name_the_option(options, match):
    with pytest.raises(ValueError, match=match):
        EnsembleConfig(**options)


def test_default_members_are_registered_topn_models():
    """The default members (chosen on valid, ``benchmarks/bench_fusion.py``) must each
    build, rank titles and be fit once per cut: a renamed model fails here, not an
    hour into ``primetime train ensemble``."""
    cfg = EnsembleConfig()
    ens = EnsembleRecommender(cfg)
    built = [ens._build_member(n) for n in cfg.member_names()]
    assert [m.name for m in built] == cfg.member_names()
    assert all(m.task == "topn" for m in built)


def test_member_settings_reach_the_members():
    cfg = EnsembleConfig(members="als,popularity", member_settings="als.factors=8,als.alpha=2.5")
    assert cfg.settings() == {"als": {"factors": 8, "alpha": 2.5}}
    assert EnsembleRecommender(cfg)._build_member("als").config.factors == 8


def test_refit_pins_the_trees_and_members_valid_chose(fused):
    model, report = fused
    assert model.refit_overrides(report) == {"member_settings": "", "trees": report.notes["trees"]}
    ens = EnsembleRecommender(
        EnsembleConfig(members="sasrec,itemknn", member_settings="sasrec.dim=16")
    )
    ens.fitted = {"sasrec": SASRecRecommender(), "itemknn": build_model("itemknn")}
    ens._member_reports = {"sasrec": FitReport(best_epoch=7), "itemknn": FitReport()}
    pinned = ens.refit_overrides(FitReport(notes={"trees": 12}))
    assert pinned == {"member_settings": "sasrec.dim=16,sasrec.epochs=7", "trees": 12}
    assert EnsembleConfig(members="sasrec,itemknn", **pinned).settings()["sasrec"]["epochs"] == 7


def test_a_final_member_fit_with_the_same_settings_is_bound_not_fit_again(chains):
    """``FitOptions.prior``: the staged suite hands the ensemble its earlier stages' fits;
    one made with the settings the ensemble would build is bound, another is fit anew."""
    ds, split = chains
    side = SideData.of(ds)
    knn = build_model("itemknn")
    knn_report = knn.fit(split.train, side=side)
    other = build_model("random", {"seed": 99})  # not the ensemble's own random member
    prior = {
        "itemknn": PriorFit(knn, knn_report),
        "random": PriorFit(other, other.fit(split.train, side=side)),
    }
    model = build_model("ensemble", MEMBERS)
    report = model.fit(
        split.train,
        valid=split.valid,
        side=side,
        options=FitOptions(validation=ndcg_at_10, threads=1, prior=prior),
    )
    assert model.fitted["itemknn"] is knn
    assert model.fitted["random"] is not other
    assert report.notes["final_members_bound"] == ["itemknn"]
    assert report.notes["member_fit_seconds"]["final"]["itemknn"] == 0.0


def test_the_refit_keeps_the_measured_ranker_unless_told_to_learn_it_again(chains, fused):
    """``FitOptions.previous``: the refit on the whole log keeps the selection fit's
    ranker (the one whose test figure was measured) and refits only the members; with
    ``refit_ranker`` it learns the ranker again on the longer log's earlier cut."""
    ds, split = chains
    selected, _ = fused
    whole = Interactions.concat([split.train, split.valid, split.test])
    opts = FitOptions(threads=1, select=False, previous=selected)
    kept = build_model("ensemble", MEMBERS)
    report = kept.fit(whole, side=SideData.of(ds), options=opts)
    assert kept.booster.model_to_string() == selected.booster.model_to_string()
    assert report.notes["ranker"].startswith("kept") and "held_out_events" not in report.notes
    assert kept.fitted["itemknn"] is not selected.fitted["itemknn"]  # members refit
    ctx = whole.contexts()[:8]
    assert np.isfinite(kept.score(ctx)[:, 1:]).all()

    again = build_model("ensemble", {**MEMBERS, "refit_ranker": True})
    report = again.fit(whole, side=SideData.of(ds), options=opts)
    assert report.notes["held_out_events"] > 0  # the earlier cut of the whole log
    assert again.booster.model_to_string() != selected.booster.model_to_string()

    wrong = build_model("ensemble", {"members": "itemknn,popularity"})
    with pytest.raises(ValueError, match="selection fit's members"):
        wrong.fit(whole, side=SideData.of(ds), options=opts)


def test_another_seed_of_a_member_is_its_own_role():
    """``NAME@N``: the N-th instance of a model with a seed, fit with seed + N - 1; its
    settings are its own; a model without a seed refuses it."""
    assert member_model("temporal@2") == ("temporal", 2)
    assert member_model("itemknn") == ("itemknn", 1)
    cfg = EnsembleConfig(members="random,random@3", member_settings="random@3.seed=10")
    ens = EnsembleRecommender(cfg)
    first, third = (ens._build_member(r) for r in cfg.member_names())
    assert first.name == third.name == "random"
    assert first.config.seed == build_model("random").config.seed
    assert third.config.seed == 12  # its own setting, then + 2
    with pytest.raises(ValueError, match="'itemknn@2' names another seed of 'itemknn'"):
        EnsembleRecommender(EnsembleConfig(members="itemknn,itemknn@2"))._build_member("itemknn@2")


def test_two_seeds_of_a_member_register_and_load_as_two_roles(chains, tmp_path):
    ds, split = chains
    model = build_model("ensemble", {"members": "itemknn,random,random@2", "trees": 5})
    model.fit(split.train, side=SideData.of(ds), options=FitOptions(threads=1))
    first, second = model.fitted["random"], model.fitted["random@2"]
    ctx = split.train.contexts()[:12]
    assert not np.array_equal(first.score(ctx), second.score(ctx))  # two seeds, two members
    assert {"random_z", "random@2_z"} <= set(model.feature_names())
    registry = ModelRegistry(tmp_path)
    mv = registry.register(model)
    info = json.loads((mv.path / "bundle.json").read_text())
    assert info["members"] == {
        "itemknn": "itemknn:v1",
        "random": "random:v1",
        "random@2": "random:v2",
    }
    loaded = registry.load("ensemble", mv.version)
    np.testing.assert_array_equal(model.score(ctx), loaded.score(ctx))
    with pytest.raises(ValueError, match="'random@2' is a 'itemknn' model"):
        loaded.bind_members({**loaded.fitted, "random@2": loaded.fitted["itemknn"]})


def _fits(model: EnsembleRecommender, monkeypatch) -> list[tuple[str, int]]:
    """Record each ``_fit_members`` call of ``model``: its tag and the events fit on."""
    calls: list[tuple[str, int]] = []
    real = model._fit_members

    def spy(train, valid, side, options, tag):
        calls.append((tag, len(train)))
        return real(train, valid, side, options, tag)

    monkeypatch.setattr(model, "_fit_members", spy)
    return calls


def test_without_refit_the_members_the_ranker_learned_from_are_served(chains, monkeypatch):
    """``refit_members=false``: each member is fit once, on the earlier cut, and those
    fits are served; a prior fit on all of train is not bound; the refit on the whole
    log fits the members on that log's earlier cut and keeps the ranker."""
    ds, split = chains
    side = SideData.of(ds)
    knn = build_model("itemknn")
    prior = {"itemknn": PriorFit(knn, knn.fit(split.train, side=side))}
    opts = {**MEMBERS, "refit_members": False}
    model = build_model("ensemble", opts)
    calls = _fits(model, monkeypatch)
    report = model.fit(
        split.train,
        valid=split.valid,
        side=side,
        options=FitOptions(validation=ndcg_at_10, threads=1, prior=prior),
    )
    cut, _ = earlier_cut(split.train, 3)
    assert calls == [("cut", len(cut))]
    assert model.fitted["itemknn"] is not knn and report.notes["final_members_bound"] == []
    assert np.isfinite(model.score(split.train.contexts()[:8])[:, 1:]).all()

    whole = Interactions.concat([split.train, split.valid, split.test])
    again = build_model("ensemble", opts)
    calls = _fits(again, monkeypatch)
    again.fit(whole, side=side, options=FitOptions(threads=1, select=False, previous=model))
    assert calls == [("final", len(earlier_cut(whole, 3)[0]))]
    assert again.booster.model_to_string() == model.booster.model_to_string()


def test_merged_boosters_predict_their_sum_in_one_model():
    rng = np.random.default_rng(0)
    x = rng.random((3000, 3))
    data = lgb.Dataset(x, label=rng.random(3000) < 0.1, group=[50] * 60)
    params = {"objective": "lambdarank", "num_leaves": 5, "verbosity": -1}
    params |= {"bagging_fraction": 0.8, "bagging_freq": 1}
    boosters = [lgb.train({**params, "seed": s}, data, num_boost_round=3 + s) for s in range(3)]
    texts = [b.model_to_string() for b in boosters]
    assert merge_boosters(texts[:1]) == texts[0]  # the format, byte for byte
    merged = lgb.Booster(model_str=merge_boosters(texts))
    assert merged.num_trees() == 3 + 4 + 5
    np.testing.assert_allclose(merged.predict(x), sum(b.predict(x) for b in boosters), atol=1e-12)
    with pytest.raises(ValueError, match="without trees"):
        merge_boosters(["tree\nversion=v4\n"])


def test_each_bag_is_its_own_booster_stopped_on_valid_on_its_own():
    rng = np.random.default_rng(1)
    x = rng.random((4000, 3))
    y = (x[:, 0] + 0.5 * rng.random(4000) > 1.2).astype(int)  # feature 0 ranks
    train = lgb.Dataset(x[:3000], label=y[:3000], group=[50] * 60, free_raw_data=False)
    valid = lgb.Dataset(x[3000:], label=y[3000:], group=[50] * 20, reference=train)
    cfg = EnsembleConfig(bags=3, trees=40, min_child=20, stop_after=5)
    texts, trees, curves = learn_ranker(cfg, train, valid, threads=1)
    assert len(set(texts)) == 3  # a seed and a sample each
    assert [lgb.Booster(model_str=t).num_trees() for t in texts] == trees
    assert all(1 <= t <= 40 for t in trees) and all(0 < c <= 1 for c in curves)
    single, _, _ = learn_ranker(dataclasses.replace(cfg, bags=1), train, None, threads=1)
    assert lgb.Booster(model_str=single[0]).num_trees() == 40  # nothing to stop it


@pytest.mark.parametrize("objective", ["rank_xendcg", "binary"])
def test_a_bagged_ranker_is_one_booster_of_every_bags_trees(chains, tmp_path, objective):
    """``bags``: several boosters, each on its own sample and early-stopped on valid on
    its own, merged into the one booster the bundle stores. Any objective ranks."""
    ds, split = chains
    model = build_model("ensemble", {**MEMBERS, "bags": 3, "objective": objective})
    report = model.fit(
        split.train,
        valid=split.valid,
        side=SideData.of(ds),
        options=FitOptions(validation=ndcg_at_10, threads=1),
    )
    assert len(report.notes["trees_per_bag"]) == 3
    assert model.booster.num_trees() == sum(report.notes["trees_per_bag"])
    ctx = split.train.contexts()[:12]
    registry = ModelRegistry(tmp_path)
    loaded = registry.load("ensemble", registry.register(model).version)
    np.testing.assert_array_equal(model.score(ctx), loaded.score(ctx))
    assert _test_ndcg(model, split) > _test_ndcg(model.fitted["random"], split)
