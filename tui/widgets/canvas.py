"""A braille plot canvas in numpy: lines, points, markers, bars, axes -> Rich Text.

Why not plotext's canvas: plotext builds its matrix cell by cell in Python (about 37 ms for one
100x20 plot of 400 points on the reference machine, 140 ms at 200x45), so a screen of four plots
following a live run would cost a third of a core (issue 5 allows 10%). Here a line is
rasterised with a few array operations and a whole plot costs a millisecond or two. plotext stays
the anchor the benchmark compares against (tests/bench/bench_app.py).

Coordinates: the plot area is `pw` x `ph` cells; each cell is a 2x4 braille dot block, so the
dot grid is (4*ph) rows x (2*pw) columns. Everything drawn here is numbers and the caller's
labels, which the caller has already sanitised (tui.sanitize): no string from a file reaches
this module unsanitised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from rich.style import Style
from rich.text import Span, Text

from tui.plotting import format_value

# bit of each dot of a braille cell, by (row in cell, column in cell)
_DOT_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], np.uint8)
BLOCKS = " ▁▂▃▄▅▆▇█"  # eighth-cell bars, empty to full


def nice_ticks(lo: float, hi: float, count: int) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) inside [lo, hi], about `count` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo or count < 1:
        return []
    raw = (hi - lo) / max(count, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        v += step
    return ticks


def format_step(v: float) -> str:
    """Step counts as 950, 12k, 1.5M."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    return f"{v:.4g}"


@dataclass
class Canvas:
    pw: int  # plot area width in cells
    ph: int  # plot area height in cells
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    styles: list[Style] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pw = max(self.pw, 1)
        self.ph = max(self.ph, 1)
        self.bits = np.zeros((self.ph, self.pw), np.uint8)
        self.chars = np.zeros((self.ph, self.pw), np.uint32)  # 0 = braille/blank
        self.color = np.full((self.ph, self.pw), -1, np.int16)

    # -- coordinates ---------------------------------------------------------------------
    def _style_index(self, style: Style | str) -> int:
        st = Style.parse(style) if isinstance(style, str) else style
        try:
            return self.styles.index(st)
        except ValueError:
            self.styles.append(st)
            return len(self.styles) - 1

    def _dots(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dot coordinates (column, row) as floats; y is clamped to the plot, so an outlier
        beyond an outlier-ignoring range is drawn against the edge instead of vanishing."""
        x0, x1 = self.xlim
        y0, y1 = self.ylim
        cols = 2 * self.pw - 1
        rows = 4 * self.ph - 1
        cx = (np.asarray(x, np.float64) - x0) * (cols / ((x1 - x0) or 1.0))
        cy = (y1 - np.asarray(y, np.float64)) * (rows / ((y1 - y0) or 1.0))
        return cx, np.clip(cy, 0, rows)

    def _stamp(self, dc: np.ndarray, dr: np.ndarray, style: int) -> None:
        keep = (dc >= 0) & (dc < 2 * self.pw) & (dr >= 0) & (dr < 4 * self.ph)
        dc = dc[keep]
        dr = dr[keep]
        if dc.shape[0] == 0:
            return
        grid = np.zeros((4 * self.ph, 2 * self.pw), np.uint8)
        grid[dr, dc] = 1
        cells = (grid.reshape(self.ph, 4, self.pw, 2) * _DOT_BITS[None, :, None, :]).sum(
            axis=(1, 3), dtype=np.uint8
        )
        on = cells > 0
        self.bits |= cells
        self.chars[on] = 0  # braille drawn later covers a marker drawn earlier
        self.color[on] = style

    # -- drawing -------------------------------------------------------------------------
    def line(self, x: np.ndarray, y: np.ndarray, style: Style | str) -> None:
        """A polyline through the points; a non-finite point breaks the line."""
        cx, cy = self._dots(x, y)
        n = cx.shape[0]
        if n == 0:
            return
        if n == 1:
            self.points(x, y, style)
            return
        ok = np.isfinite(cx) & np.isfinite(cy)
        seg = ok[:-1] & ok[1:]
        xa, ya = cx[:-1][seg], cy[:-1][seg]
        dx, dy = (cx[1:] - cx[:-1])[seg], (cy[1:] - cy[:-1])[seg]
        # one sample per dot along each segment's longer axis (bounded: a segment spans at
        # most the plot, and x is already downsampled to the plot's width)
        steps = np.minimum(np.ceil(np.maximum(np.abs(dx), np.abs(dy))), 8 * (self.pw + self.ph))
        steps = steps.astype(np.int64) + 1
        total = int(steps.sum())
        idx = np.repeat(np.arange(steps.shape[0]), steps)
        offset = np.arange(total) - np.repeat(np.cumsum(steps) - steps, steps)
        t = offset / np.maximum(steps - 1, 1)[idx]
        px = np.rint(xa[idx] + t * dx[idx]).astype(np.int64)
        py = np.rint(ya[idx] + t * dy[idx]).astype(np.int64)
        lone = ok.copy()  # isolated finite points (neighbours non-finite) are drawn as dots
        lone[:-1] &= ~seg
        lone[1:] &= ~seg
        if lone.any():
            px = np.concatenate((px, np.rint(cx[lone]).astype(np.int64)))
            py = np.concatenate((py, np.rint(cy[lone]).astype(np.int64)))
        self._stamp(px, py, self._style_index(style))

    def points(self, x: np.ndarray, y: np.ndarray, style: Style | str) -> None:
        cx, cy = self._dots(x, y)
        ok = np.isfinite(cx) & np.isfinite(cy)
        self._stamp(
            np.rint(cx[ok]).astype(np.int64),
            np.rint(cy[ok]).astype(np.int64),
            self._style_index(style),
        )

    def markers(self, x: np.ndarray, y: np.ndarray, char: str, style: Style | str) -> None:
        """A character per point (a whole cell), drawn over what is there."""
        cx, cy = self._dots(x, y)
        ok = np.isfinite(cx) & np.isfinite(cy)
        c = np.rint(cx[ok]).astype(np.int64) // 2
        r = np.rint(cy[ok]).astype(np.int64) // 4
        keep = (c >= 0) & (c < self.pw) & (r >= 0) & (r < self.ph)
        c, r = c[keep], r[keep]
        self.chars[r, c] = ord(char)
        self.bits[r, c] = 0
        self.color[r, c] = self._style_index(style)

    def hline(self, y: float, style: Style | str, char: str = "┄") -> None:
        """A horizontal rule at y across the cells it does not share with a curve drawn later."""
        if not math.isfinite(y) or not (self.ylim[0] <= y <= self.ylim[1]):
            return
        _, cy = self._dots(np.array([self.xlim[0]]), np.array([y]))
        r = int(np.rint(cy[0])) // 4
        free = self.bits[r] == 0
        self.chars[r, free] = ord(char)
        self.color[r, free] = self._style_index(style)

    def bars(self, heights: np.ndarray, style: Style | str) -> None:
        """One bar per column (heights in y units from ylim[0]), in eighth-cell blocks."""
        h = np.asarray(heights, np.float64)[: self.pw]
        y0, y1 = self.ylim
        eighths = np.clip(np.rint((h - y0) / ((y1 - y0) or 1.0) * self.ph * 8), 0, self.ph * 8)
        st = self._style_index(style)
        for r in range(self.ph):
            level = (self.ph - 1 - r) * 8  # eighths below this row
            fill = np.clip(eighths - level, 0, 8).astype(np.int64)
            cols = np.flatnonzero(fill > 0)
            self.chars[r, cols] = [ord(BLOCKS[f]) for f in fill[cols]]
            self.color[r, cols] = st

    # -- output --------------------------------------------------------------------------
    def rows(self) -> list[Text]:
        codes = np.where(
            self.chars > 0,
            self.chars,
            np.where(self.bits > 0, 0x2800 + self.bits.astype(np.uint32), 0x20),
        ).astype(np.uint32)
        out = []
        for r in range(self.ph):
            line = codes[r].astype("<u4").tobytes().decode("utf-32-le")
            colors = self.color[r]
            change = np.flatnonzero(np.diff(colors)) + 1
            starts = np.concatenate(([0], change))
            ends = np.concatenate((change, [self.pw]))
            spans = [
                Span(int(a), int(b), self.styles[int(colors[a])])
                for a, b in zip(starts, ends, strict=True)
                if colors[a] >= 0
            ]
            out.append(Text(line, spans=spans, no_wrap=True, end=""))
        return out


@dataclass
class Axes:
    """Tick positions (in the canvas' own units) and their labels."""

    yticks: list[float] = field(default_factory=list)
    ylabels: list[str] = field(default_factory=list)
    xticks: list[float] = field(default_factory=list)
    xlabels: list[str] = field(default_factory=list)


def frame(
    canvas: Canvas,
    axes: Axes,
    title: Text,
    width: int,
    gutter: int,
    axis_style: str = "grey50",
) -> Text:
    """The plot with a title row on top, y labels in a left gutter, x labels below."""
    y0, y1 = canvas.ylim
    x0, x1 = canvas.xlim
    label_at: dict[int, str] = {}
    for v, s in zip(axes.yticks, axes.ylabels, strict=True):
        r = round((y1 - v) / ((y1 - y0) or 1.0) * (canvas.ph - 1))
        if 0 <= r < canvas.ph:
            label_at.setdefault(r, s)
    lines = [title.copy()]
    lines[0].truncate(width)
    for r, row in enumerate(canvas.rows()):
        tick = label_at.get(r)
        left = Text(
            (tick or "")[: gutter - 1].rjust(gutter - 1) + ("┤" if tick else "│"),
            style=axis_style,
            no_wrap=True,
            end="",
        )
        lines.append(left + row)
    xrow = [" "] * (gutter + canvas.pw)
    last_end = 0
    for v, s in zip(axes.xticks, axes.xlabels, strict=True):
        c = gutter + round((v - x0) / ((x1 - x0) or 1.0) * (canvas.pw - 1))
        a = max(gutter, min(c - len(s) // 2, gutter + canvas.pw - len(s)))
        if a < last_end + 1 or a < 0:
            continue  # would overlap the previous label
        xrow[a : a + len(s)] = list(s)
        last_end = a + len(s)
    lines.append(Text("".join(xrow), style=axis_style, no_wrap=True, end=""))
    return Text("\n", no_wrap=True, end="").join(lines)


def step_axis(x0: float, x1: float, pw: int) -> tuple[list[float], list[str]]:
    ticks = nice_ticks(x0, x1, max(2, pw // 12))
    return ticks, [format_step(t) for t in ticks]


def value_axis(y0: float, y1: float, ph: int) -> tuple[list[float], list[str]]:
    ticks = nice_ticks(y0, y1, max(2, ph // 3))
    if len(ticks) < 2:
        return ticks, [format_value(t) for t in ticks]
    # as many decimals as the tick step needs, so that neighbours never read the same
    step = abs(ticks[1] - ticks[0])
    if 1e-4 <= step < 1 and max(abs(t) for t in ticks) < 1e5:
        decimals = -math.floor(math.log10(step))
        return ticks, [f"{t:.{decimals}f}" for t in ticks]
    return ticks, [format_value(t) for t in ticks]
