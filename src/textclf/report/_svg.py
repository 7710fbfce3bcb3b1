"""Hand-written SVG charts: a plot area that maps data to pixels, its axes, and marks.

Colours and fonts come from the page's CSS classes (``s0``.. a series, ``axis``, ``grid``...), so a
chart is only geometry: a few kilobytes, no script, and crisp at any zoom.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

__all__ = ["Plot", "nice_ticks", "number"]


def number(value: float) -> str:
    """A coordinate, short: ``12.5``, ``3``."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2 or 5 times a power of ten) from ``low`` to ``high``."""
    if high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


class Plot:
    """A chart of ``width`` x ``height`` pixels whose plot area spans ``x_range`` and ``y_range``.

    >>> p = Plot("fig-demo", (0, 10), (0, 1), title="Demo")
    >>> p.axes(x_label="epoch", y_label="score")
    >>> p.line([0, 5, 10], [0.1, 0.5, 0.9], "s0")
    >>> p.svg().startswith('<svg id="fig-demo"')
    True
    """

    def __init__(
        self,
        id: str,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        title: str = "",
        width: int = 460,
        height: int = 300,
        margin: tuple[int, int, int, int] = (34, 16, 46, 58),  # top, right, bottom, left
    ):
        self.id, self.title, self.width, self.height = id, title, width, height
        self.top, self.right, self.bottom, self.left = margin
        self.x_range, self.y_range = x_range, y_range
        self.parts: list[str] = []

    def x(self, value: float) -> float:
        low, high = self.x_range
        span = (high - low) or 1.0
        return self.left + (value - low) / span * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        low, high = self.y_range
        span = (high - low) or 1.0
        return self.height - self.bottom - (value - low) / span * (self.height - self.top - self.bottom)

    def axes(
        self,
        x_label: str = "",
        y_label: str = "",
        x_ticks: Sequence[float] | None = None,
        y_ticks: Sequence[float] | None = None,
        x_format: Callable[[float], str] = lambda v: f"{v:g}",
        y_format: Callable[[float], str] = lambda v: f"{v:g}",
    ) -> None:
        """The frame, grid lines at the ticks, tick labels and axis titles."""
        x_ticks = nice_ticks(*self.x_range) if x_ticks is None else x_ticks
        y_ticks = nice_ticks(*self.y_range) if y_ticks is None else y_ticks
        bottom, top = self.height - self.bottom, self.top
        left, right = self.left, self.width - self.right
        for v in y_ticks:
            y = number(self.y(v))
            self.parts.append(f'<line class="grid" x1="{left}" x2="{number(right)}" y1="{y}" y2="{y}"/>')
            self.text(left - 5, self.y(v) + 4, y_format(v), "tick", anchor="end")
        for v in x_ticks:
            x = number(self.x(v))
            self.parts.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{top}" y2="{bottom}"/>')
            self.text(self.x(v), bottom + 15, x_format(v), "tick", anchor="middle")
        self.parts.append(
            f'<rect class="frame" x="{left}" y="{top}" width="{number(right - left)}" height="{number(bottom - top)}"/>'
        )
        if x_label:
            self.text((left + right) / 2, self.height - 8, x_label, "label", anchor="middle")
        if y_label:
            mid = (top + bottom) / 2
            self.parts.append(
                f'<text class="label" text-anchor="middle" transform="translate(14 {number(mid)}) rotate(-90)">'
                f"{escape(y_label)}</text>"
            )

    def text(self, x: float, y: float, content: str, cls: str = "tick", anchor: str = "start") -> None:
        self.parts.append(
            f'<text class="{cls}" x="{number(x)}" y="{number(y)}" text-anchor="{anchor}">{escape(content)}</text>'
        )

    def line(self, xs: Sequence[float], ys: Sequence[float | None], cls: str, dots: bool = True) -> None:
        """A polyline through the points (a None y breaks it), with a dot at each point."""
        points = [(self.x(x), self.y(y)) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
        if len(points) > 1:
            path = " ".join(f"{number(x)},{number(y)}" for x, y in points)
            self.parts.append(f'<polyline class="series {cls}" points="{path}"/>')
        if dots:
            self.dots([x for x, _ in points], [y for _, y in points], cls, pixels=True)

    def dots(self, xs: Sequence[float], ys: Sequence[float], cls: str, pixels: bool = False, r: float = 3) -> None:
        for x, y in zip(xs, ys):
            px, py = (x, y) if pixels else (self.x(x), self.y(y))
            self.parts.append(f'<circle class="dot {cls}" cx="{number(px)}" cy="{number(py)}" r="{r:g}"/>')

    def rect(self, x0: float, y0: float, x1: float, y1: float, cls: str, title: str = "", attrs: str = "") -> None:
        """A rectangle between two data points; ``title`` shows on hover."""
        left, right = sorted((self.x(x0), self.x(x1)))
        top, bottom = sorted((self.y(y0), self.y(y1)))
        tip = f"<title>{escape(title)}</title>" if title else ""
        self.parts.append(
            f'<rect class="{cls}" x="{number(left)}" y="{number(top)}" width="{number(right - left)}" '
            f'height="{number(bottom - top)}"{attrs}>{tip}</rect>'
        )

    def vline(self, x: float, cls: str, label: str = "") -> None:
        """A vertical marker across the plot area, labelled at its top."""
        px = number(self.x(x))
        self.parts.append(f'<line class="{cls}" x1="{px}" x2="{px}" y1="{self.top}" y2="{self.height - self.bottom}"/>')
        if label:
            right = self.x(x) > self.left + 0.7 * (self.width - self.left - self.right)
            self.text(
                self.x(x) + (-4 if right else 4), self.top + 12, label, "note", anchor="end" if right else "start"
            )

    def legend(self, entries: Sequence[tuple[str, str]]) -> None:
        """(series class, name) entries in a row above the plot area."""
        x = self.left
        for cls, name in entries:
            self.parts.append(f'<rect class="key {cls}" x="{number(x)}" y="{self.top - 14}" width="10" height="10"/>')
            self.text(x + 14, self.top - 5, name, "tick")
            x += 22 + 6.5 * len(name)

    def svg(self) -> str:
        title = f'<text class="title" x="{self.left}" y="14">{escape(self.title)}</text>' if self.title else ""
        return (
            f'<svg id="{escape(self.id)}" class="figure" width="{self.width}" height="{self.height}" '
            f'viewBox="0 0 {self.width} {self.height}" role="img" '
            f'aria-label="{escape(self.title)}">{title}{"".join(self.parts)}</svg>'
        )
