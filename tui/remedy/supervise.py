"""Launching remediation studies and supervising them as child processes.

Each launch is `python -m runner SPEC.toml --out OUT`, no shell, in a session of its own
(`start_new_session`): an SSH connection that drops (SIGHUP to the app's session) does not kill
hours of training, and the app can die without taking its children along. Stopping sends SIGTERM
to the child's process group, waits a grace period, then SIGKILL, and always reaps. The next
start of the app finds running trials again through their run.json (pid, status).

The spec file is written to tunetop's own state folder, never into the user's folders: the only
thing written there is the new study folder the runner creates.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from runner import spec as rspec
from tui.remedy.plan import Plan

# longer than the runner's own grace for its trials (runner/study.py, 10 s), so a study can
# stop its trials before it is killed itself
GRACE_S = 15.0


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    path = Path(base) / "tunetop" / "jobs"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def signal_name(code: int | None) -> str | None:
    """'SIGKILL' for a child killed by signal 9 (Popen's returncode -9)."""
    if code is None or code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


@dataclass
class Job:
    id: str
    kind: str
    pid: int
    cmd: list[str]
    out: Path
    log: Path | None
    started: float
    proc: subprocess.Popen[bytes] | None = None  # None when found again from run.json
    run_dir: Path | None = None  # for adopted trials: the trial folder
    exit_code: int | None = None
    signal: str | None = None
    state: str = "running"  # running | exited | failed | stopped | lost
    stopping: bool = False

    @property
    def alive(self) -> bool:
        return self.state == "running"

    @property
    def study_dir(self) -> Path | None:
        """The folder the runner wrote: the first line it prints."""
        if self.run_dir is not None:
            return self.run_dir
        if self.log is None:
            return None
        try:
            with open(self.log, "rb") as fh:
                first = fh.readline(4096).decode("utf-8", "replace").strip()
        except OSError:
            return None
        return Path(first) if first and Path(first).is_dir() else None

    def last_lines(self, n: int = 5) -> list[str]:
        """The last lines of the child's output (drawn inertly by the caller)."""
        path = self.log
        if path is None and self.run_dir is not None:
            path = self.run_dir / "output.log"
        return [] if path is None else tail_lines(path, n)


def tail_lines(path: Path, n: int) -> list[str]:
    """The last `n` lines of a log file, read from its last 8 KiB only (logs grow for hours)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 8192))
            data = fh.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-n:]


def pid_alive(pid: int) -> bool:
    """Whether the process runs; a zombie counts as ended (it is its parent's to reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[-1].split()[0]
        return state != b"Z"
    except (OSError, IndexError):
        return True


class Supervisor:
    """The app's (and `tunetop plan --launch`'s) children. Thread-safe."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def launch(self, plan: Plan) -> Job:
        if not plan.launchable or plan.spec is None:
            raise ValueError("plan cannot be launched: missing " + "; ".join(plan.missing))
        out = Path(plan.out)
        out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        job_id = f"{plan.kind}-{stamp}-{os.getpid()}-{len(self.jobs)}"
        folder = state_dir()
        spec_path = folder / f"{job_id}.toml"
        log_path = folder / f"{job_id}.log"
        spec_path.write_text(rspec.to_toml(plan.spec))
        cmd = [
            self.python,
            "-m",
            "runner",
            str(spec_path),
            "--out",
            str(out),
            "--remedy",
            plan.kind,
            "--remedy-source",
            plan.remedy.get("baseline") or plan.remedy.get("source", ""),
        ]
        return self.spawn(cmd, plan.kind, out, job_id, log_path)

    def spawn(
        self,
        cmd: list[str],
        kind: str,
        out: Path,
        job_id: str | None = None,
        log_path: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> Job:
        """Start `cmd` (an argv list: no shell) as a supervised child in its own session."""
        job_id = job_id or f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{len(self.jobs)}"
        log_path = log_path or state_dir() / f"{job_id}.log"
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"  # children's output reaches the disk as it is written
        env.update(extra_env or {})
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session and process group: survives SIGHUP
                env=env,
                close_fds=True,
            )
        job = Job(job_id, kind, proc.pid, cmd, out, log_path, time.time(), proc)
        with self._lock:
            self.jobs[job_id] = job
        return job

    def poll(self) -> list[Job]:
        """Reap children that ended; returns the jobs whose state changed."""
        changed = []
        with self._lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            if job.state != "running":
                continue
            if job.proc is not None:
                code = job.proc.poll()
                if code is None:
                    continue
                self._ended(job, code)
                changed.append(job)
            elif not pid_alive(job.pid):
                job.state = "stopped" if job.stopping else "lost"
                changed.append(job)
        return changed

    def _ended(self, job: Job, code: int) -> None:
        job.exit_code = code
        job.signal = signal_name(code)
        if job.stopping:
            job.state = "stopped"
        else:
            job.state = "exited" if code == 0 else "failed"

    def stop(self, job: Job, grace: float = GRACE_S) -> None:
        """SIGTERM to the job's process group, SIGKILL after `grace` seconds, then reap."""
        if job.state != "running":
            return
        job.stopping = True
        try:
            pgid = os.getpgid(job.pid)
        except ProcessLookupError:
            pgid = None
        if pgid is not None and pgid != os.getpgid(0):
            _signal_group(pgid, signal.SIGTERM)
        elif pgid is not None:
            _signal_pid(job.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if job.proc is not None:
                try:
                    job.proc.wait(timeout=0.05)
                    break
                except subprocess.TimeoutExpired:
                    continue
            elif not pid_alive(job.pid):
                break
            time.sleep(0.05)  # an adopted process is not our child: poll its liveness
        if pgid is not None and _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        if job.proc is not None:
            code = job.proc.wait()  # always reap
            self._ended(job, code)
        else:
            deadline = time.monotonic() + grace
            while pid_alive(job.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            job.state = "stopped"

    def adopt(self, run_dir: Path, run_json: dict) -> Job | None:
        """A trial still running from an earlier start of the app (found via run.json)."""
        pid = run_json.get("pid")
        if run_json.get("status") != "running" or not isinstance(pid, int):
            return None
        if not pid_alive(pid) or not is_runner(pid):
            return None  # gone, or a reused pid that is no runner: never signal a stranger
        job_id = f"adopted-{pid}"
        with self._lock:
            if job_id in self.jobs:
                return self.jobs[job_id]
            remedy = run_json.get("remedy") or {}
            job = Job(
                job_id,
                str(remedy.get("kind", "run")),
                pid,
                [],
                run_dir.parent,
                None,
                float(run_json.get("started") or time.time()),
                None,
                run_dir=run_dir,
            )
            self.jobs[job_id] = job
        return job

    def running(self) -> list[Job]:
        with self._lock:
            return [j for j in self.jobs.values() if j.state == "running"]


def is_runner(pid: int) -> bool:
    """Whether pid runs tunetop's runner (its command line names the runner module)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    # `python -m runner ...`, or a script named runner(.py)
    return any(os.path.basename(a) in (b"runner", b"runner.py", b"runner.cli") for a in argv)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_pid(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
