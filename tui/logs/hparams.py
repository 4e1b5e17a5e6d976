"""Hyperparameters of a run folder (DESIGN.md "Runs and studies").

Merged in this order, an earlier source's key never overridden by a later one: run.json's
`hparams`; top-level scalars of config.json, hparams.json, hparams.yaml beside the log and
trainer_state.json's `trial_params`; then `key=value` parts of the folder name, and
`key_number` / `key-number` parts whose key is a known hyperparameter name. Identifiers, paths
and timestamps are never hyperparameters. YAML is read with the safe loader only: nothing read
from a log is ever executed.

Issue 15: a model's config.json (architectures, vocab_size, token ids, hidden sizes: what
`save_pretrained` writes into an HF output folder) describes the model, not the run, and is
not read as hyperparameters (`is_model_config`). A YAML tag the safe loader may not construct
(`!!python/object`, `!!python/tuple`, a numpy scalar) costs only that value: a SafeLoader
subclass reads such a node as its plain value (a scalar's text, a sequence's items) or None
(a mapping: an object's state), and the file's plain scalars are kept. A Ray Tune trial's
params.json is its configuration (nested keys flattened `a.b`); its params.pkl is never opened.
Every file is read through safe_io (regular files only, 1 MiB cap): a FIFO, a 10,000-deep
nesting or a symlink costs only that file, as an `errors` entry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tui.logs.safe_io import UnsafeFile, load_json, read_small

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
    name = _RAY_SUFFIX.sub("", _RAY_PREFIX.sub("", name))
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


# keys that only a model's configuration holds (transformers' PretrainedConfig.to_json_file)
_MODEL_MARKERS = frozenset({"architectures", "model_type", "transformers_version"})
_MODEL_SIZES = frozenset(
    {
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "torch_dtype",
        "n_embd",
        "n_layer",
        "n_head",
        "d_model",
    }
)


def is_model_config(data: Mapping[str, Any]) -> bool:
    """A model's config.json, not a run's: a transformers marker key, or several of the
    size / token-id keys a model config holds."""
    keys = {str(k) for k in data}
    return bool(keys & _MODEL_MARKERS) or len(keys & _MODEL_SIZES) >= 3


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader that never constructs objects: a tag it does not know reads as the node's
    plain value (a scalar's text, a sequence's items) or None (a mapping)."""


def _plain(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return None


def _plain_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return _plain(loader, "", node)


_PlainLoader.add_multi_constructor("!", _plain)
_PlainLoader.add_multi_constructor("tag:", _plain)
_PlainLoader.add_constructor(None, _plain_tag)


def load_yaml(path: Path) -> Any:
    """A YAML file found in a tree, read as data only (see _PlainLoader)."""
    data = read_small(path)
    try:
        return yaml.load(data, Loader=_PlainLoader)  # a SafeLoader subclass: no objects
    except RecursionError:
        raise UnsafeFile(path, "nested too deeply to parse: not read") from None
    except MemoryError:
        raise UnsafeFile(path, "too large to parse: not read") from None
    except yaml.YAMLError as exc:
        raise UnsafeFile(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None


def _flatten(data: Mapping[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Nested mappings as dotted keys (a Ray Tune params.json), two levels at most."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and depth < 2:
            out.update(_flatten(value, f"{name}.", depth + 1))
        else:
            out[name] = value
    return out


# Ray Tune trial folders: <trainable>_<trial id>_<index>_<k>=<v>,<k>=<v>_<YYYY-mm-dd_HH-MM-SS>
_RAY_PREFIX = re.compile(r"^.+?_[0-9a-f]{5}_\d{5}_\d+_(?=[^=]+=)")
_RAY_SUFFIX = re.compile(r"_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$")


CONFIG_FILES = ("config.json", "hparams.json", "hparams.yaml", "params.json")


def read_hparams(
    folder: Path,
    run_json: Mapping[str, Any] | None = None,
    trainer_state: Mapping[str, Any] | None = None,
    errors: list[tuple[str, str]] | None = None,
    extra: list[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """All hyperparameters of a run folder, merged in DESIGN.md's order. `extra`: more
    config-file-level sources (add_hparams event files), merged after the files."""
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
    for fname in CONFIG_FILES:
        path = folder / fname
        try:
            if not path.exists() and not path.is_symlink():
                continue
            data = load_yaml(path) if fname.endswith(".yaml") else load_json(path)
        except UnsafeFile as exc:
            if errors is not None:
                errors.append((str(path), f"cannot read hyperparameters: {exc.reason}"))
            continue
        except OSError as exc:
            if errors is not None:
                errors.append((str(path), f"cannot read hyperparameters: {exc.strerror}"))
            continue
        if not isinstance(data, Mapping):
            continue
        if fname == "config.json" and is_model_config(data):
            continue  # the model's architecture, not the run's hyperparameters
        add(_flatten(data) if fname == "params.json" else data)
    if trainer_state is not None:
        tp = trainer_state.get("trial_params")
        if isinstance(tp, Mapping):
            add(tp)
        ms = trainer_state.get("max_steps")
        if isinstance(ms, int) and ms > 0:
            add({"max_train_steps": ms})
    for values in extra or ():
        add(values)
    add(from_folder_name(folder.name))
    return merged
