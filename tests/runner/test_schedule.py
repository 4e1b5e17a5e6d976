"""runner.schedule: warmup (R18), the constant phase after it, the base schedule (R7), and
warmup prepended to a baseline keeping its steps (R20)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from runner.schedule import lr_at, lr_curve
from runner.spec import OptimizerSpec, RunSpec, ScheduleSpec

LR = 0.3


def _spec(kind: str, max_train_steps: int, warmup: int = 0, post: int = 0) -> RunSpec:
    return RunSpec(
        max_train_steps=max_train_steps,
        optimizer=OptimizerSpec(name="sgd", lr=LR),
        schedule=ScheduleSpec(kind=kind, warmup_steps=warmup, post_warmup_steps=post),
    )


def test_r20_warmup_prepended_to_a_cosine_baseline() -> None:
    spec = _spec("cosine", 10_000, warmup=1_000)
    assert spec.total_steps == 11_000  # R20: 1,000 + 10,000
    assert lr_at(0, spec) == 0.0
    assert lr_at(1, spec) == pytest.approx(LR / 1000)
    assert lr_at(500, spec) == pytest.approx(LR / 2)
    assert lr_at(999, spec) == pytest.approx(LR * 0.999)
    assert lr_at(1_000, spec) == pytest.approx(LR)  # the base schedule starts at its peak
    assert lr_at(6_000, spec) == pytest.approx(LR / 2)  # half way through the cosine
    last = lr_at(10_999, spec)
    assert 0 < last < LR * 1e-6  # cosine decays to ~0 at the last step
    assert last == pytest.approx(LR * 0.5 * (1 + math.cos(math.pi * 9_999 / 10_000)))
    assert lr_at(11_000, spec) == 0.0  # past the end: the schedule's end value


def test_warmup_study_trial() -> None:
    """R18/R19: warmup W, post_warmup 2W, constant, max_train_steps 0."""
    w = 100
    spec = _spec("constant", 0, warmup=w, post=2 * w)
    assert spec.total_steps == 3 * w
    assert lr_at(0, spec) == 0.0
    assert lr_at(50, spec) == pytest.approx(LR / 2)
    assert lr_at(99, spec) == pytest.approx(LR * 0.99)
    for s in (100, 150, 200, 299):
        assert lr_at(s, spec) == LR


def test_post_warmup_then_linear_decay() -> None:
    spec = _spec("linear", 100, warmup=10, post=20)
    assert spec.total_steps == 130
    assert lr_at(5, spec) == pytest.approx(LR / 2)
    assert lr_at(10, spec) == LR
    assert lr_at(29, spec) == LR
    assert lr_at(30, spec) == pytest.approx(LR)  # p = 0
    assert lr_at(80, spec) == pytest.approx(LR / 2)  # p = 1/2
    assert lr_at(129, spec) == pytest.approx(LR / 100)  # p = 99/100
    assert lr_at(130, spec) == 0.0


def test_no_warmup_starts_at_peak() -> None:
    for kind in ("constant", "linear", "cosine"):
        assert lr_at(0, _spec(kind, 50)) == LR


def test_constant_stays_constant() -> None:
    spec = _spec("constant", 1000)
    assert {lr_at(s, spec) for s in (0, 500, 999, 5000)} == {LR}


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
@pytest.mark.parametrize(("m", "w", "p"), [(100, 0, 0), (100, 10, 20), (0, 10, 20), (37, 5, 0)])
def test_curve_matches_lr_at(kind: str, m: int, w: int, p: int) -> None:
    spec = _spec(kind, m, warmup=w, post=p)
    steps = np.arange(spec.total_steps + 5)
    curve = lr_curve(spec, steps)
    assert curve.dtype == np.float64
    np.testing.assert_allclose(curve, [lr_at(int(s), spec) for s in steps], rtol=1e-14, atol=0)
    assert len(lr_curve(spec)) == spec.total_steps


def test_curve_is_monotone_in_each_phase() -> None:
    spec = _spec("cosine", 200, warmup=20, post=40)
    c = lr_curve(spec)
    assert np.all(np.diff(c[:21]) > 0)  # ramp up
    assert np.all(c[20:60] == LR)
    assert np.all(np.diff(c[60:]) < 0)  # decay
    assert c.max() == LR and c.min() == 0.0


def test_negative_step_is_an_error() -> None:
    with pytest.raises(ValueError):
        lr_at(-1, _spec("constant", 10))
    with pytest.raises(ValueError):
        lr_curve(_spec("constant", 10), np.array([-1, 0]))
