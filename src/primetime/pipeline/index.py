"""The static index of the pipeline: what is precomputed once from a catalog and a train log.

:class:`PipelineIndex` (genres, dates, next seasons, popularity, trending,
stored neighbours), :class:`Demographics` (popularity per user cell), the
:class:`PipelineConfig` constants they are built with, and the builders
that :meth:`~primetime.pipeline.pipeline.RecPipeline.build` calls.

**Neighbours.** Per title the ``n_neighbors`` most similar titles are stored,
(V, N) arrays (never a V x V matrix), from the union of (a) content
neighbours: cosine of multi-hot genres (weight ``genre_share``) plus year
closeness (Gaussian RBF features, so the whole similarity is one dot
product; exact top-N, searched only among genre signatures that can reach
it, see :func:`_content_topn`) and (b) co-occurrence neighbours: users'
distinct titles at most ``cooc_window`` steps apart,
``c_ab / (sqrt(n_a n_b) + shrink)``. The stored similarity is
``cooc_share * cooc + (1 - cooc_share) * content``. 27k titles and 1M
events build in about 2 s on 2 cores.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch

from primetime.data.catalog import Catalog
from primetime.data.interactions import Interactions
from primetime.data.users import Users
from primetime.data.vocab import Vocabulary

__all__ = ["AGE_EDGES", "Demographics", "PipelineConfig", "PipelineIndex"]

#: Age band edges (years) of the demographic popularity cells: <18, 18-24, ... 56+.
AGE_EDGES: tuple[int, ...] = (18, 25, 35, 45, 50, 56)


# ================================================================ configs
@dataclass(frozen=True)
class PipelineConfig:
    """What :meth:`RecPipeline.build` precomputes, and request-time constants.

    Attributes:
        n_neighbors: Stored neighbours per title.
        genre_share: Weight of genre cosine (vs year closeness) in content similarity.
        year_sigma: Width in years of the year-closeness kernel.
        cooc_share: Weight of co-occurrence (vs content) in the stored similarity.
        cooc_window: Two titles co-occur when a user watched them within this many steps.
        cooc_shrink: Added to the cosine denominator (damps rare pairs).
        max_cooc_events: Only the newest this many train events feed co-occurrence.
        trending_half_life_days: Half-life of the trending counts.
        pref_half_life_days: Half-life of preferences derived from a history.
        recent_items: History titles (newest first) used by the content component.
        recent_decay: Weight of the j-th newest of them is ``recent_decay ** j``.
        rerank_depth: Positions :meth:`RecPipeline.score` re-ranks with MMR.
        mmr_pool: Fewest titles a served list's MMR re-rank chooses among; lists up to
            ``(mmr_pool - 20)`` long are then prefixes of each other (the 10 titles of
            ``k=10`` are the first 10 of ``k=20``), so one evaluated list of 20 scores
            @5, @10 and @20 of the lists the API returns.
        min_segment_users: Fewest users a demographic cell needs to be used.
    """

    n_neighbors: int = 50
    genre_share: float = 0.75
    year_sigma: float = 4.0
    cooc_share: float = 0.5
    cooc_window: int = 5
    cooc_shrink: float = 10.0
    max_cooc_events: int = 1_000_000
    trending_half_life_days: float = 7.0
    pref_half_life_days: float = 14.0
    recent_items: int = 20
    recent_decay: float = 0.85
    rerank_depth: int = 50
    mmr_pool: int = 60
    min_segment_users: int = 20

    def __post_init__(self) -> None:
        for name in ("n_neighbors", "cooc_window", "max_cooc_events", "recent_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"PipelineConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("genre_share", "cooc_share", "recent_decay"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"PipelineConfig.{name} must be in [0, 1]")
        for name in ("year_sigma", "trending_half_life_days", "pref_half_life_days"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PipelineConfig.{name} must be > 0")


# ============================================================ demographics
@dataclass(frozen=True, eq=False)
class Demographics:
    """Distinct-user popularity per (age band, gender) cell.

    Attributes:
        counts: (A, G, V) float32; cell ``(0, *)`` / ``(*, 0)`` = unknown age / gender.
        n_users: (A, G) int64 users with at least one train event per cell.
        genders: Gender values (lower case) of codes 1..G-1.
    """

    counts: np.ndarray
    n_users: np.ndarray
    genders: tuple[str, ...]

    @staticmethod
    def age_band(age: Any) -> int:
        """1..len(AGE_EDGES)+1 for a valid age, 0 when unknown."""
        try:
            a = float(age)
        except (TypeError, ValueError):
            return 0
        if not math.isfinite(a) or a <= 0:
            return 0
        return int(np.searchsorted(AGE_EDGES, a, side="right")) + 1

    @classmethod
    def build(cls, users: Users | pl.DataFrame, train: Interactions) -> Demographics | None:
        """Cells from a users frame (``user_id`` plus ``age`` and/or ``gender``).

        Returns ``None`` when the frame has neither column.
        """
        frame = users.frame if isinstance(users, Users) else users
        if "user_id" not in frame.columns:
            raise ValueError("users frame needs a 'user_id' column")
        has_age, has_gender = "age" in frame.columns, "gender" in frame.columns
        if not (has_age or has_gender):
            return None
        uidx = train.users.indices(frame["user_id"].cast(pl.Utf8), strict=False)  # (n,)
        a_u = np.zeros(train.users.size, dtype=np.int64)
        g_u = np.zeros(train.users.size, dtype=np.int64)
        ok = uidx > 0
        genders: tuple[str, ...] = ()
        if has_age:
            ages = frame["age"].cast(pl.Float64, strict=False).fill_null(float("nan")).to_numpy()
            band = np.searchsorted(AGE_EDGES, ages, side="right") + 1
            band[~(np.isfinite(ages) & (ages > 0))] = 0
            a_u[uidx[ok]] = band[ok]
        if has_gender:
            gs = frame["gender"].cast(pl.Utf8).str.strip_chars().str.to_lowercase()
            top = gs.drop_nulls().value_counts(sort=True).head(4)
            genders = tuple(str(x) for x in top[top.columns[0]].to_list())
            code = {g: j + 1 for j, g in enumerate(genders)}
            gc = np.array([code.get(g, 0) if g is not None else 0 for g in gs.to_list()])
            g_u[uidx[ok]] = gc[ok]
        n_a, n_g = len(AGE_EDGES) + 2, len(genders) + 1
        mat = train.matrix()  # (users.size, V) distinct (user, item) pairs
        m = mat.tocoo()
        cell = a_u[m.row] * n_g + g_u[m.row]
        v = train.items.size
        counts = np.bincount(cell * v + m.col, minlength=n_a * n_g * v).astype(np.float32)
        active = np.flatnonzero(np.diff(mat.indptr) > 0)
        n_users = np.bincount(a_u[active] * n_g + g_u[active], minlength=n_a * n_g)
        return cls(counts.reshape(n_a, n_g, v), n_users.reshape(n_a, n_g), genders)

    def lookup(self, demographics: Mapping[str, Any], min_users: int) -> np.ndarray | None:
        """(V,) counts of the narrowest cell with ``min_users`` users, or ``None``.

        Tries (age band, gender), then age band alone, then gender alone.
        """
        a = self.age_band(demographics.get("age"))
        g_raw = demographics.get("gender")
        g_key = str(g_raw).strip().lower() if g_raw is not None else ""
        g = self.genders.index(g_key) + 1 if g_key in self.genders else 0
        cells: list[tuple[slice | int, slice | int]] = []
        if a and g:
            cells.append((a, g))
        if a:
            cells.append((a, slice(None)))
        if g:
            cells.append((slice(None), g))
        for ai, gi in cells:
            if int(np.sum(self.n_users[ai, gi])) >= min_users:
                c = self.counts[ai, gi]
                return c if c.ndim == 1 else c.sum(axis=0)
        return None


# =================================================================== index
@dataclass(frozen=True, eq=False)
class PipelineIndex:
    """Everything the pipeline precomputes from the catalog and the train log.

    All per-title arrays are indexed by item_idx (row 0 = padding); ``V`` is
    ``items.size`` and ``K`` the number of genres.

    Attributes:
        items: Item vocabulary.
        titles: (V,) title strings ("" at 0).
        genre_names: K genre names, sorted.
        genres: (V, K) float32 multi-hot.
        genre_unit: (V, K) float32 rows scaled to unit norm (0 for no genre).
        genre_csr: ``genre_unit`` as a CSR matrix (request-time products).
        genre_freq: (K,) titles per genre.
        item_genres: Genre names by item_idx (``()`` at 0).
        kind: (V,) int8, 0 movie, 1 show, -1 padding.
        year: (V,) int32, 0 unknown.
        release_day: (V,) float64 days since 1970-01-01, NaN unknown.
        next_season: (V,) int64 item_idx of the next season of the same show, 0 none.
        available: (V,) bool, False at padding and for withdrawn titles.
        popularity: (V,) float32 distinct train users.
        trending: (V,) float32 decayed train counts.
        neighbors: (V, N) int32 neighbour item_idx, best first, 0 = none.
        neighbor_sim: (V, N) float32 stored similarity (see module docstring).
        neighbor_cooc: (V, N) float32 its co-occurrence part (before ``cooc_share``).
        demographics: Popularity per user cell, or None.
        train_end: Newest train timestamp (unix seconds).
        added: (V,) float64 unix seconds at which a title was added to the running
            service (after its models were trained), NaN for the others; None when
            no title was added.
    """

    items: Vocabulary
    titles: np.ndarray
    genre_names: list[str]
    genres: np.ndarray
    genre_unit: np.ndarray
    genre_csr: sp.csr_matrix
    genre_freq: np.ndarray
    item_genres: list[tuple[str, ...]]
    kind: np.ndarray
    year: np.ndarray
    release_day: np.ndarray
    next_season: np.ndarray
    available: np.ndarray
    popularity: np.ndarray
    trending: np.ndarray
    neighbors: np.ndarray
    neighbor_sim: np.ndarray
    neighbor_cooc: np.ndarray
    demographics: Demographics | None
    train_end: float
    added: np.ndarray | None = None

    @functools.cached_property
    def genre_unit64(self) -> np.ndarray:
        """``genre_unit`` in float64, for products with float64 preference vectors."""
        return self.genre_unit.astype(np.float64)

    @functools.cached_property
    def seasons(self) -> tuple[np.ndarray, np.ndarray]:
        """(V,) int64 show of each season-level title (the item_idx of its first season;
        0 for titles that are not one of two or more seasons) and (V,) int64 its place
        in the show (1 = first season; 0 for other titles), from ``next_season``."""
        v = self.next_season.size
        prev = np.zeros(v, dtype=np.int64)
        has_next = np.flatnonzero(self.next_season)
        prev[self.next_season[has_next]] = has_next
        show = np.zeros(v, dtype=np.int64)
        place = np.zeros(v, dtype=np.int64)
        for first in has_next[prev[has_next] == 0].tolist():  # first seasons
            i, n = first, 1
            while i and not show[i]:  # `not show[i]` guards a malformed cycle
                show[i], place[i] = first, n
                i, n = int(self.next_season[i]), n + 1
        return show, place

    @functools.cached_property
    def genre_index(self) -> dict[str, int]:
        """Column of each genre name (built once: read on every request)."""
        return {g: j for j, g in enumerate(self.genre_names)}


def _catalog_dates(catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """(V,) year (0 unknown) and (V,) release day (NaN unknown): :meth:`Catalog.dates`."""
    return catalog.dates()


def _next_seasons(catalog: Catalog) -> np.ndarray:
    """(V,) int64: the next season (same ``series_id``, next ``season_number``) or 0."""
    f = catalog.frame.select("series_id", "season_number").with_row_index("idx", offset=1)
    s = (
        f.drop_nulls(["series_id", "season_number"])
        .sort(["series_id", "season_number"])
        .with_columns(pl.col("idx").shift(-1).over("series_id").alias("next"))
        .drop_nulls("next")
    )
    out = np.zeros(catalog.items.size, dtype=np.int64)
    out[s["idx"].to_numpy().astype(np.int64)] = s["next"].to_numpy().astype(np.int64)
    return out


def _content_features(
    genre_unit: np.ndarray, year: np.ndarray, genre_share: float, sigma: float
) -> np.ndarray:
    """(V, D) float32 rows whose dot product is the content similarity in [0, 1].

    ``genre_share * genre cosine + (1 - genre_share) * year closeness``, where
    year closeness is the dot of unit-norm Gaussian RBF encodings of the year
    (centres every ``sigma`` years), about ``exp(-dy^2 / (4 sigma^2))``.
    """
    known = year > 0
    if known.any():
        lo, hi = int(year[known].min()), int(year[known].max())
        centres = np.arange(lo - sigma, hi + sigma + 1, sigma)  # (Y,)
        y = np.exp(-((year[:, None] - centres[None, :]) ** 2) / (2 * sigma**2))  # (V, Y)
        y[~known] = 0.0
        norm = np.linalg.norm(y, axis=1, keepdims=True)
        y = np.divide(y, norm, out=np.zeros_like(y), where=norm > 0)
    else:
        y = np.zeros((year.size, 0))
    feats = np.hstack([math.sqrt(genre_share) * genre_unit, math.sqrt(1 - genre_share) * y])
    return np.ascontiguousarray(feats, dtype=np.float32)


def _content_topn(
    feats: np.ndarray,
    genre_unit: np.ndarray,
    year: np.ndarray,
    n: int,
    tiebreak: np.ndarray,
    genre_share: float,
    block: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``n`` content neighbours of every title, without a V x V pass.

    Content similarity is ``genre_share * gcos + (1 - genre_share) * ysim`` with
    both parts in [0, 1], and ``gcos`` depends only on the genre *signature*
    (set of genres). Titles are grouped by signature; for a group ``s``, let
    ``g*`` be the genre cosine at which the signatures nearest to ``s`` first
    hold ``n + 1`` titles. Those titles score at least ``genre_share * g*``, and
    a title whose signature has ``gcos < g* - (1 - genre_share) / genre_share``
    scores less, so only signatures above that bound are scored (blocked
    matmul + topk in torch). Usually a small slice of the catalog; a rare
    signature or titles without genres fall back to the whole catalog. Titles
    of one signature and year share a feature row, so each such row is scored
    once.

    Args:
        feats: (V, D) float32 content features (see :func:`_content_features`).
        genre_unit: (V, K) unit-norm genre rows (they define the signatures).
        year: (V,) year of each title (0 unknown), the other half of ``feats``.
        n: Neighbours per title.
        tiebreak: (V,) tiny additive scores deciding between equal similarities.
        genre_share: The genre weight used to build ``feats``.
        block: Feature rows scored at once (bounds memory to ``block x candidates``).

    Returns:
        ``(idx, sim)``, each (V, n): int32 item_idx and float32 similarity;
        row 0 and missing entries are 0.
    """
    v = feats.shape[0]
    idx = np.zeros((v, n), dtype=np.int32)
    sim = np.zeros((v, n), dtype=np.float32)
    if v <= 2 or feats.shape[1] == 0:
        return idx, sim
    sigs, inv = np.unique(genre_unit[1:], axis=0, return_inverse=True)  # (S, K), (V-1,)
    inv = inv.reshape(-1)
    n_sig = sigs.shape[0]
    gcos = sigs @ sigs.T  # (S, K) @ (K, S) -> (S, S)
    sizes = np.bincount(inv, minlength=n_sig)
    by_sig = np.argsort(inv, kind="stable") + 1  # item_idx grouped by signature
    margin = (1 - genre_share) / genre_share if genre_share > 0 else np.inf
    f = torch.from_numpy(feats)
    tb = torch.from_numpy(tiebreak.astype(np.float32))
    threads = torch.get_num_threads()
    # The products here are small (a signature group x its candidates): thread
    # start-up and, on a busy machine, spinning threads cost more than they
    # save (measured 0.4 s on one thread vs 5-12 s on two next to a training job).
    torch.set_num_threads(1)
    try:
        _content_topn_groups(f, tb, gcos, inv, sizes, by_sig, year, n, margin, block, idx, sim)
    finally:
        torch.set_num_threads(threads)
    return idx, sim


def _content_topn_groups(
    f: torch.Tensor,
    tb: torch.Tensor,
    gcos: np.ndarray,
    inv: np.ndarray,
    sizes: np.ndarray,
    by_sig: np.ndarray,
    year: np.ndarray,
    n: int,
    margin: float,
    block: int,
    idx: np.ndarray,
    sim: np.ndarray,
) -> None:
    """The loop of :func:`_content_topn` over signature groups; fills ``idx`` / ``sim``."""
    n_sig = gcos.shape[0]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    with torch.no_grad():
        for s in range(n_sig):
            order = np.argsort(-gcos[s], kind="stable")
            reach = min(int(np.searchsorted(np.cumsum(sizes[order]), n + 1)), n_sig - 1)
            ok_sig = gcos[s] >= gcos[s, order[reach]] - margin - 1e-6  # (S,)
            cand = np.flatnonzero(ok_sig[inv]) + 1  # (C,) ascending item_idx
            k = min(n, cand.size - 1)
            if k < 1:
                continue
            fc = f[torch.from_numpy(cand)]  # (C, D)
            tbc = tb[torch.from_numpy(cand)]  # (C,)
            members = by_sig[starts[s] : starts[s + 1]]
            # same signature and year = same feature row = same candidate scores:
            # score one representative per year, keep k + 1 and drop the title itself
            years, first, inv_m = np.unique(year[members], return_index=True, return_inverse=True)
            reps = members[first]  # (U,)
            for b in range(0, reps.size, block):
                r = torch.from_numpy(reps[b : b + block])
                sc = f[r] @ fc.T + tbc[None, :]  # (U_b, D) @ (D, C) -> (U_b, C)
                vals, top = torch.topk(sc, k + 1, dim=1)  # (U_b, k + 1)
                rows = (inv_m >= b) & (inv_m < b + block)
                m = members[rows]  # (M_b,) titles of these years
                row_of = inv_m[rows] - b
                nb = cand[top.numpy()][row_of]  # (M_b, k + 1)
                val = (vals - tbc[top]).numpy()[row_of]
                keep = nb != m[:, None]
                keep[keep.all(axis=1), -1] = False  # itself not listed: drop the last
                idx[m, :k] = nb[keep].reshape(m.size, k)
                sim[m, :k] = val[keep].reshape(m.size, k)


def _cooccurrence(train: Interactions, cfg: PipelineConfig) -> sp.csr_matrix:
    """(V, V) float32 symmetric co-occurrence similarity with sorted indices.

    Titles co-occur when a user's distinct titles (first event each, in time
    order) are at most ``cooc_window`` steps apart; the count ``c_ab`` over
    users becomes ``c_ab / (sqrt(n_a n_b) + cooc_shrink)``, ``n`` = users per title.
    """
    v = train.items.size
    if len(train) == 0:
        return sp.csr_matrix((v, v), dtype=np.float32)
    rows = np.arange(len(train))
    if len(train) > cfg.max_cooc_events:  # keep the newest events only
        rows = np.argpartition(-train.timestamp, cfg.max_cooc_events - 1)[: cfg.max_cooc_events]
    rows = rows[np.lexsort((rows, train.timestamp[rows], train.user_idx[rows]))]
    u = train.user_idx[rows].astype(np.int64)
    it = train.item_idx[rows].astype(np.int64)
    _, first = np.unique(u * v + it, return_index=True)
    keep = np.sort(first)  # first event of each (user, title), time order kept
    u, it = u[keep], it[keep]
    n_users = np.bincount(it, minlength=v).astype(np.float64)
    c = sp.csr_matrix((v, v), dtype=np.float32)
    for s in range(1, cfg.cooc_window + 1):
        same = u[s:] == u[:-s]
        a, b = it[:-s][same], it[s:][same]
        m = sp.csr_matrix((np.ones(a.size, dtype=np.float32), (a, b)), shape=(v, v))
        c = c + m + m.T
    c = c.tocsr()
    c.sum_duplicates()
    c.sort_indices()
    r = np.repeat(np.arange(v), np.diff(c.indptr))
    c.data = (c.data / (np.sqrt(n_users[r] * n_users[c.indices]) + cfg.cooc_shrink)).astype(
        np.float32
    )
    return c


def _csr_topn(c: sp.csr_matrix, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Largest ``n`` entries of every row: (V, n) int32 columns, (V, n) float32 values."""
    v = c.shape[0]
    idx = np.zeros((v, n), dtype=np.int32)
    val = np.zeros((v, n), dtype=np.float32)
    if c.nnz == 0:
        return idx, val
    r = np.repeat(np.arange(v), np.diff(c.indptr))
    order = np.lexsort((c.indices, -c.data, r))  # by row, then value desc
    pos = np.arange(c.nnz) - c.indptr[r[order]]
    keep = pos < n
    idx[r[order][keep], pos[keep]] = c.indices[order][keep]
    val[r[order][keep], pos[keep]] = c.data[order][keep]
    return idx, val


def _csr_lookup(c: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
    """``c[row, cols[row, j]]`` for every row, shape like ``cols`` (V, M); 0 where absent."""
    v = c.shape[0]
    if c.nnz == 0:
        return np.zeros(cols.shape, dtype=np.float32)
    r = np.repeat(np.arange(v, dtype=np.int64), np.diff(c.indptr))
    keys = r * v + c.indices  # ascending: rows ascending, indices sorted within rows
    q = np.arange(cols.shape[0], dtype=np.int64)[:, None] * v + cols  # (V, M)
    pos = np.minimum(np.searchsorted(keys, q), keys.size - 1)
    return np.where(keys[pos] == q, c.data[pos], 0.0).astype(np.float32)


def _merge_neighbors(
    feats: np.ndarray,
    content: tuple[np.ndarray, np.ndarray],
    cooc_top: tuple[np.ndarray, np.ndarray],
    cooc: sp.csr_matrix,
    cfg: PipelineConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of content and co-occurrence neighbours, ranked by the combined similarity.

    Returns:
        (V, N) int32 neighbours, (V, N) float32 combined similarity, (V, N)
        float32 co-occurrence part; entries with similarity <= 0 are dropped (0).
    """
    n = cfg.n_neighbors
    cand = np.hstack([content[0], cooc_top[0]]).astype(np.int64)  # (V, 2N)
    v = cand.shape[0]
    csim = np.empty(cand.shape, dtype=np.float32)
    step = 2048
    for s in range(0, v, step):  # (b, D) . (b, 2N, D) -> (b, 2N), chunked for memory
        csim[s : s + step] = np.einsum("bd,bnd->bn", feats[s : s + step], feats[cand[s : s + step]])
    osim = _csr_lookup(cooc, cand)  # (V, 2N)
    comb = cfg.cooc_share * osim + (1 - cfg.cooc_share) * csim
    comb[cand == 0] = -np.inf
    order = np.argsort(cand, axis=1, kind="stable")
    srt = np.take_along_axis(cand, order, axis=1)
    dup = np.zeros(cand.shape, dtype=bool)
    dup[:, 1:] = srt[:, 1:] == srt[:, :-1]
    np.put_along_axis(comb, order, np.where(dup, -np.inf, np.take_along_axis(comb, order, 1)), 1)
    best = np.lexsort((cand, -comb), axis=1)[:, :n]  # (V, N) by similarity desc, idx asc
    nb = np.take_along_axis(cand, best, axis=1)
    sim = np.take_along_axis(comb, best, axis=1)
    co = np.take_along_axis(osim, best, axis=1)
    gone = ~(sim > 0)
    nb[gone], sim[gone], co[gone] = 0, 0.0, 0.0
    nb[0], sim[0], co[0] = 0, 0.0, 0.0
    return nb.astype(np.int32), sim.astype(np.float32), co.astype(np.float32)
