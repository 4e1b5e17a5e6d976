"""Untrusted names are drawn inertly (issue 8 item 5): a run folder and a metric named with
OSC 52, a title change, ESC[2J, a carriage return and a bidi override."""

from __future__ import annotations

import json
from pathlib import Path

from app_support import T0, screen_text, wait_until

from tui.app import make_app
from tui.diagnose.findings import Finding
from tui.widgets.findings_panel import FindingsPanel, Row

HOSTILE = "x\x1b]52;c;cHduZWQ=\x07\x1b]0;title\x07\x1b[2J\rEVIL\u202etxt.exe[b]m[/b]"


def _assert_inert(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "\u202e" not in text and "\x9b" not in text


async def test_hostile_names_are_drawn_inertly(tmp_path: Path) -> None:
    root = tmp_path / "root"
    run = root / HOSTILE.replace("/", "_")
    run.mkdir(parents=True)
    with open(run / "metrics.jsonl", "w") as fh:
        for s in range(50):
            fh.write(
                json.dumps({"step": s, "time": T0 + s, "loss": 1.0 / (s + 1), HOSTILE: float(s)})
                + "\n"
            )
    app = make_app([root])
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_until(pilot, lambda: len(app.runs) == 1 and app.rounds >= 1)
        # a finding whose message carries the name too (detectors quote names)
        rid = next(iter(app.runs))
        panel = app.query_one(FindingsPanel)
        panel.show([Row(rid, Finding("loss_spike", f"spike in {HOSTILE}", step=3))])
        await pilot.pause()
        text = screen_text(app)
        _assert_inert(text)
        assert "\\x1b]52;c;" in text  # shown, visibly escaped
        assert "\\u202e" in text
        assert "[b]m[/b]" in text  # markup shown as text, not applied
        # and what reaches the terminal: the exported screen holds no raw escape of ours
        svg = app.export_screenshot()
        assert "cHduZWQ=\x07" not in svg and "\x1b]52" not in svg
