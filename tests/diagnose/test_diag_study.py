"""Study-level verdicts (R2, R3, R5, R8, R10, R16) and the re-severity of per-run findings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from diag_helpers import run_of

from tui.diagnose.findings import KINDS, Finding
from tui.diagnose.run_checks import diagnose_run
from tui.diagnose.study import adjust_run_findings, diagnose_study, is_infeasible
from tui.logs.model import Run, Study


def trial(
    run_id: str,
    final_val: float,
    *,
    blowup: bool = False,
    nan: bool = False,
    hparams: dict | None = None,
    n: int = 300,
    best_at: int | None = None,
    status: str = "finished",
) -> Run:
    """A trial whose val loss falls to `final_val` (or bottoms at `best_at`)."""
    t = np.arange(n)
    loss = 2.0 * np.exp(-t / 50) + final_val
    if blowup:
        loss[n // 2 : n // 2 + 5] = 50.0  # above 5x the first value, then back
    if nan:
        loss[n // 2 :] = np.nan
    rows = [(int(i), float(i), {"loss": float(v)}) for i, v in zip(t, loss, strict=True)]
    for s in range(19, n, 20):
        v = final_val + 1.0 * np.exp(-s / 50)
        if best_at is not None:
            v = final_val + abs(s - best_at) / n
        rows.append((s, float(s), {"val_loss": float(v)}))
    return run_of(rows, n, hparams or {}, run_id=run_id, status=status)


def study(runs: list[Run], swept: dict) -> Study:
    return Study(id="s", path=Path("s"), runs=runs, swept=swept)


def lr_study(vals: list[float], finals: list[float], bad: set[int] = frozenset(), **kw) -> Study:
    runs = [
        trial(f"t{i}", f, nan=i in bad, hparams={"lr": v, **kw})
        for i, (v, f) in enumerate(zip(vals, finals, strict=True))
    ]
    return study(runs, {"lr": vals})


def kinds(verdict) -> list[str]:
    return [f.kind for f in verdict.findings]


def test_is_infeasible() -> None:
    assert not is_infeasible(trial("a", 0.3))
    assert is_infeasible(trial("a", 0.3, nan=True))
    assert is_infeasible(trial("a", 0.3, blowup=True))  # even though it came back
    assert not is_infeasible(trial("a", 0.3, blowup=True), blowup_factor=100)


def test_interior_best_no_boundary() -> None:
    v = diagnose_study(lr_study([1e-4, 1e-3, 1e-2], [0.5, 0.2, 0.4]))
    assert v.best_run == "t1" and v.infeasible_runs == []
    assert "best_at_search_boundary" not in kinds(v)
    assert "best_at_feasibility_edge" not in kinds(v)


def test_boundary_high_and_low() -> None:
    v = diagnose_study(lr_study([1e-4, 1e-3, 1e-2], [0.5, 0.4, 0.2]))
    f = [x for x in v.findings if x.kind == "best_at_search_boundary"]
    assert len(f) == 1 and f[0].evidence["side"] == "high" and f[0].evidence["value"] == 1e-2
    assert f[0].severity == "warning" and "R5" in f[0].message
    v = diagnose_study(lr_study([1e-4, 1e-3, 1e-2], [0.1, 0.4, 0.5]))
    assert [x.evidence["side"] for x in v.findings if x.kind == "best_at_search_boundary"] == [
        "low"
    ]


def test_boundary_needs_three_values_one_param_and_no_remedy() -> None:
    assert "best_at_search_boundary" not in kinds(
        diagnose_study(lr_study([1e-4, 1e-2], [0.5, 0.2]))
    )
    s = lr_study([1e-4, 1e-3, 1e-2], [0.5, 0.4, 0.2])
    s.swept["beta1"] = [0.9, 0.95, 0.99]
    assert "best_at_search_boundary" not in kinds(diagnose_study(s))
    s = lr_study([1e-4, 1e-3, 1e-2], [0.5, 0.4, 0.2])
    for r in s.runs:
        r.run_json["remedy"] = {"kind": "warmup", "source": "x"}
    assert "best_at_search_boundary" not in kinds(diagnose_study(s))
    rep = study(
        [trial(f"t{i}", 0.2 + i / 10, hparams={"seed": i}) for i in range(3)], {"seed": [0, 1, 2]}
    )
    assert "best_at_search_boundary" not in kinds(diagnose_study(rep))


def test_boundary_quasi_random_outer_fraction() -> None:
    vals = [1e-4, 1.2e-4, 4e-4, 1e-3, 5e-3, 9e-3, 1e-2]  # uneven: quasi-random-like
    finals = [0.5, 0.1, 0.3, 0.3, 0.3, 0.3, 0.4]
    v = diagnose_study(lr_study(vals, finals))
    f = [x for x in v.findings if x.kind == "best_at_search_boundary"]
    assert f and f[0].evidence["side"] == "low" and f[0].evidence["value"] == 1.2e-4


def test_feasibility_edge_and_re_severity() -> None:
    s = lr_study([1e-3, 1e-2, 1e-1, 1.0], [0.5, 0.2, 0.3, 0.3], bad={2, 3})
    v = diagnose_study(s)
    assert v.infeasible_runs == ["t2", "t3"] and v.best_run == "t1"
    edge = [x for x in v.findings if x.kind == "best_at_feasibility_edge"]
    assert len(edge) == 1 and edge[0].evidence["value"] == 1e-2 and "R16" in edge[0].message
    assert "best_at_search_boundary" not in kinds(v)  # the best is not at the range's edge
    per_run = {r.id: diagnose_run(r) for r in s.runs}
    assert any(f.kind == "divergence" and f.severity == "error" for f in per_run["t2"])
    adj = adjust_run_findings(s, v, per_run)
    div = [f for f in adj["t2"] if f.kind == "divergence"]
    assert div and div[0].severity == "info" and "R16" in div[0].message
    assert adj["t0"] == per_run["t0"]
    # best below the largest feasible value: no edge
    s = lr_study([1e-3, 1e-2, 1e-1, 1.0], [0.1, 0.2, 0.3, 0.3], bad={3})
    assert "best_at_feasibility_edge" not in kinds(diagnose_study(s))


def test_replicate_divergence_stays_error() -> None:
    runs = [trial(f"t{i}", 0.2, nan=i == 0, hparams={"seed": i}) for i in range(3)]
    s = study(runs, {"seed": [0, 1, 2]})
    v = diagnose_study(s)
    adj = adjust_run_findings(s, v, {r.id: diagnose_run(r) for r in runs})
    assert [f.severity for f in adj["t0"] if f.kind == "divergence"] == ["error"]


def test_r3_across_study_is_warning() -> None:
    runs = [trial(f"t{i}", 0.2, best_at=15 + i, hparams={"lr": 10.0**-i}) for i in range(3)]
    v = diagnose_study(study(runs, {"lr": [1.0, 0.1, 0.01]}))
    f = [x for x in v.findings if x.kind == "best_step_early"]
    assert len(f) == 1 and f[0].severity == "warning" and "R3" in f[0].message
    # the best trial inside the searched range (lr=0.1): every trial still improving at its
    # end is R3's "train longer", a warning across the study
    runs = [trial(f"t{i}", 0.2 + abs(i - 1) / 10, hparams={"lr": 10.0**-i}) for i in range(3)]
    v = diagnose_study(study(runs, {"lr": [1.0, 0.1, 0.01]}))
    assert [x.severity for x in v.findings if x.kind == "best_step_late"] == ["warning"]
    # the best trial at the highest rate searched: R5 (widen upward) comes before R3's length
    # (R4's caveat: too small learning rates make late bests)
    runs = [trial(f"t{i}", 0.2 + i / 10, hparams={"lr": 10.0**-i}) for i in range(3)]
    v = diagnose_study(study(runs, {"lr": [1.0, 0.1, 0.01]}))
    assert "best_step_late" not in kinds(v) and "best_at_search_boundary" in kinds(v)
    # live trials are not judged
    runs = [trial(f"t{i}", 0.2, hparams={"lr": 10.0**-i}, status="running") for i in range(3)]
    for r in runs:
        r.run_json["total_steps"] = 3000
    assert "best_step_late" not in kinds(diagnose_study(study(runs, {"lr": [1, 0.1, 0.01]})))


def test_tuning_budget() -> None:
    v = diagnose_study(lr_study([1e-4, 1e-3, 1e-2], [0.5, 0.2, 0.4], **{"optimizer.name": "adam"}))
    f = [x for x in v.findings if x.kind == "tuning_budget"]
    assert len(f) == 1 and f[0].severity == "info" and f[0].evidence["supported"] == ["lr"]
    assert "English" in f[0].message and "R8" in f[0].message
    assert f[0].evidence["optimizer"] == "adam" and "of adam" in f[0].message
    runs = [
        trial(
            f"t{i}", 0.2, hparams={"lr": 1e-3 * (1 + i), "beta2": 0.9 + i / 1000, "optim": "adamw"}
        )
        for i in range(12)
    ]
    s = study(
        runs, {"lr": [r.hparams["lr"] for r in runs], "beta2": [r.hparams["beta2"] for r in runs]}
    )
    f = next(x for x in diagnose_study(s).findings if x.kind == "tuning_budget")
    assert f.evidence["supported"] == ["lr", "beta1"] and f.evidence["over_budget"] == ["beta2"]
    sgd = lr_study([1e-4, 1e-3, 1e-2], [0.5, 0.2, 0.4], optimizer="sgd")
    assert "tuning_budget" not in kinds(diagnose_study(sgd))


def test_tuning_budget_needs_a_known_adam_family_optimizer_and_runs_with_points() -> None:
    """R8 is Adam's budget: not said when no optimizer is known (pytorch-forecasting's TFT
    defaults to Ranger; a folder of unrelated runs says nothing), it names the optimizer the
    hparams give (HF's `optim`, a Hydra `_target_`), and empty runs are not trials."""
    assert "tuning_budget" not in kinds(diagnose_study(lr_study([1e-4, 1e-3], [0.5, 0.2])))
    hydra = lr_study([1e-4, 1e-3], [0.5, 0.2], **{"optimizer._target_": "torch.optim.AdamW"})
    (f,) = [x for x in diagnose_study(hydra).findings if x.kind == "tuning_budget"]
    assert f.evidence["optimizer"] == "AdamW" and "of AdamW" in f.message
    paged = lr_study([1e-4, 1e-3], [0.5, 0.2], optim="paged_adamw_8bit")
    assert "tuning_budget" in kinds(diagnose_study(paged))
    ranger = lr_study([1e-4, 1e-3], [0.5, 0.2], optimizer="ranger")
    assert "tuning_budget" not in kinds(diagnose_study(ranger))
    reruns = lr_study([1e-3, 1e-3], [0.5, 0.5], optimizer="Adam")
    reruns.swept = {}  # Lightning version_0, version_1 of one hparams.yaml: nothing swept
    assert "tuning_budget" not in kinds(diagnose_study(reruns))
    empty = run_of([], None, {"optimizer": "adam", "lr": 1e-2}, run_id="t9")
    one = study([trial("t0", 0.3, hparams={"optimizer": "adam", "lr": 1e-3}), empty], {})
    assert "tuning_budget" not in kinds(diagnose_study(one))


def test_steps_differ_only_where_every_trial_sets_max_train_steps() -> None:
    """R2: a length known for one trial and read off another's last step is not a sweep of
    max_train_steps (a folder of unrelated runs)."""
    runs = [
        trial("t0", 0.2, hparams={"lr": 1e-3, "max_train_steps": 300}),
        trial("t1", 0.2, hparams={"lr": 1e-3}, n=600),
    ]
    for r in runs:  # no run.json length: what a reader of other tools' logs has
        r.run_json.pop("total_steps")
    assert "steps_differ" not in kinds(diagnose_study(study(runs, {})))


def test_study_r3_leaves_out_trials_that_did_not_learn() -> None:
    """R4's caveat: trials whose loss stayed at its start (a too-small learning rate) peak at
    their end for nothing; with them left out, one trial is too few for R3 across trials."""
    n = 300
    rng = np.random.default_rng(0)
    stuck_rows = [(i, float(i), {"loss": float(2.3 + 0.02 * rng.normal())}) for i in range(n)] + [
        (s, float(s), {"val_loss": 2.31 - s * 1e-5}) for s in range(19, n, 20)
    ]
    stuck = run_of(stuck_rows, n, {"lr": 1e-6}, run_id="t0")
    ok = trial("t1", 0.2, hparams={"lr": 1e-4})
    assert "not_learning" in [f.kind for f in diagnose_run(stuck)]
    assert "best_step_late" not in kinds(diagnose_study(study([stuck, ok], {"lr": [1e-6, 1e-4]})))


def test_steps_differ_and_batch_size_swept() -> None:
    runs = [
        trial(f"t{i}", 0.2, hparams={"lr": 1e-3, "max_train_steps": 300 * (i + 1)})
        for i in range(2)
    ]
    v = diagnose_study(study(runs, {"max_train_steps": [300, 600]}))
    f = [x for x in v.findings if x.kind == "steps_differ"]
    assert len(f) == 1 and f[0].severity == "warning" and "R2" in f[0].message
    runs = [trial(f"t{i}", 0.2, hparams={"batch_size": 32 * (i + 1)}) for i in range(3)]
    v = diagnose_study(study(runs, {"batch_size": [32, 64, 96]}))
    f = [x for x in v.findings if x.kind == "batch_size_swept"]
    assert len(f) == 1 and f[0].severity == KINDS["batch_size_swept"][1] and "R10" in f[0].message
    runs = [
        trial(f"t{i}", 0.2, hparams={"batch_size": 32 * (i + 1), "lr": 1e-3 * (i + 1)})
        for i in range(3)
    ]
    v = diagnose_study(study(runs, {"batch_size": [32, 64, 96], "lr": [1e-3, 2e-3, 3e-3]}))
    assert "batch_size_swept" not in kinds(v)


def test_verdict_findings_are_findings() -> None:
    v = diagnose_study(lr_study([1e-4, 1e-3, 1e-2], [0.5, 0.4, 0.2]))
    assert all(isinstance(f, Finding) and f.rule in f.message for f in v.findings)
