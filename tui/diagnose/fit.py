"""R4: steps to fit the training set, from a constant-learning-rate sweep.

The "perfect fit" level: the training loss at or below FIT_FRACTION (1%) of the trials'
median first logged loss, i.e. the loss cut by 99% (for a 10-class cross-entropy starting at
2.3, about 0.023). A parameter, because "perfectly" depends on the loss; the level used is
in the finding's evidence. A trial reaches it at the first step where the median of the
last FIT_WINDOW logged losses is below it, so one lucky minibatch does not count.
"""

from __future__ import annotations

import math

import numpy as np

from tui.diagnose.findings import Finding
from tui.logs.model import Study

FIT_FRACTION = 0.01
FIT_WINDOW = 5


def first_fit_step(steps: np.ndarray, loss: np.ndarray, level: float) -> int | None:
    v = loss.astype(np.float64)
    if v.size < FIT_WINDOW:
        return None
    windows = np.lib.stride_tricks.sliding_window_view(v, FIT_WINDOW)
    med = np.median(windows, axis=1)
    hit = np.flatnonzero(np.isfinite(med) & (med <= level))
    return int(steps[hit[0] + FIT_WINDOW - 1]) if hit.size else None


def is_fit_study(study: Study) -> bool:
    return any((r.remedy or {}).get("kind") == "fit" for r in study.runs)


def steps_to_fit(study: Study, fit_fraction: float = FIT_FRACTION) -> list[Finding]:
    """The `steps_to_fit` finding (info), and R5's warning when the fastest rate is on the
    grid's edge (a search space of too-small rates fools R4)."""
    firsts = []
    for run in study.runs:
        s = run.store.series("loss")
        finite = s.values[np.isfinite(s.values)]
        if finite.size:
            firsts.append(float(finite[0]))
    if not firsts:
        return []
    level = fit_fraction * float(np.median(firsts))
    results = []
    for run in study.runs:
        s = run.store.series("loss")
        step = first_fit_step(s.steps, s.values, level)
        results.append((run, step))
    fitted = [(r, s) for r, s in results if s is not None]
    findings: list[Finding] = []
    if not fitted:
        longest = max((r.total_steps for r in study.runs), default=0)
        findings.append(
            Finding(
                "steps_to_fit",
                f"no trial fit the training set (loss <= {level:.3g}) within {longest} steps "
                "(R4): train longer, or widen the learning rates",
                evidence={"level": level, "fit_fraction": fit_fraction, "fitted": 0},
            )
        )
        return findings
    run, step = min(fitted, key=lambda rs: rs[1])
    lr = run.hparams.get("lr")
    findings.append(
        Finding(
            "steps_to_fit",
            f"fastest fit at step {step} ({run.id}, lr {lr}): loss <= {level:.3g}; start "
            f"tuning with max_train_steps ~ {step + 1} (R4)",
            step=step,
            evidence={
                "run": run.id,
                "steps": step + 1,
                "level": level,
                "lr": lr,
                "fit_fraction": fit_fraction,
                "fitted": len(fitted),
            },
        )
    )
    lrs = sorted(
        {float(r.hparams["lr"]) for r in study.runs if isinstance(r.hparams.get("lr"), int | float)}
    )
    if isinstance(lr, int | float) and len(lrs) >= 3 and float(lr) in (lrs[0], lrs[-1]):
        side = "low" if math.isclose(float(lr), lrs[0]) else "high"
        findings.append(
            Finding(
                "best_at_search_boundary",
                f"the fastest-fitting rate {lr} is the {'smallest' if side == 'low' else 'largest'}"
                f" of the grid (R5, R4): widen the grid on the {side} side before trusting the "
                "steps-to-fit",
                evidence={"side": side, "param": "lr", "value": float(lr)},
            )
        )
    return findings
