"""Plots as inline SVG, rendered on the server (pure: strings in, a string out).

For the HTML reports: no script, no external asset, no namespace URL (an ``<svg>`` inside HTML needs
none). Every text is escaped. A chart is a line (optionally in steps, broken where the x values jump
by more than ``gap``: the time between two streams) or bars; long series are thinned to at most
:data:`MAX_POINTS` by keeping each group's highest value, so a peak is never smoothed away.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["MAX_POINTS", "Chart", "axis_top", "bar_chart", "downsample", "line_chart"]

MAX_POINTS = 600
TICKS = 4  # intervals on the y axis (and on the x axis)
Point = tuple[float, float]
Format = Callable[[float], str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Chart:
    """What a chart shows and how its axes read."""

    title: str
    x_format: Format = str
    y_format: Format = lambda y: f"{y:,.0f}"
    y_max: float | None = None  # the top of the y axis (default: :func:`axis_top` of the data)
    width: int = 720
    height: int = 220


LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 36


def downsample(points: Sequence[Point], max_points: int = MAX_POINTS) -> list[Point]:
    """At most ``max_points`` points: consecutive groups of equal size, each as its first x and its
    highest y."""
    if len(points) <= max_points:
        return list(points)
    size = math.ceil(len(points) / max_points)
    return [(points[i][0], max(y for _, y in points[i : i + size])) for i in range(0, len(points), size)]


def axis_top(value: float, *, ticks: int = TICKS) -> float:
    """The top of an axis of counts over ``ticks`` intervals: ``ticks`` times the smallest round step
    (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten, a whole number) that reaches ``value``."""
    needed = max(value / ticks, 1.0)
    power = 10.0 ** math.floor(math.log10(needed))
    steps = (m * power for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if (m * power).is_integer())
    return next(step for step in steps if step >= needed) * ticks


class _Frame:
    """The plot area and the scales from data to pixels."""

    def __init__(self, chart: Chart, points: Sequence[Point]) -> None:
        self.chart = chart
        xs = [x for x, _ in points] or [0.0]
        self.x0, self.x1 = min(xs), max(xs)
        if self.x1 == self.x0:
            self.x1 = self.x0 + 1
        top = max((y for _, y in points), default=0.0)
        self.y1 = chart.y_max if chart.y_max is not None else axis_top(top)
        self.right = chart.width - RIGHT
        self.bottom = chart.height - BOTTOM

    def x(self, value: float) -> float:
        return LEFT + (value - self.x0) / (self.x1 - self.x0) * (self.right - LEFT)

    def y(self, value: float) -> float:
        return self.bottom - min(value, self.y1) / self.y1 * (self.bottom - TOP)

    def axes(self) -> list[str]:
        c = self.chart
        out = [f'<text x="{LEFT}" y="16" class="title">{escape(c.title)}</text>']
        for i in range(TICKS + 1):
            value = self.y1 * i / TICKS
            y = self.y(value)
            out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{self.right}" y2="{y:.1f}" class="grid"/>')
            out.append(
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(c.y_format(value))}</text>'
            )
        for i in range(TICKS + 1):
            value = self.x0 + (self.x1 - self.x0) * i / TICKS
            anchor = "start" if i == 0 else "end" if i == TICKS else "middle"
            out.append(
                f'<text x="{self.x(value):.1f}" y="{self.bottom + 18}" text-anchor="{anchor}">'
                f"{escape(c.x_format(value))}</text>"
            )
        out.append(
            f'<line x1="{LEFT}" y1="{self.bottom}" x2="{self.right}" y2="{self.bottom}" class="axis"/>'
        )
        return out


def _svg(chart: Chart, body: list[str]) -> str:
    return (
        f'<svg width="{chart.width}" height="{chart.height}" viewBox="0 0 {chart.width} {chart.height}"'
        f' role="img" aria-label="{escape(chart.title)}"><title>{escape(chart.title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _empty(chart: Chart) -> str:
    return _svg(
        chart,
        [
            f'<text x="{LEFT}" y="16" class="title">{escape(chart.title)}</text>',
            f'<text x="{chart.width / 2:.0f}" y="{chart.height / 2:.0f}" text-anchor="middle">no data</text>',
        ],
    )


def line_chart(points: Sequence[Point], chart: Chart, *, step: bool = False, gap: float | None = None) -> str:
    """A line through ``points`` (sorted by x); in steps (a value holds until the next) if ``step``;
    a new line wherever x jumps by more than ``gap``."""
    if not points:
        return _empty(chart)
    points = downsample(points)
    frame = _Frame(chart, points)
    path: list[str] = []
    previous: float | None = None
    for x, y in points:
        px, py = frame.x(x), frame.y(y)
        if previous is None or (gap is not None and x - previous > gap):
            path.append(f"M{px:.1f} {py:.1f}")
        elif step:
            path.append(f"H{px:.1f}V{py:.1f}")
        else:
            path.append(f"L{px:.1f} {py:.1f}")
        previous = x
    body = [*frame.axes(), f'<path d="{"".join(path)}" class="line"/>']
    return _svg(chart, body)


def bar_chart(points: Sequence[Point], chart: Chart, *, bar_width: float | None = None) -> str:
    """A bar per point (x: where it starts, in x units ``bar_width`` wide, default the smallest step
    between two x)."""
    if not points:
        return _empty(chart)
    points = downsample(points)
    steps = [b[0] - a[0] for a, b in itertools.pairwise(points) if b[0] > a[0]]
    width = bar_width or min(steps, default=1.0)
    frame = _Frame(chart, [*points, (points[-1][0] + width, 0.0)])
    body = frame.axes()
    for x, y in points:
        left, top = frame.x(x), frame.y(y)
        w = max(frame.x(x + width) - left - 0.5, 0.5)
        body.append(
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" height="{frame.bottom - top:.1f}"'
            ' class="bar"/>'
        )
    return _svg(chart, body)
