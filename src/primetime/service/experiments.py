"""A/B experiment reports: click-through and completion per arm, with Wilson intervals."""

from __future__ import annotations

import math
from typing import Any

from primetime.service.store import EventStore


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (95% for z = 1.96); (0, 0) when n = 0.

    Better than the normal approximation for small n and rates near 0 or 1,
    which is what click-through rates are.
    """
    if n <= 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def experiment_report(store: EventStore, experiment_id: str) -> dict[str, Any]:
    """Per-arm users, impressions, clicks, completions, CTR and completion rate with
    95% Wilson intervals (definitions of click and completion:
    :meth:`EventStore.experiment_outcomes`).

    Raises:
        KeyError: for an unknown experiment.
    """
    exp = store.experiment(experiment_id)
    if exp is None:
        raise KeyError(f"no experiment {experiment_id!r}")
    versions = {a.name: a.model_version for a in exp.arms}
    arms = []
    for o in store.experiment_outcomes(experiment_id):
        arms.append(
            {
                "arm": o.arm,
                "model_version": versions.get(o.arm, "?"),
                "users": o.users,
                "impressions": o.impressions,
                "clicks": o.clicks,
                "completions": o.completions,
                "ctr": o.ctr,
                "ctr_ci": wilson(o.clicks, o.impressions),
                "completion_rate": o.completion_rate,
                "completion_ci": wilson(o.completions, o.impressions),
            }
        )
    return {"id": exp.id, "name": exp.name, "active": exp.active, "arms": arms}
