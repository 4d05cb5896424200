"""Typed triples linking titles to people, genres, networks and other entities."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

KG_SCHEMA = {"head": pl.Utf8(), "relation": pl.Utf8(), "tail": pl.Utf8()}


@dataclass(frozen=True, eq=False)
class KnowledgeGraph:
    """Triples ``(head, relation, tail)`` as strings.

    Heads that are titles use the catalog's ``item_id``; other entities keep
    their own ids (Freebase mids, ``person:…``, ``genre:…``, ``network:…``).
    """

    triples: pl.DataFrame

    @classmethod
    def empty(cls) -> KnowledgeGraph:
        return cls(pl.DataFrame(schema=KG_SCHEMA))

    @classmethod
    def from_frame(cls, df: pl.DataFrame) -> KnowledgeGraph:
        missing = [c for c in KG_SCHEMA if c not in df.columns]
        if missing:
            raise ValueError(f"knowledge graph frame lacks column(s) {missing}")
        return cls(df.select([pl.col(c).cast(t) for c, t in KG_SCHEMA.items()]))

    def __len__(self) -> int:
        return self.triples.height

    def relation_counts(self) -> dict[str, int]:
        vc = self.triples["relation"].value_counts(sort=True)
        return dict(zip(vc["relation"].to_list(), vc["count"].to_list(), strict=True))
