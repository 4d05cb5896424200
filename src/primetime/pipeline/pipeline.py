"""RecPipeline: the one recommendation path shared by the service and evaluation.

Stages, in order (each a method below, vectorised over a batch of users)::

    candidates  every catalog title (a FAISS index would plug in here)
    filter      padding, unavailable / unreleased, seen, excluded, disliked,
                kind = movie | show, genre                    -> allowed (B, V)
    rank        the Recommender's scores, once per batch      -> (B, V)
    blend       weighted sum of normalised components:
                  model       the Recommender's score
                  realtime    the user's live genre preferences . item genres
                  content     similarity to the recent history (stored neighbours)
                  popularity  log(1 + distinct users), or of the user's
                              demographic cell ("people like you")
                  trending    log(1 + 7-day half-life decayed count)
    re-rank     MMR on genre cosine (BlendWeights.diversity)
    top-k       with a Reason per title (explain.py)

**Normalisation.** Each component is z-scored per request over the allowed
titles of that user (mean 0, standard deviation 1; a constant component
becomes 0). z-scores are O(V) (a rank percentile would need a sort per
component and request), affine (so a single component keeps its exact order:
``BlendWeights.only("model")`` ranks exactly like the model), and the heavy
tail of popularity is tamed first by ``log1p``. ``-inf`` from the model
means "must not recommend" whatever the weights.

**Cold start.** With ``n < cold_start_threshold`` history titles the model and
content weights are scaled by ``(n + 1) / (threshold + 1)`` and popularity /
trending by ``2 - that``, so the blend slides towards popular titles;
onboarding genres enter the realtime component with a strength that fades
as history grows. Scaling never reaches 0, so a model-only blend still ranks
like the model.

**Neighbours.** The content component reads the titles stored per title in
:class:`~primetime.pipeline.index.PipelineIndex`; how they are chosen is told in
:mod:`primetime.pipeline.index`, which builds the whole static index. The pure
array functions of the stages are in :mod:`primetime.pipeline.stages`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from primetime.artifacts import check_same_catalog
from primetime.data.catalog import KINDS, Catalog
from primetime.data.interactions import Interactions
from primetime.data.users import Users
from primetime.data.vocab import Vocabulary
from primetime.eval.ranking import topk_lists
from primetime.models.base import Recommender
from primetime.pipeline import explain as X
from primetime.pipeline.explain import Reason
from primetime.pipeline.index import (
    Demographics,
    PipelineConfig,
    PipelineIndex,
    _catalog_dates,
    _content_features,
    _content_topn,
    _cooccurrence,
    _csr_topn,
    _merge_neighbors,
    _next_seasons,
)
from primetime.pipeline.realtime import DAY, Event, GenrePreferences
from primetime.pipeline.stages import _as_indices, _check_k, _history_weight, _mmr_one, _zscore
from primetime.types import UserContext

log = logging.getLogger(__name__)

__all__ = [
    "CAROUSEL_ROWS",
    "COMPONENTS",
    "BlendWeights",
    "Carousel",
    "Demographics",
    "PipelineConfig",
    "PipelineIndex",
    "RecPipeline",
    "ScoredItem",
]

#: Blend components, in the order of :class:`BlendWeights`.
COMPONENTS: tuple[str, ...] = ("model", "realtime", "content", "popularity", "trending")
#: Rows :meth:`RecPipeline.carousels` can build, in their default order.
CAROUSEL_ROWS: tuple[str, ...] = (
    "continue_watching",
    "top_picks",
    "because_watched",
    "genres",
    "trending",
    "new_releases",
)


# ================================================================ configs
@dataclass(frozen=True)
class BlendWeights:
    """Weights of the blend components and of the diversity re-rank.

    Attributes:
        model: The Recommender's (z-scored) score.
        realtime: Live genre preferences.
        content: Similarity to the recent history.
        popularity: Distinct users (or users like this one).
        trending: Recent, decayed popularity.
        diversity: Strength of the MMR genre re-rank in [0, 1): the classic MMR
            lambda is ``1 - diversity``; 0 = plain ranking.
        cold_start_threshold: Users with fewer history titles are cold.

    Raises:
        ValueError: naming the field, for a negative or non-finite weight,
            ``diversity`` outside [0, 1) or a negative threshold.
    """

    model: float = 1.0
    realtime: float = 0.3
    content: float = 0.3
    popularity: float = 0.1
    trending: float = 0.1
    diversity: float = 0.1
    cold_start_threshold: int = 5

    def __post_init__(self) -> None:
        for name in COMPONENTS:
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"BlendWeights.{name} must be a finite number >= 0, got {v!r}")
        if not isinstance(self.diversity, int | float) or not 0 <= self.diversity < 1:
            raise ValueError(f"BlendWeights.diversity must be in [0, 1), got {self.diversity!r}")
        t = self.cold_start_threshold
        if not isinstance(t, int) or isinstance(t, bool) or t < 0:
            raise ValueError(f"BlendWeights.cold_start_threshold must be an int >= 0, got {t!r}")

    @classmethod
    def only(cls, component: str, *, diversity: float = 0.0) -> BlendWeights:
        """Weight 1 on ``component``, 0 elsewhere (for ablations and tests)."""
        if component not in COMPONENTS:
            raise ValueError(f"unknown component {component!r}; known: {COMPONENTS}")
        values = {c: 1.0 if c == component else 0.0 for c in COMPONENTS}
        return cls(**values, diversity=diversity)  # type: ignore[arg-type]

    def vector(self) -> np.ndarray:
        """(C,) float64 weights in :data:`COMPONENTS` order."""
        return np.array([getattr(self, c) for c in COMPONENTS], dtype=np.float64)


@dataclass(frozen=True)
class ScoredItem:
    """One recommended title.

    Attributes:
        item_idx: Title index.
        score: Blended score (higher is better; comparable within one list only).
        reason: Why it is shown.
        components: Contribution ``weight * normalised score`` of each blend
            component (or, for similar titles, ``cooc`` / ``content`` similarity).
    """

    item_idx: int
    score: float
    reason: Reason
    components: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Carousel:
    """One row of the home page: a stable ``key``, a display ``title`` and its titles."""

    key: str
    title: str
    items: list[ScoredItem]


# ================================================================ pipeline
@dataclass
class _Request:
    """One user's request, validated; ``now`` is the decay reference time."""

    ctx: UserContext
    prefs: GenrePreferences | None
    now: float
    release_now: float | None
    exclude: np.ndarray
    dislikes: np.ndarray
    onboarding: tuple[str, ...]
    demographics: Mapping[str, Any] | None


@dataclass
class _Blend:
    """What the blend stage hands to selection and explanation.

    ``total`` (B, V) float32 is ``-inf`` outside ``allowed``; ``parts`` holds
    each computed component's weighted contribution (B, V) when asked for;
    ``pref`` (B, K) the genre preference vectors; ``recent`` / ``recent_w``
    per row the recent positive history titles (newest first) and their weights.
    """

    total: np.ndarray
    allowed: np.ndarray
    parts: dict[str, np.ndarray]
    pref: np.ndarray
    recent: list[np.ndarray]
    recent_w: list[np.ndarray]
    like_you: np.ndarray


@dataclass(frozen=True, eq=False)
class RecPipeline:
    """candidates -> filter -> rank -> blend -> diversity re-rank -> top-k with reasons.

    Build it with :meth:`build`. Evaluation calls :meth:`score` (it has
    ``name``, ``items`` and ``score(contexts)`` like a model); the service calls
    :meth:`recommend`, :meth:`recommend_batch`, :meth:`similar` and
    :meth:`carousels`. All indices are item_idx of ``index.items``.

    Attributes:
        model: The ranking model, or None (content + popularity + realtime only).
        index: Precomputed catalog / train side data.
        weights: Blend weights.
        config: Build and request constants.
    """

    model: Recommender | None
    index: PipelineIndex
    weights: BlendWeights = field(default_factory=BlendWeights)
    config: PipelineConfig = field(default_factory=PipelineConfig)

    # -------------------------------------------------------------- basics
    @property
    def name(self) -> str:
        return "pipeline" if self.model is None else f"pipeline[{self.model.name}]"

    @property
    def items(self) -> Vocabulary:
        return self.index.items

    def with_weights(self, weights: BlendWeights) -> RecPipeline:
        """The same pipeline (shared index, no rebuild) with other blend weights."""
        return dataclasses.replace(self, weights=weights)

    def with_model(self, model: Recommender | None) -> RecPipeline:
        """The same pipeline with another (fitted) model on the same catalog."""
        if model is not None:
            if model.items is None:
                raise ValueError(f"model {model.name!r} is not fitted")
            check_same_catalog(model.items, self.items, where=f"model {model.name!r}")
        return dataclasses.replace(self, model=model)

    # --------------------------------------------------------------- build
    @classmethod
    def build(
        cls,
        model: Recommender | None,
        catalog: Catalog,
        train: Interactions,
        *,
        weights: BlendWeights | None = None,
        config: PipelineConfig | None = None,
        users: Users | pl.DataFrame | None = None,
        available: np.ndarray | None = None,
    ) -> RecPipeline:
        """Precompute popularity, trending, genres, neighbours (and demographics).

        Args:
            model: A fitted Recommender on ``catalog``'s items, or None.
            catalog: All titles.
            train: Interactions the side data is computed from (the model's train log).
            weights: Blend weights (default :class:`BlendWeights`).
            config: Build constants (default :class:`PipelineConfig`).
            users: User metadata with ``age`` / ``gender`` for "popular with people
                like you"; ignored when it has neither.
            available: (V,) bool, False for titles that must never be recommended.

        Raises:
            ValueError: if the model, train log or ``available`` do not match the catalog.
        """
        weights = weights if weights is not None else BlendWeights()
        cfg = config if config is not None else PipelineConfig()
        check_same_catalog(catalog.items, train.items, where="the train log")
        pipe_model = None
        t0 = time.perf_counter()
        v = catalog.items.size
        avail = np.ones(v, dtype=bool)
        avail[0] = False
        if available is not None:
            a = np.asarray(available, dtype=bool)
            if a.shape != (v,):
                raise ValueError(f"available must have shape ({v},) = (items.size,), got {a.shape}")
            avail &= a
        genres, names = catalog.genre_matrix()  # (V, K)
        count = genres.sum(axis=1, keepdims=True)
        genre_unit = np.divide(genres, np.sqrt(count), out=np.zeros_like(genres), where=count > 0)
        year, release = _catalog_dates(catalog)
        popularity = np.asarray(train.matrix().sum(axis=0)).ravel().astype(np.float32)  # (V,)
        if len(train):
            end = float(train.timestamp.max())
            age_days = (end - train.timestamp) / DAY
            w = np.exp2(-age_days / cfg.trending_half_life_days)
            trending = np.bincount(train.item_idx, weights=w, minlength=v).astype(np.float32)
        else:
            end, trending = 0.0, np.zeros(v, dtype=np.float32)
        # popular titles win ties between equally similar neighbours
        tiebreak = 1e-4 * np.argsort(np.argsort(popularity, kind="stable")) / max(v, 1)
        feats = _content_features(genre_unit, year, cfg.genre_share, cfg.year_sigma)
        content = _content_topn(feats, genre_unit, year, cfg.n_neighbors, tiebreak, cfg.genre_share)
        t1 = time.perf_counter()
        cooc = _cooccurrence(train, cfg)
        nb, sim, co = _merge_neighbors(feats, content, _csr_topn(cooc, cfg.n_neighbors), cooc, cfg)
        demo = Demographics.build(users, train) if users is not None else None
        index = PipelineIndex(
            items=catalog.items,
            titles=np.array(["", *catalog.titles()], dtype=object),
            genre_names=names,
            genres=genres,
            genre_unit=genre_unit,
            genre_csr=sp.csr_matrix(genre_unit),
            genre_freq=genres.sum(axis=0),
            item_genres=[(), *(tuple(g or ()) for g in catalog.frame["genres"].to_list())],
            kind=catalog.kind_codes(),
            year=year,
            release_day=release,
            next_season=_next_seasons(catalog),
            available=avail,
            popularity=popularity,
            trending=trending,
            neighbors=nb,
            neighbor_sim=sim,
            neighbor_cooc=co,
            demographics=demo,
            train_end=end,
        )
        log.info(
            "pipeline index: %d titles, %d genres, content neighbours %.2fs, co-occurrence "
            "(%d pairs) + merge %.2fs",
            v - 1,
            len(names),
            t1 - t0,
            cooc.nnz,
            time.perf_counter() - t1,
        )
        pipe = cls(model=pipe_model, index=index, weights=weights, config=cfg)
        return pipe.with_model(model)

    # ---------------------------------------------------------- requests
    def _request(
        self,
        ctx: UserContext,
        *,
        prefs: GenrePreferences | None = None,
        now: float | None = None,
        exclude: Collection[int] = (),
        dislikes: Collection[int] = (),
        onboarding: Sequence[str] = (),
        demographics: Mapping[str, Any] | None = None,
    ) -> _Request:
        if not isinstance(ctx, UserContext):
            raise TypeError(f"contexts must be UserContext, got {type(ctx).__name__}")
        v = self.items.size
        if ctx.history.size and ctx.history.max() >= v:
            raise ValueError(
                f"history holds item_idx {int(ctx.history.max())}, "
                f"but the catalog has {v - 1} titles"
            )
        asked: float | None = now if now is not None else ctx.now
        ref = asked
        if ref is None and ctx.timestamps is not None and ctx.timestamps.size:
            ref = float(ctx.timestamps.max())
        if ref is None and prefs is not None:
            ref = prefs.last_ts
        if isinstance(onboarding, str):
            raise TypeError("onboarding_genres must be a sequence of genre names, not one string")
        return _Request(
            ctx=ctx,
            prefs=prefs,
            now=float(ref if ref is not None else self.index.train_end),
            release_now=None if asked is None else float(asked),
            exclude=_as_indices(exclude, v, "exclude"),
            dislikes=_as_indices(dislikes, v, "dislikes"),
            onboarding=tuple(onboarding),
            demographics=demographics,
        )

    # ------------------------------------------------- stages 1-2: filter
    def _static_mask(self, kind: str | None, genre: str | None) -> np.ndarray:
        """(V,) bool: available, of ``kind`` and in ``genre``."""
        ix = self.index
        mask = ix.available.copy()
        if kind is not None:
            if kind not in KINDS:
                raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
            mask &= ix.kind == KINDS.index(kind)
        if genre is not None:
            j = ix.genre_index.get(genre)
            if j is None:
                raise ValueError(f"unknown genre {genre!r}; known: {', '.join(ix.genre_names)}")
            mask &= ix.genres[:, j] > 0
        return mask

    def _filter(
        self,
        reqs: Sequence[_Request],
        *,
        kind: str | None,
        genre: str | None,
        exclude_seen: bool,
        serve: bool,
    ) -> np.ndarray:
        """(B, V) bool: titles each user may be recommended.

        ``serve`` adds the request-time filters (unreleased at ``now``);
        evaluation (:meth:`score`) leaves them out, as models do.
        """
        allowed = np.repeat(self._static_mask(kind, genre)[None, :], len(reqs), axis=0)
        for b, r in enumerate(reqs):
            if exclude_seen:
                allowed[b, r.ctx.history] = False
            allowed[b, r.exclude] = False
            allowed[b, r.dislikes] = False
            if serve and r.release_now is not None:
                allowed[b] &= ~(self.index.release_day > r.release_now / DAY)  # NaN: kept
        return allowed

    # ---------------------------------------------------- stage 3: rank
    def _rank(self, contexts: Sequence[UserContext]) -> np.ndarray | None:
        """(B, V) float32 model scores (NaN -> -inf), or None without a model / weight."""
        if self.model is None or self.weights.model == 0:
            return None
        s = np.asarray(self.model.score(contexts), dtype=np.float32)
        if s.shape != (len(contexts), self.items.size):
            raise ValueError(
                f"{self.model.name}.score returned shape {s.shape}, expected "
                f"({len(contexts)}, {self.items.size})"
            )
        return np.where(np.isnan(s), np.float32(-np.inf), s)

    # --------------------------------------------------- stage 4: blend
    def _preferences(self, reqs: Sequence[_Request]) -> np.ndarray:
        """(B, K) float64 genre preference vectors.

        From the live ``prefs`` when given, else from the history (weights of
        :func:`_history_weight`, decayed to the newest event, split over each title's
        genres like :meth:`GenrePreferences.update`); onboarding genres are added
        with a strength ``1 - n / cold_start_threshold`` that fades with history.
        """
        ix = self.index
        b_n = len(reqs)
        pref = np.zeros((b_n, len(ix.genre_names)))
        gidx = ix.genre_index
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        half = self.config.pref_half_life_days * DAY
        for b, r in enumerate(reqs):
            if r.prefs is not None:
                for g, w in r.prefs.weights(r.now).items():
                    j = gidx.get(g)
                    if j is not None:
                        pref[b, j] += w
            elif r.ctx.history.size:
                h = r.ctx.history
                ts = r.ctx.timestamps if r.ctx.timestamps is not None else np.full(h.size, r.now)
                rt = r.ctx.ratings if r.ctx.ratings is not None else np.full(h.size, np.nan)
                # ages from the newest event, not from `now`: a factor common to all
                # genres does not change the z-scored component, and long absences
                # would otherwise underflow every weight to 0
                age = np.maximum(float(ts.max()) - ts.astype(np.float64), 0.0)
                rows.append(np.full(h.size, b))
                cols.append(h)
                vals.append(_history_weight(rt) * np.exp2(-age / half))
        if rows:
            c = np.concatenate(cols)  # (H,) history titles of all rows
            g = ix.genres[c].astype(np.float64)  # (H, K)
            w = np.concatenate(vals) / np.maximum(g.sum(axis=1), 1.0)  # split over genres
            per_row = sp.csr_matrix((w, (np.concatenate(rows), np.arange(c.size))), (b_n, c.size))
            pref += np.asarray(per_row @ g)  # (B, H) @ (H, K) -> (B, K)
        t = self.weights.cold_start_threshold
        for b, r in enumerate(reqs):
            strength = max(0.0, 1.0 - r.ctx.history.size / t) if t > 0 else 0.0
            if strength > 0 and r.onboarding:
                unit = strength * max(1.0, float(pref[b].max(initial=0.0)))
                for g in r.onboarding:
                    j = gidx.get(g)
                    if j is None:
                        log.debug("onboarding genre %r is not in the catalog; ignored", g)
                    else:
                        pref[b, j] += unit
        return pref

    def _recent(self, r: _Request) -> tuple[np.ndarray, np.ndarray]:
        """Newest distinct positive history titles (R,) and weights ``decay ** j`` (R,).

        Positive: not disliked, and rated >= 3 when rated (last event of the title).
        """
        h = r.ctx.history[::-1]
        if not h.size:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        rt = r.ctx.ratings[::-1] if r.ctx.ratings is not None else np.full(h.size, np.nan)
        _, first = np.unique(h, return_index=True)
        first = np.sort(first)  # newest event of each title, newest first
        ok = ~(rt[first] < 3) & ~np.isin(h[first], r.dislikes)
        items = h[first][ok][: self.config.recent_items]
        return items, self.config.recent_decay ** np.arange(items.size, dtype=np.float64)

    def _content(self, recent: Sequence[np.ndarray], recent_w: Sequence[np.ndarray]) -> np.ndarray:
        """(B, V) float32: max over recent titles h of ``w_h * sim(h, title)``."""
        v = self.items.size
        out = np.zeros(len(recent) * v, dtype=np.float32)
        ids, vals = [], []
        for b, (it, w) in enumerate(zip(recent, recent_w, strict=True)):
            if it.size:
                ids.append(b * v + self.index.neighbors[it].ravel())  # (R * N,)
                vals.append((self.index.neighbor_sim[it] * w[:, None]).ravel())
        if ids:
            i, x = np.concatenate(ids), np.concatenate(vals)
            order = np.argsort(x, kind="stable")
            out[i[order]] = x[order]  # ascending writes: the largest value lands last
        return out.reshape(len(recent), v)

    def _blend(
        self,
        reqs: Sequence[_Request],
        allowed: np.ndarray,
        model_scores: np.ndarray | None,
        *,
        keep_parts: bool,
    ) -> _Blend:
        """Weighted sum of the z-scored components (see the module docstring)."""
        ix, cfg = self.index, self.config
        b_n = len(reqs)
        n_hist = np.array([r.ctx.history.size for r in reqs], dtype=np.float64)
        t = self.weights.cold_start_threshold
        ramp = np.minimum(1.0, (n_hist + 1) / (t + 1))  # (B,) 1 for warm users
        w = np.tile(self.weights.vector(), (b_n, 1))  # (B, C)
        col = {c: j for j, c in enumerate(COMPONENTS)}
        w[:, col["model"]] *= ramp
        w[:, col["content"]] *= ramp
        w[:, col["popularity"]] *= 2 - ramp
        w[:, col["trending"]] *= 2 - ramp
        if model_scores is None:
            w[:, col["model"]] = 0.0
        else:
            allowed = allowed & np.isfinite(model_scores)
        pref = self._preferences(reqs)
        recents = [self._recent(r) for r in reqs]
        recent = [x[0] for x in recents]
        recent_w = [x[1] for x in recents]
        like_you = np.zeros(b_n, dtype=bool)
        total = np.zeros(allowed.shape, dtype=np.float64)
        n_allowed = np.maximum(allowed.sum(axis=1), 1)
        parts: dict[str, np.ndarray] = {}
        for c in COMPONENTS:
            wc = w[:, col[c]]
            if not (wc > 0).any():
                continue
            raw: np.ndarray
            if c == "model":
                assert model_scores is not None
                raw = model_scores
            elif c == "realtime":
                # one user: a dense (V, K) @ (K,) product, cheaper than scipy's call overhead;
                # several: sparse (V, K) @ (K, B), no BLAS threads for a request's product
                raw = (
                    (ix.genre_unit64 @ pref[0])[None, :]
                    if b_n == 1
                    else np.asarray(ix.genre_csr @ pref.T).T
                )  # (B, V)
            elif c == "content":
                raw = self._content(recent, recent_w)
            elif c == "trending":
                raw = np.log1p(ix.trending)
            else:
                raw = np.repeat(np.log1p(ix.popularity)[None, :], b_n, axis=0)
                if ix.demographics is not None:
                    for b, r in enumerate(reqs):
                        if r.demographics:
                            seg = ix.demographics.lookup(r.demographics, cfg.min_segment_users)
                            if seg is not None:
                                raw[b] = np.log1p(seg)
                                like_you[b] = True
            contrib = _zscore(raw, allowed, n_allowed) * wc[:, None]  # (B, V)
            total += contrib
            if keep_parts:
                parts[c] = contrib.astype(np.float32)
        total_f = total.astype(np.float32)
        total_f[~allowed] = -np.inf
        return _Blend(total_f, allowed, parts, pref, recent, recent_w, like_you)

    def _run(
        self,
        reqs: Sequence[_Request],
        *,
        kind: str | None,
        genre: str | None,
        exclude_seen: bool,
        keep_parts: bool,
        serve: bool = True,
    ) -> _Blend:
        allowed = self._filter(reqs, kind=kind, genre=genre, exclude_seen=exclude_seen, serve=serve)
        scores = self._rank([r.ctx for r in reqs])
        return self._blend(reqs, allowed, scores, keep_parts=keep_parts)

    # ------------------------------------------------ stage 5: re-rank
    def _mmr(self, total: np.ndarray, k: int, diversity: float) -> np.ndarray:
        """Greedy MMR on genre cosine over each row's best ``max(3k, k + 20)`` titles.

        Step score: ``(1 - diversity) * rel - diversity * max cosine to the titles
        already chosen``, ``rel`` = the blended score min-max scaled over the pool.

        Args:
            total: (B, V) float32 blended scores, -inf = not allowed.
            k: List length.
            diversity: In (0, 1).

        Returns:
            (B, k) int64 item_idx, best first; 0 where a row ran out of titles.
        """
        b_n = total.shape[0]
        pool, ps = topk_lists(total, min(total.shape[1], max(3 * k, k + 20)))  # (B, M) sorted
        pool = pool.astype(np.int64)
        valid = np.isfinite(ps)
        lo = np.where(valid, ps, np.inf).min(axis=1, keepdims=True)
        hi = np.where(valid, ps, -np.inf).max(axis=1, keepdims=True)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        rel = np.where(valid, (ps - lo) / span, 0.0)  # (B, M) in [0, 1]
        g = self.index.genre_unit[pool]  # (B, M, K)
        sims = np.einsum("bmk,bnk->bmn", g, g)  # (B, M, M) genre cosine within each pool
        score = np.where(valid, (1 - diversity) * rel, -np.inf)  # -inf = taken or empty
        out = np.zeros((b_n, k), dtype=np.int64)
        if b_n == 1:  # a request: the same steps on Python floats beat numpy calls on 30 titles
            chosen = _mmr_one(score[0].tolist(), sims[0].tolist(), pool[0].tolist(), k, diversity)
            out[0, : len(chosen)] = chosen
            return out
        maxsim = np.zeros(pool.shape)
        rows = np.arange(b_n)
        for step in range(min(k, pool.shape[1])):
            mmr = score - diversity * maxsim
            j = mmr.argmax(axis=1)  # (B,) ties: the better-ranked title
            ok = np.isfinite(mmr[rows, j])
            if not ok.any():
                break
            r, c = rows[ok], j[ok]
            out[r, step] = pool[r, c]
            score[r, c] = -np.inf
            maxsim[r] = np.maximum(maxsim[r], sims[r, c])
        return out

    def _select(self, total: np.ndarray, k: int) -> np.ndarray:
        """(B, k) int64 chosen item_idx (0 = none): MMR, or plain top-k without diversity."""
        if self.weights.diversity > 0 and k > 1:
            return self._mmr(total, k, self.weights.diversity)
        items, vals = topk_lists(total, k)
        return np.where(np.isfinite(vals), items, 0).astype(np.int64)

    # ------------------------------------------------- stage 6: reasons
    def _favourite_genres(self, items: np.ndarray, pref: np.ndarray) -> list[int | None]:
        """Per title (C,), its genre the user likes most (positive weight), or None."""
        if self.index.genres.shape[1] == 0:  # a catalog without genres (a plain CSV log)
            return [None] * len(items)
        has = self.index.genres[items] != 0  # (C, K)
        liked = np.where(has, pref[None, :], -np.inf)  # (C, K)
        best = liked.argmax(axis=1)  # first of equal weights = lowest genre index
        ok = liked[np.arange(len(items)), best] > 0
        return [int(j) if o else None for j, o in zip(best.tolist(), ok.tolist(), strict=True)]

    def _reason(
        self, component: str | None, item: int, source: int, fav: int | None, like_you: bool
    ) -> Reason:
        ix = self.index
        if component in ("model", "content"):
            if source:
                return X.because_watched(source, str(ix.titles[source]))
            if fav is not None:
                return X.because_like_genre(ix.genre_names[fav])
            return X.for_you()
        if component == "realtime" and fav is not None:
            return X.because_like_genre(ix.genre_names[fav])
        if component == "trending":
            ig = np.flatnonzero(ix.genres[item])
            g = fav if fav is not None else (int(ig[0]) if ig.size else None)
            return X.trending_in(None if g is None else ix.genre_names[g])
        return X.popular(like_you=like_you)

    def _explain(self, b: int, items: np.ndarray, blend: _Blend) -> list[ScoredItem]:
        """ScoredItems with reasons for row ``b``'s chosen titles (C,) (a few, not V)."""
        items = items[items > 0]
        src = X.most_similar_source(
            items,
            blend.recent[b],
            blend.recent_w[b],
            self.index.neighbors,
            self.index.neighbor_sim,
            self.index.genre_unit,
        ).tolist()
        names = list(blend.parts)
        part_rows = (
            np.stack([blend.parts[c][b, items] for c in names], axis=1).tolist()
            if names
            else [[] for _ in range(len(items))]
        )  # (C, components): one gather per component, not one per title
        favs = self._favourite_genres(items, blend.pref[b])
        totals = blend.total[b, items].tolist()
        like_you = bool(blend.like_you[b])
        out = []
        for j, i in enumerate(items.tolist()):
            comps = dict(zip(names, part_rows[j], strict=True))
            reason = self._reason(X.dominant_component(comps), i, src[j], favs[j], like_you)
            out.append(ScoredItem(i, totals[j], reason, comps))
        return out

    # ------------------------------------------------------ public API
    def recommend(
        self,
        ctx: UserContext,
        k: int = 10,
        *,
        prefs: GenrePreferences | None = None,
        now: float | None = None,
        kind: str | None = None,
        genre: str | None = None,
        exclude_seen: bool = True,
        exclude: Collection[int] = (),
        dislikes: Collection[int] = (),
        onboarding_genres: Sequence[str] = (),
        demographics: Mapping[str, Any] | None = None,
    ) -> list[ScoredItem]:
        """The ``k`` best titles for one user, each with a reason.

        Args:
            ctx: The user's history (item_idx, oldest first) and, optionally, times.
            k: List length (fewer when fewer titles pass the filters).
            prefs: Live genre preferences; derived from ``ctx``'s history if None.
            now: Unix seconds of the request (default ``ctx.now``); titles released
                after it are left out.
            kind: ``"movie"`` or ``"show"`` only.
            genre: Only titles of this genre.
            exclude_seen: Leave out the history's titles.
            exclude: item_idx to leave out.
            dislikes: item_idx the user disliked (left out, and not used as
                "because you watched" sources).
            onboarding_genres: Genres picked at sign-up (matter while cold).
            demographics: ``{"age": int, "gender": str}`` for "popular with people like
                you" (used when the pipeline was built with a users frame).

        Returns:
            Up to ``k`` :class:`ScoredItem`, best first.

        Raises:
            ValueError: for a bad ``k``, ``kind``, ``genre`` or item index (named).
        """
        return self.recommend_batch(
            [ctx],
            k,
            prefs=[prefs],
            now=now,
            kind=kind,
            genre=genre,
            exclude_seen=exclude_seen,
            exclude=exclude,
            dislikes=[dislikes],
            onboarding_genres=[onboarding_genres],
            demographics=[demographics],
        )[0]

    def recommend_batch(
        self,
        contexts: Sequence[UserContext],
        k: int = 10,
        *,
        prefs: Sequence[GenrePreferences | None] | None = None,
        now: float | None = None,
        kind: str | None = None,
        genre: str | None = None,
        exclude_seen: bool = True,
        exclude: Collection[int] = (),
        dislikes: Sequence[Collection[int]] | None = None,
        onboarding_genres: Sequence[Sequence[str]] | None = None,
        demographics: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[list[ScoredItem]]:
        """:meth:`recommend` for B users with one model call.

        Per-user arguments (``prefs``, ``dislikes``, ``onboarding_genres``,
        ``demographics``) are sequences aligned with ``contexts``; ``exclude``,
        ``now``, ``kind`` and ``genre`` apply to every user.

        Returns:
            B lists of up to ``k`` :class:`ScoredItem`.
        """
        _check_k(k)
        n = len(contexts)
        per_user: dict[str, Sequence[Any]] = {}
        for what, seq in (
            ("prefs", prefs),
            ("dislikes", dislikes),
            ("onboarding_genres", onboarding_genres),
            ("demographics", demographics),
        ):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{what} has {len(seq)} entries for {n} contexts")
            per_user[what] = seq if seq is not None else [None] * n
        if not n:
            return []
        reqs = [
            self._request(
                c,
                prefs=per_user["prefs"][b],
                now=now,
                exclude=exclude,
                dislikes=() if per_user["dislikes"][b] is None else per_user["dislikes"][b],
                onboarding=(
                    ()
                    if per_user["onboarding_genres"][b] is None
                    else per_user["onboarding_genres"][b]
                ),
                demographics=per_user["demographics"][b],
            )
            for b, c in enumerate(contexts)
        ]
        blend = self._run(reqs, kind=kind, genre=genre, exclude_seen=exclude_seen, keep_parts=True)
        chosen = self._select(blend.total, k)
        return [self._explain(b, chosen[b], blend) for b in range(n)]

    def score(self, contexts: Sequence[UserContext]) -> np.ndarray:
        """Blended scores of every title, so the pipeline can be evaluated like a model.

        No reasons, no seen / release-date filtering (the protocol removes the
        history); with ``weights.diversity > 0`` the best ``config.rerank_depth``
        titles of each row are re-ordered by MMR (their scores are lifted above
        the rest in MMR order).

        Returns:
            (B, items.size) float32; column 0 and forbidden titles -inf.
        """
        v = self.items.size
        out = np.empty((len(contexts), v), dtype=np.float32)
        step = 256  # bounds the (B, V) float64 temporaries of the blend
        for s in range(0, len(contexts), step):
            reqs = [self._request(c) for c in contexts[s : s + step]]
            blend = self._run(
                reqs, kind=None, genre=None, exclude_seen=False, keep_parts=False, serve=False
            )
            total = blend.total
            if self.weights.diversity > 0:
                depth = min(self.config.rerank_depth, v - 1)
                chosen = self._mmr(total, depth, self.weights.diversity)  # (B, depth)
                top = np.where(np.isfinite(total), total, -np.inf).max(axis=1)  # (B,)
                lift = top[:, None] + np.arange(depth, 0, -1, dtype=np.float32)[None, :]
                rows = np.repeat(np.arange(total.shape[0])[:, None], depth, axis=1)
                ok = chosen > 0
                total[rows[ok], chosen[ok]] = lift[ok]
            out[s : s + len(reqs)] = total
        return out

    def similar(
        self,
        item_idx: int,
        k: int = 10,
        *,
        exclude: Collection[int] = (),
        kind: str | None = None,
        now: float | None = None,
    ) -> list[ScoredItem]:
        """Titles most similar to ``item_idx`` (stored neighbours), with reasons.

        "Watched together with <Title>" when the co-occurrence part of the
        similarity dominates, else "Also in <shared genre>, <year>" (the
        rarest shared genre). ``components`` holds ``cooc`` and ``content``.

        Raises:
            ValueError: for an item_idx outside the catalog or a bad ``k`` / ``kind``.
        """
        _check_k(k)
        ix, a = self.index, self.config.cooc_share
        v = self.items.size
        if not isinstance(item_idx, int | np.integer) or not 1 <= item_idx < v:
            raise ValueError(f"item_idx must be in 1..{v - 1}, got {item_idx!r}")
        nb = ix.neighbors[item_idx].astype(np.int64)
        ok = (nb > 0) & self._static_mask(kind, None)[nb]
        ok &= ~np.isin(nb, _as_indices(exclude, v, "exclude"))
        if now is not None:
            ok &= ~(ix.release_day[nb] > now / DAY)
        out = []
        for j in np.flatnonzero(ok)[:k].tolist():
            c = int(nb[j])
            sim, co = float(ix.neighbor_sim[item_idx, j]), float(ix.neighbor_cooc[item_idx, j])
            content = (sim - a * co) / (1 - a) if a < 1 else 0.0
            if co > 0 and a * co >= (1 - a) * content:
                reason = X.watched_together(item_idx, str(ix.titles[item_idx]))
            else:
                shared = np.flatnonzero(ix.genres[item_idx] * ix.genres[c])
                g = (
                    ix.genre_names[int(shared[np.argmin(ix.genre_freq[shared])])]
                    if shared.size
                    else None
                )
                reason = X.also_in(item_idx, g, int(ix.year[c]) or None)
            out.append(ScoredItem(c, sim, reason, {"cooc": co, "content": content}))
        return out

    def carousels(
        self,
        ctx: UserContext,
        *,
        prefs: GenrePreferences | None = None,
        now: float | None = None,
        rows: Sequence[str] = CAROUSEL_ROWS,
        n: int = 12,
        events: Sequence[Any] = (),
        dislikes: Collection[int] = (),
        onboarding_genres: Sequence[str] = (),
        demographics: Mapping[str, Any] | None = None,
        kind: str | None = None,
    ) -> list[Carousel]:
        """Rows of the home page, each filtered like :meth:`recommend`; empty rows are dropped.

        Rows (``rows`` picks and orders them): ``continue_watching`` (the next
        season of shows the user watched, and titles played but not completed,
        which need ``events``), ``top_picks``, ``because_watched`` (neighbours of
        the newest positive title), ``genres`` (one row per top-3 genre by the
        user's live weights), ``trending``, ``new_releases`` (newest release date).

        Args:
            ctx: The user's history.
            prefs: Live genre preferences (else derived from the history).
            now: Request time (unix seconds).
            rows: Row keys from :data:`CAROUSEL_ROWS`.
            n: Titles per row.
            events: The user's stored events (:class:`~primetime.pipeline.realtime.Event`
                or mappings) for "played, not completed".
            dislikes: item_idx the user disliked.
            onboarding_genres: Genres picked at sign-up.
            demographics: ``{"age": ..., "gender": ...}``.
            kind: ``"movie"`` or ``"show"`` only.
        """
        _check_k(n, "n")
        bad = [r for r in rows if r not in CAROUSEL_ROWS]
        if bad:
            raise ValueError(f"unknown carousel row(s) {bad}; known: {CAROUSEL_ROWS}")
        evs = [Event.coerce(e) for e in events]
        disliked = set(dislikes) | {
            e.item_idx for e in evs if e.event_type.lower().replace("-", "_") == "dislike"
        }
        req = self._request(
            ctx,
            prefs=prefs,
            now=now,
            dislikes=sorted(disliked),
            onboarding=onboarding_genres,
            demographics=demographics,
        )
        blend = self._run([req], kind=kind, genre=None, exclude_seen=True, keep_parts=True)
        ix = self.index
        total, allowed = blend.total[0], blend.allowed[0]
        out: list[Carousel] = []
        for row in rows:
            if row == "top_picks":
                items = self._explain(0, self._select(blend.total, n)[0], blend)
                out.append(Carousel("top_picks", "Top picks for you", items))
            elif row == "because_watched" and blend.recent[0].size:
                src = int(blend.recent[0][0])
                nb = ix.neighbors[src].astype(np.int64)
                keep = (nb > 0) & allowed[nb]
                items = [
                    ScoredItem(int(i), float(s), X.because_watched(src, str(ix.titles[src])), {})
                    for i, s in zip(nb[keep][:n], ix.neighbor_sim[src][keep][:n], strict=True)
                ]
                out.append(
                    Carousel(
                        f"because_watched:{src}", f"Because you watched {ix.titles[src]}", items
                    )
                )
            elif row == "genres":
                pref = blend.pref[0]
                for g in [int(j) for j in np.argsort(-pref, kind="stable")[:3] if pref[j] > 0]:
                    name = ix.genre_names[g]
                    sc = np.where(ix.genres[:, g] > 0, total, -np.inf)[None, :]
                    chosen, vals = topk_lists(sc, n)
                    items = [
                        ScoredItem(
                            int(i), float(s), X.because_like_genre(name), self._parts(blend, i)
                        )
                        for i, s in zip(chosen[0], vals[0], strict=True)
                        if np.isfinite(s)
                    ]
                    out.append(Carousel(f"genre:{name}", f"Because you like {name}", items))
            elif row == "trending":
                sc = np.where(allowed & (ix.trending > 0), ix.trending, -np.inf)[None, :]
                chosen, vals = topk_lists(sc.astype(np.float32), n)
                keep = np.isfinite(vals[0])
                picked = chosen[0][keep].astype(np.int64)
                favs = self._favourite_genres(picked, blend.pref[0])
                items = [
                    ScoredItem(i, s, self._reason("trending", i, 0, fav, False), {})
                    for i, s, fav in zip(picked.tolist(), vals[0][keep].tolist(), favs, strict=True)
                ]
                out.append(Carousel("trending", "Trending now", items))
            elif row == "continue_watching":
                items = self._continue_watching(req, evs, disliked, kind, allowed, n)
                out.append(Carousel("continue_watching", "Continue watching", items))
            elif row == "new_releases":
                rd = ix.release_day
                cand = np.flatnonzero(allowed & np.isfinite(rd) & ~(rd > req.now / DAY))
                best = cand[np.lexsort((cand, -total[cand], -rd[cand]))[:n]]
                items = [
                    ScoredItem(int(i), float(rd[i]), X.new_release(int(ix.year[i]) or None), {})
                    for i in best
                ]
                out.append(Carousel("new_releases", "New releases", items))
        return [c for c in out if c.items]

    def _parts(self, blend: _Blend, item: int) -> dict[str, float]:
        return {c: float(p[0, item]) for c, p in blend.parts.items()}

    def _continue_watching(
        self,
        req: _Request,
        events: Sequence[Event],
        disliked: set[int],
        kind: str | None,
        allowed: np.ndarray,
        n: int,
    ) -> list[ScoredItem]:
        """Played-not-completed titles (newest first), then next seasons of watched shows."""
        ix = self.index
        base = self._static_mask(kind, None)
        out: list[ScoredItem] = []
        used: set[int] = set()
        newest_first = sorted(events, key=lambda e: -e.ts)
        etype = {id(e): e.event_type.lower().replace("-", "_") for e in newest_first}
        completed = {e.item_idx for e in newest_first if etype[id(e)] == "complete"}
        for e in newest_first:
            i = e.item_idx
            if (
                etype[id(e)] == "play"
                and i not in completed
                and i not in disliked
                and i not in used
                and 0 < i < self.items.size
                and base[i]
            ):
                out.append(ScoredItem(i, 0.0, X.continue_watching(str(ix.titles[i])), {}))
                used.add(i)
        seen = set(req.ctx.history.tolist()) | {e.item_idx for e in events}
        watched = [e.item_idx for e in newest_first if e.item_idx not in disliked]
        watched += [int(i) for i in req.ctx.history[::-1] if int(i) not in disliked]
        for w in dict.fromkeys(watched):
            if not 0 < w < self.items.size:
                continue
            nxt = int(ix.next_season[w])
            if nxt and nxt not in seen and nxt not in used and allowed[nxt]:
                out.append(ScoredItem(nxt, 0.0, X.next_season(w, str(ix.titles[w])), {}))
                used.add(nxt)
        out = out[:n]
        return [dataclasses.replace(s, score=float(len(out) - j)) for j, s in enumerate(out)]
