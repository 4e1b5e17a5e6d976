"""The retrospective best point of a run (R1) and where it falls (R3)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tui.diagnose.robust import noise_sd
from tui.logs.model import Run
from tui.logs.store import RunStore

EARLY_FRACTION = 0.1  # R3: best in the first 10% of training
LATE_FRACTION = 0.75  # R3: best in the last 25%
FINISHED_FRACTION = 0.9  # R3 is judged only once the run has reached 90% of its total steps
MIN_EVALS = 3  # and has at least this many finite validation points
FLAT_Z = 3.0  # a gain after the 75% line within this many noise sd ...
FLAT_REL = 0.01  # ... or 1% of the best value is no gain: the curve was flat by then
RESUMED_GAPS = 2  # a first logged step further than this many logging intervals from 0


def series_min(store: RunStore, name: str) -> tuple[float, int, int] | None:
    """(lowest finite value, its step, finite count) of a series; the first of equal minima."""
    if not store.has(name):
        return None
    s = store.series(name)
    v = np.asarray(s.values, np.float64)
    ok = np.isfinite(v)
    if not ok.any():
        return None
    i = int(np.flatnonzero(ok)[np.argmin(v[ok])])
    return float(v[i]), int(s.steps[i]), int(ok.sum())


def best_of(store: RunStore) -> tuple[str, int, float] | None:
    """(metric, step, value): the lowest finite val_loss (R1), else the lowest finite loss."""
    for name in ("val_loss", "loss"):
        m = series_min(store, name)
        if m is not None:
            return name, m[1], m[0]
    return None


def best_point(run: Run) -> dict[str, Any] | None:
    """R1: {"metric", "step", "value", "fraction": (step + 1) / total_steps} or None."""
    best = best_of(run.store)
    if best is None:
        return None
    metric, step, value = best
    total = run.total_steps
    fraction = span_fraction(step, 0, total) if total > 0 else None
    return {"metric": metric, "step": step, "value": value, "fraction": fraction}


def r3_side(fraction: float) -> str | None:
    """R3: "early" (first 10%), "late" (last 25%) or None."""
    if fraction <= EARLY_FRACTION:
        return "early"
    if fraction > LATE_FRACTION:
        return "late"
    return None


class RunningBest:
    """Streaming minimum of one series (finite values only; the first of equal minima)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.value = np.inf
        self.step: int | None = None
        self.count = 0  # finite points
        self.last_step: int | None = None

    def consume(self, steps: np.ndarray, values: np.ndarray, start: int, end: int) -> None:
        if end <= start:
            return
        v = np.asarray(values[start:end], np.float64)
        ok = np.isfinite(v)
        self.last_step = int(steps[end - 1])
        if not ok.any():
            return
        self.count += int(ok.sum())
        i = int(np.flatnonzero(ok)[np.argmin(v[ok])])
        if v[i] < self.value:
            self.value, self.step = float(v[i]), int(steps[start + i])


def log_interval(steps: np.ndarray) -> int:
    """The logging interval in steps: the median gap of the first 16 points (1 for fewer
    than 2)."""
    s = np.asarray(steps[:16], np.int64)
    return max(1, int(np.median(np.diff(s)))) if s.shape[0] >= 2 else 1


def span_origin(steps: np.ndarray) -> int:
    """Where a run's own span begins: 0, or for a run resumed from a checkpoint whose log
    starts far from 0 (140,749 with points every 10 steps), one logging interval before its
    first point. The interval is the median gap of the first 16 points."""
    if len(steps) < 2:
        return 0
    gap = log_interval(steps)
    first = int(steps[0])
    return first - gap if first > RESUMED_GAPS * gap else 0


def span_fraction(step: int, origin: int, total: int) -> float:
    """(step + 1) / total over the run's own span [origin, total)."""
    return min(1.0, (step - origin + 1) / max(1, total - origin))  # 1-based steps end at total


def flat_since_late_line(
    steps: np.ndarray, values: np.ndarray, origin: int, total: int
) -> tuple[bool, float, float]:
    """R3's late side needs the curve to still be improving: (flat, gain, noise), where gain is
    how far the best lies below the lowest value logged before the 75% line of the span, and
    flat says it is within the curve's noise (second differences over the span's second half)
    or 1% of the best. No point before the line:
    not flat."""
    v = np.asarray(values, np.float64)
    s = np.asarray(steps)
    ok = np.isfinite(v)
    v, s = v[ok], s[ok]
    line = origin + LATE_FRACTION * (total - origin)
    before = v[s + 1 <= line]
    if before.shape[0] == 0 or v.shape[0] == 0:
        return False, math.inf, 0.0
    gain = float(before.min() - v.min())
    # the noise near the end, where the gain is judged: a sparse curve's early bend would
    # pass for noise in its second differences
    late = v[s + 1 > origin + 0.5 * (total - origin)]
    sigma = noise_sd(late if late.shape[0] >= 3 else v)
    return gain <= max(FLAT_Z * sigma, FLAT_REL * abs(float(v.min()))), gain, sigma
