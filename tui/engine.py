"""The worker side of the app: reading, diagnosing, and the messages that say what happened.

One thread (the app's `follow` worker) owns an `Engine`: it calls `step()`, which reads what
the files gained (tui.logs.workspace), runs the streaming detectors on the runs that grew
(tui.diagnose), re-judges the studies those runs belong to, and returns small messages. The app
posts them to itself; widgets only draw what the messages say. Nothing here touches a widget,
and nothing in the UI thread touches the Workspace (its dicts change under this thread).

This is also the one adapter between the app and the diagnosis modules (tui.diagnose).
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message

from tui.config import Config
from tui.diagnose.bestpoint import best_point
from tui.diagnose.findings import Finding
from tui.diagnose.run_checks import RunDetectors
from tui.diagnose.study import StudyVerdict, adjust_run_findings, diagnose_study
from tui.logs.model import Run, Study
from tui.logs.workspace import Workspace

STUDY_EVERY = 2.0  # seconds between re-judging one study while its trials grow


# -- messages: one per thing that happened ----------------------------------------------------


@dataclass
class RunDiscovered(Message):
    """New runs were found (the Run objects themselves: the UI reads their stores)."""

    runs: list[Run]
    last_write: dict[str, float]  # run id -> Unix time of its newest log write
    # the grouping into studies these runs caused, in the same message so the tree is never
    # drawn with new trials ungrouped (None: unchanged)
    studies: dict[str, Study] | None = None


@dataclass
class StudiesChanged(Message):
    """The grouping of runs into studies changed: study id -> Study (runs in swept order)."""

    studies: dict[str, Study]


@dataclass
class MetricsAppended(Message):
    """Runs gained points: run id -> points added. Coalesced: a queued one absorbs the next,
    so a UI that falls behind handles one message for many reads."""

    updated: dict[str, int]
    when: float = 0.0  # Unix time the data was read

    def can_replace(self, message: Message) -> bool:
        # Textual drops `self` and dispatches the pending `message` when this returns True:
        # fold our counts into it first so nothing is lost.
        if isinstance(message, MetricsAppended):
            for k, v in self.updated.items():
                message.updated[k] = message.updated.get(k, 0) + v
            return True
        return False


@dataclass
class FindingRaised(Message):
    """The detectors found something new (or changed a finding) in a run."""

    run_id: str
    findings: list[Finding]  # all of the run's findings now, not only the new ones
    stats: dict[str, Any] = field(default_factory=dict)  # e.g. p90 clip threshold (R23)


@dataclass
class RunStatsChanged(Message):
    """Detector statistics of the runs that gained points without a new finding: run id ->
    stats (sent every round they grow; FindingRaised carries them otherwise)."""

    stats: dict[str, dict[str, Any]]


@dataclass
class StudyPoint:
    """One trial on the hyperparameter axis (R5, R16)."""

    run_id: str
    value: float  # the swept hyperparameter's value
    best: float | None  # best validation value (R1), else best training loss
    infeasible: bool


@dataclass
class StudyDiagnosed(Message):
    study_id: str
    param: str | None
    points: list[StudyPoint]
    best_run: str | None
    findings: list[Finding]


@dataclass
class RunStatusChanged(Message):
    """A runner's run.json changed (status, exit code)."""

    run_ids: list[str]


@dataclass
class ReadErrors(Message):
    errors: list[tuple[str, str]]  # (path, message)


@dataclass
class WatchChanged(Message):
    """How the files are watched changed (inotify, or polling and why: tui.watch): the
    header says it."""

    reason: str


# -- run state (the tree's glyph) -------------------------------------------------------------

GLYPHS: dict[str, tuple[str, str]] = {
    "live": ("●", "green"),
    "finished": ("✓", "grey62"),
    "diverged": ("✗", "red"),
    "stalled": ("◌", "yellow"),
    "failed": ("!", "red"),
    "stopped": ("■", "grey62"),
}


def run_state(
    run: Run, diverged: bool, last_write: float | None, now: float, stalled_after: float
) -> str:
    """live / finished / diverged / stalled / failed / stopped.

    The runner's run.json says finished, failed or stopped when it knows; otherwise a run that
    wrote within `stalled_after` seconds is live, and one that did not is stalled, unless it
    reached its planned length (then it finished: logs of other tools have no run.json)."""
    status = run.status
    if diverged or status == "diverged":
        return "diverged"
    if status in ("finished", "failed", "stopped"):
        return status
    if last_write is not None and now - last_write < stalled_after:
        return "live"
    if status == "running":
        return "stalled"
    last = run.max_step
    total = run.total_steps
    if last is not None and total and last + 1 >= total:
        return "finished"
    return "stalled"


def newest_mtime(folder: Path) -> float | None:
    """The newest modification time among the files directly in a run folder (one scandir)."""
    best: float | None = None
    try:
        with os.scandir(folder) as it:
            for entry in it:
                try:
                    if entry.is_file(follow_symlinks=False):
                        m = entry.stat(follow_symlinks=False).st_mtime
                        best = m if best is None or m > best else best
                except OSError:
                    continue
    except OSError:
        return None
    return best


# -- the engine --------------------------------------------------------------------------------


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class Engine:
    """Reads and diagnoses; called from ONE worker thread only."""

    def __init__(self, roots: list[Path], config: Config | None = None) -> None:
        self.config = config or Config()
        self.workspace = Workspace(roots, self.config)
        self.detectors: dict[str, RunDetectors] = {}
        self.findings: dict[str, list[Finding]] = {}  # the detectors' own, per run
        self._verdicts: dict[str, tuple[Study, StudyVerdict]] = {}  # the latest, per study
        self._posted: dict[str, list[Finding]] = {}  # what the app was sent, per run
        self._study_due: dict[str, float] = {}  # study id -> monotonic time it may run again
        self._study_dirty: set[str] = set()
        # roots asked for by the UI thread (a study launched outside every watched root);
        # attached by the worker thread at its next step, the only thread touching the Workspace
        self._new_roots: list[Path] = []
        self._roots_lock = threading.Lock()
        self.roots_changed = False  # set by step() when it attached roots: re-watch them

    # -- roots -------------------------------------------------------------------------------
    def add_root(self, path: Path) -> None:
        """Follow `path` too (thread-safe: any thread may ask; the next step() attaches it)."""
        with self._roots_lock:
            self._new_roots.append(Path(path))

    @property
    def roots(self) -> list[Path]:
        return list(self.workspace.roots)

    def _attach_new_roots(self) -> bool:
        with self._roots_lock:
            new, self._new_roots = self._new_roots, []
        ws = self.workspace
        known = {r.resolve() for r in ws.roots}
        attached = False
        for path in new:
            key = path.resolve()
            if key in known:
                continue
            known.add(key)
            ws.add_root(path)
            attached = True
        return attached

    def _detect(self, run: Run) -> tuple[list[Finding], dict[str, Any]]:
        det = self.detectors.get(run.id)
        if det is None:
            det = RunDetectors(run.total_steps, run.hparams)
            self.detectors[run.id] = det
        try:
            new = list(det.update(run.store))
            stats = det.stats()
        except Exception as exc:  # a detector bug must not stop the reading
            new = []
            stats = {"error": f"{type(exc).__name__}: {exc}"}
        if new:
            # a finding can be replaced as evidence grows (more outlier episodes, a divergence
            # confirmed): the run's list is the detectors' current one, never an accumulation
            self.findings[run.id] = list(det.findings)
            return list(det.findings), stats
        return new, stats

    def step(self, full: bool, paths: set[str] | None = None) -> list[Message]:
        """One round: `full` walks the roots for new runs and files first (cheap enough every
        few seconds; the watcher asks for it when something was created). `paths`, when
        known, are the only files that changed: only they are read."""
        ws = self.workspace
        self.roots_changed = self._attach_new_roots()
        full = full or self.roots_changed
        changes = ws.refresh() if full else ws.poll(paths)
        out: list[Message] = []
        now = time.time()
        if changes.new_runs:
            runs = [ws.runs[r] for r in changes.new_runs if r in ws.runs]
            last = {r.id: t for r in runs if (t := newest_mtime(r.path)) is not None}
            studies = dict(ws.studies) if changes.studies_changed else None
            out.append(RunDiscovered(runs, last, studies))
        elif changes.studies_changed:
            out.append(StudiesChanged(dict(ws.studies)))
        if changes.studies_changed:
            self._study_dirty.update(ws.studies)
        if changes.new_errors:
            out.append(ReadErrors(list(changes.new_errors)))
        if changes.status_changed:
            out.append(RunStatusChanged(list(changes.status_changed)))
        stats_changed: dict[str, dict[str, Any]] = {}
        for run_id in changes.updated:
            run = ws.runs.get(run_id)
            if run is None:
                continue
            new, stats = self._detect(run)
            if new:
                out.append(self._raised(run_id, self._shown_findings(run_id), stats))
            elif stats:
                stats_changed[run_id] = stats
        if stats_changed:
            out.append(RunStatsChanged(stats_changed))
        if changes.updated:
            out.append(MetricsAppended(dict(changes.updated), now))
            for sid, study in ws.studies.items():
                if any(r.id in changes.updated for r in study.runs):
                    self._study_dirty.add(sid)
        out.extend(self._diagnose_studies(force=full and changes.studies_changed))
        return out

    def _diagnose_studies(self, force: bool) -> list[Message]:
        out: list[Message] = []
        mono = time.monotonic()
        for sid in list(self._study_dirty):
            study = self.workspace.studies.get(sid)
            if study is None:
                self._study_dirty.discard(sid)
                continue
            if not force and mono < self._study_due.get(sid, 0.0):
                continue  # still growing: judged again at most every STUDY_EVERY seconds
            self._study_dirty.discard(sid)
            self._study_due[sid] = mono + STUDY_EVERY
            out.append(self.study_view(study))
            # the verdict can re-judge its trials' findings (a diverged trial of a sweep
            # becomes info): send those whose shown form changed
            for run in study.runs:
                if run.id not in self.findings:
                    continue
                shown = self._shown_findings(run.id)
                if shown != self._posted.get(run.id):
                    out.append(self._raised(run.id, shown, {}))
        return out

    def _shown_findings(self, run_id: str) -> list[Finding]:
        """A run's findings as its study's latest verdict judges them (DESIGN.md: the
        divergence of a trial of a study whose other trials are feasible is info, R12's note),
        as `tunetop check` shows them."""
        found = self.findings.get(run_id, [])
        for sid, study in self.workspace.studies.items():
            if any(r.id == run_id for r in study.runs):
                judged = self._verdicts.get(sid)
                if judged is not None:
                    return adjust_run_findings(judged[0], judged[1], {run_id: found})[run_id]
                break
        return list(found)

    def _raised(self, run_id: str, shown: list[Finding], stats: dict[str, Any]) -> FindingRaised:
        """The message that sends a run's findings as shown, remembered as sent."""
        self._posted[run_id] = shown
        return FindingRaised(run_id, list(shown), stats)

    def study_view(self, study: Study) -> StudyDiagnosed:
        findings: list[Finding] = []
        best_run: str | None = None
        infeasible: set[str] = set()
        try:
            verdict = diagnose_study(study)
            self._verdicts[study.id] = (study, verdict)
            findings = list(verdict.findings)
            best_run = verdict.best_run
            infeasible = set(verdict.infeasible_runs)
        except Exception as exc:  # keep the app up; the status line counts read errors
            self.workspace.errors.append((str(study.path), f"study diagnosis failed: {exc}"))
        param = study.param
        points: list[StudyPoint] = []
        values = study.swept.get(param, []) if param else []
        for run, value in zip(study.runs, values, strict=False):
            v = _finite(value)
            if v is None:
                continue
            try:
                bp = best_point(run)
            except Exception:  # one odd trial must not hide the others
                bp = None
            best = _finite(bp.get("value")) if bp else None
            points.append(StudyPoint(run.id, v, best, run.id in infeasible))
        return StudyDiagnosed(study.id, param, points, best_run, findings)
