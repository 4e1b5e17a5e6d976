"""Discovery over a hostile tree (issue 14): special files are skipped with an errors entry and
never opened, one malformed file costs only itself, runs beyond the depth limit are said."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tui.logs.discovery import MAX_DEPTH, find_runs
from tui.logs.model import Run
from tui.logs.runjson import read_run_json
from tui.logs.workspace import Workspace

GOOD = "".join(json.dumps({"step": s, "loss": 2.0 / (s + 1)}) + "\n" for s in range(20))


def good_run(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text(GOOD)
    return folder


def check_json(root: Path) -> dict:
    """`tunetop check --json` in a child with a deadline: a hang fails the test, not CI."""
    proc = subprocess.run(
        [sys.executable, "-m", "tui", "check", str(root), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", ["metrics.jsonl", "run.json", "trainer_state.json", "x.json"])
def test_fifo_in_a_run_folder_is_skipped_not_opened(tmp_path: Path, name: str) -> None:
    """A FIFO that a reader opened blocking would hang check forever (no writer comes)."""
    bad = tmp_path / "bad"
    bad.mkdir()
    os.mkfifo(bad / name)
    good_run(tmp_path / "good")
    if name != "metrics.jsonl":
        good_run(bad)  # the FIFO sits beside a real log of the same run
    report = check_json(tmp_path)
    ids = {r["id"] for r in report["runs"]}
    assert "good" in ids
    fifo_errors = [e for e in report["errors"] if e["path"].endswith(f"bad/{name}")]
    assert fifo_errors and "FIFO" in fifo_errors[0]["message"]
    if name != "metrics.jsonl":
        assert "bad" in ids
        bad_run = next(r for r in report["runs"] if r["id"] == "bad")
        assert bad_run["metrics"]["loss"]["count"] == 20


def test_socket_and_device_are_errors(tmp_path: Path) -> None:
    good_run(tmp_path / "good")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(tmp_path / "good" / "metrics.csv"))
        os.symlink("/dev/zero", tmp_path / "good" / "log.jsonl")  # a device, by a link
        errors: list[tuple[str, str]] = []
        runs = find_runs(tmp_path, errors)
    finally:
        sock.close()
    assert [r.folder.name for r in runs] == ["good"]
    assert [f.path.name for f in runs[0].files] == ["metrics.jsonl"]
    kinds = {Path(p).name: m for p, m in errors}
    assert "socket" in kinds["metrics.csv"]
    assert "device" in kinds["log.jsonl"]


def test_runs_deeper_than_the_limit_are_reported(tmp_path: Path) -> None:
    deep = tmp_path
    for i in range(MAX_DEPTH + 2):
        deep = deep / f"d{i}"
    good_run(deep)
    good_run(tmp_path / "shallow")
    errors: list[tuple[str, str]] = []
    runs = find_runs(tmp_path, errors)
    assert [r.folder.name for r in runs] == ["shallow"]
    assert len(errors) == 1
    path, message = errors[0]
    assert Path(path) == tmp_path.joinpath(*[f"d{i}" for i in range(MAX_DEPTH + 1)])
    assert "not searched" in message


MALFORMED = {
    "nested": "[" * 100_000 + "]" * 100_000,
    "list": json.dumps([1, 2, 3]),
    "infinity": '{"status": "finished", "total_steps": Infinity, "max_train_steps": NaN}',
    "remedy": json.dumps({"status": "running", "remedy": "s", "pid": "1"}),
    "optimizer": json.dumps({"spec": {"optimizer": "s", "schedule": [1]}, "hparams": "x"}),
    "garbage": "\x00\xff not json",
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_run_json_costs_only_itself(tmp_path: Path, kind: str) -> None:
    bad = good_run(tmp_path / "bad")
    (bad / "run.json").write_text(MALFORMED[kind], errors="surrogateescape")
    good_run(tmp_path / "good")
    ws = Workspace([tmp_path])
    ws.refresh()
    assert sorted(ws.runs) == ["bad", "good"]
    run = ws.runs["bad"]
    assert run.store.count("loss") == 20
    assert run.total_steps == 20  # no Infinity, no crash
    assert run.remedy is None
    assert any(Path(p).name == "run.json" for p, _ in ws.errors)
    spec = (run.run_json or {}).get("spec", {})
    assert all(isinstance(spec.get(k, {}), dict) for k in ("optimizer", "schedule"))
    report = check_json(tmp_path)
    assert {r["id"] for r in report["runs"]} == {"bad", "good"}


def test_run_json_validation_keeps_good_fields(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(
        json.dumps(
            {
                "status": "finished",
                "total_steps": 500,
                "max_train_steps": 0,  # a warmup-study trial's base schedule is empty
                "remedy": {"kind": "warmup", "source": "x"},
                "spec": {"optimizer": {"lr": 0.1}, "workload_options": "s"},
            }
        )
    )
    data, errors = read_run_json(tmp_path)
    assert data is not None
    assert data["total_steps"] == 500 and data["max_train_steps"] == 0
    assert data["remedy"] == {"kind": "warmup", "source": "x"}
    assert data["spec"] == {"optimizer": {"lr": 0.1}}
    assert [m for _, m in errors] == ["spec.workload_options = 's' is no table: ignored"]
    run = Run("r", tmp_path, "jsonl", run_json=data)
    assert run.total_steps == 500 and run.status == "finished"


def test_malformed_hparams_files_cost_only_themselves(tmp_path: Path) -> None:
    bad = good_run(tmp_path / "lr=0.1")
    (bad / "hparams.yaml").write_text("a:\n" + "  - [" * 5000 + "\n")
    (bad / "config.json").write_text("{" * 50_000)
    os.mkfifo(bad / "hparams.json")
    ws = Workspace([tmp_path])
    ws.refresh()
    run = ws.runs["lr=0.1"]
    assert run.hparams == {"lr": 0.1}
    assert run.store.count("loss") == 20
    bad_files = {Path(p).name for p, _ in ws.errors}
    assert {"hparams.yaml", "config.json", "hparams.json"} <= bad_files


def test_garbage_in_an_add_hparams_folder_costs_nothing_else(tmp_path: Path) -> None:
    """SYNTHETIC: random bytes named like an add_hparams event file, beside a real one."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / "run")) as w:
        for step in range(5):
            w.add_scalar("loss", 1.0, step)
    hp = tmp_path / "run" / "1700000000.5"
    hp.mkdir()
    (hp / "events.out.tfevents.1700000000.host.1.1").write_bytes(os.urandom(4096))
    ws = Workspace([tmp_path])
    ws.refresh()
    assert list(ws.runs) == ["run"]
    assert ws.runs["run"].store.count("loss") == 5
    assert ws.runs["run"].hparams == {}
