"""Gradient-norm statistics (R14, R22-R24).

R23: the suggested clipping threshold is the 90th percentile of the unclipped gradient norms.
R24: clipping more than half of the updates is extremely aggressive (a strange way of lowering
the learning rate): from the `clipped` series when it is logged, else from grad_norm against
the clip threshold in the hyperparameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tui.logs.store import RunStore

CLIP_KEYS = (
    "clip_norm",
    "clip",
    "max_grad_norm",
    "gradient_clip_val",
    "grad_clip",
    "clip_grad_norm",
    "optimizer.clip_norm",
    "trainer.gradient_clip_val",
)
AGGRESSIVE = 0.5  # R24
MIN_UPDATES = 50  # R24 is not judged on fewer updates


def clip_norm_of(hparams: dict[str, Any]) -> float | None:
    for key in CLIP_KEYS:
        v = hparams.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
            return float(v)
    return None


class ClipCounter:
    """Streaming counts for R24 (O(1) per point)."""

    def __init__(self, clip_norm: float | None) -> None:
        self.clip_norm = clip_norm
        self.reset()

    def reset(self) -> None:
        self.clipped_n = 0
        self.clipped_sum = 0
        self.grad_n = 0
        self.grad_above = 0

    def consume_clipped(self, values: np.ndarray, start: int, end: int) -> None:
        v = np.asarray(values[start:end], np.float64)
        v = v[np.isfinite(v)]
        self.clipped_n += int(v.shape[0])
        self.clipped_sum += int((v > 0.5).sum())

    def consume_grad(self, values: np.ndarray, start: int, end: int) -> None:
        if self.clip_norm is None:
            return
        v = np.asarray(values[start:end], np.float64)
        v = v[np.isfinite(v)]
        self.grad_n += int(v.shape[0])
        self.grad_above += int((v > self.clip_norm).sum())

    def fraction(self) -> tuple[float, int, str] | None:
        """(fraction clipped, updates, source) or None when nothing says."""
        if self.clipped_n:
            return self.clipped_sum / self.clipped_n, self.clipped_n, "clipped"
        if self.grad_n:
            return self.grad_above / self.grad_n, self.grad_n, "grad_norm > clip_norm"
        return None


def p90(values: np.ndarray) -> float | None:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return float(np.percentile(v, 90)) if v.shape[0] else None


def clip_stats(store: RunStore, clip_norm: float | None) -> dict[str, Any]:
    """R22-R24 statistics over every point of the run (O(n), computed on demand)."""
    out: dict[str, Any] = {
        "grad_norm_count": 0,
        "p90": None,
        "suggested_clip_norm": None,
        "fraction_above_p90": None,
        "clip_norm": clip_norm,
        "fraction_above_clip_norm": None,
        "fraction_clipped": None,
        "clipped_count": 0,
    }
    if store.has("grad_norm"):
        g = np.asarray(store.series("grad_norm").values, np.float64)
        g = g[np.isfinite(g)]
        out["grad_norm_count"] = int(g.shape[0])
        if g.shape[0]:
            t = float(np.percentile(g, 90))
            out["p90"] = out["suggested_clip_norm"] = t  # R23
            out["fraction_above_p90"] = float((g > t).mean())
            if clip_norm is not None:
                out["fraction_above_clip_norm"] = float((g > clip_norm).mean())
    if store.has("clipped"):
        c = np.asarray(store.series("clipped").values, np.float64)
        c = c[np.isfinite(c)]
        out["clipped_count"] = int(c.shape[0])
        if c.shape[0]:
            out["fraction_clipped"] = float((c > 0.5).mean())
    return out
