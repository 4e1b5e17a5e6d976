"""Did the run learn at all? (R5 with R4's caveat)

A run whose training loss never fell meaningfully below its start, or whose loss sits at
chance (ln(num_classes) for a classification loss when the class count is known), is not
learning: the cause is a too-small learning rate (R4's caveat: a search space whose learning
rates are all too small fools the steps-to-fit reasoning; R5: widen it upward) or a bug. Such a
run's best point is its last only because nothing happened: "train longer" is the wrong advice
there, and `best_step_late` is not made on it.

"Meaningfully" is relative to the run's own noise (robust.noise_sd, in log space: a loss's
noise scales with its level): the drop from the start level (median of the first points) to
the lowest level (lowest median of a block of points) must stand several standard errors out,
and be at least a few percent of the start, so that a loss that wobbles at its starting value,
however smooth, is not taken for learning; or nearly all of the second half must lie 5% below
the first point (a noisy run of few points that fell at once). A resumed run (its log starts
far from step 0) is not judged: its first point is not the start of its training.

Losses that are not a measure of fit are not judged: one that is zero or negative anywhere
(an RL objective, a GRPO loss starting at 0), or a run that logs a reward (RL: the loss of a
policy does not fall as it learns).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tui.diagnose.bestpoint import span_origin
from tui.diagnose.robust import noise_sd

MIN_POINTS = 6  # fewer logged points say nothing about a trend
MIN_PROGRESS = 0.25  # judged once the run has covered this share of its total steps
Z_DROP = 4.0  # a drop this many standard errors of the level difference ...
REL_DROP = 0.03  # ... and this share of the start level is learning
REL_RANK = 0.05  # or: the second half this far below the first point ...
RANK_SHARE = 0.9  # ... in this share of its points ...
RANK_MIN = 5  # ... of at least this many
CHANCE_MARGIN = 0.05  # the best level within 5% of ln(num_classes) is chance
CLASS_KEYS = ("num_labels", "num_classes", "n_classes", "num_class", "nb_classes", "n_labels")
REWARD_WORDS = ("reward",)


@dataclass(frozen=True)
class NotLearning:
    start_step: int
    start_value: float  # median of the first `width` points
    best_value: float  # the lowest block median
    best_step: int  # the block's last step
    last_step: int
    last_value: float  # median of the last `width` points
    noise: float  # robust sd of one point
    width: int  # points in a level
    chance: float | None  # ln(num_classes), when known
    at_chance: bool  # the verdict is "sits at chance" (else "never fell below its start")


def num_classes_of(hparams: dict[str, Any]) -> int | None:
    for key in CLASS_KEYS:
        v = hparams.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and v >= 2 and v == int(v):
            return int(v)
    return None


def logs_reward(names: Iterable[str]) -> bool:
    """The run logs a reward: an RL run, whose loss is not a measure of fit."""
    return any(w in n.lower() for n in names for w in REWARD_WORDS)


def _below_first(v: np.ndarray) -> bool:
    """Nearly all of the second half stands REL_RANK below the first point: a noisy run of
    few points that fell at once (an epoch-level probe: 1.19, then 0.25, 0.03, 0.11 ... 0.01),
    where medians of a few points cannot tell."""
    second = v[v.shape[0] // 2 :]
    if second.shape[0] < RANK_MIN:
        return False
    return bool((second < (1.0 - REL_RANK) * v[0]).mean() >= RANK_SHARE)


def level_width(n: int) -> int:
    """Points in a level: about an eighth of the series, 3 to 50."""
    return max(3, min(50, n // 8))


def not_learning(
    steps: np.ndarray,
    values: np.ndarray,
    total_steps: int,
    warmup_steps: float | None = None,
    num_classes: int | None = None,
) -> NotLearning | None:
    """R5/R4: the verdict on a training-loss series, or None when it learned (or cannot be
    judged yet). O(n)."""
    v = np.asarray(values, np.float64)
    s = np.asarray(steps)
    ok = np.isfinite(v)
    if not ok.all():
        return None  # a divergence is its own finding (R16)
    n = v.shape[0]
    if n < MIN_POINTS or (v <= 0).any():
        return None
    last = int(s[-1])
    first = int(s[0])
    if total_steps and last + 1 < MIN_PROGRESS * total_steps:
        return None  # too early to say
    if warmup_steps and last < 1.5 * warmup_steps:
        return None  # a loss may wait for its warmup to end
    if span_origin(s) > 0:
        return None  # a resumed run's first point is not the start of its training
    w = level_width(n)
    start = float(np.median(v[:w]))
    nb = n // w
    medians = np.median(v[: nb * w].reshape(nb, w), axis=1)
    tail = float(np.median(v[-w:]))
    k = int(np.argmin(medians))
    low = float(medians[k])
    low_step = int(s[(k + 1) * w - 1])
    if tail < low:
        low, low_step = tail, last
    # in log space: a loss's noise scales with its level (0.3 -> 0.01 in a noisy probe)
    lv = np.log(v)
    sigma = noise_sd(lv)
    # standard error of the difference of two medians of w points: 1.2533 sigma sqrt(2 / w)
    se = 1.2533 * sigma * math.sqrt(2.0 / w)
    chance = math.log(num_classes) if num_classes else None
    at_chance = chance is not None and low >= (1.0 - CHANCE_MARGIN) * chance
    drop = math.log(start) - math.log(low)
    learned = drop > max(Z_DROP * se, -math.log(1.0 - REL_DROP)) or _below_first(v)
    if learned and not at_chance:
        return None
    sigma = noise_sd(v)  # as the finding quotes it: in the loss's units
    return NotLearning(
        start_step=first,
        start_value=start,
        best_value=low,
        best_step=low_step,
        last_step=last,
        last_value=tail,
        noise=sigma,
        width=w,
        chance=chance,
        at_chance=at_chance,
    )
