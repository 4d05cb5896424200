"""Titles added to a running service: the request body and how the catalog grows.

``POST /api/v1/admin/titles`` (and ``primetime titles add``) takes a :class:`TitleIn`.
:func:`grow_catalog` appends the title to the catalog and the knowledge graph (its
cast as ``actor`` and directors as ``director`` links to ``person:<name>``, in the
graph's own relation names when it has them), :func:`encode_new_texts` encodes the
new titles' texts once (:mod:`primetime.data.text`), and :func:`grow_model` grows one
model with ``extend_items`` (on a copy: the model in service is never touched).
:meth:`primetime.service.state.ServiceState.add_title` joins them and swaps the
result in.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from primetime.data.catalog import Catalog
from primetime.data.graph import KnowledgeGraph
from primetime.data.side import SideData, item_texts
from primetime.models.base import Recommender

log = logging.getLogger(__name__)

#: Models that score a title from its content (their ``extend_items`` can say True),
#: in the order a content member is chosen among the loaded ones.
CONTENT_MODELS = ("multimodal", "contrastive", "gnn", "sasrec", "genre-profile")

Name = str


class TitleIn(BaseModel):
    """A title to add to the running catalog (scored at once by the content models)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "item_id": "tt0816692",
                    "title": "Interstellar",
                    "year": 2014,
                    "genres": ["Sci-Fi", "Drama"],
                    "kind": "movie",
                    "description": "Explorers travel through a wormhole in space.",
                    "cast": ["Matthew McConaughey", "Anne Hathaway"],
                    "directors": ["Christopher Nolan"],
                }
            ]
        },
    )
    item_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
    title: str = Field(min_length=1, max_length=300, pattern=r"\S")
    year: int | None = Field(None, ge=1870, le=2100)
    genres: list[Name] = Field(default_factory=list, max_length=20)
    kind: str = Field("movie", pattern=r"^(movie|show)$")
    description: str | None = Field(None, max_length=5000)
    cast: list[Name] = Field(default_factory=list, max_length=50)
    crew: list[Name] = Field(default_factory=list, max_length=50)
    directors: list[Name] = Field(default_factory=list, max_length=20)
    network: str | None = Field(None, min_length=1, max_length=100)
    release_date: dt.date | None = None
    series_id: str | None = Field(None, min_length=1, max_length=64)
    season_number: int | None = Field(None, ge=1, le=1000)

    def catalog_row(self) -> dict[str, Any]:
        """The catalog frame's columns of this title."""
        return {
            "item_id": self.item_id,
            "title": self.title.strip(),
            "year": self.year,
            "genres": list(dict.fromkeys(self.genres)),
            "kind": self.kind,
            "network": self.network,
            "series_id": self.series_id,
            "season_number": self.season_number,
            "release_date": self.release_date,
            "cast": list(dict.fromkeys(self.cast)),
            "crew": list(dict.fromkeys([*self.directors, *self.crew])),
            "description": self.description,
        }


def _names_ok(values: list[str]) -> bool:
    return all(0 < len(v.strip()) <= 100 for v in values)


def check_names(body: TitleIn) -> list[tuple[tuple[str], str]]:
    """Problems with the name lists (each name 1-100 characters, not blank)."""
    return [
        ((name,), "every entry must be 1-100 characters and not blank")
        for name in ("genres", "cast", "crew", "directors")
        if not _names_ok(getattr(body, name))
    ]


def _relation(kg: KnowledgeGraph | None, short: str, fallback: str) -> str:
    """The graph's own relation ending in ``short`` (e.g. ``film.film.directed_by``)."""
    if kg is not None and len(kg):
        for rel in sorted(kg.relation_counts()):
            if rel.rsplit(".", 1)[-1].lower() in (short, fallback):
                return rel
    return short


def grow_catalog(
    catalog: Catalog, kg: KnowledgeGraph | None, titles: list[TitleIn]
) -> tuple[Catalog, KnowledgeGraph | None]:
    """The catalog with ``titles`` appended (new item_idx after the old ones) and the
    graph with their people (cast as actors, directors)."""
    rows = [t.catalog_row() for t in titles]
    new = pl.DataFrame(rows, schema=catalog.frame.schema, strict=False)
    grown = Catalog.from_frame(pl.concat([catalog.frame, new], how="vertical_relaxed"))
    actor = _relation(kg, "actor", "starring")
    director = _relation(kg, "director", "directed_by")
    triples = []
    for t in titles:
        triples += [(t.item_id, actor, f"person:{p.strip()}") for p in dict.fromkeys(t.cast)]
        triples += [
            (t.item_id, director, f"person:{p.strip()}") for p in dict.fromkeys(t.directors)
        ]
    if not triples:
        return grown, kg
    extra = pl.DataFrame(triples, schema=["head", "relation", "tail"], orient="row")
    if kg is None or not len(kg):
        return grown, KnowledgeGraph.from_frame(extra)
    return grown, KnowledgeGraph.from_frame(pl.concat([kg.triples, extra.cast(kg.triples.schema)]))


def needs_text(model: Recommender) -> bool:
    """Whether ``model`` reads text vectors (a content model with text on)."""
    return "text" in model.uses and bool(getattr(model.config, "use_text", True))


def encode_new_texts(
    catalog: Catalog, kg: KnowledgeGraph | None, n_old: int, known: np.ndarray | None
) -> np.ndarray | None:
    """(items.size, D) text vectors: ``known`` rows for the old titles (zero when not
    known) and the new titles' texts encoded (:func:`~primetime.data.text.encode_texts`).
    None when the encoder cannot run (the models that need text then keep the new
    titles out)."""
    from primetime.data.text import encode_texts

    new = Catalog.from_frame(catalog.frame.slice(n_old - 1))
    texts = item_texts(new, kg)[1:]
    try:
        vecs = encode_texts(texts)
    except Exception as err:  # no encoder installed, no cache folder …
        log.warning("cannot encode the new titles' texts (%s): text models skip them", err)
        return None
    dim = vecs.shape[1] if known is None else known.shape[1]
    if vecs.shape[1] != dim:
        return None
    out = np.zeros((catalog.items.size, dim), dtype=np.float32)
    if known is not None:
        out[: known.shape[0]] = known
    out[n_old:] = vecs
    return out


def grow_model(model: Recommender, side: SideData) -> Recommender | None:
    """A copy of ``model`` grown to ``side.catalog``'s titles, or None when it cannot
    score titles it was not trained on (or growing failed: logged)."""
    assert side.catalog is not None
    items = side.catalog.items
    if model.items is None or model.items == items:
        return model
    try:
        grown = copy.deepcopy(model)
        if grown.extend_items(items, side):
            return grown
    except Exception:
        log.exception("%s: extend_items failed; it keeps its own titles", model.name)
    return None
