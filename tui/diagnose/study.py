"""Per-study diagnosis (R2, R3, R5, R8, R10, R12, R16).

A study is the runs directly under one folder (DESIGN.md "Runs and studies"). The boundary and
feasibility checks (R5, R16) apply to a study with one swept numeric hyperparameter taking three
or more distinct values, and not to remedy studies. Each trial's objective is its retrospective
best validation loss (R1), or its best training loss when some feasible trial has no
validation loss. A trial is infeasible (R16) when its training loss becomes non-finite or rises
above 5x its first logged value at any point, even if it later comes down; "uncharacteristically
high" is judged within the run, never against the other trials (DESIGN.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tui.diagnose.bestpoint import (
    FINISHED_FRACTION,
    MIN_EVALS,
    flat_since_late_line,
    r3_side,
    series_min,
    span_fraction,
    span_origin,
)
from tui.diagnose.findings import Finding
from tui.diagnose.fit import is_fit_study, steps_to_fit
from tui.diagnose.learning import logs_reward, not_learning, num_classes_of
from tui.diagnose.warmup import warmup_from_hparams
from tui.logs.model import Run, Study

BOUNDARY_FRACTION = 0.1  # R5, quasi-random studies: the outer 10% of the (log) range
FAR_MORE_TRIALS = 100  # R8: "far more than 25" trials
LR_NAMES = ("lr", "learning_rate", "optimizer.lr")
BATCH_NAMES = ("batch_size", "bs", "train_batch_size", "per_device_train_batch_size")
STEP_NAMES = ("max_train_steps", "max_steps", "total_steps", "num_train_steps")
OPTIMIZER_KEYS = (  # where an optimizer's name is found in the hyperparameters
    "optimizer.name",
    "optimizer",
    "optim",
    "optimizer_name",
    "optim_name",
    "optimizer_type",
    "optimizer.type",
    "optimizer._target_",
    "optimizer.class_path",
    "opt",
)
ADAM_PARAMS = {  # R8: hyperparameter names -> the Adam hyperparameter they are
    "lr": "lr",
    "learning_rate": "lr",
    "optimizer.lr": "lr",
    "beta1": "beta1",
    "optimizer.beta1": "beta1",
    "adam_beta1": "beta1",
    "beta2": "beta2",
    "optimizer.beta2": "beta2",
    "adam_beta2": "beta2",
    "eps": "eps",
    "epsilon": "eps",
    "optimizer.eps": "eps",
    "adam_epsilon": "eps",
}


@dataclass
class StudyVerdict:
    best_run: str | None
    infeasible_runs: list[str]
    findings: list[Finding]
    metric: str | None = None  # the objective: "val_loss" or "loss"
    objective: dict[str, float] = field(default_factory=dict)  # run id -> best value (R1)


def _loss(run: Run) -> np.ndarray:
    if not run.store.has("loss"):
        return np.empty(0)
    return np.asarray(run.store.series("loss").values, np.float64)


def is_infeasible(run: Run, blowup_factor: float = 5.0) -> bool:
    """R16 (DESIGN.md): the training loss became non-finite, or rose above `blowup_factor` x
    its first logged value at any point, even if it later came down."""
    v = _loss(run)
    if v.shape[0] == 0:
        return False
    finite = np.isfinite(v)
    if not finite.all():
        return True
    first = float(v[0])
    return bool(first > 0 and (v > blowup_factor * first).any())


def _numeric(values: list[Any]) -> list[float] | None:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return None
        out.append(float(v))
    return out


def _log_scale(param: str, values: list[float]) -> bool:
    """R5: learning rates on a log scale; so is any positive range spanning 100x or more."""
    if min(values) <= 0:
        return False
    return (
        param.lower() in LR_NAMES
        or param.lower().endswith("lr")
        or max(values) >= 100 * min(values)
    )


def _is_quasi_random(study: Study, positions: list[float]) -> bool:
    """The runner says so in run.json; otherwise six or more values whose gaps are uneven
    (a grid's gaps are even on its own scale)."""
    for run in study.runs:
        spec = (run.run_json or {}).get("spec") or {}
        search = (spec.get("study") or {}).get("search") if isinstance(spec, dict) else None
        if search == "quasi_random":
            return True
        if search in ("grid", "list"):
            return False
    distinct = sorted(set(positions))
    if len(distinct) < 6:
        return False
    gaps = np.diff(distinct)
    return bool(gaps.min() <= 0 or gaps.max() / gaps.min() > 3)


def diagnose_study(
    study: Study,
    blowup_factor: float = 5.0,
    boundary_fraction: float = BOUNDARY_FRACTION,
) -> StudyVerdict:
    """The playbook's verdict on a study (R2, R3, R4, R5, R8, R10, R16), computed from the
    runs themselves. Apply `adjust_run_findings` to re-judge their per-run findings in it."""
    runs = study.runs
    infeasible = [r.id for r in runs if is_infeasible(r, blowup_factor)]
    feasible = [r for r in runs if r.id not in infeasible]
    metric = None
    if feasible:
        metric = "val_loss" if all(series_min(r.store, "val_loss") for r in feasible) else "loss"
    objective: dict[str, float] = {}
    for r in feasible:
        b = series_min(r.store, metric) if metric else None
        if b is not None:
            objective[r.id] = b[0]
    best_run = min(objective, key=lambda k: objective[k]) if objective else None
    findings: list[Finding] = []
    param = study.param
    applies = (
        param is not None and not study.is_remedy and not study.is_replicate and len(runs) >= 2
    )
    values = _numeric(study.swept.get(param, [])) if param is not None else None
    by_id = {r.id: i for i, r in enumerate(runs)}
    if applies and values is not None and len(values) == len(runs) and len(set(values)) >= 3:
        assert param is not None
        findings += _boundary(study, param, values, best_run, by_id, boundary_fraction)
        findings += _feasibility_edge(param, values, runs, infeasible, best_run, by_id)
    findings += _r3_across(feasible, _lr_at_top(param, values, best_run, by_id))
    findings += _budget(study)
    findings += _steps_differ(study)
    findings += _batch_size_swept(study)
    if is_fit_study(study):  # R4: a steps-to-fit sweep tunetop launched
        findings += steps_to_fit(study)
    return StudyVerdict(best_run, infeasible, findings, metric, objective)


def _boundary(
    study: Study,
    param: str,
    values: list[float],
    best_run: str | None,
    by_id: dict[str, int],
    fraction: float,
) -> list[Finding]:
    """R5: the best trial holds the lowest or highest swept value (feasible or not, the whole
    searched range); for quasi-random studies, a value in the outer `fraction` of the range."""
    if best_run is None:
        return []
    log = _log_scale(param, values)
    pos = [math.log10(v) for v in values] if log else list(values)
    lo, hi = min(pos), max(pos)
    p = pos[by_id[best_run]]
    side = None
    if p == lo:
        side = "low"
    elif p == hi:
        side = "high"
    elif hi > lo and _is_quasi_random(study, pos):
        rel = (p - lo) / (hi - lo)
        side = "low" if rel < fraction else "high" if rel > 1 - fraction else None
    if side is None:
        return []
    value = values[by_id[best_run]]
    scale = "log" if log else "linear"
    msg = (
        f"best trial {best_run} has {param}={value:g}, the {side}est value searched "
        f"({min(values):g}..{max(values):g}, {scale} scale) — R5: the search space is suspect;"
        f" widen it on the {side} side"
    )
    return [
        Finding(
            "best_at_search_boundary",
            msg,
            None,
            {
                "side": side,
                "param": param,
                "value": value,
                "run": best_run,
                "min": min(values),
                "max": max(values),
                "scale": scale,
            },
        )
    ]


def _feasibility_edge(
    param: str,
    values: list[float],
    runs: list[Run],
    infeasible: list[str],
    best_run: str | None,
    by_id: dict[str, int],
) -> list[Finding]:
    """R16: every trial above some value is infeasible, and the best trial sits at the
    largest feasible value."""
    if best_run is None or not infeasible:
        return []
    feas_vals = [values[i] for i, r in enumerate(runs) if r.id not in infeasible]
    edge = max(feas_vals)
    above = [values[by_id[r]] for r in infeasible if values[by_id[r]] > edge]
    if not above or values[by_id[best_run]] != edge:
        return []
    msg = (
        f"best trial {best_run} ({param}={edge:g}) is the largest feasible value; every "
        f"trial from {param}={min(above):g} up diverged — R16: likely an instability that "
        f"forces a too-small {param}; look at trials at 5-10x for a rise after a descent, "
        f"then try warmup or clipping (R17)"
    )
    return [
        Finding(
            "best_at_feasibility_edge",
            msg,
            None,
            {
                "param": param,
                "value": edge,
                "run": best_run,
                "first_infeasible": min(above),
                "infeasible": len(infeasible),
            },
        )
    ]


def learned(run: Run) -> bool:
    """The trial's training loss fell meaningfully (R5/R4: learning.not_learning)."""
    if not run.store.has("loss") or logs_reward(run.store.names()):
        return True  # nothing says otherwise
    loss = run.store.series("loss")
    total = run.total_steps
    w = warmup_from_hparams(run.hparams, total)
    return not_learning(loss.steps, loss.values, total, w, num_classes_of(run.hparams)) is None


def _trial_fraction(run: Run) -> tuple[float, int, bool] | None:
    """(best val step fraction over the trial's own span, best step, still improving after
    the 75% line) for a finished trial with enough evaluations."""
    b = series_min(run.store, "val_loss")
    total = run.total_steps
    last = run.max_step
    if b is None or b[2] < MIN_EVALS or not total or last is None:
        return None
    if run.status != "finished" and last + 1 < FINISHED_FRACTION * total:
        return None  # a live trial's best is often its latest point: not judged yet
    if last > total:  # a log past its planned length (HF's steps end at max_steps): its own
        total = last + 1
    val = run.store.series("val_loss")
    src = run.store.series("loss") if run.store.has("loss") else val
    origin = span_origin(src.steps)
    if origin >= total:
        return None
    flat = flat_since_late_line(val.steps, val.values, origin, total)[0]
    return span_fraction(b[1], origin, total), b[1], not flat


def _lr_at_top(
    param: str | None, values: list[float] | None, best_run: str | None, by_id: dict[str, int]
) -> bool:
    """The best trial holds the highest learning rate searched: late bests may be a too-small
    learning rate's (R4's caveat, R5), not a too-short training's."""
    if param is None or values is None or best_run is None or len(set(values)) < 2:
        return False
    if len(values) != len(by_id):
        return False
    if param.lower() not in LR_NAMES and not param.lower().endswith("lr"):
        return False
    return values[by_id[best_run]] == max(values)


def _r3_across(feasible: list[Run], lr_at_top: bool = False) -> list[Finding]:
    """R3 across trials: the best step always in the first 10% / always in the last 25%.
    Trials that did not learn say nothing about training length (R4's caveat) and are left
    out; the late side needs every trial still improving after its 75% line, and is not said
    when the best trial holds the highest learning rate searched (widen the search first,
    R5)."""
    fr = [f for f in (_trial_fraction(r) for r in feasible if learned(r)) if f is not None]
    if len(fr) < 2:
        return []
    sides = {r3_side(f[0]) for f in fr}
    if len(sides) != 1 or None in sides:
        return []
    side = sides.pop()
    if side == "late" and (lr_at_top or not all(f[2] for f in fr)):
        return []
    lo, hi = min(f[0] for f in fr), max(f[0] for f in fr)
    advice = (
        "max_train_steps is too high"
        if side == "early"
        else "the trials would likely benefit from training longer (and re-tuning the decay)"
    )
    where = "first 10%" if side == "early" else "last 25%"
    msg = (
        f"every trial's best val_loss is in the {where} of training ({lo:.0%}-{hi:.0%}, "
        f"{len(fr)} trials) — R3: {advice}"
    )
    return [
        Finding(
            f"best_step_{side}",
            msg,
            None,
            {"trials": len(fr), "min_fraction": lo, "max_fraction": hi},
            severity="warning",
        )
    ]


def optimizer_of(run: Run) -> str | None:
    """The optimizer's name as the hyperparameters give it (optimizer, optimizer.name, optim,
    ...; "torch.optim.AdamW" -> "AdamW"), or None."""
    for key in OPTIMIZER_KEYS:
        v = run.hparams.get(key)
        if isinstance(v, str) and v.strip():
            return v.strip().rsplit(".", 1)[-1]
    return None


def _adam_family(study: Study) -> str | None:
    """The Adam-family optimizer(s) the trials name (R8 is Adam's budget: adam, adamw, nadam,
    paged_adamw_8bit, ...), or None when none is named or one is not Adam's."""
    names = {o for r in study.runs if (o := optimizer_of(r)) is not None}
    if not names or not all("adam" in o.lower() for o in names):
        return None
    return ", ".join(sorted(names))


def _budget(study: Study) -> list[Finding]:
    """R8: what the trial count supports tuning, for a known Adam-family optimizer, named;
    trials with no points do not count."""
    n = sum(1 for r in study.runs if r.store.last_step is not None)
    if n < 2 or study.is_replicate or study.is_remedy or not study.swept:
        return []  # nothing swept: reruns of one configuration tune nothing
    optimizer = _adam_family(study)
    if optimizer is None:
        return []
    supported = ["lr"]
    if n >= 10:
        supported.append("beta1")
    if n > 25:
        supported.append("beta2")
    if n >= FAR_MORE_TRIALS:
        supported.append("eps")
    swept = sorted({ADAM_PARAMS[k.lower()] for k in study.swept if k.lower() in ADAM_PARAMS})
    over = [p for p in swept if p not in supported]
    extra = (
        f"; this study also tunes {', '.join(over)}: more than {n} trials support" if over else ""
    )
    msg = (
        f"{n} trials support tuning {' + '.join(supported)} of {optimizer}{extra} — R8: <10 trials "
        f"lr only, 10-25 +beta1, >25 +beta2, far more +eps (the English playbook swaps the "
        f"last two: >25 eps, far more beta2)"
    )
    return [
        Finding(
            "tuning_budget",
            msg,
            None,
            {
                "trials": n,
                "optimizer": optimizer,
                "supported": supported,
                "swept": swept,
                "over_budget": over,
            },
        )
    ]


def _max_steps(run: Run) -> int | None:
    for src in (run.hparams, run.run_json or {}):
        for key in STEP_NAMES:
            v = src.get(key)
            # 0 is a value (a warmup-study trial has no base schedule, R18), not a gap
            if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
                return int(v)
    return None


def _steps_differ(study: Study) -> list[Finding]:
    """R2: never tune max_train_steps inside a study; judged only where every trial's
    max_train_steps is known (a length read off a log's last step is not a setting)."""
    known = {r.id: s for r in study.runs if (s := _max_steps(r)) is not None}
    if len(known) < len(study.runs):
        return []
    distinct = sorted(set(known.values()))
    if len(distinct) < 2:
        return []
    msg = (
        f"trials differ in max_train_steps ({', '.join(str(d) for d in distinct)}) — R2: "
        f"never tune max_train_steps inside a study; rerun them at one length"
    )
    return [Finding("steps_differ", msg, None, {"values": distinct, "by_run": known})]


def _batch_size_swept(study: Study) -> list[Finding]:
    """R10: batch size swept with everything else fixed."""
    swept = [k for k in study.swept if k != "seed"]
    if len(swept) != 1 or swept[0].lower() not in BATCH_NAMES:
        return []
    values = sorted({v for v in study.swept[swept[0]]}, key=lambda v: (str(type(v)), v))
    msg = (
        f"{swept[0]} swept ({', '.join(str(v) for v in values)}) with everything else fixed "
        f"— R10: batch size is not tuned for validation performance; re-tune the LR and "
        f"regularization at each batch size"
    )
    return [Finding("batch_size_swept", msg, None, {"param": swept[0], "values": values})]


def adjust_run_findings(
    study: Study, verdict: StudyVerdict, run_findings: dict[str, list[Finding]]
) -> dict[str, list[Finding]]:
    """Per-run findings re-judged in their study (DESIGN.md; R12's note): the divergence of an
    infeasible trial in a study whose other trials are feasible becomes info (expected in an
    ordinary sweep; `best_at_feasibility_edge` says what matters). A replicate study's
    divergence stays an error (same config, different seed: a real instability)."""
    out: dict[str, list[Finding]] = {}
    any_feasible = len(verdict.infeasible_runs) < len(study.runs)
    for run_id, found in run_findings.items():
        if run_id in verdict.infeasible_runs and any_feasible and not study.is_replicate:
            out[run_id] = [
                replace(
                    f,
                    severity="info",
                    message=f.message + " [info: an infeasible trial "
                    "of a sweep whose other trials are feasible is expected, R12]",
                )
                if f.kind == "divergence" and f.severity != "info"
                else f
                for f in found
            ]
        else:
            out[run_id] = list(found)
    return out
