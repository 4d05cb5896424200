"""Synthetic movie + TV worlds with a planted, known preference model (see :mod:`.world`)."""

from primetime.data.synthetic.world import (
    DAY,
    GENRE_TREE,
    HOLIDAY,
    HOLIDAY_KEYWORDS,
    NETWORKS,
    NEVER,
    PRESETS,
    TONES,
    WORLD_FORMAT_VERSION,
    TrueModel,
    World,
    WorldConfig,
    WorldLatents,
    generate,
    leaf_genres,
    load_or_generate,
)

__all__ = [
    "DAY",
    "GENRE_TREE",
    "HOLIDAY",
    "HOLIDAY_KEYWORDS",
    "NETWORKS",
    "NEVER",
    "PRESETS",
    "TONES",
    "WORLD_FORMAT_VERSION",
    "TrueModel",
    "World",
    "WorldConfig",
    "WorldLatents",
    "generate",
    "leaf_genres",
    "load_or_generate",
]
