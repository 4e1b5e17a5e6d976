"""Spikes among a series' first points (R13), where the block baselines of spikes.py have no
window yet: the whole of a sparsely logged run (a fine-tune logging every 100-500 steps has
32 points or fewer), and the start of every other.

Each point from the 4th on is judged against the points just before it (up to EARLY_WINDOW,
earlier spikes left out): a spike stands above the last LOCAL of them and far above their
median, both statistically (robust z over the window's noise: the smaller of its MAD and its
second differences', so that a still-falling start is trend, not noise) and practically
(EARLY_RATIO times the median for positive losses; for losses of either sign, such as a PPO
objective, LINEAR_OVER times the largest magnitude among the last points). The points that
follow a spike while they stay elevated are the same episode. A spike's points, and any point
that clears the spike bar, reported or not (not above the points before it), are left out of
the later windows here and handed to spikes.py to be left out of its baselines, so that an
early spike hides no later one. A point's verdict uses only the points before it, so it does
not depend on how the points arrive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tui.diagnose.robust import MAD_TO_SIGMA, noise_sd

EARLY_WINDOW = 12  # points before a point that it is judged against
EARLY_MIN = 3  # finite points the judgement needs
D2_MIN = 5  # points for a noise estimate from second differences
LOCAL = 5  # the last points before it: its level (median) and the height to clear (maximum)
EARLY_RATIO = 2.0  # a spike: this many times the window's median (positive series; at least)
EARLY_Z = 6.0  # and this robust z over the window's spread
RELEASE_Z = 3.0  # the spike goes on while points stay this far out (and half the ratio)
LINEAR_OVER = 3.0  # a series of either sign: this many times the window's largest magnitude
SIGMA_FLOOR = 0.01  # smallest spread: 1% (log units, or of the median's size)


@dataclass(frozen=True)
class EarlySpike:
    start: int  # series index of the spike's first point
    index: int  # the point that opened it (the same: an early spike opens on its own)
    value: float
    baseline: float  # the window's median, in the series' units
    ratio: float | None
    z: float


class EarlyJudge:
    """Judges points EARLY_MIN .. limit-1 of a series, one at a time, as they arrive."""

    def __init__(self, limit: int, ratio: float = 2.0) -> None:
        self.limit = limit
        self.ratio = max(EARLY_RATIO, ratio)
        self.reset()

    def reset(self) -> None:
        self.next = 0  # the next index to judge
        self.left_out: set[int] = set()  # elevated points (never in a later window)
        self.open_start: int | None = None  # the open episode's first index
        self.open_last = -1  # its last elevated index
        self.episodes: list[tuple[int, int]] = []  # closed (start, last elevated index)

    def consume(self, values: np.ndarray, end: int) -> list[EarlySpike]:
        out: list[EarlySpike] = []
        stop = min(end, self.limit)
        while self.next < stop:
            i = self.next
            self.next += 1
            spike = self._judge(values, i)
            if spike is not None:
                out.append(spike)
        if self.next >= self.limit and self.open_start is not None:
            self._close()
        return out

    def closed_through(self, end: int) -> list[tuple[int, int]]:
        """Episodes (start, last elevated index), the open one included, for spikes.py."""
        spans = list(self.episodes)
        if self.open_start is not None:
            spans.append((self.open_start, self.open_last))
        return [s for s in spans if s[0] < end]

    def _close(self) -> None:
        assert self.open_start is not None
        self.episodes.append((self.open_start, self.open_last))
        self.open_start = None

    def _judge(self, values: np.ndarray, i: int) -> EarlySpike | None:
        y = float(values[i])
        prior = [j for j in range(max(0, i - EARLY_WINDOW), i) if j not in self.left_out]
        w = np.asarray(values[prior], np.float64) if prior else np.empty(0)
        w = w[np.isfinite(w)]
        if w.shape[0] < EARLY_MIN or not math.isfinite(y):
            if self.open_start is not None:
                self._close()
            return None
        log = bool((w > 0).all() and y > 0)
        tw = np.log(w) if log else w
        ty = math.log(y) if log else y
        near = tw[-LOCAL:]  # the level just before the point (a falling start lags less)
        med = float(np.median(near))
        # the noise: the smaller of the window's MAD and its second differences' (a
        # still-falling start is trend, not noise; on few independent points the MAD is the
        # steadier), the practical bars below guarding against a small sample's luck
        mad = MAD_TO_SIGMA * float(np.median(np.abs(tw - np.median(tw))))
        floor = SIGMA_FLOOR * (1.0 if log else max(abs(med), 1e-12))
        d2 = noise_sd(tw) if tw.shape[0] >= D2_MIN else mad  # one or two second differences
        sigma = max(min(mad, d2), floor)  # say nothing
        d = ty - med
        if log:
            bar = math.log(self.ratio)
        else:
            # either sign (a PPO or GRPO objective): the median says nothing of the scale; the
            # point must stand LINEAR_OVER times above the largest magnitude of the whole window
            # (an objective that swings to -0.03 and back makes +0.037 no spike, however still
            # its last few points were)
            bar = LINEAR_OVER * float(np.abs(tw).max()) - med
        z = d / sigma
        elevated = d > 0.5 * bar and z > RELEASE_Z
        if self.open_start is not None:
            if elevated:
                self.open_last = i
                self.left_out.add(i)
                return None
            self._close()
        if not (elevated and d > bar and z > EARLY_Z):
            return None
        self.left_out.add(i)  # reported or not, kept out of later windows
        if not ty > float(near.max()):
            return None
        self.open_start, self.open_last = i, i
        baseline = math.exp(med) if log else med
        ratio = y / baseline if baseline > 0 else None
        return EarlySpike(i, i, y, baseline, ratio, z)
