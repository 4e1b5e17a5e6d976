"""`python -m runner` (and `tunetop run`): train a run or a study from a TOML spec.

    python -m runner SPEC.toml [--out DIR] [--nproc N]   a run or a study under DIR (./runs)
    python -m runner --resume RUN_FOLDER [--nproc N]     continue a run from its last checkpoint

The first and the last line on stdout are the folder written. A bad spec exits 2 with one line
on stderr. Exit codes (also run.json's exit_code): 0 finished, 1 failed, 2 bad spec or usage,
3 diverged (NaN/Inf loss), 128 + N stopped by signal N (130 SIGINT, 143 SIGTERM); an external
`command` run exits with the command's own code. `--nproc N` trains each run on N processes
under torchrun (DDP: N GPUs, or N CPU processes on the gloo backend).

`--remedy KIND --remedy-source PATH` mark the runs as a remedy the dashboard launched (run.json's
`remedy`). `--trial FOLDER --trial-spec FILE` is internal: a study's child process (or a
torchrun worker) training into FOLDER the spec in FILE, a 0600 file in the user's state folder
(runner/state.py). The trial never reads its spec from FOLDER, which sits in a tree others may
write, and never resumes on its own (issue 14 item 4): only the user's explicit `--resume`
continues a run, and then only from a checkpoint torch.load(weights_only=True) accepts.
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
import threading
import traceback
from pathlib import Path
from typing import IO, Any

from runner import spec as specmod
from runner import state
from runner.rundir import (
    EXIT_FAILED,
    EXIT_USAGE,
    RunRecord,
    new_run_dir,
    open_log,
    read_json,
    write_atomic,
)


class _Tee:
    """A text stream writing through to the terminal and, unbuffered, to output.log."""

    def __init__(self, stream: IO[str], log: IO[bytes]) -> None:
        self.stream, self.log = stream, log

    def write(self, s: str) -> int:
        self.stream.write(s)
        self.stream.flush()
        self.log.write(s.encode("utf-8", "replace"))
        return len(s)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m runner", description="Train a run or a study from a TOML spec."
    )
    p.add_argument("spec", nargs="?", help="the spec file (TOML)")
    p.add_argument("--out", default="runs", help="output folder (default: ./runs)")
    p.add_argument(
        "--resume",
        metavar="RUN_FOLDER",
        help="continue a run from its last checkpoint, in the same folder",
    )
    p.add_argument(
        "--nproc", type=int, default=1, help="processes per run under torchrun (DDP); default 1"
    )
    p.add_argument("--remedy", metavar="KIND", help="mark the runs as this remedy")
    p.add_argument(
        "--remedy-source", metavar="PATH", default="", help="the run or study the remedy is for"
    )
    p.add_argument("--trial", metavar="FOLDER", help=argparse.SUPPRESS)
    p.add_argument("--trial-spec", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--trial-resume", action="store_true", help=argparse.SUPPRESS)
    return p


def _device_problem(specs: list[specmod.RunSpec]) -> str | None:
    """Why a spec's device cannot be had here (CUDA asked for on a CPU build of torch, or on a
    machine without a GPU; a cuda:N past the last GPU), or None. Checked before a run folder
    is made, so a spec that cannot run leaves nothing behind."""
    wanted = sorted({s.device for s in specs if s.device.startswith("cuda")})
    if not wanted:
        return None
    import torch  # deferred: a CPU-only spec needs no torch import here

    if not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        return (
            f"device = {wanted[0]!r}, but torch {torch.__version__} ({build}) sees no CUDA "
            'device: set device = "auto" or "cpu", or install a CUDA build of torch'
        )
    count = torch.cuda.device_count()
    for name in wanted:
        if ":" in name and int(name.split(":", 1)[1]) >= count:
            return f"device = {name!r}, but this machine has {count} CUDA device(s)"
    return None


def _usage_error(message: str) -> int:
    print(f"runner: error: {message}".replace("\n", " "), file=sys.stderr)
    return EXIT_USAGE


def run_here(
    run_dir: Path,
    spec: specmod.RunSpec,
    *,
    resume: bool = False,
    remedy: dict[str, Any] | None = None,
    tee: bool = True,
) -> int:
    """Train (or run the command of) `spec` in this process, in `run_dir`. The exit code.

    run.json is written at the start and at the end (rank 0 only under torchrun); with `tee`
    stdout and stderr go to the terminal and to output.log, else they are output.log already
    (a study's child)."""
    from runner import train  # deferred: torch is slow to import and a bad spec needs none

    rank = int(os.environ.get("RANK", "0"))
    master = rank == 0
    record: RunRecord | None = None
    if master:
        if resume and (run_dir / "run.json").exists():
            record = RunRecord.load(run_dir)
            record.resume()
        else:
            record = RunRecord.start(run_dir, spec, remedy)
    stop = train.Stop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    stop.install()
    stop_event = threading.Event()
    log: IO[bytes] = open_log(run_dir)  # no symlink followed (runner/rundir.py)
    saved = sys.stdout, sys.stderr
    if tee:
        sys.stdout, sys.stderr = _Tee(sys.stdout, log), _Tee(sys.stderr, log)  # type: ignore[assignment]
    try:
        if spec.command:

            def forward_stop(signum: int, _frame: object) -> None:
                stop.request(signum)
                stop_event.set()

            signal.signal(signal.SIGTERM, forward_stop)
            signal.signal(signal.SIGINT, forward_stop)
            echo = saved[0].buffer if tee else None
            from runner.study import run_command  # deferred: search needs scipy

            status, code = run_command(spec, run_dir, log, echo, stop_event)
            if status == "stopped" and stop.signum:
                code = 128 + stop.signum
        else:
            result = train.train(
                spec, run_dir, resume=resume, stop=stop, print_fn=lambda *a: print(*a, flush=True)
            )
            status, code = result.status, result.exit_code
    except Exception:
        traceback.print_exc()  # a bug or a broken workload: this is where a traceback belongs
        status, code = "failed", EXIT_FAILED
    finally:
        sys.stdout, sys.stderr = saved
        log.close()
        for sig, handler in previous.items():  # main() may be called inside another program
            signal.signal(sig, handler)
    if record is not None:
        record.finish(status, code)
    return code


def run_supervised(
    run_dir: Path,
    spec: specmod.RunSpec,
    nproc: int,
    remedy: dict[str, Any] | None,
    *,
    resume: bool = False,
) -> int:
    """A run across several processes: torchrun as a child, its output into output.log. The
    workers get the spec through a private file, as a study's trials do."""
    from runner import study

    spec_file = state.new_trial_spec(specmod.to_toml(spec))
    try:
        launch = {study.LAUNCH_DIR_ENV: str(study.user_launch_dir())}
        child = study.child_of(
            run_dir, nproc, remedy, spec_file=spec_file, resume=resume, extra_env=launch
        )
        proc = study.spawn(child.argv, run_dir / "output.log", child.env, child.cwd)
        stopped = False
        try:
            returncode = proc.wait()
        except KeyboardInterrupt:
            stopped = True
            returncode = study.stop_group(proc)
    finally:
        spec_file.unlink(missing_ok=True)
    study.settle_record(run_dir, spec, returncode, stopped, proc.pid, remedy)
    return study.exit_code_of(returncode)


def _run(
    run_dir: Path,
    spec: specmod.RunSpec,
    nproc: int,
    remedy: dict[str, Any] | None,
    *,
    resume: bool,
) -> int:
    """A run (new or resumed) in `run_dir`, here or under torchrun, between the two lines on
    stdout that name its folder. The exit code."""
    print(run_dir, flush=True)
    if nproc > 1:
        code = run_supervised(run_dir, spec, nproc, remedy, resume=resume)
    else:
        code = run_here(run_dir, spec, resume=resume, remedy=remedy)
    print(run_dir, flush=True)
    return code


def _not_ours(run_dir: Path) -> str | None:
    """Why a folder given to --resume may not decide what runs, or None. Its run.json names
    the spec (and so maybe a command) and its checkpoint the weights: the folder, run.json,
    checkpoints/ and last.pt must be ours and writable by no one else (the trust rule of
    DESIGN.md's tunetop.toml section, for the files the runner itself reads)."""
    for path in (
        run_dir,
        run_dir / "run.json",
        run_dir / "checkpoints",
        run_dir / "checkpoints" / "last.pt",
    ):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        except OSError as e:
            return f"{path}: {e.strerror}"
        if stat.S_ISLNK(st.st_mode):
            return f"{path} is a symlink: not resumed"
        if st.st_uid != os.getuid():
            return f"{path} is owned by uid {st.st_uid}, not by you: not resumed"
        if stat.S_IMODE(st.st_mode) & 0o022:
            return f"{path} is writable by group or others: not resumed"
    return None


def _unloadable_checkpoint(run_dir: Path) -> str | None:
    """Why the run's last checkpoint cannot be resumed from (it must pass
    torch.load(weights_only=True): a pickle payload is refused before any of it runs), or None
    when it can, or when there is none (the run then starts at step 0, as before)."""
    from runner import checkpoint  # deferred: torch

    last = checkpoint.latest(run_dir)
    if last is None:
        return None
    try:
        checkpoint.check_resumable(last)
    except checkpoint.UnsafeCheckpoint as e:
        return str(e)
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    remedy = {"kind": args.remedy, "source": args.remedy_source} if args.remedy else None
    if args.nproc < 1:
        return _usage_error("--nproc must be at least 1")

    if args.trial:  # a study's child (or a torchrun worker): the spec comes privately
        run_dir = Path(args.trial)
        if not args.trial_spec:
            return _usage_error("--trial needs --trial-spec (the spec is never read from FOLDER)")
        try:
            spec = specmod.loads(state.read_private(Path(args.trial_spec)))
        except (specmod.SpecError, state.StateError, UnicodeDecodeError) as e:
            return _usage_error(str(e))
        if not isinstance(spec, specmod.RunSpec):
            return _usage_error(f"{args.trial_spec}: a study spec, not a trial's")
        if args.trial_resume and (problem := _unloadable_checkpoint(run_dir)):
            return _usage_error(problem)
        return run_here(run_dir, spec, resume=args.trial_resume, remedy=remedy, tee=False)

    if args.resume:
        run_dir = Path(args.resume)
        if problem := _not_ours(run_dir):
            return _usage_error(problem)
        try:
            loaded = specmod.from_dict(read_json(run_dir / "run.json")["spec"])
        except (OSError, ValueError, KeyError) as e:
            return _usage_error(f"{run_dir}: not a run folder of the runner ({e})")
        if not isinstance(loaded, specmod.RunSpec):
            return _usage_error(f"{run_dir}: run.json holds a study spec")
        if problem := _unloadable_checkpoint(run_dir) or _device_problem([loaded]):
            return _usage_error(problem)
        return _run(run_dir, loaded, args.nproc, remedy, resume=True)

    if not args.spec:
        return _usage_error("give a spec file, or --resume RUN_FOLDER")
    try:
        loaded = specmod.load(args.spec)
        trials = [loaded] if isinstance(loaded, specmod.RunSpec) else []
        if isinstance(loaded, specmod.StudySpec):
            from runner import search

            trials = search.trial_specs(loaded)  # every trial valid before anything is written
    except specmod.SpecError as e:
        return _usage_error(str(e))
    if problem := _device_problem(trials):
        return _usage_error(f"{args.spec}: {problem}")

    if isinstance(loaded, specmod.StudySpec):
        from runner.study import run_study

        return run_study(loaded, Path(args.out), nproc=args.nproc, remedy=remedy)

    if loaded.workload and not loaded.command:
        from runner.workloads import WorkloadError, resolve

        try:
            resolve(loaded.workload)  # an unknown workload is a bad spec, not a failed run
        except WorkloadError as e:
            return _usage_error(f"{args.spec}: {e}")
    run_dir = new_run_dir(Path(args.out), loaded.name)
    write_atomic(run_dir / "spec.toml", specmod.to_toml(loaded).encode())
    return _run(run_dir, loaded, args.nproc, remedy, resume=False)
