"""R7: hand-made piecewise learning-rate schedules.

The playbook's default is linear or cosine decay; a piecewise schedule driven by watching the
validation curve is to be avoided, while an automated, reproducible rule is acceptable. So a
run is flagged when its `lr` series holds two or more sudden drops between flat stretches AND
their factors are uneven. Drops by one constant factor are what automated rules make: StepLR
(a fixed period), and ReduceLROnPlateau (a plateau of the validation metric, so at irregular
steps; its last drop may be smaller where the rate is clamped at min_lr), which R7 accepts; a
MultiStepLR's milestones cannot be told from a plateau rule's by the lr series alone, so they
pass too. Warmup (a rise),
linear and cosine decay (small, steady changes between logged points) are never drops here.
"""

from __future__ import annotations

import numpy as np

from tui.diagnose.findings import Finding

DROP_RATIO = 0.8  # a drop: the rate falls below 80% of its value in one logged step
FLAT_TOL = 0.01  # a flat stretch: the rate moves less than 1% between logged points
INTERVAL_SPREAD = 1.25  # intervals between drops differing more than 25% are irregular
FACTOR_SPREAD = 0.10  # drop factors differing more than 10% (relative) are irregular


def _drop_indices(lr: np.ndarray) -> np.ndarray:
    """Indices i where lr[i+1] is a sudden drop from lr[i] between flat stretches: judged on
    lr[i-1..i+2], so a drop at the last point waits for the point after it."""
    if lr.size < 3:
        return np.empty(0, np.int64)
    ratio = lr[1:] / lr[:-1]
    i = np.flatnonzero(ratio[:-1] < DROP_RATIO)  # ratio[i + 1] must exist
    before = np.ones(i.size, np.bool_)
    inner = i > 0
    before[inner] = np.abs(ratio[i[inner] - 1] - 1.0) <= FLAT_TOL
    after = np.abs(ratio[i + 1] - 1.0) <= FLAT_TOL
    return i[before & after]


def _one_per_step(steps: np.ndarray, lr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The last value of each run of equal steps: a step logged twice (two files holding the
    same history) is one point, not a flat stretch between the drops of a decay's tail."""
    if steps.shape[0] < 2:
        return steps, lr
    keep = np.r_[steps[1:] != steps[:-1], True]
    return steps[keep], lr[keep]


def find_drops(steps: np.ndarray, lr: np.ndarray) -> list[tuple[int, float]]:
    """(step, factor) of each sudden drop between flat stretches of the lr series."""
    ok = np.isfinite(lr) & (lr > 0)
    steps, lr = _one_per_step(np.asarray(steps)[ok], lr[ok].astype(np.float64))
    return [(int(steps[i + 1]), float(lr[i + 1] / lr[i])) for i in _drop_indices(lr).tolist()]


class DropTracker:
    """find_drops over a growing series in O(new points) per call: the same drops whether the
    series arrives at once or point by point (the last 3 points are kept as context)."""

    CONTEXT = 3

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.drops: list[tuple[int, float]] = []
        self._steps = np.empty(0, np.int64)
        self._values = np.empty(0, np.float64)

    def consume(self, steps: np.ndarray, values: np.ndarray, start: int, end: int) -> None:
        new_values = np.asarray(values[start:end], np.float64)
        ok = np.isfinite(new_values) & (new_values > 0)
        if not ok.any():
            return
        s = np.concatenate((self._steps, np.asarray(steps[start:end])[ok]))
        v = np.concatenate((self._values, new_values[ok]))
        ctx = self._steps.size
        if ctx and int(s[ctx]) == int(self._steps[-1]):
            ctx -= 1  # the last context point is logged again: its new value is the point
        s, v = _one_per_step(s, v)
        for i in _drop_indices(v).tolist():
            if i + 2 >= ctx:  # lr[i + 2] is new: this drop could not be judged before
                self.drops.append((int(s[i + 1]), float(v[i + 1] / v[i])))
        self._steps, self._values = s[-self.CONTEXT :], v[-self.CONTEXT :]


def hand_made_schedule(steps: np.ndarray, lr: np.ndarray) -> Finding | None:
    return finding_from_drops(find_drops(steps, lr))


def finding_from_drops(drops: list[tuple[int, float]]) -> Finding | None:
    if len(drops) < 2:
        return None
    at = np.array([s for s, _ in drops], dtype=np.float64)
    factors = np.array([f for _, f in drops])
    intervals = np.diff(np.concatenate(([0.0], at)))
    # the first interval of MultiStep-like rules may differ (a delay); judge the rest when
    # there are enough drops to tell
    judged = intervals[1:] if intervals.size >= 3 else intervals
    irregular_intervals = judged.max() > INTERVAL_SPREAD * max(judged.min(), 1.0)
    if not _uneven(factors):
        return None  # one constant factor: an automated rule (StepLR, ReduceLROnPlateau), R7
    where = ", ".join(f"{s} (x{f:.2g})" for s, f in drops[:6])
    more = f" and {len(drops) - 6} more" if len(drops) > 6 else ""
    why = "uneven factors and intervals" if irregular_intervals else "uneven factors"
    return Finding(
        "hand_made_schedule",
        f"lr drops at steps {where}{more}: {why}, a hand-made piecewise schedule (R7); "
        "prefer linear or cosine decay, or an automated, reproducible rule",
        step=drops[0][0],
        evidence={"drops": [{"step": s, "factor": f} for s, f in drops]},
    )


def _uneven(factors: np.ndarray) -> bool:
    """Drop factors differing by more than FACTOR_SPREAD, a smaller last drop excepted when
    the others share one factor (ReduceLROnPlateau clamping the rate at its min_lr)."""

    def spread(f: np.ndarray) -> bool:
        return bool((f.max() - f.min()) > FACTOR_SPREAD * f.mean())

    if not spread(factors):
        return False
    head, last = factors[:-1], factors[-1]
    return not (head.size >= 2 and not spread(head) and last > head.max())
