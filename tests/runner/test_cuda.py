"""The runner's CUDA path: every workload in every precision, torch.compile, resume, divergence,
and a study through the command line. Skipped where no GPU is visible (CI has none); run on a
GPU machine with `pytest -m gpu tests/runner/test_cuda.py` (tests/bench/gpu_check.sh)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from test_train import CRASHY  # a digits MLP that raises at step `crash_at`
from test_train import make_spec as base_spec  # from_dict over test_train's defaults

from runner import checkpoint
from runner import spec as specmod
from runner.rundir import EXIT_DIVERGED, read_metrics
from runner.train import train

# TUNETOP_TEST_DEVICE=cpu runs the same tests on the CPU (to check the tests themselves);
# TUNETOP_REQUIRE_GPU=1 (tests/bench/gpu_check.sh) makes a missing GPU a failure, not a skip.
DEVICE = os.environ.get("TUNETOP_TEST_DEVICE", "cuda")
REQUIRE_GPU = os.environ.get("TUNETOP_REQUIRE_GPU") == "1"
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        DEVICE == "cuda" and not torch.cuda.is_available() and not REQUIRE_GPU,
        reason="no CUDA device",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = ("digits_mlp", "tiny_transformer", "tiny_resnet")


def make_spec(**kw: Any) -> specmod.RunSpec:
    defaults: dict[str, Any] = {
        "max_train_steps": 60,
        "eval_every": 20,
        "checkpoint_every": 20,
        "device": DEVICE,
        "optimizer": {"name": "adamw", "lr": 1e-3},
    }
    return base_spec(**{**defaults, **kw})


def train_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if "loss" in r]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("workload", WORKLOADS)
def test_each_workload_trains_on_the_gpu(tmp_path: Path, workload: str, precision: str) -> None:
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    result = train(
        make_spec(workload=workload, precision=precision, max_train_steps=80),
        run_dir,
        print_fn=lambda *a: None,
    )
    assert result.status == "finished", result
    rows = train_rows(read_metrics(run_dir))
    assert [r["step"] for r in rows] == list(range(80))
    # fp16: the GradScaler skips the steps whose scaled gradients overflow while it finds its
    # scale, and their logged norm is inf; a handful, at the start
    bad = [r["step"] for r in rows if not math.isfinite(r["grad_norm"])]
    assert len(bad) <= (8 if precision == "fp16" else 0), bad
    losses = [r["loss"] for r in rows]
    assert all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    if workload != "tiny_resnet":  # the ResNet needs more than 80 steps to leave chance
        assert last < first, (workload, precision, first, last)
    evals = [r for r in read_metrics(run_dir) if "val_loss" in r]
    assert evals and all(math.isfinite(r["val_loss"]) for r in evals)


@pytest.mark.parametrize("workload", ["digits_mlp", "tiny_transformer"])
def test_compiled_model_trains_like_the_eager_one(tmp_path: Path, workload: str) -> None:
    curves = {}
    for compiled in (False, True):
        d = tmp_path / f"c{int(compiled)}"
        d.mkdir()
        spec = make_spec(workload=workload, compile=compiled, max_train_steps=40, eval_every=40)
        assert train(spec, d, print_fn=lambda *a: None).status == "finished"
        curves[compiled] = [r["loss"] for r in train_rows(read_metrics(d))]
    eager, compiled_ = curves[False], curves[True]
    assert len(eager) == len(compiled_) == 40
    # same model, same batches: the first loss agrees closely; the curves stay near each other
    assert compiled_[0] == pytest.approx(eager[0], rel=1e-3)
    assert sum(compiled_[-10:]) == pytest.approx(sum(eager[-10:]), rel=0.05)


def test_resume_on_the_gpu_continues_the_curve(tmp_path: Path) -> None:
    (tmp_path / "crashy.py").write_text(CRASHY)
    ref = f"{tmp_path / 'crashy.py'}:crashy"
    whole = tmp_path / "whole"
    whole.mkdir()
    train(make_spec(workload=ref), whole, print_fn=lambda *a: None)
    broken = tmp_path / "broken"
    broken.mkdir()
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(
            make_spec(workload=ref, workload_options={"crash_at": 45}),
            broken,
            print_fn=lambda *a: None,
        )
    assert checkpoint.load(broken / "checkpoints" / checkpoint.LAST)["step"] == 39
    train(make_spec(workload=ref), broken, resume=True, print_fn=lambda *a: None)
    a = {r["step"]: r["loss"] for r in train_rows(read_metrics(broken))}
    w = {r["step"]: r["loss"] for r in train_rows(read_metrics(whole))}
    assert sorted(a) == list(range(60))
    # GPU kernels need not be bitwise deterministic: close, not equal
    for s in range(40, 60):
        assert a[s] == pytest.approx(w[s], rel=1e-3, abs=1e-4), s


def test_divergence_on_the_gpu_is_a_status_not_a_traceback(tmp_path: Path) -> None:
    d = tmp_path / "r"
    d.mkdir()
    spec = make_spec(
        workload="tiny_transformer",
        optimizer={"name": "sgd", "lr": 1e4},
        max_train_steps=200,
        checkpoint_every=0,
    )
    result = train(spec, d, print_fn=lambda *a: None)
    assert (result.status, result.exit_code) == ("diverged", EXIT_DIVERGED)
    rows = train_rows(read_metrics(d))
    assert not math.isfinite(rows[-1]["loss"])
    assert all(math.isfinite(r["loss"]) for r in rows[:-1])


def test_study_from_the_command_line_runs_on_the_gpu(tmp_path: Path) -> None:
    spec = tmp_path / "study.toml"
    spec.write_text(
        'workload = "digits_mlp"\nmax_train_steps = 50\neval_every = 25\n'
        'device = "auto"\nprecision = "bf16"\n\n[optimizer]\nname = "adamw"\nlr = 1e-3\n\n'
        '[study]\nname = "gpu"\nsearch = "grid"\ngrid = { "optimizer.lr" = [1e-3, 3e-3] }\n'
        "parallel = 2\n"
    )
    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "runner", str(spec), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    trials = sorted(p for p in out.rglob("run.json"))
    assert len(trials) == 2
    for p in trials:
        record = json.loads(p.read_text())
        assert record["status"] == "finished"
        assert len(train_rows(read_metrics(p.parent))) == 50
        # device "auto" picked the GPU where there is one (the trial's own log says so)
        expect = "on cuda" if torch.cuda.is_available() else "on cpu"
        assert expect in (p.parent / "output.log").read_text()
