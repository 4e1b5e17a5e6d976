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
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from runner.rundir import replace_atomic

LAST = "last.pt"
BEST = "best.pt"


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    # the states are CPU byte tensors; a checkpoint loaded with map_location="cuda" has moved
    # them to the GPU, where torch refuses them ("RNG state must be a torch.ByteTensor")
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save `obj` to `path` so that `path` is always either the old or the new file."""
    path = Path(path)
    path.parent.mkdir(exist_ok=True)
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
    # weights_only=False: the state holds numpy / Python RNG states. The runner loads only its
    # own checkpoints, on the user's explicit --resume (issue 8 item 5).
    return torch.load(path, map_location=map_location, weights_only=False)


def latest(run_dir: Path) -> Path | None:
    """The checkpoint --resume continues from, or None when the run wrote none."""
    path = checkpoint_dir(run_dir) / LAST
    return path if path.exists() else None
