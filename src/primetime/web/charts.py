"""Small SVG charts for the insights page, drawn on the server from the insights data.

Each function returns a complete ``<svg>`` element (``Markup``, safe to embed)
with ``role="img"``, a ``<title>`` and a ``<desc>`` naming what it shows, so a
screen reader announces the chart; the page also prints the numbers as a table.
Only SVG presentation attributes are used (no inline ``style``), which keeps the
pages within a strict Content-Security-Policy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from markupsafe import Markup, escape

from primetime.web.posters import genre_colour

AXIS = "#5f5f5f"
GRID = "#2a2a2a"
TEXT = "#b3b3b3"
POSITIVE = "#46d369"
NEGATIVE = "#e50914"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]`` (steps of 1, 2, 2.5 or 5 × 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"lo and hi must be finite, got {lo}, {hi}")
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks = [round(math.floor(lo / step) * step, 10)]
    while ticks[-1] < hi - step * 1e-9:  # until the top tick covers hi
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.2f}".rstrip("0").rstrip(".")


def _date(ts: float, span: float = 86_400.0 * 30) -> str:
    """A tick label: the time of day when the axis spans under two days, else the date."""
    fmt = "%H:%M" if span < 2 * 86_400 else "%d %b" if span < 300 * 86_400 else "%b %Y"
    return datetime.fromtimestamp(ts, tz=UTC).strftime(fmt)


def _open(uid: str, title: str, desc: str, width: int, height: int) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{uid}-t {uid}-d" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="{FONT}" font-size="13">'
        f'<title id="{uid}-t">{escape(title)}</title><desc id="{uid}-d">{escape(desc)}</desc>'
    )


def _empty(uid: str, title: str, message: str, width: int = 640, height: int = 120) -> Markup:
    return Markup(
        _open(uid, title, message, width, height)
        + f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="{TEXT}">'
        f"{escape(message)}</text></svg>"
    )


def line_chart(
    uid: str,
    title: str,
    timeline: Sequence[Mapping[str, object]],
    series: Sequence[str],
    *,
    width: int = 880,
    height: int = 300,
) -> Markup:
    """Genre weights over time: one line per genre of ``series``.

    Args:
        uid: Unique id prefix for the chart's title/description elements.
        title: Accessible name.
        timeline: ``[{"ts": unix seconds, "weights": {genre: weight}}]`` oldest first
            (the ``timeline`` of :func:`primetime.pipeline.realtime.insights`).
        series: Genres to draw (a genre missing at a point counts 0).
    """
    pts = [(float(p["ts"]), p["weights"]) for p in timeline]  # type: ignore[arg-type]
    if not pts or not series:
        return _empty(uid, title, "No activity yet.")
    ml, mr, mt, mb = 48, 16, 14, 30
    w, h = width - ml - mr, height - mt - mb
    values = [float(ws.get(g, 0.0)) for _, ws in pts for g in series]  # type: ignore[attr-defined]
    ticks = nice_ticks(min(0.0, *values), max(0.0, *values))
    lo, hi = ticks[0], ticks[-1]
    t0, t1 = pts[0][0], pts[-1][0]

    def x(t: float) -> float:
        return ml + (w * (t - t0) / (t1 - t0) if t1 > t0 else w / 2)

    def y(v: float) -> float:
        return mt + h * (1 - (v - lo) / (hi - lo))

    out = [
        _open(
            uid,
            title,
            f"Weights of {', '.join(series)} from {_date(t0)} to {_date(t1)}.",
            width,
            height,
        )
    ]
    for t in ticks:
        out.append(
            f'<line x1="{ml}" x2="{ml + w}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
            f'stroke="{AXIS if t == 0 else GRID}" stroke-width="1"/>'
            f'<text x="{ml - 6}" y="{y(t) + 4:.1f}" text-anchor="end" fill="{TEXT}">'
            f"{_fmt(t)}</text>"
        )
    n_labels = min(len(pts), 6)
    shown: set[str] = set()
    for k in range(n_labels):
        t = pts[round(k * (len(pts) - 1) / max(n_labels - 1, 1))][0]
        label = _date(t, t1 - t0)
        if label in shown:  # events minutes apart: one label per distinct time
            continue
        shown.add(label)
        anchor = "start" if k == 0 and n_labels > 1 else "end" if k == n_labels - 1 else "middle"
        out.append(
            f'<text x="{x(t):.1f}" y="{height - 8}" text-anchor="{anchor}" fill="{TEXT}">'
            f"{label}</text>"
        )
    for g in series:
        colour = genre_colour(g)
        coords = [(x(t), y(float(ws.get(g, 0.0)))) for t, ws in pts]  # type: ignore[attr-defined]
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5" '
            f'stroke-linejoin="round" stroke-linecap="round"/>'
        )
        last_x, last_y = coords[-1]
        out.append(
            f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="4" fill="{colour}">'
            f"<title>{escape(g)}: {_fmt(float(pts[-1][1].get(g, 0.0)))}</title></circle>"  # type: ignore[attr-defined]
        )
    out.append("</svg>")
    return Markup("".join(out))


def bar_chart(
    uid: str,
    title: str,
    bars: Sequence[tuple[str, float]],
    *,
    width: int = 560,
    row: int = 26,
    colour_by_label: bool = True,
    empty: str = "Nothing to show yet.",
) -> Markup:
    """Horizontal bars, one per ``(label, value)``; negative values extend left of zero.

    Args:
        uid: Unique id prefix.
        title: Accessible name.
        bars: In the order to draw.
        colour_by_label: Colour each bar by its label's genre colour (else green/red).
    """
    if not bars:
        return _empty(uid, title, empty, width)
    ml, mr = 112, 48
    w = width - ml - mr
    height = row * len(bars) + 8
    lo = min(0.0, *(v for _, v in bars))
    hi = max(0.0, *(v for _, v in bars))
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return ml + w * (v - lo) / span

    desc = "; ".join(f"{label} {_fmt(v)}" for label, v in bars)
    out = [_open(uid, title, desc, width, height)]
    for i, (label, v) in enumerate(bars):
        top = 4 + i * row
        x0, x1 = sorted((x(0.0), x(v)))
        if colour_by_label:
            fill = genre_colour(label) if v >= 0 else NEGATIVE
        else:
            fill = POSITIVE if v >= 0 else NEGATIVE
        out.append(
            f'<text x="{ml - 8}" y="{top + row / 2 + 4:.1f}" text-anchor="end" fill="{TEXT}">'
            f"{escape(label)}</text>"
            f'<rect x="{x0:.1f}" y="{top + 4}" width="{max(x1 - x0, 1.5):.1f}" '
            f'height="{row - 8}" rx="3" fill="{fill}"/>'
            f'<text x="{x1 + 6 if v >= 0 else x0 - 6:.1f}" y="{top + row / 2 + 4:.1f}" '
            f'text-anchor="{"start" if v >= 0 else "end"}" fill="#e5e5e5">{_fmt(v)}</text>'
        )
    out.append(
        f'<line x1="{x(0.0):.1f}" x2="{x(0.0):.1f}" y1="2" y2="{height - 2}" stroke="{AXIS}"/>'
    )
    out.append("</svg>")
    return Markup("".join(out))


def column_chart(
    uid: str,
    title: str,
    columns: Sequence[tuple[float, int]],
    *,
    width: int = 880,
    height: int = 200,
) -> Markup:
    """Events per day: one column per ``(day start unix seconds, count)``, oldest first."""
    if not columns or not any(c for _, c in columns):
        return _empty(uid, title, "No activity yet.", width)
    ml, mr, mt, mb = 36, 8, 10, 26
    w, h = width - ml - mr, height - mt - mb
    ticks = nice_ticks(0, max(c for _, c in columns), 4)
    top = ticks[-1] or 1
    slot = w / len(columns)
    total = sum(c for _, c in columns)
    desc = (
        f"{total} events over {len(columns)} days, {_date(columns[0][0])} "
        f"to {_date(columns[-1][0])}."
    )
    out = [_open(uid, title, desc, width, height)]
    for t in ticks:
        yy = mt + h * (1 - t / top)
        out.append(
            f'<line x1="{ml}" x2="{ml + w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{GRID}"/>'
            f'<text x="{ml - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="{TEXT}">{_fmt(t)}</text>'
        )
    for i, (day, count) in enumerate(columns):
        bh = h * count / top
        out.append(
            f'<rect x="{ml + i * slot + slot * 0.15:.1f}" y="{mt + h - bh:.1f}" '
            f'width="{slot * 0.7:.1f}" height="{bh:.1f}" rx="2" fill="{NEGATIVE}">'
            f"<title>{_date(day)}: {count}</title></rect>"
        )
    for k in (0, len(columns) // 2, len(columns) - 1):
        day = columns[k][0]
        anchor = "start" if k == 0 else "end" if k == len(columns) - 1 else "middle"
        cx = ml + k * slot + (0 if k == 0 else slot if anchor == "end" else slot / 2)
        out.append(
            f'<text x="{cx:.1f}" y="{height - 6}" text-anchor="{anchor}" fill="{TEXT}">'
            f"{_date(day)}</text>"
        )
    out.append("</svg>")
    return Markup("".join(out))


def ci_bar(rate: float, lo: float, hi: float, *, scale: float = 1.0, width: int = 110) -> Markup:
    """A tiny interval plot for the admin A/B table: the rate as a dot on its 95% interval.

    ``scale`` is the largest rate of the table, so arms are comparable by eye.
    """
    scale = scale if scale > 0 else 1.0

    def x(v: float) -> float:
        return 4 + (width - 8) * min(max(v / scale, 0.0), 1.0)

    return Markup(
        f'<svg class="ci" viewBox="0 0 {width} 14" width="{width}" height="14" '
        f'aria-hidden="true" focusable="false" xmlns="http://www.w3.org/2000/svg">'
        f'<line x1="4" x2="{width - 4}" y1="7" y2="7" stroke="{GRID}" stroke-width="2"/>'
        f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="7" y2="7" stroke="{TEXT}" '
        f'stroke-width="4" stroke-linecap="round"/>'
        f'<circle cx="{x(rate):.1f}" cy="7" r="4.5" fill="{NEGATIVE}"/></svg>'
    )
