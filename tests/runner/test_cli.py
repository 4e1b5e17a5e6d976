"""`python -m runner`: bad specs, run.json, folders, divergence, external commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner import spec as specmod
from runner.cli import main
from runner.rundir import new_run_dir, new_trial_dir, read_metrics

RUN_JSON_KEYS = {
    "spec",
    "hparams",
    "max_train_steps",
    "total_steps",
    "status",
    "pid",
    "started",
    "ended",
    "exit_code",
    "remedy",
}
SMALL = """
workload = "digits_mlp"
name = "small"
max_train_steps = 12
eval_every = 6
checkpoint_every = 6
device = "cpu"
[schedule]
kind = "linear"
warmup_steps = 2
post_warmup_steps = 1
"""


def runner(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def only_folder(out: Path) -> Path:
    (folder,) = list(out.iterdir())
    return folder


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('workload = "digits_mlp"\nlearning_rate = 0.1\n', "learning_rate"),
        ('workload = "digits_mlp"\n[optimizer]\nlr = "fast"\n', "optimizer.lr"),
        ('workload = "no_such_workload"\n', "no_such_workload"),
    ],
)
def test_bad_spec_exits_2_with_one_line(tmp_path: Path, text: str, key: str) -> None:
    (tmp_path / "bad.toml").write_text(text)
    proc = runner("bad.toml", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing written for a bad spec


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_has_cuda(), reason="a CUDA device is visible: asking for one is no error")
@pytest.mark.parametrize("kind", ["run", "study"])
def test_cuda_without_a_cuda_device_exits_2_with_one_line(tmp_path: Path, kind: str) -> None:
    """device = "cuda" on a CPU build of torch (CI, this machine): one line naming the device
    and what to do, exit 2, no run folder (issue 19 item 6), for a run and for a study."""
    text = SMALL.replace('device = "cpu"', 'device = "cuda"')
    if kind == "study":
        text += '[study]\nname = "s"\nsearch = "grid"\ngrid = { "optimizer.lr" = [0.1, 0.01] }\n'
    (tmp_path / "cuda.toml").write_text(text)
    proc = runner("cuda.toml", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "device = 'cuda'" in lines[0] and "sees no CUDA" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_missing_spec_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.toml"), "--out", str(tmp_path / "out")]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_run_json_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s.toml").write_text(SMALL)
    assert (
        main(
            [
                str(tmp_path / "s.toml"),
                "--out",
                str(tmp_path / "out"),
                "--remedy",
                "warmup",
                "--remedy-source",
                "runs/x",
            ]
        )
        == 0
    )
    folder = only_folder(tmp_path / "out")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == out[-1] == str(folder)  # the folder it wrote, first and last
    assert folder.name.startswith("small-")
    record = json.loads((folder / "run.json").read_text())
    assert set(record) == RUN_JSON_KEYS
    spec = specmod.loads(SMALL)
    assert isinstance(spec, specmod.RunSpec)
    assert record["spec"] == specmod.to_dict(spec)
    assert record["hparams"] == specmod.flatten(spec)
    assert (record["max_train_steps"], record["total_steps"]) == (12, 15)  # R20
    assert (record["status"], record["exit_code"]) == ("finished", 0)
    assert record["pid"] == os.getpid()
    assert record["started"] <= record["ended"]
    assert record["remedy"] == {"kind": "warmup", "source": "runs/x"}
    rows = read_metrics(folder)
    assert [r["step"] for r in rows if "loss" in r] == list(range(15))
    assert [r["lr"] for r in rows if "loss" in r][:4] == [0.0, 0.0005, 0.001, 0.001]  # R18
    log = (folder / "output.log").read_text()
    assert "step 14/15" in log and "eval step 14" in log
    assert specmod.load(folder / "spec.toml") == spec


def test_nothing_existing_is_written_into(tmp_path: Path) -> None:
    first = new_run_dir(tmp_path, "x", now=0)
    (first / "mine.txt").write_text("user data")
    second = new_run_dir(tmp_path, "x", now=0)
    third = new_run_dir(tmp_path, "x", now=0)
    assert (second.name, third.name) == (f"{first.name}-1", f"{first.name}-2")
    assert (first / "mine.txt").read_text() == "user data"
    new_trial_dir(second, 0)
    with pytest.raises(FileExistsError):
        new_trial_dir(second, 0)
    assert new_run_dir(tmp_path, "../../escape", now=0).parent == tmp_path  # issue 8 item 5


def test_two_runs_get_two_folders(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SMALL.replace("max_train_steps = 12", "max_train_steps = 2"))
    assert main([str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")]) == 0
    assert main([str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").iterdir())) == 2


def test_divergence_is_a_status_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        'workload = "digits_mlp"\nmax_train_steps = 200\ndevice = "cpu"\n'
        'checkpoint_every = 0\n[optimizer]\nname = "sgd"\nlr = 1e12\n[schedule]\n'
        'kind = "constant"\n'
    )
    proc = runner("s.toml", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    folder = only_folder(tmp_path / "out")
    record = json.loads((folder / "run.json").read_text())
    assert (record["status"], record["exit_code"]) == ("diverged", 3)
    rows = [r for r in read_metrics(folder) if "loss" in r]
    bad = [r for r in rows if r["loss"] != r["loss"] or abs(r["loss"]) == float("inf")]
    assert bad == [rows[-1]]  # the first bad step is the last row
    assert (
        "NaN" in (folder / "metrics.jsonl").read_text()
        or "Infinity" in (folder / "metrics.jsonl").read_text()
    )
    assert "Traceback" not in proc.stderr + (folder / "output.log").read_text()


def test_external_command(tmp_path: Path) -> None:
    script = tmp_path / "fake_train.py"
    script.write_text(
        "import json, sys, pathlib\n"
        "lr, out = sys.argv[1], pathlib.Path(sys.argv[2])\n"
        "print('lr is', lr)\n"
        "(out / 'metrics.jsonl').write_text(json.dumps({'step': 0, 'loss': 1.0}) + '\\n')\n"
        "sys.exit(int(sys.argv[3]))\n"
    )
    for code, status in ((0, "finished"), (5, "failed")):
        out = tmp_path / f"out{code}"
        (tmp_path / "c.toml").write_text(
            f'command = [{json.dumps(sys.executable)}, "fake_train.py", "{{optimizer.lr}}", '
            f'"{{run_dir}}", "{code}"]\nname = "cmd"\n[optimizer]\nlr = 0.25\n'
        )
        proc = runner("c.toml", "--out", str(out), cwd=tmp_path)  # cwd: the caller's folder
        assert proc.returncode == code, proc.stderr
        folder = only_folder(out)
        record = json.loads((folder / "run.json").read_text())
        assert (record["status"], record["exit_code"]) == (status, code)
        assert "lr is 0.25" in (folder / "output.log").read_text()
        assert "lr is 0.25" in proc.stdout
        assert read_metrics(folder) == [{"step": 0, "loss": 1.0}]


def test_resume_of_a_folder_that_is_no_run(tmp_path: Path) -> None:
    proc = runner("--resume", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1


WORKLOAD = """
import torch
from runner.workloads import BUILTIN, resolve


def build(**kwargs):
    print("the user's workload", flush=True)
    return resolve(BUILTIN["digits_mlp"])(**kwargs)
"""


@pytest.mark.parametrize("how", ["tunetop run", "python -m runner"])
@pytest.mark.parametrize("kind", ["file", "module"])
def test_workloads_resolve_the_same_way_from_both_commands(
    tmp_path: Path, how: str, kind: str
) -> None:
    """Issue 19 item 6: a `file.py:fn` workload is read against the spec file's folder and a
    `module:fn` one imports from the cwd, whether the run is started as `tunetop run` or as
    `python -m runner`, from a folder that is not the spec's."""
    specs = tmp_path / "specs"
    specs.mkdir()
    if kind == "file":
        (specs / "mywl.py").write_text(WORKLOAD)
        ref = "mywl.py:build"
    else:
        (tmp_path / "mymod.py").write_text(WORKLOAD)
        ref = "mymod:build"
    text = SMALL.replace('workload = "digits_mlp"', f'workload = "{ref}"')
    (specs / "run.toml").write_text(text)
    # the console script, as a user runs it: `python -m tui` would put the cwd on sys.path
    script = Path(sys.executable).with_name("tunetop")
    head = [str(script), "run"] if how == "tunetop run" else [sys.executable, "-m", "runner"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run(
        [*head, "specs/run.toml", "--out", "out"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    folder = only_folder(tmp_path / "out")
    assert "the user's workload" in (folder / "output.log").read_text()
    recorded = json.loads((folder / "run.json").read_text())["spec"]["workload"]
    if kind == "file":
        assert recorded == f"{specs / 'mywl.py'}:build"  # the file that ran, absolute
    else:
        assert recorded == "mymod:build"
