"""Overfitting (R1): the validation loss has risen for a sustained stretch after its best while
the training loss kept falling.

The run's result is its retrospective best checkpoint (R1), which now lies behind: the finding
says where it is and how far the validation loss has climbed since. "Sustained": the last
MIN_AFTER evaluations (at least) after the best all stand above it by more than the validation
curve's own noise from the best on (robust.noise_sd) and at least MIN_RISE of the best value,
so that a plateau that wobbles, or a rise of a percent, is not overfitting. The training loss
must have fallen over the same stretch, at no evaluation standing well above its level at the
best (a rise of both is instability, R12, not overfitting). Where the best falls in the run
does not matter (not only in the first 10%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tui.diagnose.robust import noise_sd

MIN_AFTER = 3  # evaluations after the best, the last this many all well above it
MIN_RISE = 0.02  # the latest at least 2% above the best ...
Z_RISE = 3.0  # ... and this many noise sd
TRAIN_FALL = 0.02  # the training loss fell at least 2% over the stretch
TRAIN_WIDTH = 5  # training points in a level (median)
TRAIN_RISE = 0.10  # the training loss never more than 10% above its level at the best


@dataclass(frozen=True)
class Overfit:
    best_step: int
    best_value: float
    last_step: int
    last_value: float
    evals_after: int
    train_at_best: float  # median of the last training points up to the best step
    train_last: float  # median of the last training points up to the latest evaluation


def _level(steps: np.ndarray, values: np.ndarray, at: int) -> float | None:
    """The training loss as of step `at`: the median of the last TRAIN_WIDTH finite points up
    to it. O(log n)."""
    j = int(np.searchsorted(steps, at, side="right"))
    seg = np.asarray(values[max(0, j - TRAIN_WIDTH) : j], np.float64)
    seg = seg[np.isfinite(seg)]
    return float(np.median(seg)) if seg.shape[0] else None


def overfitting(
    val_steps: np.ndarray,
    val_values: np.ndarray,
    loss_steps: np.ndarray | None,
    loss_values: np.ndarray | None,
) -> Overfit | None:
    """R1: the verdict, or None. O(validation points + log training points)."""
    v = np.asarray(val_values, np.float64)
    s = np.asarray(val_steps)
    ok = np.isfinite(v)
    if ok.sum() < MIN_AFTER + 2 or loss_steps is None or loss_values is None:
        return None
    v, s = v[ok], s[ok]
    b = int(np.argmin(v))
    after = v[b + 1 :]
    if after.shape[0] < MIN_AFTER:
        return None
    best, last = float(v[b]), float(v[-1])
    # the noise from the best on: the fast fall before it is no noise
    margin = max(Z_RISE * noise_sd(v[b:]), MIN_RISE * abs(best))
    if not (after[-MIN_AFTER:] > best + margin).all():
        return None
    ls = np.asarray(loss_steps)
    lv = np.asarray(loss_values, np.float64)
    at_best = _level(ls, lv, int(s[b]))
    at_last = _level(ls, lv, int(s[-1]))
    if at_best is None or at_last is None or not math.isfinite(at_best):
        return None
    if not at_last < at_best - TRAIN_FALL * abs(at_best):
        return None  # the training loss did not fall: not overfitting
    # ... and fell all along: no climb above its level at the best in between (a training
    # loss that rose with the validation loss and came back is instability, R12)
    for step in s[b + 1 : -1].tolist():
        mid = _level(ls, lv, int(step))
        if mid is not None and mid > at_best + TRAIN_RISE * abs(at_best):
            return None
    return Overfit(
        best_step=int(s[b]),
        best_value=best,
        last_step=int(s[-1]),
        last_value=last,
        evals_after=int(after.shape[0]),
        train_at_best=at_best,
        train_last=at_last,
    )
