"""The run tree: studies and their trials, a status glyph and a findings count per run."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tui import sanitize
from tui.diagnose.findings import Finding, severity_rank
from tui.engine import GLYPHS
from tui.logs.model import Run, Study

SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "error": "bold red"}


@dataclass(frozen=True)
class NodeRef:
    kind: str  # "run" | "study"
    id: str


def findings_badge(findings: list[Finding]) -> Text:
    if not findings:
        return Text("")
    worst = max(findings, key=lambda f: severity_rank(f.severity)).severity
    return Text(f" ⚑{len(findings)}", style=SEVERITY_STYLE.get(worst, ""))


class RunTree(Tree[NodeRef]):
    """Space marks a run for overlay (the app's action), instead of Tree's expand toggle."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "app.mark", "Overlay", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("runs", id=id)
        self.show_root = False
        self.guide_depth = 2
        self._run_nodes: dict[str, TreeNode[NodeRef]] = {}
        self._study_nodes: dict[str, TreeNode[NodeRef]] = {}
        self._labels: dict[str, Text] = {}

    def rebuild(
        self,
        runs: dict[str, Run],
        studies: dict[str, Study],
        pattern: re.Pattern[str] | None,
        label: Callable[[Run, bool], Text],
    ) -> None:
        """Fill the tree again (new runs, new studies, a new filter); the cursor stays on the
        node it was on when that node is still there."""
        keep = self.cursor_node.data if self.cursor_node is not None else None
        self.clear()
        self._run_nodes.clear()
        self._study_nodes.clear()
        self._labels.clear()
        in_study: set[str] = set()

        def shown(run: Run) -> bool:
            return pattern is None or pattern.search(run.id) is not None

        for sid in sorted(studies):
            study = studies[sid]
            members = [r for r in study.runs if r.id in runs and shown(r)]
            in_study.update(r.id for r in study.runs)
            if not members:
                continue
            head = Text(sanitize.clean(sid, 60), style="bold")
            if study.param:
                head.append(f"  {sanitize.clean(study.param, 30)} sweep", style="grey50")
            node = self.root.add(head, data=NodeRef("study", sid), expand=True)
            self._study_nodes[sid] = node
            for run in members:
                self._add_run(node, run, label(run, True))
        for rid in sorted(runs):
            if rid not in in_study and shown(runs[rid]):
                self._add_run(self.root, runs[rid], label(runs[rid], False))
        if keep is not None:
            self.select_ref(keep)

    def _add_run(self, parent: TreeNode[NodeRef], run: Run, text: Text) -> None:
        node = parent.add_leaf(text, data=NodeRef("run", run.id))
        self._run_nodes[run.id] = node
        self._labels[run.id] = text

    def update_run(self, run_id: str, text: Text) -> None:
        """Relabel one run, only when its label changed (a relabel repaints the tree)."""
        node = self._run_nodes.get(run_id)
        if node is None or self._labels.get(run_id) == text:
            return
        self._labels[run_id] = text
        node.set_label(text)

    def select_ref(self, ref: NodeRef) -> bool:
        node = (self._run_nodes if ref.kind == "run" else self._study_nodes).get(ref.id)
        if node is None:
            return False
        if node.line < 0:
            # just rebuilt: the tree numbers its lines lazily, on the next render, and a node
            # without a line number would leave the cursor where it was; number them now
            _ = self._tree_lines
        self.move_cursor(node)
        return True

    def first_ref(self) -> NodeRef | None:
        for node in self.root.children:
            if node.data is not None:
                return node.data
        return None

    @property
    def run_ids(self) -> list[str]:
        return list(self._run_nodes)


def run_label(run: Run, state: str, findings: list[Finding], marked: bool, short: bool) -> Text:
    glyph, style = GLYPHS.get(state, ("?", ""))
    t = Text(glyph, style=style)
    t.append(" ")
    name = run.id.rsplit("/", 1)[-1] if short else run.id
    t.append(sanitize.clean(name, 60))
    t.append_text(findings_badge(findings))
    if run.store.restarts:  # the step went back (a resumed run): later points superseded
        last = run.store.restarts[-1]
        t.append(f" ↺{last.step}", style="yellow")
    if marked:
        t.append(" ◆", style="bold magenta")
    return t
