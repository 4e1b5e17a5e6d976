"""Atomic checkpoints (issue 4 item 3, issue 8 item 3).

    RUN/checkpoints/last.pt   the latest periodic checkpoint: what --resume continues from
    RUN/checkpoints/best.pt   the state at the lowest validation loss so far, kept apart (R1)

A checkpoint is written to a temp file in the same folder, flushed, fsynced, then os.replace-d
over the old one, and the folder is fsynced: a kill -9 at any moment leaves the previous good
checkpoint in place (a stray `.last.pt.*.tmp` at worst, which is never read and is removed by
the next save).

A checkpoint holds everything the next step depends on, so that a resumed run yields the same
curve as an uninterrupted one with the same seed: model, optimizer, AMP grad scaler, the step
it completed, the best validation loss so far, and the RNG states (torch CPU and CUDA, numpy,
Python). The data order needs no state: the runner seeds the batch generator from (seed, rank,
step) every step (runner/train.py).

No pickle (issue 14 item 4): a checkpoint holds tensors and plain containers only (dicts,
lists, tuples, numbers, strings, None), and is loaded with `torch.load(weights_only=True)`,
whose unpickler builds nothing else: a file that asks for any other object (a planted pickle
payload) is refused with UnsafeCheckpoint before any of its code runs. The numpy RNG state is
stored as a tensor plus numbers for that reason; Python's random state is a tuple of ints.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from runner.rundir import replace_atomic

LAST = "last.pt"
BEST = "best.pt"


class UnsafeCheckpoint(ValueError):
    """A checkpoint that torch.load(weights_only=True) refuses: not one of ours, or tampered."""


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),  # uint32 values, exact
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _set_numpy_state(s: dict[str, Any]) -> None:
    keys = s["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((s["name"], keys, s["pos"], s["has_gauss"], s["cached_gaussian"]))


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state(),
        "python": random.getstate(),  # (version, tuple of 625 ints, None): plain values
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    # the states are CPU byte tensors; a checkpoint loaded with map_location="cuda" has moved
    # them to the GPU, where torch refuses them ("RNG state must be a torch.ByteTensor")
    torch.set_rng_state(state["torch"].cpu())
    _set_numpy_state(state["numpy"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save `obj` to `path` so that `path` is always either the old or the new file."""
    path = Path(path)
    path.parent.mkdir(mode=0o750, exist_ok=True)  # as the run folder (runner/rundir.py)
    replace_atomic(path, lambda f: torch.save(obj, f))  # streamed: no in-memory copy


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save(run_dir: Path, which: str, state: dict[str, Any]) -> Path:
    """Write checkpoints/<which> (LAST or BEST) atomically; returns its path."""
    folder = checkpoint_dir(run_dir)
    for stale in folder.glob(f".{which}.*.tmp"):  # left by a kill -9 mid-save
        stale.unlink(missing_ok=True)
    path = folder / which
    save_atomic(state, path)  # makes the folder
    return path


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint, loaded with weights_only=True (no pickle: see the module docstring).
    Raises UnsafeCheckpoint (one line) for a file that is not a plain-tensor checkpoint."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsafeCheckpoint(
            f"{path}: refused: not a plain-tensor checkpoint (torch.load weights_only: {first})"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:  # truncated or no torch file at all
        raise UnsafeCheckpoint(f"{path}: not a readable checkpoint ({e})".splitlines()[0]) from e
    if not isinstance(state, dict):
        raise UnsafeCheckpoint(f"{path}: not a checkpoint of the runner (no dict)")
    return state


def check_resumable(path: Path) -> None:
    """Raises UnsafeCheckpoint unless `path` loads safely and holds what train() resumes."""
    if not {"step", "model", "optimizer", "rng"} <= load(path).keys():
        raise UnsafeCheckpoint(f"{path}: not a checkpoint of the runner (keys missing)")


def latest(run_dir: Path) -> Path | None:
    """The checkpoint --resume continues from, or None when the run wrote none."""
    path = checkpoint_dir(run_dir) / LAST
    return path if path.exists() else None
