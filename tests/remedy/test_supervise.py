"""Children: own session and process group, SIGTERM then SIGKILL to the group, always reaped,
surviving the death of the process that started them (issue 6 item 6, issue 8 item 3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tui.remedy.supervise import Job, Supervisor, pid_alive


def wait_for(
    predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


STUBBORN = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ignores the polite request
    kids = [subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
            for _ in range(2)]
    with open(sys.argv[1], "w") as fh:
        fh.write(" ".join(str(k.pid) for k in kids))
    print("ready", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def sup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Supervisor]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    s = Supervisor()
    yield s
    for job in s.running():
        s.stop(job, grace=0.5)


def zombies_of(pid: int) -> list[str]:
    out = subprocess.run(
        ["ps", "-o", "pid=,stat=,ppid=", "--ppid", str(pid)], capture_output=True, text=True
    )
    return [line for line in out.stdout.splitlines() if " Z" in line]


def test_stop_kills_a_stubborn_child_and_its_grandchildren(sup: Supervisor, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    job = sup.spawn([sys.executable, "-c", STUBBORN, str(pids_file)], "test", tmp_path)
    wait_for(lambda: pids_file.exists() and pids_file.read_text().strip(), what="grandchildren")
    grandchildren = [int(p) for p in pids_file.read_text().split()]
    assert os.getpgid(job.pid) == job.pid != os.getpgid(0)  # its own process group
    assert os.getsid(job.pid) == job.pid  # and its own session
    t0 = time.monotonic()
    sup.stop(job, grace=0.5)
    assert time.monotonic() - t0 < 10
    assert job.state == "stopped"
    assert job.signal == "SIGKILL" and job.exit_code == -signal.SIGKILL
    assert not pid_alive(job.pid)
    wait_for(lambda: not any(pid_alive(p) for p in grandchildren), what="grandchildren gone")
    assert zombies_of(os.getpid()) == []


def test_a_polite_child_ends_on_sigterm_and_is_reaped(sup: Supervisor, tmp_path: Path) -> None:
    job = sup.spawn(
        [sys.executable, "-c", "import time; print('hi', flush=True); time.sleep(600)"],
        "test",
        tmp_path,
    )
    wait_for(lambda: job.last_lines() == ["hi"], what="output on disk")
    sup.stop(job, grace=10)
    assert job.signal == "SIGTERM"
    assert zombies_of(os.getpid()) == []


def test_exit_codes_are_recorded(sup: Supervisor, tmp_path: Path) -> None:
    ok = sup.spawn([sys.executable, "-c", "pass"], "test", tmp_path)
    bad = sup.spawn([sys.executable, "-c", "raise SystemExit(3)"], "test", tmp_path)
    changed: list[Job] = []
    wait_for(
        lambda: (changed.extend(sup.poll()) or True) and len(changed) == 2,
        what="both children to end",
    )
    assert (ok.state, ok.exit_code) == ("exited", 0)
    assert (bad.state, bad.exit_code, bad.signal) == ("failed", 3, None)
    assert zombies_of(os.getpid()) == []


def test_children_outlive_their_starter_and_are_adopted(tmp_path: Path) -> None:
    """The app dies (SIGKILL, or SIGHUP from a dropped SSH connection); the child goes on and
    a new supervisor finds it through run.json."""
    pid_file = tmp_path / "child.pid"
    starter = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from tui.remedy.supervise import Supervisor
        # argv names the runner, as `python -m runner` does: adopt() checks it
        job = Supervisor().spawn([sys.executable, "-c", "import time; time.sleep(600)",
                                  "-m", "runner"], "test", Path({str(tmp_path)!r}))
        Path({str(pid_file)!r}).write_text(str(job.pid))
        time.sleep(600)
        """
    )
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    app = subprocess.Popen([sys.executable, "-c", starter], env=env)
    wait_for(pid_file.exists, what="child started")
    child = int(pid_file.read_text())
    app.send_signal(signal.SIGHUP)
    app.wait(timeout=20)
    assert pid_alive(child)
    sup = Supervisor()
    job = sup.adopt(tmp_path, {"status": "running", "pid": child, "started": time.time()})
    assert job is not None and job.alive
    sup.stop(job, grace=2)
    wait_for(lambda: not pid_alive(child), what="adopted child stopped")
    assert job.state == "stopped"


def test_adopt_ignores_finished_and_dead_runs_and_strangers(tmp_path: Path) -> None:
    sup = Supervisor()
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:  # a live pid that is no runner (a reused pid): never adopted, never signalled
        assert sup.adopt(tmp_path, {"status": "running", "pid": stranger.pid}) is None
    finally:
        stranger.kill()
        stranger.wait()
    assert sup.adopt(tmp_path, {"status": "finished", "pid": os.getpid()}) is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert sup.adopt(tmp_path, {"status": "running", "pid": dead.pid}) is None
