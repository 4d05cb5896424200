"""Models, found by name in :data:`MODELS` (grep for a name to find its class).

Owns every recommender: the contract (``base``: ``fit(train, valid=, side=,
options=)``, ``score``, ``save``/``load``), one file per model, and helpers models
share (``sequential``, ``histories``). Models never import ``eval``; they are fit
through :mod:`primetime.lifecycle`.
"""

from primetime.models.base import FitReport, Recommender
from primetime.models.contrastive import ContrastiveRecommender
from primetime.models.ease import EASERecommender
from primetime.models.ensemble import EnsembleRecommender
from primetime.models.factorization import ALSRecommender, BPRRecommender
from primetime.models.gnn import GNNRecommender
from primetime.models.gru4rec import GRU4RecRecommender
from primetime.models.itemknn import ItemKNNRecommender
from primetime.models.maml import MAMLRecommender
from primetime.models.mf import MFRecommender
from primetime.models.multimodal import MultimodalRecommender
from primetime.models.ncf import NCFImplicitRecommender, NCFRecommender
from primetime.models.popularity import PopularityRecommender, TrendingRecommender
from primetime.models.reference import (
    GenreProfileRecommender,
    GenreReleasedRecommender,
    RandomRecommender,
)
from primetime.models.sasrec import SASRecRecommender
from primetime.models.temporal import TemporalRecommender

MODELS: dict[str, type[Recommender]] = {
    "popularity": PopularityRecommender,
    "trending": TrendingRecommender,
    "random": RandomRecommender,
    "genre-profile": GenreProfileRecommender,
    "genre-released": GenreReleasedRecommender,
    "itemknn": ItemKNNRecommender,
    "ease": EASERecommender,
    "als": ALSRecommender,
    "bpr": BPRRecommender,
    "mf": MFRecommender,
    "sasrec": SASRecRecommender,
    "temporal": TemporalRecommender,
    "ncf": NCFRecommender,
    "ncf-implicit": NCFImplicitRecommender,
    "gru4rec": GRU4RecRecommender,
    "gnn": GNNRecommender,
    "multimodal": MultimodalRecommender,
    "contrastive": ContrastiveRecommender,
    "ensemble": EnsembleRecommender,
    "maml": MAMLRecommender,
}


def get_model_class(name: str) -> type[Recommender]:
    """The class registered under ``name``; the error lists the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


__all__ = ["MODELS", "FitReport", "Recommender", "get_model_class"]
