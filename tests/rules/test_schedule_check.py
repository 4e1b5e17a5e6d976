"""R7: lr series made by torch's own schedulers; only irregular piecewise drops are flagged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tui.diagnose.schedule_check import find_drops, hand_made_schedule


def lr_series(make_scheduler, steps: int = 3000, every: int = 1) -> tuple[np.ndarray, np.ndarray]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make_scheduler(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    lr = np.array(out)
    s = np.arange(steps)
    return s[::every], lr[::every]


class ManualDrops:
    """What a person does by hand: cut the rate when the validation curve looks flat."""

    def __init__(self, opt: torch.optim.Optimizer, at: dict[int, float]) -> None:
        self.opt, self.at, self.n = opt, at, 0

    def step(self) -> None:
        self.n += 1
        if self.n in self.at:
            for g in self.opt.param_groups:
                g["lr"] *= self.at[self.n]


@pytest.mark.parametrize(
    "make",
    [
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=700, gamma=0.1),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=3000),
        lambda o: torch.optim.lr_scheduler.LinearLR(o, 1.0, 0.0, total_iters=3000),
        lambda o: torch.optim.lr_scheduler.SequentialLR(
            o,
            [
                torch.optim.lr_scheduler.LinearLR(o, 0.01, 1.0, total_iters=300),
                torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=2700),
            ],
            milestones=[300],
        ),
        lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=1.0),
    ],
    ids=["steplr", "cosine", "linear", "warmup+cosine", "constant"],
)
@pytest.mark.parametrize("every", [1, 50])
def test_standard_schedules_are_not_flagged(make, every: int) -> None:
    steps, lr = lr_series(make, every=every)
    assert hand_made_schedule(steps, lr) is None


@pytest.mark.parametrize("every", [1, 10])
def test_manual_irregular_drops_are_flagged(every: int) -> None:
    steps, lr = lr_series(lambda o: ManualDrops(o, {900: 0.1, 2100: 0.3, 2450: 0.1}), every=every)
    f = hand_made_schedule(steps, lr)
    assert f is not None
    assert f.kind == "hand_made_schedule" and f.rule == "R7" and f.severity == "info"
    drop_steps = [d["step"] for d in f.evidence["drops"]]
    assert len(drop_steps) == 3
    for got, want in zip(drop_steps, (900, 2100, 2450), strict=True):
        assert abs(got - want) <= every
    assert "R7" in f.message


class Plateau:
    """ReduceLROnPlateau fed a validation loss that stalls at uneven steps (an automated rule:
    drops by one factor at irregular steps, R7), clamped at min_lr."""

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        self.s = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=100, min_lr=0.1 * 0.5**3 * 0.6
        )
        self.n = 0
        self.best = 1.0

    def step(self) -> None:
        self.n += 1
        # one "validation" per step: it stalls for 130 steps from 400, 1300, 1900 and 2500
        stalled = any(a <= self.n < a + 130 for a in (400, 1300, 1900, 2500))
        self.best = self.best if stalled else self.best * 0.999
        self.s.step(self.best)


@pytest.mark.parametrize(
    "make",
    [
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[500, 2200, 2600], gamma=0.2),
        Plateau,
    ],
    ids=["multistep", "reduce-on-plateau"],
)
def test_constant_factor_drops_at_uneven_steps_are_not_flagged(make) -> None:
    """R7 accepts an automated, reproducible rule: drops by one factor at irregular steps are
    what ReduceLROnPlateau makes (its last drop clamped at min_lr), and MultiStepLR's cannot be
    told from them by the lr series."""
    steps, lr = lr_series(make)
    assert len(find_drops(steps, lr)) >= 3
    assert hand_made_schedule(steps, lr) is None


def test_one_drop_is_not_a_pattern() -> None:
    steps, lr = lr_series(lambda o: ManualDrops(o, {1500: 0.1}))
    assert len(find_drops(steps, lr)) == 1
    assert hand_made_schedule(steps, lr) is None


def test_run_detectors_report_it_the_same_at_once_or_point_by_point() -> None:
    from tui.diagnose.run_checks import RunDetectors
    from tui.logs.batch import Column, ColumnBatch
    from tui.logs.store import RunStore

    steps, lr = lr_series(lambda o: ManualDrops(o, {900: 0.1, 2100: 0.3, 2450: 0.1}), every=7)
    loss = np.linspace(2.0, 0.5, steps.size)

    def feed(chunks: list[tuple[int, int]]) -> list[str]:
        store, det = RunStore(), RunDetectors(3000, {})
        for a, b in chunks:
            store.append(
                ColumnBatch(
                    steps[a:b], np.zeros(b - a), {"lr": Column(lr[a:b]), "loss": Column(loss[a:b])}
                )
            )
            det.update(store)
        return [f.to_json()["message"] for f in det.findings if f.kind == "hand_made_schedule"]

    at_once = feed([(0, steps.size)])
    one_by_one = feed([(i, i + 1) for i in range(steps.size)])
    assert len(at_once) == 1 and at_once == one_by_one
