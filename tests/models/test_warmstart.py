"""Warm start (FitOptions.init_from): title rows carried over by id, new titles fresh."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from primetime.data import Dataset
from primetime.data.side import SideData
from primetime.data.vocab import Vocabulary
from primetime.lifecycle import build_model
from primetime.models.base import FitOptions
from primetime.models.sasrec import SASRecConfig, SASRecNet
from primetime.models.warmstart import carry_weights, row_map, seed_rows

#: lr ~ 0 and no weight decay: one epoch leaves the starting weights as they were.
FROZEN = {"dim": 16, "heads": 2, "layers": 1, "ffn": 32, "epochs": 1, "lr": 1e-12}
FROZEN_NO_DECAY = {**FROZEN, "weight_decay": 0.0, "device": "cpu", "side_features": False}


def chains(items: list[str], n_users: int = 30, seed: int = 0, genres: bool = False) -> Dataset:
    """Users walking runs of consecutive titles of ``items`` (the catalog, in this order);
    with ``genres``, titles ``i0``-``i9`` are dramas and the others comedies."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = int(rng.integers(0, len(items) - 6))
        for step in range(6):
            rows.append((f"u{u}", items[start + step], 1_000_000 + u * 1000 + step * 60))
    df = pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row")
    catalog = pl.DataFrame({"item_id": items, "title": items})
    if genres:
        kinds = [["Drama"] if int(i[1:]) < 10 else ["Comedy"] for i in items]
        catalog = catalog.with_columns(pl.Series("genres", kinds))
    return Dataset.from_frames("chains", interactions=df, catalog=catalog, source="tests")


def test_row_map_matches_titles_by_id() -> None:
    old, new = Vocabulary(["a", "b", "c"]), Vocabulary(["c", "x", "a"])
    old_rows, new_rows = row_map(old, new)
    assert dict(zip(old.ids(old_rows), new.ids(new_rows), strict=True)) == {"a": "a", "c": "c"}


def test_carry_weights_by_id_new_titles_keep_fresh_rows() -> None:
    cfg = SASRecConfig(dim=16, heads=2, layers=1, ffn=32)
    old_items = Vocabulary(["a", "b", "c", "d"])
    new_items = Vocabulary(["d", "e", "a", "c"])  # reordered, "b" gone, "e" new
    torch.manual_seed(0)
    old = SASRecNet(old_items.size, cfg)
    torch.manual_seed(1)
    new = SASRecNet(new_items.size, cfg)
    fresh = new.item_emb.weight.detach().clone()
    got = carry_weights(new, old, old_items=old_items, new_items=new_items)
    w_old, w_new = old.item_emb.weight.detach(), new.item_emb.weight.detach()
    for t in ("a", "c", "d"):
        torch.testing.assert_close(w_new[new_items.index(t)], w_old[old_items.index(t)])
    e = new_items.index("e")
    torch.testing.assert_close(w_new[e], fresh[e])
    assert not torch.allclose(w_new[e], w_old[old_items.index("b")])
    assert float(w_new[0].abs().sum()) == 0.0  # padding stays zero
    torch.testing.assert_close(new.final_norm.weight, old.final_norm.weight)
    q_new = new.encoder.layers[0].self_attn.in_proj_weight
    torch.testing.assert_close(q_new, old.encoder.layers[0].self_attn.in_proj_weight)
    assert (got.titles_carried, got.titles_new, got.titles_dropped) == (3, 1, 1)
    assert got.tensors_fresh == []


def test_carry_weights_leaves_mismatched_shapes_fresh() -> None:
    items = Vocabulary(["a", "b"])
    old = SASRecNet(items.size, SASRecConfig(dim=16, heads=2, layers=1, ffn=32))
    new = SASRecNet(items.size, SASRecConfig(dim=16, heads=2, layers=1, ffn=64))
    got = carry_weights(new, old, old_items=items, new_items=items)
    assert any("linear1" in n for n in got.tensors_fresh)
    assert "item_emb.weight" not in got.tensors_fresh


@pytest.mark.parametrize("name", ["sasrec", "temporal", "gru4rec"])
def test_fit_from_a_saved_version_starts_from_its_rows(name: str, tmp_path: Path) -> None:
    """Through ``fit``: a title in both catalogs starts from the old version's vector (the
    lr ~ 0 fit leaves it there), a new title from the row a cold fit starts from."""
    base = [f"i{i}" for i in range(20)]
    old_data = chains(base)
    overrides = {k: v for k, v in FROZEN_NO_DECAY.items() if name != "gru4rec" or k in {
        "epochs", "lr", "weight_decay", "device"}}  # fmt: skip
    old = build_model(name, {**overrides, "lr": 1e-2, "seed": 3})
    old.fit(old_data.interactions, side=SideData.of(old_data))
    old.save(tmp_path / "v1")
    grown = chains(["n0", *base[::-1], "n1"], seed=1)  # new titles, other order
    warm = build_model(name, overrides)
    report = warm.fit(
        grown.interactions,
        side=SideData.of(grown),
        options=FitOptions(init_from=tmp_path / "v1"),
    )
    cold = build_model(name, overrides)
    cold.fit(grown.interactions, side=SideData.of(grown))
    w_old, w_warm, w_cold = old.item_vectors(), warm.item_vectors(), cold.item_vectors()
    assert w_old is not None and w_warm is not None and w_cold is not None
    assert old.items is not None and warm.items is not None
    for t in base:
        np.testing.assert_allclose(
            w_warm[warm.items.index(t)], w_old[old.items.index(t)], atol=1e-5
        )
    for t in ("n0", "n1"):
        np.testing.assert_allclose(w_warm[warm.items.index(t)], w_cold[warm.items.index(t)])
    notes = report.notes["warm_start"]
    assert notes["titles_carried"] == 20 and notes["titles_new"] == 2
    assert notes["from"] == str(tmp_path / "v1")


def test_models_without_warm_start_say_so() -> None:
    data = chains([f"i{i}" for i in range(12)])
    with pytest.raises(ValueError, match="cannot warm-start"):
        build_model("itemknn").fit(data.interactions, options=FitOptions(init_from=Path("x")))


# ------------------------------------------------------- item_init: the content space
CONTRASTIVE = {"dim": 16, "hidden": 32, "epochs": 2, "batch_size": 64, "cold_head": False}


def test_seed_rows_keeps_the_scale_padding_and_rows_without_content() -> None:
    torch.manual_seed(0)
    weight = torch.nn.Embedding(5, 4, padding_idx=0).weight.detach().clone()
    weight[0] = 0.0
    fresh = weight.clone()
    rows = np.zeros((5, 4), dtype=np.float32)
    rows[1] = [3.0, 0.0, 0.0, 0.0]
    rows[2] = [0.0, 0.0, 0.5, 0.5]
    rows[0] = 1.0  # the padding row is never seeded
    assert seed_rows(weight, rows) == 2
    scale = float(fresh[1:].norm(dim=1).mean())
    torch.testing.assert_close(weight[1], torch.tensor([scale, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(weight[2].norm(), torch.tensor(scale))
    torch.testing.assert_close(weight[3:], fresh[3:])  # zero rows: no content, init kept
    assert float(weight[0].abs().sum()) == 0.0
    with pytest.raises(ValueError, match="item_init"):
        seed_rows(weight, rows[:3])


@pytest.mark.parametrize("name", ["sasrec", "temporal", "gru4rec"])
def test_item_init_starts_from_a_saved_contrastive_version(name: str, tmp_path: Path) -> None:
    """``item_init=<folder>``: a title the contrastive version knows starts along its
    content vector (the lr ~ 0 fit leaves it there), at the fresh rows' scale; a title it
    does not know keeps the random row of a plain fit."""
    base = [f"i{i}" for i in range(20)]
    old = chains(base, genres=True)
    encoder = build_model("contrastive", CONTRASTIVE)
    encoder.fit(old.interactions, side=SideData.of(old))
    encoder.save(tmp_path / "contrastive")
    grown = chains(["i90", *base[::-1], "i91"], seed=1, genres=True)
    overrides = {k: v for k, v in FROZEN_NO_DECAY.items() if name != "gru4rec" or k in {
        "epochs", "lr", "weight_decay", "device"}}  # fmt: skip
    overrides["dim"] = 16
    seeded = build_model(name, {**overrides, "item_init": str(tmp_path / "contrastive")})
    report = seeded.fit(grown.interactions, side=SideData.of(grown))
    plain = build_model(name, overrides)
    plain.fit(grown.interactions, side=SideData.of(grown))
    w_enc, w_seed, w_plain = encoder.item_vectors(), seeded.item_vectors(), plain.item_vectors()
    assert w_seed is not None and w_plain is not None and seeded.items is not None
    scale = np.linalg.norm(w_plain[1:], axis=1).mean()
    for t in base:
        row, content = w_seed[seeded.items.index(t)], w_enc[encoder.items.index(t)]
        cosine = row @ content / (np.linalg.norm(row) * np.linalg.norm(content))
        assert cosine > 0.999, (t, cosine)
        assert abs(np.linalg.norm(row) - scale) < 0.05 * scale
    for t in ("i90", "i91"):
        np.testing.assert_allclose(w_seed[seeded.items.index(t)], w_plain[seeded.items.index(t)])
    assert report.notes["item_init"] == {"from": str(tmp_path / "contrastive"), "rows": 20}
    wide = build_model(name, {**overrides, "dim": 32, "item_init": str(tmp_path / "contrastive")})
    with pytest.raises(ValueError, match="32"):
        wide.fit(grown.interactions, side=SideData.of(grown))
    plain.save(tmp_path / name)  # a saved version of another model
    for folder in (tmp_path / name, tmp_path / "nowhere"):
        with pytest.raises(ValueError, match="item_init"):
            build_model(name, {**overrides, "item_init": str(folder)}).fit(
                grown.interactions, side=SideData.of(grown)
            )


def test_item_init_contrastive_fits_the_encoder_first() -> None:
    """``item_init="contrastive"``: every title starts from a content vector (same-genre
    titles closer than titles of the other genre), and the random state after it is the
    plain fit's (its other weights start the same)."""
    data = chains([f"i{i}" for i in range(20)], genres=True)
    overrides = {**FROZEN_NO_DECAY}
    seeded = build_model("sasrec", {**overrides, "item_init": "contrastive"})
    report = seeded.fit(data.interactions, side=SideData.of(data))
    plain = build_model("sasrec", overrides)
    plain.fit(data.interactions, side=SideData.of(data))
    assert report.notes["item_init"] == {"from": "contrastive", "rows": 20}
    w = seeded.item_vectors()
    assert w is not None and seeded.items is not None
    unit = w[1:] / np.linalg.norm(w[1:], axis=1, keepdims=True)
    drama = np.array([int(t[1:]) < 10 for t in seeded.items.ids()])
    sim = unit @ unit.T
    assert sim[drama][:, drama].mean() > sim[drama][:, ~drama].mean() + 0.1
    a, b = seeded.net.state_dict(), plain.net.state_dict()
    for k in a:
        if k != "item_emb.weight":
            torch.testing.assert_close(a[k], b[k], msg=k)
