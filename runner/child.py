"""How every child process of tunetop and of the runner starts (issue 14 item 3).

One place builds a child's argv, working directory and environment, so that the runner's
trials, torchrun, the dashboard's remedy studies, `tunetop demo` and a "what will run" preview
all agree:

- the interpreter is the one tunetop runs on (`sys.executable`), never a `python` looked up in
  PATH, and it gets `-P`: neither the working directory nor a script's folder goes on sys.path,
  so a `runner.py` or `numpy.py` planted there is not imported. -P rather than -I: -I would
  also drop the user's own PYTHONPATH and user site-packages, which their workloads may need.
- the working directory is one tunetop made or owns, never the user's cwd (which may be a
  shared folder): a trial runs in its own fresh trial folder (made 0750 by us, nothing planted
  in it; `torch.distributed.run` workers inherit it), a remedy study in the user's private state
  folder (0700; the study folder does not exist yet when the study starts), an external
  `command` in its run folder.
- the environment is the caller's, less what resolves against the working directory or
  replaces the interpreter: empty and relative entries of PYTHONPATH, PATH and
  LD_LIBRARY_PATH (an empty entry means "."), PYTHONSTARTUP / PYTHONINSPECT (an interactive
  prompt instead of an exit), PYTHON_EXEC (torchrun's override of the workers' interpreter);
  plus PYTHONUNBUFFERED=1 (output reaches output.log as it is made) and PYTHONSAFEPATH=1 (the
  -P of every Python grandchild: torchrun's workers, DataLoader workers). -P does not stop a
  sitecustomize in site-packages; that folder is the installation's, not the tree's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# entries that resolve against the working directory when relative or empty
PATH_LISTS = ("PYTHONPATH", "PATH", "LD_LIBRARY_PATH")
DROPPED = ("PYTHONSTARTUP", "PYTHONINSPECT", "PYTHON_EXEC")
# set by us for our own Python children; an external command gets PYTHONSAFEPATH removed
# again (its script's folder is where the user's own modules live: `import model` beside
# train.py must work) unless the user had set it themselves
OUR_SAFEPATH = "TUNETOP_SET_PYTHONSAFEPATH"
# where the user launched from, passed down to the runner (runner.study.user_launch_dir)
LAUNCH_DIR_ENV = "TUNETOP_LAUNCH_DIR"


@dataclass(frozen=True)
class Child:
    """What one child process is: argv (no shell), working directory, full environment."""

    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(repr=False)

    def env_changes(self, base: Mapping[str, str] | None = None) -> dict[str, str | None]:
        """What differs from `base` (default os.environ): value, or None for removed."""
        base = os.environ if base is None else base
        changes: dict[str, str | None] = {
            k: v for k, v in self.env.items() if base.get(k) != v and k != OUR_SAFEPATH
        }
        changes.update({k: None for k in base if k not in self.env})
        return changes


def python() -> str:
    """The interpreter children run on: the one running now."""
    return sys.executable


def python_argv(*args: str) -> list[str]:
    """`[sys.executable, "-P", *args]`: e.g. python_argv("-m", "runner", ...)."""
    return [python(), "-P", *args]


def _absolute_entries(value: str) -> str:
    return os.pathsep.join(p for p in value.split(os.pathsep) if p and os.path.isabs(p))


def clean_env(
    base: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a Python child of ours (see the module docstring for what changes)."""
    env = dict(os.environ if base is None else base)
    for key in PATH_LISTS:
        if key in env:
            kept = _absolute_entries(env[key])
            if kept:
                env[key] = kept
            else:
                del env[key]
    for key in DROPPED:
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    if "PYTHONSAFEPATH" not in env:
        env["PYTHONSAFEPATH"] = "1"
        env[OUR_SAFEPATH] = "1"
    env.update(extra or {})
    return env


def command_env(
    base: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of an external command: clean_env without the PYTHONSAFEPATH we set."""
    env = clean_env(base, extra)
    if env.pop(OUR_SAFEPATH, None):
        env.pop("PYTHONSAFEPATH", None)
    return env


def python_child(args: list[str], cwd: Path, extra_env: Mapping[str, str] | None = None) -> Child:
    """A Python child of ours: `sys.executable -P ARGS` in `cwd` with a clean environment."""
    return Child(python_argv(*args), Path(cwd), clean_env(extra=extra_env))


PYTHON_NAMES = ("python", "python3", f"python3.{sys.version_info.minor}")


def command_argv(argv: list[str], launch_dir: Path) -> list[str]:
    """An external command's argv, made independent of the working directory it runs in: a
    bare `python` / `python3` becomes the interpreter tunetop runs on (not whatever PATH finds
    first); an argument that is a relative path to a file existing under `launch_dir` (the
    folder the runner was started from, as the user wrote the spec) becomes absolute."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if i == 0 and arg in PYTHON_NAMES:
            out.append(python())
        elif arg and not os.path.isabs(arg) and not arg.startswith("-"):
            candidate = Path(launch_dir) / arg
            out.append(str(candidate) if candidate.exists() else arg)
        else:
            out.append(arg)
    return out


def user_launch_dir() -> Path:
    """Where the user launched from, against which an external command's relative paths are
    read: passed down in TUNETOP_LAUNCH_DIR (the dashboard's cwd for the runner it starts in
    the state folder; the study's for its trials, which run in their own folders), else our
    own cwd (a plain `python -m runner` started by the user)."""
    given = os.environ.get(LAUNCH_DIR_ENV, "")
    return Path(given) if os.path.isabs(given) else Path.cwd()
