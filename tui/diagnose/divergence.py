"""Divergence (R16): the first NaN/Inf, or a blow-up the loss does not come back from.

A blow-up is the training loss above `factor` x its first finite logged value (DESIGN.md's
infeasibility bar, 5x by default). A non-finite loss is a divergence at once. A blow-up counts
once it has lasted `confirm` logged points and is still going on; should the loss come back
under the bar later, it was a spike (R13), and the divergence is withdrawn. The step reported
is the first bad step of the excursion that led there (DESIGN.md: step = first bad step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Divergence:
    index: int
    step: int
    value: float  # the loss at the first bad step
    first_value: float
    kind: str  # "non-finite" | "blow-up"
    nonfinite_step: int | None


class DivergenceDetector:
    def __init__(self, factor: float = 5.0, confirm: int = 5) -> None:
        self.factor = factor
        self.confirm = confirm
        self.reset()

    def reset(self) -> None:
        self.first: float | None = None
        self.exc_start: int | None = None  # index where the ongoing excursion began
        self.exc_step = 0
        self.exc_value = math.nan
        self.nonfinite: tuple[int, int] | None = None  # (index, step) of the first NaN/Inf
        self.frozen: Divergence | None = None  # set at the first non-finite point
        self.seen = 0

    def consume(self, steps: np.ndarray, values: np.ndarray, start: int, end: int) -> None:
        if end <= start or self.frozen is not None:
            self.seen = max(self.seen, end)
            return
        v = np.asarray(values[start:end], np.float64)
        finite = np.isfinite(v)
        if self.first is None and finite.any():
            self.first = float(v[int(np.argmax(finite))])
        thr = self.factor * self.first if self.first is not None and self.first > 0 else math.inf
        bad = ~finite | (v > thr)
        nf = np.flatnonzero(~finite)
        upto = int(nf[0]) + 1 if nf.shape[0] else v.shape[0]
        good = np.flatnonzero(~bad[:upto])
        if good.shape[0]:
            last_good = int(good[-1])
            self.exc_start = start + last_good + 1 if last_good + 1 < upto else None
        elif self.exc_start is None:
            self.exc_start = start
        if self.exc_start is not None and self.exc_start >= start:
            self.exc_step = int(steps[self.exc_start])
            self.exc_value = float(values[self.exc_start])
        self.seen = max(self.seen, end)
        if nf.shape[0]:
            i = start + int(nf[0])
            self.nonfinite = (i, int(steps[i]))
            self.frozen = self._make("non-finite")

    def _make(self, kind: str) -> Divergence:
        assert self.exc_start is not None
        return Divergence(
            self.exc_start,
            self.exc_step,
            self.exc_value,
            self.first if self.first is not None else math.nan,
            kind,
            self.nonfinite[1] if self.nonfinite else None,
        )

    def current(self) -> Divergence | None:
        """The divergence as the points seen so far show it, or None."""
        if self.frozen is not None:
            return self.frozen
        if self.exc_start is not None and self.seen - self.exc_start >= self.confirm:
            return self._make("blow-up")
        return None
