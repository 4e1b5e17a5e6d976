"""Plot widgets: one class per kind of picture, each keeping its inputs and drawing them in
`render()`, cached: a plot is redrawn only when its size, its settings or the version of one of
the runs it shows changed (textual-plotext's "keep the data, replot in one place", with the
canvas of tui.widgets.canvas instead of plotext's for speed).

Order of the work for a curve (tui.plotting): smooth the whole series (incrementally, shared
between plots), cut to the visible steps, downsample to the plot's width keeping each bucket's
minimum and maximum, then scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from tui import sanitize
from tui.engine import StudyPoint
from tui.logs.model import Run
from tui.logs.store import Series
from tui.plotting import (
    SmoothedSeries,
    format_value,
    histogram,
    index_range,
    log_ticks,
    minmax_downsample,
    percentile_range,
    relative_time,
    to_log10,
)
from tui.widgets.canvas import Axes, Canvas, format_step, frame, nice_ticks, step_axis, value_axis

PALETTE = (
    "#4ea1ff",
    "#ffa94d",
    "#69db7c",
    "#f783ac",
    "#b197fc",
    "#3bc9db",
    "#ffd43b",
    "#ff8787",
    "#a9e34b",
    "#e599f7",
)
GUTTER = 8  # y tick labels
RAW_UP_TO = 2  # the faint raw curve is drawn behind the smoothed one for up to this many runs


@dataclass(frozen=True)
class PlotSettings:
    smoothing: float = 0.6  # TensorBoard's EMA weight; 0 = off
    log_y: bool = False
    outlier: bool = False  # y range = 5th-95th percentile (padded) instead of min-max
    x_axis: str = "step"  # "step" | "time" (relative wall time)
    view: tuple[float, float] = (0.0, 1.0)  # zoom window, fractions of the full x range

    def zoomed(self, factor: float) -> PlotSettings:
        """Zoom around the window's centre; a window touching the right end stays there, so a
        zoomed live plot keeps following the newest steps."""
        a, b = self.view
        width = min(1.0, max(1e-4, (b - a) * factor))
        if b >= 1.0:
            return replace(self, view=(max(0.0, 1.0 - width), 1.0))
        c = (a + b) / 2
        a = min(max(0.0, c - width / 2), 1.0 - width)
        return replace(self, view=(a, a + width))

    def panned(self, frac: float) -> PlotSettings:
        a, b = self.view
        width = b - a
        a = min(max(0.0, a + frac * width), 1.0 - width)
        return replace(self, view=(a, a + width))


class SmoothCache:
    """Per-series state shared by all plots, key (run id, metric): the smoothed values and how
    far the series was scanned for a non-finite value. Only series that are drawn get one, so
    memory grows with what is on screen, not with what is loaded."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], SmoothedSeries] = {}
        # (points scanned, first non-finite step): appended points are scanned once
        self._first_bad: dict[tuple[str, str], tuple[int, int | None]] = {}

    def get(self, run_id: str, s: Series, weight: float) -> np.ndarray:
        key = (run_id, s.name)
        item = self._items.get(key)
        if item is None or item.weight != weight:
            item = SmoothedSeries(weight)
            self._items[key] = item
        return item.update(s.steps, s.values)

    def first_non_finite(self, run_id: str, s: Series) -> int | None:
        """The first step whose value is NaN/inf (divergence, R16), scanning only new points."""
        key = (run_id, s.name)
        scanned, found = self._first_bad.get(key, (0, None))
        n = len(s)
        if found is not None and scanned <= n:
            return found
        if scanned > n:  # the series was rewritten (a restart): scan again
            scanned = 0
        bad = np.flatnonzero(~np.isfinite(s.values[scanned:n]))
        found = int(s.steps[scanned + bad[0]]) if bad.shape[0] else None
        self._first_bad[key] = (n, found)
        return found

    def forget(self, keep_runs: set[str]) -> None:
        for items in (self._items, self._first_bad):
            for key in [k for k in items if k[0] not in keep_runs]:
                del items[key]


def run_color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass
class Curve:
    """One series ready to draw: x in plot units, raw and smoothed y (full, not cut)."""

    label: str
    x: np.ndarray
    raw: np.ndarray
    smooth: np.ndarray | None
    color: str
    kind: str = "line"  # line | points


class PlotBase(Widget):
    """Caches its rendered Text by a key of everything it depends on."""

    DEFAULT_CSS = """
    PlotBase { width: 1fr; height: 1fr; min-height: 6; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._key: tuple[Any, ...] | None = None
        self._text: Text = Text("")
        self.renders = 0  # real redraws (tests and the benchmark count them)

    def data_key(self) -> tuple[Any, ...]:
        return ()

    def draw(self, width: int, height: int) -> Text:
        raise NotImplementedError

    def render(self) -> Text:
        w, h = self.size.width, self.size.height
        key = (w, h, *self.data_key())
        if key != self._key:
            self._key = key
            self.renders += 1
            self._text = self.draw(w, h) if w > GUTTER + 4 and h >= 4 else Text("")
        return self._text

    def replot(self) -> None:
        """Inputs changed: draw again on the next frame (if visible)."""
        self._key = None
        self.refresh()


def _empty(title: Text, message: str, width: int) -> Text:
    t = title.copy()
    t.append("\n")
    t.append(message, style="grey50")
    t.truncate(width)
    return t


class MetricPlot(PlotBase):
    """Curves of one or more metrics of one or more runs: `loss` + `val_loss`, `grad_norm`
    (with the p90 clip threshold and the clipped steps), `lr`."""

    def __init__(
        self,
        title: str,
        metrics: tuple[str, ...],
        cache: SmoothCache,
        *,
        smooth: bool = True,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.title = title
        self.smooth = smooth  # a schedule (lr) is drawn as logged: its EMA would mean nothing
        self.metrics = metrics
        self.cache = cache
        self.runs: list[Run] = []
        self.settings = PlotSettings()
        self.extras: dict[str, Any] = {}  # e.g. "p90": {run id: threshold}
        self.extras_version = 0

    def show(self, runs: list[Run], settings: PlotSettings) -> None:
        if [r.id for r in runs] != [r.id for r in self.runs] or settings != self.settings:
            self.runs = list(runs)
            self.settings = settings
            self.refresh()

    def set_extras(self, extras: dict[str, Any]) -> None:
        if extras != self.extras:
            self.extras = extras
            self.extras_version += 1
            self.refresh()

    def data_key(self) -> tuple[Any, ...]:
        return (
            self.settings,
            tuple((r.id, r.store.version) for r in self.runs),
            self.extras_version,
        )

    # -- data ------------------------------------------------------------------------------
    def _x(self, s: Series) -> tuple[np.ndarray, str]:
        if self.settings.x_axis == "time":
            return relative_time(s.times)
        return s.steps, "step"

    def curves(self) -> tuple[list[Curve], str]:
        overlay = len(self.runs) > 1
        # in an overlay, trials of one study are told apart by their own folder name
        parents = {r.id.rsplit("/", 1)[0] for r in self.runs if "/" in r.id}
        same_parent = len(parents) == 1 and all("/" in r.id for r in self.runs)
        short_ids = [r.id.rsplit("/", 1)[-1] if same_parent else r.id for r in self.runs]
        out: list[Curve] = []
        unit = "step"
        for i, run in enumerate(self.runs):
            for j, metric in enumerate(self.metrics):
                s = run.store.series(metric)
                if len(s) == 0:
                    continue
                x, unit = self._x(s)
                if unit != "step" and x.shape[0] > 1 and not np.all(np.diff(x) >= 0):
                    order = np.argsort(x, kind="stable")  # a restarted run's clock
                    x, s = x[order], Series(s.name, s.steps[order], s.values[order], s.times[order])
                color = run_color(i if overlay else j)
                is_val = metric.startswith("val")
                smooth = None
                if self.smooth and self.settings.smoothing > 0 and not is_val:
                    smooth = self.cache.get(run.id, s, self.settings.smoothing)
                label = sanitize.clean(short_ids[i], 30) if overlay else metric
                out.append(Curve(label, x, s.values, smooth, color, "points" if is_val else "line"))
        return out, unit

    # -- drawing ---------------------------------------------------------------------------
    def draw(self, width: int, height: int) -> Text:
        title = Text(self.title, style="bold")
        curves, unit = self.curves()
        if not curves:
            which = ", ".join(self.metrics)
            return _empty(title, f"no {which} logged" if self.runs else "no run selected", width)
        st = self.settings
        pw, ph = width - GUTTER, height - 2
        buckets = 2 * pw  # one bucket per braille dot column
        xmin = min(float(c.x[0]) for c in curves if c.x.shape[0])
        xmax = max(float(c.x[-1]) for c in curves if c.x.shape[0])
        if not (math.isfinite(xmin) and math.isfinite(xmax)):
            return _empty(title, "no wall times logged: press x for steps", width)
        span = (xmax - xmin) or 1.0
        x0, x1 = xmin + st.view[0] * span, xmin + st.view[1] * span
        tr = to_log10 if st.log_y else (lambda a: np.asarray(a, np.float64))
        draws: list[tuple[str, np.ndarray, np.ndarray, str]] = []
        samples: list[np.ndarray] = []
        draw_raw = len(self.runs) <= RAW_UP_TO and st.smoothing > 0 and self.smooth
        for c in curves:
            if st.outlier:
                lo_i, hi_i = index_range(c.x, x0, x1)
                samples.append(c.raw[lo_i:hi_i])
            if c.smooth is None or draw_raw:
                xs, ys = minmax_downsample(c.x, c.raw, buckets, x0, x1)
                faint = c.smooth is not None
                draws.append(("raw" if faint else c.kind, xs, tr(ys), c.color))
            if c.smooth is not None:
                xs, ys = minmax_downsample(c.x, c.smooth, buckets, x0, x1)
                draws.append(("line", xs, tr(ys), c.color))
        ylim = self._ylim(draws, samples, tr)
        if ylim is None:
            return _empty(title, "no finite values in view", width)
        canvas = Canvas(pw, ph, (x0, x1), ylim)
        self._decorate_under(canvas, tr)
        for kind, xs, ys, color in draws:
            if kind == "raw":
                canvas.line(xs, ys, Style(color=color, dim=True))
            elif kind == "points":
                canvas.points(xs, ys, Style(color=color, bold=True))
                if xs.shape[0] <= pw // 2:
                    canvas.markers(xs, ys, "•", Style(color=color, bold=True))
                else:
                    canvas.line(xs, ys, Style(color=color, bold=True))
            else:
                canvas.line(xs, ys, Style(color=color))
        self._decorate_over(canvas, x0, x1, tr)
        axes = Axes()
        if unit == "step":
            axes.xticks, axes.xlabels = step_axis(x0, x1, pw)
        else:
            axes.xticks = nice_ticks(x0, x1, max(2, pw // 12))
            axes.xlabels = [f"{format_value(t)}{unit}" for t in axes.xticks]
        if st.log_y:
            axes.yticks, axes.ylabels = log_ticks(*ylim, max_ticks=max(2, ph // 2))
        else:
            axes.yticks, axes.ylabels = value_axis(*ylim, ph)
        return frame(canvas, axes, self._title(title, curves), width, GUTTER)

    def _ylim(
        self,
        draws: list[tuple[str, np.ndarray, np.ndarray, str]],
        samples: list[np.ndarray],
        tr: Any,
    ) -> tuple[float, float] | None:
        if self.settings.outlier:
            parts = [tr(s) for s in samples if s.shape[0]]
            r = percentile_range(np.concatenate(parts)) if parts else None
            if r is not None:
                return r
        ys = [d[2][np.isfinite(d[2])] for d in draws]
        ys = [y for y in ys if y.shape[0]]
        if not ys:
            return None
        lo = min(float(y.min()) for y in ys)
        hi = max(float(y.max()) for y in ys)
        pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
        return lo - pad, hi + pad

    def _title(self, title: Text, curves: list[Curve]) -> Text:
        seen: set[str] = set()
        for c in curves:
            if c.label in seen:
                continue
            seen.add(c.label)
            title.append("  ")
            title.append("• " if c.kind == "points" else "━ ", style=c.color)
            title.append(c.label)
        st = self.settings
        flags = []
        if st.smoothing > 0 and self.smooth:
            flags.append(f"ema {st.smoothing:g}")
        if st.log_y:
            flags.append("log")
        if st.outlier:
            flags.append("p5-p95")
        if flags:
            title.append("  [" + " ".join(flags) + "]", style="grey50")
        return title

    def _decorate_under(self, canvas: Canvas, tr: Any) -> None:
        """Drawn below the curves: the p90 clip threshold (R23)."""
        p90 = self.extras.get("p90", {})
        for run in self.runs[:1]:  # an overlay shows the first run's threshold only
            v = p90.get(run.id)
            if v is not None and math.isfinite(v) and v > 0:
                canvas.hline(float(tr(np.array([v]))[0]), "red")

    def _decorate_over(self, canvas: Canvas, x0: float, x1: float, tr: Any) -> None:
        """Drawn over the curves: clipped steps (R22) and the first non-finite step."""
        if self.settings.x_axis != "step":
            return  # both marks are placed by step
        top = canvas.ylim[1]
        if "grad_norm" in self.metrics and len(self.runs) == 1:
            self._mark_clipped(canvas, self.runs[0], x0, x1, top, tr)
        for run in self.runs:
            for metric in self.metrics:
                s = run.store.series(metric)
                if not len(s):
                    continue
                step = self.cache.first_non_finite(run.id, s)
                if step is not None and x0 <= step <= x1:
                    canvas.markers(np.array([float(step)]), np.array([top]), "✗", "bold red")
                break

    @staticmethod
    def _mark_clipped(canvas: Canvas, run: Run, x0: float, x1: float, top: float, tr: Any) -> None:
        """An x on the grad_norm curve in each column that holds a clipped step."""
        clipped = run.store.series("clipped")
        if not len(clipped):
            return
        steps = clipped.steps[clipped.values > 0.5]
        if not steps.shape[0]:
            return
        steps = steps[(steps >= x0) & (steps <= x1)]
        cols = np.unique(((steps - x0) / ((x1 - x0) or 1) * canvas.pw).astype(int))
        xs = x0 + (cols + 0.5) * (x1 - x0) / canvas.pw
        gn = run.store.series("grad_norm")
        idx = np.clip(np.searchsorted(gn.steps, xs), 0, max(len(gn) - 1, 0))
        ys = tr(gn.values[idx]) if len(gn) else np.full(xs.shape[0], top)
        canvas.markers(xs, np.where(np.isfinite(ys), ys, top), "x", "red")


class HistogramPlot(PlotBase):
    """Histogram of one run's gradient norms over all its steps (R22), with the p90 mark."""

    def __init__(self, cache: SmoothCache, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.run: Run | None = None
        self.p90: float | None = None

    def show(self, run: Run | None, p90: float | None) -> None:
        if run is not self.run or p90 != self.p90:
            self.run = run
            self.p90 = p90
            self.refresh()

    def data_key(self) -> tuple[Any, ...]:
        r = self.run
        return (None if r is None else (r.id, r.store.version), self.p90)

    def draw(self, width: int, height: int) -> Text:
        title = Text("grad_norm histogram (R22)", style="bold")
        if self.run is None:
            return _empty(title, "no run selected", width)
        s = self.run.store.series("grad_norm")
        if not len(s):
            return _empty(title, "no grad_norm logged (R14: log it every step)", width)
        pw, ph = width - GUTTER, height - 2
        centres, counts = histogram(s.values, pw)
        if counts.shape[0] == 0:
            return _empty(title, "no finite grad_norm values", width)
        lo = float(centres[0] - (centres[1] - centres[0]) / 2) if centres.shape[0] > 1 else 0.0
        hi = float(centres[-1] + (centres[1] - centres[0]) / 2) if centres.shape[0] > 1 else 1.0
        top = float(counts.max()) or 1.0
        canvas = Canvas(pw, ph, (lo, hi), (0.0, top))
        canvas.bars(counts.astype(np.float64), "#4ea1ff")
        title.append(f"  n={len(s)}", style="grey50")
        if self.p90 is not None and math.isfinite(self.p90):
            title.append(f"  p90 clip={format_value(self.p90)} ", style="red")
            title.append("▼", style="red")
            c = int((self.p90 - lo) / ((hi - lo) or 1.0) * pw)
            if 0 <= c < pw:
                canvas.chars[0, c] = ord("▼")
                canvas.color[0, c] = canvas._style_index("red")
        axes = Axes()
        axes.xticks = nice_ticks(lo, hi, max(2, pw // 10))
        axes.xlabels = [format_value(t) for t in axes.xticks]
        axes.yticks, axes.ylabels = value_axis(0.0, top, ph)
        axes.ylabels = [format_step(t) for t in axes.yticks]
        return frame(canvas, axes, title, width, GUTTER)


@dataclass
class StudyAxis:
    param: str | None = None
    points: list[StudyPoint] = field(default_factory=list)
    best_run: str | None = None


class HParamPlot(PlotBase):
    """A study's hyperparameter axis (R5, R16): each trial's best validation value against the
    swept value; log x for learning rates; infeasible trials marked apart in a top lane."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.axis = StudyAxis()
        self.version = 0

    def show(self, axis: StudyAxis) -> None:
        if axis != self.axis:
            self.axis = axis
            self.version += 1
            self.refresh()

    def data_key(self) -> tuple[Any, ...]:
        return (self.version,)

    def draw(self, width: int, height: int) -> Text:
        ax = self.axis
        param = sanitize.clean(ax.param or "?", 40)
        title = Text(f"best value vs {param} (R5, R16)", style="bold")
        if not ax.param:
            return _empty(title, "no single swept hyperparameter in this study", width)
        pts = ax.points
        if not pts:
            return _empty(title, "no trial with a numeric value yet", width)
        xs = np.array([p.value for p in pts], np.float64)
        lr_like = "lr" in ax.param.lower() or "learning_rate" in ax.param.lower()
        log_x = bool((xs > 0).all() and (lr_like or xs.max() / max(xs.min(), 1e-300) >= 100))
        xt = np.log10(xs) if log_x else xs
        lo, hi = float(xt.min()), float(xt.max())
        pad = (hi - lo) * 0.08 or 0.5
        x0, x1 = lo - pad, hi + pad
        feas = [p for p in pts if not p.infeasible and p.best is not None]
        ys = np.array([p.best for p in feas], np.float64)
        if ys.shape[0]:
            y0, y1 = float(ys.min()), float(ys.max())
            ypad = (y1 - y0) * 0.15 or abs(y1) * 0.1 or 1.0
            ylim = (y0 - ypad, y1 + ypad)
        else:
            ylim = (0.0, 1.0)
        pw, ph = width - GUTTER, height - 2
        canvas = Canvas(pw, ph, (x0, x1), ylim)
        lane = ylim[1]  # infeasible trials: drawn in the top row, apart from the others
        for p, x in zip(pts, xt, strict=True):
            if p.infeasible or p.best is None:
                canvas.markers(np.array([x]), np.array([lane]), "✗", "bold red")
            else:
                glyph, style = ("★", "bold yellow") if p.run_id == ax.best_run else ("●", "green")
                canvas.markers(np.array([x]), np.array([p.best]), glyph, style)
        title.append("  ● trial  ★ best  ✗ infeasible (top row)", style="grey50")
        axes = Axes()
        axes.xticks = [float(v) for v in xt]
        axes.xlabels = [format_value(float(v)) for v in xs]
        axes.yticks, axes.ylabels = value_axis(*ylim, ph)
        return frame(canvas, axes, title, width, GUTTER)
