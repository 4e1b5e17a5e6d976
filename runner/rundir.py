"""Output folders, run.json and metrics.jsonl (DESIGN.md "The runner's output").

    OUT/NAME/run.json        the resolved spec, its flattened hparams, status, pid, times
    OUT/NAME/metrics.jsonl   one JSON object a line: train rows and eval rows
    OUT/NAME/output.log      the trial's stdout and stderr
    OUT/NAME/checkpoints/    see runner/checkpoint.py

Nothing existing is ever written into: every folder is made with os.mkdir, which fails when the
name is taken, and a taken name gets a numeric suffix. Run, study and trial folders are made
0750 (DIR_MODE) and their files 0640: the user's group may read the runs (a colleague's
dashboard, a shared results folder), but no one else may write into them, and nothing in them
can be planted or swapped by another user (issue 14 item 4: the trust check wants exactly
"not writable by group or others"). 0700 would hide runs from the team for no gain in safety.
Files in them are opened with O_NOFOLLOW (and O_EXCL where they are new), relative to the
folder's own descriptor where practical: a symlink planted at output.log or metrics.jsonl is
refused, never written through. run.json is replaced atomically (temp
file in the same folder, fsync, os.replace, fsync of the folder), so a reader never sees half a
file and a kill -9 leaves either the old or the new one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from runner import spec as specmod

STATUSES = ("running", "finished", "diverged", "failed", "stopped")

# Exit codes of `python -m runner`, also written to run.json's exit_code. A study treats a
# diverged trial as an outcome, not an error (R12: the top of a learning-rate sweep diverges).
EXIT_FINISHED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # bad spec or command line
EXIT_DIVERGED = 3
# stopped by signal N: 128 + N (130 for SIGINT, 143 for SIGTERM), as a shell reports it

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._=,+-]+")


def safe_name(name: str) -> str:
    """`name` usable as one path component: no separators, no `..`, no shell metacharacters
    (issue 8 item 5: a name from a spec never becomes a path outside the output root)."""
    cleaned = _UNSAFE_NAME.sub("_", name).strip("._") or "run"
    return cleaned[:100]


DIR_MODE = 0o750  # see the module docstring
FILE_MODE = 0o640
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def make_unique_dir(parent: Path, stem: str) -> Path:
    """Create `parent/stem`, or `parent/stem-1`, `-2`, ... when taken; never reuse a folder."""
    parent.mkdir(parents=True, exist_ok=True)
    for i in range(10_000):
        path = parent / (stem if i == 0 else f"{stem}-{i}")
        try:
            # exclusive: FileExistsError when taken, even by a racing process
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free folder name for {stem!r} under {parent}")


def new_run_dir(out: Path, name: str, now: float | None = None) -> Path:
    """OUT/<name>-<YYYYmmdd-HHMMSS>, with a numeric suffix if taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return make_unique_dir(Path(out), f"{safe_name(name)}-{stamp}")


def new_trial_dir(study_dir: Path, index: int) -> Path:
    """STUDY/t000, t001, ...; fails (never reuses) when the folder exists."""
    path = Path(study_dir) / f"t{index:03d}"
    os.mkdir(path, DIR_MODE)
    return path


def open_in(folder: Path, name: str, flags: int, mode: int = FILE_MODE) -> int:
    """os.open of `folder/name` that follows no symlink: neither at `folder` itself (opened
    O_DIRECTORY | O_NOFOLLOW) nor at `name` (O_NOFOLLOW, relative to the folder's descriptor).
    A planted symlink raises OSError (ELOOP / ENOTDIR) instead of being written through."""
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
    try:
        return os.open(name, flags | NOFOLLOW, mode, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def open_log(folder: Path, name: str = "output.log") -> IO[bytes]:
    """`folder/output.log` for appending, unbuffered, created 0640 when missing, no symlink."""
    fd = open_in(folder, name, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return os.fdopen(fd, "ab", buffering=0)


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (POSIX: the directory entry needs its own fsync)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the rename is still atomic
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` by `data` (see :func:`replace_atomic`)."""
    replace_atomic(path, lambda f: f.write(data))


def replace_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Replace `path` by what `write` writes to a binary file: a temp file `.NAME.*.tmp` in the
    same folder, fsync, os.replace, fsync of the folder. `path` is always the old or the new
    file; the temp file is removed when `write` raises."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)  # mkstemp makes 0600; the group reads runs too
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def write_json_atomic(path: Path, obj: Any) -> None:
    # allow_nan: Python's json writes NaN / Infinity, which the dashboard's readers accept
    write_atomic(path, (json.dumps(obj, indent=2, allow_nan=True) + "\n").encode())


def read_json(path: Path) -> Any:
    """A JSON file of a run folder, not through a symlink."""
    path = Path(path)
    fd = open_in(path.parent, path.name, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, encoding="utf-8") as f:
        return json.load(f)


class RunRecord:
    """run.json of one trial, rewritten atomically on every status change."""

    def __init__(self, run_dir: Path, data: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.data = data

    @property
    def path(self) -> Path:
        return self.run_dir / "run.json"

    @classmethod
    def start(
        cls,
        run_dir: Path,
        spec: specmod.RunSpec,
        remedy: dict[str, Any] | None = None,
        pid: int | None = None,
    ) -> RunRecord:
        data = {
            "spec": specmod.to_dict(spec),
            "hparams": specmod.flatten(spec),
            "max_train_steps": spec.max_train_steps,
            "total_steps": spec.total_steps,
            "status": "running",
            "pid": os.getpid() if pid is None else pid,
            "started": time.time(),
            "ended": None,
            "exit_code": None,
            "remedy": remedy,
        }
        record = cls(run_dir, data)
        record.save()
        return record

    @classmethod
    def load(cls, run_dir: Path) -> RunRecord:
        return cls(run_dir, read_json(Path(run_dir) / "run.json"))

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    def resume(self, pid: int | None = None) -> None:
        """Back to running (a --resume): new pid, the end cleared; `started` is kept."""
        self.data.update(
            status="running", pid=os.getpid() if pid is None else pid, ended=None, exit_code=None
        )
        self.save()

    def finish(self, status: str, exit_code: int) -> None:
        assert status in STATUSES, status
        self.data.update(status=status, ended=time.time(), exit_code=exit_code)
        self.save()


class MetricsWriter:
    """Appends rows to metrics.jsonl, one flush per batch of rows.

    Never truncates: a resumed run appends from its resume step, and the dashboard's store lets
    the later points supersede the earlier ones at the same steps.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        fd = open_in(Path(run_dir), "metrics.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self._f: IO[str] = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        # one write of whole lines: a tailing reader sees complete records or nothing new
        self._f.write("".join(json.dumps(r, allow_nan=True) + "\n" for r in rows))
        self._f.flush()

    def sync(self) -> None:
        """Durable before a checkpoint claims the steps these rows describe."""
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of a run's metrics.jsonl (tests and the benchmark)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
