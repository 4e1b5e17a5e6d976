"""The user's private state folder, and facts about processes (issue 14 items 4 and 8).

    $XDG_STATE_HOME/tunetop/          (default ~/.local/state/tunetop), 0700
        jobs/<job id>.json            the job record of a study the dashboard (or `tunetop plan
                                      --launch`, or `tunetop demo`) launched: pid, process start
                                      time, argv, output folder; 0600, written atomically
        jobs/<job id>.toml, .log      that job's spec and its stdout / stderr
        trials/<random>.toml          a trial's spec on its way from the study process to the
                                      trial process (0600; removed when the trial ends)

Why a private folder: everything under a watched root may have been written by someone else
(issue 14). What decides what runs (a trial's spec) or which process gets a signal (a job
record) lives where only the user can write, never in the shared tree. The folder is made 0700
and refused when someone else owns it.

No torch and no textual here: both the runner and the monitor use it.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import tempfile
import time
from pathlib import Path
from typing import Any


class StateError(OSError):
    """The state folder cannot be used safely (owned by someone else, not a folder)."""


def state_root() -> Path:
    """$XDG_STATE_HOME/tunetop (XDG base directory spec: a relative value is ignored)."""
    base = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "tunetop"


def private_dir(path: Path) -> Path:
    """`path` as a folder of ours that no one else can write or read: made 0700 when missing,
    tightened to 0700 when looser; a symlink, or a folder someone else owns, is refused."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(f"{path}: not a folder (a symlink or a file): refusing to use it")
    if st.st_uid != os.getuid():
        raise StateError(f"{path}: owned by uid {st.st_uid}, not by us: refusing to use it")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def jobs_dir() -> Path:
    private_dir(state_root())
    return private_dir(state_root() / "jobs")


def trials_dir() -> Path:
    private_dir(state_root())
    return private_dir(state_root() / "trials")


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` by `data` atomically, mode 0600 (mkstemp makes 0600 and O_EXCL)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_private_json(path: Path, obj: Any) -> None:
    write_private(path, (json.dumps(obj, indent=1) + "\n").encode())


def new_trial_spec(text: str) -> Path:
    """A 0600 file in trials/ holding a trial's spec: the private channel from the study
    process to its trial (never the trial folder, which sits in a tree others may write)."""
    folder = trials_dir()
    _drop_stale(folder)
    path = folder / f"{secrets.token_hex(8)}.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return path


STALE_S = 2 * 86400  # a trial reads its spec once, at its start: older ones are leftovers


def _drop_stale(folder: Path) -> None:
    """Remove specs left by a study that was killed (-9) before its trials ended."""
    now = time.time()
    try:
        for entry in os.scandir(folder):
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if entry.name.endswith(".toml") and age > STALE_S:
                os.unlink(entry.path)
    except OSError:
        pass


def read_private(path: Path, limit: int = 1 << 20) -> str:
    """The text of a private file: a regular file of ours, not a symlink, no one else may
    write it. Raises StateError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise StateError(f"{path}: cannot open the private spec: {e.strerror}") from e
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise StateError(f"{path}: not a regular file")
        if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o022:
            raise StateError(f"{path}: not a private file of ours (uid {st.st_uid})")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise StateError(f"{path}: larger than {limit} bytes")
    return data.decode("utf-8")


# -- processes ---------------------------------------------------------------------------------


def proc_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None
    when there is no such process. With the pid it names one process for good: a pid reused
    by another process has another start time."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # field 2 (comm) is in parentheses and may hold spaces and ')': split after the last ')'
    fields = data.rsplit(b")", 1)[-1].split()
    try:
        return int(fields[19])  # fields[0] is field 3 (state): field 22 is fields[19]
    except (IndexError, ValueError):
        return None


def proc_argv(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")[:-1]]


def proc_uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
