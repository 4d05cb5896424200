"""RecPipeline: the one recommendation path shared by the service and evaluation.

Stages, in order (each a method below or a function of the module named after
the list, vectorised over a batch of users)::

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

The blend's normalisation and cold start are told in
:mod:`primetime.pipeline.blend`, the re-rank in :mod:`primetime.pipeline.rerank`,
reasons in :mod:`primetime.pipeline.explain` and the home-page rows in
:mod:`primetime.pipeline.carousels`. The static index (and how neighbours are
chosen) is built by :mod:`primetime.pipeline.index`. The pure
array functions of the stages are in :mod:`primetime.pipeline.stages`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from primetime.artifacts import check_same_catalog
from primetime.data.catalog import KINDS, Catalog
from primetime.data.events import EventType
from primetime.data.interactions import Interactions
from primetime.data.users import Users
from primetime.data.vocab import Vocabulary
from primetime.models.base import Recommender
from primetime.pipeline import explain as X
from primetime.pipeline.blend import COMPONENTS, BlendWeights, _Blend, _blend, _Request
from primetime.pipeline.carousels import CAROUSEL_ROWS, Carousel, NewRow, _carousels
from primetime.pipeline.explain import ScoredItem, _explain
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
from primetime.pipeline.rerank import _mmr, _select
from primetime.pipeline.stages import _as_indices, _check_k
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


# ================================================================ pipeline
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
        content_model: A content member (a model that scores titles from their content:
            multimodal, contrastive, genre-profile, gnn), or None. It ranks the "New on
            Primetime" row, and it scores the titles added after ``model`` was trained
            when ``model`` cannot (its vocabulary is shorter than the catalog's: its
            ``extend_items`` said False): those columns of the model's scores are the
            content member's, z-scored over the titles both score and put on the
            model's scale (mean and spread of the row), so a new title ranks among
            the old ones where the content member would rank it.

    A model (or content member) trained on fewer titles than the catalog (titles were
    added since) is given histories without the titles it does not know, and its
    scores are padded with ``-inf`` for them.
    """

    model: Recommender | None
    index: PipelineIndex
    weights: BlendWeights = field(default_factory=BlendWeights)
    config: PipelineConfig = field(default_factory=PipelineConfig)
    content_model: Recommender | None = None

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
        """The same pipeline with another (fitted) model on the same catalog (or on the
        catalog's first titles, when titles were added after it was trained)."""
        if model is not None:
            self._check_model(model)
        return dataclasses.replace(self, model=model)

    def with_content_model(self, model: Recommender | None) -> RecPipeline:
        """The same pipeline with another content member (see ``content_model``)."""
        if model is not None:
            self._check_model(model)
        return dataclasses.replace(self, content_model=model)

    def _check_model(self, model: Recommender) -> None:
        if model.items is None:
            raise ValueError(f"model {model.name!r} is not fitted")
        n = len(model.items)
        if n < len(self.items) and model.items.ids() == self.items.ids()[:n]:
            return  # trained before titles were added to the catalog
        check_same_catalog(model.items, self.items, where=f"model {model.name!r}")

    def _scores_of(self, model: Recommender, contexts: Sequence[UserContext]) -> np.ndarray:
        """(B, V) float32 scores of ``model``; titles beyond its vocabulary -inf (and left
        out of the histories it reads)."""
        assert model.items is not None
        width, v = model.items.size, self.items.size
        if width < v:
            contexts = [_known_only(c, width) for c in contexts]
        s = np.asarray(model.score(contexts), dtype=np.float32)
        if s.shape != (len(contexts), width):
            raise ValueError(
                f"{model.name}.score returned shape {s.shape}, expected ({len(contexts)}, {width})"
            )
        if width < v:
            s = np.concatenate([s, np.full((len(contexts), v - width), -np.inf, np.float32)], 1)
        return np.where(np.isnan(s), np.float32(-np.inf), s)

    def content_scores(self, contexts: Sequence[UserContext]) -> np.ndarray | None:
        """(B, V) scores of the content member (or, without one, of the model when it
        scores the whole catalog); None when neither can."""
        for m in (self.content_model, self.model):
            if m is not None and m.items is not None and m.items.size == self.items.size:
                return self._scores_of(m, contexts)
        return None

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
        added: np.ndarray | None = None,
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
            added: (V,) float64 unix seconds at which titles were added to the running
                service (NaN for the others), for the "New on Primetime" row.

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
        if added is not None and np.shape(added) != (v,):
            raise ValueError(f"added must have shape ({v},) = (items.size,)")
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
            added=None if added is None else np.asarray(added, dtype=np.float64),
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
            # a title added to the catalog after this pipeline was built (a request that
            # began before the swap): not known here, left out
            ctx = _known_only(ctx, v)
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
        static = self._static_mask(kind, genre)
        allowed = np.repeat(static[None, :], len(reqs), axis=0)
        show, place = self.index.seasons
        for b, r in enumerate(reqs):
            self._season_rule(allowed[b], static, r.ctx.history, show, place)
            if exclude_seen:
                allowed[b, r.ctx.history] = False
            allowed[b, r.exclude] = False
            allowed[b, r.dislikes] = False
            if serve and r.release_now is not None:
                allowed[b] &= ~(self.index.release_day > r.release_now / DAY)  # NaN: kept
        return allowed

    def _season_rule(
        self,
        allowed: np.ndarray,
        static: np.ndarray,
        history: np.ndarray,
        show: np.ndarray,
        place: np.ndarray,
    ) -> None:
        """TV: of each show, only the season after the latest one watched (the season
        "Continue watching" offers), or the first season when none was watched, may be
        recommended: never season 3 straight after season 1. ``allowed`` (V,) is
        changed in place; ``static`` (V,) is the request's catalog mask."""
        allowed &= place <= 1
        watched = history[show[history] > 0] if history.size else history
        if not watched.size:
            return
        shows = np.unique(show[watched])
        allowed &= ~np.isin(show, shows)  # every season of a show the user started …
        latest: dict[int, int] = {}
        for i in watched.tolist():
            s = int(show[i])
            if place[i] > place[latest.get(s, 0)]:
                latest[s] = i
        nxt = self.index.next_season[np.fromiter(latest.values(), np.int64, len(latest))]
        nxt = nxt[nxt > 0]
        allowed[nxt] = static[nxt]  # … but the next one

    # ---------------------------------------------------- stage 3: rank
    def _rank(self, contexts: Sequence[UserContext]) -> np.ndarray | None:
        """(B, V) float32 model scores (NaN -> -inf), or None without a model / weight.

        Titles the model does not know (added after it was trained) take the content
        member's scores, put on the model's scale (see ``content_model``)."""
        if self.model is None or self.weights.model == 0:
            return None
        s = self._scores_of(self.model, contexts)
        assert self.model.items is not None
        width = self.model.items.size
        cm = self.content_model
        if width < self.items.size and cm is not None and cm is not self.model:
            assert cm.items is not None
            c = self._scores_of(cm, contexts)
            new = np.arange(width, self.items.size)
            new = new[new < cm.items.size]
            s[:, new] = _on_scale_of(s[:, :width], c[:, :width], c[:, new])
        return s

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
        return _blend(
            self.index, self.weights, self.config, reqs, allowed, scores, keep_parts=keep_parts
        )

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
        chosen = _select(
            self.index.genre_unit, blend.total, k, self.weights.diversity, self.config.mmr_pool
        )
        return [_explain(self.index, b, chosen[b], blend) for b in range(n)]

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
                chosen = _mmr(
                    self.index.genre_unit, total, depth, self.weights.diversity
                )  # (B, depth)
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
        user's live weights), ``trending``, ``new_on_primetime`` (titles added to the
        running service, else the newest by release date, ranked by the content
        member's score, each with a content reason), ``new_releases`` (newest release
        date).

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
        disliked = set(dislikes) | {e.item_idx for e in evs if e.event_type == EventType.DISLIKE}
        req = self._request(
            ctx,
            prefs=prefs,
            now=now,
            dislikes=sorted(disliked),
            onboarding=onboarding_genres,
            demographics=demographics,
        )
        blend = self._run([req], kind=kind, genre=None, exclude_seen=True, keep_parts=True)
        base = self._static_mask(kind, None)
        new = None
        if "new_on_primetime" in rows:
            content = self.content_scores([req.ctx])
            new = NewRow(
                scores=blend.total[0] if content is None else content[0],
                explainers=[
                    m
                    for m in (self.content_model, self.model)
                    if m is not None and callable(getattr(m, "explain", None))
                ],
            )
        return _carousels(
            self.index, self.weights.diversity, req, blend, rows, n, evs, disliked, base, new
        )


def _known_only(ctx: UserContext, size: int) -> UserContext:
    """``ctx`` without the history titles at item_idx >= ``size``."""
    keep = ctx.history < size
    if keep.all():
        return ctx
    return dataclasses.replace(
        ctx,
        history=ctx.history[keep],
        timestamps=None if ctx.timestamps is None else ctx.timestamps[keep],
        ratings=None if ctx.ratings is None else ctx.ratings[keep],
    )


def _on_scale_of(model: np.ndarray, content: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """``fill`` (B, F), scores of the content member, z-scored by the content member's
    scores ``content`` (B, W) and put on the scale of the model's ``model`` (B, W) (mean
    and standard deviation per row, over the titles both score finitely)."""
    ok = np.isfinite(model) & np.isfinite(content)  # (B, W)
    n = np.maximum(ok.sum(1, keepdims=True), 1)
    m = np.where(ok, model, 0.0).astype(np.float64)
    c = np.where(ok, content, 0.0).astype(np.float64)
    m_mean, c_mean = m.sum(1, keepdims=True) / n, c.sum(1, keepdims=True) / n
    m_std = np.sqrt((np.where(ok, m - m_mean, 0.0) ** 2).sum(1, keepdims=True) / n)
    c_std = np.sqrt((np.where(ok, c - c_mean, 0.0) ** 2).sum(1, keepdims=True) / n)
    z = (fill - c_mean) / np.where(c_std > 0, c_std, 1.0)
    out = m_mean + z * m_std
    return np.where(np.isfinite(fill), out, -np.inf).astype(np.float32)
