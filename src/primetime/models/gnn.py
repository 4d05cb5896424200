"""A heterogeneous graph neural network over who-watched-what and the knowledge graph.

The graph has three node types: ``item`` (titles), ``user`` and ``entity`` (the
knowledge graph's actors, directors, genres, awards, languages …). Edges: users
to the titles they watched (both ways), titles to their entities by relation
(both ways, one edge type per relation and direction) and titles to titles
(sequel, prequel). A stack of :class:`~torch_geometric.nn.HeteroConv` layers
(one SAGEConv, or GATv2Conv, per edge type; residual, no non-linearity, as
LightGCN found best for collaborative signals, He et al. 2020,
arXiv:2002.02126) turns free item and entity embeddings into the item table.

Users are inductive: a user node carries no parameters of its own (its input
vector is the mean of its titles' input vectors), and the query that scores the
catalog is built from a history alone: attention over the last ``max_len``
titles' propagated vectors, with a learned recency bias, read from the most
recent title. Training asks the same query of every prefix of every training
history to predict the next title, so training and serving agree and an unseen
user needs no node. After ``fit`` the item table is computed once and kept, so
scoring a user costs one small attention and one (V, D) mat-vec.

Two training modes behind ``sampling``: full-graph propagation every step (the
default: on ml-100k a whole-graph pass costs tens of milliseconds) or
mini-batches on sampled neighbourhoods (uniform fan-out per hop and edge type,
as PyG's ``LinkNeighborLoader`` does; written here in torch because PyG's
samplers raise ImportError without ``pyg-lib`` or ``torch-sparse``, and neither
is a dependency) with a sampled softmax over the batch's targets and
``negatives`` random titles, so no step touches the whole catalog. The item
table after fit is still computed in one whole-graph pass.

Measured on ml-100k, leave-one-out, full ranking (``primetime benchmark --data
ml-100k --models itemknn,gnn --versus itemknn``, 2 cores): test NDCG@10 0.1102
[0.0949, 0.1263] against itemknn's 0.0844 (paired Wilcoxon p = 0.0008) in 319 s.
The knowledge graph (``primetime ablate --model gnn``): 0.1052 without it
(``use_kg=false``), p = 0.25 over all users; on the third of users whose held-out
title was watched least in train, 0.0603 with it against 0.0450 without (p = 0.0055),
on the most watched third 0.1881 against 0.2017 (p = 0.20). With one edge type for all
title-entity links (``per_relation=false``) the graph helped no third. Scoring one user
against 27,000 titles: p99 2.1 ms in process with the request-time terms
(``benchmarks/bench_content.py``; the item table is computed once after fit).

New titles. A title with no training event is in the graph only through its
knowledge-graph entities. It enters with a zero input vector and is left out of
the training softmax: as everyone's negative it was pushed down, and that took the
warm figure from 0.0913 to 0.1055 and new titles (``--split cold-items``, ranked
among 168 candidates) from 0.0098 to 0.0274, which is random's level (0.0271; the
genre profile scores 0.0486). ``cold_dropout`` (off by default) drops, in each
full-graph step, a random share of watched titles' user edges and input vectors so
the net learns to build a title from its entities alone: at 0.5 it gave new titles
0.0380 (not significantly above random, p = 0.23) and cost the warm protocol about
0.01. On new titles the valid figure peaks at epoch 1-2 and then falls; tried and
dropped: rescaling cold vectors to the watched titles' median norm (0.0147), an MLP
content tower on the normalised vector plus log link count (0.023), a learned norm
from the link count (0.004). Four options meant to train the content path to stand
alone, all off by default: ``content_input`` (a title's input is its entities' mean
vector plus its id vector), ``content_tower`` (plus the contrastive model's content
encoder over genres, cast, crew, year and text), ``year_links`` (a release-year entity)
and ``cold_weight`` (a second pass per step that rebuilds 30% of the watched titles
without id and viewers and ranks the next title among them). All four on, new titles
scored 0.0255 (random 0.0271, p = 0.62; ``docs/results/ml-100k-cold-items-gnn``, its
configuration in the report) in 704 s. Why the graph cannot carry new titles here: on
this split the knowledge graph's similarity points the wrong way. A fixed recency-weighted
TF-IDF profile of the history's entities ranked the valid titles below random
(0.015-0.028 against 0.037, a scratch probe, not a command of the repo): the
held-out titles that look like the classics users loved (old films sharing cast, awards
and studios) are the obscure ones that appeared in the log late, and 70-80% of the
targets are 1997 releases (Titanic alone is 19.5% of the test targets).

The content head (``cold_head``, on by default; :mod:`primetime.models.coldhead`).
Diagnosis: a never-watched title's row came from a path never trained to stand alone
(zero id input, graph messages), in a space the user queries were not trained against,
so new titles scored at random's level. After training, a head maps a title's genre
tokens into the trained user space, fitted with the id dropped for every title (each
training position's query must find the next title among the watched titles built by
the head), and gives never-watched titles their rows. ml-100k ``--split cold-items``
(``primetime benchmark --data ml-100k --split cold-items --models
random,genre-profile,gnn,contrastive --versus random,genre-profile``, loaded 2-core
machine): NDCG@10 0.0566 [0.0440, 0.0706], above random (0.0271, paired Wilcoxon
p = 0.0045) and level with the genre profile (0.0486, p = 0.85). With the head's user
side (``head_profile``: the history's content profile against the title's, trained
with the head, the user vector dropped for half the positions) and its ties broken by
the graph rows: 0.0892 [0.0716, 0.1087], above the genre profile (p = 0.0002), 1.8x it
(README "New titles: the user's side of the head"). Inputs tried on one
fit (test / valid NDCG@10, a scratch probe): genres 0.059-0.068 / 0.052-0.075; genres +
knowledge-graph entities 0.030 / 0.028; all (genres, subgenres, cast, crew, exact year,
other temporal tokens, entities, text) 0.022 / 0.043; year alone 0.005 / 0.010. The
graph, the year and the text point the wrong way on this split (above); without the
graph (``use_kg=false``) the model scores 0.0582, so the graph does not help here.
The head is saved with the model, with a least-squares map of its rows onto the
watched titles' rows (:func:`~primetime.models.coldhead.calibrate`): a title added to a
running service (``extend_items``) gets its mapped row, so it competes with watched
titles (the rows of never-watched titles at fit keep the graph rows' weight, above).

:meth:`GNNRecommender.explain` lists what two titles share in the knowledge
graph, by relation ("directed_by": 1, "actor": 2), for reasons shown to users.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from torch_geometric.nn import GATv2Conv, HeteroConv, SAGEConv

from primetime.artifacts import Bundle
from primetime.data.catalog import Catalog
from primetime.data.graph import KnowledgeGraph
from primetime.data.interactions import Interactions
from primetime.data.side import SideData
from primetime.data.vocab import Vocabulary
from primetime.models.base import FitOptions, FitReport, Recommender, mask_padding
from primetime.models.coldhead import (
    HEAD_FEATURES,
    ColdHead,
    Positions,
    break_ties,
    check_head_options,
    choose_adjustment,
    head_overrides,
    head_rows,
    validates_head,
)
from primetime.models.contrastive import ContrastiveConfig, ContrastiveNet
from primetime.models.metadata import item_tokens, text_matrix
from primetime.models.multimodal import grow_content, grow_embedding
from primetime.models.sequential import right_pad, training_windows, unwrap, window_times
from primetime.models.titlecontext import (
    TitleFacts,
    new_entity_links,
    relation_name,
    release_days,
)
from primetime.training.loop import TrainConfig
from primetime.training.loop import train as run_training
from primetime.types import UserContext

log = logging.getLogger(__name__)

CONVS = ("sage", "gatv2")
LOSSES = ("softmax", "sampled_softmax")
EdgeType = tuple[str, str, str]


@dataclass(frozen=True)
class GNNConfig:
    """Model and training settings.

    The defaults come from ml-100k **valid**: batches of 128 windows; per-relation
    edge types (valid NDCG@10 0.1215 at best against 0.1180 with the links merged
    into one edge type each way, at about twice the fit time: 314 s against 157 s on
    the shared 2-core machine; test 0.1102 against 0.1055, and with them the knowledge
    graph helps the rarely watched third of the test titles significantly,
    ``docs/results/ml-100k-gnn-ablation-per-relation``). Not tuned further. Training
    runs on the CPU: the graph lives in host memory (``device`` is kept for the shared
    training config).

    Attributes:
        dim: Embedding and hidden size.
        layers: Message-passing layers (hops).
        conv: "sage" (mean of neighbours, one linear map per edge type) or "gatv2".
        use_kg: Add the knowledge graph's title-entity and title-title edges; False
            leaves the user-title graph only (the ablation).
        per_relation: One edge type (and convolution) per relation and direction
            (default), so a title's director weighs as much as its whole cast and each
            relation has its own map; False puts every title-entity link in one edge
            type each way and every title-title link in another. The relation is not lost: an
            entity node is an (relation, entity) pair, so a person who directs and
            acts is two nodes. On ml-100k's 13 relations per-relation typing makes
            36 edge types and a whole-graph pass 4x slower (0.48 s against 0.11 s
            forward on the shared 2-core machine).
        min_entity_titles: Keep an entity only when it links this many titles (an
            entity of one title carries no signal between titles).
        max_len: Most recent history titles the user query reads.
        dropout: Dropout on messages and on the pooled history.
        loss: "softmax" (full softmax over the catalog) or "sampled_softmax" (the
            batch's targets plus ``negatives`` random titles). Sampling mode always
            uses the sampled one.
        negatives: Random titles per step for the sampled softmax.
        sampling: Train on sampled neighbourhoods instead of the full graph.
        fanout: Neighbours sampled per node, hop and edge type in sampling mode.
        cold_dropout: Share of watched titles per full-graph training step that lose
            their user edges (both directions) and their own input vector, so the
            network learns to build a title's vector from its knowledge-graph
            neighbourhood alone: the path a title without viewers (a new release)
            takes at fit and in :meth:`GNNRecommender.extend_items`. 0 turns it off.
            Whatever this is, titles without a training event always enter with a
            zero input vector and are left out of the training softmax (they cannot
            be a target, so they are not pushed down as everyone's negative).
        cold_weight: Weight of the new-title term (0 turns it off). Each full-graph
            training step also builds the item table with a random ``cold_share`` of the
            watched titles made new (no input vector, no user edges: vectors from their
            knowledge-graph entities alone, as a title without viewers gets them), and
            asks the user vectors of the ordinary pass to rank, among those titles only,
            the ones that come next: the new-title protocol inside training. The ordinary
            pass and its loss are unchanged, so the warm titles keep their id vectors.
        cold_share: Share of watched titles made new in that second pass.
        content_input: A title's input vector is the mean of its knowledge-graph
            entities' input vectors plus its id vector (zero for a title without a
            training event), so a new title enters with the same content part as a
            watched one and the main loss trains that part on every title (as the
            multimodal model's content + id item vector). False: the id vector alone.
        content_tower: Add to every title's input the vector of a content encoder (the
            contrastive model's: genre, subgenre, cast and crew token bags, the year
            bucket and other temporal tokens, the text vector, an MLP; trained here with
            the rest), so a new title's input carries its metadata and text as well as
            its graph entities.
        cold_head: After training, give every title without a training event the row
            of a content head (:mod:`primetime.models.coldhead`): genre, cast, crew,
            exact-year and other temporal tokens, its knowledge-graph entities (with
            ``use_kg``) and its text vector, mapped into the space of the trained user
            queries and trained, with the id dropped for every title, so that each
            training position's query finds the next title among the watched titles
            built from content alone. Rows of watched titles are not touched, nor those
            of titles with none of the head's inputs (they keep their graph row).
        head_epochs: Training passes of that head.
        head_features: Comma-separated inputs of the head, of
            :data:`~primetime.models.coldhead.FEATURES`.
        head_newest: Share of the training titles, newest by first event, among which
            the head also learns to rank (``newest`` of
            :func:`~primetime.models.coldhead.fit_head`); 0 turns that term off.
        head_profile: Train the head with the user's side of its inputs
            (:class:`~primetime.models.coldhead.ProfileHead`): a never-watched or added
            title also scores the mean content profile of the user's history against
            its own content vector.
        head_user_dropout: With ``head_profile``, the share of training positions
            whose user vector the head does not see in a step (DropoutNet's input
            dropout), so the profile also ranks on its own.
        head_context: Fit the request-time terms on the head
            (:mod:`primetime.models.titlecontext`): a never-watched or added title also
            scores whether it is out at the request and how recently, and how many of
            the history's titles share each kind of entity with it or link to it (the
            season before); one weight per term, learned on the head's positions.
        head_logit_adjust: The head's logit adjustment
            (:attr:`~primetime.models.coldhead.HeadConfig.logit_adjust`): ``"auto"``
            fits the head with 0 and 1 and keeps the better on valid (0 without a
            valid set), or a number in [0, 1].
        head_valid: Fit the head at each validation, so the epoch is chosen by the rows
            served: ``"auto"`` does when most of valid's targets are titles without a
            training event (``--split cold-items``; on leave-one-out the head's rows
            barely move the figure and the head would double the time), ``"true"``,
            ``"false"``. Each fit uses the first of ``head_logit_adjust``'s choices;
            the final head still chooses among them.
        use_text: Feed the text vector to that encoder (and to the head).
        max_people, min_people_titles: Cast / crew tokens of that encoder (see
            :func:`~primetime.models.metadata.item_tokens`).
        year_links: Link each title to a ``release_year:<year>`` entity from the catalog
            (part of the knowledge graph for the model; off with ``use_kg``).
        epochs, batch_size, lr, weight_decay, warmup_epochs, patience, eval_every,
        grad_clip, seed: Training (see :class:`~primetime.training.TrainConfig`);
            ``batch_size`` counts training windows of ``max_len`` titles.
        device: "auto", "cpu" or "cuda".
    """

    dim: int = 64
    layers: int = 2
    conv: str = "sage"
    use_kg: bool = True
    per_relation: bool = True
    min_entity_titles: int = 2
    max_len: int = 50
    dropout: float = 0.2
    loss: str = "softmax"
    negatives: int = 512
    sampling: bool = False
    fanout: int = 10
    cold_dropout: float = 0.0
    cold_weight: float = 0.0
    cold_share: float = 0.3
    content_input: bool = False
    year_links: bool = False
    content_tower: bool = False
    cold_head: bool = True
    head_epochs: int = 4
    head_newest: float = 0.0
    head_profile: bool = True
    head_user_dropout: float = 0.5
    head_context: bool = True
    head_logit_adjust: str = "auto"
    head_valid: str = "auto"
    head_features: str = HEAD_FEATURES
    use_text: bool = True
    max_people: int = 10
    min_people_titles: int = 2
    epochs: int = 40
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    patience: int = 4
    eval_every: int = 2
    grad_clip: float = 1.0
    seed: int = 42
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.conv not in CONVS:
            raise ValueError(f"conv must be one of {CONVS}, got {self.conv!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.layers < 1 or self.max_len < 2 or self.fanout < 1:
            raise ValueError("layers and fanout must be >= 1 and max_len >= 2")
        if not 0.0 <= self.cold_dropout < 1.0:
            raise ValueError(f"cold_dropout must be in [0, 1), got {self.cold_dropout}")
        if not 0.0 < self.cold_share < 1.0:
            raise ValueError(f"cold_share must be in (0, 1), got {self.cold_share}")
        if self.cold_weight < 0:
            raise ValueError(f"cold_weight must be >= 0, got {self.cold_weight}")

        check_head_options(
            self.head_features,
            self.head_newest,
            self.head_user_dropout,
            self.head_logit_adjust,
            self.head_valid,
        )

    def train_config(self) -> TrainConfig:
        return TrainConfig.of(self)


# ------------------------------------------------------------------ the graph
@dataclass
class TitleLinks:
    """The knowledge graph as the model uses it: index arrays in the item space.

    Attributes:
        item, entity, relation: (E,) title-entity links (item_idx, entity index 1..,
            relation index 0.. into ``relations``).
        pair_a, pair_b, pair_relation: (P,) title-title links (a -> b).
        entities, relations, pair_relations: Names.
    """

    item: np.ndarray
    entity: np.ndarray
    relation: np.ndarray
    pair_a: np.ndarray
    pair_b: np.ndarray
    pair_relation: np.ndarray
    entities: list[str]
    relations: list[str]
    pair_relations: list[str]

    @classmethod
    def empty(cls) -> TitleLinks:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z, z, z, z, [], [], [])


def with_catalog_facts(kg: KnowledgeGraph | None, catalog: Catalog | None) -> KnowledgeGraph | None:
    """``kg`` plus a ``(item_id, release_year, <year>)`` triple per catalog title with a year."""
    if catalog is None or "year" not in catalog.frame.columns:
        return kg
    years = catalog.frame.select(
        pl.col("item_id").alias("head"),
        pl.lit("release_year").alias("relation"),
        pl.col("year").cast(pl.Utf8).alias("tail"),
    ).drop_nulls()
    if kg is None or not len(kg):
        return KnowledgeGraph.from_frame(years) if len(years) else kg
    return KnowledgeGraph.from_frame(pl.concat([kg.triples, years.cast(kg.triples.schema)]))


def title_links(kg: KnowledgeGraph | None, items: Vocabulary, min_titles: int = 2) -> TitleLinks:
    """Title-entity and title-title links of ``kg``, deduplicated and pruned.

    A triple with a title at one end becomes a title-entity link (the two
    directions Freebase stores, ``film.film.directed_by`` and ``film.director.film``,
    merge into one, named from the title-as-head form); a triple with titles at
    both ends a title-title link; entity-entity triples are dropped (two hops
    from any title). Entities linked to fewer than ``min_titles`` titles are
    dropped: they connect nothing.
    """
    if kg is None or not len(kg):
        return TitleLinks.empty()
    t = kg.triples
    head = items.indices(t["head"], strict=False)  # (N,) 0 where not a title
    tail = items.indices(t["tail"], strict=False)
    rel = t["relation"].to_list()
    rows = []  # (item, entity id, relation name, title is head)
    pairs = []
    heads, tails = t["head"].to_list(), t["tail"].to_list()
    for k in range(len(rel)):
        if head[k] and tail[k]:
            pairs.append((int(head[k]), int(tail[k]), relation_name(rel[k], True)))
        elif head[k]:
            rows.append((int(head[k]), tails[k], relation_name(rel[k], True), 0))
        elif tail[k]:
            rows.append((int(tail[k]), heads[k], relation_name(rel[k], False), 1))
    links = TitleLinks.empty()
    if rows:
        frame = (
            pl.DataFrame(rows, schema=["item", "entity", "relation", "rev"], orient="row")
            .sort(["rev", "relation", "item", "entity"])
            .unique(["item", "entity"], keep="first", maintain_order=True)
        )
        counts = frame.group_by(["relation", "entity"]).agg(pl.len().alias("n"))
        frame = frame.join(counts, on=["relation", "entity"]).filter(pl.col("n") >= min_titles)
        frame = frame.with_columns(
            (pl.col("relation") + ":" + pl.col("entity")).alias("entity")
        )  # a node per (relation, entity): the actor and the director are two
        links.entities = sorted(set(frame["entity"].to_list()))
        links.relations = sorted(set(frame["relation"].to_list()))
        ent_index = {e: k + 1 for k, e in enumerate(links.entities)}
        rel_index = {r: k for k, r in enumerate(links.relations)}
        links.item = frame["item"].to_numpy().astype(np.int64)
        links.entity = np.array([ent_index[e] for e in frame["entity"]], dtype=np.int64)
        links.relation = np.array([rel_index[r] for r in frame["relation"]], dtype=np.int64)
    if pairs:
        links.pair_relations = sorted({p[2] for p in pairs})
        prel = {r: k for k, r in enumerate(links.pair_relations)}
        links.pair_a = np.array([p[0] for p in pairs], dtype=np.int64)
        links.pair_b = np.array([p[1] for p in pairs], dtype=np.int64)
        links.pair_relation = np.array([prel[p[2]] for p in pairs], dtype=np.int64)
    return links


def edge_types(
    relations: Sequence[str], pair_relations: Sequence[str], per_relation: bool
) -> list[EdgeType]:
    """Every edge type of the graph, both directions of each relation (or, without
    ``per_relation``, one type for all title-entity and one for all title-title links)."""
    out: list[EdgeType] = [("user", "watched", "item"), ("item", "watched_by", "user")]
    if not per_relation:
        relations = ["linked"] if relations else []
        pair_relations = ["related"] if pair_relations else []
    for r in relations:
        out += [("item", r, "entity"), ("entity", f"rev_{r}", "item")]
    for r in pair_relations:
        out += [("item", r, "item"), ("item", f"rev_{r}", "item")]
    return out


class Graph:
    """Edges of every type (global indices) plus what sampling needs.

    Attributes:
        edges: edge type -> (2, M) int64 (source row 0, destination row 1).
        csc: edge type -> ``(ptr, src)``: for destination d, its sources are
            ``src[ptr[d]:ptr[d + 1]]``.
        user_ptr, user_items: CSR of each user's distinct training titles.
        num_nodes: node type -> count (index 0 of items and entities is padding).
        watched: (V,) bool, titles with at least one training event.
    """

    def __init__(
        self,
        train: Interactions,
        links: TitleLinks,
        use_kg: bool,
        per_relation: bool = False,
    ) -> None:
        m = train.matrix().tocsr()  # (U, V) binary
        m.sum_duplicates()
        self.user_ptr = torch.from_numpy(m.indptr.astype(np.int64))
        self.user_items = torch.from_numpy(m.indices.astype(np.int64))
        self.watched = torch.bincount(self.user_items, minlength=m.shape[1]) > 0  # (V,)
        self.watched[0] = False  # padding
        users = torch.repeat_interleave(
            torch.arange(m.shape[0]), self.user_ptr[1:] - self.user_ptr[:-1]
        )
        self.num_nodes = {
            "user": m.shape[0],
            "item": m.shape[1],
            "entity": len(links.entities) + 1,
        }
        ui = torch.stack([users, self.user_items])  # (2, M) user -> item
        self.edges: dict[EdgeType, torch.Tensor] = {
            ("user", "watched", "item"): ui,
            ("item", "watched_by", "user"): ui.flip(0),
        }
        if use_kg:
            groups = [
                (links.relations, links.relation, links.item, links.entity, "linked", "entity"),
                (
                    links.pair_relations,
                    links.pair_relation,
                    links.pair_a,
                    links.pair_b,
                    "related",
                    "item",
                ),
            ]
            for names, rel, src, dst, merged, kind in groups:
                if not names:
                    continue
                keys = list(enumerate(names)) if per_relation else [(-1, merged)]
                for k, r in keys:
                    sel = rel == k if k >= 0 else np.ones(len(rel), dtype=bool)
                    e = torch.from_numpy(np.stack([src[sel], dst[sel]]))  # (2, m)
                    self.edges[("item", r, kind)] = e
                    self.edges[(kind, f"rev_{r}", "item")] = e.flip(0)
        #: (E,) title-entity links whose entities make a title's content input.
        self.content_links = (
            (
                torch.from_numpy(links.item),
                torch.from_numpy(links.entity),
                torch.from_numpy(links.relation),
            )
            if use_kg
            else (torch.zeros(0, dtype=torch.int64),) * 3
        )
        self.csc: dict[EdgeType, tuple[torch.Tensor, torch.Tensor]] = {}
        for et, e in self.edges.items():
            order = torch.argsort(e[1], stable=True)
            counts = torch.bincount(e[1], minlength=self.num_nodes[et[2]])
            ptr = torch.zeros(len(counts) + 1, dtype=torch.int64)
            torch.cumsum(counts, 0, out=ptr[1:])
            self.csc[et] = (ptr, e[0][order])

    def without_viewers(self, drop: torch.Tensor) -> dict[EdgeType, torch.Tensor]:
        """The edges with every user-title edge of the titles in ``drop`` (V,) bool removed."""
        out = dict(self.edges)
        for et in (("user", "watched", "item"), ("item", "watched_by", "user")):
            e = out[et]
            out[et] = e[:, ~drop[e[1] if et[2] == "item" else e[0]]]
        return out

    def user_bags(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(items, offsets)`` for ``F.embedding_bag`` over ``users``' titles."""
        start, stop = self.user_ptr[users], self.user_ptr[users + 1]
        lengths = stop - start
        offsets = torch.cumsum(lengths, 0) - lengths  # (n,) start of each bag
        rep = torch.repeat_interleave(torch.arange(len(users)), lengths)
        pos = torch.arange(int(lengths.sum())) - offsets[rep]
        return self.user_items[start[rep] + pos], offsets

    def sample(
        self, seeds: torch.Tensor, hops: int, fanout: int, gen: torch.Generator
    ) -> tuple[dict[str, torch.Tensor], dict[EdgeType, torch.Tensor]]:
        """The ``hops``-hop neighbourhood of seed items, ``fanout`` sources per node,
        hop and edge type (uniform, with replacement where a node has more; repeats
        dropped).

        Returns:
            ``(nodes, edges)``: global indices per node type (seed items first, in
            the order given) and (2, m) edges per type in local indices.
        """
        nodes: dict[str, list[torch.Tensor]] = {"item": [seeds], "user": [], "entity": []}
        seen = {t: torch.zeros(n, dtype=torch.bool) for t, n in self.num_nodes.items()}
        seen["item"][seeds] = True
        frontier = {"item": seeds}
        picked: dict[EdgeType, list[torch.Tensor]] = {et: [] for et in self.edges}
        for _ in range(hops):
            new: dict[str, list[torch.Tensor]] = {"item": [], "user": [], "entity": []}
            for et, (ptr, src) in self.csc.items():
                dst = frontier.get(et[2])
                if dst is None or not len(dst):
                    continue
                deg = ptr[dst + 1] - ptr[dst]  # (n,)
                take = deg.clamp(max=fanout)
                rep = torch.repeat_interleave(torch.arange(len(dst)), take)  # (m,)
                pos = torch.arange(len(rep)) - (torch.cumsum(take, 0) - take)[rep]
                rand = (torch.rand(len(rep), generator=gen) * deg[rep]).long()
                off = torch.where(deg[rep] <= fanout, pos, rand)
                edge = torch.unique(ptr[dst[rep]] + off)  # positions in src, repeats dropped
                d = torch.searchsorted(ptr, edge, right=True) - 1  # the destination of each
                s = src[edge]
                picked[et].append(torch.stack([s, d]))
                fresh = s[~seen[et[0]][s]].unique()
                seen[et[0]][fresh] = True
                new[et[0]].append(fresh)
            frontier = {
                t: torch.cat(v) if v else torch.zeros(0, dtype=torch.int64) for t, v in new.items()
            }
            for t, v in frontier.items():
                nodes[t].append(v)
        out_nodes = {
            t: torch.cat(v) if v else torch.zeros(0, dtype=torch.int64) for t, v in nodes.items()
        }
        local = {t: torch.full((n,), -1, dtype=torch.int64) for t, n in self.num_nodes.items()}
        for t, v in out_nodes.items():
            local[t][v] = torch.arange(len(v))
        out_edges = {}
        for et, parts in picked.items():
            if parts:
                e = torch.cat(parts, 1)  # (2, m) global
                out_edges[et] = torch.stack([local[et[0]][e[0]], local[et[2]][e[1]]])
        return out_nodes, out_edges


# ----------------------------------------------------------------------- net
class GNNNet(nn.Module):
    """Item and entity embeddings, the hetero message passing and the history query."""

    def __init__(
        self,
        n_items: int,
        n_entities: int,
        types: Sequence[EdgeType],
        cfg: GNNConfig,
        tower_arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Args:
        n_items: items.size (padding included); n_entities: entities + 1 (padding).
        types: The edge types to build a convolution for (:func:`edge_types`).
        """
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.item_emb = nn.Embedding(n_items, d)
        self.entity_emb = nn.Embedding(max(n_entities, 1), d)
        self.tower: ContrastiveNet | None = None
        if tower_arrays is not None:  # content encoder -> unit vector, scaled
            self.tower = ContrastiveNet(ContrastiveConfig(dim=d, hidden=2 * d), tower_arrays)
            self.tower_scale = nn.Parameter(torch.ones(()))
        for emb in (self.item_emb, self.entity_emb):
            nn.init.normal_(emb.weight, std=d**-0.5)

        def conv(et: EdgeType) -> nn.Module:
            if cfg.conv == "gatv2":
                return GATv2Conv((d, d), d, add_self_loops=False, bias=False)
            return SAGEConv((d, d), d, aggr="mean", root_weight=False, bias=False)

        self.convs = nn.ModuleList(
            HeteroConv({et: conv(et) for et in types}, aggr="sum") for _ in range(cfg.layers)
        )
        self.drop = nn.Dropout(cfg.dropout)
        # the history query: one attention read from the most recent title
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.recency = nn.Parameter(torch.zeros(cfg.max_len))  # bias by steps back

    # -- message passing
    def propagate(
        self, x: dict[str, torch.Tensor], edges: dict[EdgeType, torch.Tensor]
    ) -> torch.Tensor:
        """Item vectors after ``layers`` residual hetero layers; ``x`` holds input
        vectors per node type (n_t, D) and ``edges`` local (2, m) indices."""
        for conv in self.convs:
            h = conv(x, edges)  # node type -> (n_t, D), for types that receive messages
            x = {t: v + self.drop(h[t]) if t in h else v for t, v in x.items()}
        return x["item"]

    def content(
        self, item: torch.Tensor, entity: torch.Tensor, relation: torch.Tensor, n: int
    ) -> torch.Tensor:
        """(n, D) content inputs: per title, the mean over its relations of the mean input
        vector of its entities in that relation (so a year or a director weighs as much
        as the whole cast); zero without links or with ``content_input`` off.
        ``item``, ``entity``, ``relation`` (E,) links."""
        d = self.entity_emb.weight.shape[1]
        out = self.entity_emb.weight.new_zeros(n, d)
        if self.tower is not None:
            out = out + self.tower_scale * self.tower(torch.arange(n))  # (n, D)
        if not self.cfg.content_input or not len(item):
            return out
        n_rel = int(relation.max()) + 1
        slot = item * n_rel + relation  # (E,) one slot per (title, relation)
        per_slot = torch.bincount(slot, minlength=n * n_rel)  # links per slot
        rels = torch.bincount(
            item, weights=(per_slot[slot] > 0).float() / per_slot[slot], minlength=n
        )
        w = 1.0 / (per_slot[slot] * rels[item])  # (E,) each title's weights sum to 1
        vecs = self.entity_emb(entity) * w[:, None].to(self.entity_emb.weight)  # (E, D)
        return out.index_add(0, item, vecs)

    def full_table(self, g: Graph, drop: torch.Tensor | None = None) -> torch.Tensor:
        """(V, D) item table from the whole graph (row 0, padding, is zero).

        Titles without a training event enter with a zero input vector; so do the
        titles in ``drop`` ((V,) bool), which also lose their user edges (training's
        ``cold_dropout``)."""
        users = torch.arange(g.num_nodes["user"])
        bag, offsets = g.user_bags(users)
        keep = g.watched if drop is None else g.watched & ~drop
        edges = g.edges if drop is None else g.without_viewers(drop)
        n = len(keep)
        x = {
            "item": self.item_emb.weight * keep[:, None] + self.content(*g.content_links, n),
            "user": F.embedding_bag(bag, self.item_emb.weight, offsets, mode="mean"),  # (U, D)
            "entity": self.entity_emb.weight,  # (E, D)
        }
        table = self.propagate(x, edges)
        return table * (torch.arange(len(table)) > 0)[:, None]

    def sampled_table(self, g: Graph, seeds: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """(len(seeds), D) vectors of seed items from sampled neighbourhoods."""
        nodes, edges = g.sample(seeds, self.cfg.layers, self.cfg.fanout, gen)
        bag, offsets = g.user_bags(nodes["user"])
        content = self.content(*g.content_links, len(g.watched))  # (V, D)
        x = {
            "item": self.item_emb(nodes["item"]) + content[nodes["item"]],
            "user": F.embedding_bag(bag, self.item_emb.weight, offsets, mode="mean"),
            "entity": self.entity_emb(nodes["entity"]),
        }
        return self.propagate(x, edges)[: len(seeds)]

    # -- the user query
    def query(self, table: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
        """User vectors (B, T, D) after every prefix of right-padded ``seq`` (B, T),
        from item vectors ``table`` (V, D)."""
        t = seq.shape[1]
        x = table[seq]  # (B, T, D) gather
        att = self.q(x) @ self.k(x).transpose(1, 2) / math.sqrt(x.shape[-1])  # (B, T, T)
        steps = torch.arange(t)[:, None] - torch.arange(t)[None, :]  # (T, T) query - key
        att = att + self.recency[steps.clamp(0, self.cfg.max_len - 1)]
        hidden = (steps < 0)[None] | (seq == 0)[:, None, :]  # (B, T, T): future or padding
        att = att.masked_fill(hidden, -torch.inf)
        w = torch.softmax(att, -1).nan_to_num(0.0)  # padding query rows are all -inf
        return x + self.out(self.drop(w @ x))  # (B, T, T) @ (B, T, D) -> (B, T, D)


class Windows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Training windows: titles (T,) and the next title at every position (T,)."""

    def __init__(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        self.inputs, self.targets = torch.from_numpy(inputs), torch.from_numpy(targets)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[i], self.targets[i]


def _content_side(side: SideData, cfg: GNNConfig) -> SideData:
    """What the content encoder reads: without ``use_kg`` (the ablation), not the graph's
    cast and crew either (the text vector, made from the data set's texts, is kept)."""
    return side if cfg.use_kg else dataclasses.replace(side, kg=None)


# ---------------------------------------------------------------- recommender
class GNNRecommender(Recommender):
    """Next title from a history read over item vectors of the watch + knowledge graph."""

    name = "gnn"
    config_class = GNNConfig
    uses = frozenset({"text"})

    def __init__(self, config: GNNConfig | None = None) -> None:
        super().__init__(config)
        self.net: GNNNet | None = None
        self.graph: Graph | None = None  # kept during fit only
        self.links = TitleLinks.empty()
        self._table: torch.Tensor | None = None  # (V, D), fixed after fit
        self._unwatched = np.zeros(0, dtype=bool)  # (V,) titles without a training event
        self._shared: dict[int, set[tuple[int, int]]] | None = None
        self._tower_arrays: dict[str, np.ndarray] | None = None  # the content encoder's input
        #: the content head with its calibration (``cold_head``): rows of titles added later
        self.cold: ColdHead | None = None
        #: the head's logit adjustment, as chosen (``head_logit_adjust``)
        self.head_adjust = 0.0

    def _new_net(self, n_items: int) -> GNNNet:
        links = self.links
        use = self.config.use_kg
        types = edge_types(
            links.relations if use else [],
            links.pair_relations if use else [],
            self.config.per_relation,
        )
        return GNNNet(n_items, len(links.entities) + 1, types, self.config, self._tower_arrays)

    def _fit(
        self,
        train: Interactions,
        *,
        valid: Interactions | None,
        side: SideData,
        options: FitOptions,
    ) -> FitReport:
        cfg = self.config
        kg = with_catalog_facts(side.kg, side.catalog) if cfg.year_links else side.kg
        self.links = title_links(kg, train.items, cfg.min_entity_titles)
        self._set_vocabs()
        self._tower_arrays = None
        if cfg.content_tower:
            n = train.items.size
            tokens = item_tokens(
                _content_side(side, cfg),
                n,
                min_count=cfg.min_people_titles,
                max_people=cfg.max_people,
            )
            arrays = tokens.arrays()
            arrays["tok_subgenres"] = tokens.subgenres[:, :4]
            text = text_matrix(side, n) if cfg.use_text else None
            if text is not None:
                arrays["text"] = text
            self._tower_arrays = arrays
        self.graph = graph = Graph(train, self.links, cfg.use_kg, cfg.per_relation)
        inputs, targets = training_windows(train, cfg.max_len)  # (W, T), (W, T)
        torch.manual_seed(cfg.seed)
        self.net = self._new_net(train.items.size)
        gen = torch.Generator().manual_seed(cfg.seed)
        n_items = train.items.size
        score_valid = options.validator(train, valid)
        validate = None
        if score_valid is not None:
            # Without the head, valid scores the graph's rows of titles without a
            # training event, which the head replaces after training: on ml-100k's new
            # titles that chose epoch 10 (0.0935 on test); with it, epoch 2 (0.0930), and
            # the graph no longer costs those titles (README "New titles at the moment
            # asked").
            head_valid = cfg.cold_head and validates_head(cfg.head_valid, train, valid)

            def validate(_: nn.Module) -> float:
                self._table = None  # recomputed from the current weights
                if head_valid:
                    self._fit_cold_head(train, side, inputs, targets)
                return score_valid(self)

        def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            inner: GNNNet = unwrap(net)
            x, y = batch  # (B, T), (B, T)
            x, y = x.cpu(), y.cpu()
            negs = torch.randint(1, n_items, (cfg.negatives,), generator=gen)
            if cfg.sampling:
                seeds = torch.unique(torch.cat([x.ravel(), y.ravel(), negs]))
                seeds = seeds[seeds > 0]
                local = torch.zeros(n_items, dtype=torch.int64)
                local[seeds] = torch.arange(1, len(seeds) + 1)
                vecs = inner.sampled_table(graph, seeds, gen)  # (n, D)
                table = torch.cat([torch.zeros_like(vecs[:1]), vecs])  # (1 + n, D), 0 = pad
                x, y, negs = local[x], local[y], local[negs]
            else:
                drop = None
                if cfg.cold_dropout > 0 and inner.training:
                    drop = torch.rand(n_items, generator=gen) < cfg.cold_dropout  # (V,)
                table = inner.full_table(graph, drop)  # (V, D)
                negs = negs[graph.watched[negs]]
            u = inner.query(table, x)  # (B, T, D)
            keep = y > 0
            u, y = u[keep], y[keep]  # (N, D), (N,)
            if cfg.loss == "softmax" and not cfg.sampling:
                logits = u @ table.T  # (N, V)
                logits[:, ~graph.watched] = -torch.inf  # padding and never-watched titles
                loss = F.cross_entropy(logits, y)
            else:
                cand = torch.unique(torch.cat([y, negs]))  # sorted candidate titles
                logits = u @ table[cand].T  # (N, C)
                loss = F.cross_entropy(logits, torch.searchsorted(cand, y))
            if cfg.cold_weight > 0 and cfg.use_kg and not cfg.sampling and inner.training:
                loss = loss + cfg.cold_weight * new_title_loss(inner, u, y)
            return loss

        def new_title_loss(inner: GNNNet, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            """Rank the next title among a random share of titles built as new ones."""
            made_new = (torch.rand(n_items, generator=gen) < cfg.cold_share) & graph.watched
            sel = made_new[y]  # (N,) targets among them
            if not bool(sel.any()):
                return u.new_zeros(())
            cold = inner.full_table(graph, made_new)  # (V, D): those titles from the KG alone
            cand = torch.nonzero(made_new).squeeze(1)  # (C,) sorted
            logits = u[sel] @ cold[cand].T  # (n, C)
            return F.cross_entropy(logits, torch.searchsorted(cand, y[sel]))

        result = run_training(
            self.net,
            dataset=Windows(inputs, targets),
            loss_fn=loss_fn,
            validate=validate,
            config=cfg.train_config().on("cpu"),
            run_dir=options.run_dir,
            resume=options.resume,
            model_config=cfg.__dict__,
            metric_name="valid NDCG@10",
        )
        self._table = None
        self.item_table()
        head_seconds = 0.0
        self.cold = None
        if cfg.cold_head:
            start = time.perf_counter()
            self._fit_cold_head(train, side, inputs, targets, score_valid)
            head_seconds = time.perf_counter() - start
        self.graph = None
        return FitReport(
            epochs=result.epochs_run,
            best_epoch=result.best_epoch,
            history=result.history,
            notes={
                "windows": int(len(inputs)),
                "entities": len(self.links.entities),
                "kg_links": int(len(self.links.item) + len(self.links.pair_a)),
                "edge_types": len(graph.edges),
                "seconds_per_epoch": result.seconds / max(result.epochs_run, 1),
                "best_valid_ndcg10": result.best_metric,
                "cold_head_seconds": round(head_seconds, 2),
                "head_logit_adjust": self.head_adjust,
                "head_terms": None
                if self.cold is None or self.cold.terms is None
                else self.cold.terms.named(),
            },
        )

    def _fit_cold_head(
        self,
        train: Interactions,
        side: SideData,
        inputs: np.ndarray,
        targets: np.ndarray,
        score_valid: Callable[[Recommender], float] | None = None,
    ) -> None:
        """Replace the rows of titles without a training event by the content head's
        (see ``cold_head``); ``inputs``, ``targets`` (W, T) the training windows; with
        ``head_logit_adjust="auto"`` and ``score_valid``, the head of the better
        adjustment on valid."""
        net, cfg, graph = self.net, self.config, self.graph
        assert net is not None and graph is not None
        table = self.item_table()
        unwatched = torch.from_numpy(self._unwatched)
        if not bool(unwatched.any()):
            return
        target_t = torch.from_numpy(targets)
        keep = (target_t > 0) & graph.watched[target_t]  # (W, T) positions with a target
        users = []
        net.eval()
        with torch.no_grad():
            for start in range(0, len(inputs), 512):
                x = torch.from_numpy(inputs[start : start + 512])
                u = net.query(table, x)  # (b, T, D)
                users.append(u[keep[start : start + 512]])
        links = self.links if cfg.use_kg else TitleLinks.empty()
        times = window_times(train, cfg.max_len)  # when each target was watched
        head_inputs = (torch.cat(users), target_t[keep], Positions.of(inputs, keep, times))
        facts = TitleFacts.of(release_days(side, 0, len(self._unwatched)), links)

        def fit_head(tau: float) -> tuple[torch.Tensor | None, ColdHead | None]:
            self._table = table
            self._place_head(side, links, facts, head_inputs, train, tau)
            return self._table, self.cold

        self.head_adjust, (self._table, self.cold) = choose_adjustment(
            cfg.head_logit_adjust,
            None if score_valid is None else lambda: score_valid(self),
            fit_head,
        )

    def _place_head(
        self,
        side: SideData,
        links: TitleLinks,
        facts: TitleFacts,
        head_inputs: tuple[torch.Tensor, torch.Tensor, Positions],
        train: Interactions,
        logit_adjust: float,
    ) -> None:
        """Fit the content head on ``head_inputs`` (the user vector at each training
        position with a watched next title, that title, the positions' histories), with
        ``logit_adjust`` and the request-time terms' ``facts``, and put its rows in the
        table."""
        cfg, graph = self.config, self.graph
        assert graph is not None and self._table is not None
        table = self._table
        users, targets, positions = head_inputs
        head, replace, self.cold = head_rows(
            _content_side(side, cfg),
            (links.item, links.entity),
            users,
            targets,
            graph.watched,
            train,
            cfg,
            base=table,
            positions=positions,
            logit_adjust=logit_adjust,
            facts=facts,
        )
        # One scale for every head row: the mean norm of the rows they replace (1 when
        # those are zero). Among new titles the order is the head's (a common factor
        # keeps it); against watched titles they keep the graph rows' weight: at scale
        # 1 they pushed the warm leave-one-out valid figure from 0.118 to 0.083 (a title
        # that no training event reached is one few wanted). A title added after
        # training has not had that chance: it gets the calibrated row (_extend).
        rows = head[replace].to(table.dtype)
        before = float(table[replace].norm(dim=1).mean()) if bool(replace.any()) else 0.0
        scale = before / max(float(rows.norm(dim=1).mean()), 1e-12) if before > 0 else 1.0
        table = table.clone()
        # titles with the same head row (the same genres) in the order of their graph rows
        table[replace] = break_ties(scale * rows, table[replace])
        self._table = table
        self.cold.place_profile(np.flatnonzero(replace.numpy()), scale)

    def _set_vocabs(self) -> None:
        self.vocabs = {}
        names = {
            "entities": self.links.entities,
            "relations": self.links.relations,
            "pair_relations": self.links.pair_relations,
        }
        for name, ids in names.items():
            if ids:
                self.vocabs[name] = Vocabulary(ids, name=name)

    def refit_overrides(self, report: FitReport) -> dict[str, Any]:
        """The best epoch, and the head's logit adjustment valid chose."""
        pinned = super().refit_overrides(report)
        return {**pinned, **head_overrides(self.config.head_logit_adjust, report.notes)}

    # ---------------------------------------------------------------- score
    def item_table(self) -> torch.Tensor:
        """(V, D) item vectors after propagation, computed once and kept."""
        assert self.net is not None
        if self._table is None:
            assert self.graph is not None, "no item table and no graph to compute it from"
            self.net.eval()
            with torch.no_grad():
                table = self.net.full_table(self.graph)
            unwatched = (~self.graph.watched).numpy()
            unwatched[0] = False
            self._unwatched = unwatched
            self._table = table
        return self._table

    def _score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        assert self.net is not None
        net = self.net
        if net.training:
            net.eval()
        table = self.item_table()
        out = np.empty((len(contexts), len(table)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(contexts), 512):
                chunk = contexts[start : start + 512]
                seq, last = right_pad([c.history for c in chunk], self.config.max_len)
                seq = seq[:, : int(last.max()) + 1]  # outputs ignore trailing padding
                u = net.query(table, torch.from_numpy(seq))  # (b, T, D)
                u = u[torch.arange(len(chunk)), torch.from_numpy(last)]  # (b, D)
                out[start : start + len(chunk)] = (u @ table.T).numpy()  # (b, V)
                if self.cold is not None:  # the head's profile term on its titles
                    self.cold.add_terms(out[start : start + len(chunk)], chunk)
        empty = np.array([len(c.history) == 0 for c in contexts], dtype=bool)
        if empty.any():  # nothing to condition on: every title scores the same
            out[empty] = 0.0
        return mask_padding(out)

    # -------------------------------------------------------- new titles
    def _extend(self, items: Vocabulary, side: SideData, n_old: int) -> bool:
        """A new title's vector by message passing from its knowledge-graph entities.

        The title enters the graph with a zero input vector, no users and edges to the
        entities it shares with the trained graph (``relation:entity`` nodes kept at fit
        time; entities the graph never had are ignored). Its vector after ``layers``
        hops is computed from the entities' propagated vectors, which depend only on the
        trained item and entity embeddings for ``layers <= 2`` (the default): exact,
        the same as a full pass over the grown graph in which the new title has no
        viewer. For ``layers > 2`` the entities' deeper vectors miss the users'
        messages (an approximation). Title-title links (sequels) of a new title do not
        reach its vector; the request-time terms count them (the season before). The
        old titles' vectors are not touched; of several new titles, one sharing no
        entity with the graph scores 0 (its vector is zero). False without a
        graph or when no new title shares an entity with it (e.g. people named
        ``person:<name>`` against a graph of Freebase ids), unless the content head
        gives rows.

        With the content head (``cold_head``; a bundle saved before heads were kept has
        none) a new title with one of the head's inputs gets the head's row instead,
        calibrated to the watched rows' scores (:func:`~primetime.models.coldhead.calibrate`),
        so that it competes with watched titles; its graph links are still kept (they
        give :meth:`explain` its reasons).
        """
        net, links = self.net, self.links
        cfg = self.config
        if net is None:
            return False
        n_new = items.size
        if net.tower is not None:
            grown = grow_content(
                net.tower,
                _content_side(side, cfg),
                n_old,
                n_new,
                min_count=cfg.min_people_titles,
                max_people=cfg.max_people,
            )
            if grown is None:
                return False
        kg = with_catalog_facts(side.kg, side.catalog) if cfg.year_links else side.kg
        use_kg = cfg.use_kg and bool(links.entities) and kg is not None
        if not use_kg and net.tower is None and self.cold is None:
            return False
        new_item, new_entity, new_rel = new_entity_links(
            kg if use_kg else None, items, n_old, links.entities, links.relations
        )
        cold = self.cold
        cold_rows = None  # the content head's rows of the new titles, if it can give them
        if cold is not None:
            head_links = (new_item, new_entity) if cfg.use_kg else (new_item[:0], new_entity[:0])
            cold_rows = cold.new_rows(
                _content_side(side, cfg),
                n_old,
                n_new,
                min_count=cfg.min_people_titles,
                max_people=cfg.max_people,
                links=head_links,
            )
        from_head = cold_rows is not None and bool(cold_rows.has.any())
        if not len(new_item) and net.tower is None and not from_head:
            return False  # nothing known: no vector (a caller falls back)
        table = self.item_table()
        vecs = self._new_vectors(n_old, n_new, new_item, new_entity, new_rel)
        if cold is not None and cold_rows is not None:
            has = torch.from_numpy(cold_rows.has)
            vecs[has] = break_ties(cold_rows.rows[has].to(vecs.dtype), vecs[has])
            cold.append(
                cold_rows,
                scored=n_old + np.flatnonzero(cold_rows.has),
                release_day=release_days(side, n_old, n_new),
                links=(new_item, new_entity, new_rel) if cfg.use_kg else None,
                kg=kg if use_kg else None,
                items=items,
            )

        net.item_emb = grow_embedding(net.item_emb, n_new)
        self._table = torch.cat([table, vecs.to(table.dtype)])
        self._unwatched = np.concatenate(
            [self._unwatched, np.ones(n_new - len(self._unwatched), dtype=bool)]
        )
        links.item = np.concatenate([links.item, new_item])
        links.entity = np.concatenate([links.entity, new_entity])
        links.relation = np.concatenate([links.relation, new_rel])
        self._shared = None
        return True

    def _new_vectors(
        self,
        n_old: int,
        n_new: int,
        new_item: np.ndarray,
        new_entity: np.ndarray,
        new_rel: np.ndarray,
    ) -> torch.Tensor:
        """(n_new - n_old, D) propagated vectors of the new titles (see :meth:`_extend`)."""
        net, links, cfg = self.net, self.links, self.config
        assert net is not None
        old = links.item < n_old
        groups = list(enumerate(links.relations)) if cfg.per_relation else [(-1, "linked")]
        edges: dict[EdgeType, torch.Tensor] = {}
        for k, r in groups:
            sel = old & ((links.relation == k) if k >= 0 else True)
            sel_new = (new_rel == k) if k >= 0 else np.ones(len(new_rel), dtype=bool)
            edges[("item", r, "entity")] = torch.from_numpy(
                np.stack([links.item[sel], links.entity[sel]])
            )
            edges[("entity", f"rev_{r}", "item")] = torch.from_numpy(
                np.stack([new_entity[sel_new], new_item[sel_new]])
            )
        w = net.item_emb.weight.detach()[:n_old].clone()
        w[torch.from_numpy(self._unwatched[:n_old])] = 0.0  # as at fit: no input vector
        net.eval()
        with torch.no_grad():
            kg = [  # the content links, as at fit (none without the graph)
                torch.from_numpy(np.concatenate([old_part, new_part]) if cfg.use_kg else z)
                for old_part, new_part, z in (
                    (links.item, new_item, new_item[:0]),
                    (links.entity, new_entity, new_entity[:0]),
                    (links.relation, new_rel, new_rel[:0]),
                )
            ]
            content = net.content(kg[0], kg[1], kg[2], n_new)  # (n_new, D)
            x = {
                "item": torch.cat([w, torch.zeros(n_new - n_old, w.shape[1])]) + content,
                "entity": net.entity_emb.weight.detach(),
            }
            out = net.propagate(x, edges)  # (n_new, D); only the new rows are exact
        return out[n_old:]

    # -------------------------------------------------------------- explain
    def explain(self, history_idx: int, item_idx: int) -> list[tuple[str, int]]:
        """What two titles share in the knowledge graph, by relation.

        Args:
            history_idx: A title the user watched (item_idx).
            item_idx: A recommended title.

        Returns:
            ``[(relation, count), …]``, most shared first: entities both titles link
            to per relation (``("actor", 2)``: two shared cast members), plus a
            direct title-title link (``("sequel", 1)``). Empty when they share nothing
            or no knowledge graph was given.
        """
        self._require_fitted()
        links = self.links
        if self._shared is None:
            shared: dict[int, set[tuple[int, int]]] = {}
            for i, e, r in zip(links.item, links.entity, links.relation, strict=True):
                shared.setdefault(int(i), set()).add((int(r), int(e)))
            self._shared = shared
        a = self._shared.get(int(history_idx), set())
        b = self._shared.get(int(item_idx), set())
        counts = Counter(links.relations[r] for r, _ in a & b)
        for pa, pb, r in zip(links.pair_a, links.pair_b, links.pair_relation, strict=True):
            if {int(pa), int(pb)} == {int(history_idx), int(item_idx)}:
                counts[links.pair_relations[r]] += 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    # ---------------------------------------------------------- save / load
    def _state(self) -> dict[str, np.ndarray]:
        assert self.net is not None
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        arrays["item_table"] = self.item_table().numpy()
        arrays["unwatched"] = self._unwatched
        if self.cold is not None:
            arrays.update(self.cold.arrays())
        links = self.links
        arrays.update(
            {
                "kg_item": links.item,
                "kg_entity": links.entity,
                "kg_relation": links.relation,
                "kg_pair_a": links.pair_a,
                "kg_pair_b": links.pair_b,
                "kg_pair_relation": links.pair_relation,
            }
        )
        return arrays

    def _restore(self, bundle: Bundle) -> None:
        a = bundle.arrays

        def names(vocab: str) -> list[str]:
            v = bundle.vocabs.get(vocab)
            return [v.id(k) for k in range(1, v.size)] if v is not None else []

        self.links = TitleLinks(
            a["kg_item"],
            a["kg_entity"],
            a["kg_relation"],
            a["kg_pair_a"],
            a["kg_pair_b"],
            a["kg_pair_relation"],
            names("entities"),
            names("relations"),
            names("pair_relations"),
        )
        tower = {
            k.removeprefix("net.tower."): v
            for k, v in a.items()
            if k.startswith("net.tower.tok_") or k == "net.tower.text"
        }
        self._tower_arrays = tower if tower else None
        self.net = self._new_net(bundle.items.size)
        state = {k[4:]: torch.from_numpy(v) for k, v in a.items() if k.startswith("net.")}
        self.net.load_state_dict(state)
        self.net.eval()
        self._table = torch.from_numpy(a["item_table"])
        n = len(self._table)
        self._unwatched = a["unwatched"] if "unwatched" in a else np.zeros(n, dtype=bool)
        self.cold = ColdHead.from_arrays(a)  # None in a bundle saved before heads were kept


__all__ = ["GNNConfig", "GNNNet", "GNNRecommender", "Graph", "TitleLinks", "title_links"]
