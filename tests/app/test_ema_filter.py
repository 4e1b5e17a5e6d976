"""The numpy EMA filter the plots smooth with equals the recurrence it stands for (and scipy's
lfilter, which the monitor no longer imports)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from tui.plotting import ema_filter


@pytest.mark.parametrize("w", [0.01, 0.3, 0.6, 0.9, 0.99, 0.999])
@pytest.mark.parametrize("n", [1, 2, 53, 54, 55, 1000, 20_011])
def test_matches_the_recurrence(w: float, n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n) * 10 + 5
    want, _ = lfilter([1 - w], [1, -w], x, zi=np.array([w * 1.7]))
    got = ema_filter(x, w, 1.7)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    if n <= 1000:  # and the plain loop, literally
        y, loop = 1.7, []
        for v in x:
            y = w * y + (1 - w) * v
            loop.append(y)
        np.testing.assert_allclose(got, loop, rtol=1e-9, atol=1e-9)


def test_the_monitor_does_not_import_scipy_signal_to_smooth() -> None:
    import subprocess
    import sys

    code = (
        "import numpy as np, sys; from tui.plotting import ema_debiased; "
        "ema_debiased(np.arange(100.0), 0.6); print('scipy.signal' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
