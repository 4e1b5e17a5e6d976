"""Live updates: data appended to a log during the test reaches the screen, through the
worker's messages (waited for with message_hook and an asyncio.Event, never a sleep)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app_support import append_lines, curve, screen_text, wait_until, write_run

from tui.app import make_app
from tui.engine import FindingRaised, MetricsAppended, RunDiscovered
from tui.widgets.findings_panel import FindingsPanel
from tui.widgets.plots import MetricPlot
from tui.widgets.run_tree import RunTree


async def test_appended_points_reach_the_plot(single_run: Path) -> None:
    seen: list[object] = []
    appended = asyncio.Event()

    def hook(message: object) -> None:
        seen.append(message)
        if isinstance(message, MetricsAppended) and "run" in message.updated and app.rounds:
            appended.set()

    app = make_app([single_run])
    async with app.run_test(size=(140, 40), message_hook=hook) as pilot:
        await wait_until(pilot, lambda: app.rounds >= 1 and "run" in app.runs)
        await pilot.pause()
        plot = app.query_one("#plot-loss", MetricPlot)
        before = plot.renders
        assert app.runs["run"].store.last_step == 199
        appended.clear()
        append_lines(single_run / "run" / "metrics.jsonl", [curve(s) for s in range(200, 260)])
        await asyncio.wait_for(appended.wait(), timeout=10)
        await wait_until(pilot, lambda: app.runs["run"].store.last_step == 259)
        await wait_until(pilot, lambda: plot.renders > before)
        assert any(isinstance(m, RunDiscovered) for m in seen)


async def test_new_run_folder_appears_in_the_tree(single_run: Path) -> None:
    app = make_app([single_run])
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: "run" in app.runs)
        write_run(single_run / "late", 50)
        await wait_until(pilot, lambda: "late" in app.query_one(RunTree).run_ids)


async def test_polling_fallback_follows_appends(single_run: Path) -> None:
    app = make_app([single_run], poll=0.1)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: "run" in app.runs)
        assert app.watcher is not None and "polling" in app.watcher.reason
        append_lines(single_run / "run" / "metrics.jsonl", [curve(s) for s in range(200, 210)])
        await wait_until(pilot, lambda: app.runs["run"].store.last_step == 209)


async def test_spike_raises_a_finding_live(single_run: Path) -> None:
    raised = asyncio.Event()

    def hook(message: object) -> None:
        if isinstance(message, FindingRaised) and any(
            f.kind == "loss_spike" for f in message.findings
        ):
            raised.set()

    app = make_app([single_run])
    async with app.run_test(size=(160, 48), message_hook=hook) as pilot:
        await wait_until(pilot, lambda: app.rounds >= 1)
        recs = [curve(s) for s in range(200, 400)]
        for r in recs[100:103]:
            r["loss"] = 40.0
        append_lines(single_run / "run" / "metrics.jsonl", recs)
        await asyncio.wait_for(raised.wait(), timeout=15)
        await wait_until(pilot, lambda: "loss_spike" in screen_text(app))
        rows = app.query_one(FindingsPanel).rows_shown
        assert any(r.finding.kind == "loss_spike" and r.finding.rule == "R13" for r in rows)


async def test_a_diverged_trial_of_a_sweep_is_info_as_in_check(sample_root: Path) -> None:
    """DESIGN.md: divergence is an error, but info for a trial of a study whose other trials
    are feasible (R12's note); the dashboard shows it as `tunetop check` does, once the study
    is judged, and the tree still marks the trial diverged."""
    from tui import check

    app = make_app([sample_root])
    async with app.run_test(size=(160, 48)) as pilot:
        trial = "lr_sweep/lr=0.1"

        def divergence() -> list[object]:
            return [f for f in app.findings.get(trial, []) if f.kind == "divergence"]

        await wait_until(pilot, lambda: bool(divergence()) and divergence()[0].severity == "info")
        (shown,) = divergence()
        assert "[info: an infeasible trial" in shown.message
        assert app.state_of(app.runs[trial]) == "diverged"
        (rep,) = [r for r in check.run_check(str(sample_root)).runs if r.run.id == trial]
        assert [f for f in rep.findings if f.kind == "divergence"] == [shown]
