"""Static plots drawn with plotext: `tunetop check --plot`, `tunetop show RUN`, `tunetop report`.

For a run: its training / validation loss and its gradient norm (R14, R22), each panel with the
run's finding steps marked `x`. The curves are the raw logged values (no smoothing: a static
plot is read for what happened), downsampled exactly as the dashboard downsamples them
(tui.plotting.minmax_downsample, one bucket per braille dot column keeping each bucket's minimum
and maximum), so a one-step spike the dashboard shows is in these plots too.

The live dashboard keeps its own canvas (tui/widgets/plots.py), which is much faster; plotext is
for output that outlives the terminal: CI logs, issue comments, reports. Without a TTY (or with
NO_COLOR set) the output is plain text: plotext's colour codes are stripped.
"""

from __future__ import annotations

import math
import os
import shutil
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

import numpy as np
import plotext as plt

from tui.diagnose.findings import Finding
from tui.logs.model import Run
from tui.plotting import minmax_downsample
from tui.sanitize import clean

if TYPE_CHECKING:
    from tui.check import CheckReport

# (title, series drawn in it, in legend order); the first series present carries the marks
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loss", ("loss", "val_loss")),
    ("gradient norm", ("grad_norm",)),
)
COLORS = {"loss": "blue", "val_loss": "orange", "grad_norm": "magenta"}
MARK = "x"
GUTTER = 10  # columns plotext takes for y ticks and the frame (the plot area is the rest)
MIN_WIDTH = 40
DEFAULT_HEIGHT = 14  # rows of one panel, frame and x ticks included


@dataclass(frozen=True)
class PlotOptions:
    width: int  # columns of one panel
    height: int = DEFAULT_HEIGHT
    color: bool = False


def options_for(out: TextIO, width: int | None = None, height: int | None = None) -> PlotOptions:
    """Sized to the terminal (or `width`); coloured only on a TTY without NO_COLOR."""
    if width is None:
        width = shutil.get_terminal_size(fallback=(100, 24)).columns
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    color = tty and not os.environ.get("NO_COLOR")
    return PlotOptions(max(int(width), MIN_WIDTH), max(int(height or DEFAULT_HEIGHT), 6), color)


def _marks(x: np.ndarray, y: np.ndarray, steps: Iterable[int]) -> tuple[list[float], list[float]]:
    """Where each finding step falls on a curve: the logged value at or just before it (the
    value itself when it is non-finite is no place to draw: the curve's top is used)."""
    finite = y[np.isfinite(y)]
    if finite.shape[0] == 0:
        return [], []
    top = float(finite.max())
    xs: list[float] = []
    ys: list[float] = []
    for step in sorted(set(steps)):
        i = int(np.searchsorted(x, step, side="right")) - 1
        if i < 0:
            i = 0
        value = float(y[i])
        xs.append(float(step))
        ys.append(value if math.isfinite(value) else top)
    return xs, ys


def _panel(run: Run, title: str, names: Sequence[str], steps: list[int], opt: PlotOptions) -> str:
    present = [n for n in names if run.store.count(n)]
    if not present:
        return ""
    plt.clear_figure()
    plt.theme("clear")
    # the size asked for, not clamped to the terminal plotext sees (--width, reports, pipes)
    plt.limit_size(False, False)
    plt.plot_size(opt.width, opt.height)
    buckets = 2 * max(opt.width - GUTTER, 1)  # one bucket per braille dot column, as the dashboard
    legend: list[str] = []
    first: tuple[np.ndarray, np.ndarray] | None = None
    for name in present:
        s = run.store.series(name)
        x = s.steps.astype(np.int64)
        y = s.values.astype(np.float64)
        xs, ys = minmax_downsample(x, y, buckets)
        if xs.shape[0] == 0:
            continue
        # a dense series as a braille line, a sparse one (evaluations) as dots
        dense = xs.shape[0] > opt.width
        # no plotext labels: its legend box is drawn over the top-left of the plot, where an
        # early spike's peak is; the legend goes into the title instead
        plt.plot(
            xs.tolist(),
            ys.tolist(),
            marker="braille" if dense else "dot",
            color=COLORS.get(name, "default"),
        )
        legend.append(f"{name} {'⠤' if dense else '•'}")
        first = first or (x, y)
    if not legend:
        return ""
    if first is not None and steps:
        mx, my = _marks(first[0], first[1], steps)
        if mx:  # drawn last: on top of the curves
            plt.scatter(mx, my, marker=MARK, color="red")
            legend.append(f"finding {MARK}")
    plt.xlabel("step")
    text = plt.build()
    plt.clear_figure()
    # the title is ours, not plotext's (which drops a title wider than the plot): the run id
    # can be long, and it comes from a folder name (clean: no escape sequence gets through)
    heading = clean(f"{title}  ({', '.join(legend)})", limit=max(opt.width, 20))
    return heading + "\n" + (text if opt.color else plt.uncolorize(text))


def plot_run(
    run: Run, findings: Sequence[Finding], opt: PlotOptions, label: str | None = None
) -> str:
    """The run's panels as text, one under the other; '' when it logged none of their series.
    `label` names the run in the titles (default: its id)."""
    steps = [int(f.step) for f in findings if f.step is not None]
    parts = []
    for title, names in PANELS:
        panel = _panel(run, f"{label or run.id}: {title}", names, steps, opt)
        if panel:
            parts.append(panel.rstrip("\n"))
    return "\n".join(parts) + "\n" if parts else ""


def mark_lines(findings: Sequence[Finding], width: int = 100) -> list[str]:
    """What the `x` marks are: the finding kinds and rules at each marked step, wrapped."""
    by_step: dict[int, list[str]] = {}
    for f in findings:
        if f.step is not None:
            by_step.setdefault(int(f.step), []).append(f"{f.kind} {f.rule}")
    if not by_step:
        return []
    text = f"{MARK} marks: " + "; ".join(
        f"step {step} {', '.join(kinds)}" for step, kinds in sorted(by_step.items())
    )
    return textwrap.wrap(clean(text, limit=10_000), width, subsequent_indent="    ")


def write_run(
    run: Run, findings: Sequence[Finding], opt: PlotOptions, out: TextIO, label: str | None = None
) -> None:
    text = plot_run(run, findings, opt, label)
    if not text:
        name = clean(label or run.id)
        out.write(f"\n{name}: no loss or gradient norm logged, nothing to plot\n")
        return
    out.write("\n" + text)
    for line in mark_lines(findings, opt.width):
        out.write(line + "\n")


def flagged(findings: Sequence[Finding], level: str) -> bool:
    """Whether a run is flagged: a finding at or above `level` (check's --fail-on)."""
    from tui.diagnose.findings import severity_rank

    return any(severity_rank(f.severity) >= severity_rank(level) for f in findings)


def write_report_plots(
    report: CheckReport, out: TextIO, opt: PlotOptions, level: str | None = "warning"
) -> int:
    """After `check`'s text: the plots of each flagged run (every run when level is None).
    Returns how many runs were drawn."""
    chosen = [
        r for r in report.runs if r.findings and (level is None or flagged(r.findings, level))
    ]
    if level is None:
        chosen = list(report.runs)
    if not chosen:
        out.write("\nno run flagged at or above the level: nothing to plot\n")
        return 0
    for rep in chosen:
        # a root that is itself a run has the id "."; the path given names it better
        label = report.root if rep.run.id == "." else rep.run.id
        write_run(rep.run, rep.findings, opt, out, label)
    return len(chosen)
