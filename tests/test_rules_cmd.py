"""The playbook rules shipped with the package and `tunetop rules [ID]`; `tunetop --version`;
`tunetop run` / `tunetop demo` where torch is missing (issue 19 items 1, 5, 6)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui.cli import NEEDS_TORCH, main
from tui.diagnose.findings import KINDS
from tui.rules import citing_kinds, rules, rules_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_holds_r1_to_r24() -> None:
    table = rules()
    assert list(table) == [f"R{i}" for i in range(1, 25)]
    assert all(r.text and r.section for r in table.values())
    assert table["R13"].title == "Two kinds of instability."
    assert table["R23"].text.startswith("The ideal threshold is just above")


def test_every_rule_a_finding_cites_is_there() -> None:
    cited = {r.strip() for rule, _sev in KINDS.values() for r in rule.split(",")}
    assert cited <= set(rules())
    assert "loss_spike" in citing_kinds("R13")


def test_the_packaged_copy_is_the_projects_rules_file() -> None:
    """tui/rules/RULES.md is a copy of the project's playbook/RULES.md: it must not drift."""
    candidates = [ROOT / "shared", ROOT.parent / "shared", Path("/work/shared")]
    found = [c / "playbook" / "RULES.md" for c in candidates if (c / "playbook").is_dir()]
    if not found:
        pytest.skip("no shared/playbook/RULES.md beside this checkout")
    assert rules_markdown() == found[0].read_text(encoding="utf-8")


def test_rules_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "r13"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("R13 Two kinds of instability.")
    assert "findings that cite it: loss_spike (warning)" in out
    assert "R14" not in out.split("\n", 1)[0]


def test_rules_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    starts = [line.split()[0] for line in out.splitlines() if line[:1] == "R"]
    assert starts == [f"R{i}" for i in range(1, 25)]
    assert "## Gradient clipping" in out


def test_rules_unknown_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "R99"]) == 2
    assert "no rule R99" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"tunetop {importlib.metadata.version('tunetop')}\n"


@pytest.mark.parametrize("command", [["run", "spec.toml"], ["demo"]])
def test_runner_commands_without_torch_say_how_to_install_it(
    tmp_path: Path, command: list[str]
) -> None:
    """An interpreter without site-packages (-S) has no torch, as a monitor-only install: the
    command prints one line and exits 2, no traceback, no folder made."""
    code = f"import sys; from tui.cli import main; sys.exit(main({command!r}))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr == f"tunetop {command[0]}: {NEEDS_TORCH}\n"
    assert "download.pytorch.org/whl/cpu" in out.stderr
    assert list(tmp_path.iterdir()) == []
