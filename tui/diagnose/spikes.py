"""Sudden jumps above a robust trailing baseline: loss spikes (R13) and grad-norm outliers (R14).

A point is judged against the median and MAD of the `window` points before its block (see
robust.py), in log space for positive series (a loss of 0.02 jumping to 0.06 is as sudden as
2.0 to 6.0). It is a jump when it is BOTH statistically far out (robust z above `z`, so that
ordinary minibatch noise, however large, does not count) and practically large (at least
`min_ratio` times the baseline, so that a near-noiseless run's tiny blips do not count).
In very noisy runs (a near-zero classification loss in small batches, whose log varies by
orders of magnitude) 6 robust sd can be a factor of 1000; there a point also counts when it
is more than `over_max` times the largest value of the trailing window (unprecedented, not
just noisy) and at least `over_max_z` robust sd out; or when `sustained` points in a row
each stand above everything in the trailing window (an elevation that lasts, which noise
almost never does: 1/65^3 for independent points); that spike is reported at its first point.
Hysteresis makes a multi-step spike one event. The points of a spike, and a run above the
window's maximum still going at a block's end, are left out of later baselines, so that one
spike neither hides the next inside the same window nor raises the bar for its own later
points when it straddles a block boundary. Points before `min_points` are never judged
(the first points, and a fast early drop, have no baseline to speak of); a fast drop or a
learning-rate step decay moves the loss *below* a trailing baseline, which is never a jump.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from tui.diagnose.early_spikes import EarlyJudge, EarlySpike
from tui.diagnose.robust import EpisodeTracker, block_baselines, log_or_nan


@dataclass(frozen=True)
class Jump:
    index: int  # position in the series of the spike's first point
    step: int
    value: float
    baseline: float  # the trailing median, in the series' own units
    ratio: float | None  # value / baseline (None when the baseline is not positive)
    z: float  # robust z-score (in log space for positive series)
    peak_step: int  # where `value` was logged (the spike's highest point so far)


@dataclass(frozen=True)
class JumpParams:
    block: int = 16  # baseline recomputed every `block` points
    window: int = 64  # trailing points in a baseline
    min_window: int = 24  # points a baseline's window needs (half of them finite and not left
    # out: an early spike's points left out must not leave the next block unjudged)
    min_points: int = 32  # no verdict before this many points
    z: float = 6.0  # robust z above the trailing median to open a spike
    min_ratio: float = 1.3  # and at least this many times the trailing median
    release_z: float = 3.0  # the spike goes on while points stay this far out ...
    quiet: int = 5  # ... and ends after this many points in a row that are not
    echo: int = 32  # a jump this soon after a spike ...
    echo_height: float = 1.0  # ... standing at most this fraction of the spike's height above
    # the median (in log space: a 10x echo of a 100x spike) is its echo, not a new spike
    echo_steps: float = 100  # and within this many steps (20 points of a run logging every 5
    # steps): recurrences 1,000 steps apart in a sparsely logged run are separate spikes
    sigma_floor: float = 0.01  # smallest noise scale (log units: 1%)
    over_max: float = 10.0  # or: above this many times the window's maximum ...
    over_max_z: float = 3.0  # ... and this robust z (very noisy runs, where 6 sd is 100x)
    sustained: int = 3  # or: this many points in a row above the window's maximum ...
    sustained_z: float = 1.2  # ... each this robust z out and min_ratio above the median
    level: int = 3  # or: the median of this many points in a row (a lasting level shift, such as
    # the few steps of damage an LR spike does) ...
    level_ratio: float = 2.0  # ... is this many times the trailing median, above the window's
    level_z: float = 2.5  # maximum and this robust z out (2 of 3 points above the maximum of 64
    # noisy points: 3/65^2 for independent points, and z on top of that)
    tail: int = 3  # or: a peak followed by a tail: the next `tail` points ...
    tail_z: float = 1.2816  # ... with a median this robust z out (the window's top decile) ...
    peak_over_max: float = 2.0  # ... after a point this many times the window's maximum ...
    peak_z: float = 3.0  # ... and this robust z out (what a bad step leaves: the loss jumps
    # and the model takes a few steps to recover)


SEGMENT_BLOCKS = 8  # blocks judged at a time (a split re-judges at most this many)


@dataclass
class _Verdicts:
    """Per-point verdicts of one stretch of a series, from index `lo` on."""

    lo: int
    m: np.ndarray  # the baseline median (log space for positive series)
    sigma: np.ndarray  # its robust noise scale
    z: np.ndarray
    big: np.ndarray
    point: np.ndarray  # far out on its own
    level: np.ndarray
    sustained: np.ndarray
    run_len: np.ndarray
    exceeds: np.ndarray  # opens a spike
    elevated: np.ndarray  # keeps one open
    tailed: np.ndarray  # ends the tail of a peak `tail` points before
    marked: np.ndarray  # left out of later baselines


# R13: loss spikes. R14: grad norms fluctuate more than the loss, so an outlier must be 3x;
# and an outlier is a point (or a peak with its tail), not a lasting elevation: a grad norm
# whose level drifts up over a fine-tune (SFT), and a few points above the window's maximum
# in a row, are no outliers (no sustained or level rule for them).
LOSS_SPIKE = JumpParams()
GRAD_OUTLIER = JumpParams(min_ratio=3.0, sustained=1 << 30, level_ratio=math.inf)


class JumpDetector:
    """Streaming jump detector over one series; `consume` takes the whole arrays and the
    range of points not seen before, so its verdicts do not depend on how points arrive."""

    def __init__(self, params: JumpParams = LOSS_SPIKE) -> None:
        if params.window % params.block:
            raise ValueError("window must be a multiple of block")
        self.p = params
        # the first points (early_spikes.py); grad norms' outliers are min_ratio (3x) high
        self.early = EarlyJudge(params.min_points, params.min_ratio)
        self.episodes = EpisodeTracker(
            params.quiet, params.echo, params.echo_height, params.echo_steps
        )
        self.reset()

    def reset(self) -> None:
        self.episodes.reset()
        self.early.reset()
        self.early_handed = False  # the early judge's episodes and marks given to the tracker
        self.log_mode: bool | None = None  # decided on the first `min_points` points
        self.above_run = 0  # points in a row above their window's maximum
        self.marked: deque[int] = deque()  # left out of later baselines (see _masked)

    def consume(self, steps: np.ndarray, values: np.ndarray, start: int, end: int) -> list[Jump]:
        p = self.p
        if end <= start:
            return []
        early = [self._early_jump(steps, e) for e in self.early.consume(values, end)]
        if end >= p.min_points and not self.early_handed:
            self._hand_over_early()
        if self.log_mode is None:
            if end < p.min_points:
                return early  # the block rules need min_points points (the mode too)
            head = np.asarray(values[: p.min_points], np.float64)
            head = head[np.isfinite(head)]
            self.log_mode = bool(head.shape[0] == 0 or (head > 0).all())
        lo = max(start, p.min_points)
        if end <= lo:
            return early
        # one block more than the window: a tail's peak may lie in the block before lo's
        base = max(0, (lo // p.block - 1) * p.block - p.window)
        raw = np.asarray(values[base:end], np.float64)
        y = log_or_nan(raw) if self.log_mode else np.where(np.isfinite(raw), raw, np.nan)
        # the points of spikes, and of a run above the window's maximum still going at a
        # block's end, are left out of later baselines (masked), so that a spike neither hides
        # the next one for a whole window nor raises the bar for its own later points when it
        # straddles a block boundary. A block's baseline only ever sees points before the
        # block, so the verdicts still do not depend on how the points arrive; the stretch
        # after a block where the mask grew is judged again with it.
        out: list[Jump] = list(early)
        cur = lo
        # bounded re-judging, O(points) however many splits: a segment after a split is
        # short, and each one without a split is twice as long as the one before
        horizon = SEGMENT_BLOCKS * p.block
        while cur < end:
            seg_end = min(end, (cur // p.block) * p.block + horizon)
            # only the stretch this segment's baselines need (a block boundary, or 0)
            sb = max(base, (cur // p.block - 1) * p.block - p.window)
            ys, rs = y[sb - base : seg_end - base], raw[sb - base : seg_end - base]
            j = self._judge(ys, rs, sb, cur, seg_end)
            touched = j.marked | j.exceeds
            ep = self.episodes
            if ep.open_at is not None:
                # an open spike goes on (its masked span grows) only if its next elevated
                # point comes within `quiet` points; after that it is over
                el = np.flatnonzero(j.elevated)
                if el.shape[0] and cur + int(el[0]) - ep.last_elevated <= p.quiet:
                    touched = touched.copy()
                    touched[int(el[0])] = True
            hit = np.flatnonzero(touched)
            if hit.shape[0] == 0:
                stop = seg_end
                horizon *= 2
            else:
                stop = min(seg_end, ((cur + int(hit[0])) // p.block + 1) * p.block)
                horizon = SEGMENT_BLOCKS * p.block
            out += self._feed(j, steps, ys, rs, sb, stop)
            cur = stop
        return out

    def _early_jump(self, steps: np.ndarray, e: EarlySpike) -> Jump:
        i = e.index
        return Jump(e.start, int(steps[e.start]), e.value, e.baseline, e.ratio, e.z, int(steps[i]))

    def _hand_over_early(self) -> None:
        """The early judge's episodes become the tracker's first closed episodes (their points
        left out of the block baselines; a later jump may be their echo), and its other
        elevated points are marked (left out too)."""
        self.early_handed = True
        spans = self.early.closed_through(self.p.min_points)
        covered = {i for a, b in spans for i in range(a, b + 1)}
        self.episodes.closed.extend(spans)
        if spans:
            self.episodes.last_elevated = spans[-1][1]
            self.episodes.peak = math.inf  # an early spike's height is in another scale:
            # no later jump counts as its echo by height alone
        self.marked.extend(sorted(i for i in self.early.left_out if i not in covered))

    def _masked(self, y: np.ndarray, base: int) -> np.ndarray:
        """y without the points of spikes (their episodes) and of runs above the window's
        maximum that were going on at a block's end."""
        while self.marked and self.marked[0] < base:
            self.marked.popleft()
        spans = []  # only those reaching into y: the latest closed ones, and an open one
        for a, b in reversed(self.episodes.closed):
            if b < base:
                break
            spans.append((a, b))
        if self.episodes.open_at is not None and self.episodes.last_elevated >= base:
            spans.append((self.episodes.open_at, self.episodes.last_elevated))
        if not spans and not self.marked:
            return y
        ym = y.copy()
        for a, b in spans:
            ym[max(a, base) - base : b + 1 - base] = np.nan
        if self.marked:
            ym[np.fromiter(self.marked, np.int64, len(self.marked)) - base] = np.nan
        return ym

    def _judge(self, y: np.ndarray, raw: np.ndarray, base: int, lo: int, end: int) -> _Verdicts:
        """The per-point verdicts of points lo..end-1 (y holds the series from `base`)."""
        p = self.p
        b1 = (end - 1) // p.block
        bt = max(0, lo - p.tail) // p.block  # from the block of the first peak a tail ends
        med, sig, cnt, top = self._baselines(self._masked(y, base), base, bt, b1)
        idx = np.arange(lo, end)
        k = idx // p.block - bt
        m, s, c, t = med[k], sig[k], cnt[k], top[k]
        yi = y[idx - base]
        sigma = np.maximum(np.nan_to_num(s, nan=0.0), p.sigma_floor)
        with np.errstate(invalid="ignore"):
            d = yi - m
            z = d / sigma
            ok = self._enough(idx, c) & np.isfinite(d)
            if self.log_mode:
                big = d > math.log(p.min_ratio)
                half = d > 0.5 * math.log(p.min_ratio)
                unprecedented = yi - t > math.log(p.over_max)
            else:
                big = d > (p.min_ratio - 1.0) * np.abs(m)
                half = d > 0.5 * (p.min_ratio - 1.0) * np.abs(m)
                unprecedented = yi - t > (p.over_max - 1.0) * np.abs(t)
            point = ok & (yi > t) & ((big & (z > p.z)) | (unprecedented & (z > p.over_max_z)))
            # the level: median of the `level` points ending at each point (the block grid
            # keeps at least `window` points before `lo`, so they are all in y)
            lv = np.median(np.stack([y[idx - base - q] for q in range(p.level)]), axis=0)
            if self.log_mode:
                lv_big = lv - m > math.log(p.level_ratio)
            else:
                lv_big = lv - m > (p.level_ratio - 1.0) * np.abs(m)
            level = ok & np.isfinite(lv) & lv_big & (lv > t) & ((lv - m) / sigma > p.level_z)
            above = ok & half & (yi > t) & (z > p.sustained_z)
            tailed = self._peak_with_tail(y, base, idx, bt, med, sig, cnt, top)
            elevated = point | level | tailed | (ok & half & (z > p.release_z))
        # run lengths of `above` (carried over from before lo): O(chunk), vectorized
        n = np.arange(above.shape[0])
        last_false = np.maximum.accumulate(np.where(~above, n, -1))
        run_len = np.where(above, n - last_false, 0)
        carry = np.where(last_false < 0, self.above_run, 0)
        run_len = np.where(above, run_len + carry, 0)
        sustained = above & (run_len >= p.sustained)
        return _Verdicts(
            lo=lo,
            m=m,
            sigma=sigma,
            z=z,
            big=big,
            point=point,
            level=level,
            sustained=sustained,
            run_len=run_len,
            tailed=tailed,
            exceeds=point | sustained | level | tailed,
            elevated=elevated | sustained,
            marked=self._run_at_block_end(idx, run_len),
        )

    def _peak_with_tail(
        self,
        y: np.ndarray,
        base: int,
        idx: np.ndarray,
        bt: int,
        med: np.ndarray,
        sig: np.ndarray,
        cnt: np.ndarray,
        top: np.ndarray,
    ) -> np.ndarray:
        """At each point i: the point `tail` before it stood well above its window's maximum
        and the points after it, up to i, stayed in its window's top decile (median). Judged
        against the peak's own baseline (blocks from bt on); the verdict needs no point after
        i, so it does not depend on how the points arrive."""
        p = self.p
        jdx = idx - p.tail
        valid = jdx >= p.min_points
        jj = np.maximum(jdx, bt * p.block)
        kj = jj // p.block - bt
        mj, cj, tj = med[kj], cnt[kj], top[kj]
        sj = np.maximum(np.nan_to_num(sig[kj], nan=0.0), p.sigma_floor)
        yj = y[jj - base]
        tail = np.median(np.stack([y[idx - base - q] for q in range(p.tail)]), axis=0)
        with np.errstate(invalid="ignore"):
            if self.log_mode:
                peak = yj - tj > math.log(p.peak_over_max)
            else:
                peak = yj - tj > (p.peak_over_max - 1.0) * np.abs(tj)
            return (
                valid
                & self._enough(jj, cj)
                & np.isfinite(yj)
                & np.isfinite(tail)
                & peak
                & ((yj - mj) / sj > p.peak_z)
                & ((tail - mj) / sj > p.tail_z)
            )

    def _enough(self, idx: np.ndarray, count: np.ndarray) -> np.ndarray:
        """A baseline speaks for point idx when its window holds min_window points, half of
        them finite and not left out (spikes' points are)."""
        p = self.p
        length = np.minimum(p.window, (idx // p.block) * p.block)
        return (length >= p.min_window) & (count >= p.min_window // 2)

    def _run_at_block_end(self, idx: np.ndarray, run_len: np.ndarray) -> np.ndarray:
        """The points of a run above the window's maximum still going at the end of its
        block: the start of a spike that may straddle the boundary, which must not raise the
        next block's bar for its own later points."""
        p = self.p
        out = np.zeros(idx.shape[0], bool)
        ends = np.flatnonzero((idx + 1) % p.block == 0)
        for e in ends[run_len[ends] > 0].tolist():  # run_len > 0 only where above
            out[max(0, e - int(run_len[e]) + 1) : e + 1] = True
        return out

    def _feed(
        self,
        j: _Verdicts,
        steps: np.ndarray,
        y: np.ndarray,
        raw: np.ndarray,
        base: int,
        stop: int,
    ) -> list[Jump]:
        """Feed the verdicts of points j.lo..stop-1 to the episode tracker (y and raw hold the
        series from `base`, transformed and as logged); the jumps opened."""
        p = self.p
        lo = j.lo
        n = stop - lo
        if n <= 0:
            return []
        self.above_run = int(j.run_len[n - 1])
        self.marked.extend((lo + np.flatnonzero(j.marked[:n])).tolist())

        def half_at(i: int) -> bool:  # point i stands half the bar out of its baseline
            mi = float(j.m[max(0, i - lo)])
            d0 = y[i - base] - mi
            bar = (
                0.5 * math.log(p.min_ratio)
                if self.log_mode
                else 0.5 * (p.min_ratio - 1.0) * abs(mi)
            )
            return bool(np.isfinite(d0) and d0 > bar)

        # where the spike each exceeding point would open begins: the point itself, or the
        # first point of the elevation it ends
        starts = np.arange(lo, stop)
        for k in np.flatnonzero(j.exceeds[:n]).tolist():
            i = lo + k
            if j.tailed[k] and not j.point[k]:
                starts[k] = i - p.tail  # the peak the tail followed
            elif j.sustained[k] and not (j.big[k] and j.z[k] > p.z):
                starts[k] = i - int(j.run_len[k]) + 1  # a lasting elevation: its first point
            elif j.level[k] and not j.point[k]:
                # a level shift: its first point above half the level's bar
                for q in range(p.level - 1, 0, -1):
                    if i - q >= base and half_at(i - q):
                        starts[k] = i - q
                        break
        # heights above the baseline (an echo is judged by how high it stands over the median)
        values = y[lo - base : stop - base] - j.m[:n]
        peaks = values.copy()
        for k in np.flatnonzero(starts < np.arange(lo, stop)).tolist():
            peaks[k] = np.nanmax(y[starts[k] - base : lo + k + 1 - base]) - j.m[k]
        out: list[Jump] = []
        opened = self.episodes.feed(lo, j.elevated[:n], j.exceeds[:n], values, starts, peaks, steps)
        for first, i in opened:
            k = i - lo
            # the spike's highest point so far, judged against the baseline of the point
            # that revealed it
            seg = raw[first - base : i + 1 - base]
            top = first + int(np.nanargmax(np.where(np.isfinite(seg), seg, -np.inf)))
            value = float(raw[top - base])
            baseline = math.exp(j.m[k]) if self.log_mode else float(j.m[k])
            ratio = value / baseline if baseline > 0 else None
            z = float((y[top - base] - j.m[k]) / j.sigma[k])
            out.append(Jump(first, int(steps[first]), value, baseline, ratio, z, int(steps[top])))
        return out

    def _baselines(
        self, y: np.ndarray, base: int, b0: int, b1: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Baselines of blocks b0..b1, y holding the series from index `base` (a block
        boundary or 0) on."""
        p = self.p
        if base == 0:
            return block_baselines(y, b0, b1, p.block, p.window)
        # shift the block grid so that index `base` is 0 there (base is a multiple of block
        # whenever it is > 0, because window is a multiple of block)
        shift = base // p.block
        return block_baselines(y, b0 - shift, b1 - shift, p.block, p.window)

    def episode_end(self, index: int, now: int) -> int | None:
        return self.episodes.episode_end(index, now)
