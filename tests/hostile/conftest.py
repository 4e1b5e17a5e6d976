"""Fixtures of the hostile-folder suite: the attacker (a second, unprivileged Unix user), the
shared folder layout the victim watches, the good runs placed next to every bad file, and the
victim's baseline memory (README.md in this folder maps each attack to its test)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostile.harness import (
    ATTACKER,
    GOOD_RUNS,
    Attacker,
    Layout,
    check_ok,
    make_good_template,
    tunetop,
)


@pytest.fixture(scope="session")
def attacker() -> Attacker:
    """tt_attacker: created with useradd when missing (a system user, no home, no login shell;
    left in place afterwards: other sessions of the suite may be using it)."""
    if os.geteuid() != 0:
        pytest.skip("the hostile-folder suite needs root, to create and become a second user")
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not installed: cannot create the attacker user")
    try:
        pw = pwd.getpwnam(ATTACKER)
    except KeyError:
        out = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ATTACKER],
            capture_output=True,
            text=True,
        )
        if out.returncode not in (0, 9):  # 9: created meanwhile by a concurrent session
            pytest.skip(f"useradd {ATTACKER} failed: {out.stderr.strip()}")
        pw = pwd.getpwnam(ATTACKER)
    for python in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        if not os.path.exists(python):
            continue
        try:
            probe = subprocess.run(
                [python, "-I", "-c", "import os; print(os.getuid())"],
                capture_output=True,
                text=True,
                user=pw.pw_uid,
                group=pw.pw_gid,
                extra_groups=[],
                cwd="/",
                env={"PATH": "/usr/bin:/bin"},
            )
        except OSError:  # not executable by the attacker (the venv's, under /root)
            continue
        if probe.returncode == 0 and probe.stdout.strip() == str(pw.pw_uid):
            return Attacker(ATTACKER, pw.pw_uid, pw.pw_gid, python)
    pytest.skip(f"no Python interpreter that {ATTACKER} may run (the venv's is private)")


@pytest.fixture(scope="session")
def good_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("good") / "t"
    make_good_template(folder)
    return folder


def _victim_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "XDG_", "COV_")) and k != "HOME"
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
        TUNETOP_STOP_GRACE="2",
        PYTHONUTF8="1",
    )
    return env


@pytest.fixture
def shared(attacker: Attacker, good_template: Path) -> Iterator[Layout]:
    """/tmp/tunetop-hostile-XXXX/ (0755): root/ (the watched root, root-owned 0755) holding
    team/ (0777, no sticky bit: anyone may add, rename or replace entries) with the good runs
    in it; home/ (0700, the victim's config, state and canary); outside/ (0755)."""
    base = Path(tempfile.mkdtemp(prefix="tunetop-hostile-", dir="/tmp"))
    base.chmod(0o755)
    root = base / "root"
    team = root / "team"
    home = base / "home"
    outside = base / "outside"
    for folder, mode in ((root, 0o755), (team, 0o777), (home, 0o700), (outside, 0o755)):
        folder.mkdir()
        folder.chmod(mode)  # mkdir's mode is masked by the umask
    for good in GOOD_RUNS:
        shutil.copytree(good_template / good.name, team / good.name)
    layout = Layout(base, root, team, home, outside, home / "CANARY", _victim_env(home))
    try:
        yield layout
    finally:
        layout.launched_settle(timeout=0.5)  # nothing the test launched outlives it
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def baseline_rss(attacker: Attacker, good_template: Path) -> int:
    """Peak resident memory of `tunetop check --json` on the good runs alone: the memory caps
    are measured above it (the interpreter with tunetop's imports)."""
    base = Path(tempfile.mkdtemp(prefix="tunetop-hostile-base-", dir="/tmp"))
    try:
        for good in GOOD_RUNS:
            shutil.copytree(good_template / good.name, base / good.name)
        home = base / "home"
        home.mkdir(mode=0o700)
        res = tunetop("check", str(base), "--json", env=_victim_env(home))
        check_ok(res)
        return res.peak_rss
    finally:
        shutil.rmtree(base, ignore_errors=True)
