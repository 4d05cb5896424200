"""The one model life cycle: select on valid, refit on the whole log, register with
what the version was fit on; the served fit sees each user's latest events."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from primetime.data.dataset import Dataset
from primetime.data.side import SideData
from primetime.data.splitdir import open_split_dir, write_split_dir
from primetime.data.splits import leave_one_out
from primetime.lifecycle import (
    DataSpec,
    FitSpec,
    Prepared,
    build_model,
    ensure_models,
    evaluate_on_test,
    fit_model,
    register_run,
)
from primetime.models.base import FitOptions
from primetime.registry import ModelRegistry
from primetime.types import UserContext


def _prepared(ds: Dataset) -> Prepared:
    return Prepared(
        DataSpec(), leave_one_out(ds.interactions), SideData.of(ds), name=ds.name, dataset=ds
    )


@pytest.fixture(scope="module")
def with_new_title(planted: Dataset) -> Dataset:
    """The planted log, plus one title that every user watches last (so it is only ever
    in the test part of a leave-one-out split)."""
    rows = planted.interactions.to_polars(ids=True).select(
        "user_id", "item_id", "rating", "timestamp"
    )
    last = rows.group_by("user_id").agg(pl.col("timestamp").max())
    extra = last.select(
        "user_id",
        pl.lit("premiere").alias("item_id"),
        pl.lit(5.0, dtype=pl.Float32).alias("rating"),
        (pl.col("timestamp") + 60).alias("timestamp"),
    )
    catalog = pl.concat(
        [
            planted.catalog.frame.select("item_id", "title", "genres"),
            pl.DataFrame({"item_id": ["premiere"], "title": ["Premiere"], "genres": [["Drama"]]}),
        ],
    )
    return Dataset.from_frames(
        "planted+premiere",
        interactions=pl.concat([rows, extra.select(rows.columns)]),
        catalog=catalog,
        source="tests",
    )


def test_served_fit_saw_each_users_last_event(with_new_title: Dataset) -> None:
    data = _prepared(with_new_title)
    premiere = with_new_title.items.index("premiere")
    assert not np.isin(premiere, data.split.train.item_idx).any()  # only in test
    assert len(data.split.test) == len(with_new_title.users)

    run = fit_model(FitSpec("popularity", refit=True), data=data)
    ctx = [UserContext(user_idx=None, history=np.array([1], dtype=np.int64))]
    before, after = run.selected.score(ctx)[0], run.model.score(ctx)[0]
    assert before[premiere] <= 0 < after[premiere]
    assert int(np.argmax(after)) == premiere  # every user watched it: the most popular
    assert run.fit_on() == {
        "part": "whole log",
        "rows": len(with_new_title.interactions),
        "epochs": None,
        "selected_on": "valid",
    }
    assert "valid NDCG@10" in run.valid

    kept = fit_model(FitSpec("popularity", refit=False), data=data)
    assert kept.model is kept.selected and kept.fit_on()["part"] == "train"


def test_refit_trains_the_epochs_valid_chose(planted: Dataset) -> None:
    overrides = {"epochs": 4, "dim": 16, "eval_every": 1, "patience": 0}
    run = fit_model(FitSpec("gru4rec", overrides=overrides, refit=True), data=_prepared(planted))
    assert run.report.best_epoch is not None and 1 <= run.report.best_epoch <= 4
    assert run.refit_report is not None
    assert run.refit_report.epochs == run.report.best_epoch
    assert run.model is not run.selected and run.model.config.epochs == run.report.best_epoch


def test_register_records_fit_on_valid_and_test(planted: Dataset, tmp_path) -> None:
    data = _prepared(planted)
    run = fit_model(FitSpec("itemknn", refit=True), data=data)
    test = evaluate_on_test(run)
    reg = ModelRegistry(tmp_path / "models")
    mv = register_run(run, reg, test=test, promote=True, notes="t")
    assert mv.promoted and mv.version == "v1"
    meta = json.loads((mv.path / "meta.json").read_text())
    assert meta["fit_on"]["part"] == "whole log"
    assert meta["valid_metrics"]["valid NDCG@10"] == pytest.approx(run.valid["valid NDCG@10"])
    assert meta["metrics"]["NDCG@10"] == pytest.approx(test["NDCG@10"])
    assert meta["test_metrics_of"].startswith("the selection fit")
    assert meta["side_data"]["kg_triples"] == 80
    bundle = json.loads((mv.path / "bundle.json").read_text())
    assert bundle["meta"]["fit_on"]["part"] == "whole log"
    loaded = reg.load("itemknn")
    ctx = data.split.train.contexts()[:3]
    assert np.array_equal(loaded.score(ctx), run.model.score(ctx))


def test_serve_records_the_callers_facts_with_each_version(planted: Dataset, tmp_path) -> None:
    """``ensure_models(facts=...)`` (what ``primetime serve`` passes: the blend chosen on
    valid) lands in each trained version's meta, from that version's own run."""
    log = tmp_path / "log.csv"
    planted.interactions.to_polars(ids=True).select(
        "user_id", "item_id", "rating", "timestamp"
    ).write_csv(log)
    reg = ModelRegistry(tmp_path / "models")
    seen: list[str] = []

    def facts(run):
        seen.append(run.spec.model)
        assert run.selected.items is not None  # the fitted selection run
        return {"served_blend": {"weights": {"diversity": 0.2}}}

    made = ensure_models(
        ["itemknn", "popularity"], data=str(log), registry=reg, say=lambda _: None, facts=facts
    )
    assert seen == ["itemknn", "popularity"] and [mv.name for mv in made] == seen
    for mv in made:
        assert reg.promoted(mv.name).meta["served_blend"] == {"weights": {"diversity": 0.2}}


def test_fit_options_are_checked() -> None:
    with pytest.raises(ValueError, match="threads"):
        FitOptions(threads=0)
    with pytest.raises(ValueError, match="run_dir"):
        FitOptions(resume=True)
    with pytest.raises(ValueError, match="unknown model 'knn'"):
        FitSpec("knn")


def test_threads_option_is_restored(planted: Dataset) -> None:
    import torch

    before = torch.get_num_threads()
    model = build_model("itemknn")
    model.fit(planted.interactions, options=FitOptions(threads=1))
    assert torch.get_num_threads() == before


# ------------------------------------------------------------ bring your own split
def test_split_dir_with_metadata_reads_back_the_same_index_spaces(planted: Dataset, tmp_path):
    split = leave_one_out(planted.interactions)
    d = write_split_dir(split, tmp_path / "byo", side=SideData.of(planted))
    assert {p.name for p in d.iterdir()} >= {"items.tsv", "users.tsv", "kg.tsv", "train.tsv"}
    header = (d / "items.tsv").read_text().splitlines()[0].split("\t")
    assert header[:3] == ["item_id", "title", "year"] or header[:2] == ["item_id", "title"]
    back, side = open_split_dir(d)
    assert back.items == split.items and back.users == split.users
    assert side.catalog is not None and side.catalog.frame["genres"].to_list() == (
        planted.catalog.frame["genres"].to_list()
    )
    assert side.kg is not None and len(side.kg) == len(planted.kg)
    assert side.users is not None and side.users.frame["age"].to_list()[:3] == [20, 21, 22]
    for part in ("train", "valid", "test"):
        a, b = getattr(back, part), getattr(split, part)
        assert np.array_equal(a.user_idx, b.user_idx) and np.array_equal(a.item_idx, b.item_idx)


def test_split_dir_gives_content_models_the_built_in_texts(tmp_path):
    """What the graph and text models read (the catalog, the graph and the item texts
    built from them) comes back from the folder as it was: titles without a cast (all of
    ml-100k's) used to come back with a cast member named ``""``, and a quote, a tab or
    a line break in a value must not change what the other titles read either."""
    rows = [(u, i, 4.0, 10 * u + k) for u in range(1, 5) for k, i in enumerate("abcd")]
    ds = Dataset.from_frames(
        "quoted",
        interactions=pl.DataFrame(
            rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row"
        ),
        catalog=pl.DataFrame(
            {
                "item_id": ["a", "b", "c", "d"],
                "title": ['The "Best" Film', "Plain", "Third", "Tabbed\tTitle"],
                "genres": [["Drama"], [], ["Comedy", "Drama"], ["Drama"]],
                "cast": [[], ["Ann Lee", 'Bo "Q" Ray'], [], []],
                "description": [None, "", "Two lines.\nSecond.", 'Says, "hi".'],
            }
        ),
        kg=pl.DataFrame(
            {
                "head": ["a", "b", "c"],
                "relation": ["film.film.directed_by"] * 3,
                "tail": ["person:Jo", 'person:"Al"', "person:Jo"],
            }
        ),
    )
    built_in = SideData.of(ds)
    d = write_split_dir(leave_one_out(ds.interactions), tmp_path / "byo", side=built_in)
    _, side = open_split_dir(d)
    assert side.catalog is not None and built_in.catalog is not None
    for col in ("title", "genres", "cast"):
        want = built_in.catalog.frame[col].to_list()
        if col == "title":  # an unquoted TSV holds no tab: written as a space
            want = [t.replace("\t", " ") for t in want]
        assert side.catalog.frame[col].to_list() == want, col
    assert side.catalog.frame["cast"].to_list()[0] == []
    assert side.kg is not None and built_in.kg is not None
    assert side.kg.triples.equals(built_in.kg.triples)
    assert built_in.item_texts is not None and side.item_texts is not None
    for item in ("a", "b"):  # no tab or line break: the very text the built-in split gives
        k = ds.items.index(item)
        assert side.item_texts[k] == built_in.item_texts[k]


def test_transformer_scores_the_same_on_a_written_split(planted: Dataset, tmp_path):
    """A bring-your-own split with items.tsv gives the transformer its side features:
    the same model, hence the same test NDCG@10, as the built-in split."""
    overrides = {"epochs": 3, "dim": 16, "heads": 2, "layers": 1, "ffn": 32, "eval_every": 1}
    built_in = _prepared(planted)
    d = write_split_dir(built_in.split, tmp_path / "byo", side=built_in.side)
    byo = fit_model(FitSpec("sasrec", data=DataSpec(split_dir=d), overrides=overrides))
    ref = fit_model(FitSpec("sasrec", overrides=overrides), data=built_in)
    assert byo.model.side is not None  # genre/year features from items.tsv
    a, b = evaluate_on_test(byo)["NDCG@10"], evaluate_on_test(ref)["NDCG@10"]
    assert a == pytest.approx(b, abs=1e-6)
    plain = fit_model(FitSpec("sasrec", data=DataSpec(split_dir=_strip(d)), overrides=overrides))
    assert plain.model.side is None  # without items.tsv: ids only


def _strip(d):
    for name in ("items.tsv", "users.tsv", "kg.tsv"):
        (d / name).unlink()
    return d


def test_split_dir_metadata_errors_name_file_and_line(planted: Dataset, tmp_path):
    from primetime.data.errors import DataFormatError

    d = write_split_dir(leave_one_out(planted.interactions), tmp_path / "byo")
    (d / "kg.tsv").write_text("head\trelation\ttail\ni1\tgenre\t\n")
    with pytest.raises(DataFormatError, match=r"kg.tsv, line 2, column 'tail'"):
        open_split_dir(d)
    (d / "kg.tsv").write_text("head\trel\ttail\n")
    with pytest.raises(DataFormatError, match="relation"):
        open_split_dir(d)
    (d / "kg.tsv").unlink()
    (d / "items.tsv").write_text("item_id\ttitle\tkind\ni1\tA\tpodcast\n")
    with pytest.raises(DataFormatError, match="items.tsv"):
        open_split_dir(d)
