"""The retrospective best point of a run (R1) and where it falls (R3)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tui.logs.model import Run
from tui.logs.store import RunStore

EARLY_FRACTION = 0.1  # R3: best in the first 10% of training
LATE_FRACTION = 0.75  # R3: best in the last 25%
FINISHED_FRACTION = 0.9  # R3 is judged only once the run has reached 90% of its total steps
MIN_EVALS = 3  # and has at least this many finite validation points


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
    fraction = (step + 1) / total if total > 0 else None
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
