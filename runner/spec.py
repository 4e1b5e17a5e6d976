"""The run / study spec (DESIGN.md "The runner's spec"). No torch import here.

The dashboard builds specs with this module (remedies, `tunetop plan`), the runner loads them,
and run.json stores them, so it is pure Python: TOML in (``tomllib``), TOML out (a small
serializer below), validation, flattening to dotted keys, overrides and command placeholders.

Every error is a :class:`SpecError` whose message names the offending key with its dotted path
(``optimizer.beta3``, ``study.grid``), as nanoGPT's "unknown config keys are an error".

Optimizer hyperparameters left out of a spec stay ``None`` here; :data:`OPTIMIZER_PARAMS` says
which apply to each optimizer and their defaults (``runner.optim`` uses the same table).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import math
import numbers
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ALIASES",
    "DEVICE_RE",
    "OPTIMIZERS",
    "OPTIMIZER_PARAMS",
    "PRECISIONS",
    "SCHEDULES",
    "SEARCHES",
    "OptimizerSpec",
    "RunSpec",
    "ScheduleSpec",
    "SpecError",
    "StudySection",
    "StudySpec",
    "apply_overrides",
    "canonical_key",
    "flatten",
    "format_placeholders",
    "from_dict",
    "key_type",
    "load",
    "loads",
    "optimizer_hparams",
    "to_dict",
    "to_toml",
]


class SpecError(ValueError):
    """A spec that cannot be used. The message names the offending key (``key`` holds it)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


# --------------------------------------------------------------------------------------------
# The dataclasses (field names fixed by DESIGN.md)
# --------------------------------------------------------------------------------------------


@dataclass
class OptimizerSpec:
    name: str = "adam"  # sgd momentum nesterov adam adamw rmsprop nadam playbook_*
    lr: float = 1e-3  # the peak rate
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    momentum: float | None = None  # gamma
    rho: float | None = None
    weight_decay: float | None = None


@dataclass
class ScheduleSpec:
    kind: str = "cosine"  # constant | linear | cosine, over max_train_steps
    warmup_steps: int = 0  # R18: lr(s) = lr * s / warmup_steps for s < warmup_steps
    post_warmup_steps: int = 0  # then constant at lr, before the base schedule


@dataclass
class RunSpec:
    workload: str | None = "digits_mlp"
    command: list[str] | None = None  # instead of workload: an external script, no shell
    name: str = "run"
    max_train_steps: int = 2000
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 | fp16
    compile: bool = False
    eval_every: int = 50
    checkpoint_every: int = 500  # 0: no periodic checkpoints
    clip_norm: float | None = None  # None: no clipping
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    workload_options: dict[str, Any] = field(default_factory=dict)

    @property
    def total_steps(self) -> int:
        # R20: warmup is prepended, the baseline's max_train_steps kept.
        s = self.schedule
        return s.warmup_steps + s.post_warmup_steps + self.max_train_steps


@dataclass
class StudySection:
    name: str = "study"
    search: str = "grid"  # grid | quasi_random | list
    grid: dict[str, list[Any]] = field(default_factory=dict)
    trials: int = 16  # quasi_random
    seed: int = 0  # quasi_random
    space: dict[str, dict[str, Any]] = field(default_factory=dict)  # quasi_random
    list: list[dict[str, Any]] = field(default_factory=list)
    parallel: int | None = None  # None: one per GPU, else 1


@dataclass
class StudySpec:
    base: RunSpec
    study: StudySection


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

SCHEDULES: tuple[str, ...] = ("constant", "linear", "cosine")  # R7
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
SEARCHES: tuple[str, ...] = ("grid", "quasi_random", "list")  # R9
SCALES: tuple[str, ...] = ("log", "linear")
DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")

#: For each optimizer, the hyperparameters (besides ``lr``) that apply to it and their
#: defaults. torch.optim optimizers use torch's defaults; the playbook ones (R11) use the
#: source document's symbols: Adam/NAdam (beta1, beta2, epsilon), RMSProp (rho, gamma =
#: ``momentum``, epsilon; TensorFlow's defaults, whose form the source writes). ``weight_decay``
#: on a playbook optimizer is coupled L2 (added to the gradient); it is not in the source and
#: defaults to 0, which leaves the source's rules exact.
OPTIMIZER_PARAMS: dict[str, dict[str, float]] = {
    "sgd": {"weight_decay": 0.0},
    "momentum": {"momentum": 0.9, "weight_decay": 0.0},
    "nesterov": {"momentum": 0.9, "weight_decay": 0.0},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
    "adamw": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-2},
    "rmsprop": {"rho": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0},
    "nadam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
    "playbook_rmsprop": {"rho": 0.9, "momentum": 0.0, "eps": 1e-7, "weight_decay": 0.0},
    "playbook_adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
    "playbook_nadam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
}
OPTIMIZERS: tuple[str, ...] = tuple(OPTIMIZER_PARAMS)

#: Short names accepted by :func:`apply_overrides` and in placeholders (DESIGN.md's alias list).
ALIASES: dict[str, str] = {
    "lr": "optimizer.lr",
    "learning_rate": "optimizer.lr",
    "warmup_steps": "schedule.warmup_steps",
    "batch_size": "batch_size",
    "max_train_steps": "max_train_steps",
    "clip_norm": "clip_norm",
}


def optimizer_hparams(opt: OptimizerSpec) -> dict[str, float]:
    """The effective hyperparameters of ``opt``: ``lr`` plus each applicable one, defaulted."""
    out: dict[str, float] = {"lr": opt.lr}
    for key, default in OPTIMIZER_PARAMS[opt.name].items():
        value = getattr(opt, key)
        out[key] = default if value is None else value
    return out


# --------------------------------------------------------------------------------------------
# Field checks
# --------------------------------------------------------------------------------------------

_Check = Callable[[Any], str | None]  # returns a complaint, or None when the value is fine


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _coerce(key: str, value: Any, kind: type) -> Any:
    """``value`` as ``kind`` (int, float, str, bool), or a SpecError naming ``key``."""
    if kind is float:  # an int is a fine float; numpy scalars become Python numbers
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif kind is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif isinstance(value, kind):
        return value
    article = "an" if kind is int else "a"
    want = {int: "integer", float: "number", str: "string", bool: "boolean"}[kind]
    raise SpecError(f"{key} must be {article} {want}, not {_type_name(value)} ({value!r})", key)


def _nonneg(v: Any) -> str | None:
    return "must be >= 0" if v < 0 else None


def _positive(v: Any) -> str | None:
    return "must be > 0" if not v > 0 else None


def _finite_nonneg(v: float) -> str | None:
    return "must be a finite number >= 0" if not (math.isfinite(v) and v >= 0) else None


def _finite_positive(v: float) -> str | None:
    return "must be a finite number > 0" if not (math.isfinite(v) and v > 0) else None


def _unit(v: float) -> str | None:
    return "must be in [0, 1)" if not 0.0 <= v < 1.0 else None


def _enum(choices: tuple[str, ...]) -> _Check:
    def check(v: str) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)}"

    return check


def _device(v: str) -> str | None:
    return None if DEVICE_RE.match(v) else "must be auto, cpu, cuda or cuda:N"


def _name(v: str) -> str | None:
    if not v or v in (".", "..") or "/" in v or "\\" in v or "\0" in v:
        return "must be a non-empty folder name without path separators"
    return None


def _workload(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


# name -> (type, check). Every field may be absent (its default); those whose default is None
# (``clip_norm``, the optimizer hyperparameters) stay None, as TOML has no null.
_Field = tuple[type, _Check | None]
_RUN_FIELDS: dict[str, _Field] = {
    "workload": (str, _workload),
    "name": (str, _name),
    "max_train_steps": (int, _nonneg),
    "batch_size": (int, _positive),
    "seed": (int, _nonneg),
    "device": (str, _device),
    "precision": (str, _enum(PRECISIONS)),
    "compile": (bool, None),
    "eval_every": (int, _positive),
    "checkpoint_every": (int, _nonneg),
    "clip_norm": (float, _finite_positive),  # R22: absent = no clipping
}
_OPT_FIELDS: dict[str, _Field] = {
    "name": (str, _enum(OPTIMIZERS)),
    "lr": (float, _finite_nonneg),
    "beta1": (float, _unit),
    "beta2": (float, _unit),
    "eps": (float, _finite_nonneg),
    "momentum": (float, _unit),
    "rho": (float, _unit),
    "weight_decay": (float, _finite_nonneg),
}
# the hyperparameters OPTIMIZER_PARAMS says apply or not, per optimizer
_OPT_HPARAMS = tuple(k for k in _OPT_FIELDS if k not in ("name", "lr"))
_SCHED_FIELDS: dict[str, _Field] = {
    "kind": (str, _enum(SCHEDULES)),
    "warmup_steps": (int, _nonneg),  # R18
    "post_warmup_steps": (int, _nonneg),  # R18
}
_STUDY_FIELDS: dict[str, _Field] = {
    "name": (str, _name),
    "search": (str, _enum(SEARCHES)),
    "parallel": (int, _positive),
    "trials": (int, _positive),  # quasi_random
    "seed": (int, _nonneg),  # quasi_random
}
_TABLES = ("optimizer", "schedule", "workload_options")
_RUN_KEYS = (*_RUN_FIELDS, "command", *_TABLES)


def _check_field(key: str, value: Any, spec: _Field) -> Any:
    kind, check = spec
    value = _coerce(key, value, kind)
    if check is not None:
        complaint = check(value)
        if complaint:
            raise SpecError(f"{key} {complaint}, not {value!r}", key)
    return value


def _fields(table: Mapping[str, Any], prefix: str, known: dict[str, _Field]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise SpecError(f"unknown key {prefix}{key}", f"{prefix}{key}")
        out[key] = _check_field(f"{prefix}{key}", value, known[key])
    return out


def _table(d: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = d.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"{where} must be a table, not {_type_name(value)}", where)
    return value


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load(path: str | Path) -> RunSpec | StudySpec:
    """Read a spec file (TOML). A file that cannot be read or parsed is a SpecError too."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc}") from exc
    try:
        spec = loads(text)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}", exc.key) from exc
    base = spec.base if isinstance(spec, StudySpec) else spec
    base.workload = anchor_workload(base.workload, Path(path).parent)
    return spec


def anchor_workload(ref: str | None, folder: Path) -> str | None:
    """A relative `file.py:function` workload read against the spec file's folder, as an
    absolute path (so `tunetop run` and `python -m runner` agree wherever they are started, and
    run.json records the file that ran); module paths and built-in names are left as they are."""
    if ref is None or ":" not in ref:
        return ref
    where, _, func = ref.rpartition(":")
    if not where.endswith(".py") or os.path.isabs(where):
        return ref
    return f"{os.path.abspath(folder / where)}:{func}"


def loads(text: str) -> RunSpec | StudySpec:
    """Parse a TOML spec: a RunSpec, or a StudySpec when it has a ``[study]`` table."""
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"invalid TOML: {exc}") from exc
    return from_dict(d)


def from_dict(d: Mapping[str, Any]) -> RunSpec | StudySpec:
    """A validated spec from a dict with the TOML key layout (a ``study`` key: a StudySpec)."""
    if not isinstance(d, Mapping):
        raise SpecError(f"a spec must be a table, not {_type_name(d)}")
    if "study" in d:
        rest = {k: v for k, v in d.items() if k != "study"}
        base = _run_from_dict(rest)
        section = _study_from_dict(_table(d, "study", "study"), base)
        return StudySpec(base=base, study=section)
    return _run_from_dict(d)


def _run_from_dict(d: Mapping[str, Any]) -> RunSpec:
    for key in d:
        if key not in _RUN_KEYS:
            raise SpecError(f"unknown key {key}", key)
    top = _fields({k: v for k, v in d.items() if k in _RUN_FIELDS}, "", _RUN_FIELDS)
    command = d.get("command")
    if command is not None:
        if not isinstance(command, list) or not command:
            raise SpecError("command must be a non-empty array of strings", "command")
        for i, part in enumerate(command):
            if not isinstance(part, str):
                raise SpecError(
                    f"command[{i}] must be a string, not {_type_name(part)} ({part!r})",
                    "command",
                )
        if "workload" in d:
            raise SpecError("give either workload or command, not both", "command")
        top["workload"] = None
        top["command"] = list(command)
    opt = _fields(_table(d, "optimizer", "optimizer"), "optimizer.", _OPT_FIELDS)
    optimizer = OptimizerSpec(**opt)
    for key in _OPT_HPARAMS:
        if getattr(optimizer, key) is not None and key not in OPTIMIZER_PARAMS[optimizer.name]:
            applies = ", ".join(["lr", *OPTIMIZER_PARAMS[optimizer.name]])
            raise SpecError(
                f"optimizer.{key} does not apply to optimizer {optimizer.name!r} "
                f"(it takes {applies})",
                f"optimizer.{key}",
            )
    schedule = ScheduleSpec(
        **_fields(_table(d, "schedule", "schedule"), "schedule.", _SCHED_FIELDS)
    )
    options = copy.deepcopy(_table(d, "workload_options", "workload_options"))
    return RunSpec(**top, optimizer=optimizer, schedule=schedule, workload_options=options)


_STUDY_KEYS = ("name", "search", "grid", "trials", "seed", "space", "list", "parallel")
_SEARCH_KEYS = {"grid": ("grid",), "list": ("list",), "quasi_random": ("trials", "seed", "space")}


def _study_from_dict(d: Mapping[str, Any], base: RunSpec) -> StudySection:
    for key in d:
        if key not in _STUDY_KEYS:
            raise SpecError(f"unknown key study.{key}", f"study.{key}")
    s = StudySection()

    def set_fields(*keys: str) -> None:
        for key in keys:
            if key in d:
                setattr(s, key, _check_field(f"study.{key}", d[key], _STUDY_FIELDS[key]))

    set_fields("name", "search", "parallel")
    for key in ("grid", "trials", "seed", "space", "list"):
        if key in d and key not in _SEARCH_KEYS[s.search]:
            raise SpecError(f"study.{key} does not apply to search {s.search!r}", f"study.{key}")
    if s.search == "grid":
        s.grid = _grid_from_dict(d.get("grid"), base)
    elif s.search == "list":
        s.list = _list_from_dict(d.get("list"), base)
    else:
        set_fields("trials", "seed")
        s.space = _space_from_dict(d.get("space"), base)
    return s


def _grid_from_dict(grid: Any, base: RunSpec) -> dict[str, list[Any]]:
    if not isinstance(grid, dict) or not grid:
        raise SpecError("study.grid must be a non-empty table of key = [values]", "study.grid")
    out: dict[str, list[Any]] = {}
    for key, values in grid.items():
        where = f"study.grid.{key}"
        if not isinstance(values, list) or not values:
            raise SpecError(f"{where} must be a non-empty array of values", where)
        for value in values:  # each value must make a valid spec on its own
            _apply_where(base, {key: value}, where)
        out[key] = copy.deepcopy(values)
    return out


def _list_from_dict(trials: Any, base: RunSpec) -> list[dict[str, Any]]:
    if not isinstance(trials, list) or not trials:
        raise SpecError("study.list must be a non-empty array of tables", "study.list")
    out: list[dict[str, Any]] = []
    for i, trial in enumerate(trials):
        where = f"study.list[{i}]"
        if not isinstance(trial, dict):
            raise SpecError(f"{where} must be a table, not {_type_name(trial)}", where)
        _apply_where(base, trial, where)
        out.append(copy.deepcopy(trial))
    return out


def _space_from_dict(space: Any, base: RunSpec) -> dict[str, dict[str, Any]]:
    if not isinstance(space, dict) or not space:
        raise SpecError("study.space must be a non-empty table", "study.space")
    out: dict[str, dict[str, Any]] = {}
    for key, dim in space.items():
        where = f"study.space.{key}"
        if not isinstance(dim, dict):
            raise SpecError(f"{where} must be a table, not {_type_name(dim)}", where)
        for sub in dim:
            if sub not in ("min", "max", "scale", "values"):
                raise SpecError(f"unknown key {where}.{sub}", f"{where}.{sub}")
        if "values" in dim:
            if "min" in dim or "max" in dim or "scale" in dim:
                raise SpecError(f"{where}: give either values or min/max/scale", where)
            values = dim["values"]
            if not isinstance(values, list) or not values:
                raise SpecError(f"{where}.values must be a non-empty array", f"{where}.values")
            for value in values:
                _apply_where(base, {key: value}, where)
            out[key] = {"values": copy.deepcopy(values)}
            continue
        for sub in ("min", "max"):
            if sub not in dim:
                raise SpecError(f"{where}.{sub} is missing", f"{where}.{sub}")
        lo = _coerce(f"{where}.min", dim["min"], float)
        hi = _coerce(f"{where}.max", dim["max"], float)
        scale = _coerce(f"{where}.scale", dim.get("scale", "linear"), str)
        if scale not in SCALES:
            raise SpecError(f"{where}.scale must be log or linear, not {scale!r}", f"{where}.scale")
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise SpecError(f"{where}: min must be < max (finite), got {lo}, {hi}", where)
        if scale == "log" and lo <= 0:
            raise SpecError(f"{where}.min must be > 0 on a log scale", f"{where}.min")
        kind = key_type(key)
        if kind is not None and kind not in (int, float):
            raise SpecError(f"{where}: a min/max range needs a numeric key", where)
        for bound in (dim["min"], dim["max"]):  # the range's ends must make valid specs
            _apply_where(base, {key: round(bound) if kind is int else bound}, where)
        out[key] = {"min": dim["min"], "max": dim["max"], "scale": scale}
    return out


def _apply_where(base: RunSpec, overrides: Mapping[str, Any], where: str) -> RunSpec:
    try:
        return apply_overrides(base, overrides)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}", exc.key) from exc


# --------------------------------------------------------------------------------------------
# Keys, flattening, overrides
# --------------------------------------------------------------------------------------------


def canonical_key(key: str) -> str:
    """The dotted spec key that ``key`` (maybe a short alias such as ``lr``) stands for."""
    return ALIASES.get(key, key)


def key_type(key: str) -> type | None:
    """The Python type of a dotted spec key (int, float, str, bool), None for a free-form one.

    Unknown keys are a SpecError. ``workload_options.*`` keys are free-form (None).
    """
    key = canonical_key(key)
    head, _, rest = key.partition(".")
    if head == "workload_options" and rest:
        return None
    tables = {"optimizer": _OPT_FIELDS, "schedule": _SCHED_FIELDS}
    if head in tables and rest in tables[head]:
        return tables[head][rest][0]
    if not rest and head in _RUN_FIELDS:
        return _RUN_FIELDS[head][0]
    raise SpecError(f"unknown key {key}", key)


def _scalar(value: Any) -> bool | int | float | str | None:
    """``value`` as a plain Python scalar (numpy scalars converted), None if not a scalar."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def flatten(spec: RunSpec) -> dict[str, Any]:
    """The spec's scalar values under dotted keys: what run.json's ``hparams`` holds.

    ``None`` (unset) values and non-scalars (``command``, arrays in workload_options) are left
    out; nested workload options get nested dotted keys.
    """
    out: dict[str, Any] = {}

    def walk(prefix: str, d: Mapping[str, Any]) -> None:
        for key, value in d.items():
            if key == "command" and not prefix:
                continue
            if isinstance(value, dict):
                walk(f"{prefix}{key}.", value)
            elif (scalar := _scalar(value)) is not None:
                out[f"{prefix}{key}"] = scalar

    walk("", to_dict(spec))
    return out


def apply_overrides(spec: RunSpec, overrides: Mapping[str, Any]) -> RunSpec:
    """A new, validated RunSpec with the dotted keys of ``overrides`` set.

    Short aliases (``lr``, ``learning_rate``, ``warmup_steps``, ``batch_size``,
    ``max_train_steps``, ``clip_norm``) mean their dotted keys. A value of ``None`` removes the
    key (``clip_norm = None``: no clipping; an optimizer hyperparameter: back to its default).
    ``spec`` itself is not changed.
    """
    d = to_dict(spec)
    seen: dict[str, str] = {}
    for key, value in overrides.items():
        if not isinstance(key, str) or not key:
            raise SpecError(f"override key {key!r} must be a non-empty string", str(key))
        target = canonical_key(key)
        if target in seen:
            raise SpecError(f"{key} and {seen[target]} set the same key {target}", key)
        seen[target] = key
        parts = target.split(".")
        node: dict[str, Any] = d
        for i, part in enumerate(parts[:-1]):
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                where = ".".join(parts[: i + 1])
                raise SpecError(f"unknown key {target}: {where} is not a table", target)
            node = nxt
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = copy.deepcopy(value)
            if target == "command":
                d.pop("workload", None)
            elif target == "workload":
                d.pop("command", None)
    result = from_dict(d)
    if isinstance(result, StudySpec):  # an override named "study..."
        raise SpecError("unknown key study in overrides of a run", "study")
    return result


# --------------------------------------------------------------------------------------------
# Placeholders in external commands
# --------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_placeholders(template: list[str], spec: RunSpec, run_dir: str) -> list[str]:
    """``template`` with ``{dotted.key}``, short aliases and ``{run_dir}`` filled in.

    Each element stays one argv element (a value with spaces or ``;`` is not split; there is
    no shell). Text in braces that is not a name (``{"a": 1}``) is left as it is. An unknown
    placeholder, or one whose key is unset (``{clip_norm}`` with no clipping), is a SpecError.
    Floats are written with ``repr`` (``0.001``, ``1e-05``), booleans as ``true``/``false``.
    """
    values = flatten(spec)

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "run_dir":
            return str(run_dir)
        key = canonical_key(name)
        if key in values:
            return _format_value(values[key])
        try:
            key_type(key)
        except SpecError:
            raise SpecError(f"unknown placeholder {{{name}}}", name) from None
        raise SpecError(f"placeholder {{{name}}}: {key} is not set in this spec", name)

    out: list[str] = []
    for i, part in enumerate(template):
        if not isinstance(part, str):
            raise SpecError(f"command[{i}] must be a string, not {_type_name(part)}", "command")
        out.append(_PLACEHOLDER.sub(sub, part))
    return out


# --------------------------------------------------------------------------------------------
# Writing: dict and TOML
# --------------------------------------------------------------------------------------------


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def to_dict(spec: RunSpec | StudySpec) -> dict[str, Any]:
    """The spec in the TOML key layout, ``None`` values left out (loads back with from_dict).

    A StudySpec's ``study`` table holds only the keys of its search.
    """
    if isinstance(spec, StudySpec):
        d = to_dict(spec.base)
        s = spec.study
        study: dict[str, Any] = {"name": s.name, "search": s.search}
        for key in _SEARCH_KEYS[s.search]:
            study[key] = copy.deepcopy(getattr(s, key))
        if s.parallel is not None:
            study["parallel"] = s.parallel
        d["study"] = study
        return d
    d = {
        f.name: copy.deepcopy(getattr(spec, f.name))
        for f in dataclasses.fields(spec)
        if f.name not in _TABLES
    }
    d = _drop_none(d)
    d["optimizer"] = _drop_none(dataclasses.asdict(spec.optimizer))
    d["schedule"] = dataclasses.asdict(spec.schedule)
    if spec.workload_options:
        d["workload_options"] = copy.deepcopy(spec.workload_options)
    return d


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise SpecError(f"string {s!r} holds a lone surrogate; TOML cannot write it")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_str(key)


def _toml_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)  # numpy's repr is not TOML
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # "0.001", "1e-05", "1e+16": all valid TOML floats
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, where) for v in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{_toml_key(str(k))} = {_toml_value(v, where)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }" if value else "{}"
    raise SpecError(f"{where}: {_type_name(value)} ({value!r}) cannot be written as TOML", where)


def to_toml(spec: RunSpec | StudySpec) -> str:
    """The spec as a TOML document that :func:`loads` reads back to an equal spec."""
    d = to_dict(spec)
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in d.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value, key)}")
    for name, table in tables:
        lines.append("")
        lines.append(f"[{_toml_key(name)}]")
        for key, value in table.items():
            lines.append(f"{_toml_key(str(key))} = {_toml_value(value, f'{name}.{key}')}")
    return "\n".join(lines) + "\n"
