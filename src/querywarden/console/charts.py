"""Charts drawn on the server as inline SVG: no JavaScript library, no CDN, works offline.

Colours come from CSS classes (``s0``..``s5``, ``sev-high``...) in console.css, so the
pages keep a strict Content-Security-Policy (no inline styles or scripts) and the charts
follow the stylesheet. Every chart carries a ``<title>`` and ``aria-label`` for screen
readers, and an empty series draws a "no data" frame rather than nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: Sequence[Point]
    css: str = "s0"
    dots: bool = False


def _nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        return [low]
    raw = (high - low) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    t = first
    while t <= high + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _fmt_value(v: float) -> str:
    if abs(v) >= 1000:
        return f"{v / 1000:.3g}k"
    if v == int(v):
        return str(int(v))
    return f"{v:.3g}"


def _fmt_time(ts: float, span: float) -> str:
    t = time.gmtime(ts)
    if span > 2 * 86_400:
        return time.strftime("%m-%d", t)
    if span > 600:
        return time.strftime("%H:%M", t)
    return time.strftime("%H:%M:%S", t)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    y_label: str = "",
    y_range: tuple[float, float] | None = None,
    width: int = 640,
    height: int = 200,
    threshold: float | None = None,
) -> Markup:
    """Lines (and optional dots) over time, x in epoch seconds, with a legend and an
    optional dashed ``threshold`` line."""
    pad_l, pad_r, pad_t, pad_b = 48, 12, 14, 28
    pts = [p for s in series for p in s.points if math.isfinite(p[1])]
    head = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    )
    if not pts:
        return Markup(
            head + f'<rect class="frame" x="{pad_l}" y="{pad_t}" width="{width - pad_l - pad_r}" '
            f'height="{height - pad_t - pad_b}"/><text class="empty" x="{width / 2}" y="{height / 2}" '
            'text-anchor="middle">no data</text></svg>'
        )
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    if x1 <= x0:
        x0, x1 = x0 - 1, x1 + 1
    if y_range is not None:
        y0, y1 = y_range
    else:
        ys = [p[1] for p in pts] + ([threshold] if threshold is not None else [])
        y0, y1 = min(0.0, min(ys)), max(ys)
        y1 = y1 * 1.08 if y1 > 0 else 1.0
    if y1 <= y0:
        y1 = y0 + 1
    iw, ih = width - pad_l - pad_r, height - pad_t - pad_b

    def sx(x: float) -> float:
        return pad_l + (x - x0) / (x1 - x0) * iw

    def sy(y: float) -> float:
        return pad_t + ih - (min(max(y, y0), y1) - y0) / (y1 - y0) * ih

    parts = [head, f'<rect class="frame" x="{pad_l}" y="{pad_t}" width="{iw}" height="{ih}"/>']
    for t in _nice_ticks(y0, y1):
        y = sy(t)
        parts.append(f'<line class="grid" x1="{pad_l}" x2="{pad_l + iw}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt_value(t)}</text>')
    span = x1 - x0
    for i in range(5):
        x = x0 + span * i / 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(
            f'<text class="tick" x="{sx(x):.1f}" y="{height - 8}" text-anchor="{anchor}">{_fmt_time(x, span)}</text>'
        )
    if y_label:
        parts.append(f'<text class="axis" x="{pad_l + 4}" y="{pad_t + 12}">{escape(y_label)}</text>')
    if threshold is not None:
        y = sy(threshold)
        parts.append(f'<line class="threshold" x1="{pad_l}" x2="{pad_l + iw}" y1="{y:.1f}" y2="{y:.1f}"/>')
    for s in series:
        good = [p for p in s.points if math.isfinite(p[1])]
        if not good:
            continue
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in good)
        if s.dots:
            for x, y in good[-400:]:
                parts.append(f'<circle class="dot {s.css}" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2"/>')
        else:
            parts.append(f'<polyline class="line {s.css}" points="{coords}"/>')
    lx = pad_l + iw
    for s in reversed(series):
        label = escape(s.name)
        lx -= 12 + 7 * len(s.name)
        parts.append(f'<rect class="key {s.css}" x="{lx}" y="2" width="8" height="8"/>')
        parts.append(f'<text class="legend" x="{lx + 11}" y="10">{label}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(
    points: Sequence[tuple[float, int]],
    *,
    title: str,
    bucket: float,
    width: int = 640,
    height: int = 160,
    min_buckets: int = 1,
) -> Markup:
    """Counts per time bucket as columns (e.g. findings per hour), the axis spanning at
    least ``min_buckets`` buckets up to the last one so one busy hour is not one wide slab."""
    series = [Series("count", [(t + bucket / 2, float(n)) for t, n in points])]
    if not points:
        return line_chart(series, title=title, width=width, height=height)
    pad_l, pad_r, pad_t, pad_b = 48, 12, 14, 28
    x1 = max(t for t, _ in points) + bucket
    x0 = min(min(t for t, _ in points), x1 - min_buckets * bucket)
    y1 = max(n for _, n in points) * 1.1 or 1.0
    iw, ih = width - pad_l - pad_r, height - pad_t - pad_b
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<rect class="frame" x="{pad_l}" y="{pad_t}" width="{iw}" height="{ih}"/>',
    ]
    for t in _nice_ticks(0, y1):
        y = pad_t + ih - t / y1 * ih
        parts.append(f'<line class="grid" x1="{pad_l}" x2="{pad_l + iw}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt_value(t)}</text>')
    bw = max(1.0, iw * bucket / (x1 - x0) - 2)
    for t, n in points:
        x = pad_l + (t - x0) / (x1 - x0) * iw + 1
        h = n / y1 * ih
        parts.append(
            f'<rect class="bar s0" x="{x:.1f}" y="{pad_t + ih - h:.1f}" width="{bw:.1f}" height="{h:.1f}">'
            f"<title>{_fmt_time(t, x1 - x0)}: {n}</title></rect>"
        )
    span = x1 - x0
    for i, x in enumerate((x0, x0 + span / 2, x1)):
        anchor = ("start", "middle", "end")[i]
        px = pad_l + (x - x0) / span * iw
        parts.append(
            f'<text class="tick" x="{px:.1f}" y="{height - 8}" text-anchor="{anchor}">{_fmt_time(x, span)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def bars(items: Sequence[tuple[str, float, str]], *, title: str, width: int = 420) -> Markup:
    """Horizontal bars, one per ``(label, value, css class)``, longest scaled to the width."""
    row = 24
    height = max(row, row * len(items)) + 4
    top = max((v for _, v, _ in items), default=0.0) or 1.0
    label_w = 150
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    if not items:
        parts.append(f'<text class="empty" x="{width / 2}" y="16" text-anchor="middle">none</text>')
    for i, (label, value, css) in enumerate(items):
        y = 2 + i * row
        w = (width - label_w - 50) * value / top
        parts.append(f'<text class="tick" x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        parts.append(
            f'<rect class="bar {escape(css)}" x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 8}"/>'
        )
        parts.append(f'<text class="tick" x="{label_w + w + 6:.1f}" y="{y + 15}">{_fmt_value(value)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def gauge(value: float, *, title: str, width: int = 160) -> Markup:
    """A 0-100 bar for a score (exposure), coloured by band."""
    v = max(0.0, min(100.0, value))
    band = "sev-high" if v >= 60 else "sev-medium" if v >= 30 else "sev-low"
    return Markup(
        f'<svg class="gauge" viewBox="0 0 {width} 14" role="img" aria-label="{escape(title)}: {v:.0f} of 100" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}: {v:.0f}/100</title>'
        f'<rect class="track" x="0" y="2" width="{width}" height="10" rx="5"/>'
        f'<rect class="bar {band}" x="0" y="2" width="{width * v / 100:.1f}" height="10" rx="5"/></svg>'
    )
