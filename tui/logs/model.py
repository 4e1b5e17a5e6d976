"""Runs and studies as the rest of tunetop sees them (DESIGN.md "Runs and studies").

Discovery fills these; detectors, `tunetop check` and the app read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.logs.store import RunStore


@dataclass
class Run:
    id: str  # folder relative to the root given ("." when the root is itself a run)
    path: Path
    format: str  # jsonl | csv | tfevents | hf_trainer_state
    hparams: dict[str, Any] = field(default_factory=dict)
    store: RunStore = field(default_factory=RunStore)
    run_json: dict[str, Any] | None = None  # the runner's run.json, when there is one
    errors: list[str] = field(default_factory=list)
    last_write: float | None = None  # Unix time of the last new point or file change seen
    # canonical metric -> the file's own name it was read from, where that is a second-tier
    # name (aliases.fallback_canonical): {"val_loss": "eval_mmlu_loss"}; `best` names it
    metric_sources: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str | None:
        """The runner's status (running, finished, diverged, failed, stopped), if known."""
        value = None if self.run_json is None else self.run_json.get("status")
        return value if isinstance(value, str) else None

    @property
    def remedy(self) -> dict[str, Any] | None:
        # only an object is a remedy record: `"remedy": "s"` in a planted run.json is nothing
        value = None if self.run_json is None else self.run_json.get("remedy")
        return value if isinstance(value, dict) else None

    @property
    def total_steps(self) -> int:
        """The run's planned length: run.json's total_steps, else max_train_steps from the
        hyperparameters, else its last step + 1 (DESIGN.md)."""
        if self.run_json is not None:
            value = self.run_json.get("total_steps")
            if _positive(value):
                return int(value)
        value = self.hparams.get("max_train_steps")
        if _positive(value):
            return int(value)
        last = self.store.last_step
        return (last + 1) if last is not None else 0

    @property
    def max_step(self) -> int | None:
        return self.store.last_step


def _positive(value: Any) -> bool:
    """A usable planned length: a finite number >= 1 (`Infinity` in a file is not one)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 1 <= value < 2**62
    )


@dataclass
class Study:
    id: str  # folder relative to the root
    path: Path
    runs: list[Run]  # ordered by the swept value when there is one
    swept: dict[str, list[Any]] = field(default_factory=dict)  # param -> values aligned w/ runs

    @property
    def param(self) -> str | None:
        """The one swept hyperparameter, or None when several (or none) are swept."""
        names = [k for k in self.swept if k != "seed"]
        return names[0] if len(names) == 1 else None

    @property
    def is_replicate(self) -> bool:
        return set(self.swept) == {"seed"}

    @property
    def is_remedy(self) -> bool:
        return any(r.remedy for r in self.runs)
