"""The numbers behind the plots: smoothing, downsampling, ranges. Pure numpy, no widgets.

Order matters and is fixed here: a series is smoothed over its *whole* history first (so the
curve a person saw a minute ago is the curve they see now: the past does not change as the run
grows), and only then cut to the visible step range and reduced to the plot's width.
Downsampling keeps the minimum and the maximum of every bucket, so a single-step spike among a
million points is drawn wherever it is, the last bucket included (R13, R14 need spikes seen).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tui.logs.store import GrowableArray

# -- smoothing ------------------------------------------------------------------------------


def ema_debiased(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an EMA started at 0 and divided by (1 - weight**k), k the
    number of finite points so far. Non-finite values are passed through unsmoothed and do
    not enter the average (a NaN must stay visible, and must not poison what follows)."""
    return EmaState(weight).extend(np.asarray(values))


def ema_filter(x: np.ndarray, w: float, y0: float = 0.0) -> np.ndarray:
    """y_t = w * y_{t-1} + (1 - w) * x_t from y_{-1} = y0, in numpy (scipy's lfilter would do,
    but importing scipy.signal costs the monitor 0.6 s and ~30 MB).

    Blocks of B points are solved at once in closed form, y_i = w^(i+1) c + (1 - w) w^i
    sum_{j<=i} w^-j x_j (c: the value before the block), with B small enough that w^-B stays
    below 1e12 (float64 keeps ~4 digits to spare); a scalar loop carries c across blocks."""
    n = int(x.shape[0])
    if n == 0:
        return np.empty(0, np.float64)
    b = max(1, min(n, int(12.0 / -math.log10(w))))
    nb = -(-n // b)
    xs = np.zeros(nb * b, np.float64)
    xs[:n] = x
    xs = xs.reshape(nb, b)
    k = np.arange(b, dtype=np.float64)
    up, down = np.power(w, -k), np.power(w, k)
    local = np.cumsum(xs * up, axis=1)
    local *= down
    local *= 1.0 - w
    ends = local[:, -1].tolist()
    wb = w**b
    carry = np.empty(nb, np.float64)
    prev = float(y0)
    for i, end in enumerate(ends):
        carry[i] = prev
        prev = end + wb * prev
    local += np.outer(carry, down * w)
    return local.reshape(-1)[:n]


@dataclass
class EmaState:
    """The EMA's running state, so that appended points cost only their own work."""

    weight: float
    last: float = 0.0  # the un-debiased accumulator
    count: int = 0  # finite points accumulated

    def extend(self, values: np.ndarray) -> np.ndarray:
        """Smoothed values for the next points; float64 out."""
        w = float(self.weight)
        x = np.asarray(values, dtype=np.float64)
        if x.shape[0] == 0 or w <= 0.0:
            return x.copy()
        finite = np.isfinite(x)
        xf = x[finite] if not finite.all() else x
        n = xf.shape[0]
        if n == 0 or w >= 1.0:
            # weight 1 would freeze the curve at 0; TensorBoard shows the raw value then
            return x.copy()
        # y_t = w * y_{t-1} + (1 - w) * x_t, continued from the saved accumulator
        acc = ema_filter(xf, w, self.last)
        self.last = float(acc[-1])  # before debiasing, which is done in place
        # the debias factor 1 - w**k is exactly 1.0 in float64 once w**k < 2**-54: only the
        # first few dozen points of a series need it (np.power over a million points is slow)
        horizon = math.ceil(-54 * math.log(2) / math.log(w)) + 1
        debiased = acc
        m = min(n, max(0, horizon - self.count))
        if m:
            k = self.count + np.arange(1, m + 1, dtype=np.float64)
            debiased[:m] = acc[:m] / (1.0 - np.power(w, k))
        self.count += n
        if finite.all():
            return debiased
        out = x.copy()  # non-finite points pass through unsmoothed
        out[finite] = debiased
        return out


@dataclass
class SmoothedSeries:
    """A series' smoothed values, grown incrementally as its run appends points.

    Recomputed from scratch only when the weight changes or the earlier points changed
    (a restarted run superseding steps)."""

    weight: float
    steps_seen: int = 0
    last_step: int | None = None
    # grown in place (amortized O(1) per point): a live run's appends copy nothing old
    _values: GrowableArray = field(default_factory=lambda: GrowableArray(np.float32))
    _state: EmaState | None = None

    @property
    def values(self) -> np.ndarray:
        return self._values.view()

    def update(self, steps: np.ndarray, values: np.ndarray) -> np.ndarray:
        n = int(steps.shape[0])
        same_past = (
            self._state is not None
            and n >= self.steps_seen
            and (self.steps_seen == 0 or int(steps[self.steps_seen - 1]) == self.last_step)
        )
        if not same_past:
            self._state = EmaState(self.weight)
            self.steps_seen = 0
            self._values = GrowableArray(np.float32)
        if n > self.steps_seen:
            assert self._state is not None
            self._values.extend(self._state.extend(values[self.steps_seen : n]))
            self.steps_seen = n
            self.last_step = int(steps[n - 1])
        return self._values.view()[:n]


# -- downsampling ---------------------------------------------------------------------------


def minmax_downsample(
    x: np.ndarray,
    y: np.ndarray,
    buckets: int,
    lo: float | None = None,
    hi: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """At most 2 points per bucket of equal x width over [lo, hi]: each bucket's minimum and
    maximum, at the bucket's centre, in x order. `x` must be sorted ascending (steps are;
    relative times of a restarted run may not be: the caller sorts those).

    Every extreme survives: the bucket holding a spike returns that spike as its max (or min),
    including the last bucket, which is closed on the right. Non-finite y values are skipped
    (drawn as gaps); the caller marks divergence apart."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.shape[0] == 0 or buckets <= 0:
        return np.empty(0), np.empty(0)
    lo = float(x[0]) if lo is None else float(lo)
    hi = float(x[-1]) if hi is None else float(hi)
    start, stop = index_range(x, lo, hi)
    x = x[start:stop]
    y = y[start:stop]
    n = x.shape[0]
    if n == 0:
        return np.empty(0), np.empty(0)
    if n <= 2 * buckets:
        keep = np.isfinite(y)
        return x[keep].astype(np.float64), y[keep].astype(np.float64)
    span = hi - lo if hi > lo else 1.0
    width = span / buckets
    # bucket i covers [lo + i*width, lo + (i+1)*width); the last one also takes x == hi
    edges = lo + width * np.arange(1, buckets)
    if x.dtype.kind in "iu":
        # search integer keys: a float key makes numpy convert the whole array (~1 ms per 1M)
        edges = np.ceil(edges).astype(x.dtype)
    bounds = np.concatenate(([0], np.searchsorted(x, edges, side="left"), [n]))
    starts = bounds[:-1]
    nonempty = bounds[1:] > starts
    starts = starts[nonempty]
    centres = (lo + width * (np.arange(buckets) + 0.5))[nonempty]
    # fmin/fmax skip NaN; a bucket whose extreme is +-inf is dropped below (no full-series
    # isfinite pass: it would double the cost, and divergence is marked apart anyway)
    mins = np.fmin.reduceat(y, starts)
    maxs = np.fmax.reduceat(y, starts)
    xs = np.repeat(centres, 2)
    ys = np.empty(xs.shape[0], np.float64)
    ys[0::2] = mins
    ys[1::2] = maxs
    keep = np.isfinite(ys)
    return xs[keep], ys[keep]


def index_range(x: np.ndarray, lo: float, hi: float) -> tuple[int, int]:
    """Indices [start, stop) of the sorted x within [lo, hi]."""
    if x.dtype.kind in "iu":
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return 0, int(x.shape[0])
        a = np.array(math.ceil(lo), x.dtype)
        b = np.array(math.floor(hi), x.dtype)
        return int(np.searchsorted(x, a, "left")), int(np.searchsorted(x, b, "right"))
    return int(np.searchsorted(x, lo, "left")), int(np.searchsorted(x, hi, "right"))


# -- ranges and scales ----------------------------------------------------------------------


def percentile_range(
    y: np.ndarray, lo_pct: float = 5.0, hi_pct: float = 95.0, max_samples: int = 200_000
) -> tuple[float, float] | None:
    """The [5th, 95th] percentile of the finite values, padded by 10% of the span, so that a
    few outliers (the first steps' loss, a spike) do not squash the rest of the curve.
    Long series are sampled with a stride: the percentile of 200,000 evenly spaced points is
    as good for a y axis and 5x cheaper."""
    y = np.asarray(y)
    if y.shape[0] > max_samples:
        y = y[:: math.ceil(y.shape[0] / max_samples)]
    y = y[np.isfinite(y)]
    if y.shape[0] == 0:
        return None
    a, b = np.percentile(y, [lo_pct, hi_pct])
    pad = (b - a) * 0.1 or abs(a) * 0.05 or 1.0
    return float(a - pad), float(b + pad)


def to_log10(y: np.ndarray) -> np.ndarray:
    """log10 of the values; zero and negative values (no place on a log axis) become NaN."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(y)
    out[~(y > 0)] = np.nan
    return out


def log_ticks(lo: float, hi: float, max_ticks: int = 6) -> tuple[list[float], list[str]]:
    """Ticks for an axis drawn in log10 units: positions at whole decades (or at 1-2-5 within
    one decade when the range is narrower), labels as the real values."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [], []
    first, last = math.floor(lo), math.ceil(hi)
    decades = [float(d) for d in range(first, last + 1) if lo <= d <= hi]
    pos = decades[:: max(1, math.ceil(len(decades) / max_ticks))]
    if len(pos) < 2:
        # less than two decades in view: 1-2-5 steps inside them
        pos = [
            math.log10(m * 10.0**d)
            for d in range(first, last + 1)
            for m in (1, 2, 5)
            if lo <= math.log10(m * 10.0**d) <= hi
        ]
    return pos, [format_value(10.0**p) for p in pos]


def format_value(v: float) -> str:
    """A short label for a tick or a value: 3 significant digits."""
    if v == 0 or not math.isfinite(v):
        return str(v)
    if 1e-3 <= abs(v) < 1e4:
        return f"{v:.3g}"
    return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")


def histogram(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the finite values over `bins` equal bins from the minimum to the 99.5th
    percentile (a handful of huge outlier norms would otherwise put every other step into the
    first bin); the last bin also counts everything above. Returns (bin centres, counts)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.shape[0] == 0 or bins <= 0:
        return np.empty(0), np.empty(0)
    lo = float(v.min())
    hi = float(np.percentile(v, 99.5))
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    counts, edges = np.histogram(np.minimum(v, hi), bins=bins, range=(lo, hi))
    return (edges[:-1] + edges[1:]) / 2.0, counts


def relative_time(times: np.ndarray, origin: float | None = None) -> tuple[np.ndarray, str]:
    """Wall time since `origin` (default: the first finite time) in the unit that suits the
    span: seconds, minutes or hours. Returns (values, unit)."""
    t = np.asarray(times, dtype=np.float64)
    if origin is None:
        finite = t[np.isfinite(t)]
        if finite.shape[0] == 0:
            return np.full(t.shape[0], np.nan), "s"
        origin = float(finite[0])
    rel = t - origin
    span = float(np.nanmax(rel)) if rel.shape[0] and np.isfinite(rel).any() else 0.0
    if span >= 3 * 3600:
        return rel / 3600.0, "h"
    if span >= 180:
        return rel / 60.0, "min"
    return rel, "s"
