"""Loss spikes on sparsely logged runs and among the first points (R13): judged from the
first points, early spikes kept out of later baselines, echo windows in steps, recurrences
counted and said. The real curve is a short inline copy of a committed metrics.csv."""

from __future__ import annotations

import itertools

import numpy as np
from diag_helpers import run_of

from tui.diagnose.run_checks import diagnose_run
from tui.diagnose.spikes import LOSS_SPIKE, JumpDetector

# HySonLab/ArcRoute @40b7d957, lightning_logs/version_0/metrics.csv (rl4co PPO, loss logged
# every 50 steps from 49): its first 60 points. A PPO objective of either sign, ~0.1 in size,
# with episodes at 199, 349, 499, 599-699, 949 and 2299-2349, 2549 (each with a reward crash).
PPO = [
    -0.0228, 0.486, -0.152, 6.4, 0.0658, 0.145, 2.05, 0.225, -0.0208, 5.13, 0.0709, 101.0,
    27.5, 10.1, -0.0505, 0.491, -0.0439, 0.266, 5.32, 0.0501, -0.0471, -0.155, -0.00304,
    0.0667, 0.229, 0.0199, 0.109, -0.053, -0.0716, -0.00834, 0.0683, -0.3, -0.0631, -0.00198,
    0.21, 0.14, 0.0381, -0.0137, -0.0211, -0.0559, -0.0198, 0.155, -0.0576, 0.0439, 0.0362,
    4.81, 15.3, 0.186, 0.0413, -0.0237, 30.4, 0.195, -0.144, 0.05, 0.0359, 0.135, 0.418,
    0.071, 0.0654, 0.131,
]  # fmt: skip
PPO_STEPS = [49 + 50 * i for i in range(len(PPO))]
PPO_EPISODES = [199, 349, 499, 599, 949, 2299, 2549]


def _spike_steps(values, steps, cuts=()) -> list[int]:
    det = JumpDetector(LOSS_SPIKE)
    v, s = np.asarray(values, np.float64), np.asarray(steps)
    bounds = [0, *cuts, len(v)]
    return [j.step for a, b in itertools.pairwise(bounds) for j in det.consume(s, v, a, b)]


def test_every_episode_of_the_real_ppo_run_is_found() -> None:
    """Five episodes among the first 32 points (never judged before) and two after them that
    the early ones, left in the baseline, used to hide; the calm noise between them (0.49,
    0.27 over a median near 0) is no spike."""
    assert _spike_steps(PPO, PPO_STEPS) == PPO_EPISODES


def test_early_verdicts_do_not_depend_on_how_the_points_arrive() -> None:
    once = _spike_steps(PPO, PPO_STEPS)
    assert _spike_steps(PPO, PPO_STEPS, tuple(range(1, len(PPO)))) == once
    rng = np.random.default_rng(3)
    for _ in range(5):
        cuts = tuple(sorted(set(rng.integers(1, len(PPO), size=8).tolist())))
        assert _spike_steps(PPO, PPO_STEPS, cuts) == once


def test_a_sparse_fine_tune_spike_is_found_and_its_fast_drop_is_not() -> None:
    """A fine-tune logging every 100 steps, 20 points: the loss falls 2.1 -> 0.6 (no spike in
    a fast fall) and jumps to 2.4 at step 1200 (4x its recent level)."""
    steps = list(range(100, 2001, 100))
    loss = [2.1, 1.6, 1.3, 1.1, 0.98, 0.9, 0.84, 0.8, 0.76, 0.73, 0.7, 2.4, 0.72, 0.68, 0.66,
            0.65, 0.64, 0.62, 0.61, 0.6]  # fmt: skip
    assert _spike_steps(loss, steps) == [1200]
    calm = [v if s != 1200 else 0.71 for v, s in zip(loss, steps, strict=True)]
    assert _spike_steps(calm, steps) == []


def test_recurrences_far_apart_in_steps_are_separate_and_counted() -> None:
    """A run logging every 100 steps: three jumps 12 points (1,200 steps) apart are three
    spikes (32 points of echo window would be 3,200 steps), each after the first saying how
    many there have been since the first."""
    rng = np.random.default_rng(5)
    n = 200
    loss = 0.5 * np.exp(0.03 * rng.normal(size=n))
    for i, x in ((80, 20.0), (92, 8.0), (104, 6.0)):
        loss[i] *= x
    steps = [100 * i for i in range(n)]
    assert _spike_steps(loss, steps) == [8000, 9200, 10400]
    # logged every step, the same points are echoes of the first spike: one spike
    assert _spike_steps(loss, list(range(n))) == [80]
    rows = [(s, float(s), {"loss": float(v)}) for s, v in zip(steps, loss, strict=True)]
    found = [f for f in diagnose_run(run_of(rows)) if f.kind == "loss_spike"]
    assert [f.evidence["number"] for f in found] == [1, 2, 3]
    assert "3rd spike since step 8000: recurring, clip at p90 (R23)" in found[2].message
    assert "recurring" not in found[0].message


# aaravarora01/agent-memory-redteam @06126f33, trainer_state.json (TRL GRPO), its
# first 24 points: a GRPO objective near 1e-5 that swings to +-0.02-0.03 now and then.
GRPO = [
    -0.020724, 0.020308, 7e-06, 9e-06, 8e-06, 1.3e-05, 9e-06, 1e-05, -0.029814, 0.03128,
    -0.021312, 6e-06, 1.5e-05, 8e-06, 0.022818, 1.1e-05, 1.2e-05, 1e-05, 1.1e-05, 9e-06, 1e-05,
    0.036966, 8e-06, 1e-05,
]  # fmt: skip


def test_a_signed_objective_that_swings_both_ways_has_no_spike() -> None:
    """+0.037 after a few still points is no spike where the same window swung to -0.03: an
    objective of either sign must stand LINEAR_OVER times above the window's largest
    magnitude, not above its last few points. A real jump (0.5) still is one."""
    steps = list(range(1, len(GRPO) + 1))
    assert _spike_steps(GRPO, steps) == []
    jumped = [*GRPO[:21], 0.5, *GRPO[22:]]
    assert _spike_steps(jumped, steps) == [22]
