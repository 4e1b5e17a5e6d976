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
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, Tree
from textual.worker import Worker, WorkerState, get_current_worker

from tui import sanitize
from tui.config import Config
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
    run_state,
)
from tui.logs.model import Run, Study
from tui.plotting import format_value
from tui.watch import Watcher
from tui.widgets.findings_panel import FindingsPanel, Row
from tui.widgets.jobs import JobsPanel
from tui.widgets.plots import (
    HistogramPlot,
    HParamPlot,
    MetricPlot,
    PlotSettings,
    SmoothCache,
    StudyAxis,
)
from tui.widgets.run_tree import NodeRef, RunTree, run_label
from tui.widgets.screens import HelpScreen, RemedyScreen

# seconds between two read rounds: a burst of writes is read in one go, and a run logging 100
# steps/s costs 3 redraws a second, not 100 (latency stays well under the 500 ms asked)
MIN_ROUND = 0.33
SMOOTHING_LEVELS = (0.0, 0.6, 0.9, 0.99)
REMEDY_TITLES = {
    "warmup": "warmup study (R18-R21)",
    "clip": "gradient clipping (R22-R24)",
    "probe": "early-instability probe (R15)",
}


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
        self._update_status()
        self.start_following()
        # stalled detection needs the clock: a cheap check that relabels only what changed
        every = max(1.0, min(30.0, self.config.stalled_after / 4))
        self.set_interval(every, self.refresh_states)

    # -- the worker ------------------------------------------------------------------------
    def start_following(self) -> None:
        if self.engine is None:
            self.engine = Engine(self.paths, self.config)
        if self.watcher is None:
            self.watcher = Watcher(self.paths, self.poll_interval)
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
            for message in engine.step(full=created):
                self.post_message(message)
            # a few rounds a second at most: what arrives meanwhile is read in the next round
            self._stop.wait(max(0.0, MIN_ROUND - (time.monotonic() - started)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """One handler for worker failures: say it, and start reading again."""
        if event.worker.group == "follow" and event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(
                sanitize.clean(f"reading stopped: {type(error).__name__}: {error}", 300),
                severity="error",
                timeout=10,
            )
            if not self._stop.is_set():
                self.set_timer(2.0, self.follow)

    def stop_following(self) -> None:
        self._stop.set()
        if self.watcher is not None:
            self.watcher.stop()

    async def action_quit(self) -> None:
        self.stop_following()
        self.exit()

    def on_unmount(self) -> None:
        self.stop_following()

    # -- messages from the worker ----------------------------------------------------------
    def on_run_discovered(self, message: RunDiscovered) -> None:
        for run in message.runs:
            self.runs[run.id] = run
        self.last_write.update(message.last_write)
        self.rebuild_tree()
        if self.cursor is None:
            first = self.query_one(RunTree).first_ref()
            if first is not None:
                self.select(first)
        self._update_status()

    def on_studies_changed(self, message: StudiesChanged) -> None:
        self.studies = message.studies
        self.rebuild_tree()
        self._update_status()

    def on_metrics_appended(self, message: MetricsAppended) -> None:
        self.rounds += 1
        for run_id in message.updated:
            self.last_write[run_id] = message.when or time.time()
        self.refresh_states(message.updated)
        shown = {r.id for r in self.shown_runs()}
        if shown & set(message.updated):
            self.refresh_plots()

    def on_finding_raised(self, message: FindingRaised) -> None:
        self.findings.setdefault(message.run_id, []).extend(message.findings)
        if message.stats:
            self.stats[message.run_id] = message.stats
        self.refresh_states([message.run_id], force=True)
        if message.run_id in {r.id for r in self.shown_runs()}:
            self.refresh_findings()
            self.refresh_plots()

    def on_run_stats_changed(self, message: RunStatsChanged) -> None:
        self.stats.update(message.stats)
        if set(message.stats) & {r.id for r in self.shown_runs()}:
            self.refresh_plots()

    def on_study_diagnosed(self, message: StudyDiagnosed) -> None:
        self.study_views[message.study_id] = message
        if self.cursor == NodeRef("study", message.study_id):
            self.refresh_plots()
            self.refresh_findings()

    def on_run_status_changed(self, message: RunStatusChanged) -> None:
        self.refresh_states(message.run_ids, force=True)

    def on_read_errors(self, message: ReadErrors) -> None:
        self.errors.extend(message.errors)
        del self.errors[:-1000]
        self._update_status()
        self.refresh_findings()

    # -- state -> widgets -----------------------------------------------------------------
    def state_of(self, run: Run, now: float | None = None) -> str:
        diverged = any(
            f.kind == "divergence" and f.severity == "error" for f in self.findings.get(run.id, [])
        )
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

    def _in_study(self, run_id: str) -> bool:
        return any(any(r.id == run_id for r in s.runs) for s in self.studies.values())

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
                tree.update_run(run_id, self.label(run, self._in_study(run_id)))

    def rebuild_tree(self) -> None:
        self.query_one(RunTree).rebuild(self.runs, self.studies, self.filter, self.label)

    def shown_runs(self) -> list[Run]:
        """The marked runs (overlay) if any, else the run or the study under the cursor."""
        if self.marked:
            return [self.runs[r] for r in self.marked if r in self.runs]
        if self.cursor is None:
            return []
        if self.cursor.kind == "run":
            run = self.runs.get(self.cursor.id)
            return [run] if run is not None else []
        study = self.studies.get(self.cursor.id)
        return [r for r in study.runs if r.id in self.runs] if study is not None else []

    def p90(self, run_id: str) -> float | None:
        """The p90 clip threshold (R23): the detectors' figure, else computed here."""
        stats = self.stats.get(run_id, {})
        for key in ("p90", "clip_p90", "grad_norm_p90", "p90_grad_norm", "clip_threshold"):
            v = stats.get(key)
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
        grad = self.query_one("#plot-grad", MetricPlot)
        grad.set_extras({"p90": {r.id: self.p90(r.id) for r in runs[:1]}})
        study = self.cursor.kind == "study" and not self.marked if self.cursor else False
        hist = self.query_one("#plot-hist", HistogramPlot)
        hparam = self.query_one("#plot-hparam", HParamPlot)
        hist.display = not study
        hparam.display = study
        if study and self.cursor is not None:
            view = self.study_views.get(self.cursor.id)
            s = self.studies.get(self.cursor.id)
            if view is not None:
                hparam.show(StudyAxis(view.param, view.points, view.best_run))
            else:
                hparam.show(StudyAxis(s.param if s else None, [], None))
        else:
            first = runs[0] if runs else None
            hist.show(first, self.p90(first.id) if first else None)
            hist.refresh()
        self._update_status()

    def refresh_findings(self) -> None:
        runs = self.shown_runs()
        rows: list[Row] = []
        if self.cursor is not None and self.cursor.kind == "study" and not self.marked:
            view = self.study_views.get(self.cursor.id)
            if view is not None:
                rows.extend(Row(self.cursor.id, f) for f in view.findings)
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
        self.query_one("#status", Static).update(t)

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

    def on_key(self, event: Any) -> None:
        box = self.query_one("#filter", Input)
        if event.key == "escape" and box.has_focus:
            box.value = ""
            box.remove_class("open")
            self.query_one(RunTree).focus()
            event.stop()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.readonly))

    def action_remedy(self, kind: str) -> None:
        target = self.cursor
        if target is None:
            self.notify("select a run or a study first", timeout=3)
            return
        self.launch_remedy(kind, target, self.remedy_summary(kind, target))

    def launch_remedy(self, kind: str, target: NodeRef, summary: Text) -> None:
        """THE hook for the remedy launcher (issue 6 replaces this one method): today it shows
        what was computed and says that nothing can be launched yet."""
        body = summary.copy()
        body.append(
            "\n\nThe remedy launcher is not there yet (issue 6): nothing was started.\n",
            style="bold yellow",
        )
        body.append(
            f"`tunetop plan {kind} <folder>` prints the study it will launch.", style="grey50"
        )
        self.push_screen(RemedyScreen(REMEDY_TITLES.get(kind, kind), body))

    def remedy_summary(self, kind: str, target: NodeRef) -> Text:
        """What the playbook says for this remedy and target, from the findings and stats."""
        runs = (
            [self.runs[target.id]]
            if target.kind == "run" and target.id in self.runs
            else list(self.studies[target.id].runs)
            if target.id in self.studies
            else []
        )
        t = Text()
        t.append(f"{target.kind}: ", style="bold")
        t.append(sanitize.clean(target.id, 80))
        t.append("\n\n")
        relevant = {
            "warmup": {
                "divergence",
                "unstable_training",
                "loss_spike",
                "best_at_feasibility_edge",
                "warmup_too_long",
            },
            "clip": {
                "grad_norm_outlier",
                "clipping_too_aggressive",
                "loss_spike",
                "unstable_training",
            },
            "probe": {"unstable_training", "divergence", "best_at_feasibility_edge"},
        }.get(kind, set())
        found = [(r.id, f) for r in runs for f in self.findings.get(r.id, []) if f.kind in relevant]
        view = self.study_views.get(target.id) if target.kind == "study" else None
        if view is not None:
            found += [(target.id, f) for f in view.findings if f.kind in relevant]
        t.append("findings that call for it:\n", style="bold")
        if not found:
            t.append("  none: the playbook does not call for this remedy here\n", style="grey50")
        for rid, f in found[:12]:
            t.append(f"  {f.kind} {f.rule} ")
            t.append("-" if f.step is None else f"step {f.step}")
            t.append(": ")
            t.append(sanitize.clean(f"{rid}: {f.message}", 160))
            t.append("\n")
        t.append("\n")
        lrs = [_num(r.hparams.get("lr")) for r in runs]
        lrs_known = [v for v in lrs if v is not None]
        total = max((r.total_steps for r in runs), default=0)
        if kind == "warmup":
            unstable = min(lrs_known) if lrs_known else None
            if view is not None:
                bad = [p.value for p in view.points if p.infeasible]
                unstable = min(bad) if bad else unstable
            t.append("R18: unstable_base_learning_rate = ")
            t.append(format_value(unstable) if unstable else "unknown (no lr logged)")
            t.append("; base_learning_rate = 10x = ")
            t.append(format_value(unstable * 10) if unstable else "?")
            t.append("\nR19: warmup_steps over powers of ten, <= 10% of max_train_steps: ")
            steps = [10**k for k in range(1, 9) if 10**k <= 0.1 * total] if total else []
            t.append(", ".join(str(s) for s in steps) or "none fits (run too short)")
            t.append("; post_warmup_steps = 2 x warmup_steps")
        elif kind == "clip":
            p = self.p90(runs[0].id) if runs else None
            t.append("R23: clip_norm = p90 of the unclipped gradient norms = ")
            t.append(format_value(p) if p else "unknown (no grad_norm logged)")
            if p:
                t.append(f"; a tighter trial at {format_value(p / 2)}")
            t.append("\nR24: more than 50% of updates clipped means: lower the learning rate")
        elif kind == "probe":
            best = min(lrs_known) if lrs_known else None
            if view is not None and view.best_run in self.runs:
                best = _num(self.runs[view.best_run].hparams.get("lr")) or best
            t.append("R15: about 500 steps at 2x the best learning rate = ")
            t.append(format_value(2 * best) if best else "unknown (no lr logged)")
            t.append(", evaluating every step")
        return t

    def stop_job(self) -> None:
        """THE hook for stopping a launched run (issue 6 replaces it)."""
        self.notify("no launched run to stop (the launcher is not there yet)", timeout=4)

    def action_stop_job(self) -> None:
        self.stop_job()

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


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def make_app(
    paths: list[Path],
    *,
    poll: float | None = None,
    readonly: bool = False,
    smoothing: float = 0.6,
    config: Config | None = None,
) -> TunetopApp:
    """The app factory the CLI and the tests share. Without `config`, tunetop.toml of the
    first root is read (DESIGN.md "tunetop.toml")."""
    roots = [Path(p) for p in paths] or [Path(".")]
    if config is None:
        try:
            from tui.config import load_config

            config = load_config(roots[0] if roots[0].is_dir() else roots[0].parent)
        except Exception:  # a broken tunetop.toml must not keep the dashboard from opening
            config = Config()
    return TunetopApp(roots, poll=poll, readonly=readonly, smoothing=smoothing, config=config)
