"""Data layer: vocabularies, catalog, interactions, users, knowledge graph, loaders, splits."""

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
