"""The recommendation pipeline shared by the service and the evaluation.

:class:`RecPipeline` (candidates -> filter -> rank -> blend -> diversity
re-rank -> top-k with reasons), live genre preferences
(:class:`GenrePreferences`) and reasons (:class:`Reason`).
"""

from primetime.pipeline.explain import Reason
from primetime.pipeline.index import PipelineConfig, PipelineIndex
from primetime.pipeline.pipeline import (
    CAROUSEL_ROWS,
    COMPONENTS,
    BlendWeights,
    Carousel,
    RecPipeline,
    ScoredItem,
)
from primetime.pipeline.realtime import (
    EVENT_WEIGHTS,
    Event,
    GenrePreferences,
    event_weight,
    insights,
    timeline,
)

__all__ = [
    "CAROUSEL_ROWS",
    "COMPONENTS",
    "EVENT_WEIGHTS",
    "BlendWeights",
    "Carousel",
    "Event",
    "GenrePreferences",
    "PipelineConfig",
    "PipelineIndex",
    "Reason",
    "RecPipeline",
    "ScoredItem",
    "event_weight",
    "insights",
    "timeline",
]
