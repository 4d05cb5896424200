"""Served = evaluated: for the same history, the list the evaluator scores as
``served-<model>`` (``primetime benchmark --pipeline``) is the list ``GET
/recommendations`` returns, title for title, in order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient

from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.eval.evalset import EvalSet
from primetime.eval.topn import evaluate
from primetime.lifecycle import build_model
from primetime.pipeline.blend import SERVED_BLEND, BlendWeights
from primetime.pipeline.pipeline import RecPipeline
from primetime.registry import ModelRegistry
from primetime.served_study import served_model
from primetime.service.app import create_app
from primetime.service.routes import recs as recs_route
from primetime.service.settings import Settings


@pytest.fixture(scope="module")
def registry(planted, tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    reg = ModelRegistry(tmp_path_factory.mktemp("registry"))
    m = build_model("itemknn")
    m.fit(leave_one_out(planted.interactions).train, side=SideData.build(catalog=planted.catalog))
    reg.register(m, metrics={"NDCG@10": 0.1}, dataset=planted)
    reg.promote("itemknn", "v1")
    return reg


@pytest.fixture
def client(db_url: str, registry: ModelRegistry, planted) -> Iterator[TestClient]:
    settings = Settings(
        environment="test",
        database_url=db_url,
        registry_dir=registry.root,
        models=["itemknn"],
        admin_token="test-admin-token",
        rate_limit_per_minute=0,
    )
    with TestClient(create_app(settings, dataset=planted, registry=registry)) as c:
        yield c


def _api_list(c: TestClient, name: str, events: list[dict], now: float) -> list[str]:
    r = c.post("/api/v1/auth/signup", json={"username": name, "password": "pass-word-1"})
    assert r.status_code == 201, r.text
    c.cookies.clear()
    h = {"Authorization": f"Bearer {r.json()['token']}"}
    posted = c.post("/api/v1/events", headers=h, json={"events": events})
    assert posted.status_code == 201, posted.text
    got = c.get("/api/v1/recommendations", headers=h, params={"k": 10})
    assert got.status_code == 200, got.text
    return [x["item_id"] for x in got.json()["items"]]


def test_the_evaluators_list_is_the_apis_list(
    client: TestClient, registry: ModelRegistry, planted, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the benchmark's pipeline, built the way the service builds its own on its log
    base = RecPipeline.build(None, planted.catalog, planted.interactions, users=planted.users)
    model = registry.load("itemknn", "v1")
    served = served_model(model, base, k=20)
    assert served.pipeline.weights == BlendWeights()  # the default, which the service serves
    test = EvalSet.for_test(leave_one_out(planted.interactions))
    result = evaluate(served, test, ks=(10, 20))  # lists of 20: @10 is their first 10
    assert result.topk is not None
    ids = planted.items.ids()
    other = served_model(model, base, k=10, weights=BlendWeights.only("popularity"))
    differs = 0
    # users of both taste groups: group 0 rates 1-3 (ratings < 3 are dislikes), group 1 3-5
    for i in range(8):
        ctx = test.context(i)
        events = [
            {"item_id": ids[j - 1], "event_type": "rate", "rating": float(r), "ts": float(t)}
            for j, t, r in zip(ctx.history, ctx.timestamps, ctx.ratings, strict=True)
        ]
        assert ctx.now is not None
        # the request is made at the moment of the held-out event, as the evaluator asks
        monkeypatch.setattr(recs_route, "time", SimpleNamespace(time=lambda n=ctx.now: float(n)))
        api = _api_list(client, f"user{i}", events, ctx.now)
        evaluated = [ids[j - 1] for j in result.topk[i, :10] if j > 0]
        assert len(api) == 10
        assert api == evaluated, f"user {i}"
        # the comparison can fail: another blend gives another list for most users
        alt = [ids[s.item_idx - 1] for s in other.lists([ctx])[0]]
        differs += alt != api
    assert differs >= 4
    # the evaluator's HR@10 is computed on exactly these lists
    hit = [bool(np.isin(test.relevant(i), result.topk[i, :10]).any()) for i in range(len(test))]
    assert result.per_user["HR@10"].tolist() == [float(h) for h in hit]


def test_served_models_sharing_replayed_users_serve_the_same_lists(
    registry: ModelRegistry, planted
) -> None:
    """A blend grid replays each user's events once (``replayed``) for all its points:
    the lists are those of served models that replay them each time."""
    base = RecPipeline.build(None, planted.catalog, planted.interactions, users=planted.users)
    model = registry.load("itemknn", "v1")
    test = EvalSet.for_test(leave_one_out(planted.interactions))
    ctxs = [test.context(i) for i in range(8)]
    replayed: dict = {}
    lists = []
    for w in (BlendWeights(), BlendWeights.only("popularity")):
        shared = served_model(model, base, k=10, weights=w, replayed=replayed)
        own = served_model(model, base, k=10, weights=w)
        lists.append(shared.lists(ctxs))
        assert lists[-1] == own.lists(ctxs)
        assert shared.lists(ctxs) == lists[-1]  # asked again: from the kept replays
    assert len(replayed) == len(ctxs)
    assert lists[0] != lists[1]  # the weights still change the lists


def test_the_blend_search_tries_the_model_alone_and_it_ranks_as_the_bare_model(planted) -> None:
    """``--blend-grid`` ends with the model alone through the served path (no blend
    component, no MMR), whose lists are the bare model's own top titles, so the search
    can pick "serve the model's order" when every blend costs NDCG on valid."""
    from primetime.lifecycle import DataSpec, Prepared
    from primetime.served_study import base_pipeline, tune_blend

    # users whose valid history (all but the last two events) reaches the cold-start
    # threshold: the model-alone point keeps the blend's cold-start ramp for new users
    inter = planted.interactions
    counts = np.bincount(inter.user_idx)
    keep = counts[inter.user_idx] >= BlendWeights().cold_start_threshold + 2
    sp = leave_one_out(inter.take(np.flatnonzero(keep)))
    assert sp.valid.user_idx.size >= 40
    prepared = Prepared(
        DataSpec(data="planted"),
        sp,
        SideData.build(catalog=planted.catalog, users=planted.users),
        name="planted",
        dataset=planted,
    )
    model = build_model("als")
    model.fit(sp.train, side=prepared.side)
    grid = {"popularity": (0.0, 0.3), "diversity": (0.3,)}
    chosen, trials, _ = tune_blend(model, prepared, grid=grid, mmr_grid=(0.3,))
    alone = BlendWeights(popularity=0, trending=0, diversity=0)
    assert [t.weights for t in trials].count(alone) == 1 and trials[-1].weights == alone
    assert trials[-1].eligible  # the bare model's order is at the diversity floor
    best = max(t.figures["NDCG@10"] for t in trials if t.eligible)
    assert [t.figures["NDCG@10"] for t in trials if t.weights == chosen] == [best]
    # measured a hair under the floor (tie-breaking), the model alone is still eligible,
    # also when the grid already held it
    import primetime.served_study as study
    from primetime.pipeline.served import ServedModel

    real = study.evaluate

    class _Lower:
        def __init__(self, result) -> None:
            self.result = result

        def summary(self) -> dict[str, float]:
            out = dict(self.result.summary())
            out["Diversity@10"] -= 1e-4
            return out

    def lowered(m, *args, **kwargs):
        res = real(m, *args, **kwargs)
        return _Lower(res) if isinstance(m, ServedModel) else res

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study, "evaluate", lowered)
        for g in ({"popularity": (0.0,)}, grid):
            again, tried, _ = tune_blend(model, prepared, grid=g, mmr_grid=(0.0,))
            assert [t.weights for t in tried].count(alone) == 1
            assert [t.eligible for t in tried if t.weights == alone] == [True]
        assert again in [t.weights for t in tried if t.eligible]
    # the model alone, served: each valid user's list is the model's top 10 (padding
    # and history out; tied scores in index order, as the served list breaks them)
    served = served_model(model, base_pipeline(prepared), k=10, weights=alone)
    valid = EvalSet.for_valid(sp)
    for i in range(len(valid)):
        ctx = valid.context(i)
        own = model.score([ctx])[0].astype(np.float64)
        own[0], own[ctx.history] = -np.inf, -np.inf
        got = served.score([ctx])[0]
        top = np.argsort(-own, kind="stable")[:10]
        assert list(np.argsort(-got, kind="stable")[:10]) == list(top), i
    # and blends do change lists (the check above can fail)
    popular = BlendWeights.only("popularity")
    blended = served_model(model, base_pipeline(prepared), k=10, weights=popular)
    ctxs = valid.contexts()
    assert any(
        list(np.argsort(-blended.score([c])[0], kind="stable")[:10])
        != list(np.argsort(-served.score([c])[0], kind="stable")[:10])
        for c in ctxs
    )


def test_a_version_is_served_with_the_blend_chosen_for_it(
    db_url: str,
    registry: ModelRegistry,
    planted,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A version whose ``meta.json`` names a blend (``served_blend``, chosen on valid by
    ``primetime train``) is served with it: the API's list is the evaluator's list
    under those weights, not under the default; ``model_blend=false`` serves the
    default; an unreadable entry falls back to the default; ``/admin/models`` says
    which blend each version gets."""
    reg = ModelRegistry(tmp_path_factory.mktemp("blend-registry"))
    model = registry.load("itemknn", "v1")
    chosen = BlendWeights(popularity=1.0, trending=0.0, diversity=0.3)
    reg.register(model, dataset=planted)  # v1: trained before blends were chosen
    reg.register(model, dataset=planted, extra={SERVED_BLEND: {"weights": asdict(chosen)}})
    reg.register(model, dataset=planted, extra={SERVED_BLEND: {"weights": {"diversity": 2}}})
    base = RecPipeline.build(None, planted.catalog, planted.interactions, users=planted.users)
    test = EvalSet.for_test(leave_one_out(planted.interactions))
    ids = planted.items.ids()
    lists = {}
    for key, w in (("chosen", chosen), ("default", BlendWeights())):
        result = evaluate(served_model(model, base, k=10, weights=w), test, ks=(10,))
        assert result.topk is not None
        lists[key] = [[ids[j - 1] for j in result.topk[i, :10] if j > 0] for i in range(6)]
    assert sum(a != b for a, b in zip(lists["chosen"], lists["default"], strict=True)) >= 3
    for version, model_blend, expect in (
        ("v2", True, "chosen"),
        ("v2", False, "default"),
        ("v3", True, "default"),
    ):
        reg.promote("itemknn", version)
        settings = Settings(
            environment="test",
            database_url=db_url,
            registry_dir=reg.root,
            models=["itemknn"],
            prefer=[],
            admin_token="test-admin-token",
            rate_limit_per_minute=0,
            model_blend=model_blend,
        )
        with TestClient(create_app(settings, dataset=planted, registry=reg)) as c:
            for i in range(6):
                ctx = test.context(i)
                events = [
                    {
                        "item_id": ids[j - 1],
                        "event_type": "rate",
                        "rating": float(r),
                        "ts": float(t),
                    }
                    for j, t, r in zip(ctx.history, ctx.timestamps, ctx.ratings, strict=True)
                ]
                assert ctx.now is not None
                monkeypatch.setattr(
                    recs_route, "time", SimpleNamespace(time=lambda n=ctx.now: float(n))
                )
                api = _api_list(c, f"b{version}{model_blend}{i}", events, ctx.now)
                assert api == lists[expect][i], (version, model_blend, i)
            listed = c.get("/api/v1/admin/models", headers={"X-Admin-Token": "test-admin-token"})
            assert listed.status_code == 200, listed.text
            source = {v["version"]: v["blend_source"] for v in listed.json()}
            want_v2 = "valid" if model_blend else "default"
            assert source == {"v1": "default", "v2": want_v2, "v3": "default"}
            blend = {v["version"]: v["blend"] for v in listed.json()}
            assert blend["v2"] == asdict(chosen if model_blend else BlendWeights())
