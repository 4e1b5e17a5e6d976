"""The training loop in-process: clipping (R14, R22), divergence, resume determinism."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from runner import checkpoint
from runner import spec as specmod
from runner.rundir import EXIT_DIVERGED, read_metrics
from runner.train import clip_, total_grad_norm, train

CRASHY = """
from runner.workloads.digits_mlp import digits_mlp

def crashy(*, crash_at=-1, nan_at=-1, **kw):
    w = digits_mlp(**kw)
    inner = w.train_batch

    def train_batch(step, generator):
        if step == crash_at:
            raise RuntimeError("simulated crash")
        x, y = inner(step, generator)
        if step == nan_at:
            x = x * float("nan")
        return x, y

    w.train_batch = train_batch
    return w
"""


def make_spec(**kw: Any) -> specmod.RunSpec:
    d: dict[str, Any] = {
        "workload": "digits_mlp",
        "max_train_steps": 30,
        "eval_every": 10,
        "checkpoint_every": 10,
        "device": "cpu",
    }
    d.update(kw)
    spec = specmod.from_dict(d)
    assert isinstance(spec, specmod.RunSpec)
    return spec


def run(spec: specmod.RunSpec, run_dir: Path, resume: bool = False) -> list[dict[str, Any]]:
    run_dir.mkdir(exist_ok=True)
    train(spec, run_dir, resume=resume, print_fn=lambda *a: None)
    return read_metrics(run_dir)


def curve(rows: list[dict[str, Any]], key: str = "loss") -> dict[int, float]:
    """Step -> value, later rows superseding earlier ones at the same step (as the store does)."""
    return {r["step"]: r[key] for r in rows if key in r}


def test_clip_scales_to_threshold_and_leaves_small_gradients() -> None:
    big = [torch.full((3,), 4.0), torch.full((4,), 3.0)]
    norm = total_grad_norm(big)
    assert float(norm) == pytest.approx(math.sqrt(3 * 16 + 4 * 9))
    clip_(big, norm, 1.0)
    assert float(total_grad_norm(big)) == pytest.approx(1.0, rel=1e-6)
    small = [torch.full((2,), 0.1)]
    before = small[0].clone()
    clip_(small, total_grad_norm(small), 1.0)
    assert torch.equal(small[0], before)


def test_clipping_logs_the_unclipped_norm(tmp_path: Path) -> None:
    free = run(make_spec(max_train_steps=12), tmp_path / "free")
    clipped = run(make_spec(max_train_steps=12, clip_norm=0.05), tmp_path / "clipped")
    f, c = [r for r in free if "loss" in r], [r for r in clipped if "loss" in r]
    # step 0: same weights, same batch: the logged norm is the unclipped one (R14)
    assert c[0]["grad_norm"] == pytest.approx(f[0]["grad_norm"], rel=1e-6)
    assert c[0]["grad_norm"] > 0.05
    assert all(r["clipped"] == int(r["grad_norm"] > 0.05) for r in c)  # R22's condition
    assert sum(r["clipped"] for r in c) == len(c)
    assert all(r["clipped"] == 0 for r in f)
    # the update was clipped: the curves part after step 0
    assert c[1]["loss"] != f[1]["loss"]


def test_rows_have_the_design_fields(tmp_path: Path) -> None:
    rows = run(make_spec(max_train_steps=15, eval_every=5), tmp_path / "r")
    train_rows = [r for r in rows if "loss" in r]
    eval_rows = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in train_rows] == list(range(15))
    assert all(set(r) == {"step", "time", "loss", "grad_norm", "lr", "clipped"} for r in train_rows)
    assert [r["step"] for r in eval_rows] == [4, 9, 14]
    assert all(set(r) == {"step", "time", "val_loss", "val_accuracy"} for r in eval_rows)
    steps = [r["step"] for r in rows]
    assert steps == sorted(steps)  # never backwards in one session: no false restart


def test_checkpoint_every_zero_writes_none(tmp_path: Path) -> None:
    run(make_spec(checkpoint_every=0), tmp_path / "r")
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_best_checkpoint_is_kept_apart(tmp_path: Path) -> None:
    rows = run(make_spec(max_train_steps=30, eval_every=10, checkpoint_every=10), tmp_path / "r")
    best = checkpoint.load(tmp_path / "r" / "checkpoints" / checkpoint.BEST)
    last = checkpoint.load(tmp_path / "r" / "checkpoints" / checkpoint.LAST)
    vals = curve(rows, "val_loss")
    assert best["step"] == min(vals, key=vals.__getitem__)  # R1
    assert last["step"] == 29
    assert best["best_val_loss"] == pytest.approx(min(vals.values()))


def test_divergence_logs_the_bad_step_and_stops(tmp_path: Path) -> None:
    (tmp_path / "crashy.py").write_text(CRASHY)
    spec = make_spec(
        workload=f"{tmp_path / 'crashy.py'}:crashy",
        workload_options={"nan_at": 7},
        max_train_steps=100,
        checkpoint_every=0,
    )
    (tmp_path / "r").mkdir()
    result = train(spec, tmp_path / "r", print_fn=lambda *a: None)
    assert (result.status, result.exit_code, result.last_step) == ("diverged", EXIT_DIVERGED, 7)
    rows = [r for r in read_metrics(tmp_path / "r") if "loss" in r]
    assert [r["step"] for r in rows] == list(range(8))  # the bad step, nothing after it
    assert math.isnan(rows[-1]["loss"])
    assert all(math.isfinite(r["loss"]) for r in rows[:-1])


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_resume_gives_the_same_curve(tmp_path: Path, dropout: float) -> None:
    (tmp_path / "crashy.py").write_text(CRASHY)
    ref = f"{tmp_path / 'crashy.py'}:crashy"
    opts = {"dropout": dropout}
    whole = run(
        make_spec(workload=ref, workload_options=opts, max_train_steps=40), tmp_path / "whole"
    )

    broken = tmp_path / "broken"
    broken.mkdir()
    crash = make_spec(workload=ref, workload_options={**opts, "crash_at": 26}, max_train_steps=40)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(crash, broken, print_fn=lambda *a: None)
    assert checkpoint.load(broken / "checkpoints" / checkpoint.LAST)["step"] == 19
    rows = run(
        make_spec(workload=ref, workload_options=opts, max_train_steps=40), broken, resume=True
    )
    resumed = [r["step"] for r in rows if "loss" in r]
    assert resumed[-20:] == list(range(20, 40))  # appended from the resume step on
    for key in ("loss", "grad_norm", "lr", "val_loss", "val_accuracy"):
        assert curve(rows, key) == curve(whole, key), key  # exact: same ops, same order
