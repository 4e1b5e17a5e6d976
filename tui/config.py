"""`tunetop.toml`: read-only mode, extra metric aliases, watching, Slurm, trust, launch template.

Layers, nearer last: the user's config folder < the watched root < a run's folder (DESIGN.md
"tunetop.toml"). The user's own file decides everything. A file in the watched tree is
untrusted input (tui/trust.py): it may add aliases and tighten `readonly` (false -> true),
nothing more, unless it passes the trust check; what it tried beyond that is ignored and said
in `problems` (and `launch_refused`, for a plan to quote). `[trust]` is read only from the
user's own file: a file cannot vouch for itself.

Files in the tree are read through tui/logs/safe_io.py without following symbolic links (a
tunetop.toml linked to /dev/zero or to someone's private file is refused); the user's own file
may be a link they made. A broken file is reported and ignored: the tool keeps going with the
other layers.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tui import trust
from tui.logs.safe_io import UnsafeFile, load_toml

CONFIG_NAME = trust.CONFIG_NAME

# [watch] bounds: a poll of inf, nan or a year would freeze reading without a word
MAX_POLL_S = 3600.0
MAX_STALLED_AFTER_S = 30 * 24 * 3600.0

# [slurm] keys (for the Slurm executor of a later issue) and their types
SLURM_KEYS: dict[str, type] = {
    "partition": str,
    "account": str,
    "time": str,
    "gpus_per_trial": int,
    "cpus_per_trial": int,
    "extra": list,
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Config:
    readonly: bool = False
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    poll: float = 0.0  # seconds; 0 = inotify where it works, else 2 s polling
    stalled_after: float = 600.0  # seconds without writes before a live run is "stalled"
    launch_command: tuple[str, ...] | None = None
    launch_source: str | None = None  # the file launch_command came from
    launch_in_tree: bool = False  # ... a file in the watched tree (it passed the trust check)
    launch_refused: str | None = None  # why a tree file's [launch] command was not taken
    # that command and its file: a plan shows what it would run, and does not run it
    refused_command: tuple[str, ...] | None = None
    refused_source: str | None = None
    slurm: dict[str, Any] = field(default_factory=dict)
    trust_roots: tuple[str, ...] = ()  # [trust] roots of the user's own file
    source: tuple[str, ...] = ()  # files this config was read from, nearest last
    problems: tuple[str, ...] = ()  # what could not be used, one line each


def user_config_path() -> Path:
    return trust.user_config_dir() / CONFIG_NAME


def _seconds(where: str, key: str, value: Any, limit: float) -> float:
    ok = not isinstance(value, bool) and isinstance(value, int | float)
    if not ok or not math.isfinite(value) or not 0 <= value <= limit:
        raise ConfigError(f"{where}: watch.{key} must be a number of seconds from 0 to {limit:g}")
    return float(value)


def _parse_slurm(slurm: Any, where: str) -> dict[str, Any]:
    if not isinstance(slurm, dict):
        raise ConfigError(f"{where}: [slurm] must be a table")
    out: dict[str, Any] = {}
    for key, value in slurm.items():
        kind = SLURM_KEYS.get(key)
        if kind is None:
            raise ConfigError(f"{where}: unknown key slurm.{key}")
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{where}: slurm.{key} must be a whole number >= 0")
        elif kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: slurm.{key} must be a list of strings")
            value = list(value)
        elif not isinstance(value, str):
            raise ConfigError(f"{where}: slurm.{key} must be a string")
        out[key] = value
    return out


def _parse_trust(section: Any, where: str) -> tuple[str, ...]:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: [trust] must be a table")
    for key in section:
        if key != "roots":
            raise ConfigError(f"{where}: unknown key trust.{key}")
    roots = section.get("roots", [])
    if not isinstance(roots, list) or not all(isinstance(r, str) and r for r in roots):
        raise ConfigError(f"{where}: trust.roots must be a list of folder paths")
    for r in roots:
        if not os.path.isabs(os.path.expanduser(r)):
            raise ConfigError(f"{where}: trust.roots: {r!r} must be an absolute path")
    return tuple(roots)


def parse_config(data: dict[str, Any], where: str = CONFIG_NAME) -> dict[str, Any]:
    """Check a parsed tunetop.toml; returns Config keyword arguments. Raises ConfigError
    naming the key for anything unknown or of the wrong type."""
    out: dict[str, Any] = {}
    known = {"readonly", "aliases", "watch", "launch", "slurm", "trust"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}")
    if "readonly" in data:
        if not isinstance(data["readonly"], bool):
            raise ConfigError(f"{where}: 'readonly' must be true or false")
        out["readonly"] = data["readonly"]
    aliases = data.get("aliases", {})
    if not isinstance(aliases, dict):
        raise ConfigError(f"{where}: [aliases] must be a table")
    parsed: dict[str, tuple[str, ...]] = {}
    for canonical, names in aliases.items():
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}: aliases.{canonical} must be a list of names")
        parsed[canonical] = tuple(names)
    if parsed:
        out["aliases"] = parsed
    watch = data.get("watch", {})
    if not isinstance(watch, dict):
        raise ConfigError(f"{where}: [watch] must be a table")
    limits = {"poll": MAX_POLL_S, "stalled_after": MAX_STALLED_AFTER_S}
    for key in watch:
        if key not in limits:
            raise ConfigError(f"{where}: unknown key watch.{key}")
        out[key] = _seconds(where, key, watch[key], limits[key])
    launch = data.get("launch", {})
    if not isinstance(launch, dict):
        raise ConfigError(f"{where}: [launch] must be a table")
    for key in launch:
        if key != "command":
            raise ConfigError(f"{where}: unknown key launch.{key}")
    if "command" in launch:
        cmd = launch["command"]
        if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str) for c in cmd):
            raise ConfigError(f"{where}: launch.command must be a non-empty list of strings")
        out["launch_command"] = tuple(cmd)
    if "slurm" in data:
        out["slurm"] = _parse_slurm(data["slurm"], where)
    if "trust" in data:
        out["trust_roots"] = _parse_trust(data["trust"], where)
    return out


def _read(path: Path, *, follow: bool) -> tuple[dict[str, Any] | None, str | None]:
    """(values, problem): (None, None) when there is no file."""
    if not os.path.lexists(path):
        return None, None
    try:
        return parse_config(load_toml(path, follow=follow), str(path)), None
    except UnsafeFile as exc:
        return None, str(exc)
    except ConfigError as exc:
        return None, str(exc)


# what a file in the tree may set without passing the trust check, by Config field
_UNTRUSTED_NAMES = {
    "launch_command": "[launch] command",
    "poll": "watch.poll",
    "stalled_after": "watch.stalled_after",
    "slurm": "[slurm]",
}


def _untrusted_part(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What an untrusted file may set (aliases, readonly = true), and the names of the rest."""
    kept: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in values.items():
        if key == "aliases" or (key == "readonly" and value is True):
            kept[key] = value
        elif key == "readonly":
            ignored.append("readonly = false")
        elif key != "trust_roots":  # never from the tree: reported by the caller
            ignored.append(_UNTRUSTED_NAMES.get(key, key))
    return kept, ignored


def load_config(
    root: Path | None = None,
    run_dir: Path | None = None,
    *,
    trust_root: Path | None = None,
    force_trust: bool = False,
) -> Config:
    """The config for a root (and optionally one run folder in it): user < root < run.

    `trust_root`: the watched root the trust check climbs to (default: the root's folder);
    `force_trust`: `tunetop plan --trust`, trusting the tree's files for this one plan."""
    user_file = user_config_path()
    layers: list[tuple[Path, bool]] = [(user_file, True)]  # (path, the user's own)
    root_dir: Path | None = None
    if root is not None:
        root_dir = root if root.is_dir() else root.parent
        layers.append((root_dir / CONFIG_NAME, False))
    if run_dir is not None:
        layers.append((run_dir / CONFIG_NAME, False))
    cfg = Config()
    problems: list[str] = []
    sources: list[str] = []
    seen: set[str] = set()
    policy: trust.Policy | None = None
    for path, own in layers:
        key = os.path.normpath(os.path.abspath(path))
        if key in seen:
            continue
        seen.add(key)
        values, problem = _read(path, follow=own)
        if problem:
            problems.append(problem)
        if values is None:
            continue
        sources.append(str(path))
        if not own:
            if "trust_roots" in values:
                problems.append(f"{path}: [trust] is read only from your own {user_file}")
            if policy is None:
                top = trust_root or root_dir or path.parent
                policy = trust.Policy(top, cfg.trust_roots, force_trust)
            verdict = trust.check(path, policy)
            if verdict.trusted:
                values.pop("trust_roots", None)
            else:
                if "launch_command" in values:
                    cfg = replace(
                        cfg,
                        launch_refused=verdict.says("[launch] command"),
                        refused_command=values["launch_command"],
                        refused_source=str(path),
                    )
                values, ignored = _untrusted_part(values)
                if ignored:  # aliases and readonly = true (tightening) are kept
                    problems.append(
                        f"{path}: {', '.join(ignored)} ignored, not trusted: {verdict.why}; "
                        f"{verdict.how}"
                    )
        if "aliases" in values:
            merged = dict(cfg.aliases)
            merged.update(values["aliases"])
            values["aliases"] = merged
        if "launch_command" in values:
            values["launch_source"] = str(path)
            values["launch_in_tree"] = not own
        cfg = replace(cfg, **values)
    return replace(cfg, source=tuple(sources), problems=tuple(problems))
