"""Posters: TMDb images when an API key is configured, else generated SVG posters.

A generated poster is a pure function of the title's id, name, year, kind and
genres: the same title always gets the same picture, with no network. Colours
come from the title's most distinctive genres (:data:`GENRE_COLOURS`,
:data:`GENRE_PRIORITY`; an unknown genre gets a hue from its name's hash), the motif
and a slight shade from the id's hash, and the title is set in large type, wrapped
and sized to fit.

With ``PRIMETIME_TMDB_API_KEY`` set (a v3 API key, or a v4 read-access token),
:class:`TmdbPosters` searches TMDb by title and year once per title and keeps
the image on disk under ``primetime.paths.home()/posters``; a title TMDb does
not know is remembered as a miss for a week. Any failure falls back to the
generated poster, so a page never shows a broken image.
"""

from __future__ import annotations

import colorsys
import hashlib
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx

from primetime import paths

log = logging.getLogger(__name__)

#: Environment variable holding the TMDb key (v3 key or v4 read-access token).
TMDB_KEY_ENV = "PRIMETIME_TMDB_API_KEY"
TMDB_API = "https://api.themoviedb.org/3"
TMDB_IMAGES = "https://image.tmdb.org/t/p"

#: Poster canvas (2:3, the usual one-sheet ratio), in SVG user units.
WIDTH, HEIGHT = 300, 450
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

#: Base colour per genre (MovieLens, TMDb and the synthetic worlds' names).
GENRE_COLOURS: dict[str, str] = {
    "Action": "#c0392b",
    "Adventure": "#d35400",
    "Animation": "#16a085",
    "Children's": "#27ae60",
    "Children": "#27ae60",
    "Kids": "#27ae60",
    "Family": "#2e9e5b",
    "Comedy": "#e0a100",
    "Crime": "#5b2c6f",
    "Documentary": "#607d8b",
    "Drama": "#8e1b3a",
    "Fantasy": "#7d3cbe",
    "Film-Noir": "#2c3e50",
    "Horror": "#6b0f0f",
    "Musical": "#c2185b",
    "Music": "#c2185b",
    "Mystery": "#34495e",
    "Romance": "#d6336c",
    "Sci-Fi": "#1f6fb2",
    "Science Fiction": "#1f6fb2",
    "Thriller": "#4a235a",
    "War": "#5d6d3b",
    "Western": "#a0522d",
    "History": "#7b5e3b",
    "Reality": "#00838f",
    "News": "#455a64",
    "Talk": "#00897b",
    "Soap": "#ad1457",
}


#: Genres from the most to the least distinctive: a poster takes its main colour from
#: the title's most distinctive genre (a Drama that is also a War film looks like war;
#: MovieLens lists genres alphabetically, which says nothing). Unlisted genres rank
#: just before the broad ones at the end.
GENRE_PRIORITY: tuple[str, ...] = (
    "Film-Noir",
    "Western",
    "Documentary",
    "Horror",
    "Animation",
    "Musical",
    "Music",
    "War",
    "Sci-Fi",
    "Science Fiction",
    "Fantasy",
    "Mystery",
    "Crime",
    "Children's",
    "Children",
    "Kids",
    "Family",
    "Romance",
    "Thriller",
    "History",
    "Reality",
    "News",
    "Talk",
    "Soap",
    # broad genres last
    "Adventure",
    "Action",
    "Comedy",
    "Drama",
)
_RANK = {g: k for k, g in enumerate(GENRE_PRIORITY)}
_UNLISTED_RANK = GENRE_PRIORITY.index("Adventure") - 0.5


def by_distinctiveness(genres: Sequence[str]) -> list[str]:
    """``genres`` ordered by :data:`GENRE_PRIORITY` (stable for ties and unlisted ones)."""
    return sorted(dict.fromkeys(genres), key=lambda g: _RANK.get(g, _UNLISTED_RANK))


def _hash(text: str) -> int:
    """A stable 64-bit hash (Python's ``hash`` changes between processes)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def genre_colour(genre: str) -> str:
    """The hex colour of a genre: :data:`GENRE_COLOURS`, else a hue from its name."""
    known = GENRE_COLOURS.get(genre)
    if known is not None:
        return known
    r, g, b = colorsys.hls_to_rgb((_hash(genre) % 360) / 360.0, 0.38, 0.55)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _shade(hex_colour: str, factor: float) -> str:
    """``hex_colour`` with its lightness scaled by ``factor`` (< 1 darker)."""
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    h, lum, s = colorsys.rgb_to_hls(r, g, b)
    r, g, b = colorsys.hls_to_rgb(h, max(0.0, min(1.0, lum * factor)), s)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


_ARTICLE = re.compile(r"^(?P<rest>.+), (?P<art>The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El)$")


@lru_cache(maxsize=16_384)
def display_title(title: str) -> str:
    """The title as people say it: MovieLens' ``"Shawshank Redemption, The"`` becomes
    ``"The Shawshank Redemption"``; a trailing ``"(1995)"`` is dropped."""
    text = re.sub(r"\s*\(\d{4}\)\s*$", "", title.strip())
    m = _ARTICLE.match(text)
    if m:
        art = m.group("art")
        text = f"{art}{'' if art.endswith(chr(39)) else ' '}{m.group('rest')}"
    return text


def wrap_title(title: str, *, width: float = 252.0, max_lines: int = 4) -> tuple[list[str], int]:
    """Break ``title`` into at most ``max_lines`` lines and pick the largest font size
    (in SVG units, 20..56) at which every line fits in ``width``.

    Character width is estimated as 0.58 em for a bold sans-serif; a word too long
    for a line at the smallest size is cut with an ellipsis.

    Returns:
        ``(lines, font_size)``.
    """
    words = title.split() or [title or "Untitled"]
    for size in range(56, 19, -2):
        per_line = max(1, int(width / (size * 0.58)))
        if max(len(w) for w in words) > per_line:
            continue
        lines: list[str] = []
        for w in words:
            if lines and len(lines[-1]) + 1 + len(w) <= per_line:
                lines[-1] += " " + w
            else:
                lines.append(w)
        if len(lines) <= max_lines:
            return lines, size
    per_line = max(1, int(width / (20 * 0.58)))
    lines = []
    for w in words:
        w = w if len(w) <= per_line else w[: per_line - 1] + "…"
        if lines and len(lines[-1]) + 1 + len(w) <= per_line:
            lines[-1] += " " + w
        else:
            lines.append(w)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: per_line - 1].rstrip() + "…"
    return lines, 20


def _motif(seed: int, ink: str) -> str:
    """One of four background motifs, placed by ``seed``; drawn in ``ink`` at low opacity."""
    kind = seed % 4
    x = 40 + (seed >> 8) % 220
    y = 70 + (seed >> 16) % 170
    if kind == 0:  # a large disc and a ring
        r = 90 + (seed >> 24) % 60
        return (
            f'<circle cx="{x}" cy="{y}" r="{r}" fill="{ink}" fill-opacity="0.16"/>'
            f'<circle cx="{WIDTH - x}" cy="{y + 60}" r="{r // 2}" fill="none" '
            f'stroke="{ink}" stroke-opacity="0.22" stroke-width="6"/>'
        )
    if kind == 1:  # diagonal bands
        step = 34 + (seed >> 24) % 20
        bands = "".join(
            f'<path d="M{i} 0 L{i + 40} 0 L{i - 260} {HEIGHT} L{i - 300} {HEIGHT} Z"/>'
            for i in range(0, WIDTH + 300, step * 2)
        )
        return f'<g fill="{ink}" fill-opacity="0.09">{bands}</g>'
    if kind == 2:  # concentric rings
        rings = "".join(f'<circle cx="{x}" cy="{y}" r="{r}"/>' for r in range(30, 330, 28))
        return f'<g fill="none" stroke="{ink}" stroke-opacity="0.13" stroke-width="8">{rings}</g>'
    # a grid of dots
    dots = "".join(
        f'<circle cx="{cx}" cy="{cy}" r="{3 + ((cx * 7 + cy * 3 + seed) % 5)}"/>'
        for cx in range(18, WIDTH, 30)
        for cy in range(18, 300, 30)
    )
    return f'<g fill="{ink}" fill-opacity="0.12">{dots}</g>'


def poster_label(title: str, year: int | None, kind: str, season: int | None = None) -> str:
    """The small line above the title: ``"FILM · 1995"``, ``"SEASON 2 · 2019"``."""
    parts = [f"SEASON {season}" if season else ("SERIES" if kind == "show" else "FILM")]
    if year:
        parts.append(str(year))
    return " · ".join(parts)


@lru_cache(maxsize=4096)
def _svg_poster(
    item_id: str,
    title: str,
    year: int | None,
    kind: str,
    genres: tuple[str, ...],
    season: int | None,
) -> str:
    seed = _hash(item_id)
    ordered = by_distinctiveness(genres)
    base = genre_colour(ordered[0]) if ordered else genre_colour(f"untitled-{seed % 7}")
    second = genre_colour(ordered[1]) if len(ordered) > 1 else _shade(base, 0.45)
    lift = 1.0 + ((seed >> 40) % 21 - 10) / 100  # ±10% lightness: same-genre posters differ
    top, bottom = _shade(base, 1.15 * lift), _shade(second, 0.55 * lift)
    shown = display_title(title)
    lines, size = wrap_title(shown)
    line_h = round(size * 1.08)
    y0 = HEIGHT - 46 - line_h * (len(lines) - 1)
    tspans = "".join(
        f'<tspan x="24" y="{y0 + i * line_h}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    label = escape(poster_label(title, year, kind, season))
    name = escape(f"{shown}{f' ({year})' if year else ''}", {'"': "&quot;"})
    gid = f"g{seed % 1_000_000}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{name}">'
        f"<title>{name}</title>"
        f"<defs>"
        f'<linearGradient id="{gid}b" x1="0" y1="0" x2="0.35" y2="1">'
        f'<stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/>'
        f"</linearGradient>"
        f'<linearGradient id="{gid}s" x1="0" y1="0" x2="0" y2="1">'
        f'<stop offset="0.45" stop-color="#000" stop-opacity="0"/>'
        f'<stop offset="1" stop-color="#000" stop-opacity="0.78"/>'
        f"</linearGradient>"
        f"</defs>"
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="url(#{gid}b)"/>'
        f"{_motif(seed, '#ffffff')}"
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="url(#{gid}s)"/>'
        f'<rect x="24" y="28" width="36" height="5" fill="#e50914"/>'
        f'<text x="24" y="56" fill="#ffffff" fill-opacity="0.85" font-family="{_FONT}" '
        f'font-size="15" font-weight="600" letter-spacing="2">{label}</text>'
        f'<text fill="#ffffff" font-family="{_FONT}" font-size="{size}" font-weight="800" '
        f'letter-spacing="-0.5">{tspans}</text>'
        f"</svg>"
    )


def svg_poster(
    item_id: str,
    title: str,
    *,
    year: int | None = None,
    kind: str = "movie",
    genres: Sequence[str] = (),
    season: int | None = None,
) -> str:
    """A deterministic SVG poster (300×450) for one title.

    Args:
        item_id: External id; seeds the motif, so two titles with the same name differ.
        title: Shown in large type (MovieLens' "Title, The" is turned around).
        year: Release year, shown in the top line when known.
        kind: ``"movie"`` or ``"show"``.
        genres: The two most distinctive (:data:`GENRE_PRIORITY`) set the colours.
        season: For a season-level show title, its number.
    """
    if not item_id:
        raise ValueError("item_id must be a non-empty string")
    return _svg_poster(item_id, title, year, kind, tuple(genres), season)


# ================================================================== TMDb
@dataclass(frozen=True)
class TitleInfo:
    """What a poster lookup needs to know about a title."""

    item_id: str
    title: str
    year: int | None
    kind: str


class TmdbPosters:
    """TMDb poster images, cached on disk.

    Args:
        api_key: A v3 API key (sent as ``api_key``) or a v4 read-access token (a JWT,
            sent as ``Authorization: Bearer``).
        cache_dir: Where images (``<hash>.jpg``) and misses (``<hash>.miss``) are kept.
        transport: An httpx transport (tests pass ``httpx.MockTransport``).
        timeout: Seconds per HTTP request.
        size: TMDb image size (``w342`` suits a 2:3 card up to ~340 px wide).
        miss_ttl_seconds: How long "TMDb has no poster for this title" is remembered.
    """

    MAX_BYTES = 3_000_000

    def __init__(
        self,
        api_key: str,
        cache_dir: Path,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 5.0,
        size: str = "w342",
        miss_ttl_seconds: float = 7 * 86_400,
    ) -> None:
        if not api_key.strip():
            raise ValueError("api_key must not be empty")
        self.cache_dir = Path(cache_dir)
        self.size = size
        self.miss_ttl_seconds = miss_ttl_seconds
        key = api_key.strip()
        bearer = key.startswith("eyJ")  # v4 tokens are JWTs
        self._client = httpx.Client(
            transport=transport,
            timeout=timeout,
            headers={"Authorization": f"Bearer {key}"} if bearer else {},
            params={} if bearer else {"api_key": key},
            follow_redirects=True,
        )

    def close(self) -> None:
        self._client.close()

    def _paths(self, item_id: str) -> tuple[Path, Path]:
        slug = hashlib.sha256(item_id.encode()).hexdigest()[:24]
        return self.cache_dir / f"{slug}.jpg", self.cache_dir / f"{slug}.miss"

    def cached(self, item_id: str) -> Path | None:
        """The cached image of ``item_id``, or None."""
        image, _ = self._paths(item_id)
        return image if image.is_file() else None

    def poster(self, info: TitleInfo) -> Path | None:
        """The poster file of a title: from the disk cache, else fetched from TMDb.

        Returns None when TMDb has no poster, a recent lookup missed, or the network
        fails (logged; the caller falls back to the generated poster).
        """
        image, miss = self._paths(info.item_id)
        if image.is_file():
            return image
        if miss.is_file() and time.time() - miss.stat().st_mtime < self.miss_ttl_seconds:
            return None
        try:
            data = self._fetch(info)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
            log.warning("TMDb poster of %s (%r) failed: %s", info.item_id, info.title, err)
            return None  # a network error is not remembered as a miss
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if data is None:
            miss.touch()
            return None
        tmp = image.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, image)  # atomic: a concurrent reader sees all or nothing
        return image

    def _fetch(self, info: TitleInfo) -> bytes | None:
        show = info.kind == "show"
        params: dict[str, Any] = {"query": display_title(info.title), "include_adult": "false"}
        if info.year:
            params["first_air_date_year" if show else "year"] = info.year
        r = self._client.get(f"{TMDB_API}/search/{'tv' if show else 'movie'}", params=params)
        r.raise_for_status()
        results = r.json().get("results") or []
        path = next((x.get("poster_path") for x in results if x.get("poster_path")), None)
        if not path:
            return None
        img = self._client.get(f"{TMDB_IMAGES}/{self.size}{path}")
        img.raise_for_status()
        if not img.headers.get("content-type", "").startswith("image/"):
            raise ValueError(f"TMDb image answered {img.headers.get('content-type')!r}")
        if len(img.content) > self.MAX_BYTES:
            raise ValueError(f"TMDb image is {len(img.content)} bytes")
        return img.content


def tmdb_from_env(
    *, cache_dir: Path | None = None, transport: httpx.BaseTransport | None = None
) -> TmdbPosters | None:
    """A :class:`TmdbPosters` when ``PRIMETIME_TMDB_API_KEY`` is set, else None.

    The cache defaults to ``primetime.paths.home()/posters``.
    """
    key = os.environ.get(TMDB_KEY_ENV, "").strip()
    if not key:
        return None
    return TmdbPosters(key, cache_dir or paths.home() / "posters", transport=transport)
