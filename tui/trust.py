"""The trust check: may this file decide what tunetop executes? (issue 14; DESIGN.md "tunetop.toml")

The trust model
---------------
The folders tunetop watches are often shared: writable by colleagues, by a team's group, or by
a job that runs as someone else. Reading a file there for metrics is safe (tui/logs/safe_io.py
makes it so); letting it choose a program is not: a planted run.json or tunetop.toml would run
its author's code as the person using tunetop. So whatever decides what runs -- a `[launch]
command`, run.json's `spec.command`, a `file.py:fn` or `pkg.module:fn` workload (importing a
module runs it), an interpreter, an environment, `readonly = false` -- is taken only from:

1. the user's own config folder (~/.config/tunetop, or $XDG_CONFIG_HOME/tunetop);
2. a file the user owns, where neither the file nor any folder from it up to the watched root
   is writable by group or others, and none of them is a symbolic link (folders may also be
   root's). Then nobody but the user (and root) could have written the file or swapped it,
   or a folder on its way, for another: ssh's StrictModes for ~/.ssh, git's safe.directory;
3. a folder listed in `[trust] roots` of the user's own tunetop.toml: a shared project folder
   the user trusts as it is (git's safe.directory allowlist);
4. `tunetop plan --trust`: the files of that one plan, and the plan says so.

Folders above the watched root do not count (/tmp is 1777 and sits above most test roots): the
user chose the root, and a root inside a shared folder is the user's decision to make.

Anything else is still read for metrics and hparams. A plan built on it computes everything,
and its `missing` says why it cannot launch and how to trust it. A built-in workload name
(`digits_mlp`, ...) decides no code: a run.json naming one may be relaunched untrusted.

Checked with os.lstat (a symbolic link is judged as a link, never followed) and the file's real
uid against os.geteuid(). Not modelled: POSIX ACLs and other users' capabilities (root).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "tunetop.toml"


def user_config_dir() -> Path:
    """The user's own config folder: the one place that decides what runs without a check."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tunetop"


@dataclass(frozen=True)
class Policy:
    """What a check is made against: the watched root, the user's allowlist, `--trust`."""

    root: Path  # files above it do not count; a file outside it is never trusted
    allow: tuple[str, ...] = ()  # `[trust] roots` of the user's own tunetop.toml
    forced: bool = False  # `tunetop plan --trust`: this plan trusts the files under root
    config_dir: Path | None = None  # default: user_config_dir()

    def how(self) -> str:
        """How a person trusts the files of this root, in one line."""
        cfg = (self.config_dir or user_config_dir()) / CONFIG_NAME
        return (
            f'to trust it: add "{os.path.abspath(self.root)}" to [trust] roots in {cfg}, '
            "or pass --trust to tunetop plan"
        )


@dataclass(frozen=True)
class Verdict:
    """Whether `path` may decide what runs, and why, in one line."""

    trusted: bool
    path: str
    why: str  # "run.json is owned by uid 1001 and group-writable"
    how: str = ""  # how to trust it (empty when trusted)

    def says(self, what: str = "command") -> str:
        """One line: "run.json is owned by uid 1001 and group-writable: its command is not
        trusted; to trust it: ..." (or "...: its command is trusted")."""
        if self.trusted:
            return f"{self.why}: its {what} is trusted"
        tail = f"; {self.how}" if self.how else ""
        return f"{self.why}: its {what} is not trusted{tail}"


def _abs(path: str | os.PathLike[str]) -> Path:
    """Absolute and normalised without resolving symbolic links (they are what is checked)."""
    return Path(os.path.normpath(os.path.abspath(path)))


def within(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """`path` is `folder` or under it, lexically (no `..` escapes: both are normalised)."""
    return _abs(path).is_relative_to(_abs(folder))


def within_real(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """`path` is under `folder` once every symbolic link is resolved: a link cannot lead out."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(folder)))
    except (OSError, ValueError):
        return False


def _display(path: Path, root: Path) -> str:
    """The path as the plan names it: relative to the root when inside it."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return str(path)
    return str(rel) if str(rel) != "." else path.name or str(path)


def _writable_by(mode: int) -> str | None:
    group, other = bool(mode & stat.S_IWGRP), bool(mode & stat.S_IWOTH)
    if group and other:
        return "group- and world-writable"
    if group:
        return "group-writable"
    if other:
        return "writable by others"
    return None


def _faults(st: os.stat_result, *, root_may_own: bool) -> str | None:
    """What makes this inode writable by someone else: "owned by uid 1001 and group-writable"."""
    parts = []
    uid = os.geteuid()
    if st.st_uid != uid and not (root_may_own and st.st_uid == 0):
        parts.append(f"owned by uid {st.st_uid}")
    writable = _writable_by(st.st_mode)
    if writable:
        parts.append(writable)
    return " and ".join(parts) or None


def check(path: str | os.PathLike[str], policy: Policy) -> Verdict:
    """May `path` (a file, or a run folder) decide what runs? See the module's trust model."""
    p = _abs(path)
    root = _abs(policy.root)
    name = _display(p, root)
    how = policy.how()
    config_dir = _abs(policy.config_dir or user_config_dir())
    if within(p, config_dir):
        return Verdict(True, str(p), f"{name} is in your config folder {config_dir}")
    if policy.forced:
        return Verdict(True, str(p), f"{name} is trusted for this plan by --trust")
    for allowed in policy.allow:
        folder = os.path.expanduser(allowed)
        if os.path.isabs(folder) and within_real(p, folder):
            return Verdict(True, str(p), f"{name} is under {folder}, listed in [trust] roots")
    if not within(p, root):
        return Verdict(False, str(p), f"{name} is outside the watched root {root}", how)
    try:
        st = os.lstat(p)
    except OSError as exc:
        return Verdict(False, str(p), f"{name} cannot be checked ({exc.strerror})", how)
    if stat.S_ISLNK(st.st_mode):
        return Verdict(False, str(p), f"{name} is a symbolic link", how)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return Verdict(False, str(p), f"{name} is not a regular file", how)
    # the file itself: the user's own (root's does not do: root's files decide nothing here)
    fault = _faults(st, root_may_own=False)
    if fault:
        return Verdict(False, str(p), f"{name} is {fault}", how)
    folder = p if stat.S_ISDIR(st.st_mode) else p.parent
    while True:
        if folder != p:
            try:
                # the root is the user's choice: a symbolic link to it is followed; below it,
                # a link would let whoever owns its folder point it elsewhere
                fst = os.stat(folder) if folder == root else os.lstat(folder)
            except OSError as exc:
                return Verdict(False, str(p), f"folder {folder} cannot be checked ({exc})", how)
            if stat.S_ISLNK(fst.st_mode):
                return Verdict(
                    False, str(p), f"folder {folder} (above {name}) is a symbolic link", how
                )
            fault = _faults(fst, root_may_own=True)
            if fault:
                return Verdict(False, str(p), f"folder {folder} (above {name}) is {fault}", how)
        if folder == root or folder == folder.parent:
            break
        folder = folder.parent
    return Verdict(
        True, str(p), f"{name} is yours and no folder up to {root} is writable by group or others"
    )
