"""Request-time terms of the content head (:mod:`primetime.models.titlecontext`): the
terms say what they should of planted release days and links; the weights learn which
terms find the next title; through the graph model a new title not out at the request
ranks below one that is, and the terms survive save, load and added titles; the
``genre-released`` reference drops titles released after the request."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
import torch

from primetime.data import Dataset
from primetime.data.graph import KnowledgeGraph
from primetime.data.side import SideData
from primetime.data.splits import leave_one_out
from primetime.data.vocab import Vocabulary
from primetime.models import titlecontext
from primetime.models.gnn import GNNConfig, GNNRecommender
from primetime.models.reference import GenreReleasedRecommender
from primetime.models.titlecontext import (
    TermsConfig,
    TitleFacts,
    fit_weights,
    new_entity_links,
    new_title_pairs,
    unpack,
)
from primetime.types import UserContext

DAY = 86400


def facts() -> TitleFacts:
    """Titles 1..6: 1-3 one show's seasons (1 -> 2 -> 3, network n1), 4 on network n1,
    5 and 6 movies sharing director d; release days 0, 100, 200, 300, 400, NaN."""
    return TitleFacts(
        release_day=np.array([np.nan, 0, 100, 200, 300, 400, np.nan]),
        item=np.array([1, 2, 3, 4, 5, 6]),
        entity=np.array([1, 1, 1, 1, 2, 2]),
        relation=np.array([0, 0, 0, 0, 1, 1]),
        relations=["network", "director"],
        pair_a=np.array([1, 2]),
        pair_b=np.array([2, 3]),
        pair_relation=np.array([0, 0]),
        pair_relations=["next_season"],
    )


def test_terms_of_planted_days_and_links():
    f = facts()
    names = f.names()
    assert names == [
        "later",
        "age<30d",
        "age<90d",
        "age<365d",
        "shared:network",
        "shared:director",
        "after:next_season",
        "before:next_season",
    ]
    titles = np.arange(1, 7)
    t = f.features([np.array([1, 1, 5])], np.array([210.0 * DAY]), titles)[0]  # (6, F)
    col = {n: k for k, n in enumerate(names)}
    np.testing.assert_array_equal(t[:, col["later"]], [0, 0, 0, 1, 1, 0])  # 6: unknown day
    np.testing.assert_array_equal(t[:, col["age<30d"]], [0, 0, 1, 0, 0, 0])  # day 200: 10 d
    np.testing.assert_array_equal(t[:, col["age<90d"]], 0)
    np.testing.assert_array_equal(t[:, col["age<365d"]], [1, 1, 0, 0, 0, 0])  # 210 d, 110 d
    # history 1 (repeated: counts once) and 5: network n1 shared with 1-4, director with 5-6
    np.testing.assert_allclose(t[:, col["shared:network"]], np.log1p([1, 1, 1, 1, 0, 0]))
    np.testing.assert_allclose(t[:, col["shared:director"]], np.log1p([0, 0, 0, 0, 1, 1]))
    # season 2 comes after the watched season 1; nothing comes before a watched title
    np.testing.assert_allclose(t[:, col["after:next_season"]], np.log1p([0, 1, 0, 0, 0, 0]))
    np.testing.assert_array_equal(t[:, col["before:next_season"]], 0)
    unknown = f.features([np.array([], np.int64)], np.array([np.nan]), titles)[0]
    assert not unknown.any()  # no request time, no history: no term


def test_terms_count_what_the_history_shares_with_each_title_in_every_relation():
    """The counts of :meth:`TitleFacts.features` (one sparse product over every
    relation) against counting by hand, on random links with repeated links, entities
    in several relations, repeats in the history and titles asked in any order."""
    rng = np.random.default_rng(7)
    v, n_ent, rels, pair_rels = 40, 25, ["a", "b", "c"], ["next", "spin-off"]
    n = 150
    f = TitleFacts(
        release_day=rng.uniform(0, 1000, v),
        item=rng.integers(1, v, n),
        entity=rng.integers(1, n_ent, n),
        relation=rng.integers(0, len(rels), n),
        relations=rels,
        pair_a=rng.integers(1, v, 30),
        pair_b=rng.integers(1, v, 30),
        pair_relation=rng.integers(0, len(pair_rels), 30),
        pair_relations=pair_rels,
    )
    hist = [rng.integers(0, v, rng.integers(0, 12)) for _ in range(6)]
    now = rng.uniform(0, 1200, 6) * DAY
    for titles in (np.arange(v), rng.permutation(v)[:17]):
        got = f.features(hist, now, titles)
        codes = f.codes(hist, now, titles)  # packed a byte a term, unpacked bit for bit
        assert codes is not None and codes.dtype == np.uint8
        np.testing.assert_array_equal(unpack(codes), got)
        assert got.shape == (6, len(titles), 4 + len(rels) + 2 * len(pair_rels))
        for b, h in enumerate(hist):
            seen = [t for t in set(h.tolist()) if t > 0]
            for j, c in enumerate(titles.tolist()):
                want = []
                for r in range(len(rels)):
                    mine = f.entity[(f.item == c) & (f.relation == r)]  # repeats count
                    want.append(
                        sum(
                            int(np.sum(f.entity[(f.item == t) & (f.relation == r)] == e))
                            for t in seen
                            for e in mine
                        )
                    )
                for r in range(len(pair_rels)):
                    on = f.pair_relation == r
                    after = sum(int(np.sum(on & (f.pair_a == t) & (f.pair_b == c))) for t in seen)
                    before = sum(int(np.sum(on & (f.pair_b == t) & (f.pair_a == c))) for t in seen)
                    want += [after, before]
                np.testing.assert_array_equal(
                    got[b, j, 4:], np.log1p(np.array(want, np.float32)), err_msg=f"{b} {c}"
                )
                age = now[b] / DAY - f.release_day[c]
                assert got[b, j, 0] == (age < 0)


def test_packed_terms_take_two_bytes_past_254_and_none_past_65534():
    """A count of 256 (16 links to one entity on each side) packs in two bytes; one
    past two bytes' room is not packed (its batch is rebuilt at each visit)."""
    for links, dtype in ((16, np.uint16), (256, None)):
        f = TitleFacts(
            release_day=np.array([np.nan, 0.0, 0.0]),
            item=np.repeat([1, 2], links),
            entity=np.ones(2 * links, np.int64),
            relation=np.zeros(2 * links, np.int64),
            relations=["cast"],
        )
        now = np.array([10.0 * DAY])
        feats = f.features([np.array([1])], now, np.array([1, 2]))
        assert feats[0, 1, 4] == np.float32(np.log1p(np.float32(links * links)))
        codes = f.codes([np.array([1])], now, np.array([1, 2]))
        if dtype is None:
            assert codes is None
        else:
            assert codes is not None and codes.dtype == dtype
            np.testing.assert_array_equal(unpack(codes), feats)


def test_new_title_pairs_link_added_titles_by_known_relations():
    items = Vocabulary(["s1", "s2", "s3", "movie"], name="item")  # s3 added after fit (4)
    kg = KnowledgeGraph.from_frame(
        pl.DataFrame(
            [
                ("s1", "tv.season.next_season", "s2"),  # both old: not new
                ("s2", "tv.season.next_season", "s3"),  # old -> new
                ("s3", "remake_of", "movie"),  # a relation the terms do not know
                ("s3", "tv.season.network", "net:1"),  # an entity, not a title
            ],
            schema=["head", "relation", "tail"],
            orient="row",
        )
    )
    a, b, rel = new_title_pairs(kg, items, 3, ["next_season"])
    assert (a.tolist(), b.tolist(), rel.tolist()) == ([2], [3], [0])
    f = facts()  # titles 1..6; title 7 added as the season after title 3
    grown = Vocabulary([f"t{k}" for k in range(1, 8)], name="item")
    link = [("t3", "tv.season.next_season", "t7"), ("t1", "tv.season.next_season", "t2")]
    kg_7 = KnowledgeGraph.from_frame(
        pl.DataFrame(link, schema=["head", "relation", "tail"], orient="row")
    )
    f.grow(np.array([500.0]), np.zeros(0), np.zeros(0), np.zeros(0), kg=kg_7, items=grown)
    t = f.features([np.array([3])], np.array([np.nan]), np.array([7]))[0, 0]
    assert t[f.names().index("after:next_season")] == pytest.approx(np.log1p(1))
    assert new_title_pairs(None, items, 3, ["next_season"])[0].size == 0


def test_weights_learn_what_finds_the_next_title():
    """Positions whose next title is always the season after the last one watched and
    never a title not out yet: the weights of those terms come out positive and
    negative; the head's scale stays positive."""
    f = facts()
    rng = np.random.default_rng(0)
    n = 400
    hist = [np.array([1]) if k % 2 else np.array([2]) for k in range(n)]
    targets = torch.tensor([2 if k % 2 else 3 for k in range(n)])
    times = torch.full((n,), int(250 * DAY))  # 4 and 5 are not out yet
    cand = torch.arange(1, 7)
    head = torch.from_numpy(rng.normal(size=(n, 6)).astype(np.float32))

    def fit() -> tuple[np.ndarray, float]:
        return fit_weights(
            f,
            lambda idx: head[idx],
            lambda idx: [hist[i] for i in idx.tolist()],
            times,
            targets,
            cand,
            torch.zeros(6),
            TermsConfig(positions=n, batch_size=100, steps=200),
        )

    w, alpha = fit()
    names = f.names()
    assert w[names.index("after:next_season")] > 1.0
    assert w[names.index("later")] < -0.5
    assert alpha > 0
    # the batches' terms kept packed or rebuilt at each visit: the same weights, bit
    # for bit (two of the four batches fit the room here)
    for room in (0, 2 * 100 * 6 * (len(names) + 5)):  # a byte a term, head 4, mask 1
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(titlecontext, "CACHE_BYTES", room)
            again = fit()
        np.testing.assert_array_equal(again[0], w)
        assert again[1] == alpha


def test_new_entity_links_keep_the_fit_s_entities_and_relations():
    items = Vocabulary(["a", "b", "new", "new2"], name="item")  # new, new2 added (3, 4)
    kg = KnowledgeGraph.from_frame(
        pl.DataFrame(
            [
                ("a", "directed_by", "p1"),  # an old title: not new
                ("new", "directed_by", "p1"),  # a kept entity: linked
                ("new", "directed_by", "p9"),  # an entity the fit never had
                ("new2", "film.actor.film", "x"),  # title as tail, wrong relation for x
                ("p2", "film.actor.film", "new2"),  # title as tail: relation "actor"
                ("new", "film.film.sequel", "new2"),  # two new titles
            ],
            schema=["head", "relation", "tail"],
            orient="row",
        )
    )
    entities = ["actor:p2", "directed_by:p1"]  # index 1, 2
    item, entity, rel = new_entity_links(kg, items, 3, entities, ["actor", "directed_by"])
    links = sorted(zip(item.tolist(), entity.tolist(), rel.tolist(), strict=True))
    assert links == [(3, 2, 1), (4, 1, 0)]
    assert new_entity_links(kg, items, 5, entities, ["actor"])[0].size == 0  # none added
    assert new_entity_links(None, items, 3, entities, ["actor"])[0].size == 0
    f = facts()  # titles 1..6, two relations of its own; none of these entities kept
    f.grow(np.array([1.0]), kg=kg, items=Vocabulary([f"t{k}" for k in range(1, 8)], name="item"))
    assert f.size == 8 and f.item.max() == 6  # no link of the added title 7


def with_release_days() -> Dataset:
    """60 users in two taste groups each watch a run of their half of 40 titles (Drama
    first half, Comedy|Family second), each title the day after its release (title i
    out on day 10 i); two Comedy|Family titles nobody watched: ``new-comedy`` out on
    day 0 and ``new-comedy-2`` out on day 1000, after every event."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(60):
        start = int(rng.integers(0, 8))
        for step in range(int(rng.integers(6, 12))):
            i = (u % 2) * 20 + start + step
            rows.append((f"u{u}", f"i{i}", 4.0, (10 * i + 1) * DAY + 60 * u))
    ids = [f"i{i}" for i in range(40)] + ["new-comedy", "new-comedy-2"]
    genres = [["Drama"] if i < 20 else ["Comedy", "Family"] for i in range(40)]
    days = [10 * i for i in range(40)] + [0, 1000]
    kg = [(f"i{i}", "directed_by", f"person:{i % 4}") for i in range(40)]
    kg += [(f"i{i}", "film.film.sequel", f"i{i + 1}") for i in range(0, 38, 2)]
    return Dataset.from_frames(
        "planted-release",
        interactions=pl.DataFrame(
            rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row"
        ),
        catalog=pl.DataFrame(
            {
                "item_id": ids,
                "title": [f"Title {k}" for k in range(len(ids))],
                "genres": [*genres, ["Comedy", "Family"], ["Comedy", "Family"]],
                "release_date": pl.Series(days).cast(pl.Date),
            }
        ),
        kg=pl.DataFrame(kg, schema=["head", "relation", "tail"], orient="row"),
        source="tests",
    )


def with_added_sequel(data: Dataset, side: SideData) -> tuple[Vocabulary, SideData]:
    """The catalog grown by ``added-comedy`` (Comedy|Family, out on day 2000), i38's
    sequel in the graph (a relation the terms know) and its remake (one they do not),
    directed by the director of i2, i6 … i38."""
    from primetime.data.catalog import Catalog

    added = pl.DataFrame(
        {
            "item_id": ["added-comedy"],
            "title": ["Added"],
            "genres": [["Comedy", "Family"]],
            "release_date": pl.Series([2000]).cast(pl.Date),
        }
    )
    grown = pl.concat([data.catalog.frame, added], how="diagonal_relaxed")
    link = pl.DataFrame(
        [
            ("i38", "film.film.sequel", "added-comedy"),
            ("i38", "remake", "added-comedy"),
            ("added-comedy", "directed_by", "person:2"),  # i2, i6 … i38's director
        ],
        schema=["head", "relation", "tail"],
        orient="row",
    )
    assert side.kg is not None
    kg = KnowledgeGraph.from_frame(pl.concat([side.kg.triples, link]))
    items = Vocabulary(grown["item_id"].to_list(), name="item")
    return items, SideData(catalog=Catalog.from_frame(grown), kg=kg)


def assert_sequel_counts(facts: TitleFacts, items: Vocabulary) -> None:
    """The added title counts as coming after i38 for a history holding i38 only, and
    as sharing a director with i34 (not i37)."""
    assert facts.pair_relations == ["sequel"]
    col = facts.names().index("after:sequel")
    hist = [np.array([items.index("i38")]), np.array([items.index("i37")])]
    added = np.array([items.index("added-comedy")])
    after = facts.features(hist, np.array([np.nan, np.nan]), added)[:, 0, col]
    np.testing.assert_allclose(after, [np.log1p(1), 0])
    col = facts.names().index("shared:directed_by")
    hist = [np.array([items.index("i34")]), np.array([items.index("i37")])]
    shared = facts.features(hist, np.array([np.nan, np.nan]), added)[:, 0, col]
    np.testing.assert_allclose(shared, [np.log1p(1), 0])


GNN = {"dim": 16, "epochs": 12, "batch_size": 16, "lr": 1e-2, "eval_every": 12, "dropout": 0.0}


@pytest.fixture(scope="module")
def fitted():
    data = with_release_days()
    train = leave_one_out(data.interactions).train
    side = SideData.of(data)
    models = {}
    for context in (True, False):
        m = GNNRecommender(GNNConfig(**GNN, head_epochs=20, head_context=context))
        m.fit(train, side=side)
        models[context] = m
    return data, train, side, models


def comedy_fans_new_titles(model, train, now) -> np.ndarray:
    """(U, 2) scores of new-comedy and new-comedy-2 for each Comedy fan, asked at ``now``."""
    items = train.items
    new = np.array([items.index("new-comedy"), items.index("new-comedy-2")])
    fans = [c for c in train.contexts() if int(items.id(int(c.history[0]))[1:]) >= 20]
    ctx = [UserContext(c.user_idx, c.history, now=now) for c in fans]
    return model.score(ctx)[:, new]


def test_a_title_not_out_at_the_request_ranks_below_one_that_is(fitted):
    """Comedy fans asked on day 500: new-comedy is out, new-comedy-2 (the same genres)
    not until day 1000. With the terms new-comedy comes first for every fan, by a
    margin far above the head's own difference of the two (the models without the
    terms, or with them and no request time)."""
    _, train, _, models = fitted
    model = models[True]
    assert model.cold is not None and model.cold.terms is not None
    assert model.cold.terms.weights[0] < 0  # "later": a title not out is not watched
    with_terms = comedy_fans_new_titles(model, train, 500 * DAY)
    assert (with_terms[:, 0] > with_terms[:, 1]).all()
    margin = float(np.median(with_terms[:, 0] - with_terms[:, 1]))
    for scores in (
        comedy_fans_new_titles(models[False], train, 500 * DAY),
        comedy_fans_new_titles(model, train, None),
    ):
        assert float(np.abs(scores[:, 0] - scores[:, 1]).max()) < margin / 10


def test_terms_survive_save_load_and_added_titles(fitted, tmp_path):
    data, train, side, models = fitted
    model = models[True]
    assert model.cold is not None and model.cold.terms is not None
    model.save(tmp_path / "m")
    back = GNNRecommender.load(tmp_path / "m")
    ctx = [UserContext(c.user_idx, c.history, now=500 * DAY) for c in train.contexts()]
    np.testing.assert_allclose(back.score(ctx), model.score(ctx), rtol=1e-5, atol=1e-5)
    # a Comedy title added later, out on day 2000, asked for on day 500
    items, grown_side = with_added_sequel(data, side)
    assert back.extend_items(items, grown_side)
    added = items.index("added-comedy")
    assert back.cold is not None and back.cold.terms is not None
    assert_sequel_counts(back.cold.terms.facts, items)
    assert back.cold is not None and added in back.cold.scored.tolist()
    unknown = [UserContext(c.user_idx, c.history) for c in ctx]
    drop = back.score(unknown)[:, added] - back.score(ctx)[:, added]  # (U,)
    # asked before its release the added title loses the "later" term, the same for all
    terms = back.cold.terms
    later = terms.weights[0] * back.cold.profile_scale / terms.alpha
    np.testing.assert_allclose(drop, -later, rtol=1e-4)
    assert (drop > 0).all()


def test_genre_released_drops_titles_after_the_request():
    data = with_release_days()
    train = leave_one_out(data.interactions).train
    model = GenreReleasedRecommender()
    model.fit(train, side=SideData.of(data))
    items = train.items
    out, later = items.index("new-comedy"), items.index("new-comedy-2")
    drama = items.index("i0")
    fan = next(c for c in train.contexts() if int(items.id(int(c.history[0]))[1:]) >= 20)
    early = model.score([UserContext(fan.user_idx, fan.history, now=500 * DAY)])[0]
    late = model.score([UserContext(fan.user_idx, fan.history, now=1100 * DAY)])[0]
    unknown = model.score([UserContext(fan.user_idx, fan.history)])[0]
    assert early[out] > early[drama] > early[later]  # the fan's genre, but not out yet
    assert late[later] > late[drama] and unknown[later] > unknown[drama]


def test_multimodal_fits_the_terms_for_titles_no_event_reached(tmp_path):
    """The multimodal model (no content head: it scores every title from content) fits
    the terms after training; they score the two never-watched titles, so the one out on
    day 500 ranks above the one that is not for every Comedy fan, and the terms come
    back from a saved bundle."""
    from primetime.models.multimodal import MultimodalConfig, MultimodalRecommender

    data = with_release_days()
    train = leave_one_out(data.interactions).train
    cfg = MultimodalConfig(
        dim=16, heads=2, ffn=32, meta_dim=16, epochs=4, eval_every=4, use_text=False
    )
    model = MultimodalRecommender(cfg)
    report = model.fit(train, side=SideData.of(data))
    assert model.terms is not None and report.notes["request_terms"]["later"] < 0
    items = train.items
    watched = set(train.item_idx.tolist())
    assert set(model.term_titles.tolist()) == set(range(1, items.size)) - watched
    assert {items.index("new-comedy"), items.index("new-comedy-2")} <= watched ^ set(
        range(1, items.size)
    )
    scores = comedy_fans_new_titles(model, train, 500 * DAY)
    assert (scores[:, 0] > scores[:, 1]).all()
    model.save(tmp_path / "m")
    back = MultimodalRecommender.load(tmp_path / "m")
    ctx = [UserContext(c.user_idx, c.history, now=500 * DAY) for c in train.contexts()]
    np.testing.assert_allclose(back.score(ctx), model.score(ctx), rtol=1e-5, atol=1e-5)
    items, grown_side = with_added_sequel(data, SideData.of(data))
    assert back.extend_items(items, grown_side) and back.terms is not None
    assert_sequel_counts(back.terms.facts, items)
    off = MultimodalRecommender(dataclasses.replace(cfg, request_terms=False))
    off.fit(train, side=SideData.of(data))
    assert off.terms is None


def test_weights_leave_the_history_out_of_the_softmax():
    """Titles 5, 6 and 7 share a director; every history is [5, 6], the next title is 7
    in 40% of positions, else one of 1-4. Among the titles a model may recommend (not 5
    or 6) a shared director doubles the odds, and the weight comes out positive. With
    the history in the softmax, 5 and 6 (never next, sharing the director with
    themselves) would make "shared" look like no help (40% of the targets on 3 of 7
    titles)."""
    f = TitleFacts(
        release_day=np.full(9, np.nan),
        item=np.array([5, 6, 7]),
        entity=np.array([1, 1, 1]),
        relation=np.array([0, 0, 0]),
        relations=["director"],
    )
    n = 500
    rng = np.random.default_rng(0)
    targets = torch.tensor([7 if k % 5 < 2 else 1 + k % 4 for k in range(n)])
    cand = torch.arange(1, 8)
    head = torch.zeros((n, 7))
    w, _ = fit_weights(
        f,
        lambda idx: head[idx],
        lambda idx: [np.array([5, 6]) for _ in idx.tolist()],
        torch.full((n,), int(rng.integers(1, 10)) * DAY),
        targets,
        cand,
        torch.zeros(7),
        TermsConfig(positions=n, batch_size=100, steps=300),
    )
    assert w[f.names().index("shared:director")] > 0.3
