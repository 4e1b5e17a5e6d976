"""The remedy modal (w / c / e): the plan a key would launch, editable before confirming.

It shows what tui.remedy.plan computed: the kind, the target, the computed values, each trial
with its values and the device it will get, the output folder, the notes (rule ids) and what is
missing. Before confirming, a person may change the output folder, every trial value, remove
trials, and (warmup) the base_learning_rate factor, 10x or 100x, which recomputes the plan in a
thread worker (plan() reads files). An invalid edit shows why and disables the launch button;
so do a plan that cannot be launched and --readonly. Dismissed with the edited Plan, or None.

Before launch it shows what will run (tui/remedy/preview.py): the argv of the study and of every
trial, the interpreter, the working folder, the environment changes and the output folder,
following the edits; in a warning frame when a file in the watched tree decided the command or
workload. A plan refused by the trust check (tui/trust.py) says why and how to trust it.

Paths and names come from the user's files: drawn as Text (tui.sanitize), never as markup.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, RadioButton, RadioSet, Static
from textual.worker import Worker, WorkerState

from runner import spec as rspec
from runner.schedule import lr_curve
from tui import sanitize
from tui.remedy import plan as planmod
from tui.remedy.plan import Plan, device_for_trials
from tui.remedy.preview import FROM_TREE, preview
from tui.widgets.canvas import BLOCKS

# R18: base_learning_rate = 10x the unstable rate, 100x as an option; 1x keeps the unstable
# rate itself: warmup as R17's remedy that rescues that run, when 10x is out of reach
FACTORS = (10.0, 100.0, 1.0)
Replanner = Callable[[str, str, str | None, float], Plan]


def _replanner(plan: Plan) -> Replanner:
    """Recomputes against the same watched root and trust as `plan` was computed with."""

    def replan(kind: str, target: str, out: str | None, factor: float) -> Plan:
        return planmod.plan(
            kind,
            target,
            out,
            factor=factor,
            root=plan.root or None,
            trust_files=plan.trusted_by_flag,
        )

    return replan


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value) or "(none)"
    return str(value)


def parse_value(key: str, text: str) -> Any:
    """A trial value typed by the person, as the spec key's type (ValueError if it is not)."""
    s = text.strip()
    if not s:
        raise ValueError("empty")
    try:
        kind = rspec.key_type(key)
    except rspec.SpecError:
        kind = None
    if kind is bool:
        if s.lower() in ("true", "1", "yes"):
            return True
        if s.lower() in ("false", "0", "no"):
            return False
        raise ValueError("true or false")
    if kind is int:
        f = float(s)
        if not f.is_integer():
            raise ValueError("a whole number")
        return int(f)
    if kind is float:
        return float(s)
    if kind is None:  # free-form (workload_options.*): a number where it reads as one
        for cast in (int, float):
            try:
                return cast(s)
            except ValueError:
                continue
    return s


def schedules_side_by_side(plan: Plan, width: int = 60) -> Text:
    """R6: the old and the new learning-rate schedule on one step axis (a small plot in text:
    one column per bucket of steps, the bar's height the rate relative to its peak)."""
    out = Text()
    if plan.spec is None or not plan.trials():
        return out
    old = plan.spec.base
    try:
        new = rspec.apply_overrides(old, plan.trials()[0])
    except rspec.SpecError:
        return out
    total = max(old.total_steps, new.total_steps, 1)
    edges = np.linspace(0, total, width + 1)
    peak = max(old.optimizer.lr, new.optimizer.lr) or 1.0
    out.append(f"learning rate vs step, 0 .. {total:,} (R6)\n", style="bold")
    for label, spec in (("old", old), ("new", new)):
        steps = np.arange(spec.total_steps)
        curve = lr_curve(spec, steps) if steps.size else np.zeros(0)
        row = []
        for a, b in itertools.pairwise(edges):
            seg = curve[int(a) : max(int(b), int(a) + 1)]
            if seg.size == 0:
                row.append(" ")
                continue
            row.append(BLOCKS[round(float(seg.mean()) / peak * (len(BLOCKS) - 1))])
        out.append(f"{label} {spec.total_steps:>8,} steps ", style="grey62")
        out.append("".join(row) + "\n", style="cyan" if label == "new" else "grey62")
    return out


class TrialInput(Input):
    """One value of one trial: knows which trial and which spec key it edits."""

    def __init__(self, trial: int, key: str, value: Any) -> None:
        super().__init__(str(value), compact=True, classes="trial-value")
        self.trial = trial
        self.key = key


def launch_block(plan: Plan) -> Text:
    """What launching `plan` runs, as Text (never markup: the paths come from the tree)."""
    t = Text("what will run\n", style="bold")
    shown = preview(plan)
    if shown is None:
        t.append("not known: the plan is not complete (see missing)", style="grey50")
        return t
    for line in shown.lines():
        if line.startswith(FROM_TREE):
            t.append(line, style="bold black on yellow")
        elif line.startswith("  ("):
            t.append(line, style="yellow")
        else:
            t.append(line)
        t.append("\n")
    t.rstrip()
    return t


def trust_block(plan: Plan) -> Text:
    """Why the trust check refuses this plan, and how to trust it."""
    t = Text()
    for line in plan.refusals:
        t.append("not trusted: ", style="bold yellow")
        t.append(sanitize.clean(line, 600), style="yellow")
        t.append("\n")
    t.rstrip()
    return t


class RemedyModal(ModalScreen[Plan | None]):
    DEFAULT_CSS = """
    RemedyModal #plan-launch { margin-top: 1; padding: 0 1; border: round $primary-darken-1; }
    RemedyModal #plan-launch.from-tree { border: heavy $warning; }
    RemedyModal #plan-trust { margin-top: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "cancel"),
        Binding("ctrl+s", "confirm", "launch"),
    ]

    def __init__(
        self,
        plan: Plan,
        *,
        title: str = "",
        readonly: bool = False,
        why: Text | None = None,
        replan: Replanner | None = None,
    ) -> None:
        super().__init__(id="remedy-modal")
        self.plan = plan
        self.title_text = title or f"{plan.kind} plan"
        self.readonly = readonly
        self.why = why
        self.replan = replan or _replanner(plan)
        self.factor = float(plan.computed.get("factor", FACTORS[0]))
        self.removed: set[int] = set()
        self.errors: list[str] = []
        self.edited: Plan | None = None
        self.busy = False  # a recompute is running
        self.ready = False  # Inputs post Changed while the screen is still being built

    # -- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        p = self.plan
        trials = p.trials()
        devices = device_for_trials(len(trials))
        with VerticalScroll(id="plan-body"):
            yield Static(self._head(), id="plan-head")
            if self.why is not None and self.why.plain.strip():
                yield Static(self.why, id="plan-why")
            if p.refusals:  # first: why nothing can be launched, and how to trust it
                yield Static(trust_block(p), id="plan-trust")
            if p.kind == "warmup":
                with Horizontal(id="plan-factor-row"):
                    yield Static("base_learning_rate =", classes="plan-label")
                    with RadioSet(id="plan-factor"):
                        for f in FACTORS:
                            yield RadioButton(
                                f"{f:g}x unstable rate", value=f == self.factor, compact=True
                            )
            with Horizontal(id="plan-out-row"):
                yield Static("output folder", classes="plan-label")
                yield Input(p.out, compact=True, id="plan-out")
            yield Static(self._trials_head(len(trials)), id="plan-trials-head")
            with Vertical(id="plan-trials"):
                for i, (trial, device) in enumerate(zip(trials, devices, strict=True)):
                    with Horizontal(classes="trial-row", id=f"trial-row-{i}"):
                        yield Static(Text(f"t{i:03d} [{device}]"), classes="trial-name")
                        if not trial:
                            yield Static(Text("(the baseline as it is)", style="grey50"))
                        for key, value in trial.items():
                            yield Static(Text(f"{sanitize.clean(key, 40)}="), classes="trial-key")
                            yield TrialInput(i, key, value)
                        yield Button(
                            "remove", id=f"remove-{i}", classes="trial-remove", compact=True
                        )
            if p.kind == "extend":
                yield Static(schedules_side_by_side(p), id="plan-schedules")
            shown = preview(p)
            yield Static(
                launch_block(p),
                id="plan-launch",
                classes="from-tree" if shown is not None and shown.from_tree else "",
            )
            yield Static(self._notes(), id="plan-notes")
            yield Static(id="plan-error")
            with Horizontal(id="plan-buttons"):
                yield Button("launch", variant="success", id="plan-confirm", compact=True)
                yield Button("cancel", id="plan-cancel", compact=True)
                yield Static(id="plan-reason")

    def on_mount(self) -> None:
        body = self.query_one("#plan-body")
        body.border_title = self.title_text
        body.border_subtitle = "ctrl+s: launch · escape: cancel"
        self.ready = True
        self.validate_edits()

    def _head(self) -> Text:
        p = self.plan
        t = Text()
        t.append("kind ", style="bold")
        t.append(sanitize.clean(p.kind, 20))
        t.append("    target ", style="bold")
        t.append(sanitize.clean(p.target, 200))
        t.append("\n")
        for key, value in p.computed.items():
            if key == "trials":  # warmup-apply: the verdict on each warmup trial
                for v in value:
                    t.append("  warmup trial ")
                    t.append(sanitize.clean(v.get("run"), 60))
                    t.append(f": {v.get('warmup_steps')} steps ")
                    t.append(
                        "collapsed" if v.get("collapsed") else "ok",
                        style="red" if v.get("collapsed") else "green",
                    )
                    t.append(" (")
                    t.append(sanitize.clean(v.get("why"), 120))
                    t.append(")\n")
                continue
            t.append(f"  {sanitize.clean(key, 40)}: ", style="grey62")
            t.append(sanitize.clean(_fmt(value), 200))
            t.append("\n")
        t.rstrip()
        return t

    def _trials_head(self, n: int) -> Text:
        t = Text("trials", style="bold")
        name = self.plan.spec_dict().get("study", {}).get("name", "?")
        t.append(f"  {n} → <output folder>/{sanitize.clean(name, 40)}-<timestamp>/t000…", "grey50")
        return t

    def _notes(self) -> Text:
        t = Text()
        for note in self.plan.notes:
            t.append("• ", style="cyan")
            t.append(sanitize.clean(note, 600))
            t.append("\n")
        for m in self.plan.missing:
            if m in self.plan.refusals:  # shown with the trust block
                continue
            t.append("missing: ", style="bold red")
            t.append(sanitize.clean(m, 600), style="red")
            t.append("\n")
        t.rstrip()
        return t

    # -- edits -------------------------------------------------------------------------------
    def build(self) -> tuple[Plan | None, list[str]]:
        """The plan as edited, and what is wrong with the edits (empty when nothing)."""
        p = self.plan
        errors: list[str] = []
        out_text = self.query_one("#plan-out", Input).value.strip()
        # absolute: a folder named `--x` must reach the runner as a path, never as an option
        out = Path(os.path.abspath(Path(out_text).expanduser())) if out_text else None
        if out is None:
            errors.append("output folder: empty")
        elif out.exists() and not out.is_dir():
            errors.append("output folder: exists and is not a folder")
        trials: dict[int, dict[str, Any]] = {
            i: copy.deepcopy(t) for i, t in enumerate(p.trials()) if i not in self.removed
        }
        for box in self.query(TrialInput):
            if box.trial not in trials:
                continue
            try:
                trials[box.trial][box.key] = parse_value(box.key, box.value)
                box.remove_class("invalid")
            except ValueError as exc:
                box.add_class("invalid")
                errors.append(f"t{box.trial:03d} {box.key}: {box.value!r} is not valid ({exc})")
        if p.spec is not None and not trials:
            errors.append("no trial left: keep at least one")
        if errors or out is None:
            return None, errors
        spec = p.spec
        if spec is not None:
            d = rspec.to_dict(spec)
            d["study"] = {**d.get("study", {}), "list": list(trials.values())}
            try:
                spec = rspec.from_dict(d)
            except rspec.SpecError as exc:
                return None, [f"invalid trial values: {exc}"]
            if not isinstance(spec, rspec.StudySpec):
                return None, ["the edited plan is not a study"]
        return replace(p, out=str(out), spec=spec), []

    def validate_edits(self) -> None:
        edited, errors = self.build()
        self.edited, self.errors = edited, errors
        err = Text()
        for e in errors:
            err.append(sanitize.clean(e, 300), style="bold red")
            err.append("\n")
        err.rstrip()
        self.query_one("#plan-error", Static).update(err)
        if edited is not None:  # what will run follows the edits (output folder, trials)
            self.query_one("#plan-launch", Static).update(launch_block(edited))
        reason = self.refusal()
        self.query_one("#plan-confirm", Button).disabled = reason is not None
        self.query_one("#plan-reason", Static).update(
            Text(reason or "", style="yellow" if reason else "")
        )

    def refusal(self) -> str | None:
        """Why the plan cannot be launched now, or None."""
        if self.readonly:
            return "--readonly: nothing can be started"
        if self.busy:
            return "recomputing the plan…"
        if self.plan.refusals:
            return "cannot launch, not trusted: " + sanitize.clean(self.plan.refusals[0], 300)
        if not self.plan.launchable:
            what = self.plan.missing[0] if self.plan.missing else "no runnable spec"
            return "cannot launch: missing " + sanitize.clean(what, 120)
        if self.errors:
            return "fix the values above first"
        return None

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.ready:
            self.validate_edits()

    @on(Button.Pressed, ".trial-remove")
    def _remove(self, event: Button.Pressed) -> None:
        event.stop()
        i = int((event.button.id or "remove-0").rsplit("-", 1)[1])
        self.removed.add(i)
        self.query_one(f"#trial-row-{i}").display = False
        self.validate_edits()

    @on(RadioSet.Changed, "#plan-factor")
    def _factor(self, event: RadioSet.Changed) -> None:
        event.stop()
        factor = FACTORS[event.index]
        if factor == self.factor:
            return
        self.factor = factor
        self.busy = True
        self.validate_edits()
        out = self.query_one("#plan-out", Input).value.strip() or None
        self.recompute(self.plan.kind, self.plan.target, out, factor)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="replan",
        description="recompute the remedy plan",
    )
    def recompute(self, kind: str, target: str, out: str | None, factor: float) -> Plan:
        return self.replan(kind, target, out, factor)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "replan":
            return
        if event.state == WorkerState.SUCCESS and isinstance(event.worker.result, Plan):
            self.plan = event.worker.result
            self.removed.clear()
            self.busy = False
            self.ready = False
            self.refresh(recompose=True)
            self.call_after_refresh(self.on_mount)  # the new widgets: titles, validation
        elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.busy = False
            self.errors = [f"recomputing failed: {event.worker.error}"]
            self.query_one("#plan-error", Static).update(
                Text(sanitize.clean(self.errors[0], 300), style="bold red")
            )

    # -- confirm / cancel --------------------------------------------------------------------
    @on(Button.Pressed, "#plan-confirm")
    def _confirm_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_confirm()

    @on(Button.Pressed, "#plan-cancel")
    def _cancel_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_cancel()

    def action_confirm(self) -> None:
        self.validate_edits()
        if self.refusal() is not None or self.edited is None:
            self.notify(
                self.refusal() or "the plan is not valid",
                severity="warning",
                timeout=4,
                markup=False,  # the refusal may quote what is missing (paths)
            )
            return
        self.dismiss(self.edited)

    def action_cancel(self) -> None:
        self.dismiss(None)
