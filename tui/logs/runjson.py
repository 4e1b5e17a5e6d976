"""Reading a run folder's run.json (the runner's record, DESIGN.md) as untrusted input.

A run.json in a watched tree may be anything: a FIFO, a 10,000-deep nesting, a list, or an
object whose fields have the wrong shapes (`"remedy": "s"`, `"total_steps": Infinity`,
`"spec": {"optimizer": "s"}`). One such file must cost only itself (issue 14): the run is still
read for its metrics, the bad fields are dropped, and each drop is one `errors` line. What the
rest of tunetop then sees has the shapes DESIGN.md gives, so no consumer needs to re-check.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tui.logs.safe_io import UnsafeFile, load_json

RUN_JSON = "run.json"

# field -> what it must be (a predicate) and how to say it
_DICT_FIELDS = ("spec", "hparams")
_SPEC_TABLES = ("optimizer", "schedule", "study", "workload_options")
_STEP_FIELDS = ("total_steps", "max_train_steps")
_INT_FIELDS = ("pid", "exit_code")
_TIME_FIELDS = ("started", "ended")


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """run.json with every field of the wrong shape dropped, and one line per drop."""
    out = dict(data)
    problems: list[str] = []

    def drop(key: str, why: str) -> None:
        out.pop(key, None)
        problems.append(f"'{key}' {why}: ignored")

    for key in _DICT_FIELDS:
        if key in out and not isinstance(out[key], dict):
            drop(key, "is not an object")
    if "remedy" in out and out["remedy"] is not None and not isinstance(out["remedy"], dict):
        drop("remedy", "is neither null nor an object")
    if "status" in out and not isinstance(out["status"], str):
        drop("status", "is not a string")
    for key in _STEP_FIELDS:
        if key in out and out[key] is not None:
            v = out[key]
            if not (_finite_number(v) and 0 <= v < 2**62):  # 0: a warmup-study trial
                drop(key, "is not a finite number of steps")
    for key in _INT_FIELDS:
        if (
            key in out
            and out[key] is not None
            and not (isinstance(out[key], int) and not isinstance(out[key], bool))
        ):
            drop(key, "is not an integer")
    for key in _TIME_FIELDS:
        if key in out and out[key] is not None and not _finite_number(out[key]):
            drop(key, "is not a finite number")
    spec = out.get("spec")
    if isinstance(spec, dict):
        spec = dict(spec)
        for key in _SPEC_TABLES:
            if key in spec and not isinstance(spec[key], dict):
                spec.pop(key)
                problems.append(f"'spec.{key}' is not an object: ignored")
        out["spec"] = spec
    return out, problems


def read_run_json(folder: Path) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """(the validated run.json or None, [(path, message)]). No file is no error."""
    path = folder / RUN_JSON
    try:
        if not path.exists() and not path.is_symlink():
            return None, []
        data = load_json(path)
    except UnsafeFile as exc:
        return None, [(str(path), f"{exc.reason}: the run is read without it")]
    except OSError as exc:
        return None, [(str(path), f"{exc.strerror}: the run is read without it")]
    if not isinstance(data, dict):
        kind = type(data).__name__
        return None, [(str(path), f"is a JSON {kind}, not an object: the run is read without it")]
    clean, problems = validate(data)
    return clean, [(str(path), p) for p in problems]
