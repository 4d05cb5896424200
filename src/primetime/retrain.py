"""The retrain job: base log + exported events -> fit -> gate -> register -> promote.

``primetime retrain`` runs it (cron, or by hand). For each served model name:

1. open the base log joined to an export folder (``primetime data export``) and split it
   by time: the newest ``slice_days`` days are the *gate slice* (test), the
   ``slice_days`` before them valid, the rest train (``DataSpec(split="slice")``);
2. fit the model through the one life cycle (:func:`primetime.lifecycle.fit_model`):
   selected on valid, then refit on the whole log (the version that would be served);
3. rank the gate slice with the *selection* fit (it has not seen the slice) and with the
   promoted version as the service serves it (grown to the titles added since it was
   trained; a model that cannot grow gives them ``-inf``): the same users, histories and
   targets, a paired Wilcoxon test on per-user NDCG@10
   (:func:`~primetime.eval.significance.paired_test`);
4. register the refit version with the decision and the figures (``meta.json`` key
   ``retrain``) and the blend it is served with, chosen on valid (``served_blend``), and
   promote it only when its NDCG@10 is not below the promoted one's by more than
   ``margin``. A promotion goes through :func:`primetime.service.promotion.promote`
   when a service database is given, so its history row tells every running worker
   (:mod:`primetime.service.watch`) to swap the new version in.

Warm start (on by default, ``warm_start=False`` / ``--no-warm-start`` to fit from scratch):
a model with ``supports_warm_start`` (``sasrec``, ``gru4rec``) starts both fits of step 2
from the promoted version's weights (``FitOptions.init_from``; title rows matched by title
id, new titles get fresh rows: :mod:`primetime.models.warmstart`) and with its settings
(the weights fit no other shapes), for the model's default epochs or ``warm_epochs``.
Other models (closed-form ``itemknn``/``popularity``, ``als``) fit from scratch as before.
The registered version's ``meta.json["retrain"]["warm_start"]`` says from which version it
started, or why it did not. No warm start when the promoted version has already seen the
gate slice (see below): its weights would carry the slice into the candidate it is
compared with.

The registered version's ``meta.json["retrain"]`` also holds ``fit_until`` (the newest
event its refit saw): a later retrain whose slice that version has already seen (no events
exported since) says so in its reason, since such a comparison favours the promoted version.

Layering: a job above the life cycle and the service (it uses both), beside the CLI.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from primetime.data.vocab import Vocabulary
from primetime.lifecycle import DataSpec, FitSpec, Prepared, fit_model, prepare_data, register_run
from primetime.models import get_model_class
from primetime.models.base import FitOptions, Recommender
from primetime.registry import ModelRegistry, ModelVersion
from primetime.served_study import served_blend_meta
from primetime.types import UserContext

__all__ = ["Gate", "RetrainResult", "retrain", "served_form"]

log = logging.getLogger(__name__)

METRIC = "NDCG@10"


@dataclass(frozen=True)
class Gate:
    """The promotion decision and the figures it rests on (``meta.json["retrain"]``).

    Attributes:
        metric: The compared metric (NDCG@10, full ranking).
        candidate: The candidate's mean on the gate slice (its selection fit).
        promoted: The promoted version's mean on the same users, or None (none promoted).
        promoted_version: Which version that was.
        margin: How far below ``promoted`` the candidate may be and still be promoted.
        p_value: Wilcoxon signed-rank, candidate vs promoted, per user (None: no pair).
        mean_diff, ci_low, ci_high: Candidate minus promoted, with a bootstrap 95% CI.
        n_users: Users in the gate slice.
        slice: The split's protocol (``slice-2d/2d``).
        promote: The decision.
        reason: The decision in words.
    """

    metric: str
    candidate: float
    promoted: float | None
    promoted_version: str | None
    margin: float
    p_value: float | None
    mean_diff: float | None
    ci_low: float | None
    ci_high: float | None
    n_users: int
    slice: str
    promote: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RetrainResult:
    """One model's retrain: the registered version and its gate."""

    name: str
    version: ModelVersion
    gate: Gate
    promoted: bool


class _Padded:
    """A model scoring a catalog that grew after it was trained, without growing it: the
    new titles score ``-inf`` and are left out of the histories it reads (as the
    service's pipeline does for such a model)."""

    def __init__(self, model: Recommender, items: Vocabulary) -> None:
        assert model.items is not None
        self.model, self.name, self.items = model, model.name, items
        self.width = items.size

    def score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        assert self.model.items is not None
        n = self.model.items.size
        known = []
        for c in contexts:
            keep = np.asarray(c.history) < n
            ts = None if c.timestamps is None else np.asarray(c.timestamps)[keep]
            ratings = None if c.ratings is None else np.asarray(c.ratings)[keep]
            hist = np.asarray(c.history)[keep]
            known.append(dataclasses.replace(c, history=hist, timestamps=ts, ratings=ratings))
        s = np.asarray(self.model.score(known), dtype=np.float32)  # (B, n)
        out = np.full((len(contexts), self.width), -np.inf, dtype=np.float32)  # (B, V)
        out[:, :n] = s
        return out


def served_form(model: Recommender, data: Prepared) -> Any:
    """``model`` as the service serves it on ``data``'s catalog: grown to the titles added
    since it was trained when it can (``extend_items``, on a copy), else padded with
    ``-inf`` for them.

    Raises:
        ValueError: the model was trained on a catalog that is not a prefix of ``data``'s.
    """
    from primetime.service.newtitles import grow_model

    items = data.split.train.items
    assert model.items is not None
    n = len(model.items)
    if model.items != items and model.items.ids() != items.ids()[:n]:
        raise ValueError(
            f"{model.name}: the promoted version was fit on another catalog than the base "
            "log's (its titles are not the first ones of the joined data)"
        )
    if model.items == items:
        return model
    grown = grow_model(model, data.side)
    return grown if grown is not None else _Padded(model, items)


def retrain(
    names: Sequence[str],
    *,
    data: str,
    events: Path,
    registry: ModelRegistry,
    margin: float = 0.0,
    slice_days: float = 2.0,
    store: Any | None = None,
    actor: str = "primetime retrain",
    say: Callable[[str], None] = print,
    warm_start: bool = True,
    warm_epochs: int | None = None,
    blend: bool = True,
) -> list[RetrainResult]:
    """Retrain ``names`` on ``data`` + the export folder ``events``; gate, register, promote.

    Args:
        names: Model names (each fit, gated and registered on its own).
        data: The base log (a data set spec, as ``--data``).
        events: An export folder (``primetime data export``).
        registry: Where the promoted versions are and the candidates go.
        margin: Promote unless the candidate's NDCG@10 is below the promoted one's by more
            than this (absolute, >= 0).
        slice_days: Length of the gate slice (and of the valid part before it).
        store: The service's event store: promotions are recorded in its history (which
            running workers watch); None promotes in the registry only.
        actor: Who promoted, for the history.
        say: Progress lines.
        warm_start: Start a model that supports it from its promoted version's weights
            (see the module docstring); False fits every model from scratch.
        warm_epochs: With a warm start, at most this many epochs (early stopping on valid
            still applies); None keeps the model's configured epochs.
        blend: Choose the blend the service serves the new version with on the valid
            part (:func:`primetime.served_study.choose_served_blend`, around the
            selection fit), as ``primetime train`` does; False: the default blend.

    Raises:
        ValueError: a negative margin, a bad slice, an unknown model, a base log whose
            users clash with exported ones.
        FileNotFoundError: ``events`` is not an export folder.
    """
    from primetime.eval.protocol import EvalSet, evaluate
    from primetime.eval.significance import paired_test

    if not margin >= 0:
        raise ValueError(f"margin: expected >= 0, got {margin}")
    if not names:
        raise ValueError("names: no model to retrain")
    if warm_epochs is not None and warm_epochs < 1:
        raise ValueError(f"warm_epochs: expected >= 1, got {warm_epochs}")
    prepared = prepare_data(
        DataSpec(data=data, split="slice", events=Path(events), slice_days=slice_days)
    )
    sp = prepared.split
    evalset = EvalSet.for_test(sp)
    slice_from = int(sp.test.timestamp.min())
    fit_until = int(prepared.whole_log().timestamp.max())
    say(
        f"data: {prepared.name}, {len(sp.train)} train / {len(sp.valid)} valid / "
        f"{len(sp.test)} gate-slice events ({sp.protocol}), {len(evalset)} users in the slice"
    )
    results = []
    for name in names:
        before = registry.promoted(name) if name in registry.names() else None
        warm = warm_plan(name, before, slice_from, enabled=warm_start, epochs=warm_epochs)
        options, overrides = FitOptions(), {}
        if warm["from"] and before is not None:
            options = FitOptions(init_from=before.path)
            overrides = warm_overrides(before, warm_epochs)
        spec = FitSpec(name, data=prepared.spec, refit=True, overrides=overrides, options=options)
        run = fit_model(spec, data=prepared)
        if warm["from"]:
            carried = run.report.notes.get("warm_start") or {}
            warm.update({k: v for k, v in carried.items() if k != "from"})
        say(f"{name}: " + (f"warm start from {warm['from']}" if warm["from"] else warm["reason"]))
        cand = evaluate(run.selected, evalset, ks=(10,))
        cand_mean = float(cand.summary()[METRIC])
        if before is None:
            gate = Gate(
                METRIC, cand_mean, None, None, margin, None, None, None, None,
                len(evalset), sp.protocol, True, "nothing promoted yet",
            )  # fmt: skip
        else:
            old = served_form(registry.load(name, before.version), prepared)
            base = evaluate(old, evalset, ks=(10,))
            base_mean = float(base.summary()[METRIC])
            t = paired_test(cand, base, metric=METRIC)
            ok = cand_mean >= base_mean - margin
            reason = (
                f"{METRIC} {cand_mean:.4f} vs {base_mean:.4f} of {before.version}: "
                + ("within" if ok else "below")
                + f" the margin {margin:g} (diff {t['mean_diff']:+.4f}, p = {t['p_value']:.3g})"
            )
            seen_until = (before.meta.get("retrain") or {}).get("fit_until")
            if isinstance(seen_until, int) and seen_until >= slice_from:
                # no new events since that retrain: the promoted version was refit on the
                # very slice it is judged on, so the comparison favours it
                reason += f"; {before.version} has seen the slice (no events since it was fit?)"
            gate = Gate(
                METRIC, cand_mean, base_mean, before.version, margin, float(t["p_value"]),
                float(t["mean_diff"]), float(t["ci_low"]), float(t["ci_high"]),
                int(t["n_users"]), sp.protocol, ok, reason,
            )  # fmt: skip
        extra: dict[str, Any] = {
            "retrain": {**gate.as_dict(), "fit_until": fit_until, "warm_start": warm}
        }
        if blend:
            extra.update(served_blend_meta(run.selected, prepared))
        mv = register_run(
            run,
            registry,
            test={METRIC: cand_mean},
            notes=f"primetime retrain: {data} + {events}; {gate.reason}",
            extra=extra,
        )
        promoted = False
        if gate.promote:
            note = f"retrain gate: {gate.reason}"
            if store is not None:
                from primetime.service.promotion import promote

                promote(registry, store, name, mv.version, actor=actor, note=note[:2000])
            else:
                registry.promote(name, mv.version)
            promoted = True
        say(f"{name} {mv.version}: {'promoted' if promoted else 'not promoted'} — {gate.reason}")
        results.append(RetrainResult(name, registry.get(name, mv.version), gate, promoted))
    return results


def warm_plan(
    name: str,
    before: ModelVersion | None,
    slice_from: int,
    *,
    enabled: bool,
    epochs: int | None,
) -> dict[str, Any]:
    """Whether ``name``'s retrain starts from ``before`` (its promoted version).

    Returns:
        ``{"from": "name:vN", "epochs": epochs}`` for a warm start, or ``{"from": None,
        "reason": why not}`` (the ``meta.json["retrain"]["warm_start"]`` record).
    """
    if not enabled:
        return {"from": None, "reason": "cold start: warm start switched off"}
    if not get_model_class(name).supports_warm_start:
        return {"from": None, "reason": f"cold start: {name} does not support a warm start"}
    if before is None:
        return {"from": None, "reason": "cold start: no promoted version"}
    seen_until = (before.meta.get("retrain") or {}).get("fit_until")
    if isinstance(seen_until, int) and seen_until >= slice_from:
        return {
            "from": None,
            "reason": f"cold start: {before.version} has seen the gate slice, its weights "
            "would carry it into the candidate",
        }
    return {"from": f"{before.name}:{before.version}", "epochs": epochs}


def warm_overrides(before: ModelVersion, epochs: int | None) -> dict[str, Any]:
    """The promoted version's config (its ``bundle.json``), for a fit that starts from its
    weights: same shapes. Its ``epochs`` (a refit's pinned count) is dropped: ``epochs``
    when given, else the model's default (early stopping on valid picks within it)."""
    info = json.loads((Path(before.path) / "bundle.json").read_text())
    config = {k: v for k, v in dict(info.get("config") or {}).items() if k != "epochs"}
    if epochs is not None:
        config["epochs"] = epochs
    return config
