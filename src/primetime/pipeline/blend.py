"""The blend: weights of the member scores and their weighted, normalised sum.

:class:`BlendWeights` (one weight per component of :data:`COMPONENTS`, plus
the diversity of the re-rank), the request a blend is computed for
(:class:`_Request`), what it hands on (:class:`_Blend`), and the component
builders: genre preferences, recent history, content similarity.

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
``cold_realtime * (1 - that)`` is added to the real-time weight and
``cold_content * (1 - that)`` to the content weight;
onboarding genres enter the realtime component with a strength that fades
as history grows. Scaling never reaches 0, so a model-only blend still ranks
like the model.

**Neighbours.** The content component reads the titles stored per title in
:class:`~primetime.pipeline.index.PipelineIndex`; how they are chosen is told in
:mod:`primetime.pipeline.index`, which builds the whole static index.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from primetime.pipeline.index import PipelineConfig, PipelineIndex
from primetime.pipeline.realtime import DAY, GenrePreferences
from primetime.pipeline.stages import _history_weight, _zscore
from primetime.types import UserContext

log = logging.getLogger(__name__)

__all__ = ["COMPONENTS", "SERVED_BLEND", "BlendWeights", "version_blend"]

#: Blend components, in the order of :class:`BlendWeights`.
COMPONENTS: tuple[str, ...] = ("model", "realtime", "content", "popularity", "trending")


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
        cold_realtime: Added to ``realtime`` for cold users, fading to 0 as their history
            reaches ``cold_start_threshold`` (``(1 - ramp)``): the live genre preferences,
            onboarding picks included, steer a new user's list, not a warm user's. 0.5:
            a user who picked Comedy and one comedy at sign-up gets only comedies in
            Top picks (tests/web/test_pages.py), as under the former blend; not measured
            on ml-100k, where no evaluated user is cold (all have 5 or more titles rated
            3 or more), so it changes none of the figures below.
        cold_content: The same for ``content`` (similarity to the few titles a new user
            picked or watched).

    The defaults were chosen on ml-100k's **valid** part around SASRec with
    ``primetime benchmark --data ml-100k --models sasrec --pipeline --blend-grid``
    (docs/results/ml-100k-served-grid/blend-grid.md): the best valid NDCG@10 whose
    intra-list genre diversity stays at or above the bare model's. Real-time and
    content weights of 0.3 each cost 0.015-0.03 valid NDCG@10 and made the lists
    *less* diverse than the bare model's; popularity and trending at 0.1 with MMR 0.1
    scored best. The former hand-set blend (realtime 0.3, content 0.3) served test
    NDCG@10 0.0841 against the bare model's 0.1102 (p = 0.0007).

    Raises:
        ValueError: naming the field, for a negative or non-finite weight,
            ``diversity`` outside [0, 1) or a negative threshold.
    """

    model: float = 1.0
    realtime: float = 0.0
    content: float = 0.0
    popularity: float = 0.1
    trending: float = 0.1
    diversity: float = 0.1
    cold_start_threshold: int = 5
    cold_realtime: float = 0.5
    cold_content: float = 0.3

    def __post_init__(self) -> None:
        for name in COMPONENTS:
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"BlendWeights.{name} must be a finite number >= 0, got {v!r}")
        if not isinstance(self.diversity, int | float) or not 0 <= self.diversity < 1:
            raise ValueError(f"BlendWeights.diversity must be in [0, 1), got {self.diversity!r}")
        for name in ("cold_realtime", "cold_content"):
            c = getattr(self, name)
            if not isinstance(c, int | float) or not math.isfinite(c) or c < 0:
                raise ValueError(f"BlendWeights.{name} must be a finite number >= 0, got {c!r}")
        t = self.cold_start_threshold
        if not isinstance(t, int) or isinstance(t, bool) or t < 0:
            raise ValueError(f"BlendWeights.cold_start_threshold must be an int >= 0, got {t!r}")

    @classmethod
    def only(cls, component: str, *, diversity: float = 0.0) -> BlendWeights:
        """Weight 1 on ``component``, 0 elsewhere (for ablations and tests)."""
        if component not in COMPONENTS:
            raise ValueError(f"unknown component {component!r}; known: {COMPONENTS}")
        values: dict[str, Any] = {c: 1.0 if c == component else 0.0 for c in COMPONENTS}
        return cls(**values, diversity=diversity, cold_realtime=0.0, cold_content=0.0)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BlendWeights:
        """Weights from a mapping of field names (a registry version's ``served_blend``);
        a field left out keeps its default.

        Raises:
            ValueError: for a name that is not a field, or a value ``__post_init__``
                refuses.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        stray = sorted(set(values) - names)
        if stray:
            raise ValueError(f"BlendWeights: unknown field(s) {stray}; known: {sorted(names)}")
        return cls(**dict(values))

    def vector(self) -> np.ndarray:
        """(C,) float64 weights in :data:`COMPONENTS` order."""
        return np.array([getattr(self, c) for c in COMPONENTS], dtype=np.float64)


#: The ``meta.json`` key of a registry version's blend, chosen on valid when it was
#: trained (``primetime.served_study.choose_served_blend``): ``{"weights": {...}, ...}``.
SERVED_BLEND = "served_blend"


def version_blend(meta: Mapping[str, Any]) -> BlendWeights | None:
    """The blend a registry version's ``meta.json`` names (:data:`SERVED_BLEND`), None
    when it names none (a version trained before, or with ``--no-blend``).

    Raises:
        ValueError: the entry is there but is not a valid set of weights.
    """
    entry = meta.get(SERVED_BLEND)
    if entry is None:
        return None
    if not isinstance(entry, Mapping) or not isinstance(entry.get("weights"), Mapping):
        raise ValueError(f"{SERVED_BLEND}: expected {{'weights': {{...}}}}, got {entry!r}")
    return BlendWeights.from_dict(entry["weights"])


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


def _preferences(
    ix: PipelineIndex, weights: BlendWeights, cfg: PipelineConfig, reqs: Sequence[_Request]
) -> np.ndarray:
    """(B, K) float64 genre preference vectors.

    From the live ``prefs`` when given, else from the history (weights of
    :func:`_history_weight`, decayed to the newest event, split over each title's
    genres like :meth:`GenrePreferences.update`); onboarding genres are added
    with a strength ``1 - n / cold_start_threshold`` that fades with history.
    """
    b_n = len(reqs)
    pref = np.zeros((b_n, len(ix.genre_names)))
    gidx = ix.genre_index
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    half = cfg.pref_half_life_days * DAY
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
    t = weights.cold_start_threshold
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


def _recent(cfg: PipelineConfig, r: _Request) -> tuple[np.ndarray, np.ndarray]:
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
    items = h[first][ok][: cfg.recent_items]
    return items, cfg.recent_decay ** np.arange(items.size, dtype=np.float64)


def _content(
    ix: PipelineIndex, recent: Sequence[np.ndarray], recent_w: Sequence[np.ndarray]
) -> np.ndarray:
    """(B, V) float32: max over recent titles h of ``w_h * sim(h, title)``."""
    v = ix.items.size
    out = np.zeros(len(recent) * v, dtype=np.float32)
    ids, vals = [], []
    for b, (it, w) in enumerate(zip(recent, recent_w, strict=True)):
        if it.size:
            ids.append(b * v + ix.neighbors[it].ravel())  # (R * N,)
            vals.append((ix.neighbor_sim[it] * w[:, None]).ravel())
    if ids:
        i, x = np.concatenate(ids), np.concatenate(vals)
        order = np.argsort(x, kind="stable")
        out[i[order]] = x[order]  # ascending writes: the largest value lands last
    return out.reshape(len(recent), v)


def _blend(
    ix: PipelineIndex,
    weights: BlendWeights,
    cfg: PipelineConfig,
    reqs: Sequence[_Request],
    allowed: np.ndarray,
    model_scores: np.ndarray | None,
    *,
    keep_parts: bool,
) -> _Blend:
    """Weighted sum of the z-scored components (see the module docstring)."""
    b_n = len(reqs)
    n_hist = np.array([r.ctx.history.size for r in reqs], dtype=np.float64)
    t = weights.cold_start_threshold
    ramp = np.minimum(1.0, (n_hist + 1) / (t + 1))  # (B,) 1 for warm users
    w = np.tile(weights.vector(), (b_n, 1))  # (B, C)
    col = {c: j for j, c in enumerate(COMPONENTS)}
    w[:, col["model"]] *= ramp
    w[:, col["content"]] *= ramp
    w[:, col["popularity"]] *= 2 - ramp
    w[:, col["trending"]] *= 2 - ramp
    w[:, col["realtime"]] += weights.cold_realtime * (1 - ramp)  # 0 for warm users
    w[:, col["content"]] += weights.cold_content * (1 - ramp)
    if model_scores is None:
        w[:, col["model"]] = 0.0
    else:
        allowed = allowed & np.isfinite(model_scores)
    pref = _preferences(ix, weights, cfg, reqs)
    recents = [_recent(cfg, r) for r in reqs]
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
            raw = _content(ix, recent, recent_w)
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
