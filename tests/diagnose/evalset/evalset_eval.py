"""Scoring tunetop's detectors (and OLMo-core's spike rule, the baseline) on the labelled set
that generate.py makes. Shared by tests/diagnose/test_diag_quality.py and
tests/bench/eval_detectors.py."""

from __future__ import annotations

import gzip
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tui.diagnose.findings import Finding, severity_rank
from tui.diagnose.run_checks import diagnose_run
from tui.diagnose.study import diagnose_study
from tui.logs.batch import ColumnBatch
from tui.logs.model import Run, Study
from tui.logs.store import RunStore

HERE = Path(__file__).resolve().parent
COMMITTED = HERE / "evalset.jsonl.gz"
HIT_WINDOW = 3  # logged steps between an induced spike and a finding that counts as a hit


def load(path: Path = COMMITTED) -> list[dict[str, Any]]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def _num(v: Any) -> float:
    return float(v)  # "nan" / "inf" strings parse too


def to_run(rec: dict[str, Any]) -> Run:
    rows = rec["rows"]
    store = RunStore()
    train = [
        (s, float(s), {"loss": _num(a), "grad_norm": _num(g), "lr": _num(lr)})
        for s, a, g, lr in zip(
            rows["step"], rows["loss"], rows["grad_norm"], rows["lr"], strict=True
        )
    ]
    store.append(ColumnBatch.from_records(train))
    if rows.get("val_step"):
        val = [
            (s, float(s), {"val_loss": _num(v)})
            for s, v in zip(rows["val_step"], rows["val_loss"], strict=True)
        ]
        store.append(ColumnBatch.from_records(val))
    return Run(
        id=rec["name"],
        path=Path(rec["name"]),
        format="jsonl",
        hparams=dict(rec["hparams"]),
        store=store,
        run_json={"total_steps": rec["total_steps"], "status": "finished"},
    )


def olmo_spikes(
    values: np.ndarray, window: int = 128, k: float = 6.0, min_window: int = 32
) -> list[int]:
    """OLMo-core's rule: a point above mean + 6 std of the previous 128 values (here from 32
    previous values on, as our detector); consecutive flagged points (within HIT_WINDOW) are
    one finding. Returns the indices where findings start."""
    v = np.asarray(values, np.float64)
    out: list[int] = []
    last = -(10**9)
    for i in range(min_window, v.shape[0]):
        w = v[max(0, i - window) : i]
        w = w[np.isfinite(w)]
        if w.shape[0] < min_window or not math.isfinite(v[i]):
            continue
        if v[i] > w.mean() + k * w.std():
            if i - last > HIT_WINDOW:
                out.append(i)
            last = i
    return out


@dataclass
class Score:
    spikes: int = 0
    hits: int = 0
    observable: int = 0  # induced events that made a real loss spike (generate.observable)
    observable_hits: int = 0
    findings: int = 0
    true_findings: int = 0
    missed: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.hits / self.spikes if self.spikes else 1.0

    @property
    def observable_recall(self) -> float:
        return self.observable_hits / self.observable if self.observable else 1.0

    @property
    def precision(self) -> float:
        return self.true_findings / self.findings if self.findings else 1.0


def _score_spikes(
    score: Score,
    name: str,
    steps: list[int],
    induced: list[int],
    found_idx: list[int],
    observable: list[bool],
) -> None:
    pos = {s: i for i, s in enumerate(steps)}
    idx = [pos[s] for s in induced]
    for s, i, obs in zip(induced, idx, observable, strict=True):
        score.spikes += 1
        score.observable += obs
        if any(abs(f - i) <= HIT_WINDOW for f in found_idx):
            score.hits += 1
            score.observable_hits += obs
        else:
            score.missed.append(f"{name}@{s}")
    for f in found_idx:
        score.findings += 1
        if any(abs(f - i) <= HIT_WINDOW for i in idx):
            score.true_findings += 1
        else:
            score.false.append(f"{name}@{steps[f]}")


def recovers(loss: np.ndarray, induced_idx: list[int], factor: float = 1.5) -> bool:
    """A spike run recovers when the median of its last 10% of points is within `factor` x the
    median of the 32 points before its first induced spike. A run that stays well above that
    level after a spike is a real rise (R12), and unstable_training may say so."""
    if not induced_idx:
        return True
    i = min(induced_idx)
    before = loss[max(0, i - 32) : i]
    tail = loss[-max(1, loss.shape[0] // 10) :]
    before, tail = before[np.isfinite(before)], tail[np.isfinite(tail)]
    if not before.shape[0] or not tail.shape[0]:
        return False
    return bool(np.median(tail) <= factor * np.median(before))


def classify_sweep(findings: list[Finding]) -> str:
    r5 = [f for f in findings if f.kind == "best_at_search_boundary"]
    if r5:
        return f"edge_{r5[0].evidence['side']}"
    if any(f.kind == "best_at_feasibility_edge" for f in findings):
        return "feasibility_edge"
    return "interior"


@dataclass
class Report:
    ours: Score
    olmo: Score
    clean_warnings: list[str]
    clean_warnings_olmo: list[str]
    unstable_found: list[str]
    unstable_missed: list[str]
    unstable_false: list[str]  # unstable_training on spike or clean runs
    sweeps: dict[str, tuple[str, str]]  # study -> (expected, got)
    runs: int = 0
    unstable_unrecovered: list[str] = field(default_factory=list)  # spike runs that stay up

    @property
    def sweeps_right(self) -> int:
        return sum(e == g for e, g in self.sweeps.values())

    def lines(self) -> list[str]:
        o, b = self.ours, self.olmo
        return [
            f"runs: {self.runs}; induced spikes: {o.spikes} ({o.observable} observable, "
            f"generate.observable)",
            f"loss_spike (ours):  recall {o.recall:.3f} ({o.hits}/{o.spikes}; observable "
            f"{o.observable_hits}/{o.observable})  precision {o.precision:.3f} "
            f"({o.true_findings}/{o.findings})",
            f"OLMo-core mean+6std/128: recall {b.recall:.3f} ({b.hits}/{b.spikes}; observable "
            f"{b.observable_hits}/{b.observable})  precision {b.precision:.3f} "
            f"({b.true_findings}/{b.findings})",
            f"clean runs with a warning (ours): {len(self.clean_warnings)} {self.clean_warnings}",
            f"clean runs with a spike (OLMo rule): {len(self.clean_warnings_olmo)}",
            f"unstable_training: found {len(self.unstable_found)}/"
            f"{len(self.unstable_found) + len(self.unstable_missed)} slowly unstable runs; "
            f"false on clean runs and spike runs that recover: {len(self.unstable_false)} "
            f"{self.unstable_false}; on spike runs that do not recover (R12, not scored): "
            f"{self.unstable_unrecovered}",
            f"sweeps classified right: {self.sweeps_right}/{len(self.sweeps)} "
            + ", ".join(f"{k}: {e}->{g}" for k, (e, g) in self.sweeps.items()),
            f"ours missed: {o.missed}; ours false: {o.false}",
            f"OLMo missed: {b.missed}; OLMo false: {b.false}",
        ]


def evaluate(records: list[dict[str, Any]]) -> Report:
    ours, olmo = Score(), Score()
    clean_warn: list[str] = []
    clean_warn_olmo: list[str] = []
    un_found: list[str] = []
    un_missed: list[str] = []
    un_false: list[str] = []
    un_unrecovered: list[str] = []
    studies: dict[str, list[tuple[dict[str, Any], Run]]] = defaultdict(list)
    for rec in records:
        run = to_run(rec)
        kind = rec["kind"]
        if kind == "sweep":
            studies[rec["study"]].append((rec, run))
            continue
        found = diagnose_run(run)
        steps = rec["rows"]["step"]
        pos = {s: i for i, s in enumerate(steps)}
        spike_idx = [pos[f.step] for f in found if f.kind == "loss_spike"]
        loss = np.array([_num(v) for v in rec["rows"]["loss"]])
        base_idx = olmo_spikes(loss)
        if kind in ("spike", "clean"):
            induced = rec.get("spikes", [])
            obs = rec.get("observable", [True] * len(induced))
            _score_spikes(ours, rec["name"], steps, induced, spike_idx, obs)
            _score_spikes(olmo, rec["name"], steps, induced, base_idx, obs)
            if any(f.kind == "unstable_training" for f in found):
                if kind == "clean" or recovers(loss, [pos[s] for s in induced]):
                    un_false.append(rec["name"])
                else:
                    un_unrecovered.append(rec["name"])
        if kind == "clean":
            if any(severity_rank(f.severity) >= 1 for f in found):
                clean_warn.append(
                    rec["name"]
                    + ": "
                    + "; ".join(f.line() for f in found if severity_rank(f.severity) >= 1)
                )
            if base_idx:
                clean_warn_olmo.append(rec["name"])
        if kind == "unstable":
            if any(f.kind in ("unstable_training", "divergence") for f in found):
                un_found.append(rec["name"])
            else:
                un_missed.append(rec["name"])
    sweeps: dict[str, tuple[str, str]] = {}
    for name, members in studies.items():
        param = members[0][0]["param"]
        members.sort(key=lambda m: m[0]["hparams"][param])
        runs = [m[1] for m in members]
        study = Study(
            id=name,
            path=Path(name),
            runs=runs,
            swept={param: [m[0]["hparams"][param] for m in members]},
        )
        verdict = diagnose_study(study)
        sweeps[name] = (members[0][0]["expect"], classify_sweep(verdict.findings))
    n = len(records)
    return Report(
        ours,
        olmo,
        clean_warn,
        clean_warn_olmo,
        un_found,
        un_missed,
        un_false,
        sweeps,
        n,
        un_unrecovered,
    )
