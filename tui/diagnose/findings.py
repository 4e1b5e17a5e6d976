"""Finding: one thing the playbook says about a run or a study, in one line.

Kinds, their rule ids and default severities are fixed by DESIGN.md's table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "error")

# kind -> (rule id, default severity); DESIGN.md "tunetop check --json"
KINDS: dict[str, tuple[str, str]] = {
    "loss_spike": ("R13", "warning"),
    "divergence": ("R16", "error"),
    "unstable_training": ("R12", "warning"),
    "grad_norm_outlier": ("R14", "info"),
    "clipping_too_aggressive": ("R24", "warning"),
    "best_step_early": ("R3", "info"),
    "best_step_late": ("R3", "info"),
    "warmup_too_long": ("R21", "info"),
    "best_at_search_boundary": ("R5", "warning"),
    "best_at_feasibility_edge": ("R16", "warning"),
    "tuning_budget": ("R8", "info"),
    "steps_differ": ("R2", "warning"),
    "batch_size_swept": ("R10", "warning"),
    "hand_made_schedule": ("R7", "info"),
    "steps_to_fit": ("R4", "info"),
    "not_learning": ("R5", "warning"),
    "overfitting": ("R1", "info"),
}


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def jsonable(value: Any) -> Any:
    """Evidence values as JSON-safe Python (numpy scalars -> float/int)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # 'nan', 'inf'
    return value


@dataclass(frozen=True)
class Finding:
    kind: str
    message: str
    step: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    severity: str = ""  # "" = the kind's default
    rule: str = ""  # "" = the kind's rule

    def __post_init__(self) -> None:
        rule, default = KINDS[self.kind]
        if not self.rule:
            object.__setattr__(self, "rule", rule)
        if not self.severity:
            object.__setattr__(self, "severity", default)
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "rule": self.rule, "severity": self.severity}
        if self.step is not None:
            out["step"] = int(self.step)
        out["message"] = self.message
        out["evidence"] = jsonable(self.evidence)
        return out

    def line(self) -> str:
        """The one line the findings panel and `tunetop check` print."""
        step = f"step {self.step}" if self.step is not None else "-"
        return f"{self.severity:<7} {self.kind} {self.rule} {step}: {self.message}"
