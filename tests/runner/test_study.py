"""Studies as child processes, stopping them, and a 2-process torchrun (DDP, gloo) run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from runner.rundir import read_metrics
from tui.remedy.supervise import pid_alive

STUDY = """
workload = "digits_mlp"
name = "base"
max_train_steps = 10
eval_every = 5
checkpoint_every = 0
device = "cpu"
[study]
name = "lr_sweep"
search = "grid"
grid = { "optimizer.lr" = [0.001, 0.01] }
parallel = 2
"""


def env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), **extra)


def test_two_trial_study(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(STUDY)
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "s.toml", "--out", "out"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (study,) = (tmp_path / "out").iterdir()
    assert study.name.startswith("lr_sweep-")
    assert proc.stdout.splitlines()[0] == f"out/{study.name}"
    assert sorted(p.name for p in study.iterdir()) == ["spec.toml", "study.json", "t000", "t001"]
    summary = json.loads((study / "study.json").read_text())
    assert summary["status"] == "finished"
    assert [t["overrides"] for t in summary["trials"]] == [
        {"optimizer.lr": 0.001},
        {"optimizer.lr": 0.01},
    ]
    lrs = []
    for trial in ("t000", "t001"):
        record = json.loads((study / trial / "run.json").read_text())
        assert (record["status"], record["exit_code"]) == ("finished", 0)
        assert record["pid"] != os.getpid()
        lrs.append(record["hparams"]["optimizer.lr"])
        assert [r["step"] for r in read_metrics(study / trial) if "loss" in r] == list(range(10))
        assert "eval step 9" in (study / trial / "output.log").read_text()
    assert lrs == [0.001, 0.01]


def test_stopping_a_study_stops_every_process(tmp_path: Path) -> None:
    # a trial that ignores SIGTERM and leaves a grandchild: the group gets SIGKILL after grace
    (tmp_path / "stubborn.py").write_text(
        "import signal, subprocess, sys, time, pathlib\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "pathlib.Path(sys.argv[1], 'grandchild.pid').write_text(str(g.pid))\n"
        "time.sleep(600)\n"
    )
    (tmp_path / "s.toml").write_text(
        f'command = [{json.dumps(sys.executable)}, "stubborn.py", "{{run_dir}}"]\n'
        'name = "stubborn"\n[study]\nname = "st"\nsearch = "list"\n'
        'list = [{ "seed" = 1 }, { "seed" = 2 }, { "seed" = 3 }]\nparallel = 2\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "s.toml", "--out", "out"],
        cwd=tmp_path,
        env=env(TUNETOP_STOP_GRACE="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    study = tmp_path / proc.stdout.readline().decode().strip()
    pid_files = [study / t / "grandchild.pid" for t in ("t000", "t001")]
    deadline = time.monotonic() + 60
    while not all(p.exists() and p.read_text() for p in pid_files):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)  # polling files with a deadline
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    summary = json.loads((study / "study.json").read_text())
    assert summary["status"] == "stopped"
    assert not (study / "t002").exists()  # never started
    for t in ("t000", "t001"):
        record = json.loads((study / t / "run.json").read_text())
        assert record["status"] == "stopped", record
    grandchildren = [int(p.read_text()) for p in pid_files]
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in grandchildren):  # SIGKILL of the group got them too
        assert time.monotonic() < deadline, "a grandchild survived the stop"
        time.sleep(0.05)


def test_torchrun_two_processes_gloo(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        'workload = "digits_mlp"\nname = "ddp"\nmax_train_steps = 12\neval_every = 6\n'
        'checkpoint_every = 6\ndevice = "cpu"\nbatch_size = 32\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "s.toml", "--out", "out", "--nproc", "2"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    (folder,) = (tmp_path / "out").iterdir()
    log = (folder / "output.log").read_text()
    assert proc.returncode == 0, log
    assert "2 processes" in log
    record = json.loads((folder / "run.json").read_text())
    assert (record["status"], record["exit_code"]) == ("finished", 0)
    rows = read_metrics(folder)
    # rank 0 alone writes: each step once
    assert [r["step"] for r in rows if "loss" in r] == list(range(12))
    assert [r["step"] for r in rows if "val_loss" in r] == [5, 11]
    assert (folder / "checkpoints" / "last.pt").exists()
