"""`tunetop check`: read every run under PATH once and print what the playbook says.

The JSON form is a contract (DESIGN.md "tunetop check --json"): scripts and CI parse it.
Exit codes: 0 when no finding is at or above --fail-on, 1 when one is, 2 when PATH itself
cannot be read (files that cannot be read go to `errors` and do not change the exit code).

Never a traceback, never a hang (issue 14): files under PATH are untrusted input. A run.json
value is checked for its shape before diagnosis uses it (tui.logs.runjson; the hyperparameters
read beside it in `validate_hparams`), a failure while reading or diagnosing one run or study
costs only that one (an `errors` entry naming the exception in one line; every other run still
reported), and an internal error of check itself exits 2, never 1 (1 means a finding at
--fail-on). Every string printed goes through the sanitiser (tui/sanitize.py): control
characters, C1 included, and the lone surrogates of file names that are not UTF-8 are shown as
escapes, so any output encoding can write them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tui.config import CONFIG_NAME, Config, load_config
from tui.diagnose.findings import Finding, jsonable, severity_rank
from tui.logs.model import Run, Study
from tui.logs.runjson import STEP_FIELDS, is_step_count
from tui.logs.safe_io import UnsafeFile, load_toml
from tui.logs.workspace import Workspace
from tui.sanitize import clean, json_safe


def inert(value: object) -> str:
    return clean(value, limit=100_000)


def describe(exc: BaseException) -> str:
    """An exception as one inert line: its type and message."""
    return clean(f"{type(exc).__name__}: {exc}", limit=300)


def validate_hparams(run: Run) -> list[str]:
    """The hyperparameters read beside a run (hparams.yaml, config.json, ...) made safe to
    plan with: a step count of the wrong shape is dropped, each named in one line. run.json
    itself was checked as it was read (tui.logs.runjson)."""
    problems: list[str] = []
    if isinstance(run.hparams, Mapping):
        for key in STEP_FIELDS:
            value = run.hparams.get(key)
            if value is not None and not is_step_count(value):
                bad = clean(repr(run.hparams.pop(key)), 40)
                problems.append(f"hyperparameter {key} = {bad} is no step count: ignored")
    return problems


class _GuardedWorkspace(Workspace):
    """A Workspace where one run folder that fails to load costs only itself (a parser
    crash on a planted file becomes that folder's error entry)."""

    def _add_layout(self, root_index: int, layout: Any, changes: Any) -> None:  # type: ignore[override]
        try:
            super()._add_layout(root_index, layout, changes)
        except Exception as exc:  # untrusted input must not end the check
            self._error(str(layout.folder), f"not read: {describe(exc)}", changes)


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


def analyse(
    ws: Workspace, errors: list[tuple[str, str]] | None = None
) -> tuple[list[RunReport], list[StudyReport]]:
    """Diagnose every run and study of a workspace (R1-R24 as tui.diagnose implements them).
    A run or study whose diagnosis fails gets no findings and an entry in `errors` (when
    given; else the failure is raised)."""
    from tui.diagnose.bestpoint import best_point
    from tui.diagnose.run_checks import diagnose_run
    from tui.diagnose.study import adjust_run_findings, diagnose_study

    def failed(where: Path, what: str, exc: Exception) -> None:
        if errors is None:
            raise exc
        errors.append((str(where), f"{what} failed: {describe(exc)}"))

    reports = {rid: RunReport(run) for rid, run in sorted(ws.runs.items())}
    for rep in reports.values():
        try:
            rep.findings = diagnose_run(rep.run)
            rep.best = best_point(rep.run)
        except Exception as exc:
            rep.findings, rep.best = [], None
            failed(rep.run.path, "diagnosis", exc)
    studies: list[StudyReport] = []
    for _sid, study in sorted(ws.studies.items()):
        try:
            run_findings = {r.id: reports[r.id].findings for r in study.runs}
            verdict = diagnose_study(study)
            adjusted = adjust_run_findings(study, verdict, run_findings)
        except Exception as exc:
            failed(study.path, "study diagnosis", exc)
            studies.append(StudyReport(study))
            continue
        for rid, findings in adjusted.items():
            reports[rid].findings = findings
        studies.append(
            StudyReport(study, verdict.best_run, list(verdict.infeasible_runs), verdict.findings)
        )
    return list(reports.values()), studies


def _load_config(root: Path, errors: list[tuple[str, str]]) -> Config:
    """The config for PATH. The root's tunetop.toml is untrusted like any file under PATH: it
    is opened the safe way first (a FIFO, a symlink, a 10,000-deep table or a huge file is
    reported and the user's own config used alone), so loading it cannot hang or crash."""
    folder = root if root.is_dir() else root.parent
    local = folder / CONFIG_NAME
    use_root = True
    if os.path.lexists(local):
        try:
            load_toml(local)
        except UnsafeFile as exc:
            errors.append((str(local), exc.reason))
            use_root = False
    try:
        cfg = load_config(folder if use_root else None)
    except Exception as exc:
        errors.append((str(local), f"config not read: {describe(exc)}"))
        return Config()
    errors.extend((str(folder), p) for p in getattr(cfg, "problems", ()))
    return cfg


def run_check(path: str) -> CheckReport:
    root = Path(path)
    errors: list[tuple[str, str]] = []
    ws = _GuardedWorkspace([root], _load_config(root, errors))
    try:
        ws.refresh()  # each reader reads its file to the end, in bounded windows
    finally:
        ws.close()
    for run in ws.runs.values():
        for problem in validate_hparams(run):
            errors.append((str(run.path), problem))
    runs, studies = analyse(ws, errors)
    return CheckReport(path, runs, studies, [*ws.errors, *errors])


def run_json(rep: RunReport) -> dict[str, Any]:
    run = rep.run
    try:
        total_steps: int | None = run.total_steps
    except (ArithmeticError, TypeError, ValueError):
        total_steps = None
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
        "total_steps": total_steps,
        "max_step": run.max_step,
        "best": rep.best,
        "findings": [f.to_json() for f in rep.findings],
        # where the step went back (a restarted run): later points superseded earlier ones
        "restarts": [{"step": r.step, "previous_max": r.previous_max} for r in run.store.restarts],
    }


def _run_json_or_stub(rep: RunReport) -> dict[str, Any]:
    """run_json, or the run's id with empty fields where building it failed (the failure is
    in the report's errors: the diagnosis of that run failed the same way)."""
    try:
        return run_json(rep)
    except Exception as exc:
        return {
            "id": rep.run.id,
            "format": rep.run.format,
            "metrics": {},
            "hparams": {},
            "total_steps": None,
            "max_step": None,
            "best": None,
            "findings": [],
            "restarts": [],
            "error": describe(exc),
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
    """The JSON object, every string valid UTF-8 (lone surrogates of file names that are not
    UTF-8 shown as `\\xNN`)."""
    return json_safe(
        {
            "root": report.root,
            "runs": [run_json(r) for r in report.runs],
            "studies": [study_json(s) for s in report.studies],
            "errors": [{"path": p, "message": m} for p, m in report.errors],
        }
    )


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
                f"  best {inert(rep.best['metric'])} {rep.best['value']:.4g} at step "
                f"{rep.best['step']} ({rep.best['fraction']:.0%})"
            )
        w(
            f"\n{inert(run.id)}  [{inert(run.format)}]  steps to {run.max_step}/{run.total_steps}"
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
    try:
        return _main(path, as_json, fail_on, out, after_text)
    except BrokenPipeError:
        # `| head` closed the pipe: the reader has what it wanted; no traceback at exit
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 0
    except Exception as exc:  # 2, never 1: 1 means a finding at --fail-on
        print(f"tunetop check: internal error: {describe(exc)}", file=sys.stderr)
        return 2


def _main(
    path: str,
    as_json: bool,
    fail_on: str,
    out: TextIO,
    after_text: Callable[[CheckReport, TextIO], object] | None = None,
) -> int:
    root = Path(path)
    shown = inert(path)
    if not root.exists():
        print(f"tunetop check: {shown}: no such file or folder", file=sys.stderr)
        return 2
    if not os.access(root, os.R_OK) or (root.is_dir() and not os.access(root, os.X_OK)):
        print(f"tunetop check: {shown}: permission denied", file=sys.stderr)
        return 2
    try:
        if root.is_dir():
            os.listdir(root)
    except OSError as exc:
        print(f"tunetop check: {shown}: {inert(exc.strerror)}", file=sys.stderr)
        return 2
    report = run_check(path)
    if as_json:
        # ensure_ascii: the text is ASCII whatever stdout's encoding; json_safe: valid UTF-8
        json.dump(report_json(report), out, indent=1, allow_nan=False, ensure_ascii=True)
        out.write("\n")
    else:
        print_text(report, out)
        if after_text is not None:  # `--plot` (tui/cli.py): the flagged runs' curves
            after_text(report, out)
    threshold = severity_rank(fail_on)
    failing = [f for f in report.all_findings() if severity_rank(f.severity) >= threshold]
    return 1 if failing else 0
