"""What a model may learn from besides interactions: :class:`SideData`.

One object carries the catalog, the knowledge graph, user metadata and item
texts, so a new model that needs one more kind of side information does not
change every call site of ``fit``. Everything is in the index space of the
training log: catalog row ``k`` is item_idx ``k + 1``, ``item_texts[k]`` is the
text of item_idx ``k`` (index 0, padding, is the empty string).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

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
        item_texts: Per item_idx, a short text (title, genres, description),
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
        """SideData with ``item_texts`` made from the catalog; an empty graph becomes None."""
        return cls(
            catalog=catalog,
            kg=kg if kg is not None and len(kg) else None,
            users=users,
            item_texts=item_texts(catalog) if catalog is not None else None,
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


def item_texts(catalog: Catalog) -> tuple[str, ...]:
    """``"Title (year). Genres: a, b. Description"`` per item_idx; index 0 is ``""``."""
    frame = catalog.frame
    titles = frame["title"].to_list()
    years = frame["year"].to_list()
    genres = frame["genres"].to_list()
    descriptions = frame["description"].to_list()
    out = [""]
    for title, year, gen, desc in zip(titles, years, genres, descriptions, strict=True):
        text = f"{title} ({year})" if year else str(title)
        if gen:
            text += ". Genres: " + ", ".join(gen)
        if desc:
            text += ". " + str(desc)
        out.append(text)
    return tuple(out)
