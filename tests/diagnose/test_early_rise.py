"""Early instability (R13): the loss climbing above its start in the first steps, seen on real
training by the runner (a post-LN transformer with Adam and no warmup), never on healthy runs."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from diag_helpers import Rows, make_rows, run_of

from tui.diagnose.findings import Finding
from tui.diagnose.run_checks import RunDetectors, diagnose_run
from tui.logs.batch import ColumnBatch
from tui.logs.store import RunStore

STEPS = 200


def train_rows(tmp_path: Path, lr: float) -> Rows:
    """The rows of a real 200-step run of the post-LN transformer, Adam at `lr`, no warmup."""
    from runner import spec as specmod
    from runner.rundir import read_metrics
    from runner.train import train

    spec = specmod.from_dict(
        {
            "workload": "tiny_transformer",
            "max_train_steps": STEPS,
            "eval_every": STEPS,
            "checkpoint_every": 0,
            "device": "cpu",
            "optimizer": {"name": "adam", "lr": lr},
            "schedule": {"kind": "constant"},
        }
    )
    assert isinstance(spec, specmod.RunSpec)
    d = tmp_path / f"lr{lr:g}"
    d.mkdir()
    train(spec, d, print_fn=lambda *a: None)
    rows: Rows = []
    for r in read_metrics(d):
        if "loss" in r:
            rows.append((r["step"], r["time"], {"loss": r["loss"], "grad_norm": r["grad_norm"]}))
    return rows


def early(findings: list[Finding]) -> list[Finding]:
    return [
        f
        for f in findings
        if f.kind == "unstable_training" and f.evidence.get("cause") == "rise_from_start"
    ]


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Rows]:
    tmp = tmp_path_factory.mktemp("early")
    return {lr: train_rows(tmp, lr) for lr in (0.003, 0.1)}


def test_adam_too_fast_for_a_post_ln_transformer_is_early_instability(
    real_runs: dict[float, Rows],
) -> None:
    found = early(diagnose_run(run_of(real_runs[0.1], STEPS)))
    assert len(found) == 1
    f = found[0]
    assert f.step == 0 and f.severity == "warning" and f.rule == "R12"
    assert f.evidence["phase"] == "early"
    assert f.evidence["ratio"] > 1.3  # the first updates pushed the loss well above its start
    assert f.evidence["peak_step"] < 0.1 * STEPS
    assert "R13: early instability" in f.message and "warmup" in f.message
    assert "at step 0" in f.message


def test_a_rate_that_trains_is_not_flagged(real_runs: dict[float, Rows]) -> None:
    assert early(diagnose_run(run_of(real_runs[0.003], STEPS))) == []


def test_streaming_equals_at_once_on_the_real_run(real_runs: dict[float, Rows]) -> None:
    rows = real_runs[0.1]
    whole = RunDetectors(STEPS)
    store = RunStore()
    store.append(ColumnBatch.from_records(rows))
    whole.update(store)
    for cuts in ([1, 2, 3], list(range(1, len(rows))), [15, 16, 17, 31, 33]):
        det, st = RunDetectors(STEPS), RunStore()
        bounds = [0, *cuts, len(rows)]
        for a, b in itertools.pairwise(bounds):
            st.append(ColumnBatch.from_records(rows[a:b]))
            det.update(st)
        assert early(det.findings) == early(whole.findings) != []


@pytest.mark.parametrize("noise", [0.02, 0.1, 0.3])
def test_healthy_noisy_runs_are_not_flagged(noise: float) -> None:
    """Loss decaying from its start with multiplicative noise, also when it is large."""
    for seed in range(20):
        rows = make_rows(600, seed=seed, noise=noise)
        assert early(diagnose_run(run_of(rows, 600))) == [], (noise, seed)


def test_a_flat_noisy_start_is_not_flagged() -> None:
    """A fine-tuning-like run: it starts low and stays about flat in heavy noise; the first
    point may be a lucky low one, and the rest above it by chance alone."""
    rng = np.random.default_rng(7)
    for seed in range(20):
        loss = 0.4 * np.exp(0.25 * rng.normal(size=400))
        rows: Rows = [(i, float(i), {"loss": float(v)}) for i, v in enumerate(loss)]
        assert early(diagnose_run(run_of(rows, 400))) == [], seed


def test_rise_needs_the_early_window(real_runs: dict[float, Rows]) -> None:
    """The same rise, when the run is planned 20x longer, still lies in its first 10%; a run too
    short to hold 16 points in its first 10% gets no verdict."""
    assert early(diagnose_run(run_of(real_runs[0.1], STEPS * 20)))
    assert early(diagnose_run(run_of(real_runs[0.1][:40], 100))) == []
