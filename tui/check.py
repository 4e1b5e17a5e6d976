"""`tunetop check`: read every run under PATH once and print what the playbook says.

The JSON form is a contract (DESIGN.md "tunetop check --json"): scripts and CI parse it.
Exit codes: 0 when no finding is at or above --fail-on, 1 when one is, 2 when PATH itself
cannot be read (files that cannot be read go to `errors` and do not change the exit code).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tui.config import load_config
from tui.diagnose.findings import Finding, jsonable, severity_rank
from tui.logs.model import Run, Study
from tui.logs.workspace import Workspace
from tui.sanitize import clean


def inert(value: object) -> str:
    return clean(value, limit=100_000)


@dataclass
class RunReport:
    run: Run
    findings: list[Finding] = field(default_factory=list)
    best: dict[str, Any] | None = None


@dataclass
class StudyReport:
    study: Study
    best_run: str | None = None
    infeasible_runs: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


@dataclass
class CheckReport:
    root: str
    runs: list[RunReport]
    studies: list[StudyReport]
    errors: list[tuple[str, str]]

    def all_findings(self) -> list[Finding]:
        out = [f for r in self.runs for f in r.findings]
        out += [f for s in self.studies for f in s.findings]
        return out


def analyse(ws: Workspace) -> tuple[list[RunReport], list[StudyReport]]:
    """Diagnose every run and study of a workspace (R1-R24 as tui.diagnose implements them)."""
    from tui.diagnose.bestpoint import best_point
    from tui.diagnose.run_checks import diagnose_run
    from tui.diagnose.study import adjust_run_findings, diagnose_study

    reports = {rid: RunReport(run) for rid, run in sorted(ws.runs.items())}
    for rep in reports.values():
        rep.findings = diagnose_run(rep.run)
        rep.best = best_point(rep.run)
    studies: list[StudyReport] = []
    for _sid, study in sorted(ws.studies.items()):
        run_findings = {r.id: reports[r.id].findings for r in study.runs}
        verdict = diagnose_study(study)
        adjusted = adjust_run_findings(study, verdict, run_findings)
        for rid, findings in adjusted.items():
            reports[rid].findings = findings
        studies.append(
            StudyReport(study, verdict.best_run, list(verdict.infeasible_runs), verdict.findings)
        )
    return list(reports.values()), studies


def run_check(path: str) -> CheckReport:
    root = Path(path)
    ws = Workspace([root], load_config(root if root.is_dir() else root.parent))
    ws.refresh()
    runs, studies = analyse(ws)
    ws.close()
    return CheckReport(path, runs, studies, list(ws.errors))


def run_json(rep: RunReport) -> dict[str, Any]:
    run = rep.run
    metrics: dict[str, Any] = {}
    for name in run.store.names():
        s = run.store.series(name)
        if len(s):
            metrics[name] = {
                "count": len(s),
                "first_step": int(s.steps[0]),
                "last_step": int(s.steps[-1]),
            }
    return {
        "id": run.id,
        "format": run.format,
        "metrics": metrics,
        "hparams": {k: jsonable(v) for k, v in run.hparams.items()},
        "total_steps": run.total_steps,
        "max_step": run.max_step,
        "best": rep.best,
        "findings": [f.to_json() for f in rep.findings],
        # where the step went back (a restarted run): later points superseded earlier ones
        "restarts": [{"step": r.step, "previous_max": r.previous_max} for r in run.store.restarts],
    }


def study_json(rep: StudyReport) -> dict[str, Any]:
    study = rep.study
    param = study.param
    return {
        "id": study.id,
        "runs": [r.id for r in study.runs],
        "param": param,
        "values": [jsonable(v) for v in study.swept.get(param, [])] if param else [],
        "best_run": rep.best_run,
        "infeasible_runs": rep.infeasible_runs,
        "findings": [f.to_json() for f in rep.findings],
    }


def report_json(report: CheckReport) -> dict[str, Any]:
    return {
        "root": report.root,
        "runs": [run_json(r) for r in report.runs],
        "studies": [study_json(s) for s in report.studies],
        "errors": [{"path": p, "message": m} for p, m in report.errors],
    }


def print_text(report: CheckReport, out: TextIO) -> None:
    """The readable form: one block per run, one line per finding. Strings from files are
    drawn inertly (no terminal escape sequence from a log reaches the terminal)."""
    w = out.write
    w(
        f"tunetop check {inert(report.root)}: {len(report.runs)} runs, "
        f"{len(report.studies)} studies, {len(report.errors)} errors\n"
    )
    for rep in report.runs:
        run = rep.run
        counts = ", ".join(f"{inert(n)}={run.store.count(n)}" for n in run.store.names()[:6])
        best = ""
        if rep.best:
            best = (
                f"  best {rep.best['metric']} {rep.best['value']:.4g} at step "
                f"{rep.best['step']} ({rep.best['fraction']:.0%})"
            )
        w(
            f"\n{inert(run.id)}  [{run.format}]  steps to {run.max_step}/{run.total_steps}"
            f"{best}\n    {counts}\n"
        )
        for r in run.store.restarts:
            w(
                f"    restarted at step {r.step} (it had reached {r.previous_max}): later points "
                "supersede earlier ones\n"
            )
        for f in rep.findings:
            w(f"    {inert(f.line())}\n")
    for srep in report.studies:
        study = srep.study
        param = study.param or ("+".join(study.swept) or "-")
        w(
            f"\nstudy {inert(study.id)}: {len(study.runs)} runs, swept {inert(param)}, "
            f"best {inert(str(srep.best_run))}, infeasible {len(srep.infeasible_runs)}\n"
        )
        for f in srep.findings:
            w(f"    {inert(f.line())}\n")
    if report.errors:
        w("\nerrors:\n")
        for p, m in report.errors:
            w(f"    {inert(p)}: {inert(m)}\n")


def main(
    path: str,
    as_json: bool,
    fail_on: str,
    out: TextIO = sys.stdout,
    after_text: Callable[[CheckReport, TextIO], object] | None = None,
) -> int:
    root = Path(path)
    if not root.exists():
        print(f"tunetop check: {path}: no such file or folder", file=sys.stderr)
        return 2
    if not os.access(root, os.R_OK) or (root.is_dir() and not os.access(root, os.X_OK)):
        print(f"tunetop check: {path}: permission denied", file=sys.stderr)
        return 2
    try:
        if root.is_dir():
            os.listdir(root)
    except OSError as exc:
        print(f"tunetop check: {path}: {exc.strerror}", file=sys.stderr)
        return 2
    report = run_check(path)
    if as_json:
        json.dump(report_json(report), out, indent=1, allow_nan=False)
        out.write("\n")
    else:
        print_text(report, out)
        if after_text is not None:  # `--plot` (tui/cli.py): the flagged runs' curves
            after_text(report, out)
    threshold = severity_rank(fail_on)
    failing = [f for f in report.all_findings() if severity_rank(f.severity) >= threshold]
    return 1 if failing else 0
