"""The recommendation pipeline shared by the service and the evaluation.

:class:`RecPipeline` (candidates -> filter -> rank -> blend -> diversity
re-rank -> top-k with reasons), live genre preferences
(:class:`GenrePreferences`) and reasons (:class:`Reason`).

Modules, by job:

- ``pipeline``: :class:`RecPipeline`, the orchestration (build, requests,
  filter, rank, the public ``recommend`` / ``score`` / ``similar`` /
  ``carousels``).
- ``index``: the static index built once per catalog and train log
  (:class:`PipelineIndex`, :class:`PipelineConfig`, neighbours, demographics).
- ``blend``: :class:`BlendWeights` and the weighted, z-scored sum of the
  member scores (model, realtime, content, popularity, trending).
- ``rerank``: the MMR diversity re-rank and top-k selection.
- ``explain``: reasons (:class:`Reason`, codes and texts), :class:`ScoredItem`
  and how each recommended title gets its reason.
- ``carousels``: the home-page rows (:class:`Carousel`) and their UI text.
- ``stages``: pure array helpers of the stages (z-scores, history weights, checks).
- ``realtime``: live genre preferences from events, insights, timelines.
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
