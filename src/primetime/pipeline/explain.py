"""Reasons: the human sentence shown under every recommended title.

A reason is chosen by which blend component contributed most to the title's
score (see :func:`dominant_component`):

=============  ======================  =====================================
component      code                    text
=============  ======================  =====================================
model/content  ``because_watched``     Because you watched <Title>
realtime       ``because_like_genre``  Because you like <Genre>
trending       ``trending_genre``      Trending in <Genre> this week
popularity     ``popular_like_you``    Popular with people like you
               ``popular``             Popular on Primetime
=============  ======================  =====================================

Titles in the "New on Primetime" row carry ``new_on_primetime`` reasons from
their content (:func:`new_title_reason`): "New: same director as <Title>" (the
gnn's knowledge graph) or "New: a <Genre> like <Title>".

"Because you watched" names the history title most similar to the
candidate (:func:`most_similar_source`): the recency-weighted neighbour
similarity (content + co-occurrence) decides, shared genres break ties.
When no history title is related, the pipeline falls back to a genre reason
or ``for_you``. Rows of the home page and similar-title lists use the other
codes below. Codes are stable (the UI and analytics key on them); texts may
change.

:class:`ScoredItem` is a recommended title with its reason; :func:`_explain`
gives the pipeline's chosen titles their reasons from the blend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from primetime.pipeline.blend import _Blend
    from primetime.pipeline.index import PipelineIndex

BECAUSE_WATCHED = "because_watched"
BECAUSE_LIKE_GENRE = "because_like_genre"
TRENDING_GENRE = "trending_genre"
TRENDING = "trending"
POPULAR_LIKE_YOU = "popular_like_you"
POPULAR = "popular"
FOR_YOU = "for_you"
WATCHED_TOGETHER = "watched_together"
SIMILAR_CONTENT = "similar_content"
NEXT_SEASON = "next_season"
CONTINUE_WATCHING = "continue_watching"
NEW_RELEASE = "new_release"
NEW_TITLE = "new_on_primetime"

#: What two titles share in the knowledge graph (a relation of the gnn's ``explain``),
#: as the words of a "New: …" reason; other relations are not told.
SHARED_WORDS = {
    "director": "same director as",
    "directed_by": "same director as",
    "writer": "same writer as",
    "written_by": "same writer as",
    "creator": "same creator as",
    "created_by": "same creator as",
    "actor": "shares cast with",
    "starring": "shares cast with",
    "cast": "shares cast with",
    "sequel": "a sequel to",
    "prequel": "a prequel to",
}

#: Tie order when two components contribute equally (most personal first).
COMPONENT_ORDER = ("model", "content", "realtime", "trending", "popularity")


@dataclass(frozen=True)
class Reason:
    """Why a title is shown.

    Attributes:
        code: Stable machine code (module constants, e.g. ``"because_watched"``).
        text: The sentence shown to the user.
        source_item: The item_idx the reason refers to ("Because you watched
            <that title>"), or ``None``.
    """

    code: str
    text: str
    source_item: int | None = None


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


def because_watched(source_item: int, title: str) -> Reason:
    return Reason(BECAUSE_WATCHED, f"Because you watched {title}", source_item)


def because_like_genre(genre: str) -> Reason:
    return Reason(BECAUSE_LIKE_GENRE, f"Because you like {genre}")


def trending_in(genre: str | None) -> Reason:
    if genre is None:
        return Reason(TRENDING, "Trending this week")
    return Reason(TRENDING_GENRE, f"Trending in {genre} this week")


def popular(*, like_you: bool) -> Reason:
    if like_you:
        return Reason(POPULAR_LIKE_YOU, "Popular with people like you")
    return Reason(POPULAR, "Popular on Primetime")


def for_you() -> Reason:
    return Reason(FOR_YOU, "Picked for you")


def watched_together(source_item: int, title: str) -> Reason:
    return Reason(WATCHED_TOGETHER, f"Watched together with {title}", source_item)


def also_in(source_item: int, genre: str | None, year: int | None) -> Reason:
    """``"Also in Drama, 1995"`` (shared genre, the candidate's year)."""
    if genre is None and year is None:
        return Reason(SIMILAR_CONTENT, "Similar title", source_item)
    if genre is None:
        return Reason(SIMILAR_CONTENT, f"Also from {year}", source_item)
    text = f"Also in {genre}" if year is None else f"Also in {genre}, {year}"
    return Reason(SIMILAR_CONTENT, text, source_item)


def next_season(source_item: int, title: str) -> Reason:
    return Reason(NEXT_SEASON, f"Next season after {title}", source_item)


def continue_watching(title: str) -> Reason:
    return Reason(CONTINUE_WATCHING, f"Continue watching {title}")


def new_release(year: int | None) -> Reason:
    return Reason(NEW_RELEASE, "New release" if year is None else f"New release ({year})")


def new_title(text: str, source_item: int | None = None) -> Reason:
    return Reason(NEW_TITLE, text, source_item)


def new_title_reason(
    ix: PipelineIndex, item: int, recent: np.ndarray, explainers: Sequence[Any] = ()
) -> Reason:
    """Why a title new on the service is shown, from its content and the user's recent
    positive titles ``recent`` (newest first).

    "New: same director as <Title>" when a model of ``explainers`` (the gnn) finds a
    told relation the two share in the knowledge graph (the newest such title); else
    "New: a <Genre> like <Title>", the rarest genre it shares with the recent title
    that shares most of its genres; else "New: a <Genre>" or "New on Primetime".
    """
    hist = [int(h) for h in recent if 0 < int(h) < ix.items.size and int(h) != item]
    for m in explainers:
        model_items = getattr(m, "items", None)
        if model_items is None or item >= model_items.size:
            continue
        for h in hist[:10]:
            if h >= model_items.size:
                continue
            for relation, _ in m.explain(h, item):
                words = SHARED_WORDS.get(str(relation).lower())
                if words:
                    return new_title(f"New: {words} {ix.titles[h]}", h)
    own = np.flatnonzero(ix.genres[item])
    if own.size:
        if hist:
            shared = ix.genres[hist][:, own] > 0  # (H, G)
            best = int(np.argmax(shared.sum(1)))  # the first (newest) of the most shared
            if shared[best].any():
                g = own[shared[best]]
                genre = ix.genre_names[int(g[np.argmin(ix.genre_freq[g])])]
                text = f"New: {_a(genre)} {genre} like {ix.titles[hist[best]]}"
                return new_title(text, hist[best])
        genre = ix.genre_names[int(own[np.argmin(ix.genre_freq[own])])]
        return new_title(f"New: {_a(genre)} {genre}")
    return new_title("New on Primetime")


def _a(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def dominant_component(contributions: Mapping[str, float]) -> str | None:
    """The component with the largest contribution ``weight * normalised score``.

    Ties go to the more personal component (:data:`COMPONENT_ORDER`). Returns
    ``None`` when ``contributions`` is empty.
    """
    best: str | None = None
    best_val = -np.inf
    for name in sorted(contributions, key=_order):
        if contributions[name] > best_val:
            best, best_val = name, contributions[name]
    return best


def _order(name: str) -> int:
    return COMPONENT_ORDER.index(name) if name in COMPONENT_ORDER else len(COMPONENT_ORDER)


def most_similar_source(
    candidates: np.ndarray,
    recent: np.ndarray,
    recent_weight: np.ndarray,
    neighbors: np.ndarray,
    neighbor_sim: np.ndarray,
    genre_unit: np.ndarray,
) -> np.ndarray:
    """For each candidate, the history title it is most similar to.

    Score of history title ``h`` for candidate ``c``: ``recent_weight[h] *
    sim(h, c)`` where ``sim`` comes from ``h``'s stored neighbours (0 if ``c``
    is not among them), plus ``1e-3 *`` the recency-weighted genre cosine as a
    tie-break / fallback.

    Args:
        candidates: (C,) item_idx.
        recent: (R,) history item_idx, most recent first.
        recent_weight: (R,) recency weights.
        neighbors: (V, N) item_idx of each title's neighbours (0 = none).
        neighbor_sim: (V, N) their similarities.
        genre_unit: (V, K) unit-norm genre rows.

    Returns:
        (C,) int64 item_idx of the source title, 0 where no history title is related.
    """
    cand = np.asarray(candidates, dtype=np.int64)
    if recent.size == 0 or cand.size == 0:
        return np.zeros(cand.size, dtype=np.int64)
    nb = neighbors[recent]  # (R, N)
    sims = neighbor_sim[recent] * recent_weight[:, None]  # (R, N)
    match = nb[None, :, :] == cand[:, None, None]  # (C, R, N)
    score = np.where(match, sims[None], 0.0).max(axis=2)  # (C, R)
    gsim = genre_unit[cand] @ genre_unit[recent].T  # (C, K) @ (K, R) -> (C, R)
    score = score + 1e-3 * gsim * recent_weight[None, :]
    best = score.argmax(axis=1)  # (C,) first = most recent on ties
    src = recent[best].astype(np.int64)
    src[score[np.arange(cand.size), best] <= 0] = 0
    return src


# ====================================================== the pipeline's picks
def _favourite_genres(ix: PipelineIndex, items: np.ndarray, pref: np.ndarray) -> list[int | None]:
    """Per title (C,), its genre the user likes most (positive weight), or None."""
    if ix.genres.shape[1] == 0:  # a catalog without genres (a plain CSV log)
        return [None] * len(items)
    has = ix.genres[items] != 0  # (C, K)
    liked = np.where(has, pref[None, :], -np.inf)  # (C, K)
    best = liked.argmax(axis=1)  # first of equal weights = lowest genre index
    ok = liked[np.arange(len(items)), best] > 0
    return [int(j) if o else None for j, o in zip(best.tolist(), ok.tolist(), strict=True)]


def _reason(
    ix: PipelineIndex,
    component: str | None,
    item: int,
    source: int,
    fav: int | None,
    like_you: bool,
) -> Reason:
    if component in ("model", "content"):
        if source:
            return because_watched(source, str(ix.titles[source]))
        if fav is not None:
            return because_like_genre(ix.genre_names[fav])
        return for_you()
    if component == "realtime" and fav is not None:
        return because_like_genre(ix.genre_names[fav])
    if component == "trending":
        ig = np.flatnonzero(ix.genres[item])
        g = fav if fav is not None else (int(ig[0]) if ig.size else None)
        return trending_in(None if g is None else ix.genre_names[g])
    return popular(like_you=like_you)


def _explain(ix: PipelineIndex, b: int, items: np.ndarray, blend: _Blend) -> list[ScoredItem]:
    """ScoredItems with reasons for row ``b``'s chosen titles (C,) (a few, not V)."""
    items = items[items > 0]
    src = most_similar_source(
        items,
        blend.recent[b],
        blend.recent_w[b],
        ix.neighbors,
        ix.neighbor_sim,
        ix.genre_unit,
    ).tolist()
    names = list(blend.parts)
    part_rows = (
        np.stack([blend.parts[c][b, items] for c in names], axis=1).tolist()
        if names
        else [[] for _ in range(len(items))]
    )  # (C, components): one gather per component, not one per title
    favs = _favourite_genres(ix, items, blend.pref[b])
    totals = blend.total[b, items].tolist()
    like_you = bool(blend.like_you[b])
    out = []
    for j, i in enumerate(items.tolist()):
        comps = dict(zip(names, part_rows[j], strict=True))
        reason = _reason(ix, dominant_component(comps), i, src[j], favs[j], like_you)
        out.append(ScoredItem(i, totals[j], reason, comps))
    return out
