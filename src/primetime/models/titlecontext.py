"""Request-time terms of the content head: what a new title is *at the moment asked*.

The content head (:mod:`primetime.models.coldhead`) scores a title that nobody has
watched from what it is, for a user's history; it does not know when the user asks.
Three things about a new title are only known then, or only between this title and
this user's history, and an embedding of the title's content cannot carry them:

- **out yet** — a title released after the request cannot be watched; among new
  titles many are not out at a given request (the service drops them from served
  lists, :mod:`primetime.pipeline`; the bare model must rank them low too);
- **how recent** — a title in its first weeks draws more viewers (a premiere);
- **linked to what the user watched** — the next season of a show the user watched,
  a title on a network the user watches, the same director or cast: counts of the
  history's titles that share an entity with the title, per relation of the
  knowledge graph, and of the history's titles linked to it title to title
  (``next_season``: the user watched the season before). These are the meta-path
  counts of heterogeneous-information-network recommenders (Yu et al. 2014,
  "Personalized Entity Recommendation: A Heterogeneous Information Network
  Approach", WSDM), counted per relation so one weight serves every show, director
  or network, including one no training event reached.

:class:`TitleFacts` holds a title's release day and its links; :meth:`TitleFacts.features`
gives the terms of B requests against C titles, and :func:`fit_weights` learns one
weight per term (and a scale for the head's score) on the head's training positions,
each asked at the time its next title was watched, with the head frozen
(:class:`RequestTerms` keeps the result). The graph and contrastive models fit them
beside their content head (``head_context``); the multimodal model, which has no head,
after training, against its content-only rows (``request_terms``). Written
here rather than taken from a library: the terms are a handful of sparse products
over the project's own link tables, and the weights a softmax regression over them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from primetime.data.graph import KnowledgeGraph
from primetime.data.side import SideData
from primetime.data.vocab import Vocabulary
from primetime.types import UserContext

DAY = 86400.0
#: Release-age buckets (days since release at the request), each a term of its own:
#: [0, 30), [30, 90), [90, 365); older titles are the base.
AGE_EDGES = (0.0, 30.0, 90.0, 365.0)
#: The int64 link arrays of :class:`TitleFacts` (and of the graph model's ``TitleLinks``).
LINK_ARRAYS = ("item", "entity", "relation", "pair_a", "pair_b", "pair_relation")
#: :func:`fit_weights` keeps batches (their terms packed by :meth:`TitleFacts.codes`, head
#: logits and history mask) while they take at most this many bytes (ml-100k: 20
#: batches of 500 x 1,678 titles x 27 bytes, 453 MB).
CACHE_BYTES = 512 * 2**20


def release_days(side: SideData, start: int, stop: int) -> np.ndarray:
    """(stop - start,) release days of titles ``start .. stop - 1`` (days since
    1970-01-01, NaN unknown or without a catalog; :meth:`Catalog.dates`)."""
    cat = side.catalog
    if cat is None or cat.items.size < stop:
        return np.full(stop - start, np.nan)
    return cat.dates()[1][start:stop]


def relation_name(relation: str, title_is_head: bool) -> str:
    """A short name usable in a module key: ``film.film.directed_by`` -> ``directed_by``;
    the reverse Freebase form ``film.director.film`` (title as tail) -> ``director``."""
    parts = relation.split(".")
    name = parts[-1] if title_is_head or len(parts) < 3 else parts[-2]
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "related"


def new_title_pairs(
    kg: KnowledgeGraph | None, items: Vocabulary, n_old: int, pair_relations: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Title-title links ``a -> b`` of ``kg`` with a title added after fit at one end
    (item_idx >= ``n_old``) and a title of ``items`` at the other, for the relations the
    terms know (``pair_relations``; others are dropped): what lets an added "Season 4"
    score for the users who watched Season 3.

    Returns:
        ``(a, b, relation)`` (P,) int64 arrays, relation indices into ``pair_relations``.
    """
    empty = np.zeros(0, np.int64)
    if kg is None or not len(kg) or not pair_relations or n_old >= items.size:
        return empty, empty, empty
    t = kg.triples
    head = items.indices(t["head"], strict=False)  # (N,) 0 where not a title
    tail = items.indices(t["tail"], strict=False)
    keep = (head > 0) & (tail > 0) & ((head >= n_old) | (tail >= n_old))
    index = {r: k for k, r in enumerate(pair_relations)}
    rel = [index.get(relation_name(r, True), -1) for r in t["relation"].filter(keep).to_list()]
    rel_a = np.asarray(rel, dtype=np.int64)
    known = rel_a >= 0
    a = np.asarray(head[keep], dtype=np.int64)[known]
    b = np.asarray(tail[keep], dtype=np.int64)[known]
    return a, b, rel_a[known]


def new_entity_links(
    kg: KnowledgeGraph | None,
    items: Vocabulary,
    n_old: int,
    entities: Sequence[str],
    relations: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Links of ``kg`` from titles added after fit (item_idx >= ``n_old``) to the
    entities a fit kept (``entities``: ``relation:entity`` names, index 1.. in that
    order) by the relations it knows (``relations``); entities the fit never had, and
    links between two added titles, are dropped: what lets an added film by a known
    director count for the director's viewers.

    Returns:
        ``(item, entity, relation)`` (E,) int64 arrays, one link per (title, entity).
    """
    empty = np.zeros(0, np.int64)
    if kg is None or not len(kg) or not entities or n_old >= items.size:
        return empty, empty, empty
    new_ids = set(items.ids()[n_old - 1 :])
    t = kg.triples.filter(pl.col("head").is_in(list(new_ids)) | pl.col("tail").is_in(list(new_ids)))
    ent_index = {e: k + 1 for k, e in enumerate(entities)}
    rel_index = {r: k for k, r in enumerate(relations)}
    found: dict[tuple[int, int], int] = {}
    for head, rel, tail in t.iter_rows():
        title_is_head = head in new_ids
        if title_is_head and tail in new_ids:
            continue  # a link between two new titles: no trained node on either end
        item, entity = (head, tail) if title_is_head else (tail, head)
        name = relation_name(rel, title_is_head)
        e = ent_index.get(f"{name}:{entity}")
        if e is not None and name in rel_index:
            found.setdefault((items.index(item), e), rel_index[name])
    return (
        np.array([k[0] for k in found], dtype=np.int64),
        np.array([k[1] for k in found], dtype=np.int64),
        np.array(list(found.values()), dtype=np.int64),
    )


@functools.cache
def _unpacked(dtype: str) -> np.ndarray:
    """The float32 term of each code of ``dtype`` (:meth:`TitleFacts.codes`): log1p of
    the count, computed as :meth:`TitleFacts.features` computes it; the largest code a
    flag's 1."""
    top = int(np.iinfo(np.dtype(dtype)).max)
    out = np.log1p(np.arange(top + 1, dtype=np.float32))
    out[top] = 1.0
    return out


def unpack(codes: np.ndarray) -> np.ndarray:
    """(B, C, F) float32 terms of :meth:`TitleFacts.codes`, bit for bit those of
    :meth:`TitleFacts.features`."""
    return _unpacked(codes.dtype.str)[codes]


@dataclass
class TitleFacts:
    """What :meth:`features` reads of every title.

    Attributes:
        release_day: (V,) float64 days since 1970-01-01, NaN unknown (row 0 padding).
        item, entity, relation: (E,) title-entity links: item_idx, entity index (1..)
            and relation index into ``relations``.
        relations: Names of the title-entity relations.
        entities: Names of the entities (``relation:entity``, index 1.. in this order),
            for titles added later (:meth:`grow`); empty in a bundle saved before.
        pair_a, pair_b, pair_relation: (P,) title-title links ``a -> b`` and their
            relation index into ``pair_relations``.
        pair_relations: Names of the title-title relations.
    """

    release_day: np.ndarray
    item: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    entity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    relation: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    relations: list[str] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    pair_a: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_b: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_relation: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_relations: list[str] = field(default_factory=list)
    _mats: list[sp.csr_matrix] | None = field(default=None, repr=False)
    _left: sp.csr_matrix | None = field(default=None, repr=False)
    _right: tuple[np.ndarray, sp.csr_matrix] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, release_day: np.ndarray, links: object | None = None) -> TitleFacts:
        """Facts from a release-day table and, optionally, a model's link tables
        (an object with ``item``, ``entity``, ``relation``, ``relations``, ``pair_a``,
        ``pair_b``, ``pair_relation``, ``pair_relations``: the graph model's
        ``TitleLinks``)."""
        out = cls(np.asarray(release_day, dtype=np.float64).copy())
        if links is not None:
            for name in LINK_ARRAYS:
                setattr(out, name, np.asarray(getattr(links, name), dtype=np.int64).copy())
            out.relations = list(links.relations)  # type: ignore[attr-defined]
            out.entities = list(getattr(links, "entities", []))
            out.pair_relations = list(links.pair_relations)  # type: ignore[attr-defined]
        return out

    @property
    def size(self) -> int:
        """Titles (padding included)."""
        return int(self.release_day.size)

    def names(self) -> list[str]:
        """The terms, in the order of :meth:`features`' last axis."""
        ages = [f"age<{int(b)}d" for b in AGE_EDGES[1:]]
        pairs = [f"{d}:{r}" for r in self.pair_relations for d in ("after", "before")]
        return ["later", *ages, *(f"shared:{r}" for r in self.relations), *pairs]

    def _matrices(self) -> list[sp.csr_matrix]:
        """Per relation the (V, E_r) title-entity incidence, then per title-title
        relation the (V, V) ``a -> b`` matrix and its transpose (built once)."""
        if self._mats is None:
            v = self.size
            mats: list[sp.csr_matrix] = []
            n_ent = int(self.entity.max()) + 1 if len(self.entity) else 1
            for r in range(len(self.relations)):
                m = self.relation == r
                mats.append(
                    sp.csr_matrix(
                        (np.ones(int(m.sum()), np.float32), (self.item[m], self.entity[m])),
                        shape=(v, n_ent),
                    )
                )
            for r in range(len(self.pair_relations)):
                m = self.pair_relation == r
                a = sp.csr_matrix(
                    (np.ones(int(m.sum()), np.float32), (self.pair_a[m], self.pair_b[m])),
                    shape=(v, v),
                )
                mats += [a, a.T.tocsr()]
            self._mats = mats
        return self._mats

    def features(
        self, histories: Sequence[np.ndarray], now: np.ndarray, titles: np.ndarray
    ) -> np.ndarray:
        """(B, C, F) float32 terms of B requests against ``titles`` (C,) item_idx.

        Args:
            histories: Each request's history (item_idx; repeats count once).
            now: (B,) float unix seconds of each request, NaN unknown (then no title
                counts as later and no age bucket is set).

        Every term is 0 for a title out for a year or more that shares nothing with
        the history, so the terms never lift a new title over a watched one for what
        it is not (a title out or not scores the same when the request time is unknown).
        """
        counts, flags, shape = self._counts(histories, now, titles)
        out = np.zeros(shape, dtype=np.float32)
        if counts is not None:
            # written first: ``toarray`` clears the buffer it is given
            counts.data = np.log1p(counts.data.astype(np.float32, copy=False))
            counts.toarray(out=out.reshape(shape[0], -1))
        out.reshape(-1)[flags] = 1.0
        return out

    def codes(
        self, histories: Sequence[np.ndarray], now: np.ndarray, titles: np.ndarray
    ) -> np.ndarray | None:
        """:meth:`features` packed one byte a term (two where a count reaches 255): the
        flags as the dtype's largest value, every other term as its whole count;
        :func:`unpack` gives the features bit for bit at a third of their cost. None
        where a count does not fit two bytes."""
        counts, flags, shape = self._counts(histories, now, titles)
        top = float(counts.data.max(initial=0.0)) if counts is not None else 0.0
        dtype = next((d for d in (np.uint8, np.uint16) if top < np.iinfo(d).max), None)
        if dtype is None:
            return None
        out = np.zeros(shape, dtype=dtype)
        if counts is not None:  # not ``astype``: it sorts the indices first, for nothing
            small = sp.csr_matrix(
                (counts.data.astype(dtype), counts.indices, counts.indptr), shape=counts.shape
            )
            small.toarray(out=out.reshape(shape[0], -1))
        out.reshape(-1)[flags] = np.iinfo(dtype).max
        return out

    def _counts(
        self, histories: Sequence[np.ndarray], now: np.ndarray, titles: np.ndarray
    ) -> tuple[sp.csr_matrix | None, np.ndarray, tuple[int, int, int]]:
        """What :meth:`features` is made of: the counts (B, C * F) (None without
        links), the flat indices of the flags set and the shape (B, C, F)."""
        titles = np.asarray(titles, dtype=np.int64)
        b, c = len(histories), len(titles)
        mats = self._matrices()
        shape = (b, c, 4 + len(mats))
        counts = None
        if mats and b:
            rows = [np.unique(np.asarray(h, dtype=np.int64)) for h in histories]
            rows = [h[(h > 0) & (h < self.size)] for h in rows]
            hist = sp.csr_matrix(
                (
                    np.ones(sum(len(h) for h in rows), np.float32),
                    (
                        np.repeat(np.arange(b), [len(h) for h in rows]),
                        np.concatenate(rows) if rows else np.zeros(0, np.int64),
                    ),
                ),
                shape=(b, self.size),
            )  # (B, V)
            # every relation in one product (:meth:`_left_matrix`, :meth:`_columns`): the
            # history titles' entities, counted, against each title's, and the history
            # titles linked to it, landing at [b, c, 4 + k] of (B, C, F) seen as (B, C * F)
            counts = (hist @ self._left_matrix()) @ self._columns(titles)  # (B, C * F)
        day = np.asarray(now, dtype=np.float64)[:, None] / DAY  # (B, 1)
        rel = self.release_day[titles][None, :]  # (1, C)
        age = (day - rel).ravel()  # (B * C,) NaN where either is unknown
        # 0 later (released after the request), 1-3 the age buckets, 4 a year or more
        # or unknown (NaN sorts last): one flag at most per title, set where it is
        col = np.searchsorted(np.asarray(AGE_EDGES), age, side="right")
        at = np.flatnonzero(col < 4)
        return counts, at * shape[2] + col[at], shape

    def _left_matrix(self) -> sp.csr_matrix:
        """(V, R * E + V): each title's entities, one block of columns per entity
        relation, then the title itself (what the title-title links are read from)."""
        if self._left is None:
            mats, n_rel = self._matrices(), len(self.relations)
            blocks = mats[:n_rel]
            if len(mats) > n_rel:  # title-title relations
                blocks.append(sp.identity(self.size, np.float32, "csr"))
            self._left = sp.hstack(blocks, format="csr", dtype=np.float32)
        return self._left

    def _columns(self, titles: np.ndarray) -> sp.csr_matrix:
        """(R * E + V, C * F): per matrix ``k`` of :meth:`_matrices` its part for
        ``titles`` (C,), (E, C) title entities or (V, C) links into them, at columns
        ``c * F + 4 + k`` (F = 4 + len(matrices)), so one product with
        :meth:`_left_matrix` counts every relation. The last call's kept (a model scores
        the same titles at every request: slicing them anew cost most of a request)."""
        if self._right is not None and np.array_equal(self._right[0], titles):
            return self._right[1]
        mats, n_rel = self._matrices(), len(self.relations)
        width = 4 + len(mats)
        n_ent = mats[0].shape[1] if n_rel else 0
        r_idx, c_idx, vals = [], [], []
        for k, m in enumerate(mats):
            part = (m[titles].T if k < n_rel else m[:, titles]).tocoo()  # (E, C) or (V, C)
            r_idx.append(part.row + (k * n_ent if k < n_rel else n_rel * n_ent))
            c_idx.append(part.col.astype(np.int64) * width + 4 + k)
            vals.append(part.data)
        shape = (n_rel * n_ent + (self.size if len(mats) > n_rel else 0), len(titles) * width)
        right = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(r_idx), np.concatenate(c_idx))), shape=shape
        )
        self._right = (titles.copy(), right)
        return right

    def grow(
        self,
        release_day: np.ndarray,
        item: np.ndarray | None = None,
        entity: np.ndarray | None = None,
        relation: np.ndarray | None = None,
        *,
        kg: KnowledgeGraph | None = None,
        items: Vocabulary | None = None,
    ) -> None:
        """Add titles (their release days, in item_idx order after the last), their
        links to known entities (``item``, ``entity``, ``relation``: relation indices
        into :attr:`relations`; None: found in ``kg`` by :func:`new_entity_links` for
        the :attr:`entities` kept) and, with ``kg`` and the grown ``items``, their
        links to other titles (:func:`new_title_pairs` for the relations the terms
        know)."""
        if item is None or entity is None or relation is None:
            item, entity, relation = (
                new_entity_links(kg, items, self.size, self.entities, self.relations)
                if items is not None
                else (np.zeros(0, np.int64),) * 3
            )
        if items is not None:
            pairs = new_title_pairs(kg, items, self.size, self.pair_relations)
            self.pair_a = np.concatenate([self.pair_a, pairs[0]])
            self.pair_b = np.concatenate([self.pair_b, pairs[1]])
            self.pair_relation = np.concatenate([self.pair_relation, pairs[2]])
        self.release_day = np.concatenate([self.release_day, np.asarray(release_day, float)])
        self.item = np.concatenate([self.item, np.asarray(item, np.int64)])
        self.entity = np.concatenate([self.entity, np.asarray(entity, np.int64)])
        self.relation = np.concatenate([self.relation, np.asarray(relation, np.int64)])
        self._mats = self._left = self._right = None

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Bundle arrays (:meth:`from_arrays`)."""
        out = {prefix + k: getattr(self, k) for k in ("release_day", *LINK_ARRAYS)}
        out[prefix + "relations"] = np.array(self.relations, dtype=np.str_)
        out[prefix + "entities"] = np.array(self.entities, dtype=np.str_)
        out[prefix + "pair_relations"] = np.array(self.pair_relations, dtype=np.str_)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> TitleFacts | None:
        """The facts :meth:`arrays` saved, or None."""
        if prefix + "release_day" not in arrays:
            return None
        out = cls(np.asarray(arrays[prefix + "release_day"], np.float64))
        for k in LINK_ARRAYS:
            setattr(out, k, np.asarray(arrays[prefix + k], np.int64))
        out.relations = [str(x) for x in arrays[prefix + "relations"].tolist()]
        if prefix + "entities" in arrays:  # a bundle saved before they were kept has none
            out.entities = [str(x) for x in arrays[prefix + "entities"].tolist()]
        out.pair_relations = [str(x) for x in arrays[prefix + "pair_relations"].tolist()]
        return out


@dataclass
class RequestTerms:
    """Fitted request-time terms: the facts, one weight per term and the scale of the
    model's score they were fitted beside (:func:`fit_weights`).

    Attributes:
        facts: What the terms read (grown with titles added later).
        weights: (F,) float32, one per name of ``facts.names()``.
        alpha: The model score's factor in the fit: a model whose scores are ``s``
            times the fitted ones adds the terms at ``s / alpha`` of their weights.
        history_len: The last titles of a history the terms read (0: all of it).
    """

    facts: TitleFacts
    weights: np.ndarray
    alpha: float = 1.0
    history_len: int = 0

    def named(self) -> dict[str, float]:
        """Term name -> weight (rounded), for fit notes."""
        return {
            n: round(float(w), 3) for n, w in zip(self.facts.names(), self.weights, strict=True)
        }

    def scores(
        self, contexts: Sequence[UserContext], titles: np.ndarray, scale: float = 1.0
    ) -> np.ndarray:
        """(B, S) what the terms add to the scores of ``titles`` (S,) for B requests (the
        last :attr:`history_len` titles of each history, its ``now``), for a model whose
        scores are ``scale`` times those of the fit."""
        n = self.history_len
        hist = [np.asarray(c.history, dtype=np.int64)[-n:] if n else c.history for c in contexts]
        now = np.array([np.nan if c.now is None else float(c.now) for c in contexts])
        terms = self.facts.features(hist, now, titles)  # (B, S, F)
        return (terms @ self.weights) * np.float32(scale / self.alpha)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Bundle arrays (:meth:`from_arrays`)."""
        out = self.facts.arrays(prefix + "facts.")
        out[prefix + "weights"] = self.weights
        out[prefix + "meta"] = np.array([self.alpha, self.history_len], dtype=np.float64)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> RequestTerms | None:
        """The terms :meth:`arrays` saved, or None (a bundle without them)."""
        facts = TitleFacts.from_arrays(arrays, prefix + "facts.")
        if facts is None or prefix + "weights" not in arrays:
            return None
        alpha, history_len = (float(x) for x in arrays[prefix + "meta"])
        weights = np.asarray(arrays[prefix + "weights"], np.float32)
        return cls(facts, weights, alpha, int(history_len))


@dataclass(frozen=True)
class TermsConfig:
    """Settings of :func:`fit_weights`.

    Attributes:
        positions: Training positions sampled (seeded) to fit on.
        batch_size, steps, lr, weight_decay: Adam over the weights, ``steps`` batches in
            all (passes over the sampled positions as many as that takes).
        seed: Sampling and batch order.
    """

    positions: int = 10000
    batch_size: int = 500
    steps: int = 200
    lr: float = 0.05
    weight_decay: float = 1e-3
    seed: int = 42


def _seen_mask(
    histories: Sequence[np.ndarray], cand: np.ndarray, target: torch.Tensor
) -> torch.Tensor:
    """(b, C) bool: the candidates (``cand``, sorted) in each position's history, but
    its target.

    A model never recommends a title already in the history (the evaluator and the
    service leave them out), and a history title shares every entity of its own with
    the history: left in the softmax, "shares a director with what you watched" would
    mostly mean "you watched it" and learn a negative weight (it did: -0.66 for
    directors on ml-100k, -5.2 on the planted test log)."""
    b = len(histories)
    mask = np.zeros((b, len(cand)), dtype=bool)
    if len(cand) and b:
        flat = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
        row = np.repeat(np.arange(b), [len(h) for h in histories])
        pos = np.searchsorted(cand, flat).clip(max=len(cand) - 1)
        hit = cand[pos] == flat
        mask[row[hit], pos[hit]] = True
    out = torch.from_numpy(mask)
    out[torch.arange(b), target] = False  # a repeat stays learnable
    return out


def fit_weights(
    facts: TitleFacts,
    head_logits: Callable[[torch.Tensor], torch.Tensor],
    histories: Callable[[torch.Tensor], list[np.ndarray]],
    times: torch.Tensor,
    targets: torch.Tensor,
    cand: torch.Tensor,
    adjust: torch.Tensor,
    cfg: TermsConfig | None = None,
) -> tuple[np.ndarray, float]:
    """Learn one weight per term of ``facts`` and a scale ``alpha`` of the head's score,
    so that ``alpha * head + terms . w`` finds each position's next title among ``cand``
    less the titles of its history (:func:`_seen_mask`).

    Args:
        head_logits: ``idx -> (b, C)`` the frozen head's logits of positions ``idx``
            against ``cand`` (no grad).
        histories: ``idx -> b`` histories (item_idx) of those positions.
        times: (N,) int64 unix seconds of each position's next event (its request time).
        targets: (N,) that title (item_idx, in ``cand``).
        cand: (C,) sorted item_idx the positions rank.
        adjust: (C,) the head's logit adjustment (added to every logit, as in its
            training).

    Returns:
        ``(w, alpha)``: (F,) float32 weights and the head score's scale.
    """
    cfg = cfg or TermsConfig()
    n = len(targets)
    gen = torch.Generator().manual_seed(cfg.seed)
    pick = torch.randperm(n, generator=gen)[: cfg.positions]
    local = torch.searchsorted(cand, targets)
    n_terms = len(facts.names())
    w = torch.zeros(n_terms, requires_grad=True)
    log_alpha = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([w, log_alpha], lr=cfg.lr, weight_decay=0.0)
    cand_np = cand.numpy()
    batches = list(pick.split(cfg.batch_size))
    # each batch kept (its terms packed a byte a term, its head logits and history
    # mask) while CACHE_BYTES allow; the rest, and a batch whose counts do not pack,
    # rebuilt at each visit
    kept: dict[int, tuple[np.ndarray, torch.Tensor, torch.Tensor]] = {}
    rebuilt: set[int] = set()
    room = CACHE_BYTES
    order: list[int] = []
    for _ in range(cfg.steps):
        if not order:
            order = torch.randperm(len(batches), generator=gen).tolist()
        k = order.pop()
        idx = batches[k]
        if k in kept:
            packed, head, seen = kept[k]
            terms = torch.from_numpy(unpack(packed))
        else:
            with torch.no_grad():
                head = head_logits(idx).float()
            hist = histories(idx)
            now = times[idx].double().numpy()
            seen = _seen_mask(hist, cand_np, local[idx])
            # bytes a cell: the terms' codes (one each, at least), head (4), mask (1)
            fits = len(idx) * len(cand) * (n_terms + 5) <= room
            codes = facts.codes(hist, now, cand_np) if fits and k not in rebuilt else None
            if codes is None:
                rebuilt.add(k)
                terms = torch.from_numpy(facts.features(hist, now, cand_np))
            else:
                kept[k] = (codes, head, seen)
                room -= codes.nbytes + head.numel() * 4 + seen.numel()
                terms = torch.from_numpy(unpack(codes))
        logits = log_alpha.exp() * head + terms @ w + adjust[None, :]
        logits = logits.masked_fill(seen, -torch.inf)
        loss = F.cross_entropy(logits, local[idx]) + cfg.weight_decay * (w**2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach().numpy().astype(np.float32), float(log_alpha.detach().exp())


__all__ = ["AGE_EDGES", "RequestTerms", "TermsConfig", "TitleFacts", "fit_weights", "release_days"]
