"""The findings panel: one line per finding, so a person can search the screen for a kind.

Columns: severity, kind exactly as DESIGN.md names it (`loss_spike`), rule id, step, the remedy
keys that apply (w warmup, c clipping, e early-instability probe), run, message.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable

from tui import sanitize
from tui.diagnose.findings import Finding

SEVERITY = {"info": ("i", "cyan"), "warning": ("!", "yellow"), "error": ("✗", "bold red")}
MAX_ROWS = 500


def remedy_keys(f: Finding) -> str:
    """The keys whose remedy applies to a finding (R17: warmup first for early instability,
    clipping for early or mid-training; R15 probe for suspected early instability)."""
    kind = f.kind
    phase = f.evidence.get("phase") if isinstance(f.evidence, dict) else None
    if kind in ("divergence", "best_at_feasibility_edge"):
        return "w c e"
    if kind == "unstable_training":
        return "w e" if phase == "early" else "c w"
    if kind == "loss_spike":
        return "w c"
    if kind in ("grad_norm_outlier", "clipping_too_aggressive"):
        return "c"
    return ""


@dataclass(frozen=True)
class Row:
    source: str  # run or study id
    finding: Finding


class FindingsPanel(DataTable[Text]):
    """Rows are Rich Text (never markup strings): messages carry names from files."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._rows: list[Row] = []
        self.border_title = "findings"

    def on_mount(self) -> None:
        self.add_column("", key="sev", width=1)
        self.add_column("kind", key="kind", width=24)
        self.add_column("rule", key="rule", width=4)
        self.add_column("step", key="step", width=8)
        self.add_column("keys", key="keys", width=5)
        self.add_column("run", key="run", width=18)
        # a fixed width: an auto width is computed after the rows land, and a redraw in between
        # showed messages cut to the header's width
        self.add_column("message", key="message", width=240)

    def show(self, rows: list[Row], errors: list[tuple[str, str]] | None = None) -> None:
        """Replace the rows (only when they changed: a rebuild repaints the panel)."""
        rows = rows[-MAX_ROWS:]
        errors = errors or []
        if rows == self._rows and not errors and self.row_count == len(rows):
            return
        self._rows = rows
        self.clear()
        for i, row in enumerate(rows):
            f = row.finding
            glyph, style = SEVERITY.get(f.severity, ("?", ""))
            step = "-" if f.step is None else str(f.step)
            self.add_row(
                Text(glyph, style=style),
                Text(f.kind, style=style),
                Text(f.rule),
                Text(step),
                Text(remedy_keys(f), style="bold"),
                sanitize.text(row.source, limit=40),
                sanitize.text(f.message, limit=300),
                key=str(i),
            )
        for j, (path, message) in enumerate(errors[-50:]):
            self.add_row(
                Text("✗", style="red"),
                Text("read_error", style="red"),
                Text(""),
                Text(""),
                Text(""),
                sanitize.text(path, limit=40),
                sanitize.text(message, limit=300),
                key=f"e{j}",
            )
        self.border_subtitle = f"{len(rows)} findings"

    def current(self) -> Row | None:
        if not self._rows or self.cursor_row < 0 or self.cursor_row >= len(self._rows):
            return None
        return self._rows[self.cursor_row]

    @property
    def rows_shown(self) -> list[Row]:
        return list(self._rows)
