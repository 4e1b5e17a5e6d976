"""The learning-rate schedule of a run (DESIGN.md "[schedule]"). No torch import here.

A run's steps fall in three phases (steps are 0-based, ``W`` = warmup_steps, ``P`` =
post_warmup_steps, ``M`` = max_train_steps, total = W + P + M):

* warmup, ``s < W``: ``lr * s / W`` (R18: a linear ramp from 0, so step 0 trains at 0);
* post-warmup, ``W <= s < W + P``: constant ``lr`` (R18; about 2W in a warmup study);
* base schedule over ``M`` steps, ``p = (s - W - P) / M`` in [0, 1):
  constant ``lr``, linear ``lr * (1 - p)`` or cosine ``lr * (1 + cos(pi p)) / 2`` (R7).
  Warmup is prepended to the base schedule, which keeps its own length (R20): 10,000
  max_train_steps with 1,000 warmup steps make 11,000 steps.

Steps at or beyond the total hold the base schedule's end value (0 for linear and cosine).
:func:`lr_at` is what the training loop calls; :func:`lr_curve` is the same, vectorised, for
plots and the dashboard.
"""

from __future__ import annotations

import math

import numpy as np

from runner.spec import RunSpec, SpecError

__all__ = ["lr_at", "lr_curve"]


def lr_at(step: int, spec: RunSpec) -> float:
    """The learning rate of 0-based ``step`` of a run of ``spec``."""
    if step < 0:
        raise ValueError(f"step must be >= 0, not {step}")
    lr = spec.optimizer.lr
    sched = spec.schedule
    w, p = sched.warmup_steps, sched.post_warmup_steps
    if step < w:  # R18: linear warmup from 0
        return lr * step / w
    step -= w + p
    if step < 0:  # R18: constant at the peak rate after warmup
        return lr
    m = spec.max_train_steps
    if sched.kind == "constant":
        return lr
    frac = min(step / m, 1.0) if m > 0 else 1.0
    if sched.kind == "linear":  # R7: linear decay to 0 over max_train_steps
        return lr * (1.0 - frac)
    if sched.kind == "cosine":  # R7: cosine decay to 0 over max_train_steps
        return lr * 0.5 * (1.0 + math.cos(math.pi * frac))
    raise SpecError(f"schedule.kind must be constant, linear or cosine, not {sched.kind!r}")


def lr_curve(spec: RunSpec, steps: np.ndarray | None = None) -> np.ndarray:
    """:func:`lr_at` over an array of steps (default: every step of the run), as float64."""
    s = np.arange(spec.total_steps) if steps is None else np.asarray(steps)
    if s.size and s.min() < 0:
        raise ValueError("steps must be >= 0")
    s = s.astype(np.float64)
    lr = float(spec.optimizer.lr)
    sched = spec.schedule
    w, p = sched.warmup_steps, sched.post_warmup_steps
    m = spec.max_train_steps
    if sched.kind == "constant":
        base = np.full_like(s, lr)
    else:
        if m > 0:
            frac = np.clip((s - w - p) / m, 0.0, 1.0)
        else:
            frac = np.ones_like(s)
        if sched.kind == "linear":
            base = lr * (1.0 - frac)
        elif sched.kind == "cosine":
            base = lr * 0.5 * (1.0 + np.cos(np.pi * frac))
        else:
            raise SpecError(f"schedule.kind must be constant, linear or cosine, not {sched.kind!r}")
    out = np.where(s < w + p, lr, base)  # R18: constant phase
    if w > 0:
        out = np.where(s < w, lr * s / w, out)  # R18: warmup ramp
    return out
