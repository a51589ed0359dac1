"""Server-rendered SVG charts for the plan pages (no front-end build, no script): line charts with an
uncertainty band and markers, bar charts against a limit, and a dot map of municipalities.

Pure functions from numbers to markup; every text is escaped, every mark has a ``<title>`` for a tooltip
and the chart an ``aria-label``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from markupsafe import Markup, escape

__all__ = ["PALETTE", "Band", "Dot", "Marker", "Series", "bar_chart", "dot_map", "line_chart", "month_colour"]

PALETTE = ("#0b5cad", "#d9480f", "#2b8a3e", "#7048e8", "#c2255c", "#1098ad", "#5c940d", "#e67700")


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[date, float]]
    colour: str = PALETTE[0]
    dashed: bool = False


@dataclass(frozen=True)
class Band:
    """A shaded range (e.g. the forecast's 5th–95th percentile)."""

    name: str
    points: Sequence[tuple[date, float, float]]
    colour: str = PALETTE[0]


@dataclass(frozen=True)
class Marker:
    """A vertical line at a day (today, the target)."""

    day: date
    label: str
    colour: str = "#5b6776"


@dataclass(frozen=True)
class Dot:
    lat: float
    lng: float
    colour: str
    title: str
    href: str | None = None
    data: dict[str, str] = field(default_factory=dict)


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(1, ticks)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _fmt(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:,.1f}M".replace(".0M", "M")
    if abs(value) >= 10_000:
        return f"{value / 1_000:,.0f}k"
    return f"{value:,.0f}"


def _open(kind: str, element_id: str | None, width: int, height: int, label: str, role: str = "img") -> list[str]:
    """An ``<svg>`` named by ``label``: a picture (``img``), or a ``group`` when it holds links, which a picture
    may not (its content is presentational, so the links would be lost to assistive technology)."""
    ident = f' id="{escape(element_id)}"' if element_id else ""
    return [f'<svg class="{kind}"{ident} viewBox="0 0 {width} {height}" width="100%" role="{role}" '
            f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
            f"<title>{escape(label)}</title>"]


def _y_axis(y_top: float, step: float, left: int, right_x: int, top: int, plot_h: float) -> list[str]:
    """Horizontal grid lines with their values, from 0 to ``y_top``."""
    out = []
    tick = 0.0
    while tick <= y_top + 1e-9:
        y = top + plot_h * (1 - tick / y_top)
        out.append(f'<line x1="{left}" x2="{right_x}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_fmt(tick)}</text>')
        tick += step
    return out


def _month_ticks(first: date, last: date) -> list[date]:
    """First days of months between ``first`` and ``last``, at most about eight of them."""
    months = (last.year - first.year) * 12 + last.month - first.month
    step = max(1, math.ceil(months / 8))
    index = first.year * 12 + first.month - 1 + (first.day != 1)
    out = []
    while (tick := date(index // 12, index % 12 + 1, 1)) <= last:
        out.append(tick)
        index += step
    return out


def line_chart(series: Sequence[Series], *, label: str, bands: Sequence[Band] = (),
               markers: Sequence[Marker] = (), width: int = 760, height: int = 300,
               element_id: str | None = None) -> Markup:
    """Lines over days (x) with optional shaded bands and vertical markers."""
    xs = [d for s in series for d, _ in s.points] + [d for b in bands for d, _, _ in b.points]
    if xs:  # markers far outside the data would only stretch the axis
        near = timedelta(days=62)
        markers = [m for m in markers if min(xs) - near <= m.day <= max(xs) + near]
    xs += [m.day for m in markers]
    ys = [v for s in series for _, v in s.points]
    ys += [v for b in bands for _, lo, hi in b.points for v in (lo, hi)]
    if not xs:
        return Markup("".join(_open("chart", element_id, width, 60, label))
                      + '<text x="10" y="35" class="muted">—</text></svg>')
    left, right, top, bottom = 64, 16, 16, 54
    x0, x1 = min(xs), max(xs)
    span_days = max(1, (x1 - x0).days)
    y_max = max([*ys, 1.0])
    step = max(1.0, _nice_step(y_max))  # counts of cards and municipalities: whole numbers
    y_top = step * math.ceil(y_max / step)
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(d: date) -> float:
        return left + plot_w * (d - x0).days / span_days

    def py(v: float) -> float:
        return top + plot_h * (1 - v / y_top)

    parts = _open("chart", element_id, width, height, label)
    parts += _y_axis(y_top, step, left, width - right, top, plot_h)
    for t in _month_ticks(x0, x1):
        x = px(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" class="grid"/>'
                     f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle" class="tick">'
                     f'{t.year % 100:02d}/{t.month:02d}</text>')
    for band in bands:
        if not band.points:
            continue
        upper = " ".join(f"{px(d):.1f},{py(hi):.1f}" for d, _, hi in band.points)
        lower = " ".join(f"{px(d):.1f},{py(lo):.1f}" for d, lo, _ in reversed(band.points))
        parts.append(f'<polygon points="{upper} {lower}" fill="{band.colour}" fill-opacity="0.18" '
                     f'class="band"><title>{escape(band.name)}</title></polygon>')
    for s in series:
        if not s.points:
            continue
        path = " ".join(f"{px(d):.1f},{py(v):.1f}" for d, v in s.points)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="2"{dash} '
                     f'data-series="{escape(s.name)}"><title>{escape(s.name)}</title></polyline>')
        if len(s.points) <= 40:
            for d, v in s.points:
                parts.append(f'<circle cx="{px(d):.1f}" cy="{py(v):.1f}" r="2.5" fill="{s.colour}">'
                             f"<title>{escape(s.name)} {d.isoformat()}: {v:,.0f}</title></circle>")
    for m in markers:
        x = px(m.day)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" stroke="{m.colour}" '
                     f'stroke-dasharray="3 3" class="marker"><title>{escape(m.label)}</title></line>'
                     f'<text x="{x + 3:.1f}" y="{top + 10}" class="tick" fill="{m.colour}">'
                     f"{escape(m.label)}</text>")
    legend_y = height - 12
    x = left
    for s in series:
        parts.append(f'<rect x="{x}" y="{legend_y - 9}" width="14" height="4" fill="{s.colour}"/>'
                     f'<text x="{x + 18}" y="{legend_y - 4}" class="legend">{escape(s.name)}</text>')
        x += 28 + 7 * len(s.name) + 6 * sum(1 for ch in s.name if ord(ch) > 0x2E80)
    for band in bands:
        parts.append(f'<rect x="{x}" y="{legend_y - 13}" width="14" height="10" fill="{band.colour}" '
                     f'fill-opacity="0.25"/><text x="{x + 18}" y="{legend_y - 4}" class="legend">'
                     f"{escape(band.name)}</text>")
        x += 28 + 7 * len(band.name) + 6 * sum(1 for ch in band.name if ord(ch) > 0x2E80)
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(labels: Sequence[str], values: Sequence[float], *, label: str, limit: float | None = None,
              limit_label: str = "", colours: Sequence[str] | None = None, width: int = 760,
              height: int = 260, element_id: str | None = None) -> Markup:
    """Vertical bars, optionally against a horizontal limit; a bar above the limit is drawn in red."""
    left, right, top, bottom = 64, 16, 16, 40
    y_max = max([*values, limit or 0, 1.0])
    step = max(1.0, _nice_step(y_max))
    y_top = step * math.ceil(y_max / step)
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(values))
    slot = plot_w / n
    parts = _open("chart", element_id, width, height, label)
    parts += _y_axis(y_top, step, left, width - right, top, plot_h)
    for i, (name, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * value / y_top
        x = left + i * slot + slot * 0.15
        over = limit is not None and value > limit
        colour = "#b3261e" if over else (colours[i] if colours else PALETTE[0])
        flag = ' data-over="true"' if over else ""
        parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
                     f'height="{h:.1f}" fill="{colour}" data-label="{escape(name)}" '
                     f'data-value="{value:g}"{flag}>'
                     f"<title>{escape(name)}: {value:,.0f}</title></rect>"
                     f'<text x="{x + slot * 0.35:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                     f'class="tick">{escape(name)}</text>')
    if limit is not None:
        y = top + plot_h * (1 - limit / y_top)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#b3261e" '
                     f'stroke-dasharray="6 3" class="limit"><title>{escape(limit_label)}</title></line>'
                     f'<text x="{width - right}" y="{y - 4:.1f}" text-anchor="end" class="tick" '
                     f'fill="#b3261e">{escape(limit_label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def month_colour(index: int, count: int) -> str:
    """A colour from green (early) through amber to red (late) for the ``index``-th of ``count`` months."""
    if count <= 1:
        return "hsl(130,55%,40%)"
    hue = 130 - 130 * index / (count - 1)
    return f"hsl({hue:.0f},65%,{45 - 8 * index / (count - 1):.0f}%)"


def dot_map(dots: Sequence[Dot], *, label: str, width: int = 560, height: int = 620,
            element_id: str | None = None) -> Markup:
    """Municipalities as dots at their town hall (equirectangular, x scaled by the mid latitude's cosine)."""
    if not dots:
        return Markup("".join(_open("map", element_id, width, 60, label)) + "</svg>")
    lats = [d.lat for d in dots]
    lngs = [d.lng for d in dots]
    lat0, lat1, lng0, lng1 = min(lats), max(lats), min(lngs), max(lngs)
    squeeze = math.cos(math.radians((lat0 + lat1) / 2))
    span_x = max(0.05, (lng1 - lng0) * squeeze)
    span_y = max(0.05, lat1 - lat0)
    pad = 12
    scale = min((width - 2 * pad) / span_x, (height - 2 * pad) / span_y)
    radius = 2.6 if len(dots) > 300 else 5
    parts = _open("map", element_id, width, height, label, "group" if any(d.href for d in dots) else "img")
    for d in dots:
        x = pad + (d.lng - lng0) * squeeze * scale
        y = pad + (lat1 - d.lat) * scale
        data = "".join(f' data-{escape(k)}="{escape(v)}"' for k, v in d.data.items())
        circle = (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{d.colour}"{data}>'
                  f"<title>{escape(d.title)}</title></circle>")
        parts.append(f'<a href="{escape(d.href)}" aria-label="{escape(d.title)}">{circle}</a>' if d.href else circle)
    parts.append("</svg>")
    return Markup("".join(parts))
