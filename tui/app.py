"""The dashboard: `tunetop [PATH ...]`.

Threads and messages (DESIGN.md "Shape": files -> readers -> store -> detectors -> findings ->
widgets):

- the watcher (tui.watch) only wakes the `follow` worker: inotify events or a poll interval;
- the `follow` thread worker owns the Engine (tui.engine): it reads the files, runs the
  detectors and posts RunDiscovered, StudiesChanged, MetricsAppended, FindingRaised,
  RunStatsChanged, StudyDiagnosed, RunStatusChanged and ReadErrors, at most a few rounds a
  second however fast the runs write;
- the UI thread handles those messages: it updates the tree labels that changed and asks the
  visible plots that show an updated run to redraw. Plots cache their picture by the versions of
  the runs they show, so nothing is redrawn that did not change, and there is no redraw timer:
  idle is idle.

Remedies (issue 6): w / c / e compute a plan (tui.remedy.plan) in a thread worker and show it
in a modal (tui.widgets.remedy_modal); a confirmed plan is launched by the Supervisor
(tui.remedy.supervise) in another worker. While a child runs, a low-rate timer has a worker
poll the Supervisor (reaping what ended) and post JobsPolled for the jobs panel; with nothing
running there is no timer. Stopping (k, or quitting with "stop them all") blocks for the grace
period, so it runs in a thread worker too: the UI never waits on a child.
"""

from __future__ import annotations

import functools
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Static, Tree
from textual.worker import Worker, WorkerState, get_current_worker

from tui import sanitize
from tui.config import Config, load_config
from tui.diagnose.findings import Finding
from tui.engine import (
    Engine,
    FindingRaised,
    MetricsAppended,
    ReadErrors,
    RunDiscovered,
    RunStatsChanged,
    RunStatusChanged,
    StudiesChanged,
    StudyDiagnosed,
    WatchChanged,
    run_state,
)
from tui.logs.model import Run, Study
from tui.remedy.plan import Plan
from tui.remedy.supervise import Job, Supervisor
from tui.watch import Watcher
from tui.widgets.findings_panel import FindingsPanel, Row
from tui.widgets.jobs import (
    JobsAdopted,
    JobsPanel,
    JobsPolled,
    PlanReady,
    StudyLaunched,
    adoption_source,
    view_of,
)
from tui.widgets.plots import (
    HistogramPlot,
    HParamPlot,
    MetricPlot,
    PlotSettings,
    SmoothCache,
    StudyAxis,
)
from tui.widgets.remedy_modal import RemedyModal
from tui.widgets.run_tree import NodeRef, RunTree, run_label
from tui.widgets.screens import ConfirmScreen, HelpScreen, QuitScreen

# seconds between two read rounds: a burst of writes is read in one go, and a run logging 100
# steps/s costs 3 redraws a second, not 100 (latency stays well under the 500 ms asked)
MIN_ROUND = 0.4  # seconds: at most 2.5 rounds of reading and redrawing a second
SMOOTHING_LEVELS = (0.0, 0.6, 0.9, 0.99)
REMEDY_TITLES = {
    "warmup": "warmup study (R18, R19)",
    "warmup-apply": "warmup applied to the baseline (R20, R21)",
    "clip": "gradient clipping (R22-R24)",
    "probe": "early-instability probe (R15)",
    "extend": "a longer round (R6)",
}
# remedy kind -> the finding kinds that call for it (shown above the plan in the modal)
REMEDY_FINDINGS: dict[str, frozenset[str]] = {
    "warmup": frozenset(
        {
            "divergence",
            "unstable_training",
            "loss_spike",
            "best_at_feasibility_edge",
            "warmup_too_long",
        }
    ),
    "warmup-apply": frozenset({"divergence", "unstable_training", "loss_spike"}),
    "clip": frozenset(
        {"grad_norm_outlier", "clipping_too_aggressive", "loss_spike", "unstable_training"}
    ),
    "probe": frozenset({"unstable_training", "divergence", "best_at_feasibility_edge"}),
}
JOBS_POLL = 1.0  # seconds between two polls of the Supervisor, only while a child runs
# stopping waits this long after SIGTERM before SIGKILL: longer than the runner's own grace
# for its trials (TUNETOP_STOP_GRACE, 10 s), so a study can stop its trials (each in a session
# of its own) before it is killed itself and they are orphaned
STOP_GRACE = float(os.environ.get("TUNETOP_STOP_GRACE", "10")) + 5.0


def _while_running(handler: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """Worker messages still queued when the app shuts down find its widgets gone (a
    NoMatches at exit): they are dropped then, there is nothing left to show them on."""

    @functools.wraps(handler)
    def guarded(self: Any, message: Any) -> None:
        if self.is_running:
            handler(self, message)

    return guarded


class TunetopApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "tunetop"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help"),
        Binding("slash", "filter", "filter"),
        Binding("space", "mark", "overlay"),
        Binding("s", "smoothing", "smooth"),
        Binding("y", "log_y", "log y"),
        Binding("o", "outlier", "p5-p95"),
        Binding("x", "x_axis", "x axis"),
        Binding("plus,equals_sign", "zoom(0.5)", "zoom", key_display="+/-"),
        Binding("minus", "zoom(2.0)", "zoom out", show=False),
        Binding("left_square_bracket", "pan(-0.25)", "pan", key_display="[/]"),
        Binding("right_square_bracket", "pan(0.25)", "pan right", show=False),
        Binding("0", "reset_zoom", "reset zoom", show=False),
        Binding("w", "remedy('warmup')", "warmup"),
        Binding("c", "remedy('clip')", "clip"),
        Binding("e", "remedy('probe')", "probe"),
        Binding("l", "remedy('extend')", "longer"),
        Binding("k", "stop_job", "stop"),
    ]
    LAUNCHING_ACTIONS = frozenset({"remedy", "stop_job"})

    def __init__(
        self,
        paths: list[Path],
        *,
        poll: float | None = None,
        readonly: bool = False,
        smoothing: float = 0.6,
        config: Config | None = None,
        supervisor: Supervisor | None = None,
    ) -> None:
        super().__init__()
        self.paths = [Path(p) for p in paths] or [Path(".")]
        self.config = config or Config()
        self.readonly = readonly or self.config.readonly
        self.poll_interval = poll if poll is not None else (self.config.poll or None)
        levels = sorted({*SMOOTHING_LEVELS, float(smoothing)})
        self.smoothing_levels = tuple(levels)
        self.settings = PlotSettings(smoothing=float(smoothing))
        # state fed by the worker's messages (the UI never touches the Workspace)
        self.runs: dict[str, Run] = {}
        self.studies: dict[str, Study] = {}
        self.findings: dict[str, list[Finding]] = {}
        self.stats: dict[str, dict[str, Any]] = {}
        self.study_views: dict[str, StudyDiagnosed] = {}
        self.last_write: dict[str, float] = {}
        self.errors: list[tuple[str, str]] = []
        self.states: dict[str, str] = {}
        self.marked: list[str] = []
        self.cursor: NodeRef | None = None
        self.filter: re.Pattern[str] | None = None
        self.rounds = 0  # read rounds handled (tests wait on it)
        self.smooth_cache = SmoothCache()
        self._stop = threading.Event()
        self.engine: Engine | None = None
        self.watcher: Watcher | None = None
        # children: launched here, handed over (tunetop demo), or found again from their job records
        self.supervisor = supervisor or Supervisor()
        self.jobs_polls = 0  # JobsPolled handled (tests wait on it)
        self._jobs_timer: Timer | None = None
        self._rooted: set[str] = set()  # jobs whose study folder is known to be followed
        self._quitting = False

    # -- layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Input(placeholder="filter runs (regex)", id="filter")
                yield RunTree(id="runs")
            with Vertical(id="main"):
                yield Static(id="status")
                with Grid(id="plots"):
                    cache = self.smooth_cache
                    yield MetricPlot("loss", ("loss", "val_loss"), cache, id="plot-loss")
                    yield MetricPlot("grad_norm", ("grad_norm",), cache, id="plot-grad")
                    yield MetricPlot("lr", ("lr",), cache, smooth=False, id="plot-lr")
                    yield HistogramPlot(self.smooth_cache, id="plot-hist")
                    yield HParamPlot(id="plot-hparam")
                yield FindingsPanel(id="findings")
                yield JobsPanel(id="jobs")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#sidebar").border_title = "runs"
        self.query_one("#plot-hparam").display = False
        self.query_one(RunTree).focus()
        self.start_following()  # first: the header names how files are watched
        self._update_status()
        # stalled detection needs the clock: a cheap check that relabels only what changed
        every = max(1.0, min(30.0, self.config.stalled_after / 4))
        self.set_interval(every, self.refresh_states)
        if self.supervisor.jobs:  # children handed over by the caller (tunetop demo)
            self.watch_jobs()
        if adoption_source():  # jobs of an earlier start (or of `tunetop plan --launch`)
            self.adopt_jobs()

    # -- the worker ------------------------------------------------------------------------
    def start_following(self) -> None:
        if self.engine is None:
            self.engine = Engine(self.paths, self.config)
        if self.watcher is None:
            self.watcher = Watcher(self.paths, self.poll_interval, self._watch_changed)
        self._stop.clear()
        self.follow()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="follow",
        description="read the logs and diagnose the runs",
    )
    def follow(self) -> None:
        worker = get_current_worker()
        engine, watcher = self.engine, self.watcher
        assert engine is not None and watcher is not None
        while not self._stop.is_set() and not worker.is_cancelled:
            created, modified = watcher.wait(self._stop)
            if self._stop.is_set() or worker.is_cancelled:
                break
            if not (created or modified):
                continue
            started = time.monotonic()
            for message in engine.step(full=created, paths=watcher.take_paths()):
                self.post_message(message)
            if engine.roots_changed:
                # a study launched outside every watched root: watch the roots again, with it
                watcher.stop()
                watcher = Watcher(engine.roots, self.poll_interval, self._watch_changed)
                self.watcher = watcher
            # a few rounds a second at most: what arrives meanwhile is read in the next round
            self._stop.wait(max(0.0, MIN_ROUND - (time.monotonic() - started)))

    def _watch_changed(self, reason: str) -> None:
        """The watcher switched (any thread): the header says how files are watched now."""
        self.post_message(WatchChanged(reason))

    @_while_running
    def on_watch_changed(self, message: WatchChanged) -> None:
        self._update_status()

    WORKER_FAILURES: ClassVar[dict[str, str]] = {
        "follow": "reading stopped",
        "plan": "planning failed",
        "launch": "launch failed",
        "stop": "stopping failed",
        "jobs": "polling the jobs failed",
        "adopt": "finding running jobs failed",
    }

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """One handler for worker failures: say it; start reading again, poll again."""
        group = event.worker.group
        if event.state != WorkerState.ERROR or group not in self.WORKER_FAILURES:
            return
        error = event.worker.error
        self.notify(
            sanitize.clean(f"{self.WORKER_FAILURES[group]}: {type(error).__name__}: {error}", 300),
            severity="error",
            timeout=10,
            markup=False,  # the error may quote a path or a child's words
        )
        if group == "follow" and not self._stop.is_set():
            self.set_timer(2.0, self.follow)
        if group == "stop" and self._quitting:
            self._quitting = False  # the quit did not happen: say so and stay

    def stop_following(self) -> None:
        self._stop.set()
        if self.watcher is not None:
            self.watcher.stop()

    async def action_quit(self) -> None:
        """Quit; while children run, say so and offer to leave them running or stop them."""
        if self._quitting:
            return
        self.supervisor.poll()  # reap what ended: only what really runs is counted
        running = self.supervisor.running()
        if not running:
            self.exit_now()
            return
        body = Text()
        body.append(f"{len(running)} launched job(s) still running:\n", style="bold")
        for job in running[:8]:
            body.append(f"  {sanitize.clean(job.kind, 20)}  pid {job.pid}  ")
            study = job.out if job.study_dir is None else job.study_dir
            body.append(sanitize.clean(study, 100), style="grey62")
            body.append("\n")
        body.append(
            "\nLeft running, they go on without tunetop (each in a session of its own) and "
            "the next start finds them again."
        )
        if self.readonly:
            body.append("\n--readonly: tunetop cannot stop them.", style="yellow")
        self.push_screen(QuitScreen(body, self.readonly), self._quit_choice)

    def _quit_choice(self, choice: str | None) -> None:
        if choice == "leave":
            self.exit_now()
        elif choice == "stop" and not self.readonly:
            running = self.supervisor.running()
            self._quitting = True
            self.notify(f"stopping {len(running)} job(s)…", timeout=STOP_GRACE + 5)
            self.stop_jobs(running, then_exit=True)

    def exit_now(self) -> None:
        """Leave: whatever already exited is reaped first (no zombies), the rest goes on."""
        self.supervisor.poll()
        self.stop_following()
        self.exit()

    def on_unmount(self) -> None:
        self.stop_following()

    # -- messages from the worker ----------------------------------------------------------
    @_while_running
    def on_run_discovered(self, message: RunDiscovered) -> None:
        for run in message.runs:
            self.runs[run.id] = run
        if message.studies is not None:
            self.studies = message.studies
        self.last_write.update(message.last_write)
        self.rebuild_tree()
        if self.cursor is None:
            first = self.query_one(RunTree).first_ref()
            if first is not None:
                self.select(first)
        self._update_status()

    @_while_running
    def on_studies_changed(self, message: StudiesChanged) -> None:
        self.studies = message.studies
        self.rebuild_tree()
        self._update_status()

    # The engine posts FindingRaised and RunStatsChanged only for runs that gained points, and
    # the same round's MetricsAppended after them: that one redraws the plots (and with the
    # new stats' p90), so the plots are not refreshed twice a round.
    @_while_running
    def on_metrics_appended(self, message: MetricsAppended) -> None:
        self.rounds += 1
        for run_id in message.updated:
            self.last_write[run_id] = message.when or time.time()
        self.refresh_states(message.updated)
        if self.shows_any(message.updated):
            self.refresh_plots()

    @_while_running
    def on_finding_raised(self, message: FindingRaised) -> None:
        self.findings[message.run_id] = list(message.findings)  # the run's current list
        if message.stats:
            self.stats[message.run_id] = message.stats
        self.refresh_states([message.run_id], force=True)
        if self.shows_any([message.run_id]):
            self.refresh_findings()

    @_while_running
    def on_run_stats_changed(self, message: RunStatsChanged) -> None:
        self.stats.update(message.stats)

    @_while_running
    def on_study_diagnosed(self, message: StudyDiagnosed) -> None:
        self.study_views[message.study_id] = message
        if self.cursor == NodeRef("study", message.study_id):
            self.refresh_plots()
            self.refresh_findings()

    @_while_running
    def on_run_status_changed(self, message: RunStatusChanged) -> None:
        self.refresh_states(message.run_ids, force=True)

    @_while_running
    def on_read_errors(self, message: ReadErrors) -> None:
        self.errors.extend(message.errors)
        del self.errors[:-1000]
        self._update_status()
        self.refresh_findings()

    # -- state -> widgets -----------------------------------------------------------------
    def state_of(self, run: Run, now: float | None = None) -> str:
        # a diverged trial is shown diverged even where its study makes the finding info
        diverged = any(f.kind == "divergence" for f in self.findings.get(run.id, []))
        return run_state(
            run,
            diverged,
            self.last_write.get(run.id),
            time.time() if now is None else now,
            self.config.stalled_after,
        )

    def label(self, run: Run, short: bool) -> Text:
        state = self.states.get(run.id) or self.state_of(run)
        self.states[run.id] = state
        return run_label(run, state, self.findings.get(run.id, []), run.id in self.marked, short)

    def study_id_of(self, run_id: str) -> str | None:
        """The study a run is a trial of, if any."""
        for sid, study in self.studies.items():
            if any(r.id == run_id for r in study.runs):
                return sid
        return None

    def refresh_states(self, run_ids: Iterable[str] | None = None, force: bool = False) -> None:
        """Recompute the glyphs (live -> stalled happens with time) and relabel what changed."""
        tree = self.query_one(RunTree)
        now = time.time()
        ids = list(self.runs) if run_ids is None else [r for r in run_ids if r in self.runs]
        for run_id in ids:
            run = self.runs[run_id]
            state = self.state_of(run, now)
            if force or state != self.states.get(run_id):
                self.states[run_id] = state
                tree.update_run(run_id, self.label(run, self.study_id_of(run_id) is not None))

    def rebuild_tree(self) -> None:
        self.query_one(RunTree).rebuild(self.runs, self.studies, self.filter, self.label)

    def runs_of(self, ref: NodeRef) -> list[Run]:
        """The run a tree node stands for, or the trials of a study node."""
        if ref.kind == "run":
            run = self.runs.get(ref.id)
            return [run] if run is not None else []
        study = self.studies.get(ref.id)
        return [r for r in study.runs if r.id in self.runs] if study is not None else []

    def shown_runs(self) -> list[Run]:
        """The marked runs (overlay) if any, else the run or the study under the cursor."""
        if self.marked:
            return [self.runs[r] for r in self.marked if r in self.runs]
        return self.runs_of(self.cursor) if self.cursor is not None else []

    def shows_any(self, run_ids: Iterable[str]) -> bool:
        """Whether one of these runs is on screen (plotted, its findings listed)."""
        shown = {r.id for r in self.shown_runs()}
        return any(r in shown for r in run_ids)

    def shown_study(self) -> str | None:
        """The study under the cursor when the screen shows it as a study (no overlay)."""
        if self.cursor is not None and self.cursor.kind == "study" and not self.marked:
            return self.cursor.id
        return None

    def p90(self, run_id: str) -> float | None:
        """The p90 clip threshold (R23): the detectors' figure, else computed here."""
        v = self.stats.get(run_id, {}).get("p90")  # tui.diagnose.gradnorm.clip_stats
        if isinstance(v, int | float) and math.isfinite(v):
            return float(v)
        run = self.runs.get(run_id)
        if run is None:
            return None
        v = run.store.series("grad_norm").values
        v = v[np.isfinite(v)]
        return float(np.percentile(v, 90)) if v.shape[0] else None

    def refresh_plots(self) -> None:
        runs = self.shown_runs()
        st = self.settings
        for pid in ("#plot-loss", "#plot-grad", "#plot-lr"):
            plot = self.query_one(pid, MetricPlot)
            plot.show(runs, st)
            plot.refresh()  # redrawn only if a shown run's version moved (render's cache key)
        first = runs[0] if runs else None
        p90 = self.p90(first.id) if first is not None else None
        grad = self.query_one("#plot-grad", MetricPlot)
        grad.set_extras({"p90": {first.id: p90} if first is not None else {}})
        study_id = self.shown_study()
        hist = self.query_one("#plot-hist", HistogramPlot)
        hparam = self.query_one("#plot-hparam", HParamPlot)
        hist.display = study_id is None
        hparam.display = study_id is not None
        if study_id is not None:
            view = self.study_views.get(study_id)
            if view is not None:
                hparam.show(StudyAxis(view.param, view.points, view.best_run))
            else:
                s = self.studies.get(study_id)
                hparam.show(StudyAxis(s.param if s else None, [], None))
        else:
            hist.show(first, p90)
            hist.refresh()
        self._update_status()

    def refresh_findings(self) -> None:
        runs = self.shown_runs()
        rows: list[Row] = []
        study_id = self.shown_study()
        view = self.study_views.get(study_id) if study_id is not None else None
        if view is not None:
            rows.extend(Row(view.study_id, f) for f in view.findings)
        for run in runs:
            rows.extend(Row(run.id, f) for f in self.findings.get(run.id, []))
        paths = [str(r.path) for r in runs]
        errors = [e for e in self.errors if any(e[0].startswith(p) for p in paths)]
        self.query_one(FindingsPanel).show(rows, errors)

    def _update_status(self) -> None:
        st = self.settings
        t = Text()
        t.append(f"{len(self.runs)} runs", style="bold")
        t.append(f" · {len(self.studies)} studies")
        if self.watcher is not None:
            t.append(f" · {self.watcher.reason}", style="grey50")
        t.append(" │ ")
        t.append(f"smoothing {st.smoothing:g}" if st.smoothing else "smoothing off")
        t.append(f" · x {st.x_axis} · y {'log' if st.log_y else 'linear'}")
        t.append(f" · range {'p5-p95' if st.outlier else 'min-max'}")
        a, b = st.view
        if (a, b) != (0.0, 1.0):
            t.append(f" · zoom {a * 100:.0f}-{b * 100:.0f}%", style="bold")
        if self.marked:
            t.append(f" · overlay {len(self.marked)}", style="bold magenta")
        if self.filter is not None:
            t.append(" · filter ", style="bold")
            t.append(sanitize.clean(self.filter.pattern, 40), style="bold")
        if self.readonly:
            t.append(" · readonly", style="bold red")
        if self.errors:
            t.append(f" · {len(self.errors)} read errors", style="red")
        status = self.query_one("#status", Static)
        if t != status.content:  # every plot refresh comes here: relayout only on a change
            status.update(t)

    # -- selection -------------------------------------------------------------------------
    def select(self, ref: NodeRef) -> None:
        self.query_one(RunTree).select_ref(ref)
        self._set_cursor(ref)

    def _set_cursor(self, ref: NodeRef | None) -> None:
        if ref == self.cursor:
            return
        self.cursor = ref
        self.refresh_plots()
        self.refresh_findings()

    @on(Tree.NodeHighlighted, "#runs")
    def _highlighted(self, event: Tree.NodeHighlighted[NodeRef]) -> None:
        # a highlight still queued from before a rebuild or a select() is stale: only the
        # tree's cursor as it is now decides what is shown
        if event.node is not self.query_one(RunTree).cursor_node:
            return
        self._set_cursor(event.node.data)

    # -- actions -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.readonly and action in self.LAUNCHING_ACTIONS:
            return None  # shown dimmed in the footer, and does nothing
        return True

    def _apply(self, settings: PlotSettings) -> None:
        self.settings = settings
        self.refresh_plots()

    def action_smoothing(self) -> None:
        levels = self.smoothing_levels
        i = levels.index(self.settings.smoothing) if self.settings.smoothing in levels else 0
        self._apply(replace(self.settings, smoothing=levels[(i + 1) % len(levels)]))

    def action_log_y(self) -> None:
        self._apply(replace(self.settings, log_y=not self.settings.log_y))

    def action_outlier(self) -> None:
        self._apply(replace(self.settings, outlier=not self.settings.outlier))

    def action_x_axis(self) -> None:
        x = "time" if self.settings.x_axis == "step" else "step"
        self._apply(replace(self.settings, x_axis=x))

    def action_zoom(self, factor: float) -> None:
        self._apply(self.settings.zoomed(float(factor)))

    def action_pan(self, frac: float) -> None:
        self._apply(self.settings.panned(float(frac)))

    def action_reset_zoom(self) -> None:
        self._apply(replace(self.settings, view=(0.0, 1.0)))

    def action_mark(self) -> None:
        tree = self.query_one(RunTree)
        node = tree.cursor_node
        ref = node.data if node is not None else None
        if ref is None or ref.kind != "run":
            self.notify("space marks a run (not a study) for overlay", timeout=3)
            return
        if ref.id in self.marked:
            self.marked.remove(ref.id)
        else:
            self.marked.append(ref.id)
        self.refresh_states([ref.id], force=True)
        self.refresh_plots()
        self.refresh_findings()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("open")
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        value = event.value.strip()
        if not value:
            self.filter = None
        else:
            try:
                self.filter = re.compile(value)
                event.input.remove_class("invalid")
            except re.error:
                # an unfinished pattern filters as plain text meanwhile
                self.filter = re.compile(re.escape(value))
                event.input.add_class("invalid")
        self.rebuild_tree()
        self._update_status()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.remove_class("open")
        self.query_one(RunTree).focus()

    def on_key(self, event: events.Key) -> None:
        box = self.query_one("#filter", Input)
        if event.key == "escape" and box.has_focus:
            box.value = ""
            box.remove_class("open")
            self.query_one(RunTree).focus()
            event.stop()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.readonly))

    def action_remedy(self, kind: str) -> None:
        if self.readonly:  # the keys are off; this closes the palette's and scripts' way too
            self.notify("--readonly: no remedy can be launched", severity="warning", timeout=4)
            return
        target = self.cursor
        if target is None:
            self.notify("select a run or a study first", timeout=3)
            return
        path = self.target_path(target)
        if path is None:
            self.notify("that run or study is gone", timeout=3)
            return
        if kind == "warmup" and self.is_warmup_study(target):
            kind = "warmup-apply"  # a finished warmup study: apply the warmup it found (R20)
        if kind == "warmup-apply" and target.id in self.runs:
            path = path.parent  # w on a trial of a warmup study: the study is the target
        study_id = self._study_of(target)
        why = self.remedy_summary(kind, NodeRef("study", study_id) if study_id else target)
        self.notify(f"planning {REMEDY_TITLES.get(kind, kind)}…", timeout=2)
        self.compute_plan(kind, target.id, path, why)

    def target_path(self, target: NodeRef) -> Path | None:
        if target.kind == "run" and target.id in self.runs:
            return self.runs[target.id].path
        if target.kind == "study" and target.id in self.studies:
            return self.studies[target.id].path
        return None

    def _study_of(self, target: NodeRef) -> str | None:
        """The warmup study a warmup trial belongs to (w on one trial applies the study)."""
        if target.kind == "study":
            return None
        run = self.runs.get(target.id)
        if run is None or (run.remedy or {}).get("kind") != "warmup":
            return None
        return self.study_id_of(target.id)

    def is_warmup_study(self, target: NodeRef) -> bool:
        """A study whose runs the warmup remedy made (run.json's remedy), or one of its trials."""
        if target.kind == "run":
            return self._study_of(target) is not None
        study = self.studies.get(target.id)
        return study is not None and any(
            (r.remedy or {}).get("kind") == "warmup" for r in study.runs
        )

    @work(
        thread=True,
        exit_on_error=False,
        group="plan",
        description="compute a remedy plan (reads the target's files)",
    )
    def compute_plan(self, kind: str, target_id: str, path: Path, why: Text) -> None:
        from tui.remedy.plan import plan
        from tui.trust import within

        # the watched root the target lies in: the trust check climbs to it (tui/trust.py)
        root = next((r for r in self.paths if within(path, r)), None)
        self.post_message(PlanReady(kind, target_id, plan(kind, path, root=root), why))

    @_while_running
    def on_plan_ready(self, message: PlanReady) -> None:
        self.launch_remedy(message.plan, message.why)

    def launch_remedy(self, plan: Plan, why: Text | None = None) -> None:
        """Show the plan in the modal; a confirmed (maybe edited) plan is launched."""
        title = REMEDY_TITLES.get(plan.kind, plan.kind)
        self.push_screen(
            RemedyModal(plan, title=title, readonly=self.readonly, why=why), self._confirmed
        )

    def _confirmed(self, plan: Plan | None) -> None:
        if plan is not None:
            self.launch_plan(plan)

    def launch_plan(self, plan: Plan) -> bool:
        """Start a plan's study as a child process (in a worker). The one way the app starts a
        process: refused under --readonly and for a plan that cannot be launched."""
        if self.readonly:
            self.notify("--readonly: nothing is started", severity="warning", timeout=4)
            return False
        if not plan.launchable:
            self.notify("this plan cannot be launched (something is missing)", timeout=4)
            return False
        self.start_study(plan)
        return True

    @work(thread=True, exit_on_error=False, group="launch", description="launch a remedy study")
    def start_study(self, plan: Plan) -> None:
        job = self.supervisor.launch(plan)
        self.post_message(StudyLaunched(job.id, job.kind, Path(plan.out), job.pid))

    @_while_running
    def on_study_launched(self, message: StudyLaunched) -> None:
        self.notify(
            Text.assemble(
                f"launched {message.kind} study (pid {message.pid}) into ",
                sanitize.text(message.out, limit=100),
            ).plain,
            timeout=5,
            markup=False,
        )
        self.watch_jobs()
        self.poll_jobs()
        self.query_one(JobsPanel).select_job(message.job_id)

    def watched(self, folder: Path) -> bool:
        """Whether `folder` is under a watched root (the watcher will find what appears in it)."""
        roots = self.engine.roots if self.engine is not None else self.paths
        try:
            target = folder.resolve()
        except OSError:
            return False
        for root in roots:
            r = root.resolve()
            if r.is_dir() and (target == r or r in target.parents):
                return True
        return False

    # -- jobs ---------------------------------------------------------------------------
    def watch_jobs(self) -> None:
        """Poll the Supervisor every JOBS_POLL s while a child runs (the timer stops itself
        when none does: an idle app has no timer)."""
        if self._jobs_timer is None:
            self._jobs_timer = self.set_interval(JOBS_POLL, self.poll_jobs)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="jobs",
        description="poll the launched jobs and read their last output lines",
    )
    def poll_jobs(self) -> None:
        changed = [j.id for j in self.supervisor.poll()]  # reaps what exited
        jobs = list(self.supervisor.jobs.values())
        self.post_message(JobsPolled([view_of(j) for j in jobs], changed))

    @_while_running
    def on_jobs_polled(self, message: JobsPolled) -> None:
        self.jobs_polls += 1
        self.query_one(JobsPanel).show(message.views)
        for view in message.views:
            if view.id in message.changed and view.state != "running":
                what = view.signal or (
                    f"exit {view.exit_code}" if view.exit_code is not None else view.state
                )
                self.notify(
                    sanitize.clean(f"{view.kind} job (pid {view.pid}) {view.state}: {what}"),
                    severity="error" if view.state == "failed" else "information",
                    timeout=6,
                    markup=False,  # an adopted job's kind comes from its record
                )
            if view.study_dir and view.id not in self._rooted:
                self._rooted.add(view.id)
                folder = Path(view.study_dir)
                if not self.watched(folder) and self.engine is not None:
                    # launched outside every watched root: follow its study folder too
                    self.engine.add_root(folder)
                    if self.watcher is not None:
                        self.watcher.nudge()
        if message.running == 0 and self._jobs_timer is not None:
            self._jobs_timer.stop()
            self._jobs_timer = None

    @work(
        thread=True,
        exit_on_error=False,
        group="adopt",
        description="find running jobs of an earlier start through their job records",
    )
    def adopt_jobs(self) -> None:
        """Jobs launched by an earlier start that still run, from their records in the user's
        state folder (the only source: a run.json in the tree never names a process, issue 14
        item 8). The Supervisor checks each pid's start time and argv against its record."""
        adopted = [job.id for job in self.supervisor.adopt_recorded()]
        if adopted:
            self.post_message(JobsAdopted(adopted))

    @_while_running
    def on_jobs_adopted(self, message: JobsAdopted) -> None:
        n = len(message.job_ids)
        self.notify(f"found {n} running job(s) from an earlier start", timeout=5)
        self.watch_jobs()
        self.poll_jobs()

    def selected_job(self) -> Job | None:
        job_id = self.query_one(JobsPanel).selected_id
        return self.supervisor.jobs.get(job_id) if job_id else None

    def stop_job(self) -> None:
        """`k`: stop the job highlighted in the jobs panel, after a confirmation."""
        if self.readonly:
            self.notify("--readonly: nothing is stopped", severity="warning", timeout=4)
            return
        job = self.selected_job()
        if job is None:
            running = self.supervisor.running()
            if not running:
                self.notify("no launched run to stop", timeout=4)
                return
            job = running[0]
        if job.state != "running":
            self.notify(f"that job is not running ({job.state})", timeout=4)
            return
        body = Text()
        body.append(f"Stop the {sanitize.clean(job.kind, 20)} job, pid {job.pid}?\n", style="bold")
        study = job.study_dir
        if study is not None:
            body.append(sanitize.clean(study, 100), style="grey62")
            body.append("\n")
        body.append(
            f"\nSIGTERM to its process group, SIGKILL after {STOP_GRACE:g} s if it is still "
            "there. Its trials stop too; what they wrote stays."
        )

        def answer(yes: bool | None) -> None:
            if yes:
                self.stop_jobs([job])

        self.push_screen(ConfirmScreen("stop a job", body, "stop it"), answer)

    def action_stop_job(self) -> None:
        self.stop_job()

    @work(
        thread=True,
        exit_on_error=False,
        group="stop",
        description="stop jobs: SIGTERM, SIGKILL after the grace period, reap",
    )
    def stop_jobs(self, jobs: list[Job], then_exit: bool = False) -> None:
        if self.readonly:
            return
        # Supervisor.stop blocks up to the grace period: one thread each, in parallel
        threads = [
            threading.Thread(target=self.supervisor.stop, args=(job, STOP_GRACE), daemon=True)
            for job in jobs
        ]
        for t in threads:
            t.start()
        self.call_from_thread(self.poll_jobs)  # shows "stopping…"
        for t in threads:
            t.join()
        self.supervisor.poll()
        if then_exit:
            self.call_from_thread(self.exit_now)
        else:
            self.call_from_thread(self.poll_jobs)

    def remedy_summary(self, kind: str, target: NodeRef) -> Text:
        """The findings that call for this remedy (the modal shows them above the plan)."""
        relevant = REMEDY_FINDINGS.get(kind, frozenset())
        found = [
            (r.id, f)
            for r in self.runs_of(target)
            for f in self.findings.get(r.id, [])
            if f.kind in relevant
        ]
        view = self.study_views.get(target.id) if target.kind == "study" else None
        if view is not None:
            found += [(target.id, f) for f in view.findings if f.kind in relevant]
        t = Text("findings that call for it:", style="bold")
        if not found:
            t.append("\n  none: the playbook does not call for this remedy here", style="grey50")
        for rid, f in found[:8]:
            t.append(f"\n  {f.kind} {f.rule} ")
            t.append("-" if f.step is None else f"step {f.step}")
            t.append(": ")
            t.append(sanitize.clean(f"{rid}: {f.message}", 140))
        if len(found) > 8:
            t.append(f"\n  … and {len(found) - 8} more", style="grey50")
        return t

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        commands = [
            ("Smoothing", "cycle the EMA weight (s)", self.action_smoothing),
            ("Log y", "toggle a log scale on y (y)", self.action_log_y),
            ("Outlier range", "toggle the 5th-95th percentile y range (o)", self.action_outlier),
            ("X axis", "step or relative wall time (x)", self.action_x_axis),
            ("Zoom in", "zoom in over steps (+)", lambda: self.action_zoom(0.5)),
            ("Zoom out", "zoom out over steps (-)", lambda: self.action_zoom(2.0)),
            ("Reset zoom", "show every step (0)", self.action_reset_zoom),
            ("Filter runs", "regular expression on run ids (/)", self.action_filter),
            ("Overlay", "mark the run under the cursor for overlay (space)", self.action_mark),
            ("Keys", "every key (?)", self.action_help),
        ]
        if not self.readonly:
            commands += [
                ("Warmup remedy", "R18-R21 (w)", lambda: self.action_remedy("warmup")),
                ("Clipping remedy", "R22-R24 (c)", lambda: self.action_remedy("clip")),
                ("Early-instability probe", "R15 (e)", lambda: self.action_remedy("probe")),
                ("Stop a launched run", "(k)", self.action_stop_job),
            ]
        for title, help_, callback in commands:
            yield SystemCommand(title, help_, callback)


def make_app(
    paths: list[Path],
    *,
    poll: float | None = None,
    readonly: bool = False,
    smoothing: float = 0.6,
    config: Config | None = None,
    supervisor: Supervisor | None = None,
) -> TunetopApp:
    """The app factory the CLI and the tests share. Without `config`, tunetop.toml of the
    first root is read (DESIGN.md "tunetop.toml"). `supervisor`: children started before the
    app (tunetop demo) to show in the jobs panel; by default a new one."""
    roots = [Path(p) for p in paths] or [Path(".")]
    if config is None:
        try:
            config = load_config(roots[0] if roots[0].is_dir() else roots[0].parent)
        except Exception:  # a broken tunetop.toml must not keep the dashboard from opening
            config = Config()
    return TunetopApp(
        roots,
        poll=poll,
        readonly=readonly,
        smoothing=smoothing,
        config=config,
        supervisor=supervisor,
    )
