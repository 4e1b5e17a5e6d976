"""The jobs panel: launched remedy trials (issue 6 fills it; until then it says so)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class JobsPanel(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            Text("no launched runs — the remedy launcher is not there yet", style="grey50"),
            id=id,
        )
        self.border_title = "jobs"
