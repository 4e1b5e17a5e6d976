"""The jobs panel: the remedy studies the app launched or found running again (issue 6 item 6).

The panel draws `JobView`s, plain snapshots that a thread worker makes from the Supervisor's
jobs (reading a child's output means reading files, which the UI thread does not do). Every
string in a view came from a child or a file: it is drawn inertly (tui.sanitize, Text objects),
never as markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui import sanitize
from tui.logs.safe_io import load_json
from tui.remedy.plan import Plan
from tui.remedy.supervise import Job, state_dir, tail_lines

LINES_SHOWN = 2  # last lines of output under each job
STATE_GLYPHS: dict[str, tuple[str, str]] = {
    "running": ("●", "green"),
    "exited": ("✓", "grey62"),
    "failed": ("!", "bold red"),
    "stopped": ("■", "grey62"),
    "lost": ("?", "yellow"),
}
EMPTY = "no launched runs — w / c / e on a run or study plans one"


@dataclass(frozen=True)
class JobView:
    """What the panel shows of one job (made in a worker thread, drawn in the UI thread)."""

    id: str
    kind: str
    state: str
    pid: int
    exit_code: int | None = None
    signal: str | None = None
    study_dir: str | None = None
    lines: tuple[str, ...] = ()
    adopted: bool = False
    stopping: bool = False


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = load_json(path)  # no FIFO, no symlink, size-capped (tui/logs/safe_io.py)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def job_lines(job: Job, n: int = LINES_SHOWN) -> list[str]:
    """The last lines of a job's output. A study found again after a restart has no log of
    its own that we know of (the earlier app's log is in its state folder under a job id we do
    not have), so we show the output.log of its newest trial instead."""
    lines = job.last_lines(n)
    study = job.study_dir
    if lines or study is None or not (study / "study.json").is_file():
        return lines
    try:
        trials = sorted(p for p in study.iterdir() if p.is_dir())
    except OSError:
        return []
    for trial in reversed(trials):
        log = trial / "output.log"
        if log.is_file():
            return tail_lines(log, n)
    return []


# run.json / study.json status -> the panel's state for a found-again job that ended
ENDED = {"finished": "exited", "diverged": "exited", "failed": "failed", "stopped": "stopped"}


def _ended_as(job: Job) -> tuple[str, int | None]:
    """A job found again is not our child: when it ends we get no exit status, and the
    Supervisor calls it "lost". What it wrote in its study.json / run.json says more."""
    study = job.study_dir
    if job.proc is not None or job.state != "lost" or study is None:
        return job.state, job.exit_code
    for name in ("study.json", "run.json"):
        data = _read_json(study / name)
        if data is not None and data.get("status") in ENDED:
            code = data.get("exit_code")
            return ENDED[data["status"]], code if isinstance(code, int) else None
    return job.state, job.exit_code


def view_of(job: Job, n: int = LINES_SHOWN) -> JobView:
    """A snapshot of `job` (reads its output: call from a worker thread)."""
    study = job.study_dir
    state, exit_code = _ended_as(job)
    return JobView(
        id=job.id,
        kind=job.kind,
        state=state,
        pid=job.pid,
        exit_code=exit_code,
        signal=job.signal,
        study_dir=str(study) if study is not None else None,
        lines=tuple(job_lines(job, n)),
        adopted=job.proc is None,
        stopping=job.stopping and job.state == "running",
    )


def adoption_source() -> list[Path]:
    """Where the jobs to find again come from: the job records in the user's state folder,
    and nothing else (issue 14 item 8: a run.json in a watched tree never names a process)."""
    try:
        return sorted(state_dir().glob("*.json"))
    except OSError:
        return []


# -- messages ---------------------------------------------------------------------------------


@dataclass
class PlanReady(Message):
    """A remedy plan was computed (in a worker) for the run or study under the cursor."""

    kind: str
    target_id: str
    plan: Plan
    why: Text


@dataclass
class StudyLaunched(Message):
    """A confirmed plan was launched as a child process."""

    job_id: str
    kind: str
    out: Path
    pid: int


@dataclass
class JobsPolled(Message):
    """The Supervisor was polled: every job's view, and the ids of jobs that changed state."""

    views: list[JobView]
    changed: list[str] = field(default_factory=list)

    @property
    def running(self) -> int:
        return sum(v.state == "running" for v in self.views)


@dataclass
class JobsAdopted(Message):
    """Running children of an earlier app start were found again through their job records."""

    job_ids: list[str]


# -- the panel --------------------------------------------------------------------------------


def job_text(view: JobView) -> Text:
    glyph, style = STATE_GLYPHS.get(view.state, ("?", ""))
    t = Text(glyph, style=style)
    t.append(" ")
    t.append(sanitize.clean(view.kind, 20), style="bold")
    t.append("  ")
    if view.stopping:
        t.append("stopping…", style="yellow")
    elif view.state == "running":
        t.append("running", style="green")
    elif view.signal:
        t.append(f"{view.state} ({view.signal})", style=style)
    elif view.exit_code is not None:
        t.append(f"{view.state} (exit {view.exit_code})", style=style)
    else:
        t.append(view.state, style=style)
    t.append(f"  pid {view.pid}", style="grey62")
    if view.adopted:
        t.append("  found again", style="grey50")
    t.append("  → ")
    t.append(sanitize.clean(view.study_dir or "(study folder not created yet)", 120))
    for line in view.lines:
        t.append("\n    ")
        t.append(sanitize.clean(line, 150), style="grey50")
    return t


class JobsPanel(OptionList):
    """One option per job; the highlighted one is what `k` stops."""

    def __init__(self, *, id: str | None = None) -> None:
        # built with its placeholder: no relayout at mount
        super().__init__(Option(Text(EMPTY, style="grey50"), disabled=True), markup=False, id=id)
        self.border_title = "jobs"
        self.views: list[JobView] = []
        self._shown: tuple[JobView, ...] = ()

    def show(self, views: list[JobView]) -> None:
        """Redraw only when a view changed; the highlight stays on the same job."""
        key = tuple(views)
        if key == self._shown:
            return
        keep = self.selected_id
        self._shown = key
        self.views = list(views)
        self.clear_options()
        if not views:
            self.add_option(Option(Text(EMPTY, style="grey50"), disabled=True))
            self.border_subtitle = ""
            return
        self.add_options(Option(job_text(v), id=v.id) for v in views)
        ids = [v.id for v in views]
        self.highlighted = ids.index(keep) if keep in ids else 0
        running = sum(v.state == "running" for v in views)
        self.border_subtitle = f"{running} running · k: stop" if running else ""

    @property
    def selected_id(self) -> str | None:
        i = self.highlighted
        if i is None or not self.views or i >= len(self.views):
            return None
        return self.views[i].id

    def select_job(self, job_id: str) -> None:
        ids = [v.id for v in self.views]
        if job_id in ids:
            self.highlighted = ids.index(job_id)
