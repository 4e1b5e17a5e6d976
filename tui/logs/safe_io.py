"""One safe way to open a file found in a watched folder (issue 14, trust model).

Files under a watched root are untrusted input: a colleague, a group, or a job running as
someone else may have written them. So every file tunetop reads there goes through here:

- opened with O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC: a FIFO opens at once instead of blocking
  until a writer comes (then fstat refuses it), a symlink as the last path component is
  refused instead of followed out of the tree (to /dev/zero, to someone's private spec);
- fstat on the open descriptor (not on the path: no check-then-open race) and only regular
  files accepted: no FIFOs, sockets, devices or directories;
- config-like files (run.json, config.json, hparams, tunetop.toml, trainer_state.json) read
  whole only under a size cap, and parsed with RecursionError / MemoryError turned into a
  clear reason: a 10,000-deep `[[[[` costs only that file.

Everything here raises `UnsafeFile` (an OSError) with a one-line reason a person reads; callers
report it as that file's error and go on with the other runs.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

MAX_CONFIG_BYTES = 1 << 20  # run.json, config.json, hparams.*, tunetop.toml
CHUNK = 64 * 1024

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class UnsafeFile(OSError):
    """A file refused or unreadable: `reason` is one line, without the path."""

    def __init__(self, path: str | os.PathLike[str], reason: str, err: int | None = None) -> None:
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason
        self.errno = err  # the OS error behind it (ENOENT: the file is gone), else None


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def open_regular(
    path: str | os.PathLike[str], *, follow: bool = False, dir_fd: int | None = None
) -> tuple[int, os.stat_result]:
    """An O_RDONLY descriptor on a regular file, and its fstat. `follow=True` only for files
    the user chose themselves (their own config folder), never for files found in a tree."""
    flags = _FLAGS if follow else _FLAGS | _NOFOLLOW
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == getattr(os, "ELOOP", 40) and not follow:
            raise UnsafeFile(path, "is a symbolic link: not followed") from None
        raise UnsafeFile(path, exc.strerror or str(exc), exc.errno) from None
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise UnsafeFile(path, exc.strerror or str(exc)) from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafeFile(path, f"is {_kind(st.st_mode)}, not a regular file: not read")
    return fd, st


def read_small(
    path: str | os.PathLike[str], limit: int = MAX_CONFIG_BYTES, *, follow: bool = False
) -> bytes:
    """The whole of a config-like file, refused over `limit` bytes (checked on the open file
    and again while reading: a file that grows under us is not read past the cap)."""
    fd, st = open_regular(path, follow=follow)
    try:
        if st.st_size > limit:
            raise UnsafeFile(path, f"{st.st_size:,} bytes, over the {limit:,}-byte limit: not read")
        parts: list[bytes] = []
        got = 0
        while True:
            chunk = os.read(fd, min(CHUNK, limit + 1 - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
            if got > limit:
                raise UnsafeFile(path, f"grew over the {limit:,}-byte limit while read: not read")
        return b"".join(parts)
    except OSError as exc:
        if isinstance(exc, UnsafeFile):
            raise
        raise UnsafeFile(path, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


def parse_json(path: str | os.PathLike[str], data: bytes) -> Any:
    """JSON (NaN / Infinity accepted, as Python writes them) with every failure a reason."""
    try:
        return json.loads(data)
    except RecursionError:
        raise UnsafeFile(path, "nested too deeply to parse: not read") from None
    except MemoryError:
        raise UnsafeFile(path, "too large to parse: not read") from None
    except UnicodeDecodeError:
        raise UnsafeFile(path, "not UTF-8 text") from None
    except ValueError as exc:
        raise UnsafeFile(path, f"not valid JSON ({exc})") from None


def parse_toml(path: str | os.PathLike[str], data: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except RecursionError:
        raise UnsafeFile(path, "nested too deeply to parse: not read") from None
    except MemoryError:
        raise UnsafeFile(path, "too large to parse: not read") from None
    except UnicodeDecodeError:
        raise UnsafeFile(path, "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UnsafeFile(path, f"not valid TOML ({exc})") from None


def load_json(
    path: str | os.PathLike[str], limit: int = MAX_CONFIG_BYTES, *, follow: bool = False
) -> Any:
    return parse_json(path, read_small(path, limit, follow=follow))


def load_toml(
    path: str | os.PathLike[str], limit: int = MAX_CONFIG_BYTES, *, follow: bool = False
) -> dict[str, Any]:
    return parse_toml(path, read_small(path, limit, follow=follow))


def is_regular(path: str | os.PathLike[str]) -> bool:
    """lstat says a regular file (not a link, FIFO, device): for discovery, which must not
    even try to open special files."""
    try:
        return stat.S_ISREG(os.lstat(Path(path)).st_mode)
    except OSError:
        return False
