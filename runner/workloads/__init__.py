"""Workloads: what the runner trains.

The protocol (README "Your own workload"). A workload is made by a factory function, called
with keyword arguments only:

    factory(batch_size=64, seed=0, device=torch.device("cpu"), **workload_options) -> Workload

`batch_size` is the per-process batch (the spec's batch_size divided by the number of DDP
processes), `seed` the spec's seed (the runner has already called torch.manual_seed(seed), so
the model's initialization follows it), `device` where training runs (putting the data there
saves a copy per step), and `workload_options` the spec's [workload_options] table as it is.
Accept `**kwargs` for what you do not use. The factory returns an object with these attributes
(`Workload` below is one; any object or a dict with the same names will do):

    model         torch.nn.Module; the runner moves it to the device
    train_batch   (step, generator) -> (x, y): one training batch. Draw every random choice
                  from `generator` (a torch.Generator on the CPU, reseeded by the runner from
                  (seed, rank, step) every step), so that a resumed run sees the same batches
    eval_batches  () -> iterable of (x, y): the whole validation set, the same every call
    loss_fn       (model(x), y) -> scalar loss tensor, the mean over the batch
    accuracy      optional, (model(x), y) -> fraction correct in the batch, for val_accuracy

x may be a tensor or a tuple / dict of tensors (passed to the model as model(*x) / model(**x));
the runner moves tensors to the device. A workload in your code is named in the spec as
`workload = "pkg.module:function"` or `workload = "path/to/file.py:function"` (a relative path
is taken from the current folder).

Built in (each trains on a CPU in under a minute and shows a playbook phenomenon):
    digits_mlp        an MLP on scikit-learn's bundled 8x8 digits (no download)
    tiny_transformer  a post-LN decoder-only transformer on a generated sequence-reversal task:
                      Adam at a high learning rate is unstable early without warmup (R13, R18)
    tiny_resnet       a small residual CNN on generated 16x16 shape images with rare outlier
                      batches: gradient-norm outliers that clipping tames (R14, R22, R23)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

Batch = tuple[Any, torch.Tensor]


@dataclass
class Workload:
    model: nn.Module
    train_batch: Callable[[int, torch.Generator], Batch]
    eval_batches: Callable[[], Iterable[Batch]]
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor]
    accuracy: Callable[[Any, torch.Tensor], torch.Tensor | float] | None = None


BUILTIN = {
    "digits_mlp": "runner.workloads.digits_mlp:digits_mlp",
    "tiny_transformer": "runner.workloads.tiny_transformer:tiny_transformer",
    "tiny_resnet": "runner.workloads.tiny_resnet:tiny_resnet",
}


class WorkloadError(ValueError):
    """The spec names a workload that cannot be found or does not keep to the protocol."""


def _add_launch_dir() -> None:
    """Module workloads import from the folder the user launched from (TUNETOP_LAUNCH_DIR,
    else the cwd), whether started as `tunetop run`, `python -m runner` or as a study's trial
    (`python -P` in its own folder). Appended, never prepended: a numpy.py or runner.py left in
    that folder shadows nothing installed (issue 14), it only adds the user's own modules."""
    from runner.child import user_launch_dir

    folder = str(user_launch_dir())
    if folder not in sys.path:
        sys.path.append(folder)


def resolve(ref: str) -> Callable[..., Any]:
    """The factory for a built-in name, `pkg.module:function` or `path/to/file.py:function`."""
    ref = BUILTIN.get(ref, ref)
    if ":" not in ref:
        raise WorkloadError(
            f"workload {ref!r}: not built in ({', '.join(BUILTIN)}) and not 'module:function'"
        )
    where, _, func = ref.rpartition(":")
    if where.endswith(".py"):
        path = Path(where).resolve()
        if not path.is_file():
            raise WorkloadError(f"workload {ref!r}: no file {path}")
        mod_name = f"_tunetop_workload_{path.stem}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise WorkloadError(f"workload {ref!r}: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module  # dataclasses and pickling look modules up here
        spec.loader.exec_module(module)
    else:
        _add_launch_dir()
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise WorkloadError(f"workload {ref!r}: cannot import {where}: {e}") from e
    factory = getattr(module, func, None)
    if not callable(factory):
        raise WorkloadError(f"workload {ref!r}: {where} has no function {func!r}")
    return factory


def build(
    ref: str, *, batch_size: int, seed: int, device: torch.device, options: dict[str, Any]
) -> Workload:
    """Call the factory and check what it returned against the protocol."""
    made = resolve(ref)(batch_size=batch_size, seed=seed, device=device, **options)
    get = made.get if isinstance(made, dict) else lambda k, d=None: getattr(made, k, d)
    missing = [k for k in ("model", "train_batch", "eval_batches", "loss_fn") if get(k) is None]
    if missing:
        raise WorkloadError(f"workload {ref!r} returned no {', '.join(missing)}")
    if not isinstance(get("model"), nn.Module):
        raise WorkloadError(f"workload {ref!r}: model is not a torch.nn.Module")
    return Workload(
        get("model"), get("train_batch"), get("eval_batches"), get("loss_fn"), get("accuracy")
    )


def classification_accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of argmax predictions equal to y, ignoring targets of -100 (cross_entropy's)."""
    keep = y != -100
    hits = (logits.argmax(-1) == y) & keep
    return hits.sum() / keep.sum().clamp(min=1)
