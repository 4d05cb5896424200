"""What a model may learn from besides interactions: :class:`SideData`.

One object carries the catalog, the knowledge graph, user metadata and item
texts, so a new model that needs one more kind of side information does not
change every call site of ``fit``. Everything is in the index space of the
training log: catalog row ``k`` is item_idx ``k + 1``, ``item_texts[k]`` is the
text of item_idx ``k`` (index 0, padding, is the empty string).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from primetime.data.catalog import Catalog
from primetime.data.graph import KnowledgeGraph
from primetime.data.users import Users

if TYPE_CHECKING:
    from primetime.data.dataset import Dataset
    from primetime.data.vocab import Vocabulary


@dataclass(frozen=True, eq=False)
class SideData:
    """Side information for ``Recommender.fit``; every part may be missing.

    Attributes:
        catalog: Title metadata (genres, year, kind, description …), same item
            vocabulary as the training log.
        kg: Typed triples; titles appear by their ``item_id``.
        users: User metadata (age, gender, occupation …), same user vocabulary.
        item_texts: Per item_idx, a short text (title, kind, genres, people and
            counts of the graph's facts, description; see :func:`item_texts`),
            index 0 empty; None when no catalog is known.
        text_vectors: (items.size, D) float32 unit vectors of ``item_texts`` (row 0
            and empty texts zero), filled by :meth:`with_text_vectors` for models
            whose ``uses`` names "text"; None until then.
    """

    catalog: Catalog | None = None
    kg: KnowledgeGraph | None = None
    users: Users | None = None
    item_texts: tuple[str, ...] | None = None
    text_vectors: np.ndarray | None = None

    def with_text_vectors(self, *, encoder: str | None = None, device: str = "cpu") -> SideData:
        """This side data with ``text_vectors`` encoded (cached on disk by text)."""
        if self.text_vectors is not None or self.item_texts is None:
            return self
        from primetime.data.text import encode_texts

        vectors = encode_texts(self.item_texts, encoder=encoder, device=device)
        return dataclasses.replace(self, text_vectors=vectors)

    def without_kg(self) -> SideData:
        """This side data as if the data set had no knowledge graph: no ``kg``, texts
        made from the catalog alone, not yet encoded (the models' ``use_kg=false``
        ablations)."""
        if self.kg is None:
            return self
        return SideData.build(catalog=self.catalog, kg=None, users=self.users)

    @classmethod
    def of(cls, dataset: Dataset) -> SideData:
        """Everything a prepared data set knows besides its interactions."""
        return cls.build(catalog=dataset.catalog, kg=dataset.kg, users=dataset.users)

    @classmethod
    def build(
        cls,
        *,
        catalog: Catalog | None = None,
        kg: KnowledgeGraph | None = None,
        users: Users | None = None,
    ) -> SideData:
        """SideData with ``item_texts`` from the catalog and graph; an empty graph becomes None."""
        return cls(
            catalog=catalog,
            kg=kg if kg is not None and len(kg) else None,
            users=users,
            item_texts=item_texts(catalog, kg) if catalog is not None else None,
        )

    @property
    def items(self) -> Vocabulary | None:
        """The item vocabulary of the catalog, if one is given."""
        return self.catalog.items if self.catalog is not None else None

    def describe(self) -> dict[str, int]:
        """Counts for logs and bundles: titles, triples, users, texts."""
        return {
            "catalog_titles": len(self.catalog) if self.catalog is not None else 0,
            "kg_triples": len(self.kg) if self.kg is not None else 0,
            "user_rows": len(self.users) if self.users is not None else 0,
            "item_texts": sum(1 for t in self.item_texts or () if t),
            "text_dims": int(self.text_vectors.shape[1]) if self.text_vectors is not None else 0,
        }


#: Relation (the last dotted part of its name) -> the fact it states, for counts in words.
_FACT_OF = {
    "actor": "actor",
    "director": "director",
    "directed_by": "director",
    "creator": "creator",
    "writer": "writer",
    "written_by": "writer",
    "produced_by": "producer",
    "producer": "producer",
    "cinematography": "cinematographer",
    "production_companies": "company",
    "award_won": "award_won",
    "award_nomination": "award_nomination",
    "language": "language",
    "country": "country",
    "subjects": "subject",
    "sequel": "sequel",
    "prequel": "prequel",
}
#: Fact -> (one, several) in words, in the order the texts list them.
_FACT_WORDS = {
    "actor": ("cast member", "cast members"),
    "creator": ("creator", "creators"),
    "director": ("director", "directors"),
    "writer": ("writer", "writers"),
    "producer": ("producer", "producers"),
    "cinematographer": ("cinematographer", "cinematographers"),
    "company": ("production company", "production companies"),
    "award_won": ("award won", "awards won"),
    "award_nomination": ("award nomination", "award nominations"),
    "language": ("language", "languages"),
    "country": ("country", "countries"),
    "subject": ("subject", "subjects"),
    "sequel": ("a sequel", "sequels"),
    "prequel": ("a prequel", "prequels"),
}
#: Facts whose people are named when the graph knows their names (``person:<name>``).
_NAMED = {"creator": "Created by", "director": "Directed by", "writer": "Written by"}
#: Lead cast members named.
LEAD_CAST = 3
_SEASON_SUFFIX = re.compile(r"\s*(?:[—–:-]\s*)?Season \d+$")


def _title_facts(kg: KnowledgeGraph, item_ids: list[str]) -> dict[str, dict[str, list[str]]]:
    """item_id -> fact (or "genre" / "subgenre") -> distinct tails, in graph order."""
    triples = kg.triples.filter(pl.col("head").is_in(pl.Series(item_ids, dtype=pl.Utf8).implode()))
    out: dict[str, dict[str, list[str]]] = {}
    grouped = triples.group_by("head", "relation", maintain_order=True).agg("tail")
    for head, relation, tails in grouped.iter_rows():
        short = relation.rsplit(".", 1)[-1]
        if short in ("genre", "subgenre"):
            fact = short  # only our own "genre:<name>" tails; Freebase genres are ids
            tails = [t.removeprefix("genre:") for t in tails if t.startswith("genre:")]
        elif short in _FACT_OF:
            fact = _FACT_OF[short]
        else:
            continue
        facts = out.setdefault(head, {})
        facts[fact] = list(dict.fromkeys([*facts.get(fact, []), *tails]))
    return out


def _person(tail: str) -> str | None:
    """The name in ``person:<name>``; None for an id (``person:000123``, a Freebase mid)."""
    name = tail.removeprefix("person:")
    return name if name != tail and name and not name.isdigit() else None


def _count(n: int, one: str, several: str) -> str:
    """``1 director``, ``a sequel``, ``3 writers``."""
    if n == 1:
        return one if one.startswith("a ") else f"1 {one}"
    return f"{n} {several}"


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def item_texts(catalog: Catalog, kg: KnowledgeGraph | None = None) -> tuple[str, ...]:
    """One sentence-like text per item_idx from the catalog and the graph; index 0 is ``""``.

    Sentences, each left out when unknown: ``Title (year)``; the kind when the
    catalog holds shows (``Movie``, ``Season 2 of <series>``, ``Series``);
    ``On <network>``; ``Genres: …`` (and ``Subgenres: …`` when the graph tells
    them apart); the people the graph names (``Created by``, ``Directed by``,
    ``Written by``, ``Starring`` the first :data:`LEAD_CAST`; else the catalog's
    cast); counts of the graph's other facts in words (``24 cast members, 1
    director, 4 awards won, a sequel`` — MovieLens' Freebase entities have no
    names); the description. E.g. ``Star Wars (1977). Genres: Action,
    Adventure. 40 cast members, 1 director, 2 writers, a sequel.``
    """
    frame = catalog.frame
    ids = frame["item_id"].to_list()
    facts = _title_facts(kg, ids) if kg is not None and len(kg) else {}
    has_shows = bool((frame["kind"] == "show").any())
    cols = ("title", "year", "genres", "kind", "network", "season_number", "cast", "description")
    out = [""]
    for iid, row in zip(ids, frame.select(cols).iter_rows(), strict=True):
        title, year, genres, kind, network, season, cast, desc = row
        f = facts.get(iid, {})
        parts = [f"{title} ({year})" if year else str(title)]
        kind_text = ""
        if has_shows:
            if kind == "movie":
                kind_text = "Movie"
            elif season is not None:
                series = _SEASON_SUFFIX.sub("", str(title)) or str(title)
                kind_text = f"Season {season} of {series}"
            else:
                kind_text = "Series"
        if kind_text and not str(desc or "").startswith(kind_text):
            parts.append(kind_text)
        if network:
            parts.append(f"On {network}")
        subs = set(f.get("subgenre", ()))
        top = [g for g in genres or () if g not in subs]
        if top:
            parts.append("Genres: " + ", ".join(top))
        if subs:
            parts.append("Subgenres: " + ", ".join(f["subgenre"]))
        named = {k: [n for n in map(_person, f.get(k, ())) if n is not None] for k in _NAMED}
        parts += [f"{_NAMED[k]} {_names(v)}" for k, v in named.items() if v]
        lead = [n for n in map(_person, f.get("actor", ())) if n is not None] or list(cast or ())
        if lead:
            parts.append("Starring " + _names(lead[:LEAD_CAST]))
        counts = []
        for fact, (one, several) in _FACT_WORDS.items():
            n = len(f.get(fact, ()))
            if not n or named.get(fact) or (fact == "actor" and lead):
                continue
            counts.append(_count(n, one, several))
        if counts:
            joined = ", ".join(counts)
            parts.append(joined[0].upper() + joined[1:])
        text = ". ".join(parts) + "."
        if desc:
            text += " " + str(desc)
        out.append(text)
    return tuple(out)
