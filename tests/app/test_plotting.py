"""Plain pytest for the pure plot maths (tui.plotting) and the sanitizer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tui import sanitize
from tui.plotting import (
    EmaState,
    SmoothedSeries,
    ema_debiased,
    histogram,
    log_ticks,
    minmax_downsample,
    percentile_range,
    to_log10,
)


def naive_ema(values: list[float], w: float) -> list[float]:
    """TensorBoard's smoothing, written as its JavaScript does it."""
    last, k, out = 0.0, 0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * w + (1 - w) * v
        k += 1
        out.append(last / (1 - w**k))
    return out


@pytest.mark.parametrize("w", [0.0, 0.3, 0.6, 0.9, 0.99, 0.999])
def test_ema_matches_tensorboard(w: float) -> None:
    rng = np.random.default_rng(0)
    v = rng.random(3000)
    v[[5, 700]] = np.nan
    v[900] = np.inf
    got = ema_debiased(v, w)
    want = np.array(naive_ema(v.tolist(), w))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert got[0] == pytest.approx(v[0])  # debiased: the first point is itself


def test_ema_incremental_equals_full_and_past_is_fixed() -> None:
    rng = np.random.default_rng(1)
    v = rng.random(5000)
    full = ema_debiased(v, 0.9)
    st = EmaState(0.9)
    parts = np.concatenate([st.extend(v[:1]), st.extend(v[1:1234]), st.extend(v[1234:])])
    np.testing.assert_allclose(parts, full, rtol=1e-12)
    s = SmoothedSeries(0.9)
    steps = np.arange(5000)
    first = s.update(steps[:2000], v[:2000]).copy()
    later = s.update(steps, v)
    # the past does not change as the run grows
    np.testing.assert_array_equal(later[:2000], first)


def test_smoothed_series_recomputes_after_restart() -> None:
    s = SmoothedSeries(0.6)
    s.update(np.arange(100), np.ones(100))
    steps = np.concatenate([np.arange(50), np.arange(50, 120)])
    vals = np.full(120, 2.0)
    out = s.update(steps * 2, vals)  # different steps at the old positions: a rewrite
    np.testing.assert_allclose(out, 2.0, rtol=1e-6)


@pytest.mark.parametrize("where", [0, 1, 123_456, 500_000, 999_998, 999_999])
def test_one_step_spike_in_a_million_survives_downsampling(where: int) -> None:
    x = np.arange(1_000_000, dtype=np.int64)
    y = np.full(1_000_000, 1.0, np.float32)
    y[where] = 1000.0
    xs, ys = minmax_downsample(x, y, 200)
    assert ys.shape[0] <= 400
    assert ys.max() == 1000.0
    # the spike is drawn in the bucket that holds its step
    assert abs(xs[np.argmax(ys)] - where) <= 1_000_000 / 200
    dip = y.copy()
    dip[where] = -5.0
    _, ys = minmax_downsample(x, dip, 200)
    assert ys.min() == -5.0


def test_downsample_window_and_last_bucket_closed() -> None:
    x = np.arange(1000)
    y = np.zeros(1000)
    y[600] = 7.0
    xs, ys = minmax_downsample(x, y, 10, lo=100, hi=600)
    assert ys.max() == 7.0  # x == hi belongs to the last bucket
    assert xs.min() >= 100 and xs.max() <= 600


def test_downsample_skips_non_finite() -> None:
    x = np.arange(10_000)
    y = np.ones(10_000)
    y[5000:] = np.nan
    y[4000] = np.inf
    xs, ys = minmax_downsample(x, y, 50)
    assert np.isfinite(ys).all()
    assert xs.max() < 5000


def test_percentile_range_ignores_outliers() -> None:
    y = np.ones(10_000)
    y[::500] = 1e6
    _, hi = percentile_range(y)  # type: ignore[misc]
    assert hi < 10
    assert percentile_range(np.array([np.nan])) is None


def test_log_helpers() -> None:
    out = to_log10(np.array([100.0, 0.0, -1.0, 1e-3]))
    assert out[0] == 2.0 and math.isnan(out[1]) and math.isnan(out[2]) and out[3] == -3.0
    pos, labels = log_ticks(-3.2, 1.5)
    assert labels == ["0.001", "0.01", "0.1", "1", "10"]
    pos, labels = log_ticks(-0.5, 0.2)
    assert "1" in labels and len(pos) >= 2


def test_histogram_counts_everything() -> None:
    v = np.concatenate([np.ones(990), np.full(10, 1e9), [np.nan]])
    _, counts = histogram(v, 20)
    assert counts.sum() == 1000


HOSTILE = (
    "run\x1b]52;c;ZWNobyBwd25lZA==\x07"  # OSC 52: set the clipboard
    "\x1b]0;pwned\x07"  # retitle the window
    "\x1b[2J"  # clear the screen
    "\rEVIL"  # carriage-return overwrite
    "\u202egnp.exe"  # right-to-left override
    "\x9b31m"  # C1 CSI
    "[bold red]markup[/]"
)


def test_sanitize_makes_every_control_visible() -> None:
    out = sanitize.clean(HOSTILE, limit=1000)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in out)
    assert "\u202e" not in out
    assert "\\x1b]52;c;" in out and "\\x1b[2J" in out and "\\rEVIL" in out
    assert "\\u202e" in out and "\\x9b" in out
    t = sanitize.text(HOSTILE, limit=1000)
    assert "[bold red]markup[/]" in t.plain  # markup shown, not interpreted
    assert sanitize.markup("[b]x[/b]") == "\\[b]x\\[/b]"
    assert len(sanitize.clean("a" * 10_000, 50)) == 50
