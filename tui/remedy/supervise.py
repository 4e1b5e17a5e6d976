"""Launching remediation studies and supervising them as child processes.

Each launch is `python -P -m runner SPEC.toml --out OUT` on the interpreter tunetop runs on, no
shell, in a session of its own (`start_new_session`): an SSH connection that drops (SIGHUP to
the app's session) does not kill hours of training, and the app can die without taking its
children along. It runs in the user's private state folder with a cleaned environment
(runner/child.py: a `runner.py` planted in the user's cwd is never imported). Stopping sends
SIGTERM to the child's process group, waits a grace period, then SIGKILL, and always reaps.

Job records (issue 14 item 8). Every launch writes `jobs/<job id>.json` in the user's state
folder (runner/state.py: 0700, the file 0600, written atomically): pid, the process start time
(/proc/PID/stat field 22), argv, output folder, log, and a Slurm job id (unused for now). The
records are the only source for finding jobs again when the app starts, and for `k` / "quit,
stop them all": a run.json in a watched tree never names a process to signal, since anyone who
can write there could name any process. Right before every signal the pid's start time and
argv are compared with the record: a pid reused by another process is never signalled. A study
whose trials have not logged yet is found again all the same (its record names its log, whose
first line is the study folder).

The spec file and the child's output go to the state folder too, never into the user's folders:
the only thing written there is the new study folder the runner creates.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import spec as rspec
from runner import state
from runner.child import LAUNCH_DIR_ENV, clean_env, python_argv
from tui.remedy.plan import Plan

# longer than the runner's own grace for its trials (runner/study.py, 10 s), so a study can
# stop its trials before it is killed itself
GRACE_S = 15.0
RECORD_VERSION = 1


def state_dir() -> Path:
    """$XDG_STATE_HOME/tunetop/jobs (default ~/.local/state/tunetop/jobs), 0700, ours."""
    return state.jobs_dir()


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
    proc: subprocess.Popen[bytes] | None = None  # None when found again from its record
    run_dir: Path | None = None  # the study folder, where it is known without the log
    exit_code: int | None = None
    signal: str | None = None
    state: str = "running"  # running | exited | failed | stopped | lost
    stopping: bool = False
    start_time: int | None = None  # /proc/PID/stat field 22: with the pid, this process only
    slurm_job_id: str | None = None  # for the Slurm executor (issue 18); unused for now

    @property
    def alive(self) -> bool:
        return self.state == "running"

    @property
    def record_path(self) -> Path:
        return state_dir() / f"{self.id}.json"

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

    def record(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "id": self.id,
            "kind": self.kind,
            "pid": self.pid,
            "start_time": self.start_time,
            "argv": self.cmd,
            "out": str(self.out),
            "log": None if self.log is None else str(self.log),
            "started": self.started,
            "slurm_job_id": self.slurm_job_id,
        }

    def same_process(self) -> bool:
        """Whether self.pid is still the process we started: same start time, same argv. A
        child of ours that we have not reaped keeps its pid, but the check costs nothing."""
        if self.start_time is None or state.proc_start_time(self.pid) != self.start_time:
            return False
        return state.proc_argv(self.pid) == self.cmd


def job_from_record(data: Any) -> Job | None:
    """A Job from a record's JSON, or None when it does not have the record's shape."""
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
        return None
    pid, start, argv = data.get("pid"), data.get("start_time"), data.get("argv")
    if not (isinstance(pid, int) and pid > 1 and isinstance(start, int)):
        return None
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        return None
    job_id, kind, out, log = data.get("id"), data.get("kind"), data.get("out"), data.get("log")
    if not (isinstance(job_id, str) and isinstance(kind, str) and isinstance(out, str)):
        return None
    started = data.get("started")
    slurm = data.get("slurm_job_id")
    return Job(
        job_id,
        kind,
        pid,
        list(argv),
        Path(out),
        Path(log) if isinstance(log, str) else None,
        float(started) if isinstance(started, (int, float)) else time.time(),
        start_time=start,
        slurm_job_id=slurm if isinstance(slurm, str) else None,
    )


def tail_lines(path: Path, n: int) -> list[str]:
    """The last `n` lines of a log file, read from its last 8 KiB only (logs grow for hours)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return []
    try:
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return []  # a FIFO or a device planted at the path: never read
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 8192))
            data = fh.read(8192)
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
            st = fh.read().rsplit(b")", 1)[-1].split()[0]
        return st != b"Z"
    except (OSError, IndexError):
        return True


class Supervisor:
    """The app's (and `tunetop plan --launch`'s, and `tunetop demo`'s) children. Thread-safe."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def launch(self, plan: Plan) -> Job:
        if not plan.launchable or plan.spec is None:
            raise ValueError("plan cannot be launched: missing " + "; ".join(plan.missing))
        # absolute: the child runs in the state folder, not in our cwd
        out = Path(os.path.abspath(plan.out))
        out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        job_id = f"{plan.kind}-{stamp}-{os.getpid()}-{len(self.jobs)}"
        folder = state_dir()
        spec_path = folder / f"{job_id}.toml"
        state.write_private(spec_path, rspec.to_toml(plan.spec).encode())
        source = plan.remedy.get("baseline") or plan.remedy.get("source", "")
        cmd = launch_argv(spec_path, out, plan.kind, str(source), self.python)
        # an external command's relative paths mean what they mean where tunetop was started
        return self.spawn(cmd, plan.kind, out, job_id, extra_env={LAUNCH_DIR_ENV: os.getcwd()})

    def spawn(
        self,
        cmd: list[str],
        kind: str,
        out: Path,
        job_id: str | None = None,
        log_path: Path | None = None,
        extra_env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Job:
        """Start `cmd` (an argv list: no shell) as a supervised child in its own session, in
        `cwd` (default: the private state folder) with a clean environment; record it."""
        job_id = job_id or f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{len(self.jobs)}"
        folder = state_dir()
        log_path = log_path or folder / f"{job_id}.log"
        env = clean_env(extra=extra_env)
        # O_EXCL | O_NOFOLLOW: a new file of ours, never one that a symlink points at
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session and process group: survives SIGHUP
                env=env,
                cwd=folder if cwd is None else cwd,
                close_fds=True,
            )
        # not reaped yet, so /proc/PID/stat is there even if it exited already
        start = state.proc_start_time(proc.pid)
        job = Job(job_id, kind, proc.pid, list(cmd), Path(out), log_path, time.time(), proc)
        job.start_time = start
        state.write_private_json(job.record_path, job.record())
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
            elif not pid_alive(job.pid) or not job.same_process():
                job.state = "stopped" if job.stopping else "lost"
                forget(job)
                changed.append(job)
        return changed

    def _ended(self, job: Job, code: int) -> None:
        job.exit_code = code
        job.signal = signal_name(code)
        if job.stopping:
            job.state = "stopped"
        else:
            job.state = "exited" if code == 0 else "failed"
        forget(job)

    def _signal(self, job: Job, sig: signal.Signals) -> bool:
        """`sig` to the job's process group, only after its pid's start time and argv were
        checked against the record; False when they do not match (nothing is sent). A child
        of ours that we have not reaped is that process for sure (its pid cannot be reused
        before we reap it), whatever it exec'd since; a job found again is checked."""
        if job.proc is not None:
            if job.proc.poll() is not None:
                return False  # ended (and reaped now): its pid may be anyone's from here on
        elif not job.same_process():
            return False
        try:
            pgid = os.getpgid(job.pid)
        except ProcessLookupError:
            return False
        if pgid == job.pid and pgid != os.getpgid(0):
            _signal_group(pgid, sig)  # our children lead their own group (start_new_session)
        else:
            _signal_pid(job.pid, sig)
        return True

    def stop(self, job: Job, grace: float = GRACE_S) -> None:
        """SIGTERM to the job's process group, SIGKILL after `grace` seconds, then reap."""
        if job.state != "running":
            return
        job.stopping = True
        if not self._signal(job, signal.SIGTERM):
            if job.proc is not None:
                self._ended(job, job.proc.wait())  # it ended (unreaped children always match)
            else:
                job.state = "lost"  # gone, or its pid belongs to another process now
                forget(job)
            return
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
        if job.proc is not None:
            # our child leads its own group; while the group lives (grandchildren) its id is
            # not given to another process, reaped leader or not
            if _group_alive(job.pid):
                _signal_group(job.pid, signal.SIGKILL)
            code = job.proc.wait()  # always reap
            self._ended(job, code)
            return
        if pid_alive(job.pid):
            self._signal(job, signal.SIGKILL)
        deadline = time.monotonic() + grace
        while pid_alive(job.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        job.state = "stopped"
        forget(job)

    def adopt_recorded(self) -> list[Job]:
        """Jobs of an earlier start still running, found from their records in the state
        folder (the only source): a record whose pid is gone, or now belongs to another
        process (another start time or argv), is removed and nothing is adopted for it."""
        try:
            paths = sorted(state_dir().glob("*.json"))
        except OSError:
            return []
        adopted: list[Job] = []
        for path in paths:
            try:
                job = job_from_record(json.loads(state.read_private(path, limit=1 << 16)))
            except (OSError, ValueError):
                continue
            if job is None or path.name != f"{job.id}.json":
                continue
            with self._lock:
                if job.id in self.jobs:
                    continue
            if not (pid_alive(job.pid) and job.same_process()):
                forget(job)
                continue
            with self._lock:
                self.jobs[job.id] = job
            adopted.append(job)
        return adopted

    def running(self) -> list[Job]:
        with self._lock:
            return [j for j in self.jobs.values() if j.state == "running"]


def launch_argv(
    spec_path: Path, out: Path, kind: str, source: str, python: str | None = None
) -> list[str]:
    """The command line of a remedy study: `sys.executable -P -m runner SPEC --out OUT ...`."""
    args = ["-m", "runner", str(spec_path), "--out", str(out), "--remedy", kind]
    args += ["--remedy-source", source]
    argv = python_argv(*args)
    if python is not None:
        argv[0] = python
    return argv


def forget(job: Job) -> None:
    """Remove the record of a job that ended (its log stays, for the person who looks)."""
    try:
        job.record_path.unlink(missing_ok=True)
    except OSError:
        pass


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
