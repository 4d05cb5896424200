"""Getting a service ready to start: train and register the models it serves.

``primetime serve`` calls :func:`ensure_models` so that a fresh machine goes
from nothing to a running service in one command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from primetime.registry import ModelRegistry, ModelVersion


def train_and_register(
    name: str,
    *,
    data: str,
    registry: ModelRegistry,
    overrides: dict[str, object] | None = None,
    promote: bool = True,
) -> ModelVersion:
    """Fit ``name`` on the leave-one-out train split of ``data`` (valid for early
    stopping), evaluate it on test (full ranking), and register it with those metrics.
    """
    from primetime.eval.protocol import EvalSet, evaluate
    from primetime.experiment import build_model, make_split, open_dataset

    ds = open_dataset(data).dataset
    sp = make_split(ds, "loo")
    model = build_model(name, dict(overrides or {}))
    report = model.fit(sp.train, valid=sp.valid if len(sp.valid) else None, catalog=ds.catalog)
    metrics = evaluate(model, EvalSet.for_test(sp), ks=(10,)).summary()
    mv = registry.register(
        model,
        metrics={k: float(v) for k, v in metrics.items() if k in ("HR@10", "NDCG@10", "MRR@10")},
        dataset=ds,
        notes=f"primetime serve bootstrap: loo split of {data}, test metrics",
        train_seconds=report.seconds,
    )
    if promote:
        mv = registry.promote(name, mv.version)
    return mv


def ensure_models(
    names: Sequence[str],
    *,
    data: str,
    registry: ModelRegistry,
    say: Callable[[str], None] = print,
) -> list[ModelVersion]:
    """Train and register every model of ``names`` the registry lacks."""
    made = []
    have = set(registry.names())
    for name in names:
        if name in have:
            continue
        say(f"no trained {name!r} in {registry.root}: training it on {data} (once)…")
        mv = train_and_register(name, data=data, registry=registry)
        say(f"  {name} {mv.version}: test NDCG@10 {mv.metrics.get('NDCG@10', float('nan')):.4f}")
        made.append(mv)
    return made
