"""Modal screens: the key help (`?`) and the remedy summary (w / c / e)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

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
    ("remedies (playbook R15-R24)", ""),
    ("w", "warmup study for the selected run or study (R18-R21)"),
    ("c", "gradient clipping at the p90 norm (R22-R24)"),
    ("e", "early-instability probe: 2x the best lr, ~500 steps (R15)"),
    ("k", "stop a launched run"),
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
        if readonly and key in ("w", "c", "e", "k"):
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


class RemedyScreen(ModalScreen[None]):
    """The remedy a key would launch: what was computed, and that the launcher is not there."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,enter", "dismiss", "Close")]

    def __init__(self, title: str, body: Text) -> None:
        super().__init__(id="remedy-screen")
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="remedy-body"):
            yield Static(self.body, id="remedy-text")

    def on_mount(self) -> None:
        body = self.query_one("#remedy-body")
        body.border_title = self.title_text
        body.border_subtitle = "escape: close"
