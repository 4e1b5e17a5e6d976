"""Robust, streaming-friendly statistics shared by the detectors.

Baselines are computed on a fixed block grid so that a point's verdict depends only on the
points before it, never on how the points were split into updates: point i is judged against
the window of `window` points that ends where i's block (of `block` points) begins. One block's
baseline costs O(window) and serves `block` points, so the cost is O(window / block) per point:
constant, amortized (vectorized over all the blocks a chunk touches).
"""

from __future__ import annotations

import math

import numpy as np

MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution times this is its standard deviation
Q90_TO_SIGMA = 1.2816  # a normal distribution's 90th percentile is this many sd above its median


def log_or_nan(values: np.ndarray) -> np.ndarray:
    """log(v) where v is finite and > 0, else NaN (float64)."""
    v = np.asarray(values, dtype=np.float64)
    out = np.full(v.shape, np.nan)
    ok = np.isfinite(v) & (v > 0)
    out[ok] = np.log(v[ok])
    return out


def block_baselines(
    y: np.ndarray, first_block: int, last_block: int, block: int, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For blocks b in [first_block, last_block]: (median, robust sigma, finite count, max)
    of y[max(0, b*block - window) : b*block]. NaNs in y are ignored. Vectorized.

    The robust sigma is the larger of the MAD's and the upper tail's ((q90 - median) / 1.2816,
    the same for a normal): minibatch losses are right-skewed (a batch holding a few hard or
    heavy-tailed examples), and a jump is judged against the noise on the side it goes (R13:
    ordinary minibatch noise is not a spike)."""
    nb = last_block - first_block + 1
    med = np.full(nb, np.nan)
    sig = np.full(nb, np.nan)
    top = np.full(nb, np.nan)
    cnt = np.zeros(nb, np.int64)
    if nb <= 0:
        return med, sig, cnt, top
    blocks = np.arange(first_block, last_block + 1)
    ends = blocks * block
    full = ends >= window
    # partial windows at the start of a series (few blocks): one at a time
    for k in np.flatnonzero(~full).tolist():
        w = y[: ends[k]]
        w = w[np.isfinite(w)]
        cnt[k] = w.shape[0]
        if cnt[k]:
            m = float(np.median(w))
            med[k] = m
            sig[k] = max(
                MAD_TO_SIGMA * float(np.median(np.abs(w - m))),
                (float(np.quantile(w, 0.9)) - m) / Q90_TO_SIGMA,
            )
            top[k] = float(w.max())
    idx = np.flatnonzero(full)
    if idx.shape[0]:
        lo = int(ends[idx[0]]) - window
        hi = int(ends[idx[-1]])
        windows = np.lib.stride_tricks.sliding_window_view(y[lo:hi], window)[::block]
        windows = windows[: idx.shape[0]]
        m, s, c, t = _row_stats(windows)
        med[idx], sig[idx], cnt[idx], top[idx] = m, s, c, t
    return med, sig, cnt, top


def _quantile_sorted(srt: np.ndarray, c: np.ndarray, q: float) -> np.ndarray:
    """np.quantile's linear interpolation at q over the first c[i] values of each sorted row."""
    pos = (c - 1) * q
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(c - 1, 0))
    lo = np.maximum(lo, 0)
    a = np.take_along_axis(srt, lo[:, None], 1)[:, 0]
    b = np.take_along_axis(srt, hi[:, None], 1)[:, 0]
    f = pos - np.floor(pos)
    if q == 0.5:  # as np.median: the mean of the two middle values
        return np.where(f == 0, a, (a + b) / 2)
    d = b - a  # as numpy's linear interpolation (_lerp), bit for bit
    return np.where(f >= 0.5, b - d * (1 - f), a + d * f)


def _row_stats(
    windows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(median, robust sigma, finite count, max) of each row, NaNs ignored; NaN where a row
    has no finite value. Sorting puts NaNs last, so one sort serves median, q90 and max (the
    nan-aware numpy functions are an order of magnitude slower on many short rows)."""
    srt = np.sort(windows, axis=1)
    c = np.isfinite(srt).sum(axis=1)
    empty = c == 0
    cc = np.maximum(c, 1)
    with np.errstate(invalid="ignore"):
        m = _quantile_sorted(srt, cc, 0.5)
        dev = np.sort(np.abs(srt - m[:, None]), axis=1)
        s = np.maximum(
            MAD_TO_SIGMA * _quantile_sorted(dev, cc, 0.5),
            (_quantile_sorted(srt, cc, 0.9) - m) / Q90_TO_SIGMA,
        )
        t = np.take_along_axis(srt, (cc - 1)[:, None], 1)[:, 0]
    m, s, t = (np.where(empty, np.nan, a) for a in (m, s, t))
    return m, s, c.astype(np.int64), t


class EpisodeTracker:
    """Hysteresis: an episode opens on a point that `exceeds` and stays open while points stay
    `elevated` (a lower bar); it closes after `quiet` points in a row that are not elevated.
    One event per episode however many points it lasts (R13: one finding per spike).

    Echoes: the damage a spike does often shows again a few steps after it has calmed down
    (SGD momentum and Adam's moments carry the bad update on; the loss recovers unevenly). A
    point that exceeds within `echo` points of the end of the last episode, and stands at most
    `echo_height` times as high as that episode's peak (values are heights above a baseline),
    reopens it instead of opening a new one; a higher point is a new spike, and so is one
    that follows a calm point of a still open episode standing higher than its peak. The echo
    window
    is also bounded in steps (`echo_steps`): in a run logging every 50 steps, 32 points are
    1,600 steps, and recurrences that far apart are separate spikes.
    Fed chunk by chunk; only the elevated points are visited, so the Python loop runs over the
    rare points, not the series."""

    def __init__(
        self, quiet: int, echo: int = 0, echo_height: float = 1.0, echo_steps: float = math.inf
    ) -> None:
        self.quiet = quiet
        self.echo = echo
        self.echo_steps = echo_steps
        self.echo_height = echo_height
        self.reset()

    def reset(self) -> None:
        self.open_at: int | None = None  # index where the open episode began
        self.last_elevated = -(10**18)
        self.peak = -math.inf  # highest value of the open (or last closed) episode
        self.closed: list[tuple[int, int]] = []  # (start index, last elevated index)

    def feed(
        self,
        offset: int,
        elevated: np.ndarray,
        exceeds: np.ndarray,
        values: np.ndarray,
        starts: np.ndarray,
        peaks: np.ndarray,
        steps: np.ndarray | None = None,
    ) -> list[tuple[int, int]]:
        """Chunk starting at series index `offset`. values: the points' values (compared
        only with each other); starts: where an episode a point opens begins (at or before
        it), and peaks: its highest value up to the point.
        steps: the whole series' steps (for the echo window in steps), if bounded.
        Returns (start, index) of each episode opened: where it begins, and the point that
        opened it."""
        opened: list[tuple[int, int]] = []
        for j in np.flatnonzero(elevated).tolist():
            i = offset + j
            v = float(values[j])
            if self.open_at is not None and (
                i - self.last_elevated > self.quiet
                or (exceeds[j] and i - self.last_elevated > 1 and self._fresh(steps, i, peaks[j]))
            ):
                self.closed.append((self.open_at, self.last_elevated))
                self.open_at = None
            if self.open_at is None:
                if not exceeds[j]:
                    continue
                pk = float(peaks[j])
                if (
                    self.closed
                    and i - self.closed[-1][1] <= self.echo
                    and self._echo_steps_ok(steps, int(starts[j]))
                    and not pk > self.echo_height * self.peak
                ):
                    self.open_at = self.closed.pop()[0]  # an echo: the last episode goes on
                else:
                    start = int(starts[j])
                    if self.closed:  # never back into the last episode
                        start = max(start, self.closed[-1][1] + 1)
                    self.open_at = start
                    self.peak = pk
                    opened.append((start, i))
            self.last_elevated = i
            if v > self.peak:
                self.peak = v
        return opened

    def _fresh(self, steps: np.ndarray | None, i: int, peak: float) -> bool:
        """A jump after a calm point inside an open episode is a new spike when it stands
        higher than the episode's peak, or comes more than `echo_steps` after its last
        elevated point (what an echo of a closed episode may not do either)."""
        if peak > self.echo_height * self.peak:
            return True
        if steps is None or not math.isfinite(self.echo_steps):
            return False
        return int(steps[i]) - int(steps[self.last_elevated]) > self.echo_steps

    def _echo_steps_ok(self, steps: np.ndarray | None, start: int) -> bool:
        """The new jump begins (a tail's verdict comes later than its peak) within
        `echo_steps` of the last episode's end."""
        if steps is None or not math.isfinite(self.echo_steps):
            return True
        return int(steps[start]) - int(steps[self.closed[-1][1]]) <= self.echo_steps

    def episode_end(self, start: int, now: int) -> int | None:
        """Last elevated index of the episode that began at `start`; None while it may still
        go on (open, or an echo may still reopen it)."""
        for k, (s, e) in enumerate(self.closed):
            if s == start:
                last = k == len(self.closed) - 1 and self.open_at is None
                return None if last and now - e <= self.echo else e
        if self.open_at == start:
            wait = max(self.quiet, self.echo)
            return self.last_elevated if now - self.last_elevated > wait else None
        return None


def noise_sd(values: np.ndarray) -> float:
    """Robust standard deviation of one point around the series' local trend, from second
    differences (v[i+1] - 2 v[i] + v[i-1] has sd sqrt(6) sigma for independent noise, and a
    smooth trend, however steep, contributes next to nothing): 1.4826 x their median absolute
    value / sqrt(6). Finite values only; 0.0 for fewer than 3."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.shape[0] < 3:
        return 0.0
    d2 = v[2:] - 2.0 * v[1:-1] + v[:-2]
    return MAD_TO_SIGMA * float(np.median(np.abs(d2))) / math.sqrt(6.0)
