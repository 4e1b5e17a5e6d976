"""The run / study spec (DESIGN.md "The runner's spec"). No torch import here.

SKELETON: field names and types are fixed (the dashboard, the runner loop and the remedies
all use them); loading from TOML, validation, flattening and study expansion are filled in by
the runner-spec work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
