"""Rows of the home page ("carousels") and their UI text.

:data:`CAROUSEL_ROWS` are the rows
:meth:`~primetime.pipeline.pipeline.RecPipeline.carousels` can build, in
their default order; :class:`Carousel` is one row (a stable ``key``, the
display ``title`` shown in the UI, and its titles). The rows are built here
from one user's blend: top picks, "Because you watched <Title>", one
"Because you like <Genre>" row per favourite genre, trending, continue
watching (next seasons, played but not completed), "New on Primetime" (titles
added to the running service after its models were trained, ranked by the
content member's score, each with a content reason) and new releases.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from primetime.data.events import EventType
from primetime.pipeline.blend import _Blend, _Request
from primetime.pipeline.explain import (
    ScoredItem,
    _explain,
    _favourite_genres,
    _reason,
    because_like_genre,
    because_watched,
    continue_watching,
    new_release,
    new_title_reason,
    next_season,
)
from primetime.pipeline.index import PipelineIndex
from primetime.pipeline.realtime import DAY, Event
from primetime.pipeline.rerank import _select
from primetime.ranking import topk_lists

__all__ = ["CAROUSEL_ROWS", "Carousel"]

#: Rows :meth:`RecPipeline.carousels` can build, in their default order.
CAROUSEL_ROWS: tuple[str, ...] = (
    "continue_watching",
    "top_picks",
    "because_watched",
    "genres",
    "trending",
    "new_on_primetime",
    "new_releases",
)
#: Most recent titles (by release date) the "New on Primetime" row ranks when no title
#: was added to the running service.
NEWEST_FALLBACK = 50


@dataclass(frozen=True)
class NewRow:
    """What the "New on Primetime" row needs beyond the blend: the user's content scores
    (V,) and the models that can tell what two titles share (``explain``, the gnn's)."""

    scores: np.ndarray
    explainers: Sequence[Any] = ()


@dataclass(frozen=True)
class Carousel:
    """One row of the home page: a stable ``key``, a display ``title`` and its titles."""

    key: str
    title: str
    items: list[ScoredItem]


def _carousels(
    ix: PipelineIndex,
    diversity: float,
    req: _Request,
    blend: _Blend,
    rows: Sequence[str],
    n: int,
    events: Sequence[Event],
    disliked: set[int],
    base: np.ndarray,
    new: NewRow | None = None,
) -> list[Carousel]:
    """The rows ``rows`` (keys of :data:`CAROUSEL_ROWS`) of one user's blend; empty rows dropped.

    ``base`` is the (V,) static mask of the request (available, of its kind),
    which "continue watching" applies to the user's events.
    """
    total, allowed = blend.total[0], blend.allowed[0]
    out: list[Carousel] = []
    for row in rows:
        if row == "top_picks":
            items = _explain(ix, 0, _select(ix.genre_unit, blend.total, n, diversity)[0], blend)
            out.append(Carousel("top_picks", "Top picks for you", items))
        elif row == "because_watched" and blend.recent[0].size:
            src = int(blend.recent[0][0])
            nb = ix.neighbors[src].astype(np.int64)
            keep = (nb > 0) & allowed[nb]
            items = [
                ScoredItem(int(i), float(s), because_watched(src, str(ix.titles[src])), {})
                for i, s in zip(nb[keep][:n], ix.neighbor_sim[src][keep][:n], strict=True)
            ]
            out.append(
                Carousel(f"because_watched:{src}", f"Because you watched {ix.titles[src]}", items)
            )
        elif row == "genres":
            pref = blend.pref[0]
            for g in [int(j) for j in np.argsort(-pref, kind="stable")[:3] if pref[j] > 0]:
                name = ix.genre_names[g]
                sc = np.where(ix.genres[:, g] > 0, total, -np.inf)[None, :]
                chosen, vals = topk_lists(sc, n)
                items = [
                    ScoredItem(int(i), float(s), because_like_genre(name), _parts(blend, i))
                    for i, s in zip(chosen[0], vals[0], strict=True)
                    if np.isfinite(s)
                ]
                out.append(Carousel(f"genre:{name}", f"Because you like {name}", items))
        elif row == "trending":
            sc = np.where(allowed & (ix.trending > 0), ix.trending, -np.inf)[None, :]
            chosen, vals = topk_lists(sc.astype(np.float32), n)
            keep = np.isfinite(vals[0])
            picked = chosen[0][keep].astype(np.int64)
            favs = _favourite_genres(ix, picked, blend.pref[0])
            items = [
                ScoredItem(i, s, _reason(ix, "trending", i, 0, fav, False), {})
                for i, s, fav in zip(picked.tolist(), vals[0][keep].tolist(), favs, strict=True)
            ]
            out.append(Carousel("trending", "Trending now", items))
        elif row == "continue_watching":
            items = _continue_watching(ix, req, events, disliked, base, allowed, n)
            out.append(Carousel("continue_watching", "Continue watching", items))
        elif row == "new_releases":
            rd = ix.release_day
            cand = np.flatnonzero(allowed & np.isfinite(rd) & ~(rd > req.now / DAY))
            best = cand[np.lexsort((cand, -total[cand], -rd[cand]))[:n]]
            items = [
                ScoredItem(int(i), float(rd[i]), new_release(int(ix.year[i]) or None), {})
                for i in best
            ]
            out.append(Carousel("new_releases", "New releases", items))
        elif row == "new_on_primetime" and new is not None:
            items = _new_on_primetime(ix, req, blend, allowed, n, new)
            out.append(Carousel("new_on_primetime", "New on Primetime", items))
    return [c for c in out if c.items]


def _new_on_primetime(
    ix: PipelineIndex, req: _Request, blend: _Blend, allowed: np.ndarray, n: int, new: NewRow
) -> list[ScoredItem]:
    """Titles added to the running service (else the :data:`NEWEST_FALLBACK` newest by
    release date), best content score first, each with a content reason."""
    if ix.added is not None and np.isfinite(ix.added).any():
        cand = np.flatnonzero(allowed & np.isfinite(ix.added))
    else:
        rd = ix.release_day
        cand = np.flatnonzero(allowed & np.isfinite(rd) & ~(rd > req.now / DAY))
        cand = cand[np.lexsort((cand, -rd[cand]))[:NEWEST_FALLBACK]]
    sc = new.scores[cand]
    keep = np.isfinite(sc)
    cand, sc = cand[keep], sc[keep]
    order = np.lexsort((cand, -sc))[:n]
    recent = blend.recent[0]
    return [
        ScoredItem(int(i), float(s), new_title_reason(ix, int(i), recent, new.explainers), {})
        for i, s in zip(cand[order], sc[order], strict=True)
    ]


def _parts(blend: _Blend, item: int) -> dict[str, float]:
    return {c: float(p[0, item]) for c, p in blend.parts.items()}


def _continue_watching(
    ix: PipelineIndex,
    req: _Request,
    events: Sequence[Event],
    disliked: set[int],
    base: np.ndarray,
    allowed: np.ndarray,
    n: int,
) -> list[ScoredItem]:
    """Played-not-completed titles (newest first), then next seasons of watched shows."""
    out: list[ScoredItem] = []
    used: set[int] = set()
    newest_first = sorted(events, key=lambda e: -e.ts)
    completed = {e.item_idx for e in newest_first if e.event_type == EventType.COMPLETE}
    for e in newest_first:
        i = e.item_idx
        if (
            e.event_type == EventType.PLAY
            and i not in completed
            and i not in disliked
            and i not in used
            and 0 < i < ix.items.size
            and base[i]
        ):
            out.append(ScoredItem(i, 0.0, continue_watching(str(ix.titles[i])), {}))
            used.add(i)
    seen = set(req.ctx.history.tolist()) | {e.item_idx for e in events}
    watched = [e.item_idx for e in newest_first if e.item_idx not in disliked]
    watched += [int(i) for i in req.ctx.history[::-1] if int(i) not in disliked]
    for w in dict.fromkeys(watched):
        if not 0 < w < ix.items.size:
            continue
        nxt = int(ix.next_season[w])
        if nxt and nxt not in seen and nxt not in used and allowed[nxt]:
            out.append(ScoredItem(nxt, 0.0, next_season(w, str(ix.titles[w])), {}))
            used.add(nxt)
    out = out[:n]
    return [dataclasses.replace(s, score=float(len(out) - j)) for j, s in enumerate(out)]
