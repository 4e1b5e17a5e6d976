"""The runner against a hostile tree (issue 14 items 3 and 4): children start clean, nothing
is unpickled, a trial's spec comes through the private channel, folders are 0750 and no file
in them is opened through a planted symlink. Canaries that must never be written."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from runner import checkpoint, state
from runner import spec as specmod
from runner.child import clean_env, command_argv, command_env
from runner.rundir import MetricsWriter, RunRecord, new_run_dir, open_log
from runner.study import Study, child_argv, child_of, spawn, trial_argv

REPO = Path(__file__).resolve().parents[2]


class Payload:
    """Unpickling this writes the canary: what a planted checkpoint would do."""

    def __init__(self, canary: Path) -> None:
        self.canary = str(canary)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.canary, "w"))


def plant_code(folder: Path, canary: Path, names: tuple[str, ...]) -> None:
    for name in names:
        (folder / name).write_text(f"open({str(canary)!r}, 'a').write({name!r})\n")


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


# -- children start clean --------------------------------------------------------------------


def test_clean_env_drops_what_resolves_against_the_cwd() -> None:
    base = {
        "PYTHONPATH": os.pathsep.join(["", ".", "lib", "/abs/lib"]),
        "PATH": os.pathsep.join(["/usr/bin", "", "bin"]),
        "LD_LIBRARY_PATH": "",
        "PYTHONSTARTUP": "/x.py",
        "PYTHONINSPECT": "1",
        "PYTHON_EXEC": "/tmp/evil",
        "HOME": "/home/u",
    }
    e = clean_env(base)
    assert e["PYTHONPATH"] == "/abs/lib" and e["PATH"] == "/usr/bin"
    for gone in ("LD_LIBRARY_PATH", "PYTHONSTARTUP", "PYTHONINSPECT", "PYTHON_EXEC"):
        assert gone not in e
    assert (e["PYTHONSAFEPATH"], e["PYTHONUNBUFFERED"], e["HOME"]) == ("1", "1", "/home/u")
    # an external command keeps its script's folder on sys.path, unless the user chose -P
    assert "PYTHONSAFEPATH" not in command_env(base)
    assert command_env({**base, "PYTHONSAFEPATH": "1"})["PYTHONSAFEPATH"] == "1"


def test_trial_argv_is_our_interpreter_with_minus_p(tmp_path: Path) -> None:
    argv = trial_argv(Path("rel/t000"), spec_file=tmp_path / "s.toml")
    assert argv[:4] == [sys.executable, "-P", "-m", "runner"]
    assert argv[argv.index("--trial") + 1] == os.path.abspath("rel/t000")
    ddp = child_argv(tmp_path, 2)
    assert ddp[:4] == [sys.executable, "-P", "-m", "torch.distributed.run"]
    assert "--trial-resume" not in ddp  # never a resume unless asked for
    child = child_of(tmp_path / "t000")
    assert child.cwd == tmp_path / "t000" and child.env["PYTHONSAFEPATH"] == "1"


def test_command_argv_is_independent_of_the_cwd(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    argv = command_argv(["python3", "train.py", "--lr", "0.1", "missing.py"], tmp_path)
    assert argv == [sys.executable, str(tmp_path / "train.py"), "--lr", "0.1", "missing.py"]


STUDY = """
command = [{python}, "-c", "print('trial ran')"]
name = "cmd"
[study]
name = "clean"
search = "list"
list = [{{ "seed" = 1 }}]
"""


def test_trials_never_import_from_the_launching_cwd(tmp_path: Path) -> None:
    """The dashboard starts `python -P -m runner` from wherever it was started; a runner.py,
    numpy.py, torch.py or sitecustomize.py planted there is imported by neither the study nor
    its trials (which import numpy and torch), and the trial ran in its own folder."""
    shared = tmp_path / "shared"
    shared.mkdir()
    canary = tmp_path / "canary"
    plant_code(shared, canary, ("runner.py", "numpy.py", "torch.py", "sitecustomize.py"))
    (shared / "s.toml").write_text(STUDY.format(python=json.dumps(sys.executable)))
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "runner", "s.toml", "--out", str(tmp_path / "out")],
        cwd=shared,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert not canary.exists()
    (study,) = (tmp_path / "out").iterdir()
    assert stat.S_IMODE(study.stat().st_mode) == 0o750
    assert stat.S_IMODE((study / "t000").stat().st_mode) == 0o750
    assert stat.S_IMODE((study / "t000" / "run.json").stat().st_mode) == 0o640
    assert "trial ran" in (study / "t000" / "output.log").read_text()
    assert list((tmp_path / "state" / "tunetop" / "trials").iterdir()) == []  # spec removed


# -- no pickle -------------------------------------------------------------------------------


def test_a_pickle_payload_checkpoint_is_refused_by_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    spec = specmod.RunSpec(workload="digits_mlp", name="r", max_train_steps=4, device="cpu")
    RunRecord.start(run, spec).finish("stopped", 143)
    canary = tmp_path / "canary"
    (run / "checkpoints").mkdir()
    torch.save(
        {"step": 1, "model": Payload(canary), "optimizer": {}, "rng": {}},
        run / "checkpoints" / "last.pt",
    )
    with pytest.raises(checkpoint.UnsafeCheckpoint, match="refused"):
        checkpoint.load(run / "checkpoints" / "last.pt")
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "--resume", str(run)],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "refused" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not canary.exists()
    assert json.loads((run / "run.json").read_text())["status"] == "stopped"  # untouched


def test_rng_state_is_plain_tensors_and_round_trips(tmp_path: Path) -> None:
    import random

    import numpy as np

    random.random(), np.random.random(), torch.rand(1)
    saved = checkpoint.rng_state()
    expect = (random.random(), float(np.random.random()), float(torch.rand(1)))
    path = tmp_path / "c.pt"
    torch.save({"rng": saved}, path)
    loaded = torch.load(path, weights_only=True)  # no pickle needed: plain values only
    checkpoint.set_rng_state(loaded["rng"])
    assert (random.random(), float(np.random.random()), float(torch.rand(1))) == expect


# -- the private channel ----------------------------------------------------------------------


def test_a_swapped_trial_folder_decides_nothing(tmp_path: Path) -> None:
    """Between the trial folder's creation and the child's start, the folder is replaced by a
    symlink to a planted one (spec.toml with a command that writes the canary, a pickle
    checkpoint): the child is not started through it. And a child pointed at a planted folder
    directly still runs its private spec, and does not resume from the planted checkpoint."""
    canary = tmp_path / "canary"
    planted = tmp_path / "planted"
    (planted / "checkpoints").mkdir(parents=True)
    (planted / "spec.toml").write_text(
        f'command = [{json.dumps(sys.executable)}, "-c", "open({str(canary)!r}, \'w\')"]\n'
    )
    torch.save(Payload(canary), planted / "checkpoints" / "last.pt")
    study_spec = specmod.loads(STUDY.format(python=json.dumps(sys.executable)))
    assert isinstance(study_spec, specmod.StudySpec)
    study = Study(study_spec, tmp_path / "out")
    (trial,) = study.trials
    study.prepare(trial)
    assert trial.dir is not None and trial.spec_file is not None
    assert stat.S_IMODE(trial.spec_file.stat().st_mode) == 0o600
    os.rename(trial.dir, tmp_path / "moved")
    os.symlink(planted, trial.dir)
    with pytest.raises(OSError):  # output.log is not opened through the symlink
        study.launch(trial, None)
    assert not canary.exists()
    # and a study whose next trial folder cannot be used records that trial failed, goes on
    other = Study(study_spec, tmp_path / "out2")
    os.mkdir(other.dir / "t000")  # taken: new_trial_dir never reuses a folder
    assert other.run() == 1
    assert json.loads((other.dir / "study.json").read_text())["trials"][0]["status"] == "failed"

    # the child itself, told to train into the planted folder: its spec is the private one
    child = child_of(planted, spec_file=trial.spec_file)
    proc = spawn(child.argv, planted / "output.log", child.env, child.cwd)
    assert proc.wait(timeout=120) == 0, (planted / "output.log").read_text()
    assert "trial ran" in (planted / "output.log").read_text()
    assert not canary.exists()


def test_a_trial_without_its_private_spec_does_not_start(tmp_path: Path) -> None:
    (tmp_path / "spec.toml").write_text('workload = "digits_mlp"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "--trial", str(tmp_path)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--trial-spec" in proc.stderr
    other = tmp_path / "theirs.toml"
    other.write_text('workload = "digits_mlp"\n')
    os.chmod(other, 0o666)  # writable by others: not a private file
    with pytest.raises(state.StateError):
        state.read_private(other)


# -- folders and files -------------------------------------------------------------------------


def test_no_file_of_a_run_is_opened_through_a_symlink(tmp_path: Path) -> None:
    run = new_run_dir(tmp_path, "r")
    assert stat.S_IMODE(run.stat().st_mode) == 0o750
    target = tmp_path / "elsewhere"
    target.write_text("")
    for name in ("output.log", "metrics.jsonl"):
        os.symlink(target, run / name)
    with pytest.raises(OSError):
        open_log(run)
    with pytest.raises(OSError):
        MetricsWriter(run)
    assert target.read_text() == ""


def test_resume_refuses_a_folder_others_can_write(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    spec = specmod.RunSpec(workload="digits_mlp", name="r", max_train_steps=4, device="cpu")
    RunRecord.start(run, spec).finish("stopped", 143)
    os.chmod(run / "run.json", 0o664)  # a colleague could have put any command in it
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "--resume", str(run)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "writable by group or others" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_private_specs_are_0600_and_leftovers_go() -> None:
    old = state.new_trial_spec('workload = "digits_mlp"\n')
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    assert stat.S_IMODE(old.parent.stat().st_mode) == 0o700
    os.utime(old, (1, 1))  # left by a study killed with -9, long ago
    new = state.new_trial_spec('workload = "digits_mlp"\n')
    assert new.exists() and not old.exists()
    assert state.read_private(new) == 'workload = "digits_mlp"\n'
