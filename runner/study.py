"""Studies, child processes and external commands.

A study (a spec with a [study] table) is written as

    OUT/<study name>-<YYYYmmdd-HHMMSS>/spec.toml     the study spec as resolved
    OUT/<study name>-<YYYYmmdd-HHMMSS>/study.json    its trials (folder, overrides, status,
                                                     exit code) and the study's own status
    OUT/<study name>-<YYYYmmdd-HHMMSS>/t000/ ...     one folder per trial, made when it starts

Every trial is a separate process, `python -P -m runner --trial TRIAL_DIR --trial-spec FILE`
(under `torch.distributed.run` when it spans several devices, `nproc`), started in its own
session and process group with its stdout and stderr going straight into output.log (no
buffering in between). How it starts is runner/child.py's: the interpreter we run on with -P,
the trial folder as its working directory, a cleaned environment. Its spec goes through FILE, a
0600 file in the user's state folder (runner/state.py); the spec.toml in the trial folder is a
record for people, never read back (issue 14 item 4: a trial folder swapped between its
creation and the child's start must not decide what the child runs). As many trials run at
once as there are devices: one GPU each (CUDA_VISIBLE_DEVICES) when the spec may use CUDA,
else `study.parallel` (default 1).

Stopping (SIGTERM or SIGINT to the study): no new trial starts; each running trial's process
group gets SIGTERM, then SIGKILL after a grace period; every child is reaped. A trial that died
without recording its end (kill -9, a crash at import) gets it recorded here: status failed, or
stopped when we stopped it, and the exit code (128 + N for signal N).

Exit codes of a study: 0 when every trial finished or diverged (a diverged trial at the top of a
sweep is an outcome, R12), 1 when one failed, 128 + N when stopped by signal N.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from runner import search, state
from runner import spec as specmod
from runner.child import (
    LAUNCH_DIR_ENV,
    Child,
    clean_env,
    command_argv,
    command_env,
    python_argv,
    user_launch_dir,
)
from runner.rundir import (
    EXIT_DIVERGED,
    EXIT_FAILED,
    EXIT_FINISHED,
    RunRecord,
    new_run_dir,
    new_trial_dir,
    open_log,
    read_json,
    write_atomic,
    write_json_atomic,
)

# SIGTERM -> SIGKILL; the environment variable is for tests and impatient people
GRACE_SECONDS = float(os.environ.get("TUNETOP_STOP_GRACE", "10"))


def exit_code_of(returncode: int) -> int:
    """Popen's returncode (-N for signal N) as a shell writes it (128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


# ------------------------------------------------------------------------------------------
# child processes
# ------------------------------------------------------------------------------------------


def trial_args(
    trial_dir: Path,
    remedy: dict[str, Any] | None = None,
    spec_file: Path | None = None,
    resume: bool = False,
) -> list[str]:
    """The runner's own arguments for one trial (paths absolute: the child runs elsewhere)."""
    args = ["-m", "runner", "--trial", os.path.abspath(trial_dir)]
    if spec_file is not None:
        args += ["--trial-spec", os.path.abspath(spec_file)]
    if resume:
        args.append("--trial-resume")
    if remedy:
        args += [
            "--remedy",
            str(remedy.get("kind", "")),
            "--remedy-source",
            str(remedy.get("source", "")),
        ]
    return args


def child_argv(
    trial_dir: Path,
    nproc: int = 1,
    remedy: dict[str, Any] | None = None,
    spec_file: Path | None = None,
    resume: bool = False,
) -> list[str]:
    """The command line of one trial: `sys.executable -P -m runner --trial ...`; several
    processes (DDP) run under torchrun, whose workers inherit -P as PYTHONSAFEPATH=1."""
    args = trial_args(trial_dir, remedy, spec_file, resume)
    if nproc <= 1:
        return python_argv(*args)
    return python_argv(
        "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args
    )


# the name the "what will run" preview (tui/remedy) knows
trial_argv = child_argv


def child_cwd(trial_dir: Path) -> Path:
    """A trial's working directory: its own folder, which the study has just made (0750, empty
    but for what we wrote): never the user's cwd, where a runner.py may have been planted."""
    return Path(os.path.abspath(trial_dir))


def child_of(
    trial_dir: Path,
    nproc: int = 1,
    remedy: dict[str, Any] | None = None,
    *,
    spec_file: Path | None = None,
    resume: bool = False,
    extra_env: dict[str, str] | None = None,
) -> Child:
    """argv, working directory and environment of one trial: the one place that builds them."""
    return Child(
        child_argv(trial_dir, nproc, remedy, spec_file, resume),
        child_cwd(trial_dir),
        clean_env(extra=extra_env),
    )


def spawn(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session and process group, stdout and stderr to `log_path`.

    Its own session: stopping it stops its whole group (grandchildren included), and a SIGHUP
    to our terminal does not reach it (issue 8 item 3). `env` defaults to a clean copy of ours
    (runner/child.py); `cwd` to the log's folder (a run or trial folder of ours)."""
    full_env = clean_env() if env is None else dict(env)
    full_env["PYTHONUNBUFFERED"] = "1"  # the child's output reaches output.log as it is made
    log_path = Path(log_path)
    with open_log(log_path.parent, log_path.name) as log:  # a planted symlink is refused
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=log_path.parent if cwd is None else cwd,
            start_new_session=True,
        )


def stop_group(proc: subprocess.Popen[bytes], grace: float = GRACE_SECONDS) -> int:
    """SIGTERM to the child's process group, SIGKILL after `grace` seconds; reaps the child."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(timeout=grace if sig == signal.SIGTERM else None)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def settle_record(
    trial_dir: Path,
    spec: specmod.RunSpec,
    returncode: int,
    stopped: bool,
    pid: int,
    remedy: dict[str, Any] | None = None,
) -> None:
    """Record a child's end in its run.json when the child could not (kill -9, a crash)."""
    try:
        record = RunRecord.load(trial_dir)
    except (OSError, ValueError):
        record = RunRecord.start(trial_dir, spec, remedy, pid=pid)
    if record.data.get("status") != "running":
        return
    code = exit_code_of(returncode)
    if stopped:
        status = "stopped"
    else:
        status = {EXIT_FINISHED: "finished", EXIT_DIVERGED: "diverged"}.get(code, "failed")
    record.finish(status, code)


# ------------------------------------------------------------------------------------------
# external commands (spec.command)
# ------------------------------------------------------------------------------------------


def run_command(
    spec: specmod.RunSpec,
    run_dir: Path,
    log: IO[bytes],
    echo: IO[bytes] | None,
    stop_event: threading.Event,
) -> tuple[str, int]:
    """Run spec.command (no shell) and wait; its output goes to `log` (and `echo`).

    Placeholders are filled by runner.spec.format_placeholders ({run_dir} is absolute). The
    command runs in its run folder (made by us, nothing planted in it), not in the user's cwd;
    relative paths that name files where the runner was started (`train.py`) are made absolute
    first, so they mean what they mean on the user's command line, and a bare `python` is the
    interpreter we run on (runner/child.py command_argv). No -P for it: the script's own folder
    is where the user's modules live (`import model` beside train.py). It logs on its own.
    Returns (status, exit code): finished, failed, or stopped when we were asked to stop.
    """
    command = command_child(spec, run_dir)
    argv, env = command.argv, command.env

    def emit(data: bytes) -> None:
        log.write(data)
        if echo is not None:
            echo.write(data)
            echo.flush()

    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=command.cwd,
        )
    except OSError as e:
        emit(f"runner: cannot start {argv[0]!r}: {e}\n".encode())
        return "failed", 127 if isinstance(e, FileNotFoundError) else 126

    def watch_stop() -> None:
        stop_event.wait()
        if proc.poll() is None:
            stop_group_member(proc)

    threading.Thread(target=watch_stop, daemon=True).start()
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    while chunk := os.read(fd, 65536):
        emit(chunk)
    returncode = proc.wait()
    emit(f"runner: command {describe_exit(returncode)}\n".encode())
    code = exit_code_of(returncode)
    if stop_event.is_set():
        return "stopped", code
    return ("finished" if returncode == 0 else "failed"), code


def command_child(spec: specmod.RunSpec, run_dir: Path, launch_dir: Path | None = None) -> Child:
    """argv, working directory and environment of an external `command` (see run_command)."""
    run_dir = Path(os.path.abspath(run_dir))
    argv = specmod.format_placeholders(spec.command or [], spec, str(run_dir))
    argv = command_argv(argv, user_launch_dir() if launch_dir is None else launch_dir)
    return Child(argv, run_dir, command_env(extra={"TUNETOP_RUN_DIR": str(run_dir)}))


def stop_group_member(proc: subprocess.Popen[bytes], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM to one child sharing our process group, SIGKILL after `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()


# ------------------------------------------------------------------------------------------
# the study
# ------------------------------------------------------------------------------------------


@dataclass
class Trial:
    index: int
    spec: specmod.RunSpec
    overrides: dict[str, Any]
    dir: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    slot: int = -1
    status: str = "pending"
    exit_code: int | None = None
    spec_file: Path | None = None  # the private spec, while the trial runs


def device_slots(base: specmod.RunSpec, nproc: int) -> list[str | None]:
    """One entry per trial slot: the CUDA_VISIBLE_DEVICES of that slot, or None (no GPU)."""
    if base.device == "cpu" or base.device.startswith("cuda:"):
        return [None]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d for d in visible.split(",") if d.strip()]
    else:
        try:
            import torch

            ids = [str(i) for i in range(torch.cuda.device_count())]
        except Exception:  # no torch CUDA at all: a CPU study
            ids = []
    if not ids:
        return [None]
    n = max(1, nproc)
    return [",".join(ids[i : i + n]) for i in range(0, len(ids) - n + 1, n)] or [",".join(ids)]


class Study:
    def __init__(
        self,
        study: specmod.StudySpec,
        out: Path,
        *,
        nproc: int = 1,
        remedy: dict[str, Any] | None = None,
        grace: float = GRACE_SECONDS,
    ) -> None:
        self.spec = study
        self.nproc = nproc
        self.remedy = remedy
        self.grace = grace
        overrides = search.trials(study)
        specs = search.trial_specs(study)  # a SpecError here: nothing has been written yet
        self.trials = [
            Trial(i, s, o) for i, (s, o) in enumerate(zip(specs, overrides, strict=True))
        ]
        self.dir = new_run_dir(Path(out), study.study.name)
        self.stop_signum = 0
        self.started = time.time()
        self.status = "running"
        write_atomic(self.dir / "spec.toml", specmod.to_toml(study).encode())
        self.save()

    def save(self) -> None:
        write_json_atomic(
            self.dir / "study.json",
            {
                "spec": specmod.to_dict(self.spec),
                "trials": [
                    {
                        "dir": f"t{t.index:03d}",
                        "overrides": t.overrides,
                        "status": t.status,
                        "exit_code": t.exit_code,
                    }
                    for t in self.trials
                ],
                "status": self.status,
                "pid": os.getpid(),
                "started": self.started,
                "ended": None if self.status == "running" else time.time(),
                "remedy": self.remedy,
            },
        )

    def request_stop(self, signum: int, _frame: object = None) -> None:
        self.stop_signum = signum

    def prepare(self, trial: Trial) -> None:
        """The trial's folder (0750, with spec.toml for people) and its private spec file."""
        trial.dir = new_trial_dir(self.dir, trial.index)
        text = specmod.to_toml(trial.spec)
        write_atomic(trial.dir / "spec.toml", text.encode())  # a record: never read back
        trial.spec_file = state.new_trial_spec(text)

    def launch(self, trial: Trial, cuda: str | None) -> None:
        assert trial.dir is not None
        extra = {LAUNCH_DIR_ENV: str(user_launch_dir())}
        if cuda is not None:
            extra["CUDA_VISIBLE_DEVICES"] = cuda
        child = child_of(
            trial.dir, self.nproc, self.remedy, spec_file=trial.spec_file, extra_env=extra
        )
        trial.proc = spawn(child.argv, trial.dir / "output.log", child.env, child.cwd)

    def start(self, trial: Trial, slot: int, cuda: str | None) -> bool:
        """Start one trial; False (the trial recorded failed) when it cannot be started, e.g.
        its folder was replaced by a symlink (open_log refuses it): the study goes on."""
        try:
            self.prepare(trial)
            assert trial.dir is not None
            self.launch(trial, cuda)
        except OSError as e:
            self.drop_spec(trial)
            trial.status, trial.exit_code = "failed", EXIT_FAILED
            print(f"t{trial.index:03d} failed: cannot start it: {e}", flush=True)
            self.save()
            return False
        assert trial.proc is not None
        trial.slot, trial.status = slot, "running"
        print(f"started {trial.dir.name} {trial.overrides} (pid {trial.proc.pid})", flush=True)
        self.save()
        return True

    def run(self) -> int:
        slots = device_slots(self.spec.base, self.nproc)
        parallel = self.spec.study.parallel or (len(slots) if slots[0] is not None else 1)
        pending = list(self.trials)
        running: dict[int, Trial] = {}
        exited: queue.Queue[Trial] = queue.Queue()
        free = list(range(parallel))
        stopping: set[int] = set()

        def wait_for(trial: Trial) -> None:
            assert trial.proc is not None
            trial.proc.wait()
            exited.put(trial)

        while pending or running:
            while pending and free and not self.stop_signum:
                trial, slot = pending.pop(0), free.pop(0)
                if not self.start(trial, slot, slots[slot % len(slots)]):
                    free.append(slot)
                    continue
                running[trial.index] = trial
                threading.Thread(target=wait_for, args=(trial,), daemon=True).start()
            if self.stop_signum:
                pending.clear()
                for trial in running.values():
                    if trial.index in stopping:
                        continue
                    stopping.add(trial.index)
                    assert trial.proc is not None
                    threading.Thread(
                        target=stop_group, args=(trial.proc, self.grace), daemon=True
                    ).start()
            if not running:
                break
            try:
                trial = exited.get(timeout=0.5)  # the timeout only lets us notice a stop
            except queue.Empty:
                continue
            self.reap(trial)
            del running[trial.index]
            free.append(trial.slot)
        return self.finish()

    @staticmethod
    def drop_spec(trial: Trial) -> None:
        if trial.spec_file is not None:
            trial.spec_file.unlink(missing_ok=True)
            trial.spec_file = None

    def reap(self, trial: Trial) -> None:
        assert trial.proc is not None and trial.dir is not None
        returncode = trial.proc.wait()
        self.drop_spec(trial)
        settle_record(
            trial.dir, trial.spec, returncode, bool(self.stop_signum), trial.proc.pid, self.remedy
        )
        try:
            record = read_json(trial.dir / "run.json")
            trial.status, trial.exit_code = record["status"], record["exit_code"]
        except (OSError, ValueError, KeyError):
            trial.status, trial.exit_code = "failed", exit_code_of(returncode)
        print(f"{trial.dir.name} {trial.status} ({describe_exit(returncode)})", flush=True)
        self.save()

    def finish(self) -> int:
        if self.stop_signum:
            self.status, code = "stopped", 128 + self.stop_signum
        elif any(t.status not in ("finished", "diverged") for t in self.trials):
            self.status, code = "failed", EXIT_FAILED
        else:
            self.status, code = "finished", EXIT_FINISHED
        self.save()
        return code


def run_study(
    study: specmod.StudySpec, out: Path, *, nproc: int = 1, remedy: dict[str, Any] | None = None
) -> int:
    """Run every trial of `study` under OUT; prints the study folder first. The exit code."""
    s = Study(study, out, nproc=nproc, remedy=remedy)
    print(s.dir, flush=True)
    previous = {sig: signal.signal(sig, s.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = s.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(s.dir, flush=True)
    return code
