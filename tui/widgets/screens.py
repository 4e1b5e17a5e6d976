"""Modal screens: the key help (`?`), stopping a job (`k`) and quitting while children run.

The remedy plan modal (w / c / e) is tui.widgets.remedy_modal."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

HELP = [
    ("navigation", ""),
    ("↑ ↓  ←  →", "move in the run tree / findings; ← → fold a study"),
    ("tab / shift+tab", "move focus: run tree, findings"),
    ("space", "mark the run for overlay (again: unmark); plots show the marked runs"),
    ("/", "filter runs by regular expression (enter: keep, escape: clear)"),
    ("plots", ""),
    ("s", "smoothing: cycle the EMA weight (TensorBoard's debiased EMA)"),
    ("y", "log scale on y"),
    ("o", "outlier-ignoring y range (5th-95th percentile)"),
    ("x", "x axis: step or relative wall time"),
    ("+  -", "zoom in / out over steps (a window at the end keeps following)"),
    ("[  ]", "pan left / right"),
    ("0", "reset zoom"),
    ("remedies (playbook R6, R15-R24)", ""),
    ("w", "warmup study (R18, R19); on a finished warmup study: apply it (R20, R21)"),
    ("c", "gradient clipping at the p90 norm (R22-R24)"),
    ("e", "early-instability probe: 2x the best lr, ~500 steps (R15)"),
    ("l", "a longer round of the best run, old and new schedules side by side (R6)"),
    ("k", "stop the job highlighted in the jobs panel (SIGTERM, then SIGKILL)"),
    ("other", ""),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help"),
    ("q", "quit"),
]


def help_text(readonly: bool) -> Text:
    t = Text()
    for key, what in HELP:
        if not what:
            t.append(f"\n{key}\n", style="bold underline")
            continue
        t.append(f"  {key:<18}", style="bold cyan")
        t.append(what)
        if readonly and key in ("w", "c", "e", "l", "k"):
            t.append("  (off: --readonly)", style="red")
        t.append("\n")
    return t


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close"),
    ]

    def __init__(self, readonly: bool) -> None:
        super().__init__(id="help-screen")
        self.readonly = readonly

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(help_text(self.readonly), id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help-body").border_title = "tunetop keys"


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question (stopping a job): dismissed with True for yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "answer(False)", "No"),
        Binding("y", "answer(True)", "Yes"),
    ]

    def __init__(self, title: str, body: Text, yes: str = "yes") -> None:
        super().__init__(classes="small-modal")
        self.title_text = title
        self.body = body
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="small-modal-body"):
            yield Static(self.body)
            with Horizontal(classes="modal-buttons"):
                yield Button(self.yes, variant="error", id="confirm-yes", compact=True)
                yield Button("cancel", id="confirm-no", compact=True)

    def on_mount(self) -> None:
        body = self.query_one(".small-modal-body")
        body.border_title = self.title_text
        body.border_subtitle = "y / n"
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class QuitScreen(ModalScreen[str | None]):
    """Quitting while children run: "leave" them running (they live in their own sessions and
    outlive the app), "stop" them all, or None (cancel). --readonly offers no stopping."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,c", "choose(None)", "Cancel"),
        Binding("l", "choose('leave')", "Leave running"),
        Binding("s", "choose('stop')", "Stop all"),
    ]

    def __init__(self, body: Text, readonly: bool = False) -> None:
        super().__init__(id="quit-screen", classes="small-modal")
        self.body = body
        self.readonly = readonly

    def compose(self) -> ComposeResult:
        with Vertical(classes="small-modal-body"):
            yield Static(self.body, id="quit-text")
            with Horizontal(classes="modal-buttons"):
                yield Button("leave them running", variant="primary", id="quit-leave", compact=True)
                if not self.readonly:
                    yield Button("stop them all", variant="error", id="quit-stop", compact=True)
                yield Button("cancel", id="quit-cancel", compact=True)

    def on_mount(self) -> None:
        body = self.query_one(".small-modal-body")
        body.border_title = "quit tunetop"
        body.border_subtitle = "l: leave · s: stop · escape: cancel" if not self.readonly else ""
        self.query_one("#quit-cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        choice = {"quit-leave": "leave", "quit-stop": "stop"}.get(event.button.id or "")
        self.dismiss(choice)

    def action_choose(self, choice: str | None) -> None:
        if choice == "stop" and self.readonly:
            return
        self.dismiss(choice)
