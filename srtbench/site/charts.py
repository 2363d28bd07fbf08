"""The site's charts as inline SVG, drawn here from numbers (nothing fetched, no image files): line charts of
accuracy against the budget fraction (Figures 1 and 7) and of the training metrics per epoch."""

from __future__ import annotations

import math
from collections.abc import Sequence

from srtbench.site.markup import text

# matplotlib's tab10, so that the site's curves have the colours of `srtbench plot`'s
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
WIDTH, HEIGHT = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 52, 150, 26, 40  # margins: the legend sits right of the plot
Series = tuple[str, Sequence[float], Sequence[float]]  # (name, x values, y values)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values from low to high."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = next(m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 2.5, 5, 10)
                if m * 10 ** math.floor(math.log10(raw)) >= raw)
    first = math.ceil(low / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step + 1e-9) + 1)]


def _range(values: list[float], fixed: tuple[float, float] | None) -> tuple[float, float]:
    if fixed:
        return fixed
    low, high = min(values), max(values)
    pad = (high - low) * 0.05 or abs(high) * 0.1 or 1.0
    return low - pad, high + pad


def _axes(x_range, y_range, x_label: str, y_label: str) -> list[str]:
    sx, sy = _scales(x_range, y_range)
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
             'fill="none" stroke="#9aa4b1"/>']
    for t in _ticks(*y_range):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#e3e7ed"/>'
                     f'<text x="{LEFT - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in _ticks(*x_range):
        parts.append(f'<text x="{sx(t):.1f}" y="{HEIGHT - BOTTOM + 15}" text-anchor="middle">{t:g}</text>')
    parts.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                 f"{text(x_label)}</text>")
    parts.append(f'<text transform="translate(13,{(TOP + HEIGHT - BOTTOM) / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle">{text(y_label)}</text>')
    return parts


def _scales(x_range, y_range):
    (x0, x1), (y0, y1) = x_range, y_range
    sx = lambda x: LEFT + (x - x0) / ((x1 - x0) or 1) * (WIDTH - LEFT - RIGHT)  # noqa: E731
    sy = lambda y: HEIGHT - BOTTOM - (y - y0) / ((y1 - y0) or 1) * (HEIGHT - TOP - BOTTOM)  # noqa: E731
    return sx, sy


def line_chart(series: Sequence[Series], title: str, x_label: str, y_label: str,
               y_range: tuple[float, float] | None = None) -> str:
    """An `<svg>` of one line (with its points) per series and a legend; every label escaped.  Empty where no
    series has a finite point."""
    series = [(name, *zip(*[(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]))
              for name, xs, ys in series]
    series = [s for s in series if len(s) == 3]
    if not series:
        return ""
    x_range = _range([x for _, xs, _ in series for x in xs], None)
    y_range = _range([y for _, _, ys in series for y in ys], y_range)
    sx, sy = _scales(x_range, y_range)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
             f'height="{HEIGHT}" role="img" aria-label="{text(title)}">',
             f'<text x="{LEFT}" y="16" font-weight="600">{text(title)}</text>', *_axes(x_range, y_range, x_label,
                                                                                      y_label)]
    for i, (name, xs, ys) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.8" fill="{colour}"><title>{text(name)}: '
                  f"{x:g}, {y:.2f}</title></circle>" for x, y in zip(xs, ys)]
        y = TOP + 8 + 16 * i
        parts.append(f'<line x1="{WIDTH - RIGHT + 10}" x2="{WIDTH - RIGHT + 28}" y1="{y}" y2="{y}" '
                     f'stroke="{colour}" stroke-width="2"/><text x="{WIDTH - RIGHT + 33}" y="{y + 4}">'
                     f"{text(_short(name))}</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def _short(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"
