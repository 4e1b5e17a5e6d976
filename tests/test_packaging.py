"""The package builds and installs like a real tool (issue 19 item 1).

`python -m build` makes an sdist and a wheel from a copy of the tracked tree; the wheel holds the
package data (RULES.md, the .tcss) and nothing of tests/; installed with pip into a fresh venv
(no torch, no dev extras: the README's monitor install), `tunetop --version`, `tunetop check
sample_logs --json`, `--plot`, `rules` and `report` work, and `tunetop run` / `tunetop demo` say in
one line that the runner needs PyTorch. Slow (a build and an install): `pytest -m slow`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _tracked_copy(dest: Path) -> Path:
    """The tree as git has it (no build/, egg-info or caches of this checkout)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, files):
        rel = raw.decode()
        src = ROOT / rel
        if src.is_file() and not rel.startswith("sample_logs/"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pkg")
    src = _tracked_copy(base / "src")
    out = base / "dist"
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"python -m build: {time.monotonic() - t0:.1f} s")
    (wheel,) = out.glob("tunetop-*.whl")
    (sdist,) = out.glob("tunetop-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist, "base": base}


def test_wheel_and_sdist_hold_the_package(dist: dict[str, Path]) -> None:
    names = zipfile.ZipFile(dist["wheel"]).namelist()
    for needed in ("tui/rules/RULES.md", "tui/app.tcss", "tui/cli.py", "runner/__main__.py"):
        assert needed in names
    assert not [n for n in names if n.startswith(("tests/", "sample_logs/"))]
    meta = zipfile.ZipFile(dist["wheel"]).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))
    )
    requires = [ln for ln in meta.decode().splitlines() if ln.startswith("Requires-Dist:")]
    base = [r for r in requires if "extra ==" not in r]
    assert not [r for r in base if "torch" in r or "scipy" in r or "scikit" in r], base
    with tarfile.open(dist["sdist"]) as tar:
        members = tar.getnames()
    top = members[0].split("/")[0]
    for needed in ("pyproject.toml", "README.md", "tui/rules/RULES.md", "runner/spec.py"):
        assert f"{top}/{needed}" in members


def test_monitor_install_without_torch(dist: dict[str, Path]) -> None:
    venv = dist["base"] / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    t0 = time.monotonic()
    done = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", str(dist["wheel"])],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"pip install of the wheel: {time.monotonic() - t0:.1f} s")
    no_torch = subprocess.run([str(py), "-c", "import torch"], capture_output=True, timeout=60)
    assert no_torch.returncode != 0  # the monitor install brought no torch

    tunetop = str(venv / "bin" / "tunetop")
    work = dist["base"] / "work"
    work.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tunetop, *args], capture_output=True, text=True, timeout=300, cwd=work
        )

    version = run("--version")
    assert version.returncode == 0 and version.stdout == "tunetop 0.1.0\n", version.stderr
    check = run("check", str(ROOT / "sample_logs"), "--json")
    assert check.returncode == 1, check.stderr  # the samples hold warnings
    data = json.loads(check.stdout)
    assert data["errors"] == []
    assert {r["format"] for r in data["runs"]} == {"jsonl", "csv", "tfevents", "hf_trainer_state"}
    plot = run("check", str(ROOT / "sample_logs"), "--plot", "--width", "80")
    assert plot.returncode == 1 and ": gradient norm  (grad_norm" in plot.stdout
    rules = run("rules", "R23")
    assert rules.returncode == 0 and "The ideal threshold" in rules.stdout
    report = run("report", str(ROOT / "sample_logs"), "-o", "r.md")
    assert report.returncode == 0 and (work / "r.md").read_text().startswith("# tunetop report")
    for command in (["run", "spec.toml"], ["demo"]):
        done = run(*command)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and "the runner needs PyTorch" in done.stderr
        assert "Traceback" not in done.stderr
