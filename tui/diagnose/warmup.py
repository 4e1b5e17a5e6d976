"""Warmup length (R21): an LR ramp from near 0 to the peak, or the warmup given in hparams.

R21: needing warmup longer than 5% of max_train_steps suggests increasing max_train_steps;
tunetop says info over 5% of the run's total steps, and warning only over 25% or when the
warmup never finishes (the LR never reaches its base value within the run): the standard 10%
warmup of fine-tuning recipes is info, not a reason for `check` to fail (DESIGN.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

INFO_SHARE = 0.05
WARNING_SHARE = 0.25
NEAR_ZERO = 0.1  # a ramp starts at or below 10% of its peak, or ...
LINEAR_TOL = 0.1  # ... is a line through 0 at step -1 (within 10%), logged from a later step
MIN_RISES = 3  # and rises over at least this many logged points, or ...
# ... fewer (a run logging every 500 steps shows its warmup in one or two rises) where the points
# lie on a line through 0 at step -1 within 2%: a linear warmup and hardly anything else
SPARSE_TOL = 0.02
REACHED = 0.99  # the warmup ends where the ramp first reaches 99% of its peak

WARMUP_KEYS = (
    "warmup_steps",
    "schedule.warmup_steps",
    "num_warmup_steps",
    "warmup",
    "lr_warmup_steps",
    "scheduler.warmup_steps",
)
RATIO_KEYS = ("warmup_ratio", "schedule.warmup_ratio")


def warmup_from_hparams(hparams: dict[str, Any], total_steps: int) -> float | None:
    """Warmup steps given in the hyperparameters (warmup_ratio x total for HF), or None."""
    for key in WARMUP_KEYS:
        v = hparams.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and v > 0 and v == int(v):
            return float(v)
    for key in RATIO_KEYS:
        v = hparams.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 1 and total_steps:
            return float(v) * total_steps
    return None


class RampTracker:
    """Streaming: the initial LR ramp (strictly rising values from the first point)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.first: float | None = None
        self.first_step = 0
        self.prev = math.nan
        self.peak = math.nan
        self.peak_step = 0
        self.reach_step = 0  # the first step at REACHED x the peak
        self.first_idx = 0  # series index of the ramp's first point
        self.rises = 0
        self.done = False
        self.last_step = 0

    def consume(self, steps: np.ndarray, values: np.ndarray, start: int, end: int) -> None:
        if end <= start:
            return
        self.last_step = int(steps[end - 1])
        if self.done:
            return
        v = np.asarray(values[start:end], np.float64)
        i0 = 0
        if self.first is None:
            self.first, self.first_step = float(v[0]), int(steps[start])
            self.first_idx = start
            self.prev, self.peak, self.peak_step = self.first, self.first, self.first_step
            i0 = 1
        rest = v[i0:]
        if rest.shape[0] == 0:
            return
        prev = np.concatenate(([self.prev], rest[:-1]))
        stop = np.flatnonzero(~(rest > prev))
        n = int(stop[0]) if stop.shape[0] else rest.shape[0]
        if n:
            self.rises += n
            self.peak = float(rest[n - 1])
            peak_idx = start + i0 + n - 1
            self.peak_step = int(steps[peak_idx])
            self.prev = self.peak
            # the ramp's values rise strictly: a binary search finds where it reached 99%
            ramp = np.asarray(values[self.first_idx : peak_idx + 1], np.float64)
            k = int(np.searchsorted(ramp, REACHED * self.peak, side="left"))
            self.reach_step = int(steps[self.first_idx + min(k, ramp.shape[0] - 1)])
        if stop.shape[0]:
            self.done = True

    def _from_zero(self, tol: float = LINEAR_TOL) -> bool:
        """A linear ramp from 0 logged from a later step (detectron2 logs iteration 19 first:
        1.6e-5 of a ramp to 8.3e-5 at 99): the values stand in the ratio of their steps."""
        if self.peak_step <= self.first_step or self.first is None:
            return False
        expect = (self.first_step + 1) / (self.peak_step + 1)
        return abs(self.first / self.peak - expect) <= tol * expect

    def warmup_steps(self) -> tuple[float, bool] | None:
        """(ramp length in steps, finished?) when the LR series shows a warmup ramp."""
        if self.first is None or not math.isfinite(self.peak):
            return None
        if self.rises < MIN_RISES and not (self.rises >= 1 and self._from_zero(SPARSE_TOL)):
            return None
        if not (self.peak > 0 and (self.first <= NEAR_ZERO * self.peak or self._from_zero())):
            return None
        # steps are 0-based and the ramp starts with the run: its length is the step where it
        # reached 99% of its peak (a linear ramp logged every 20 steps reaches 99.9% at 999
        # and its peak at 1019)
        end = self.reach_step
        return float(max(end, end - self.first_step)), self.done


def warmup_severity(share: float, finished: bool = True) -> str | None:
    """R21's severity for a warmup taking `share` of the run; `finished`: the LR reached its
    base value within the run."""
    if share > WARNING_SHARE or (not finished and share > INFO_SHARE):
        return "warning"
    if share > INFO_SHARE:
        return "info"
    return None
