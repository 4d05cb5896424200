"""Candidate retrieval for large catalogs: a FAISS inner-product index over a model's
item table, then exact scores for the candidates only.

Applies to the models whose score is a dot product of a user vector and an item
table (``Recommender.item_vectors`` returns the table): ``sasrec``, ``gru4rec``,
``als``, ``bpr``, ``mf``. With ``model.enable_retrieval(RetrievalConfig(...))`` (or
``FitOptions.retrieval``, applied after fit), ``model.score`` returns the exact
scores of the ``candidates`` items the index finds for each user and ``-inf``
everywhere else: the rest of the system (pipeline, evaluation, service) sees the
same (B, items.size) contract, with "not retrieved" meaning "must not recommend".

Why an index at all: exact scoring is a (B, D) x (D, V) product plus a top-k over V
per request; at V >= 100k titles that product dominates a request
(``benchmarks/bench_retrieval.py`` measures the ratio on the ``xl-catalog`` world).

Two kinds of approximate index (exact vectors stored, no compression). Both search
by L2 distance after the reduction of maximum inner product search to nearest
neighbours (Bachrach et al. 2014, "Speeding up the Xbox recommender system using a
Euclidean transformation for inner-product spaces"): every item gets one more
coordinate sqrt(M^2 - |v|^2) (M the largest norm), every query a 0, so the nearest
item is the one with the largest inner product. On ALS factors of the
``xl-catalog`` world (whose item norms differ widely) plain inner-product indexes
found far less of the exact top-100 (HNSW 0.64, IVF at nprobe 16 0.05) than on the
transform (0.88, 0.37); ``mips=False`` keeps the plain inner-product index. Queries
are also scaled to norm M (which does not change their ranking), onto the sphere
the items lie on: that raised IVF at nprobe 16 from 0.37 to 0.54 and left HNSW at
0.88 (runs on different samples of 200-500 users). HNSW stays below recall@100
0.95 on ALS (README, "Benchmarks"); IVF with 64 probes reaches it on ALS, so IVF is
the default.

Shared taste (``RetrievalConfig.common``): a model whose user vectors share a large
common part ranks the same few hundred titles near the top for everyone, and those
titles need not be near each other or near any one query, so a nearest-neighbour index
misses part of them however widely it searches. Measured on the SASRec of
``benchmarks/bench_retrieval.py`` (one epoch, sampled softmax, xl-catalog): the mean of
300 test users' vectors has norm 7.6, their distance to it 0.8 (median), 98% of the
score variance is the mean user's part; the 300 users' exact top-100s hold only 194
distinct titles (one of them in 298 lists), all with training events (median 797 in the
missed ones). IVF at 64 probes found 0.835 of the exact top-100 and 0.835 again with
800 more candidates per user; HNSW 0.917 at ef_search 256 and 512 alike (both searched
``candidates + history length`` wide, up to 822, see :meth:`ItemIndex.search`). So every
user also gets the ``common`` best titles for the model's mean user vector (estimated at
build time from the user vectors of ``probes`` single-title histories), scored exactly:
200 more dot products per user, and recall@100 1.000 there. On a model whose users
differ (ALS) they are popular titles that change little.

- ``"hnsw"``: a graph (Malkov & Yashunin 2018, arXiv:1603.09320); no training,
  ``ef_search`` trades speed for recall.
- ``"ivf"``: k-means cells (``nlist``), ``nprobe`` of them searched per query.
- ``"flat"``: brute force, exact; for tests and as a reference.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

KINDS = ("hnsw", "ivf", "flat")


@dataclass(frozen=True)
class RetrievalConfig:
    """How candidates are retrieved before exact scoring.

    Attributes:
        kind: "ivf" (default: the kind that reached recall@100 >= 0.95 on the
            ``xl-catalog`` world, README "Benchmarks"), "hnsw" or "flat".
        candidates: Items retrieved per user, before the user's history is added
            on top (so seen titles, removed later by the pipeline, do not eat the
            budget): a user with L history items gets ``candidates + L`` searched.
        hnsw_m: Links per node of the HNSW graph.
        ef_construction: HNSW build-time beam width.
        ef_search: HNSW search beam width (raised to at least the items searched).
        nlist: IVF cells; 0 picks ``4 * sqrt(V)``.
        nprobe: IVF cells searched per query.
        min_items: Build no index below this catalog size (exact scoring is as fast
            there); 0 always builds.
        threads: FAISS OpenMP threads (build and search); None leaves FAISS's default.
        mips: Index the Euclidean transform of the table (see the module docstring)
            instead of inner products, for "hnsw" and "ivf".
        common: Items scored exactly for every user on top of what the index finds:
            the ``common`` best items for the model's mean user vector (see the module
            docstring, "Shared taste"); 0 for none.
        probes: Single-title histories (random titles) whose user vectors are averaged
            into that mean user vector when the index is built.
        seed: k-means seed of the IVF cells and of the probe titles.
    """

    kind: str = "ivf"
    candidates: int = 200
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    nlist: int = 0
    nprobe: int = 64
    min_items: int = 0
    threads: int | None = None
    mips: bool = True
    common: int = 200
    probes: int = 512
    seed: int = 42

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"RetrievalConfig.kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("candidates", "hnsw_m", "ef_construction", "ef_search", "nprobe"):
            if getattr(self, name) < 1:
                raise ValueError(f"RetrievalConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.nlist < 0 or self.min_items < 0 or self.common < 0:
            raise ValueError("RetrievalConfig.nlist, min_items and common must be >= 0")
        if self.probes < 1:
            raise ValueError(f"RetrievalConfig.probes must be >= 1, got {self.probes}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"RetrievalConfig.threads must be >= 1, got {self.threads}")


class ItemIndex:
    """A FAISS inner-product index over item rows 1..V-1 (row 0, padding, is left out).

    Args:
        table: (V, D) item vectors indexed by item_idx.
        config: Index kind and its settings.
        anchor: (D,) the model's mean user vector: its ``config.common`` best items are
            added to every query's candidates (:meth:`candidates`); None adds none.
    """

    def __init__(
        self, table: np.ndarray, config: RetrievalConfig, anchor: np.ndarray | None = None
    ) -> None:
        import faiss

        table = np.ascontiguousarray(table, dtype=np.float32)
        if table.ndim != 2 or table.shape[0] < 2:
            raise ValueError(f"item table must be (V >= 2, D), got shape {table.shape}")
        self.config = config
        self.n_items = table.shape[0]
        self.dim = table.shape[1]
        if config.threads is not None:
            faiss.omp_set_num_threads(config.threads)
        # Zero rows (titles a model never learned, e.g. ALS items without a training
        # event) score 0 for every user and, transformed, all become one point: left
        # out of the approximate indexes (thousands of duplicates in a graph). Measured
        # on xl-catalog ALS, it did not change HNSW recall@100 (0.883 -> 0.879).
        # "flat" keeps them: it is the exact reference.
        learned = np.any(table[1:] != 0, axis=1) | (config.kind == "flat")  # (V - 1,)
        self.ids = 1 + np.flatnonzero(learned)  # FAISS row -> item_idx
        if not len(self.ids):
            raise ValueError("the item table has no non-zero row to index")
        rows = np.ascontiguousarray(table[self.ids])  # (N, D)
        n = len(rows)
        self.euclidean = config.mips and config.kind != "flat"
        metric = faiss.METRIC_INNER_PRODUCT
        dim = self.dim
        if self.euclidean:
            norms = np.linalg.norm(rows, axis=1)  # (V - 1,)
            self.radius = float(norms.max())
            extra = np.sqrt(np.maximum(self.radius**2 - norms**2, 0.0))  # (V - 1,)
            rows = np.ascontiguousarray(np.hstack([rows, extra[:, None]]), dtype=np.float32)
            metric, dim = faiss.METRIC_L2, dim + 1  # (V - 1, D + 1)
        index: Any
        if config.kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif config.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, config.hnsw_m, metric)
            index.hnsw.efConstruction = config.ef_construction
        else:
            nlist = config.nlist or int(4 * np.sqrt(n))
            nlist = max(1, min(nlist, n // 39 or 1))  # FAISS wants ~39 points per cell
            flat = faiss.IndexFlatL2 if self.euclidean else faiss.IndexFlatIP
            self._quantizer = flat(dim)  # kept alive with the index
            index = faiss.IndexIVFFlat(self._quantizer, dim, nlist, metric)
            index.cp.seed = config.seed
            index.train(rows)
            index.nprobe = min(config.nprobe, nlist)
        index.add(rows)
        self.index = index
        #: (C,) item indices every query gets as candidates (best for ``anchor`` first)
        self.common = np.zeros(0, dtype=np.int64)
        if config.common and anchor is not None:
            prior = table[self.ids] @ np.asarray(anchor, dtype=np.float32)  # (N,)
            k = min(config.common, len(prior))
            top = np.argpartition(-prior, k - 1)[:k]
            self.common = self.ids[top[np.argsort(-prior[top], kind="stable")]]

    def set_search(self, *, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Change the search-time settings (HNSW ``ef_search``, IVF ``nprobe``) without
        rebuilding the index."""
        self.config = dataclasses.replace(
            self.config,
            ef_search=ef_search or self.config.ef_search,
            nprobe=nprobe or self.config.nprobe,
        )
        if self.config.kind == "ivf":
            self.index.nprobe = min(self.config.nprobe, self.index.nlist)

    def search(self, queries: np.ndarray, n: int) -> np.ndarray:
        """Item indices (B, n) of the ``n`` best inner products per query (B, D), best
        first as the index found them; -1 where fewer than ``n`` were found. HNSW searches
        ``max(ef_search, n)`` wide: an ``ef_search`` below ``n`` changes nothing."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must be (B, {self.dim}), got shape {queries.shape}")
        n = min(n, len(self.ids))
        if self.euclidean:
            scale = self.radius / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
            queries = np.hstack([queries * scale, np.zeros((len(queries), 1))])  # (B, D + 1)
            queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.config.kind == "hnsw":
            self.index.hnsw.efSearch = max(self.config.ef_search, n)
        _, rows = self.index.search(queries, n)  # (B, n) FAISS rows, -1 = none
        return np.where(rows >= 0, self.ids[np.maximum(rows, 0)], -1)

    def candidates(self, queries: np.ndarray, need: np.ndarray) -> np.ndarray:
        """The items to score exactly per query (B, D): the ``need[b]`` best the index
        finds for row b, then the ``common`` items; (B, N) item indices, -1 = none
        (an item may appear twice)."""
        found = self.search(queries, int(need.max()))  # (B, n), best first
        # each row keeps its own budget, so that a user's candidates do not depend on
        # who shares the batch
        found[np.arange(found.shape[1])[None, :] >= need[:, None]] = -1
        if not len(self.common):
            return found
        common = np.broadcast_to(self.common, (len(found), len(self.common)))
        return np.hstack([found, common])  # (B, n + C)


def scores_from_candidates(
    users: np.ndarray, table: np.ndarray, candidates: np.ndarray
) -> np.ndarray:
    """The full (B, V) score array: exact ``users @ table.T`` on each row's candidates,
    ``-inf`` elsewhere (and on padding).

    Args:
        users: (B, D) user vectors.
        table: (V, D) item vectors.
        candidates: (B, N) item indices per row; -1 entries are ignored.
    """
    out = np.full((len(users), table.shape[0]), -np.inf, dtype=np.float32)
    safe = np.where(candidates > 0, candidates, 0)  # (B, N)
    exact = np.einsum("bd,bnd->bn", users.astype(np.float32), table[safe])  # (B, N)
    rows = np.repeat(np.arange(len(users)), candidates.shape[1]).reshape(candidates.shape)
    ok = candidates > 0
    out[rows[ok], candidates[ok]] = exact[ok]
    return out


def recall_at(exact_top: np.ndarray, found_top: np.ndarray) -> float:
    """Mean share of each row's exact top items (B, k) that ``found_top`` (B, k') holds."""
    hits = [len(np.intersect1d(a, b)) / len(a) for a, b in zip(exact_top, found_top, strict=True)]
    return float(np.mean(hits))
