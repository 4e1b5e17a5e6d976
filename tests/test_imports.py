"""The monitor starts without torch; the runner never imports Textual (harlequin's check)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(code) + "\nimport sys\nprint(' '.join(sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(out.stdout.split())


def test_tui_and_app_do_not_import_torch() -> None:
    mods = _modules_after(
        """
        import tui, tui.cli, tui.check, tui.logs.workspace, tui.config
        import tui.app
        app = tui.app.make_app(["."])
        """
    )
    assert "textual" in mods  # the check itself works: the app really was imported
    assert not {m for m in mods if m == "torch" or m.startswith("torch.")}


def test_check_runs_without_torch(tmp_path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "loss": 1.0}\n')
    mods = _modules_after(
        f"""
        import io
        from tui.check import main
        main({str(tmp_path)!r}, True, "error", out=io.StringIO())
        """
    )
    assert "tui.logs.jsonl" in mods
    assert "torch" not in mods


def test_runner_spec_imports_neither_torch_nor_textual() -> None:
    mods = _modules_after("import runner.spec, runner.schedule")
    assert "torch" not in mods
    assert "textual" not in mods


def test_runner_does_not_import_textual() -> None:
    mods = _modules_after("import runner.cli, runner.train")
    assert "torch" in mods
    assert "textual" not in mods
