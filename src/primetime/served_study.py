"""The served path in studies: ``primetime benchmark --pipeline`` and ``--blend-grid``.

:func:`served_model` wraps a fitted model in the pipeline the service builds around it
(:meth:`RecPipeline.build` on the train log, the same ``with_model``) and in
:class:`~primetime.pipeline.served.ServedModel`, which asks the route's own function
(:func:`~primetime.pipeline.served.served_recommendations`) for each test user's list.
:func:`tune_blend` searches the blend weights and the MMR strength on **valid** for the
best NDCG@10 whose intra-list diversity is not below the bare model's.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from primetime.data.catalog import Catalog
from primetime.eval.evalset import EvalSet
from primetime.eval.topn import evaluate
from primetime.lifecycle import Prepared
from primetime.models import Recommender
from primetime.pipeline.blend import SERVED_BLEND, BlendWeights
from primetime.pipeline.pipeline import RecPipeline
from primetime.pipeline.served import ServedModel, ServedUser
from primetime.types import UserContext

log = logging.getLogger(__name__)

__all__ = [
    "BLEND_GRID",
    "MMR_GRID",
    "SERVED_BLEND",
    "BlendTrial",
    "choose_served_blend",
    "served_blend_meta",
    "served_model",
    "served_name",
    "tune_blend",
]

#: The small grid ``--blend-grid`` searches on valid, in two stages: every blend
#: below at the current MMR strength, then the MMR strengths of :data:`MMR_GRID` for
#: the best blend (the model's weight stays 1; popularity and trending move together).
#: Small because a point costs a served list per valid user (seconds on a quiet core).
BLEND_GRID: dict[str, tuple[float, ...]] = {
    "realtime": (0.0, 0.3),
    "content": (0.0, 0.3),
    "popularity": (0.0, 0.1),
    "diversity": (0.1,),
}
#: MMR strengths tried for the best blend of the first stage.
MMR_GRID: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)


def served_name(model: str) -> str:
    """Table / export name of the served pipeline around ``model``."""
    return f"served-{model}"


def base_pipeline(prepared: Prepared) -> RecPipeline:
    """The pipeline's side data on the split's train log (what the models were fit on),
    built as :class:`~primetime.service.state.ServiceState` builds it on its log."""
    sp = prepared.split
    catalog = prepared.side.catalog
    if catalog is None:  # a split folder without items.tsv: titles without metadata
        catalog = Catalog.from_frame(pl.DataFrame({"item_id": sp.items.ids()}))
    users = prepared.dataset.users if prepared.dataset is not None else None
    return RecPipeline.build(None, catalog, sp.train, users=users)


def served_model(
    model: Recommender | Any,
    base: RecPipeline,
    *,
    k: int,
    weights: BlendWeights | None = None,
    replayed: dict[tuple[Any, ...], ServedUser] | None = None,
) -> ServedModel:
    """``model`` served: ``base.with_model(model)`` (default weights unless given),
    scored through the route's function (``replayed``: see :class:`ServedModel`)."""
    pipe = base.with_model(model)
    if weights is not None:
        pipe = pipe.with_weights(weights)
    return ServedModel(pipe, k=k, name=served_name(model.name), replayed=replayed)


class _ScoreCache:
    """A fitted model whose scores are kept per history, so a grid over the blend asks
    the model once per user (the blend's weights do not change the model's scores)."""

    def __init__(self, model: Recommender) -> None:
        self.model, self.name, self.items = model, model.name, model.items
        self._kept: dict[bytes, np.ndarray] = {}

    def score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        keys = [c.history.astype(np.int64).tobytes() for c in contexts]
        todo = [i for i, key in enumerate(keys) if key not in self._kept]
        if todo:
            fresh = np.asarray(self.model.score([contexts[i] for i in todo]), dtype=np.float32)
            for j, i in enumerate(todo):
                self._kept[keys[i]] = fresh[j]
        return np.stack([self._kept[key] for key in keys])


@dataclass(frozen=True)
class BlendTrial:
    """One point of the grid and its valid figures."""

    weights: BlendWeights
    figures: dict[str, float]
    eligible: bool


def tune_blend(
    model: Recommender,
    prepared: Prepared,
    *,
    base: RecPipeline | None = None,
    k: int = 10,
    grid: dict[str, tuple[float, ...]] | None = None,
    mmr_grid: Sequence[float] | None = None,
) -> tuple[BlendWeights, list[BlendTrial], dict[str, float]]:
    """Search the blend on valid (history = train, target = the valid interaction).

    Two stages: every blend of ``grid``, then the MMR strengths of ``mmr_grid`` for
    the best of them; then the model alone (every other weight and the MMR strength
    0, the cold-start ramp kept: a warm user's list in the model's order). Selection:
    the best valid NDCG@10 among the points whose Diversity@10 (mean pairwise genre
    dissimilarity inside a list) is at least the bare model's on the same users (the
    diversity floor; none when the catalog has no genres to measure it); ties keep the
    earlier point.

    Returns:
        The chosen weights, every trial, and the bare model's valid figures.
    """
    grid = grid or BLEND_GRID
    sp = prepared.split
    catalog = prepared.side.catalog
    base = base if base is not None else base_pipeline(prepared)
    valid = EvalSet.for_valid(sp)
    cached = _ScoreCache(model)
    replayed: dict[tuple[Any, ...], ServedUser] = {}  # each valid user replayed once
    keep = ("HR@10", "NDCG@10", "Diversity@10", "Coverage@10")
    bare = evaluate(cached, valid, ks=(k,), catalog=catalog, train=sp.train).summary()
    bare_figs = {m: float(bare[m]) for m in keep}
    floor = bare_figs["Diversity@10"]
    # no genres (a log without a catalog): diversity is not measured, no floor
    unmeasured = not np.isfinite(floor)
    trials: list[BlendTrial] = []

    def trial(w: BlendWeights, *, bare_order: bool = False) -> BlendTrial:
        for n, t in enumerate(trials):
            if t.weights == w:  # tried already (the grid can hold the model alone)
                if bare_order and not t.eligible:
                    trials[n] = dataclasses.replace(t, eligible=True)
                return trials[n]
        served = served_model(cached, base, k=k, weights=w, replayed=replayed)
        res = evaluate(served, valid, ks=(k,), catalog=catalog, train=sp.train).summary()
        figs = {m: float(res[m]) for m in keep}
        # the model alone is the bare model's order: at the floor by definition (its
        # measured diversity can differ from the floor in the 4th decimal, where the
        # served list and the evaluator break tied scores differently)
        trials.append(
            BlendTrial(w, figs, bare_order or unmeasured or figs["Diversity@10"] >= floor)
        )
        log.info("blend %s: valid %s", w, figs)
        return trials[-1]

    def best() -> BlendTrial:
        ok = [t for t in trials if t.eligible] or trials
        return max(ok, key=lambda t: t.figures["NDCG@10"])  # max keeps the first of equals

    keys = list(grid)
    for values in itertools.product(*(grid[key] for key in keys)):
        point = dict(zip(keys, values, strict=True))
        trial(
            BlendWeights(
                model=1.0,
                realtime=point.get("realtime", 0.0),
                content=point.get("content", 0.0),
                popularity=point.get("popularity", 0.0),
                trending=point.get("trending", point.get("popularity", 0.0)),
                diversity=point.get("diversity", 0.0),
            )
        )
    stage1 = best().weights
    for d in mmr_grid if mmr_grid is not None else MMR_GRID:
        trial(dataclasses.replace(stage1, diversity=d))
    # and the model alone through the served path (no blend, no MMR): the grid's
    # product never holds it, and on ml-100k it is the point every blend is measured
    # against (what the served path costs or adds to the bare model)
    trial(BlendWeights(popularity=0.0, trending=0.0, diversity=0.0), bare_order=True)
    return best().weights, trials, bare_figs


def choose_served_blend(
    model: Recommender, prepared: Prepared, *, base: RecPipeline | None = None
) -> dict[str, Any] | None:
    """The blend a registry version is served with (:data:`SERVED_BLEND` of its
    ``meta.json``): :func:`tune_blend` around ``model`` (the selection fit, which never
    saw valid's targets) on the split's valid part. None when the split has no valid
    part (nothing held out to choose on: the service then serves its default blend).

    Returns:
        ``{"weights", "valid", "bare_valid", "diversity_floor", "chosen_on", "trials"}``:
        the chosen weights (:meth:`BlendWeights.from_dict` reads them back), their valid
        figures, the bare model's, the floor and every point tried.
    """
    if not len(prepared.split.valid):
        return None
    chosen, trials, bare = tune_blend(model, prepared, base=base)
    pick = next(t for t in trials if t.weights == chosen)

    def figures(f: dict[str, float]) -> dict[str, float | None]:  # JSON has no NaN
        return {k: (v if np.isfinite(v) else None) for k, v in f.items()}

    return {
        "weights": weights_dict(chosen),
        "valid": figures(pick.figures),
        "bare_valid": figures(bare),
        "diversity_floor": figures(bare)["Diversity@10"],
        "chosen_on": "valid (history = train), around the selection fit: the best "
        "NDCG@10 whose Diversity@10 is at least the bare model's",
        "trials": [
            {
                "weights": weights_dict(t.weights),
                "valid": figures(t.figures),
                "eligible": t.eligible,
            }
            for t in trials
        ],
    }


def served_blend_meta(model: Recommender, prepared: Prepared) -> dict[str, Any]:
    """``{SERVED_BLEND: choose_served_blend(...)}`` for a version's ``meta.json``, or
    ``{}`` when there is nothing to choose on or ``model`` is a rating model (a list is
    not what it is fit for): what ``train``, ``serve``, the suite and ``retrain`` add to
    the version they register."""
    if model.task != "topn":
        return {}
    picked = choose_served_blend(model, prepared)
    return {} if picked is None else {SERVED_BLEND: picked}


def weights_dict(w: BlendWeights) -> dict[str, Any]:
    """Weights as a plain dict (for reports)."""
    return dataclasses.asdict(w)


def grid_markdown(grids: dict[str, Any], stamp: dict[str, Any]) -> str:
    """The ``--blend-grid`` search as Markdown: every point's valid figures, the floor
    and the pick, under the run's stamp (command, commit, data)."""
    lines = ["# Blend weights on valid", ""]
    if stamp.get("command"):
        lines += ["```bash", str(stamp["command"]), "```", ""]
    lines += [
        f"Data {stamp.get('dataset')}, split {stamp.get('protocol')}, "
        f"commit {stamp.get('commit')}.",
        "",
    ]
    lines += [
        "Each point is the served pipeline (model weight 1; popularity and trending "
        "equal; first every blend at MMR 0.1, then MMR strengths for the best, then "
        "the model alone: no blend, no MMR) scored "
        "on **valid** (history = train, target = the valid interaction), "
        "lists of 10. Eligible: Diversity@10 (mean pairwise genre dissimilarity in a "
        "list) not below the bare model's on the same users. The pick: the best valid "
        "NDCG@10 among the eligible points.",
        "",
    ]
    for name, g in grids.items():
        bare = g["bare_valid"]
        lines += [
            f"## {name}",
            "",
            f"Bare model on valid: NDCG@10 {_num(bare['NDCG@10'])}, "
            f"HR@10 {_num(bare['HR@10'])}, "
            f"Diversity@10 {_num(bare['Diversity@10'])} (the floor), "
            f"Coverage@10 {_num(bare['Coverage@10'], 3)}.",
            "",
            f"Pick: `{_short(g['chosen'])}`",
            "",
            "| realtime | content | popularity = trending | diversity | NDCG@10 | HR@10 "
            "| Diversity@10 | Coverage@10 | eligible |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for t in g["trials"]:
            w, f = t["weights"], t["valid"]
            lines.append(
                f"| {w['realtime']:g} | {w['content']:g} | {w['popularity']:g} | "
                f"{w['diversity']:g} | {_num(f['NDCG@10'])} | {_num(f['HR@10'])} | "
                f"{_num(f['Diversity@10'])} | {_num(f['Coverage@10'], 3)} | "
                f"{'yes' if t['eligible'] else 'no'} |"
            )
        lines.append("")
    return "\n".join(lines)


def _short(w: dict[str, Any]) -> str:
    keys = ("model", "realtime", "content", "popularity", "trending", "diversity")
    return ", ".join(f"{k}={w[k]:g}" for k in keys)


def _num(v: float | None, digits: int = 4) -> str:
    """A figure of a report, "n/a" where it was not measured (None)."""
    return "n/a" if v is None else f"{v:.{digits}f}"
