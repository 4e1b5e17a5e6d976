"""Helpers for the dashboard tests: sample runs written by the tests themselves (fixed values,
fixed times, so snapshots are stable), screen text and waiting with a deadline. A module of its
own, not conftest.py, because several test folders have a conftest and `from conftest import`
gets whichever one was imported first."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tui.app import TunetopApp


T0 = 1_700_000_000.0  # fixed wall-clock origin: snapshots must not depend on today


def curve(step: int, lr: float = 0.01, spike_at: int | None = None) -> dict[str, float]:
    """A deterministic training curve: decaying loss with a wobble, a grad norm around 1."""
    loss = 2.5 * math.exp(-step / 60.0) + 0.3 + 0.05 * math.sin(step * 0.7)
    grad = 1.0 + 0.3 * math.sin(step * 1.3) + (0.8 if step % 17 == 0 else 0.0)
    if spike_at is not None and step == spike_at:
        loss *= 8.0
        grad *= 12.0
    return {
        "step": step,
        "time": T0 + step * 0.5,
        "loss": round(loss, 6),
        "grad_norm": round(grad, 6),
        "lr": lr * min(1.0, (step + 1) / 20.0),
        "clipped": 1 if grad > 1.5 else 0,
    }


def write_run(
    folder: Path,
    steps: int,
    lr: float = 0.01,
    spike_at: int | None = None,
    val_every: int = 25,
    diverge_at: int | None = None,
    run_json: dict[str, object] | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in range(steps):
        rec = curve(s, lr, spike_at)
        if diverge_at is not None and s >= diverge_at:
            rec["loss"] = float("nan")
        lines.append(json.dumps(rec))
        if val_every and s % val_every == val_every - 1:
            val = 2.2 * math.exp(-s / 70.0) + 0.4 + (lr - 0.01) ** 2
            lines.append(json.dumps({"step": s, "time": T0 + s * 0.5, "val_loss": round(val, 6)}))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if run_json is not None:
        (folder / "run.json").write_text(json.dumps(run_json))
    return folder


def append_lines(path: Path, records: list[dict[str, object]]) -> None:
    with open(path, "a") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
        fh.flush()


WaitFor = Callable[..., object]


def screen_text(app: object) -> str:
    """The screen as plain text, one line per row (what a person would search)."""
    strips = app.screen._compositor.render_strips()  # type: ignore[attr-defined]
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


async def wait_until(pilot: object, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition with a deadline (never a bare sleep as synchronisation)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.02)  # type: ignore[attr-defined]


async def wait_exited(pilot: object, app: TunetopApp) -> None:
    """Wait until the app has quit (or is on its way out, its exit screen rendered)."""
    await wait_until(pilot, lambda: not app.is_running or app._exit_renderables is not None)


def runner_spec(steps: int = 30, lr: float = 0.001) -> dict[str, object]:
    """A resolved spec as the runner writes it into run.json: a tiny CPU digits MLP."""
    from runner import spec as rspec

    spec = rspec.RunSpec(
        workload="digits_mlp",
        name="base",
        max_train_steps=steps,
        batch_size=32,
        eval_every=10,
        checkpoint_every=0,
        device="cpu",
    )
    spec.optimizer = rspec.OptimizerSpec(name="adam", lr=lr)
    spec.schedule = rspec.ScheduleSpec(kind="constant")
    return rspec.to_dict(spec)


def write_runner_run(
    folder: Path, steps: int = 30, lr: float = 0.001, diverge_at: int | None = None
) -> Path:
    """A finished run that looks made by the runner (run.json with its spec): every remedy
    plan for it can be launched. Its metrics are the fixed curve (grad_norm every step)."""
    run_json = {
        "spec": runner_spec(steps, lr),
        "hparams": {"optimizer.lr": lr, "max_train_steps": steps},
        "max_train_steps": steps,
        "total_steps": steps,
        "status": "finished",
        "pid": 1,
        "started": T0,
        "ended": T0 + steps,
        "exit_code": 0,
        "remedy": None,
    }
    return write_run(folder, steps, lr=lr, val_every=10, diverge_at=diverge_at, run_json=run_json)


def defunct_children(pid: int | None = None) -> list[str]:
    """`ps` lines of zombie (<defunct>) children of `pid` (default: this process)."""
    out = subprocess.run(
        ["ps", "-o", "pid=,stat=,args=", "--ppid", str(pid or os.getpid())],
        capture_output=True,
        text=True,
        check=False,
    )
    rows = [line.split(None, 2) for line in out.stdout.splitlines()]
    return [" ".join(r) for r in rows if len(r) >= 2 and r[1].startswith("Z")]
