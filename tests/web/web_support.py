"""Helpers of the web tests: the small world with a richer catalog, the app factory, and
an HTML accessibility audit. (A module of its own, not ``conftest``: several conftest
modules share that name, so test modules import from here.)

The world has the planted tastes of ``tests/conftest.py`` (users of one group walk
chains through Drama titles i0..i19, the other through Comedy/Family titles
i20..i39) and a catalog a page can show off: years, cast and crew, a description,
and two shows with four seasons each (i16..i19 "Harbor Lights", i36..i39 "Family
Matters Again"), so "continue watching" and the seasons list have something to do.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import polars as pl
from fastapi import FastAPI
from fastapi.testclient import TestClient

from primetime.data import Dataset
from primetime.registry import ModelRegistry
from primetime.service.app import create_app
from primetime.service.auth import SESSION_COOKIE, read_token
from primetime.service.settings import Settings
from primetime.web.csrf import CSRF_COOKIE, CSRF_FIELD, token_for

ADMIN_TOKEN = "web-admin-token"
PASSWORD = "pass-word-1"
SHOWS = {
    "harbor": ("Harbor Lights", "Northwind", range(16, 20)),
    "family": ("Family Matters Again", "Sunny TV", range(36, 40)),
}


def world_catalog(n_items: int = 40) -> pl.DataFrame:
    """Titles i0..i39: Drama in the first half, Comedy/Family in the second; the last
    four of each half are the seasons of a show."""
    half = n_items // 2
    rows = []
    for i in range(n_items):
        genres = ["Drama"] if i < half else ["Comedy", "Family"]
        row: dict[str, object] = {
            "item_id": f"i{i}",
            "title": f"Title {i}",
            "year": 1990 + i % 30,
            "genres": genres,
            "kind": "movie",
            "cast": [f"Actor {i % 7}", f"Actor {(i + 3) % 11}"],
            "crew": [f"Director {i % 5}"],
            "description": f"The story of title {i}, told in {genres[0].lower()}.",
        }
        for series, (name, network, items) in SHOWS.items():
            if i in items:
                season = i - items.start + 1
                row.update(
                    title=f"{name}: Season {season}",
                    kind="show",
                    series_id=series,
                    season_number=season,
                    seasons=len(items),
                    episodes=8 + season,
                    network=network,
                    year=2014 + season,
                )
        rows.append(row)
    return pl.DataFrame(rows)


def world_log(n_users: int = 60, n_items: int = 40, seed: int = 0) -> pl.DataFrame:
    """The planted log: each user walks a chain of their group's half of the catalog."""
    rng = np.random.default_rng(seed)
    half = n_items // 2
    rows = []
    for u in range(n_users):
        group = u % 2
        start = rng.integers(0, half - 12)
        for step in range(int(rng.integers(6, 12))):
            item = group * half + start + step
            rating = float(rng.integers(3, 6) if group else rng.integers(1, 4))
            rows.append((f"u{u}", f"i{item}", rating, 1_000_000 + u * 10_000 + step * 60))
    return pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")


class WebClient(TestClient):
    """A TestClient that posts forms as our pages do: a same-origin ``Origin`` header and
    the page's ``csrf_token`` field (see ``primetime.web.csrf``), unless the test sets
    ``Origin``/``Referer`` or ``csrf_token`` itself. API paths are left alone."""

    def request(self, method: str, url: Any, **kw: Any) -> Any:  # type: ignore[override]
        path = urlsplit(str(url)).path
        if method.upper() == "POST" and not path.startswith("/api/"):
            headers = dict(kw.get("headers") or {})
            if not {k.lower() for k in headers} & {"origin", "referer"}:
                headers["Origin"] = str(self.base_url).rstrip("/")
            kw["headers"] = headers
            data = kw.get("data")
            if data is None or (isinstance(data, dict) and CSRF_FIELD not in data):
                kw["data"] = {**(data or {}), CSRF_FIELD: form_token(self)}
        return super().request(method, url, **kw)


def form_token(client: TestClient) -> str:
    """The ``csrf_token`` a page would give this client now (fetching a page first when
    it has neither a session nor the pre-session cookie)."""
    settings = client.app.state.settings  # type: ignore[attr-defined]
    session = client.cookies.get(SESSION_COOKIE)
    if session and read_token(session, settings) is not None:
        return token_for(settings, f"session:{session}")
    if not client.cookies.get(CSRF_COOKIE):
        client.get("/signup")
    return token_for(settings, f"pre:{client.cookies.get(CSRF_COOKIE)}")


def web_settings(db_url: str, registry: ModelRegistry, **kw: object) -> Settings:
    base: dict[str, object] = {
        "environment": "test",
        "database_url": db_url,
        "registry_dir": registry.root,
        "models": ["itemknn", "popularity"],
        "admin_token": ADMIN_TOKEN,
        "rate_limit_per_minute": 0,
        "_env_file": None,
    }
    return Settings(**{**base, **kw})  # type: ignore[arg-type]


def make_web_app(db_path: Path, dataset: Dataset, registry: ModelRegistry) -> FastAPI:
    """The service + web app on a SQLite file; generated posters only (a developer's
    PRIMETIME_TMDB_API_KEY must never make a test reach the network)."""
    app = create_app(
        web_settings(f"sqlite:///{db_path}", registry), dataset=dataset, registry=registry
    )
    app.state.tmdb = None
    return app


# ---------------------------------------------------------------- HTML checks
class PageAudit(HTMLParser):
    """Collects what the accessibility checks need from one HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.title = ""
        self.h1 = 0
        self.ids: set[str] = set()
        self.label_for: set[str] = set()
        self.images: list[dict[str, str | None]] = []
        self.controls: list[dict[str, str | None]] = []
        self.svgs: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []
        self._stack: list[tuple[str, dict[str, str | None]]] = []
        self._text: list[list[str]] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "title" and not self._stack_has("svg"):
            self._in_title = True
        elif tag == "h1":
            self.h1 += 1
        elif tag == "label" and a.get("for"):
            self.label_for.add(str(a["for"]))
        elif tag == "img":
            self.images.append(a)
        elif tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append({**a, "_tag": tag, "_in_label": str(self._stack_has("label"))})
        elif tag == "svg" and a.get("role") == "img":
            self.svgs.append(a)
        if tag not in ("img", "input", "br", "meta", "link", "hr", "source"):
            self._stack.append((tag, a))
            self._text.append([])

    def _stack_has(self, tag: str) -> bool:
        return any(t == tag for t, _ in self._stack)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        while self._stack:
            t, a = self._stack.pop()
            text = " ".join(self._text.pop()).strip()
            if self._text:
                self._text[-1].append(text)
            if t == "button":
                self.controls.append({**a, "_tag": "button", "_text": text})
            elif t == "a":
                self.links.append({**a, "_text": text})
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._text:
            self._text[-1].append(data.strip())

    def problems(self) -> list[str]:
        """Missing alt text, unlabelled controls, nameless links and charts, no lang/title."""
        out = []
        if not self.lang:
            out.append("<html> has no lang")
        if not self.title.strip():
            out.append("no <title>")
        if self.h1 != 1:
            out.append(f"{self.h1} <h1> elements (want 1)")
        for img in self.images:
            if not (img.get("alt") or "").strip():
                out.append(f"img without alt text: {img.get('src')}")
        for c in self.controls:
            named = (
                (c.get("aria-label") or "").strip()
                or (c.get("aria-labelledby") and set(str(c["aria-labelledby"]).split()) <= self.ids)
                or (c.get("id") and c["id"] in self.label_for)
                or c.get("_in_label") == "True"
                or (c["_tag"] == "button" and (c.get("_text") or "").strip())
            )
            if not named:
                out.append(f"{c['_tag']} without a label: {c}")
        for svg in self.svgs:
            ref = set(str(svg.get("aria-labelledby") or "").split())
            if not (svg.get("aria-label") or (ref and ref <= self.ids)):
                out.append(f"chart without a name: {svg}")
        for link in self.links:
            if not ((link.get("aria-label") or "").strip() or (link.get("_text") or "").strip()):
                out.append(f"link without a name: {link.get('href')}")
        return out


def audit(html: str) -> list[str]:
    """Accessibility problems of one page (empty when it passes)."""
    p = PageAudit()
    p.feed(html)
    p.close()
    return p.problems()
