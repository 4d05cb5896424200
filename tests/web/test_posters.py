"""Generated SVG posters, the TMDb poster cache (mocked transport only), and the charts."""

from __future__ import annotations

import time
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from primetime.service.store import EventRecord
from primetime.web import charts
from primetime.web.posters import (
    GENRE_COLOURS,
    TitleInfo,
    TmdbPosters,
    display_title,
    genre_colour,
    svg_poster,
    tmdb_from_env,
    wrap_title,
)
from primetime.web.views import TitleState, activity_per_day

SVG = "{http://www.w3.org/2000/svg}"


# ------------------------------------------------------------------- SVG posters
def test_svg_poster_is_deterministic_valid_and_escaped() -> None:
    a = svg_poster("1", "Toy Story", year=1995, genres=["Animation", "Comedy"])
    assert a == svg_poster("1", "Toy Story", year=1995, genres=["Animation", "Comedy"])
    root = ElementTree.fromstring(a)
    assert root.get("role") == "img" and root.get("aria-label") == "Toy Story (1995)"
    assert root.find(f"{SVG}title").text == "Toy Story (1995)"  # type: ignore[union-attr]
    text = "".join(root.itertext())
    assert "Toy Story" in text and "FILM · 1995" in text
    drama = svg_poster("1", "Toy Story", year=1995, genres=["Drama", "Comedy"])
    assert drama != a, "genres set the colours"
    evil = svg_poster("2", 'Tom & Jerry <script>"', genres=["Comedy"])
    ElementTree.fromstring(evil)  # still well-formed
    assert "<script>" not in evil
    assert svg_poster("3", "Toy Story") != a, "the id seeds the motif"
    show = svg_poster("s2", "Lost: Season 2", kind="show", season=2, year=2005)
    assert "SEASON 2 · 2005" in "".join(ElementTree.fromstring(show).itertext())
    with pytest.raises(ValueError, match="item_id"):
        svg_poster("", "x")


def test_titles_wrap_to_fit_and_read_naturally() -> None:
    lines, size = wrap_title("Heat")
    assert lines == ["Heat"] and size == 56
    lines, size = wrap_title("The Good, the Bad and the Ugly")
    assert 2 <= len(lines) <= 4 and all(len(line) * size * 0.58 <= 252 for line in lines)
    lines, size = wrap_title("Supercalifragilisticexpialidociousnessitude and more words " * 3)
    assert size == 20 and len(lines) == 4 and lines[-1].endswith("…")
    assert display_title("Shawshank Redemption, The") == "The Shawshank Redemption"
    assert display_title("Amour, L'") == "L'Amour"
    assert display_title("Heat (1995)") == "Heat"
    assert genre_colour("Drama") == GENRE_COLOURS["Drama"]
    assert genre_colour("Space Opera") == genre_colour("Space Opera") != genre_colour("Noirish")


# ------------------------------------------------------------------------- TMDb
JPEG = b"\xff\xd8\xff\xe0fake-jpeg"


def tmdb_transport(calls: list[str], *, poster: str | None = "/abc.jpg", fail: bool = False):  # type: ignore[no-untyped-def]
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        if fail:
            raise httpx.ConnectError("no network", request=request)
        if request.url.host == "api.themoviedb.org":
            results = [{"id": 1, "poster_path": poster}] if poster else []
            return httpx.Response(200, json={"results": results})
        return httpx.Response(200, content=JPEG, headers={"content-type": "image/jpeg"})

    return httpx.MockTransport(handler)


def test_tmdb_fetches_once_then_serves_from_disk(tmp_path: Path) -> None:
    calls: list[str] = []
    tmdb = TmdbPosters("k" * 32, tmp_path, transport=tmdb_transport(calls))
    info = TitleInfo("1", "Shawshank Redemption, The", 1994, "movie")
    path = tmdb.poster(info)
    assert path is not None and path.read_bytes() == JPEG
    assert "query=The+Shawshank+Redemption" in calls[0] and "year=1994" in calls[0]
    assert "api_key=" + "k" * 32 in calls[0]
    assert calls[1] == "https://image.tmdb.org/t/p/w342/abc.jpg?api_key=" + "k" * 32
    assert tmdb.poster(info) == path and len(calls) == 2, "second time from the disk cache"
    assert tmdb.cached("1") == path


def test_tmdb_misses_are_remembered_and_errors_are_not(tmp_path: Path) -> None:
    calls: list[str] = []
    tmdb = TmdbPosters("eyJ.token", tmp_path, transport=tmdb_transport(calls, poster=None))
    show = TitleInfo("s1", "Lost", 2004, "show")
    assert tmdb.poster(show) is None
    assert "/search/tv" in calls[0] and "first_air_date_year=2004" in calls[0]
    assert "api_key" not in calls[0], "a v4 token goes in the Authorization header"
    assert tmdb.poster(show) is None and len(calls) == 1, "the miss is cached"
    broken: list[str] = []
    offline = TmdbPosters("k", tmp_path / "b", transport=tmdb_transport(broken, fail=True))
    assert offline.poster(show) is None and offline.poster(show) is None
    assert len(broken) == 2, "a network error is retried next time"


def test_tmdb_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PRIMETIME_TMDB_API_KEY", raising=False)
    assert tmdb_from_env() is None
    monkeypatch.setenv("PRIMETIME_TMDB_API_KEY", "abc")
    monkeypatch.setenv("PRIMETIME_HOME", str(tmp_path))
    client = tmdb_from_env()
    assert client is not None and client.cache_dir == tmp_path / "posters"
    client.close()


def test_poster_route_serves_tmdb_then_falls_back_to_svg(
    web_dataset, web_registry, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient
    from web_support import make_web_app

    calls: list[str] = []
    app = make_web_app(tmp_path / "db.sqlite", web_dataset, web_registry)
    with TestClient(app) as c:
        app.state.tmdb = TmdbPosters("k", tmp_path / "posters", transport=tmdb_transport(calls))
        r = c.get("/posters/i3")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.content == JPEG and "max-age" in r.headers["cache-control"]
        app.state.tmdb = TmdbPosters(
            "k", tmp_path / "none", transport=tmdb_transport(calls, poster=None)
        )
        r = c.get("/posters/i3")
        assert r.headers["content-type"].startswith("image/svg+xml")


# ----------------------------------------------------------------------- charts
def test_nice_ticks() -> None:
    assert charts.nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1.0]
    assert charts.nice_ticks(-0.3, 1.3)[0] <= -0.3 and charts.nice_ticks(-0.3, 1.3)[-1] >= 1.3
    assert charts.nice_ticks(0, 37, 4) == [0, 20, 40]
    assert charts.nice_ticks(2, 2) == [2, 2.25, 2.5, 2.75, 3.0]
    with pytest.raises(ValueError, match="finite"):
        charts.nice_ticks(0, float("inf"))


def test_charts_are_named_svg() -> None:
    t0 = 1_700_000_000.0
    timeline = [
        {"ts": t0, "weights": {"Drama": 0.5}},
        {"ts": t0 + 86_400 * 5, "weights": {"Drama": 0.2, "Comedy": -0.4}},
    ]
    line = ElementTree.fromstring(str(charts.line_chart("c1", "Weights", timeline, ["Drama"])))
    assert line.get("role") == "img" and line.get("aria-labelledby") == "c1-t c1-d"
    assert len(line.findall(f"{SVG}polyline")) == 1
    assert "Drama" in line.find(f"{SVG}desc").text  # type: ignore[union-attr]
    bars = ElementTree.fromstring(
        str(charts.bar_chart("c2", "Now", [("Drama", 1.0), ("Comedy", -0.5)]))
    )
    rects = bars.findall(f"{SVG}rect")
    assert len(rects) == 2 and rects[1].get("fill") == charts.NEGATIVE
    assert float(rects[1].get("x")) < float(rects[0].get("x")), "negative bars go left of zero"  # type: ignore[arg-type]
    cols = ElementTree.fromstring(
        str(charts.column_chart("c3", "Days", [(t0, 0), (t0 + 86_400, 3)]))
    )
    assert len(cols.findall(f"{SVG}rect")) == 2
    empty = str(charts.line_chart("c4", "Weights", [], ["Drama"]))
    assert "No activity yet." in empty and 'role="img"' in empty
    assert 'aria-hidden="true"' in str(charts.ci_bar(0.1, 0.05, 0.2))


# ------------------------------------------------------------------ view helpers
def _event(item: str, kind: str, ts: float, rating: float | None = None) -> EventRecord:
    return EventRecord(0, 1, item, kind, rating, ts, ts, None, None, {}, None)


def test_title_state_folds_events_newest_wins() -> None:
    evs = [
        _event("a", "like", 1),
        _event("b", "dislike", 2),
        _event("a", "add-to-list", 3),
        _event("a", "rate", 4, 2.0),
        _event("a", "dislike", 5),
        _event("a", "remove-from-list", 6),
        _event("a", "complete", 7),
    ]
    s = TitleState.from_events(evs, "a")
    assert (s.liked, s.disliked, s.rating, s.in_list, s.played, s.completed) == (
        False,
        True,
        2.0,
        False,
        True,
        True,
    )
    assert TitleState.from_events(evs, "zz") == TitleState()


def test_activity_per_day_counts_utc_days() -> None:
    day = 86_400.0
    now = 100 * day + 3600
    evs = [_event("a", "play", 99 * day + 10), _event("a", "like", 99 * day + 20)]
    evs.append(_event("a", "play", now))
    out = activity_per_day(evs, now, min_days=3)
    assert [c for _, c in out] == [0, 2, 1] and out[-1][0] == 100 * day
    assert len(activity_per_day([], time.time())) == 14
    old = [_event("a", "play", now - 400 * day)]
    assert len(activity_per_day(old, now)) == 60, "at most max_days"
