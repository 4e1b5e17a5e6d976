"""Children: own session and process group, SIGTERM then SIGKILL to the group, always reaped,
surviving the death of the process that started them (issue 6 item 6, issue 8 item 3)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.state import proc_start_time
from tui.remedy.supervise import Job, Supervisor, launch_argv, pid_alive, state_dir


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


@pytest.fixture(autouse=True)
def _state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Job records, specs and logs go to the test's folder (children inherit it)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def sup() -> Iterator[Supervisor]:
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
    a new supervisor finds it through its job record in the state folder."""
    pid_file = tmp_path / "child.pid"
    starter = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from tui.remedy.supervise import Supervisor
        job = Supervisor().spawn([sys.executable, "-c", "import time; time.sleep(600)"],
                                 "test", Path({str(tmp_path)!r}))
        Path({str(pid_file)!r}).write_text(str(job.pid))
        time.sleep(600)
        """
    )
    app = subprocess.Popen([sys.executable, "-c", starter])
    wait_for(pid_file.exists, what="child started")
    child = int(pid_file.read_text())
    app.send_signal(signal.SIGHUP)
    app.wait(timeout=20)
    assert pid_alive(child)
    (record,) = state_dir().glob("*.json")
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir().stat().st_mode) == 0o700
    data = json.loads(record.read_text())
    assert data["pid"] == child and data["start_time"] == proc_start_time(child)
    assert data["argv"][1:] == ["-c", "import time; time.sleep(600)"]
    assert "slurm_job_id" in data  # ready for the Slurm executor
    sup = Supervisor()
    (job,) = sup.adopt_recorded()
    assert job.pid == child and job.alive and job.proc is None
    assert sup.adopt_recorded() == []  # known already: adopted once
    sup.stop(job, grace=2)
    wait_for(lambda: not pid_alive(child), what="adopted child stopped")
    assert job.state == "stopped"
    assert not record.exists()  # an ended job's record goes


def own_group_sleeper() -> subprocess.Popen[bytes]:
    """An unrelated process in its own process group: what a planted record or run.json might
    name. It must outlive every test below."""
    return subprocess.Popen(["sleep", "600"], start_new_session=True)


def plant_record(job_id: str, **fields: object) -> Path:
    record = {
        "version": 1,
        "id": job_id,
        "kind": "warmup",
        "out": "/nowhere",
        "log": None,
        "started": 1.0,
        "slurm_job_id": None,
        **fields,
    }
    path = state_dir() / f"{job_id}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh)
    return path


def test_a_reused_pid_is_never_adopted_nor_signalled() -> None:
    """A record whose pid now belongs to another process (another start time, or another
    argv) is dropped: nothing adopted, nothing signalled, the stranger lives on."""
    stranger = own_group_sleeper()
    try:
        start = proc_start_time(stranger.pid)
        assert start is not None
        reused = plant_record(
            "reused", pid=stranger.pid, start_time=start - 1, argv=["sleep", "600"]
        )
        other = plant_record("other-argv", pid=stranger.pid, start_time=start, argv=["sleep", "60"])
        sup = Supervisor()
        assert sup.adopt_recorded() == []
        assert not reused.exists() and not other.exists()  # stale records are removed
        # and Supervisor.stop re-checks right before signalling, whatever the job says
        job = Job("x", "warmup", stranger.pid, ["sleep", "600"], Path("/"), None, 1.0)
        job.start_time = start - 1
        sup.jobs[job.id] = job
        sup.stop(job, grace=0.5)
        assert job.state == "lost"
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_records_of_dead_jobs_and_malformed_ones_adopt_nothing(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = plant_record("dead", pid=dead.pid, start_time=1, argv=["true"])
    bad = plant_record("bad", pid="1", start_time=None, argv="sleep")
    (state_dir() / "junk.json").write_bytes(b"\x00[[[")
    assert Supervisor().adopt_recorded() == []
    assert not gone.exists() and bad.exists()  # a malformed record is left for a person


def test_a_launched_study_starts_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A remedy study is the real `python -P -m runner` on our interpreter, in the state
    folder, with no relative PYTHONPATH entry: a runner.py / numpy.py / sitecustomize.py
    planted in the (shared) cwd tunetop was started from is never imported, even though the
    runner imports numpy and torch; their canary is never written."""
    shared = tmp_path / "shared"
    shared.mkdir()
    canary = tmp_path / "canary"
    for name in ("runner.py", "numpy.py", "sitecustomize.py", "torch.py"):
        (shared / name).write_text(f"open({str(canary)!r}, 'a').write({name!r})\n")
    probe = (
        "import json, os, sys; "
        "print(json.dumps([os.getcwd(), sys.flags.safe_path, os.environ.get('PYTHONPATH', '')]))"
    )
    spec = tmp_path / "spec.toml"
    spec.write_text(f"command = [{json.dumps(sys.executable)}, '-c', {json.dumps(probe)}]\n")
    monkeypatch.chdir(shared)
    repo = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["", ".", "rel", repo]))
    out = tmp_path / "out"
    cmd = launch_argv(spec, out, "warmup", "/src")
    assert cmd[:4] == [sys.executable, "-P", "-m", "runner"]
    job = Supervisor().spawn(cmd, "warmup", out)
    assert job.proc is not None and job.proc.wait(timeout=120) == 0, job.last_lines()
    assert not canary.exists()
    assert Path(os.readlink("/proc/self/cwd")) == shared  # ours unchanged
    (run,) = out.iterdir()
    cwd, safe, pythonpath = json.loads((run / "output.log").read_text().splitlines()[0])
    assert Path(cwd) == run  # an external command runs in its run folder
    assert safe == 0  # its own script folder stays importable (no -P for the user's script)
    assert pythonpath == repo  # the empty and relative entries are gone
    assert stat.S_IMODE(run.stat().st_mode) == 0o750
