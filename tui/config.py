"""`tunetop.toml`: read-only mode, extra metric aliases, watching and the launch template.

Looked up in the watched root, then in a run's folder (the nearer wins), then in the user's
config folder (DESIGN.md "tunetop.toml"). A broken file is reported and ignored: the tool keeps
going with the defaults.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

CONFIG_NAME = "tunetop.toml"


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Config:
    readonly: bool = False
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    poll: float = 0.0  # seconds; 0 = inotify where it works, else 2 s polling
    stalled_after: float = 600.0  # seconds without writes before a live run is "stalled"
    launch_command: tuple[str, ...] | None = None
    source: tuple[str, ...] = ()  # files this config was read from, nearest last
    problems: tuple[str, ...] = ()  # what could not be used, one line each


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tunetop" / CONFIG_NAME


def parse_config(data: dict[str, Any], where: str = CONFIG_NAME) -> dict[str, Any]:
    """Check a parsed tunetop.toml; returns Config keyword arguments. Raises ConfigError
    naming the key for anything unknown or of the wrong type."""
    out: dict[str, Any] = {}
    known = {"readonly", "aliases", "watch", "launch"}
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
    for key in watch:
        if key not in ("poll", "stalled_after"):
            raise ConfigError(f"{where}: unknown key watch.{key}")
        value = watch[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}: watch.{key} must be a number >= 0")
        out[key] = float(value)
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
    return out


def _read(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        with open(path, "rb") as fh:
            return parse_config(tomllib.load(fh), str(path)), None
    except FileNotFoundError:
        return None, None
    except (OSError, tomllib.TOMLDecodeError, ConfigError) as exc:
        return None, f"{path}: {exc}" if not isinstance(exc, ConfigError) else str(exc)


def load_config(root: Path | None = None, run_dir: Path | None = None) -> Config:
    """The config for a root (and optionally one run folder in it): user < root < run."""
    layers: list[Path] = [user_config_path()]
    if root is not None:
        layers.append((root if root.is_dir() else root.parent) / CONFIG_NAME)
    if run_dir is not None:
        layers.append(run_dir / CONFIG_NAME)
    cfg = Config()
    problems: list[str] = []
    sources: list[str] = []
    seen: set[Path] = set()
    for path in layers:
        try:
            resolved = path.resolve()
        except OSError:
            continue
        if resolved in seen:
            continue
        seen.add(resolved)
        values, problem = _read(path)
        if problem:
            problems.append(problem)
        if values is None:
            continue
        sources.append(str(path))
        if "aliases" in values:
            merged = dict(cfg.aliases)
            merged.update(values["aliases"])
            values["aliases"] = merged
        cfg = replace(cfg, **values)
    return replace(cfg, source=tuple(sources), problems=tuple(problems))
