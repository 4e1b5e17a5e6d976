"""Hyperparameters of a run folder (DESIGN.md "Runs and studies").

Merged in this order, an earlier source's key never overridden by a later one: run.json's
`hparams`; top-level scalars of config.json, hparams.json, hparams.yaml beside the log and
trainer_state.json's `trial_params`; then `key=value` parts of the folder name, and
`key_number` / `key-number` parts whose key is a known hyperparameter name. Identifiers, paths
and timestamps are never hyperparameters. YAML is read with the safe loader only: nothing read
from a log is ever executed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# canonical name <- names that mean it (DESIGN.md)
HPARAM_ALIASES: dict[str, tuple[str, ...]] = {
    "lr": ("lr", "learning_rate", "optimizer.lr"),
    "max_train_steps": ("max_train_steps", "max_steps", "total_steps", "num_train_steps"),
    "warmup_steps": ("warmup_steps", "num_warmup_steps", "schedule.warmup_steps"),
    "batch_size": ("batch_size", "train_batch_size", "per_device_train_batch_size"),
    "weight_decay": ("weight_decay", "wd", "optimizer.weight_decay"),
    "clip_norm": ("clip_norm", "clip", "max_grad_norm", "gradient_clip_val"),
    "warmup": ("warmup",),
}
_ALIAS = {name: canon for canon, names in HPARAM_ALIASES.items() for name in names}
_ALIAS["warmup"] = "warmup_steps"

# key_number / key-number parts of a folder name are hyperparameters only for these keys
FOLDER_KEYS = (
    "learning_rate",
    "lr",
    "weight_decay",
    "wd",
    "batch_size",
    "bs",
    "warmup_steps",
    "warmup",
    "momentum",
    "beta1",
    "beta2",
    "eps",
    "dropout",
    "clip_norm",
    "clip",
    "seed",
)
_FOLDER_SHORT = {"bs": "batch_size", "wd": "weight_decay", "clip": "clip_norm"}

IDENTIFIERS = frozenset(
    {
        "id",
        "run_id",
        "trial",
        "trial_id",
        "index",
        "name",
        "run_name",
        "output_dir",
        "logging_dir",
        "pid",
        "status",
        "started",
        "ended",
        "exit_code",
        "hub_model_id",
        "project",
        "experiment",
        "experiment_name",
        "version",
        "job_id",
        "host",
        "hostname",
    }
)

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FOLDER_PART = re.compile(
    r"(?:^|(?<=[_\-,.\s]))("
    + "|".join(sorted(FOLDER_KEYS, key=len, reverse=True))
    + r")[_\-]?("
    + _NUMBER
    + r")(?=$|[_\-,\s])",
    re.IGNORECASE,
)
_DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}|\d{8}[-_T]\d{4,6}")


def canonical_hparam(name: str) -> str:
    return _ALIAS.get(name, _ALIAS.get(name.lower(), name))


def _scalar(value: Any) -> bool:
    if isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        # paths and timestamps are never hyperparameters
        return (
            0 < len(value) <= 64
            and "/" not in value
            and "\\" not in value
            and not _DATE_LIKE.search(value)
        )
    return False


def _number(text: str) -> int | float | str:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def clean(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Scalar, non-identifier entries of a mapping, under their canonical names."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        key = str(key)
        if key.lower() in IDENTIFIERS or not _scalar(value):
            continue
        name = canonical_hparam(key)
        out.setdefault(name, value)
    return out


def from_folder_name(name: str) -> dict[str, Any]:
    """`lr=0.001,bs=64`, `lr_0.001`, `bs-64`: hyperparameters a folder name holds."""
    out: dict[str, Any] = {}
    rest = []
    for part in re.split(r"[,\s]+", name):
        if "=" in part:
            key, _, value = part.partition("=")
            key = key.strip()
            if key and value and key.lower() not in IDENTIFIERS:
                v = _number(value)
                if _scalar(v):
                    out.setdefault(canonical_hparam(_FOLDER_SHORT.get(key, key)), v)
        else:
            rest.append(part)
    for part in rest:
        for key, value in _FOLDER_PART.findall(part):
            key = key.lower()
            v = _number(value)
            if isinstance(v, str):
                continue
            out.setdefault(canonical_hparam(_FOLDER_SHORT.get(key, key)), v)
    return out


def _load_json(path: Path) -> Any:
    with open(path, "rb") as fh:
        return json.loads(fh.read(4 * 1024 * 1024))


def read_hparams(
    folder: Path,
    run_json: Mapping[str, Any] | None = None,
    trainer_state: Mapping[str, Any] | None = None,
    errors: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """All hyperparameters of a run folder, merged in DESIGN.md's order."""
    merged: dict[str, Any] = {}

    def add(values: Mapping[str, Any]) -> None:
        for k, v in clean(values).items():
            merged.setdefault(k, v)

    if run_json is not None:
        hp = run_json.get("hparams")
        if isinstance(hp, Mapping):
            add(hp)
        for key in ("max_train_steps",):
            if key in run_json:
                add({key: run_json[key]})
    for fname in ("config.json", "hparams.json", "hparams.yaml"):
        path = folder / fname
        if not path.is_file():
            continue
        try:
            if fname.endswith(".yaml"):
                with open(path, "rb") as fh:
                    data = yaml.safe_load(fh.read(4 * 1024 * 1024))
            else:
                data = _load_json(path)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            if errors is not None:
                errors.append((str(path), f"cannot read hyperparameters: {exc}"))
            continue
        if isinstance(data, Mapping):
            add(data)
    if trainer_state is not None:
        tp = trainer_state.get("trial_params")
        if isinstance(tp, Mapping):
            add(tp)
        ms = trainer_state.get("max_steps")
        if isinstance(ms, int) and ms > 0:
            add({"max_train_steps": ms})
    add(from_folder_name(folder.name))
    return merged
