"""Checkpoints: atomic under kill -9 (issue 8 item 3), and --resume after it."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from runner import checkpoint
from runner.rundir import read_metrics

# A checkpoint every step, of a model big enough (~1 MB of state) that much of the run is
# spent saving, so that a kill at a random moment often lands inside a save.
SPEC = """
workload = "digits_mlp"
name = "kill"
max_train_steps = {steps}
eval_every = 10
checkpoint_every = 1
device = "cpu"
[workload_options]
hidden = 256
depth = 2
"""


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))


def start_run(tmp_path: Path, spec: str) -> tuple[subprocess.Popen[bytes], Path]:
    """`python -m runner` on `spec` in the background, and the run folder it prints first."""
    (tmp_path / "s.toml").write_text(spec)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "s.toml", "--out", "out"],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    return proc, tmp_path / proc.stdout.readline().decode().strip()


def inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def wait_for(
    path: Path, proc: subprocess.Popen[bytes], deadline_s: float = 60, old_inode: int | None = None
) -> bool:
    """Until `path` exists as a file other than `old_inode` (os.replace makes a new inode);
    False when the run ended first."""
    deadline = time.monotonic() + deadline_s
    while inode(path) in (None, old_inode):
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"no {path} within {deadline_s} s"
        time.sleep(0.01)  # polling a file with a deadline, not a synchronisation sleep
    return True


def test_save_atomic_replaces_whole_files(tmp_path: Path) -> None:
    checkpoint.save(tmp_path, checkpoint.LAST, {"step": 1})
    (tmp_path / "checkpoints" / ".last.pt.999.tmp").write_bytes(b"half a file")  # a kill -9
    checkpoint.save(tmp_path, checkpoint.LAST, {"step": 2})
    assert checkpoint.load(tmp_path / "checkpoints" / "last.pt")["step"] == 2
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["last.pt"]


def kill_rounds(tmp_path: Path, rounds: int, steps: int) -> None:
    proc, folder = start_run(tmp_path, SPEC.format(steps=steps))
    rng = random.Random(0)
    last = folder / "checkpoints" / "last.pt"
    kills = 0
    for _ in range(rounds):
        if not wait_for(last, proc, old_inode=inode(last)):  # this process is saving now
            break  # it finished first: nothing left to interrupt
        time.sleep(rng.uniform(0.0, 0.5))  # a random moment to kill at, not a sync point
        proc.kill()
        proc.wait()
        kills += 1
        state = checkpoint.load(last)  # never a partial file
        assert 0 <= state["step"] < steps
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "--resume", str(folder)],
            cwd=tmp_path,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    assert proc.wait(timeout=300) == 0
    assert kills >= 1
    record = json.loads((folder / "run.json").read_text())
    assert (record["status"], record["exit_code"]) == ("finished", 0)
    steps_logged = {r["step"] for r in read_metrics(folder) if "loss" in r}
    assert steps_logged == set(range(steps))  # every step logged at least once
    final = checkpoint.load(last)
    assert final["step"] == steps - 1
    assert all(torch.isfinite(v).all() for v in final["model"].values())


def test_kill_9_during_checkpoint_saves_then_resume(tmp_path: Path) -> None:
    kill_rounds(tmp_path, rounds=2, steps=60)


@pytest.mark.slow
def test_kill_9_many_rounds(tmp_path: Path) -> None:
    kill_rounds(tmp_path, rounds=25, steps=600)


def test_sigterm_stops_with_a_checkpoint_to_resume(tmp_path: Path) -> None:
    proc, folder = start_run(
        tmp_path, SPEC.format(steps=100_000).replace("checkpoint_every = 1", "checkpoint_every = 0")
    )
    wait_for(folder / "metrics.jsonl", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    record = json.loads((folder / "run.json").read_text())
    assert (record["status"], record["exit_code"]) == ("stopped", 143)
    assert not (folder / "checkpoints").exists()  # checkpoint_every = 0: none, even here
