"""Early instability (R13): in the first steps the training loss climbs above where it started.

A healthy run's loss does not end up above its first value once updates begin; a learning rate
too large for the network at initialization (post-LN transformers with Adam and no warmup are
the textbook case) makes the first updates push the loss up, and the run then either recovers
slowly or stalls near chance. Neither shows up as a rise *after a decline* (R12's detector,
instability.py) or as a spike above a recent baseline (there is no baseline yet), so this
detector watches the start of the run on its own.

The window: the points in the first 10% of the planned steps (R13's "early", as DESIGN.md's
phase), at most `max_points` of them; `default_points` when the plan is unknown. The statistic:
the mean of `width` consecutive log-losses against the first one, so a single noisy point is
not enough; its largest value over the window is the rise. It counts when it exceeds both
`min_rise` and `noise_k` noise units plus the amount by which the largest of m means of
`width` noisy points exceeds their typical value (sqrt(2 ln m) / sqrt(width) units). The noise
unit is the robust spread of one point, from the MAD of point-to-point differences after the
first (robust to the few points of the turmoil itself). On flat runs of pure noise whose first
point may be a lucky low one, that statistic's 99.9th percentile was 4.3 units; the post-LN
transformer runs at Adam 0.03 and 0.1 measured 10 to 100 (tests/diagnose/test_early_rise.py).
The verdict is taken when the window has 16, 32, 64, ... points and when it closes, and a
finding once made stays: the same points give the same verdict however they are read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tui.diagnose.robust import MAD_TO_SIGMA

EARLY = 0.1  # R13: early instability is in the first 10% of the total steps (DESIGN.md's phase)


@dataclass(frozen=True)
class EarlyRise:
    start_step: int
    start_value: float
    peak_step: int  # the first step of the `width` points with the highest mean
    peak_value: float  # their mean (geometric: the mean of the logs)
    ratio: float  # peak_value / start_value
    noise: float  # the log-space rise that noise alone could explain
    last_step: int  # the window's last step when decided
    last_value: float  # the loss there


class EarlyRiseDetector:
    def __init__(
        self,
        total_steps: int = 0,
        min_rise: float = 0.03,
        noise_k: float = 6.0,
        width: int = 4,
        min_points: int = 16,
        max_points: int = 512,
        default_points: int = 200,
    ) -> None:
        self.total_steps = total_steps
        self.log_rise = math.log1p(min_rise)
        self.noise_k = noise_k
        self.width = width
        self.min_points = min_points
        self.max_points = max_points
        self.default_points = default_points
        self.reset()

    def reset(self) -> None:
        self.n = 0  # points of the series consumed
        self.steps: list[int] = []
        self.logs: list[float] = []
        self.window_end: float | None = None  # first step past the window
        self.closed = False
        self.next_check = self.min_points
        self.found: EarlyRise | None = None

    def consume(self, steps: np.ndarray, values: np.ndarray, end: int) -> None:
        if self.closed or self.found is not None:
            self.n = end
            return
        for i in range(self.n, end):
            step, v = int(steps[i]), float(values[i])
            if self.window_end is None and self.total_steps:
                self.window_end = step + EARLY * self.total_steps
            past = self.window_end is not None and step >= self.window_end
            if past or not (math.isfinite(v) and v > 0):
                # past the window, or non-finite (divergence, R16, speaks for that)
                self._close()
                break
            self.steps.append(step)
            self.logs.append(math.log(v))
            limit = self.max_points if self.total_steps else self.default_points
            if len(self.logs) >= limit:
                self._close()
                break
            if len(self.logs) >= self.next_check:
                self.next_check *= 2
                self._judge()
                if self.found is not None:
                    break
        self.n = end

    def _close(self) -> None:
        self.closed = True
        if self.found is None:
            self._judge()
        self.steps, self.logs = [], []  # nothing more is needed: memory stays bounded

    def _judge(self) -> None:
        n, w = len(self.logs), self.width
        if n < self.min_points:
            return
        y = np.asarray(self.logs)
        means = np.convolve(y[1:], np.ones(w) / w, mode="valid")  # points 1.. in runs of w
        j = int(np.argmax(means))
        rise = float(means[j] - y[0])
        d = np.diff(y[1:])
        sigma = MAD_TO_SIGMA * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2)
        largest_of_m = math.sqrt(2 * math.log(max(2, means.shape[0]))) / math.sqrt(w)
        noise = sigma * (self.noise_k + largest_of_m)
        if rise > max(self.log_rise, noise):
            self.found = EarlyRise(
                self.steps[0],
                math.exp(y[0]),
                self.steps[1 + j],
                math.exp(float(means[j])),
                math.exp(rise),
                noise,
                self.steps[-1],
                math.exp(float(y[-1])),
            )
