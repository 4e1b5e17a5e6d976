"""Unstable training (R12, R13): the smoothed training loss trends up after a steady decline.

Smoothing: the median of each complete block of points, in log space (robust to spikes
shorter than half a block). Blocks hold about 1/`blocks_per_run` of the run's planned points
(total steps over the logging interval of its first points; at least `min_block` points), so
that the judgement does not depend on the run's length or logging rate. The loss must first
have declined (the running minimum of the block medians at least `min_decline` below the
first block, two blocks or more in); then the last `persist` blocks must all lie above that
minimum by more than the rise threshold, and the later half of those blocks must be higher on
average than the earlier half by more than `noise_k` times the noise of that difference: a rise
that is still rising, not a spike that is recovering (whose tail is flat or falling).
The rise threshold is the larger of `min_rise` and the noise of a block median times
(`noise_k` + sqrt(2 ln blocks)): the minimum of many noisy medians lies about
sqrt(2 ln blocks) noise units below their typical value, so a long flat noisy run is not
mistaken for a rising one. The step reported is the minimum before the rise (DESIGN.md), even
though the rise is confirmed later; evidence.phase is `early` when it lies in the first 10% of
the total steps (R13), else `mid`. One finding per run.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from dataclasses import dataclass

import numpy as np

from tui.diagnose.robust import MAD_TO_SIGMA, log_or_nan


@dataclass(frozen=True)
class Rise:
    min_step: int  # where the rise begins: the smoothed minimum before it
    min_value: float
    first_value: float  # the smoothed loss at the start
    confirm_step: int  # the last step of the block that confirmed it
    confirm_value: float  # the smoothed loss there
    min_index: int


class InstabilityDetector:
    def __init__(
        self,
        total_steps: int = 0,
        min_block: int = 8,
        blocks_per_run: int = 200,
        persist: int = 6,
        min_rise: float = 0.2,
        min_decline: float = 0.1,
        noise_k: float = 3.0,
    ) -> None:
        self.total_steps = total_steps
        self.min_block = min_block
        self.blocks_per_run = blocks_per_run
        self.persist = persist
        self.log_rise = math.log1p(min_rise)
        self.log_decline = math.log1p(min_decline)
        self.noise_k = noise_k
        self.reset()

    def reset(self) -> None:
        self.block = 0  # decided on the first `min_block` points
        self.nblocks = 0  # complete blocks consumed
        self.first: float | None = None
        self.min = math.inf
        self.argmin_block = -1
        self.mad_sum = 0.0
        self.recent: deque[float] = deque(maxlen=self.persist)
        self.above = 0
        self.found: Rise | None = None

    def _block_size(self, steps: np.ndarray) -> int:
        """Points per block: ~1/blocks_per_run of the planned points, from the logging
        interval of the first `min_block` points (min_block when the plan is unknown)."""
        k = self.min_block - 1
        interval = max(1.0, float(steps[k] - steps[0]) / k)
        planned = self.total_steps / interval
        return int(min(4096, max(self.min_block, round(planned / self.blocks_per_run))))

    def consume(self, steps: np.ndarray, values: np.ndarray, end: int) -> None:
        if not self.block:
            if end < self.min_block:
                return
            self.block = self._block_size(steps)
        b = self.block
        nb = end // b
        if nb <= self.nblocks or self.found is not None:
            return
        lo, hi = self.nblocks * b, nb * b
        y = log_or_nan(values[lo:hi]).reshape(-1, b)
        enough = np.isfinite(y).sum(axis=1) * 2 >= b
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(y, axis=1)
            mad = np.nanmedian(np.abs(y - med[:, None]), axis=1)
        for k in range(med.shape[0]):
            j = self.nblocks + k
            if not enough[k]:  # a diverged stretch: divergence (R16) speaks for it
                self.recent.clear()
                self.above = 0
                continue
            s = float(med[k])
            self.mad_sum += float(mad[k])
            if self.first is None:
                self.first = s
            if s < self.min:
                self.min, self.argmin_block = s, j
                self.above = 0
            self.recent.append(s)
            sigma_b = 1.25 * MAD_TO_SIGMA * (self.mad_sum / (j + 1)) / math.sqrt(b)
            thr = max(self.log_rise, sigma_b * (self.noise_k + math.sqrt(2 * math.log(j + 1))))
            self.above = self.above + 1 if s - self.min > thr else 0
            declined = self.first - self.min >= self.log_decline and self.argmin_block >= 2
            if declined and self.above >= self.persist:
                r = list(self.recent)
                h = len(r) // 2
                # still rising, by more than the noise of a difference of two means of h
                # block medians (a spike that recovers slowly, R13, has a flat or falling tail)
                if sum(r[-h:]) / h - sum(r[:h]) / h > self.noise_k * sigma_b * math.sqrt(2 / h):
                    mi = self.argmin_block * b + b // 2
                    last = (j + 1) * b - 1
                    self.found = Rise(
                        int(steps[mi]),
                        math.exp(self.min),
                        math.exp(self.first),
                        int(steps[last]),
                        math.exp(s),
                        mi,
                    )
                    break
        self.nblocks = nb
