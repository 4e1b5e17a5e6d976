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
from tui.sanitize import clean

RUN_JSON = "run.json"

# fields and the shape each must have; a value of another shape is dropped, with its line
_DICT_FIELDS = ("spec", "hparams", "remedy")
_SPEC_TABLES = ("optimizer", "schedule", "study", "workload_options", "model", "data")
# step counts, at the top and in spec: 0 is allowed (a warmup-study trial's base schedule)
STEP_FIELDS = ("total_steps", "max_train_steps", "max_steps", "num_train_steps")
_INT_FIELDS = ("pid", "exit_code")
_TIME_FIELDS = ("started", "ended")
_MAX_STEPS = 2**62


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_step_count(value: Any) -> bool:
    """A number of steps tunetop can plan with: finite, not negative, not absurd."""
    return _finite_number(value) and 0 <= value < _MAX_STEPS


def _shown(value: Any) -> str:
    return clean(repr(value), 40)


def _step_problems(table: dict[str, Any], where: str) -> list[str]:
    problems = []
    for key in STEP_FIELDS:
        if table.get(key) is not None and not is_step_count(table[key]):
            problems.append(f"{where}{key} = {_shown(table.pop(key))} is no step count: ignored")
    return problems


def validate(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """run.json with every field of the wrong shape dropped, and one line per drop (the field,
    the value as read, what it should have been). Null is "not there", as readers take it."""
    out = dict(data)
    problems: list[str] = []

    def drop(key: str, why: str) -> None:
        problems.append(f"{key} = {_shown(out.pop(key))} {why}: ignored")

    for key in _DICT_FIELDS:
        if out.get(key) is not None and not isinstance(out[key], dict):
            drop(key, "is no table")
    if out.get("status") is not None and not isinstance(out["status"], str):
        drop("status", "is no word")
    problems += _step_problems(out, "")
    for key in _INT_FIELDS:
        value = out.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
            drop(key, "is no integer")
    for key in _TIME_FIELDS:
        if out.get(key) is not None and not _finite_number(out[key]):
            drop(key, "is no finite number")
    remedy = out.get("remedy")
    if isinstance(remedy, dict) and not isinstance(remedy.get("kind") or "", str):
        remedy = out["remedy"] = dict(remedy)
        problems.append(f"remedy.kind = {_shown(remedy.pop('kind'))} is no word: ignored")
    spec = out.get("spec")
    if isinstance(spec, dict):
        spec = dict(spec)
        for key in _SPEC_TABLES:
            if spec.get(key) is not None and not isinstance(spec[key], dict):
                problems.append(f"spec.{key} = {_shown(spec.pop(key))} is no table: ignored")
        problems += _step_problems(spec, "spec.")
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
