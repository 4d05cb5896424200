"""Data layer: everything read from files and held in memory before any model.

Vocabularies, the catalog, interactions, users and the knowledge graph
(``Dataset``); loaders for MovieLens, RecBole atomic and generic tables
(``loaders``, ``movielens``, ``tabular``); synthetic worlds; splits and
bring-your-own split folders (``splits``, ``splitdir``); the side data a model
may learn from (``side``); opening a data set by name or path (``open``).
"""

from primetime.data.catalog import CATALOG_SCHEMA, Catalog
from primetime.data.dataset import Dataset
from primetime.data.events import EventType
from primetime.data.graph import KnowledgeGraph
from primetime.data.interactions import EVENT_TYPES, Interactions
from primetime.data.side import SideData
from primetime.data.users import Users
from primetime.data.vocab import Vocabulary

__all__ = [
    "CATALOG_SCHEMA",
    "EVENT_TYPES",
    "Catalog",
    "Dataset",
    "EventType",
    "Interactions",
    "KnowledgeGraph",
    "SideData",
    "Users",
    "Vocabulary",
]
