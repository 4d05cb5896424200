"""What each page shows, assembled from the service state (no HTTP to itself).

The functions here read :class:`~primetime.service.state.ServiceState` directly
and return plain dicts and dataclasses for the templates. The home rows share
their cache entries with ``GET /api/v1/carousels`` (same namespace, key and JSON
shape), so a page view and an API call warm each other, and every event of the
user invalidates both.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import polars as pl
from markupsafe import Markup, escape

from primetime.data.events import EventType
from primetime.pipeline.blend import BlendWeights
from primetime.pipeline.realtime import insights as user_insights
from primetime.service.experiments import experiment_report
from primetime.service.metrics import hit_ratio
from primetime.service.state import HISTORY_LIMIT, ServiceState
from primetime.service.store import Action, EventRecord, UserRecord
from primetime.web import charts
from primetime.web.posters import display_title

#: Titles per home-page row (the API's default ``n`` of ``/carousels``, so both share cache).
HOME_ROW_SIZE = 12
#: Titles offered for picking during onboarding.
ONBOARDING_TITLES = 24
#: Similar titles on a title page.
SIMILAR_TITLES = 12
#: Genres drawn in the "weights over time" chart.
CHART_GENRES = 5

#: Sentences that end in a title (reasons and row headings of the pipeline).
TITLE_SENTENCES = (
    "Because you watched ",
    "Watched together with ",
    "Next season after ",
    "Continue watching ",
    "More like ",
)


@lru_cache(maxsize=16_384)
def reason_text(text: str | None) -> str:
    """A reason or row heading with its title as people say it:
    "Because you watched Fifth Element, The" -> "Because you watched The Fifth Element"."""
    if not text:
        return ""
    for prefix in TITLE_SENTENCES:
        if text.startswith(prefix):
            return prefix + display_title(text[len(prefix) :])
    return text


Row = dict[str, Any]
"""A home row as the API returns it: ``{"key", "title", "items": [item_json, ...]}``."""


def poster_url(item_id: str) -> str:
    return f"/posters/{quote(str(item_id), safe='')}"


def title_url(item_id: str, rid: str | None = None) -> str:
    """The title page; ``rid`` (the impression's request id) rides along for attribution."""
    url = f"/title/{quote(str(item_id), safe='')}"
    return f"{url}?{urlencode({'rid': rid})}" if rid else url


def kind_label(item: Mapping[str, Any]) -> str:
    """``"Movie"``, ``"Series"`` or ``"Season 2"``."""
    if item.get("kind") == "show":
        n = item.get("season_number")
        return f"Season {n}" if n else "Series"
    return "Movie"


def card_html(item: Mapping[str, Any], rid: str | None = None) -> Markup:
    """One title card (an ``<li>``): poster, title, year · kind, and the reason, which the
    CSS shows on hover and keyboard focus (search results show the genres instead).

    Built here rather than in a Jinja macro because the home page holds ~100 of them:
    this is its hot path (about 3x faster than the macro).
    """
    name = display_title(str(item["title"]))
    kind = kind_label(item)
    year = item.get("year")
    reason = item.get("reason")
    why = reason_text(reason["text"]) if reason else ", ".join(item.get("genres") or ())
    label = f"{name} ({year}), {kind}" if year else f"{name}, {kind}"
    label = f"{label}. {why}" if why else label
    meta = f"{year} · {kind}" if year else kind
    e = escape
    return Markup(
        f'<li class="card-slot"><a class="card" href="{e(title_url(item["item_id"], rid))}" '
        f'aria-label="{e(label)}"><span class="card-poster">'
        f'<img src="{e(poster_url(item["item_id"]))}" alt="Poster of {e(name)}" '
        f'width="300" height="450" loading="lazy" decoding="async"></span>'
        f'<span class="card-title">{e(name)}</span><span class="card-meta">{e(meta)}</span>'
        + (f'<span class="card-reason">{e(why)}</span>' if why else "")
        + "</a></li>"
    )


@dataclass(frozen=True)
class HomeData:
    """The home page: rows, the hero title and who served them.

    Attributes:
        rows: Rows in display order (the hero is left out of "Top picks for you").
        hero: The first top pick, or None for an empty catalog.
        model_version: ``"name:version"`` that produced the rows.
        experiment_id: Active A/B experiment, if the user is in one.
        arm: The user's arm in it.
        request_id: Impression id; card links carry it so plays are attributed.
    """

    rows: list[Row]
    hero: dict[str, Any] | None
    model_version: str
    experiment_id: str | None
    arm: str | None
    request_id: str

    def item_ids(self) -> list[str]:
        """The impressions to log: the hero, then "Top picks for you", in page order.

        Only the model's ranked list counts, as for ``GET /api/v1/recommendations``:
        the other rows (trending, new releases, neighbours of one title) are the same
        in every arm, so they would only dilute an A/B comparison of models.
        """
        out = [self.hero["item_id"]] if self.hero is not None else []
        top = next((r for r in self.rows if r["key"] == "top_picks"), None)
        out += [it["item_id"] for it in (top["items"] if top else [])]
        return list(dict.fromkeys(out))


def carousel_rows(svc: ServiceState, user: UserRecord, *, n: int = HOME_ROW_SIZE) -> HomeData:
    """The user's home rows (``ServiceState.carousel_rows``, shared with
    ``GET /api/v1/carousels``), with the top pick lifted out as the hero."""
    a = svc.assignment(user.id)
    rows: list[Row] = svc.carousel_rows(user, a, n=n)
    hero = None
    shown: list[Row] = []
    for row in rows:
        if row["key"] == "top_picks" and hero is None and row["items"]:
            hero = row["items"][0]
            row = {**row, "items": row["items"][1:]}
        if row["items"]:
            shown.append(row)
    if hero is None:
        hero = next((r["items"][0] for r in shown if r["items"]), None)
    return HomeData(shown, hero, a.model.key, a.experiment_id, a.arm, uuid.uuid4().hex)


def log_impressions(svc: ServiceState, user_id: int, data: HomeData) -> None:
    """Queue what the home page showed (written in batches off the request path).

    The home page logs for users in an active experiment (impressions feed the A/B
    reports, ``EventStore.experiment_outcomes``), or for everyone with
    ``settings.impressions = "all"``, as ``GET /api/v1/recommendations`` does. The
    logged cards' links carry the request id, so a play is attributed to its arm.
    """
    svc.impressions.add(
        user_id=user_id,
        request_id=data.request_id,
        items=data.item_ids(),
        model_version=data.model_version,
        experiment_id=data.experiment_id,
        arm=data.arm,
    )


# ------------------------------------------------------------------ titles
@dataclass(frozen=True)
class TitleState:
    """What the user has done with one title (from their events, newest wins)."""

    liked: bool = False
    disliked: bool = False
    rating: float | None = None
    in_list: bool = False
    played: bool = False
    completed: bool = False

    @classmethod
    def from_events(cls, events: Sequence[EventRecord], item_id: str) -> TitleState:
        """Fold the user's events (oldest first) on ``item_id`` into a state."""
        s: dict[str, Any] = {}
        for e in events:
            if e.item_id != item_id:
                continue
            t = e.event_type
            if t in (EventType.LIKE, EventType.DISLIKE):
                s["liked"], s["disliked"] = t == EventType.LIKE, t == EventType.DISLIKE
            elif t == EventType.RATE:
                s["rating"] = e.rating
            elif t in (EventType.ADD_TO_LIST, EventType.REMOVE_FROM_LIST):
                s["in_list"] = t == EventType.ADD_TO_LIST
            elif t == EventType.PLAY:
                s["played"] = True
            elif t == EventType.COMPLETE:
                s["played"] = s["completed"] = True
        return cls(**s)


def title_state(svc: ServiceState, user: UserRecord, item_id: str) -> TitleState:
    """The user's state on one title."""
    return TitleState.from_events(svc.store.events(user.id, limit=HISTORY_LIMIT), item_id)


@dataclass(frozen=True)
class TitleDetails:
    """Everything the title page shows about a title (user-independent)."""

    info: dict[str, Any]
    description: str | None
    cast: list[str]
    crew: list[str]
    seasons: list[dict[str, Any]]
    similar: list[dict[str, Any]] = field(default_factory=list)


def title_details(svc: ServiceState, item_idx: int) -> TitleDetails:
    """Details, the other seasons of a show, and similar titles with reasons."""
    row = svc.catalog.row(item_idx)
    info = svc.title_json(item_idx)
    seasons: list[dict[str, Any]] = []
    series = row.get("series_id")
    if series:
        f = svc.catalog.frame.filter(pl.col("series_id") == series).sort("season_number")
        seasons = [
            {
                "item_id": r["item_id"],
                "title": r["title"],
                "season_number": r["season_number"],
                "year": r["year"],
                "episodes": r["episodes"],
                "current": r["item_id"] == info["item_id"],
            }
            for r in f.select("item_id", "title", "season_number", "year", "episodes").iter_rows(
                named=True
            )
        ]
    similar = svc.slots.default.pipeline.similar(item_idx, SIMILAR_TITLES)
    return TitleDetails(
        info=info,
        description=row.get("description"),  # type: ignore[arg-type]
        cast=list(row.get("cast") or []),  # type: ignore[call-overload]
        crew=list(row.get("crew") or []),  # type: ignore[call-overload]
        seasons=seasons,
        similar=[svc.item_json(s) for s in similar],
    )


def live_rows(data: HomeData) -> list[Row]:
    """The rows a title page refreshes after an action: "Because you watched …" and
    "Top picks for you" (with the hero put back in front)."""
    out = []
    for row in data.rows:
        if row["key"].startswith("because_watched"):
            out.append(row)
    top = next((r for r in data.rows if r["key"] == "top_picks"), None)
    items = ([data.hero] if data.hero else []) + (top["items"] if top else [])
    if items:
        out.append({"key": "top_picks", "title": "Top picks for you", "items": items})
    return out


def onboarding_choices(svc: ServiceState, n: int = ONBOARDING_TITLES) -> list[dict[str, Any]]:
    """The most popular titles (distinct train users), for picking during onboarding."""
    pop = svc.base.index.popularity
    order = sorted(range(1, len(pop)), key=lambda i: (-float(pop[i]), i))[:n]
    return [svc.title_json(i) for i in order]


# ---------------------------------------------------------------- insights
DAY = 86_400.0


def activity_per_day(
    events: Sequence[Action], now: float, *, min_days: int = 14, max_days: int = 60
) -> list[tuple[float, int]]:
    """Events per UTC day, ``[(day start, count)]`` oldest first, ending today.

    The window spans from the first event (at least ``min_days``, at most
    ``max_days`` days).
    """
    today = math.floor(now / DAY)
    first = math.floor(min((e.ts for e in events), default=now) / DAY)
    days = max(min_days, min(max_days, today - first + 1))
    counts = [0] * days
    for e in events:
        k = math.floor(e.ts / DAY) - (today - days + 1)
        if 0 <= k < days:
            counts[k] += 1
    return [((today - days + 1 + k) * DAY, c) for k, c in enumerate(counts)]


def insights_view(
    svc: ServiceState, user: UserRecord, *, now: float | None = None
) -> dict[str, Any]:
    """The insights page: the same summary as ``GET /api/v1/insights``, plus charts.

    Returns a dict with ``data`` (the insights summary), ``series`` (charted genres),
    ``charts`` (SVG markup by name), ``activity`` (per-day counts) and ``counts``.
    """
    now = time.time() if now is None else now
    view = svc.user_view(user, now=now)
    data = user_insights(view.pref_events, svc.item_genres, now, n_genres=len(svc.genres))
    peak: dict[str, float] = {}
    for p in data["timeline"]:
        for g, w in p["weights"].items():
            peak[g] = max(peak.get(g, 0.0), w)
    current: Mapping[str, float] = data["genre_weights"]
    series = sorted(
        (g for g, w in peak.items() if w > 0), key=lambda g: (-current.get(g, 0.0), -peak[g], g)
    )[:CHART_GENRES]
    weights_now = [(g, round(w, 3)) for g, w in current.items() if abs(w) >= 0.005][:12]
    counts = sorted(
        view_counts(view.events).items(),
        key=lambda tc: (-tc[1], tc[0]),
    )
    activity = activity_per_day(view.events, now)
    return {
        "data": data,
        "series": series,
        "weights_now": weights_now,
        "counts": counts,
        "activity": activity,
        "charts": {
            "timeline": charts.line_chart(
                "chart-timeline", "Your genre weights over time", data["timeline"], series
            ),
            "weights": charts.bar_chart("chart-weights", "Your genre weights now", weights_now),
            "activity": charts.column_chart("chart-activity", "Your activity per day", activity),
            "counts": charts.bar_chart(
                "chart-counts",
                "What you did, by event type",
                [(t, float(c)) for t, c in counts],
                colour_by_label=False,
            ),
        },
    }


def view_counts(events: Sequence[Action]) -> dict[str, int]:
    """``{event_type: count}`` of the events."""
    out: dict[str, int] = {}
    for e in events:
        out[e.event_type] = out.get(e.event_type, 0) + 1
    return out


# ------------------------------------------------------------------- admin
def model_versions(svc: ServiceState) -> list[dict[str, Any]]:
    """Registered versions with their offline metrics and whether they are loaded/serving
    (the rows of ``GET /api/v1/admin/models``, plus ``serving``)."""
    slots = svc.slots
    return [
        {
            "name": v.name,
            "version": v.version,
            "key": f"{v.name}:{v.version}",
            "promoted": v.promoted,
            "created_at": v.created_at,
            "metrics": dict(v.metrics or {}),
            "loaded": f"{v.name}:{v.version}" in slots.by_key,
            "serving": f"{v.name}:{v.version}" == slots.default.key,
            "gate": v.meta.get("retrain") if isinstance(v.meta.get("retrain"), dict) else None,
            "blend": blend_label(*svc.blend_of(v)),
        }
        for v in svc.registry.versions()
    ]


def blend_label(w: BlendWeights, source: str) -> str:
    """One line for the admin page: the blend a version is served with, e.g. ``valid:
    popularity 0.1, trending 0.1, MMR 0.05`` (only the weights besides the model's)."""
    parts = [
        f"{name} {getattr(w, name):g}"
        for name in ("realtime", "content", "popularity", "trending")
        if getattr(w, name)
    ]
    parts.append(f"MMR {w.diversity:g}")
    if w.model != 1:
        parts.insert(0, f"model {w.model:g}")
    return f"{source}: {', '.join(parts)}"


def promotion_history(svc: ServiceState, *, limit: int = 20) -> list[dict[str, Any]]:
    """The latest promotions, newest first (from the database; the versions themselves and
    which one is promoted now come from the registry, see :func:`model_versions`)."""
    return [
        {
            "name": p.name,
            "version": p.version,
            "key": p.key,
            "previous_version": p.previous_version,
            "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime(p.promoted_at)),
            "actor": p.actor,
            "note": p.note,
        }
        for p in reversed(svc.store.promotions(limit=limit))
    ]


def experiments(svc: ServiceState) -> list[dict[str, Any]]:
    """Every experiment's report (CTR and completion per arm with 95% Wilson intervals),
    newest first, each with ``ctr_scale``: the largest upper bound, for the interval plots."""
    svc.impressions.flush()  # what was just shown counts
    out = []
    for e in sorted(svc.store.experiments(), key=lambda e: -e.created_at):
        rep = experiment_report(svc.store, e.id)
        rep["ctr_scale"] = max((a["ctr_ci"][1] for a in rep["arms"]), default=0.0) or 1.0
        rep["completion_scale"] = (
            max((a["completion_ci"][1] for a in rep["arms"]), default=0.0) or 1.0
        )
        out.append(rep)
    return out


def live_stats(svc: ServiceState, *, top: int = 12) -> dict[str, Any]:
    """Latency per route (busiest first, this worker's), cache figures, events/s and uptime
    (the whole service's with several workers)."""
    snap = svc.metrics.snapshot()
    requests = sorted(
        snap["requests"].values(),  # type: ignore[attr-defined]
        key=lambda r: (-r["count"], r["route"]),
    )[:top]
    local = svc.cache.stats()
    shared: dict[str, Any] | None = snap["cache"]  # type: ignore[assignment]
    if shared is None:  # no stats source: this worker's cache
        shared = {"hits": local.hits, "misses": local.misses, "errors": local.errors}
    hits, misses = shared["hits"], shared["misses"]
    return {
        "requests": requests,
        "cache": {
            "backend": local.backend,
            "hits": hits,
            "misses": misses,
            "errors": shared["errors"],
            "hit_rate": hit_ratio(hits, misses),
        },
        "events_per_second": snap["events_per_second"],
        "events": snap["events"],
        "recommendations": snap["recommendations"],
        "uptime_seconds": snap["uptime_seconds"],
        "default_model": svc.slots.default.key,
    }
