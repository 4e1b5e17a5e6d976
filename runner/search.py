"""A study's trials: the overrides each trial applies to the base spec (no torch import).

* ``grid``: the cartesian product of ``study.grid``, keys in the order given, the first key
  varying slowest (``itertools.product``). Plain grids suit 1-2 dimensions only (R9).
* ``list``: ``study.list`` as given (a warmup study, R18/R19; a probe, R15; ...).
* ``quasi_random`` (R9): ``study.trials`` points of a scrambled Halton sequence,
  ``scipy.stats.qmc.Halton(d, scramble=True, seed=study.seed)``, all drawn at once with
  ``.random(n)`` (one dimension per ``space`` key, in the order given). A point ``u`` in
  [0, 1) maps to ``min * (max / min) ** u`` on a log scale (learning rates), ``min + u *
  (max - min)`` on a linear one, and ``values[min(floor(u * K), K - 1)]`` for a discrete list
  of K values. On an integer spec key (batch_size, schedule.warmup_steps, ...) a range's
  value is rounded to the nearest integer. The same seed gives the same trials; sampling is
  non-adaptive, so the trials can run in parallel (R9).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from scipy.stats import qmc

from runner.spec import RunSpec, SpecError, StudySpec, apply_overrides, key_type

__all__ = ["halton_points", "trial_specs", "trials"]


def halton_points(n: int, d: int, seed: int) -> np.ndarray:
    """``n`` points of a ``d``-dimensional scrambled Halton sequence in [0, 1)^d (R9)."""
    engine = qmc.Halton(d, scramble=True, seed=seed)
    return engine.random(n)  # R9: all n points at once, so they come from one sequence


def _scale(u: float, dim: dict[str, Any], key: str) -> Any:
    """One coordinate ``u`` in [0, 1) mapped onto the search dimension ``dim`` of ``key``."""
    if "values" in dim:
        values = dim["values"]
        k = len(values)
        return values[min(math.floor(u * k), k - 1)]  # R9: discrete values by floor(u*K)
    lo, hi = float(dim["min"]), float(dim["max"])
    if dim.get("scale", "linear") == "log":  # R9: log-uniform (learning rates)
        x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    else:
        x = lo + u * (hi - lo)
    x = min(max(x, lo), hi)  # exp/log round-off must not step outside the range
    if key_type(key) is int:
        return int(min(max(round(x), math.ceil(lo)), math.floor(hi)))
    return x


def trials(study: StudySpec) -> list[dict[str, Any]]:
    """The per-trial overrides of ``study``, in trial order (t000, t001, ...)."""
    s = study.study
    if s.search == "grid":
        keys = list(s.grid)
        return [
            dict(zip(keys, combo, strict=True)) for combo in itertools.product(*s.grid.values())
        ]
    if s.search == "list":
        return [dict(t) for t in s.list]
    if s.search == "quasi_random":
        keys = list(s.space)
        if not keys:
            raise SpecError("study.space must be a non-empty table", "study.space")
        points = halton_points(s.trials, len(keys), s.seed)
        return [
            {key: _scale(float(u), s.space[key], key) for key, u in zip(keys, row, strict=True)}
            for row in points
        ]
    raise SpecError(
        f"study.search must be grid, quasi_random or list, not {s.search!r}", "study.search"
    )


def trial_specs(study: StudySpec) -> list[RunSpec]:
    """Each trial's RunSpec: the base spec with that trial's overrides applied."""
    out: list[RunSpec] = []
    for i, overrides in enumerate(trials(study)):
        try:
            out.append(apply_overrides(study.base, overrides))
        except SpecError as exc:
            raise SpecError(f"trial t{i:03d}: {exc}", exc.key) from exc
    return out
