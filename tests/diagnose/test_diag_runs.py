"""Per-run detectors: what they must find and what they must leave alone (R3, R12-R16, R21,
R24), with severities per DESIGN.md's table and the rule id in every message."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from diag_helpers import make_rows, run_of, store_of

from tui.diagnose.bestpoint import best_point
from tui.diagnose.findings import KINDS
from tui.diagnose.run_checks import RunDetectors, diagnose_run


def _kinds(rows, total=None, hparams=None) -> list[str]:
    return [f.kind for f in diagnose_run(run_of(rows, total, hparams))]


def _loss_rows(values, start: int = 0) -> list:
    return [(start + i, float(i), {"loss": float(v)}) for i, v in enumerate(values)]


def test_severities_rules_and_messages() -> None:
    rows = make_rows(600, seed=1, spikes=(300,), nan_from=500, warmup=160)
    found = diagnose_run(run_of(rows, 600))
    assert found
    for f in found:
        rule, sev = KINDS[f.kind]
        assert f.rule == rule and rule in f.message
        if f.kind != "warmup_too_long":
            assert f.severity == sev
        assert "\n" not in f.message
    div = [f for f in found if f.kind == "divergence"]
    assert len(div) == 1 and div[0].step == 500 and div[0].severity == "error"
    warm = [f for f in found if f.kind == "warmup_too_long"]
    assert warm and warm[0].severity == "warning"  # 160/600 > 25% (R21, DESIGN.md)


def test_one_finding_per_multi_step_spike() -> None:
    rng = np.random.default_rng(0)
    v = 0.5 * np.exp(0.03 * rng.normal(size=400))
    v[200:212] *= np.linspace(8, 2, 12)  # a spike lasting 12 steps
    found = diagnose_run(run_of(_loss_rows(v)))
    spikes = [f for f in found if f.kind == "loss_spike"]
    assert len(spikes) == 1 and spikes[0].step == 200
    ev = spikes[0].evidence
    assert ev["ratio"] > 5 and math.isclose(ev["baseline"], 0.5, rel_tol=0.05)
    assert not any(f.kind == "unstable_training" for f in found)


def test_no_spike_on_fast_drop_noise_or_step_decay() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(1500)
    fast = 3.0 * np.exp(-t / 15) + 0.05
    step_decay = np.where(t < 500, 1.0, np.where(t < 1000, 0.3, 0.1)) * np.exp(
        0.02 * rng.normal(size=t.shape[0])
    )
    noisy = 0.2 * np.exp(0.5 * rng.normal(size=t.shape[0]))  # small-batch noise
    for v in (fast, step_decay, noisy):
        assert "loss_spike" not in _kinds(_loss_rows(v))


def test_divergence_blowup_must_stay_up() -> None:
    v = np.r_[np.linspace(2.0, 0.5, 200), np.full(20, 20.0), np.linspace(0.5, 0.4, 200)]
    kinds = _kinds(_loss_rows(v))
    assert "divergence" not in kinds and "loss_spike" in kinds
    w = np.r_[np.linspace(2.0, 0.5, 200), np.full(50, 20.0)]
    found = diagnose_run(run_of(_loss_rows(w)))
    div = [f for f in found if f.kind == "divergence"]
    assert len(div) == 1 and div[0].step == 200 and div[0].evidence["cause"] == "blow-up"
    # the jump that is the divergence is not reported twice as a spike
    assert not any(f.kind == "loss_spike" for f in found)


def test_unstable_training_step_and_phase() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(2000)
    v = np.where(t < 800, 2.0 * np.exp(-t / 200) + 0.2, 0.2 + 0.0015 * (t - 800))
    v = v * np.exp(0.03 * rng.normal(size=t.shape[0]))
    found = [f for f in diagnose_run(run_of(_loss_rows(v), 2000)) if f.kind == "unstable_training"]
    assert len(found) == 1
    assert abs(found[0].step - 800) <= 120 and found[0].evidence["phase"] == "mid"
    early = [f for f in diagnose_run(run_of(_loss_rows(v), 20000)) if f.kind == "unstable_training"]
    assert early[0].evidence["phase"] == "early"


def test_no_unstable_on_plateau_noise_or_recovering_spike() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(3000)
    v = (1.5 * np.exp(-t / 300) + 0.3) * np.exp(0.3 * rng.normal(size=t.shape[0]))
    v[1500:1560] *= np.linspace(4, 1, 60)
    assert "unstable_training" not in _kinds(_loss_rows(v))


def test_grad_norm_outlier_one_finding_with_p90() -> None:
    rng = np.random.default_rng(4)
    g = np.exp(0.2 * rng.normal(size=800))
    g[[300, 500, 501, 700]] = [20.0, 50.0, 50.0, 30.0]
    rows = [(i, float(i), {"loss": 1.0, "grad_norm": float(x)}) for i, x in enumerate(g)]
    found = [f for f in diagnose_run(run_of(rows)) if f.kind == "grad_norm_outlier"]
    # one finding, naming the worst episode (not the first), counting them all
    assert len(found) == 1 and found[0].step == 500 and found[0].severity == "info"
    assert found[0].evidence["episodes"] == 3 and found[0].evidence["p90"] > 0
    assert found[0].evidence["first_step"] == 300 and "worst of 3" in found[0].message
    # a flat loss: heavy tails, no claim that they explain an instability
    assert "stayed stable" in found[0].message and "explain" not in found[0].message


def test_grad_norm_outlier_links_to_instability_only_where_the_loss_is_unstable() -> None:
    """R14: outliers explain instability where the loss spikes at or right after them; a
    grad norm whose level drifts up over the run (an SFT's) is no outlier."""
    rng = np.random.default_rng(4)
    n = 800
    g = np.exp(0.2 * rng.normal(size=n))
    loss = 0.5 * np.exp(0.03 * rng.normal(size=n))
    g[500] = 60.0
    loss[501:503] *= 8.0  # the loss spikes the step after the norm
    rows = [
        (i, float(i), {"loss": float(a), "grad_norm": float(x)})
        for i, (a, x) in enumerate(zip(loss, g, strict=True))
    ]
    (f,) = [f for f in diagnose_run(run_of(rows)) if f.kind == "grad_norm_outlier"]
    assert f.evidence["unstable_steps"] == [501] and "explain the instability" in f.message
    drift = np.linspace(1.0, 2.5, n) * np.exp(0.1 * rng.normal(size=n))
    rows = [(i, float(i), {"loss": 1.0, "grad_norm": float(x)}) for i, x in enumerate(drift)]
    assert "grad_norm_outlier" not in _kinds(rows)


def test_clipping_from_hparams_when_not_logged() -> None:
    rows = [(i, float(i), {"loss": 1.0, "grad_norm": 2.0 + (i % 3)}) for i in range(100)]
    found = diagnose_run(run_of(rows, hparams={"max_grad_norm": 1.0}))
    clip = [f for f in found if f.kind == "clipping_too_aggressive"]
    assert clip and clip[0].evidence["fraction"] == 1.0 and clip[0].severity == "warning"
    assert not any(
        f.kind == "clipping_too_aggressive"
        for f in diagnose_run(run_of(rows, hparams={"clip_norm": 10.0}))
    )


def test_best_point_and_r3() -> None:
    rows = make_rows(1000, seed=6, val_every=50)
    run = run_of(rows, 1000)
    bp = best_point(run)
    assert bp is not None and bp["metric"] == "val_loss"
    assert bp["fraction"] == (bp["step"] + 1) / 1000
    # val best early: the val loss climbs after step 60 (overfitting)
    over = [(s, t, {"val_loss": 1.0 + abs(s - 60) / 100}) for s, t, m in rows if "val_loss" in m]
    kinds = _kinds([r for r in rows if "val_loss" not in r[2]] + over, 1000)
    # R1 says it: the best checkpoint is behind; best_step_early would repeat that fact
    assert "overfitting" in kinds and "best_step_early" not in kinds
    # a val loss that bottoms early and stays there (no sustained rise): R3's early side
    flat = [(s, t, {"val_loss": 1.0 + (0.0 if s >= 60 else 0.1)}) for s, t, m in over]
    kinds = _kinds([r for r in rows if "val_loss" not in r[2]] + flat, 1000)
    assert "best_step_early" in kinds and "overfitting" not in kinds
    # a live run (half way, plan known) is not flagged late
    half = [r for r in rows if r[0] < 500]
    assert "best_step_late" not in _kinds(half, 1000)
    # rows' val_loss is flat within its noise from step ~600: its best in the last 25% is
    # noise, not a reason to train longer (R3)
    assert "best_step_late" not in _kinds(rows, 1000)
    # still improving at the end: late
    falling = [(s, t, {"val_loss": 1.0 - s / 2000}) for s, t, m in rows if "val_loss" in m]
    late = RunDetectors(1000, {})
    late.update(store_of([r for r in rows if "val_loss" not in r[2]] + falling))
    assert any(f.kind == "best_step_late" and f.severity == "info" for f in late.findings)
    # no validation loss: the training loss' best is not judged by R3
    assert best_point(run_of([r for r in rows if "val_loss" not in r[2]]))["metric"] == "loss"


def test_best_point_ignores_non_finite() -> None:
    rows = _loss_rows([3.0, float("nan"), 1.0, float("-inf"), 2.0])
    bp = best_point(run_of(rows))
    assert bp == {"metric": "loss", "step": 2, "value": 1.0, "fraction": 3 / 5}


def test_warmup_from_hparams_and_series() -> None:
    rows = make_rows(1000, seed=7, warmup=70)
    warm = [f for f in diagnose_run(run_of(rows, 1000)) if f.kind == "warmup_too_long"]
    assert len(warm) == 1 and warm[0].severity == "info"
    assert warm[0].evidence["source"] == "lr series" and warm[0].evidence["warmup_steps"] == 70
    hp = [
        f
        for f in diagnose_run(run_of(make_rows(1000, seed=7), 1000, {"schedule.warmup_steps": 300}))
        if f.kind == "warmup_too_long"
    ]
    assert hp[0].severity == "warning" and hp[0].evidence["source"] == "hparams"
    assert "warmup_too_long" not in _kinds(make_rows(1000, seed=7, warmup=40), 1000)


def test_second_spike_inside_the_first_ones_window_is_found() -> None:
    """The first spike's points are left out of later baselines: a second spike of the same
    height 40 points later (inside the 64-point window, past the echo span) is not hidden
    behind it (R13)."""
    from diag_helpers import make_rows, run_of

    from tui.diagnose.run_checks import diagnose_run

    rows = make_rows(600, seed=5, spikes=(300, 340))
    spikes = [f.step for f in diagnose_run(run_of(rows, 600)) if f.kind == "loss_spike"]
    assert spikes == [300, 340]


def _jumps(
    loss: np.ndarray, cuts: tuple[int, ...] = (), steps: list[int] | None = None
) -> list[int]:
    """Steps of the loss spikes JumpDetector finds, the points fed in pieces cut at `cuts`."""
    from tui.diagnose.spikes import LOSS_SPIKE, JumpDetector

    st = np.asarray(steps) if steps is not None else np.arange(loss.shape[0])
    det = JumpDetector(LOSS_SPIKE)
    bounds = [0, *cuts, loss.shape[0]]
    return [j.step for a, b in itertools.pairwise(bounds) for j in det.consume(st, loss, a, b)]


def test_an_echo_is_part_of_its_spike_and_a_higher_jump_is_not() -> None:
    """R13, one finding per spike: the damage of a bad step often shows again a few steps
    after the loss calmed down (momentum carries the update on). A lower bump 12 points after
    a spike is its echo; a higher one is a new spike; a lower one 60 points later is too."""
    rng = np.random.default_rng(11)
    base = 0.5 * np.exp(0.05 * rng.normal(size=400))

    def with_bumps(*bumps: tuple[int, float]) -> np.ndarray:
        loss = base.copy()
        for at, x in bumps:
            loss[at] *= x
        return loss

    assert _jumps(with_bumps((200, 20.0), (212, 5.0))) == [200]
    assert _jumps(with_bumps((200, 5.0), (212, 20.0))) == [200, 212]
    assert _jumps(with_bumps((200, 20.0), (260, 5.0))) == [200, 260]


def _evalset_run(name: str) -> tuple[dict[str, Any], np.ndarray]:
    from evalset_eval import load

    (rec,) = [r for r in load() if r["name"] == name]
    return rec, np.asarray([float(v) for v in rec["rows"]["loss"]])


def test_a_peak_with_a_tail_is_found_in_real_noisy_runs() -> None:
    """Real training (the committed evaluation set): LR spikes in small-batch SGD runs whose
    first point is 4-24x the median but only 3-4 robust sd out, because the log-loss noise is
    wide, and whose next points stay in the window's top decile while the model recovers
    (regression batch 16 logged every 5 steps: 2.47 then 0.50, 0.34, 0.28 over a median
    0.10; digits batch 8). Ordinary noise does not stay up after its peak."""
    for name, at in (
        ("spike10_regression_mlp_sgd_bs16_lr", 670),
        ("spike01_digits_mlp_sgd_bs8_lr", 586),
    ):
        rec, loss = _evalset_run(name)
        steps = rec["rows"]["step"]
        i = steps.index(at)
        found = [steps.index(s) for s in _jumps(loss, steps=steps)]
        assert any(abs(f - i) <= 3 for f in found), (name, found)


def test_a_spike_found_from_its_start_names_the_step_of_its_value() -> None:
    """Real training (committed evaluation set, digits batch 8, LR spike): the loss rises at
    step 130 (0.65) and peaks at 131 (8.0). The finding starts at 130 and its message and
    evidence say where the value it quotes was logged."""
    from evalset_eval import to_run

    from tui.diagnose.run_checks import diagnose_run

    rec, _ = _evalset_run("spike01_digits_mlp_sgd_bs8_lr")
    (f,) = [f for f in diagnose_run(to_run(rec)) if f.kind == "loss_spike" and f.step == 130]
    assert f.evidence["peak_step"] == 131
    assert f.evidence["value"] == pytest.approx(8.045, rel=1e-3)
    assert "8.045 at step 131 (rising from step 130)" in f.message


@pytest.mark.parametrize(
    "name",
    [
        "spike01_digits_mlp_sgd_bs8_lr",
        "spike05_regression_mlp_adam_bs64_batch",
        "spike10_regression_mlp_sgd_bs16_lr",
        "clean07_digits_mlp_plain_bs2",
    ],
)
def test_real_runs_give_the_same_jumps_however_the_points_arrive(name: str) -> None:
    """Echoes, tails (verdicts about earlier points) and masks on real noisy runs: point by
    point and in uneven pieces, the same jumps as at once."""
    rec, loss = _evalset_run(name)
    steps = rec["rows"]["step"]
    once = _jumps(loss, steps=steps)
    n = loss.shape[0]
    assert bool(once) == (rec["kind"] == "spike")
    assert _jumps(loss, tuple(range(1, n)), steps) == once
    rng = np.random.default_rng(7)
    for _ in range(5):
        cuts = tuple(sorted(set(rng.integers(1, n, size=20).tolist())))
        assert _jumps(loss, cuts, steps) == once


def test_spike_straddling_a_block_boundary_is_found() -> None:
    """Real training (the committed evaluation set: an MLP regression, SGD, batch 16): the LR
    spike at step 607 lifts the loss from 0.23 to 2.19, 1.92, 1.55, ... Its first point is the
    last of a 16-point block; the next block's baseline must not count it, or the points after
    it are not above the window's maximum any more."""
    import numpy as np
    from evalset_eval import load

    from tui.diagnose.spikes import LOSS_SPIKE, JumpDetector

    (rec,) = [r for r in load() if r["name"] == "spike04_regression_mlp_sgd_bs16_lr"]
    steps = np.asarray(rec["rows"]["step"])
    loss = np.asarray([float(v) for v in rec["rows"]["loss"]])
    assert 607 in rec["spikes"] and (607 + 1) % LOSS_SPIKE.block == 0
    found = [j.step for j in JumpDetector(LOSS_SPIKE).consume(steps, loss, 0, len(loss))]
    assert any(abs(s - 607) <= 3 for s in found), found
