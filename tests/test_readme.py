"""The README cannot drift from the code (issue 7 item 4): its quick-start commands run as
written, its TOML loads in the runner, its workload example trains."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runner.rundir import read_metrics

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def blocks(lang: str, text: str = README) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def quick_start() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (code,) = blocks("bash", section)
    return [line.split("#", 1)[0].strip() for line in code.splitlines() if line.strip()]


def run_shell(command: str) -> subprocess.CompletedProcess[str]:
    # `tunetop` as installed; bash expands the README's globs as a person's shell would
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300
    )


def test_quick_start_check_and_plan_commands_work() -> None:
    commands = [c for c in quick_start() if c.startswith(("tunetop check", "tunetop plan"))]
    assert len(commands) >= 3
    for command in commands:
        out = run_shell(command)
        # check exits 1 on a warning (the samples have some); plan exits 0 when launchable
        assert out.returncode in ((0, 1) if "check" in command else (0,)), (command, out.stderr)
        assert out.stdout.strip(), command
        if "--json" in command:
            json.loads(out.stdout)


def test_dashboard_and_demo_commands_exist() -> None:
    for command in quick_start():
        if command.startswith("tunetop") and "check" not in command and "plan" not in command:
            sub = command.split()[1] if len(command.split()) > 1 else ""
            helped = run_shell(f"tunetop {sub} --help" if sub == "demo" else "tunetop --help")
            assert helped.returncode == 0, (command, helped.stderr)


def test_runner_spec_example_loads() -> None:
    from runner import search, spec

    specs = [b for b in blocks("toml") if "workload =" in b]
    assert specs
    for text in specs:
        loaded = spec.loads(text)
        if isinstance(loaded, spec.StudySpec):
            assert len(search.trials(loaded)) == loaded.study.trials


def test_tunetop_toml_example_parses() -> None:
    import tomllib

    from tui.config import parse_config

    examples = [b for b in blocks("toml") if "[launch]" in b and "readonly" in b]
    assert examples
    for text in examples:
        cfg = parse_config(tomllib.loads(text))
        assert cfg["launch_command"][0] == "python"


@pytest.mark.timeout(300)
def test_user_workload_example_trains(tmp_path: Path) -> None:
    (code,) = [b for b in blocks("python") if "def make(" in b]
    (tmp_path / "my_workload.py").write_text(code)
    (tmp_path / "spec.toml").write_text(
        'workload = "my_workload.py:make"\nmax_train_steps = 20\neval_every = 10\n'
        "checkpoint_every = 0\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "runner", "spec.toml", "--out", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    folder = Path(out.stdout.strip().splitlines()[-1])
    assert any("val_accuracy" in r for r in read_metrics(tmp_path / folder))
