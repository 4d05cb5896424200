"""Opening a data set by name or path: the built-in ones, synthetic worlds, files.

The one place that turns a user's ``--data`` spec into a :class:`Dataset`, used
by the CLI, the life cycle and the service alike.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from primetime import paths
from primetime.data.dataset import Dataset

log = logging.getLogger(__name__)

_SYNTH = re.compile(r"^synthetic-(?P<preset>[a-z0-9-]+?)(?:-seed(?P<seed>\d+))?$")

#: ``progress(done, total)``, called while a synthetic world is generated.
Progress = Callable[[int, int], None]


@dataclass
class Loaded:
    """A dataset and, for a synthetic world, the world (for its oracle)."""

    dataset: Dataset
    world: Any | None = None


def open_dataset(spec: str, *, progress: Progress | None = None) -> Loaded:
    """Open a dataset by name or path.

    Args:
        spec: ``ml-100k``; ``synthetic-<preset>`` or ``synthetic-<preset>-seed<N>``
            (generated once, then cached); a GroupLens folder, a RecBole atomic
            folder, or a CSV/TSV/Parquet log (see ``primetime data info --help``).
        progress: Called while a synthetic world is generated.
    """
    m = _SYNTH.match(spec)
    if m:
        from primetime.data import synthetic

        preset, seed = m["preset"], int(m["seed"] or 0)
        if preset not in synthetic.PRESETS:
            raise ValueError(
                f"unknown synthetic preset {preset!r}; known: {', '.join(synthetic.PRESETS)}"
            )
        name = f"synthetic-{preset}-seed{seed}"
        d = paths.datasets_dir() / name
        cfg = dataclasses.replace(synthetic.PRESETS[preset], seed=seed)
        found = synthetic.saved_format(d)
        current = found == synthetic.WORLD_FORMAT_VERSION
        if (d / "world.json").exists() and not current:
            log.warning("%s: cached world has format %s; regenerating", name, found)
        world = synthetic.World.load(d) if current else None
        if world is not None and world.config != cfg:
            log.warning(
                "%s: cached world was made with another preset definition; regenerating", name
            )
            world = None
        if world is None:
            world = synthetic.generate(cfg, progress=progress)
            world.save(d)
        return Loaded(world.dataset, world)
    from primetime.data.loaders import prepare

    return Loaded(prepare(spec))
